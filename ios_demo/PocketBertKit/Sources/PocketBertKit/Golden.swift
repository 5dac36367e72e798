import Foundation

/// `golden.json`: fixed texts with their exact token ids and the eager PyTorch fp32 outputs. Every
/// runtime (Python, Kotlin, Swift) checks itself against the same file.
public struct GoldenFile: Decodable, Sendable {
    public let schemaVersion: String
    public let outputName: String
    public let seqLens: [Int]
    public var cases: [GoldenCase]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case outputName = "output_name"
        case seqLens = "seq_lens"
        case cases
    }

    public init(schemaVersion: String, outputName: String, seqLens: [Int], cases: [GoldenCase]) {
        self.schemaVersion = schemaVersion
        self.outputName = outputName
        self.seqLens = seqLens
        self.cases = cases
    }

    /// Reads `golden.json`, refusing an unknown major schema version first.
    public static func read(from url: URL) throws -> GoldenFile {
        let data = try readFile(url)
        try BundleManifest.checkSchemaVersion(data, file: url.lastPathComponent)
        do {
            return try JSONDecoder().decode(GoldenFile.self, from: data)
        } catch {
            throw PocketBertError.invalidBundle(
                "\(url.lastPathComponent) does not match the bundle contract (\(describe(error))); re-export the bundle")
        }
    }

    /// The case called `name`, if any.
    public func findCase(named name: String) -> GoldenCase? { cases.first { $0.name == name } }
}

public struct GoldenCase: Decodable, Sendable, Equatable {
    public let name: String
    public let text: String
    /// `[CLS] ... [SEP]`, truncated to the largest bucket, unpadded.
    public var ids: [Int]
    /// The smallest bucket that holds `ids`.
    public var seqLen: Int
    public var inputIds: [Int]
    public var attentionMask: [Int]
    /// Eager fp32 output, flattened row-major (embedding: H floats; classification: logits). Nil for MLM.
    public var expected: [Float]?
    /// MLM bundles: the argmax token per position instead of the logits.
    public var expectedArgmax: [Int]?

    enum CodingKeys: String, CodingKey {
        case name, text, ids
        case seqLen = "seq_len"
        case inputIds = "input_ids"
        case attentionMask = "attention_mask"
        case expected
        case expectedArgmax = "expected_argmax"
    }

    public init(name: String, text: String, ids: [Int], seqLen: Int, inputIds: [Int], attentionMask: [Int],
                expected: [Float]? = nil, expectedArgmax: [Int]? = nil) {
        self.name = name
        self.text = text
        self.ids = ids
        self.seqLen = seqLen
        self.inputIds = inputIds
        self.attentionMask = attentionMask
        self.expected = expected
        self.expectedArgmax = expectedArgmax
    }
}

/// A loaded model for one artifact (one static sequence length), implemented per runtime in the app
/// (Core ML, ExecuTorch). `run` takes one padded example and returns the output flattened row-major.
public protocol EncoderRunner: AnyObject {
    var seqLen: Int { get }
    func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float]
}

/// One line of the self-test screen: one golden case checked against the tokenizer or one artifact.
public struct CheckResult: Sendable, Equatable, Identifiable {
    /// `tokenizer`, or the artifact file.
    public let target: String
    public let caseName: String
    public let passed: Bool
    public let detail: String
    public var id: String { "\(target)/\(caseName)" }

    public init(target: String, caseName: String, passed: Bool, detail: String) {
        self.target = target
        self.caseName = caseName
        self.passed = passed
        self.detail = detail
    }
}

/// The golden self-test: the tokenizer must give each case's exact ids, bucket, input_ids and mask;
/// each artifact's output must be within the manifest's tolerance of the stored eager output.
public enum SelfTest {
    public static func tokenizer(_ tokenizer: WordPieceTokenizer, golden: GoldenFile, seqLens: [Int]) -> [CheckResult] {
        golden.cases.map { c in
            let e = tokenizer.encode(c.text, buckets: seqLens)
            let problem: String?
            if e.ids != c.ids {
                problem = "ids differ at position \(firstDifference(e.ids, c.ids)): got \(e.ids.prefix(40)), golden \(c.ids.prefix(40))"
            } else if e.seqLen != c.seqLen {
                problem = "bucket \(e.seqLen), golden \(c.seqLen)"
            } else if e.inputIds.map(Int.init) != c.inputIds {
                problem = "input_ids differ at position \(firstDifference(e.inputIds.map(Int.init), c.inputIds))"
            } else if e.attentionMask.map(Int.init) != c.attentionMask {
                problem = "attention_mask differs at position \(firstDifference(e.attentionMask.map(Int.init), c.attentionMask))"
            } else {
                problem = nil
            }
            return CheckResult(target: "tokenizer", caseName: c.name, passed: problem == nil,
                               detail: problem ?? "\(e.ids.count) ids, seq\(e.seqLen)")
        }
    }

    /// Compares one model output with a golden case's expected values.
    public static func compare(output: [Float], expected: [Float], tolerance: Tolerance) -> (passed: Bool, detail: String) {
        guard output.count == expected.count else {
            return (false, "output has \(output.count) values, golden \(expected.count)")
        }
        guard output.allSatisfy({ $0.isFinite }) else {
            return (false, "output has NaN or infinite values")
        }
        let maxAbs = zip(output, expected).map { Double(abs($0 - $1)) }.max() ?? 0
        let cos = Double(Similarity.cosine(output, expected))
        let passed = maxAbs <= tolerance.maxAbsDiff && cos >= tolerance.minCosine
        let detail = String(format: "max|d| %.2e (<= %.0e), cosine %.6f (>= %.4f)", maxAbs, tolerance.maxAbsDiff,
                            cos, tolerance.minCosine)
        return (passed, detail)
    }

    /// Runs the golden cases of the runner's bucket and compares each output with the stored one.
    public static func artifact(name: String, runner: EncoderRunner, golden: GoldenFile, tolerance: Tolerance) -> [CheckResult] {
        golden.cases.filter { $0.seqLen == runner.seqLen }.map { c in
            let output: [Float]
            do {
                output = try runner.run(inputIds: c.inputIds.map { Int32($0) }, attentionMask: c.attentionMask.map { Int32($0) })
            } catch {
                return CheckResult(target: name, caseName: c.name, passed: false,
                                   detail: "inference failed: \(error.localizedDescription)")
            }
            if let expected = c.expected {
                let (passed, detail) = compare(output: output, expected: expected, tolerance: tolerance)
                return CheckResult(target: name, caseName: c.name, passed: passed, detail: detail)
            }
            if let argmax = c.expectedArgmax {
                let vocab = argmax.isEmpty ? 0 : output.count / argmax.count
                guard vocab > 0, vocab * argmax.count == output.count else {
                    return CheckResult(target: name, caseName: c.name, passed: false,
                                       detail: "output has \(output.count) values, not \(argmax.count) x vocabulary")
                }
                // Only real tokens: padding positions carry no meaning.
                let positions = c.attentionMask.enumerated().filter { $0.element == 1 }.map(\.offset)
                let got = positions.map { p in MaskedLM.argmax(output[(p * vocab)..<((p + 1) * vocab)]) }
                let want = positions.map { argmax[$0] }
                let agree = zip(got, want).filter { $0 == $1 }.count
                let passed = agree == want.count
                return CheckResult(target: name, caseName: c.name, passed: passed,
                                   detail: "argmax agrees on \(agree)/\(want.count) tokens")
            }
            return CheckResult(target: name, caseName: c.name, passed: false, detail: "golden case has no expected output")
        }
    }

    static func firstDifference(_ a: [Int], _ b: [Int]) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }
}
