import Foundation

/// `manifest.json` of a pocketbert bundle, format 1 (see `export/BUNDLE.md` in the repository).
///
/// Only the fields an app needs are decoded; unknown keys are ignored, so a newer minor version
/// (`1.x`) still reads. A different major version is refused before anything else is decoded.
public struct BundleManifest: Decodable, Sendable {
    /// The manifest major version this build reads.
    public static let supportedMajorVersion = 1

    public let schemaVersion: String
    public let model: ModelInfo
    public let inputs: [TensorSpec]
    public let outputs: [OutputSpec]
    /// Sorted bucket lengths: run the smallest that fits, truncate to the largest.
    public let seqLens: [Int]
    public let tokenizer: TokenizerSpec
    /// Classification only: label names in logit order.
    public let labels: [String]?
    /// `"format/quant"` -> the thresholds every reader applies to that artifact kind (one per artifact's kind).
    public let tolerances: [String: Tolerance]
    public let golden: GoldenReference
    public let artifacts: [Artifact]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case model, inputs, outputs
        case seqLens = "seq_lens"
        case tokenizer, labels, tolerances, golden, artifacts
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(String.self, forKey: .schemaVersion)
        model = try c.decode(ModelInfo.self, forKey: .model)
        inputs = try c.decodeIfPresent([TensorSpec].self, forKey: .inputs) ?? []
        outputs = try c.decode([OutputSpec].self, forKey: .outputs)
        seqLens = try c.decode([Int].self, forKey: .seqLens).sorted()
        tokenizer = try c.decode(TokenizerSpec.self, forKey: .tokenizer)
        labels = try c.decodeIfPresent([String].self, forKey: .labels)
        tolerances = try c.decodeIfPresent([String: Tolerance].self, forKey: .tolerances) ?? [:]
        golden = try c.decode(GoldenReference.self, forKey: .golden)
        artifacts = try c.decodeIfPresent([Artifact].self, forKey: .artifacts) ?? []
    }

    /// The largest bucket: the longest token sequence any artifact accepts.
    public var maxSeqLen: Int { seqLens.last ?? tokenizer.maxLength }

    /// The one deployed output (`embedding` or `logits`).
    public var output: OutputSpec? { outputs.first }

    /// Reads and checks `manifest.json`.
    ///
    /// - Throws: `PocketBertError.missingFile`, `.unsupportedSchemaVersion` (checked first, so a
    ///   manifest of another major version is refused with that message, not a decoding error), or
    ///   `.invalidBundle` when the JSON does not match the contract.
    public static func read(from url: URL) throws -> BundleManifest {
        let data = try readFile(url)
        try checkSchemaVersion(data, file: url.lastPathComponent)
        let manifest: BundleManifest
        do {
            manifest = try JSONDecoder().decode(BundleManifest.self, from: data)
        } catch {
            throw PocketBertError.invalidBundle(
                "\(url.lastPathComponent) does not match the bundle contract (\(describe(error))); re-export the bundle")
        }
        try manifest.validate()
        return manifest
    }

    /// Refuses a JSON document whose `schema_version` major is not `supportedMajorVersion`.
    static func checkSchemaVersion(_ data: Data, file: String) throws {
        struct Versioned: Decodable {
            let schema_version: String
        }
        guard let versioned = try? JSONDecoder().decode(Versioned.self, from: data) else {
            throw PocketBertError.invalidBundle("\(file) is not JSON with a schema_version; re-export the bundle")
        }
        let found = versioned.schema_version
        let major = found.split(separator: ".", maxSplits: 1).first.flatMap { Int($0) }
        guard major == supportedMajorVersion else {
            throw PocketBertError.unsupportedSchemaVersion(file: file, found: found, supportedMajor: supportedMajorVersion)
        }
    }

    func validate() throws {
        guard !seqLens.isEmpty, seqLens.allSatisfy({ $0 >= 2 }) else {
            throw PocketBertError.invalidBundle("manifest.json: seq_lens must list bucket lengths >= 2, got \(seqLens)")
        }
        guard outputs.count >= 1 else {
            throw PocketBertError.invalidBundle("manifest.json: outputs is empty; re-export the bundle")
        }
        if model.task == .classification {
            guard let labels, labels.count >= 2 else {
                throw PocketBertError.invalidBundle("manifest.json: a classification bundle needs labels (>= 2 names)")
            }
        }
        for a in artifacts where tolerance(format: a.format, quant: a.quant) == nil {
            throw PocketBertError.invalidBundle(
                "manifest.json: no tolerance for \(a.format)/\(a.quant) (artifact \(a.file)); re-export the bundle")
        }
    }

    /// The thresholds of `format/quant`, if the manifest records them (`read` refuses a manifest that lacks an
    /// artifact's).
    public func tolerance(format: String, quant: String) -> Tolerance? {
        tolerances["\(format)/\(quant)"]
    }

    /// The smallest bucket that holds `tokenCount` tokens, or the largest bucket (the text is then truncated).
    public func bucket(forTokenCount tokenCount: Int) -> Int {
        seqLens.first(where: { $0 >= tokenCount }) ?? maxSeqLen
    }
}

