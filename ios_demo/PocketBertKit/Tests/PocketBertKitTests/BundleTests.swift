import XCTest
@testable import PocketBertKit

/// Opening a bundle: manifest fields, schema-version refusal, missing files, sha256 checks.
/// (Kotlin: HeadlessBenchmarkTest.missingManifest / newerSchemaVersion / missingArtifactFile / sha256Mismatch.)
final class BundleTests: XCTestCase {
    private func assertError(_ expression: @autoclosure () throws -> Any, contains words: [String],
                             file: StaticString = #filePath, line: UInt = #line,
                             _ match: (PocketBertError) -> Bool) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard let error = error as? PocketBertError else {
                return XCTFail("expected a PocketBertError, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(match(error), "unexpected error \(error)", file: file, line: line)
            let message = error.localizedDescription
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
            for word in words {
                XCTAssertTrue(message.contains(word), "'\(word)' not in: \(message)", file: file, line: line)
            }
        }
    }

    func testManifestOfTheFixture() throws {
        let bundle = try Fixture.bundle()
        let m = bundle.manifest
        XCTAssertEqual(m.schemaVersion, "1.3")
        XCTAssertEqual(m.model.task, .embedding)
        XCTAssertEqual(m.seqLens, [16, 32])
        XCTAssertEqual(m.maxSeqLen, 32)
        XCTAssertEqual(m.output?.name, "embedding")
        XCTAssertEqual(m.output?.shape, .fixed([1, m.model.config.hiddenSize]))
        XCTAssertEqual(m.inputs.map(\.name), ["input_ids", "attention_mask"])
        XCTAssertEqual(m.inputs.first?.shape.dims(seqLen: 16), [1, 16])
        XCTAssertEqual(m.tokenizer.specialTokens["[CLS]"], bundle.tokenizer.clsId)
        XCTAssertEqual(bundle.tokenizer.vocabularySize, m.model.config.vocabSize)
        XCTAssertNotNil(m.tolerance(format: "onnx", quant: "fp32"))
        // Format 1.2: the MLM agreement and the bucket-invariance cosine travel in the manifest too.
        XCTAssertNotNil(m.tolerance(format: "onnx", quant: "fp32")?.minArgmaxAgreement)
        XCTAssertNotNil(m.tolerance(format: "onnx", quant: "fp32")?.minInvarianceCosine)
        XCTAssertEqual(bundle.artifacts(formats: ["onnx"]).map(\.seqLen), [16, 32])
        XCTAssertEqual(bundle.quants(format: "onnx"), ["fp32"])
        XCTAssertEqual(try bundle.artifact(format: "onnx", quant: "fp32", seqLen: 32).seqLen, 32)
    }

