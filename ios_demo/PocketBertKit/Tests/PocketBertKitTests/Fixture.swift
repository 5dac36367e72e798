import Foundation
import XCTest
@testable import PocketBertKit

/// The shared golden fixture `tests/fixtures/tiny_bundle` of the repository, which the Python
/// (`tests/export/test_fixture_golden.py`) and Kotlin tests read too. It is found from this file's path:
/// `<repo>/ios_demo/PocketBertKit/Tests/PocketBertKitTests/Fixture.swift` -> five levels up is `<repo>`.
/// Set POCKETBERT_FIXTURE to test another bundle folder.
enum Fixture {
    static var directory: URL {
        if let override = ProcessInfo.processInfo.environment["POCKETBERT_FIXTURE"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("tests").appendingPathComponent("fixtures").appendingPathComponent("tiny_bundle")
    }

    static func bundle() throws -> ModelBundle {
        try ModelBundle.open(directory)
    }

    /// Extra tokenizer edge cases (golden.json's format, ids only), written by make_tiny_bundle.py.
    static func tokenizerCases() throws -> GoldenFile {
        try GoldenFile.read(from: directory.appendingPathComponent("tokenizer_cases.json"))
    }

    /// A writable copy of the fixture in a fresh temporary folder.
    static func copy() throws -> URL {
        let dst = FileManager.default.temporaryDirectory
            .appendingPathComponent("pocketbert-\(UUID().uuidString)")
            .appendingPathComponent("tiny_bundle")
        try FileManager.default.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: directory, to: dst)
        return dst
    }

    /// Rewrites a JSON object file through `edit`.
    static func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted]).write(to: url)
    }

    /// Gives each artifact of the copy at `dir` a placeholder file and records its sha256 in the
    /// manifest, so that `verify` passes (the fixture itself ships no model file).
    static func addPlaceholderArtifacts(_ dir: URL) throws {
        try editJSON(dir.appendingPathComponent("manifest.json")) { manifest in
            var artifacts = manifest["artifacts"] as? [[String: Any]] ?? []
            for i in artifacts.indices {
                let file = artifacts[i]["file"] as! String
                let data = Data("placeholder for \(file)".utf8)
                try? data.write(to: dir.appendingPathComponent(file))
                artifacts[i]["sha256"] = FileHash.sha256(data: data)
                artifacts[i]["size_bytes"] = data.count
            }
            manifest["artifacts"] = artifacts
        }
    }
}

/// Stands in for a phone runtime: returns the golden output recorded for exactly these (unpadded) ids,
/// so a wrong tokenization finds nothing (as the Kotlin tests' ReplayRunner). Like the real masked
/// model, its output does not depend on how much padding follows; inputs must be the runner's length.
final class ReplayRunner: EncoderRunner {
    let seqLen: Int
    private let outputs: [[Int32]: [Float]]

    init(golden: GoldenFile, seqLen: Int) {
        self.seqLen = seqLen
        var outputs: [[Int32]: [Float]] = [:]
        for c in golden.cases where c.ids.count <= seqLen {
            outputs[c.ids.map { Int32($0) }] = c.expected(at: seqLen) ?? []
        }
        self.outputs = outputs
    }

    func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] {
        guard inputIds.count == seqLen, attentionMask.count == seqLen else {
            throw PocketBertError.runtime("input of length \(inputIds.count) for a seq\(seqLen) model")
        }
        let real = zip(inputIds, attentionMask).filter { $0.1 == 1 }.map { $0.0 }
        guard let out = outputs[real] else {
            throw PocketBertError.runtime("no recorded output for these input ids")
        }
        return out
    }
}
