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
    /// Format 1.1: the eager output at every bucket the case fits, smallest first (nil in a 1.0 file).
    public var buckets: [GoldenBucket]?

    enum CodingKeys: String, CodingKey {
        case name, text, ids
        case seqLen = "seq_len"
        case inputIds = "input_ids"
        case attentionMask = "attention_mask"
        case expected
        case expectedArgmax = "expected_argmax"
        case buckets
    }

    public init(name: String, text: String, ids: [Int], seqLen: Int, inputIds: [Int], attentionMask: [Int],
                expected: [Float]? = nil, expectedArgmax: [Int]? = nil, buckets: [GoldenBucket]? = nil) {
        self.name = name
        self.text = text
        self.ids = ids
        self.seqLen = seqLen
        self.inputIds = inputIds
        self.attentionMask = attentionMask
        self.expected = expected
        self.expectedArgmax = expectedArgmax
        self.buckets = buckets
    }

    /// The eager output at bucket `seqLen` (a 1.0 file's single `expected` stands for every bucket).
    public func expected(at seqLen: Int) -> [Float]? {
        buckets?.first { $0.seqLen == seqLen }?.expected ?? expected
    }

    /// MLM: the argmax per position at bucket `seqLen`.
    public func expectedArgmax(at seqLen: Int) -> [Int]? {
        buckets?.first { $0.seqLen == seqLen }?.expectedArgmax ?? expectedArgmax
    }
}

/// One golden case padded to one bucket (`golden.json` 1.1 `buckets`).
public struct GoldenBucket: Decodable, Sendable, Equatable {
    public let seqLen: Int
    public let expected: [Float]?
    public let expectedArgmax: [Int]?

    enum CodingKeys: String, CodingKey {
        case seqLen = "seq_len"
        case expected
        case expectedArgmax = "expected_argmax"
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

    /// The check a format 1.0/1.1 manifest cannot pass: it records no `key` threshold for the artifact.
    static func unrecorded(target: String, caseName: String, key: String) -> CheckResult {
        CheckResult(target: target, caseName: caseName, passed: false,
                    detail: "the manifest records no \(key) for this artifact (format 1.0/1.1); re-export the bundle")
    }

    /// Runs every golden case that fits the runner's bucket (padded to it, as `pocketbert verify` does: the
    /// masked model's output does not depend on the amount of padding) and compares each output with the
    /// stored eager one, within `tolerance` (max |diff| and cosine; MLM golden files store the argmax per
    /// position, so MLM outputs by the share of real positions whose argmax matches, pooled over the cases:
    /// `tolerance.minArgmaxAgreement`, as pocketbert/bundle/parity.py `argmax_agreement`).
    ///
    /// - Parameters:
    ///   - padId: the `[PAD]` id used to pad a shorter case to the bucket.
    ///   - outputs: receives each case's output (case name, output), for the bucket-invariance check.
    public static func artifact(name: String, runner: EncoderRunner, golden: GoldenFile, tolerance: Tolerance,
                                padId: Int = 0,
                                outputs sink: ((String, [Float]) -> Void)? = nil) -> [CheckResult] {
        let seqLen = runner.seqLen
        let cases = golden.cases.filter { $0.ids.count <= seqLen }
        var outputs: [Result<[Float], Error>] = []
        for c in cases {
            let padding = seqLen - c.ids.count
            let inputIds = c.ids.map { Int32($0) } + Array(repeating: Int32(padId), count: padding)
            let mask = Array(repeating: Int32(1), count: c.ids.count) + Array(repeating: Int32(0), count: padding)
            let outcome = Result { try runner.run(inputIds: inputIds, attentionMask: mask) }
            if case let .success(output) = outcome { sink?(c.name, output) }
            outputs.append(outcome)
        }
        // MLM: count agreeing positions first, since the verdict is on the pooled share.
        var agreement: [(agree: Int, total: Int)?] = []
        for (c, outcome) in zip(cases, outputs) {
            guard let argmax = c.expectedArgmax(at: seqLen), case let .success(output) = outcome else {
                agreement.append(nil)
                continue
            }
            let n = c.ids.count
            let vocab = output.count / seqLen
            guard vocab > 0, vocab * seqLen == output.count, argmax.count >= n else {
                agreement.append((0, max(n, 1)))
                continue
            }
            let agree = (0..<n).filter { p in MaskedLM.argmax(output[(p * vocab)..<((p + 1) * vocab)]) == argmax[p] }.count
            agreement.append((agree, n))
        }
        let pooledAgree = agreement.compactMap { $0?.agree }.reduce(0, +)
        let pooledTotal = agreement.compactMap { $0?.total }.reduce(0, +)
        let share = Double(pooledAgree) / Double(max(pooledTotal, 1))

        return zip(cases, zip(outputs, agreement)).map { c, pair in
            let (outcome, agreed) = pair
            let output: [Float]
            switch outcome {
            case let .success(value):
                output = value
            case let .failure(error):
                return CheckResult(target: name, caseName: c.name, passed: false,
                                   detail: "inference failed: \(error.localizedDescription)")
            }
            if let expected = c.expected(at: seqLen) {
                let (passed, detail) = compare(output: output, expected: expected, tolerance: tolerance)
                return CheckResult(target: name, caseName: c.name, passed: passed, detail: detail)
            }
            if let agreed {
                guard let threshold = tolerance.minArgmaxAgreement else {
                    return unrecorded(target: name, caseName: c.name, key: "min_argmax_agreement")
                }
                let pooled = String(format: "%.3f", share) + (share >= threshold ? " >= " : " < ") + String(format: "%.2f", threshold)
                let detail = "argmax agrees on \(agreed.agree)/\(agreed.total) tokens (all cases \(pooled))"
                return CheckResult(target: name, caseName: c.name, passed: share >= threshold, detail: detail)
            }
            return CheckResult(target: name, caseName: c.name, passed: false, detail: "golden case has no expected output")
        }
    }

