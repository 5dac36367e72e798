// The Swift side of tests/apps/test_conformance.py: answers the suite's request with PocketBertKit's own
// functions (the ones the app calls) and writes the answers for Python to judge; it judges nothing itself.
//
//   pocketbert-conformance request.json
//
// request.json (paths relative to its folder):
//   tokenizer: [{family, vocab, options: {lowercase, strip_accents, tokenize_chinese_chars}, texts, answers}]
//     texts: JSON lines, one string each; answers (written): JSON lines, the `[CLS] ... [SEP]` ids of each
//     text, untruncated (WordPieceTokenizer.encode).
//   bundles: [{name, bundle, replay}], answers_file: written as {bundles: {name: {error, checks: [{target, case,
//     passed, detail}]}}, postprocess}: ModelBundle.open, then SelfTest.bundle with outputs recorded from the
//     real runtimes (replay).
//   postprocess: {vectors, logits, labels}: answered as {top_k: per vector, Similarity.topK over all vectors
//     ([index, cosine] best first); classify: per logits row, Classifier.predictions ([label, probability])}.
//   calls: [{bundle, texts, answers}]: per text (JSON lines), how the app calls each format/quant of the bundle
//     (ModelBundle.call): answers (written) JSON lines of [[format, quant, artifact file, input length, ids], ...].
import Foundation
import PocketBertKit

struct Request: Decodable {
    struct Family: Decodable {
        let family: String
        let vocab: String
        let options: [String: Bool]
        let texts: String
        let answers: String
    }

    struct BundleCase: Decodable {
        let name: String
        let bundle: String
        let replay: String
    }

    struct PostProcess: Decodable {
        let vectors: [[Float]]
        let logits: [[Float]]
        let labels: [String]
    }

    struct Calls: Decodable {
        let bundle: String
        let texts: String
        let answers: String
    }

    let tokenizer: [Family]
    let bundles: [BundleCase]
    let postprocess: PostProcess
    let answers_file: String
    let calls: [Calls]?
}

struct ReplayRow: Decodable {
    let input_ids: [Int32]
    let attention_mask: [Int32]
    let output: [Float]
}

/// Outputs recorded from the Python runtimes, looked up by the exact padded inputs: it stands in for a phone
/// runtime, and a wrong padding or bucket finds no recorded output.
final class ReplayRunner: EncoderRunner {
    let seqLen: Int
    private let outputs: [String: [Float]]

    init(seqLen: Int, rows: [ReplayRow]) {
        self.seqLen = seqLen
        var table: [String: [Float]] = [:]
        for row in rows { table[Self.key(row.input_ids, row.attention_mask)] = row.output }
        outputs = table
    }

    static func key(_ ids: [Int32], _ mask: [Int32]) -> String {
        ids.map(String.init).joined(separator: ",") + "|" + mask.map(String.init).joined(separator: ",")
    }

    func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] {
        guard let out = outputs[Self.key(inputIds, attentionMask)] else {
            throw PocketBertError.runtime("no recorded output for these input ids")
        }
        return out
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("pocketbert-conformance: \(message)\n".utf8))
    exit(2)
}

guard CommandLine.arguments.count == 2 else { fail("usage: pocketbert-conformance request.json") }
let requestURL = URL(fileURLWithPath: CommandLine.arguments[1])
let dir = requestURL.deletingLastPathComponent()
let decoder = JSONDecoder()
let request: Request
do {
    request = try decoder.decode(Request.self, from: Data(contentsOf: requestURL))
} catch {
    fail("cannot read \(requestURL.path): \(error)")
}

for family in request.tokenizer {
    let lowercase = family.options["lowercase"] ?? true
    let options = WordPieceTokenizer.Options(
        lowercase: lowercase, stripAccents: family.options["strip_accents"] ?? lowercase,
        tokenizeChineseChars: family.options["tokenize_chinese_chars"] ?? true)
    let tokenizer: WordPieceTokenizer
    do {
        tokenizer = try WordPieceTokenizer(
            tokens: try WordPieceTokenizer.readVocabulary(dir.appendingPathComponent(family.vocab)), options: options)
    } catch {
        fail("\(family.family): \(error.localizedDescription)")
    }
    guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(family.texts).path) else {
        fail("\(family.family): cannot read \(family.texts)")
    }
    var out = ""
    for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
        guard let text = try? decoder.decode(String.self, from: Data(line)) else {
            fail("\(family.family): a line of \(family.texts) is not a JSON string")
        }
        out += "[" + tokenizer.encode(text).map(String.init).joined(separator: ",") + "]\n"
    }
    do {
        try out.write(to: dir.appendingPathComponent(family.answers), atomically: true, encoding: .utf8)
    } catch {
        fail("cannot write \(family.answers): \(error)")
    }
}

var answers: [String: Any] = [:]
for b in request.bundles {
    let replay: [String: [ReplayRow]]
    do {
        replay = try decoder.decode([String: [ReplayRow]].self,
                                    from: Data(contentsOf: dir.appendingPathComponent(b.replay)))
    } catch {
        fail("\(b.name): cannot read \(b.replay): \(error)")
    }
    do {
        let bundle = try ModelBundle.open(dir.appendingPathComponent(b.bundle))
        let checks = SelfTest.bundle(bundle, artifacts: bundle.manifest.artifacts) { artifact in
            ReplayRunner(seqLen: artifact.seqLen, rows: replay[artifact.file] ?? [])
        }
        answers[b.name] = ["error": NSNull(), "checks": checks.map {
            ["target": $0.target, "case": $0.caseName, "passed": $0.passed, "detail": $0.detail] as [String: Any]
        }] as [String: Any]
    } catch {
        answers[b.name] = ["error": error.localizedDescription, "checks": [Any]()] as [String: Any]
    }
}
for c in request.calls ?? [] {
    do {
        let bundle = try ModelBundle.open(dir.appendingPathComponent(c.bundle))
        var families: [(String, String)] = []
        for a in bundle.manifest.artifacts where !families.contains(where: { $0 == (a.format, a.quant) }) {
            families.append((a.format, a.quant))
        }
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(c.texts).path) else {
            fail("calls: cannot read \(c.texts)")
        }
        var out = ""
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            let text = try decoder.decode(String.self, from: Data(line))
            let row: [[Any]] = try families.map { format, quant in
                let (artifact, input) = try bundle.call(format: format, quant: quant, text: text)
                return [format, quant, artifact.file, input.seqLen, input.ids]
            }
            out += String(decoding: try JSONSerialization.data(withJSONObject: row), as: UTF8.self) + "\n"
        }
        try out.write(to: dir.appendingPathComponent(c.answers), atomically: true, encoding: .utf8)
    } catch {
        fail("calls \(c.bundle): \(error)")
    }
}

let post = request.postprocess
let postprocess: [String: Any] = [
    "top_k": post.vectors.map { q in
        Similarity.topK(query: q, candidates: post.vectors, k: post.vectors.count).map { [$0.index, Double($0.score)] as [Any] }
    },
    "classify": post.logits.map { row in
        Classifier.predictions(logits: row, labels: post.labels).map { [$0.label, Double($0.probability)] as [Any] }
    },
]
do {
    let doc: [String: Any] = ["bundles": answers, "postprocess": postprocess]
    let data = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: dir.appendingPathComponent(request.answers_file))
} catch {
    fail("cannot write \(request.answers_file): \(error)")
}
print("conformance (swift): answered \(request.tokenizer.count) tokenizer families, \(answers.count) bundles")