    func testNewerMajorSchemaVersionIsRefused() throws {
        let dir = try Fixture.copy()
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) { $0["schema_version"] = "2.0" }
        assertError(try ModelBundle.open(dir), contains: ["schema_version 2.0", "major version 1", "update the app"]) {
            $0 == .unsupportedSchemaVersion(file: "manifest.json", found: "2.0", supportedMajor: 1)
        }
    }

    func testNewerMinorSchemaVersionStillReads() throws {
        let dir = try Fixture.copy()
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) {
            $0["schema_version"] = "1.7"
            $0["a_field_from_the_future"] = ["x": 1]
        }
        XCTAssertEqual(try ModelBundle.open(dir).manifest.schemaVersion, "1.7")
    }

    func testAFormat11ManifestStillReads() throws {
        // Format 1.1 tolerances hold only max_abs_diff and min_cosine: the bundle opens, and the checks that need
        // the other two thresholds fail asking for a re-export (GoldenSelfTestTests.testMaskedLMArgmaxCheck).
        let dir = try Fixture.copy()
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) {
            $0["schema_version"] = "1.1"
            $0["tolerances"] = ["onnx/fp32": ["max_abs_diff": 0.001, "min_cosine": 0.9999]]
        }
        let tolerance = try XCTUnwrap(try ModelBundle.open(dir).manifest.tolerance(format: "onnx", quant: "fp32"))
        XCTAssertEqual(tolerance, Tolerance(maxAbsDiff: 0.001, minCosine: 0.9999))
        XCTAssertNil(tolerance.minInvarianceCosine)
    }

    func testAnArtifactWithoutItsToleranceIsRefused() throws {
        let dir = try Fixture.copy()
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) { $0["tolerances"] = [String: Any]() }
        assertError(try ModelBundle.open(dir), contains: ["no tolerance for onnx/fp32", "re-export"]) {
            if case .invalidBundle = $0 { return true }
            return false
        }
    }

    func testGoldenFileOfAnotherMajorVersionIsRefused() throws {
        let dir = try Fixture.copy()
        let golden = dir.appendingPathComponent("golden.json")
        try Fixture.editJSON(golden) { $0["schema_version"] = "3.1" }
        let sha = try FileHash.sha256(file: golden)
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) { $0["golden"] = ["file": "golden.json", "sha256": sha] }
        assertError(try ModelBundle.open(dir), contains: ["golden.json", "3.1"]) {
            if case .unsupportedSchemaVersion(file: "golden.json", found: "3.1", supportedMajor: 1) = $0 { return true }
            return false
        }
    }

    func testMissingManifest() throws {
        let dir = try Fixture.copy()
        try FileManager.default.removeItem(at: dir.appendingPathComponent("manifest.json"))
        assertError(try ModelBundle.open(dir), contains: ["manifest.json", "missing"]) { $0 == .missingFile(path: "manifest.json") }
    }

    func testMissingVocabulary() throws {
        let dir = try Fixture.copy()
        try FileManager.default.removeItem(at: dir.appendingPathComponent("vocab.txt"))
        assertError(try ModelBundle.open(dir), contains: ["vocab.txt"]) { $0 == .missingFile(path: "vocab.txt") }
    }

    func testMissingBundleFolder() {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-bundle-\(UUID().uuidString)")
        assertError(try ModelBundle.open(dir), contains: ["missing"]) {
            if case .missingFile = $0 { return true }
            return false
        }
    }

    func testMalformedManifestIsOneLineError() throws {
        let dir = try Fixture.copy()
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) { $0.removeValue(forKey: "tokenizer") }
        assertError(try ModelBundle.open(dir), contains: ["manifest.json", "tokenizer"]) {
            if case .invalidBundle = $0 { return true }
            return false
        }
    }

    /// The fixture lists its ONNX artifacts but ships no model file: exactly a missing artifact.
    func testMissingArtifactFile() throws {
        let bundle = try Fixture.bundle()
        let artifact = try XCTUnwrap(bundle.manifest.artifacts.first)
        assertError(try bundle.verify(artifact), contains: [artifact.file, "copy the whole bundle"]) {
            $0 == .missingArtifact(file: artifact.file)
        }
        assertError(try bundle.url(of: artifact), contains: [artifact.file]) { $0 == .missingArtifact(file: artifact.file) }
    }

    func testArtifactSha256Mismatch() throws {
        let dir = try Fixture.copy()
        try Fixture.addPlaceholderArtifacts(dir)
        let bundle = try ModelBundle.open(dir)
        let artifact = try XCTUnwrap(bundle.manifest.artifacts.first)
        XCTAssertNoThrow(try bundle.verify(artifact))
        try Data("damaged copy".utf8).write(to: dir.appendingPathComponent(artifact.file))
        assertError(try bundle.verify(artifact), contains: [artifact.file, "sha256", "copy the bundle again"]) {
            if case let .checksumMismatch(file, expected, _) = $0 { return file == artifact.file && expected == artifact.sha256 }
            return false
        }
    }

    func testGoldenSha256Mismatch() throws {
        let dir = try Fixture.copy()
        let golden = dir.appendingPathComponent("golden.json")
        var text = try String(contentsOf: golden, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"plain\"", with: "\"plain \"")
        try text.write(to: golden, atomically: true, encoding: .utf8)
        assertError(try ModelBundle.open(dir), contains: ["golden.json", "sha256"]) {
            if case .checksumMismatch(file: "golden.json", expected: _, actual: _) = $0 { return true }
            return false
        }
    }

    func testMissingArtifactKindNamesTheExportFlags() throws {
        let bundle = try Fixture.bundle()
        assertError(try bundle.artifact(format: "coreml", quant: "fp16", seqLen: 16), contains: ["--formats coreml", "--quant fp16"]) {
            if case .noArtifact = $0 { return true }
            return false
        }
    }

    func testSpecialTokenIdsMustMatchTheManifest() throws {
        let dir = try Fixture.copy()
        try Fixture.editJSON(dir.appendingPathComponent("manifest.json")) { manifest in
            var tokenizer = manifest["tokenizer"] as! [String: Any]
            var specials = tokenizer["special_tokens"] as! [String: Any]
            specials["[CLS]"] = 7
            tokenizer["special_tokens"] = specials
            manifest["tokenizer"] = tokenizer
        }
        assertError(try ModelBundle.open(dir), contains: ["[CLS]", "7"]) {
            if case .invalidVocabulary = $0 { return true }
            return false
        }
    }

    func testDiscoveryFindsBundleFolders() throws {
        let dir = try Fixture.copy()
        let root = dir.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: root.appendingPathComponent("not_a_bundle"), withIntermediateDirectories: true)
        XCTAssertEqual(BundleDiscovery.bundleDirectories(in: [root]).map(\.lastPathComponent), ["tiny_bundle"])
        XCTAssertEqual(BundleDiscovery.bundleDirectories(in: [dir]).map(\.lastPathComponent), ["tiny_bundle"])
    }
}