    /// Bucket invariance over the outputs the artifact checks collected (artifact -> case name -> output): for
    /// each artifact, the minimum cosine between its output on a case and the same format/quant's output on that
    /// case at every other bucket (MLM: the logits of the real positions), as `pocketbert verify` computes it,
    /// at least the manifest's `minInvarianceCosine` (`tolerances`, keyed `format/quant`). One result per artifact
    /// that shares a case with another bucket.
    public static func invariance(golden: GoldenFile, runs: [(artifact: Artifact, outputs: [String: [Float]])],
                                  tolerances: [String: Tolerance]) -> [CheckResult] {
        let tokens = Dictionary(golden.cases.map { ($0.name, $0.ids.count) }, uniquingKeysWith: { a, _ in a })
        let mlm = golden.cases.contains { $0.expectedArgmax != nil }
        func rows(_ out: [Float], _ seqLen: Int, _ name: String) -> [Float] {
            mlm ? Array(out.prefix((out.count / seqLen) * (tokens[name] ?? 0))) : out
        }
        var results: [CheckResult] = []
        for (a, outs) in runs {
            var worst = 1.0
            var worstCase = ""
            var pairs = 0
            for (b, other) in runs where b.format == a.format && b.quant == a.quant && b.seqLen != a.seqLen {
                for (name, out) in outs.sorted(by: { $0.key < $1.key }) {
                    guard let o = other[name] else { continue }
                    let x = rows(out, a.seqLen, name), y = rows(o, b.seqLen, name)
                    let cos = x.count == y.count ? Double(Similarity.cosine(x, y)) : 0
                    if pairs == 0 || cos < worst {
                        worst = cos
                        worstCase = "\(name) vs seq\(b.seqLen)"
                    }
                    pairs += 1
                }
            }
            guard pairs > 0 else { continue }
            let target = "\(a.format)/\(a.quant)/seq\(a.seqLen) bucket invariance"
            guard let need = tolerances["\(a.format)/\(a.quant)"]?.minInvarianceCosine else {
                results.append(unrecorded(target: target, caseName: worstCase, key: "min_invariance_cosine"))
                continue
            }
            results.append(CheckResult(
                target: target, caseName: worstCase,
                passed: worst >= need,
                detail: String(format: "min cosine %.6f over %d case pairs (>= %.4f)", worst, pairs, need)))
        }
        return results
    }

    /// The whole golden self-test of a bundle, as the app's Self-test screen runs it: the tokenizer on every
    /// case, then for each artifact its sha256, its runtime (`load`) and its outputs at its bucket within
    /// tolerance, then bucket invariance. A bad artifact becomes a failed check, never a thrown error.
    public static func bundle(_ bundle: ModelBundle, artifacts: [Artifact],
                              load: (Artifact) throws -> EncoderRunner) -> [CheckResult] {
        var results = bundle.tokenizerSelfTest()
        var runs: [(artifact: Artifact, outputs: [String: [Float]])] = []
        for a in artifacts {
            let label = "\(a.format)/\(a.quant)/seq\(a.seqLen)"
            do {
                try bundle.verify(a)
            } catch {
                results.append(CheckResult(target: label, caseName: "(sha256)", passed: false,
                                           detail: error.localizedDescription))
                continue
            }
            let tolerance: Tolerance
            let runner: EncoderRunner
            do {
                tolerance = try bundle.tolerance(for: a)
                runner = try load(a)
            } catch {
                results.append(CheckResult(target: label, caseName: "(load)", passed: false,
                                           detail: "could not load: \(error.localizedDescription)"))
                continue
            }
            var outputs: [String: [Float]] = [:]
            results += artifact(name: label, runner: runner, golden: bundle.golden, tolerance: tolerance,
                                padId: bundle.tokenizer.padId) { outputs[$0] = $1 }
            runs.append((a, outputs))
        }
        return results + invariance(golden: bundle.golden, runs: runs, tolerances: bundle.manifest.tolerances)
    }

    static func firstDifference(_ a: [Int], _ b: [Int]) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }
}