public enum ModelTask: String, Decodable, Sendable {
    case embedding, mlm, classification
}

public struct ModelInfo: Decodable, Sendable {
    public let name: String
    public let task: ModelTask
    public let config: EncoderConfigInfo
    public let numParameters: Int?

    enum CodingKeys: String, CodingKey {
        case name, task, config
        case numParameters = "num_parameters"
    }
}

/// The encoder config fields an app uses (the manifest holds the full `EncoderConfig` dict).
public struct EncoderConfigInfo: Decodable, Sendable {
    public let vocabSize: Int
    public let hiddenSize: Int
    public let numHiddenLayers: Int?
    public let pooling: String?
    public let normalize: Bool?
    public let numLabels: Int?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case pooling, normalize
        case numLabels = "num_labels"
    }
}

/// A model input: `input_ids` or `attention_mask`, one shape per bucket.
public struct TensorSpec: Decodable, Sendable {
    public let name: String
    public let dtype: String
    public let shape: Shape
}

/// Either one fixed shape (`[1, H]`) or one shape per bucket (`{"32": [1, 32], ...}`).
public enum Shape: Decodable, Sendable, Equatable {
    case fixed([Int])
    case perBucket([String: [Int]])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let dims = try? c.decode([Int].self) {
            self = .fixed(dims)
        } else {
            self = .perBucket(try c.decode([String: [Int]].self))
        }
    }

    /// The shape for bucket `seqLen`.
    public func dims(seqLen: Int) -> [Int]? {
        switch self {
        case let .fixed(dims): return dims
        case let .perBucket(map): return map[String(seqLen)]
        }
    }
}

public struct OutputSpec: Decodable, Sendable {
    public let name: String
    public let dtype: String
    public let shape: Shape
    public let meaning: String?
    /// Embedding bundles: `mean` or `cls`.
    public let pooling: String?
    /// Embedding bundles: whether the model already L2-normalises its output.
    public let normalized: Bool?
}

public struct TokenizerSpec: Decodable, Sendable {
    public let type: String
    public let vocabFile: String
    public let tokenizerFile: String?
    public let lowercase: Bool
    public let stripAccents: Bool
    public let tokenizeChineseChars: Bool
    public let maxInputCharsPerWord: Int
    public let unkToken: String
    public let specialTokens: [String: Int]
    public let maxLength: Int

    enum CodingKeys: String, CodingKey {
        case type
        case vocabFile = "vocab_file"
        case tokenizerFile = "tokenizer_file"
        case lowercase
        case stripAccents = "strip_accents"
        case tokenizeChineseChars = "tokenize_chinese_chars"
        case maxInputCharsPerWord = "max_input_chars_per_word"
        case unkToken = "unk_token"
        case specialTokens = "special_tokens"
        case maxLength = "max_length"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        vocabFile = try c.decode(String.self, forKey: .vocabFile)
        tokenizerFile = try c.decodeIfPresent(String.self, forKey: .tokenizerFile)
        lowercase = try c.decodeIfPresent(Bool.self, forKey: .lowercase) ?? true
        // BertTokenizer: strip_accents null means "strip when lower-casing".
        stripAccents = try c.decodeIfPresent(Bool.self, forKey: .stripAccents) ?? lowercase
        tokenizeChineseChars = try c.decodeIfPresent(Bool.self, forKey: .tokenizeChineseChars) ?? true
        maxInputCharsPerWord = try c.decodeIfPresent(Int.self, forKey: .maxInputCharsPerWord) ?? 100
        unkToken = try c.decodeIfPresent(String.self, forKey: .unkToken) ?? "[UNK]"
        specialTokens = try c.decode([String: Int].self, forKey: .specialTokens)
        maxLength = try c.decode(Int.self, forKey: .maxLength)
    }
}

/// What the artifacts of one format/quant are held to: the manifest's `tolerances` entry (BUNDLE.md), read from
/// the bundle, never from a table of the app's. `minArgmaxAgreement` and `minInvarianceCosine` are nil in a format
/// 1.0/1.1 manifest, which did not record them: the checks that need them then fail, asking for a re-export.
public struct Tolerance: Decodable, Sendable, Equatable {
    public let maxAbsDiff: Double
    public let minCosine: Double
    /// MLM: the share of real positions, pooled over the cases, whose argmax must match golden's.
    public let minArgmaxAgreement: Double?
    /// Bucket invariance: the smallest cosine between one text's outputs at two buckets.
    public let minInvarianceCosine: Double?

    public init(maxAbsDiff: Double, minCosine: Double, minArgmaxAgreement: Double? = nil,
                minInvarianceCosine: Double? = nil) {
        self.maxAbsDiff = maxAbsDiff
        self.minCosine = minCosine
        self.minArgmaxAgreement = minArgmaxAgreement
        self.minInvarianceCosine = minInvarianceCosine
    }

    enum CodingKeys: String, CodingKey {
        case maxAbsDiff = "max_abs_diff"
        case minCosine = "min_cosine"
        case minArgmaxAgreement = "min_argmax_agreement"
        case minInvarianceCosine = "min_invariance_cosine"
    }
}

public struct GoldenReference: Decodable, Sendable {
    public let file: String
    public let sha256: String
}

/// One exported model file (or `.mlpackage` folder) of the bundle.
public struct Artifact: Decodable, Sendable, Identifiable, Hashable {
    public let file: String
    /// `executorch`, `tflite`, `coreml` or `onnx`.
    public let format: String
    public let backend: String
    /// `fp32`, `fp16` or `int8`.
    public let quant: String
    public let seqLen: Int
    /// Set for a dynamic-length artifact (manifest `min_seq_len`): it takes any length from this to `seqLen`.
    public let minSeqLen: Int?
    public let sizeBytes: Int?
    public let sha256: String
    public let parity: Parity?

    public var id: String { file }
    public var isDynamic: Bool { minSeqLen != nil }

    /// The input length for a text of `tokens` ids (at most `seqLen`): the bucket, or for a dynamic-length
    /// artifact the text's own length, unpadded (BUNDLE.md `min_seq_len`).
    public func inputLength(tokens: Int) -> Int {
        guard let minSeqLen else { return seqLen }
        return max(minSeqLen, min(tokens, seqLen))
    }

    enum CodingKeys: String, CodingKey {
        case file, format, backend, quant
        case seqLen = "seq_len"
        case minSeqLen = "min_seq_len"
        case sizeBytes = "size_bytes"
        case sha256, parity
    }

    public struct Parity: Decodable, Sendable, Hashable {
        public let status: String
        public let maxAbsDiff: Double?
        public let minCosine: Double?

        enum CodingKeys: String, CodingKey {
            case status
            case maxAbsDiff = "max_abs_diff"
            case minCosine = "min_cosine"
        }
    }
}

func readFile(_ url: URL) throws -> Data {
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw PocketBertError.missingFile(path: url.lastPathComponent)
    }
    do {
        return try Data(contentsOf: url)
    } catch {
        throw PocketBertError.missingFile(path: url.lastPathComponent)
    }
}

/// One line for a `DecodingError` (which key, at which path).
func describe(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
    switch error {
    case let .keyNotFound(key, context):
        let at = path(context)
        return "missing key \(at.isEmpty ? "" : at + ".")\(key.stringValue)"
    case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context):
        return "bad value at \(path(context)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
