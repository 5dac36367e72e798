import Foundation

/// Text -> token ids exactly as HF `BertTokenizer` / the `tokenizers` BERT pipeline that
/// `pocketbert export` ships (BertNormalizer -> BertPreTokenizer -> WordPiece -> `[CLS] $A [SEP]`).
///
/// Everything works on Unicode scalars, never on Swift `Character`s or `String` equality: Swift
/// compares strings by canonical equivalence ("é" == "e\u{301}") and treats "\r\n" as one
/// character, while the reference compares code points. The steps and their order follow the Rust
/// `tokenizers` crate, which produced the golden ids:
/// 1. special tokens (`[CLS]`, `[MASK]`, ...) are matched in the raw text first (leftmost-longest)
///    and map straight to their ids;
/// 2. clean text: drop U+0000, U+FFFD and "other" characters (Cc, Cf, Co, Cs; not Cn) except
///    tab/newline/CR, map whitespace to a space;
/// 3. put spaces around CJK ideographs;
/// 4. strip accents (NFD, then drop nonspacing marks, Mn), when enabled;
/// 5. lower-case scalar by scalar (full Unicode mapping, no context: "Σ" -> "σ");
/// 6. split on whitespace, isolate each punctuation scalar (ASCII punctuation or Unicode P*);
///
/// The character classes of steps 2, 4, 5 and 6 come from `BertUnicodeTables` (generated from HF
/// `tokenizers` by android_demo/tools/gen_unicode_tables.py, the same tables as the Kotlin core), not from
/// `Unicode.Scalar.Properties`, whose Unicode version is the Swift runtime's and differs from HF's; only
/// the NFD decomposition of step 4 uses Foundation.
/// 7. greedy longest-match-first WordPiece with "##" continuations; a word longer than
///    `maxInputCharsPerWord` scalars, or one that cannot be covered, becomes `[UNK]`.
public struct WordPieceTokenizer: Sendable {
    public struct Options: Sendable, Equatable {
        public var lowercase: Bool
        public var stripAccents: Bool
        public var tokenizeChineseChars: Bool
        public var maxInputCharsPerWord: Int
        public var unkToken: String
        public var clsToken: String
        public var sepToken: String
        public var padToken: String
        /// Tokens matched verbatim in the input before normalization.
        public var specialTokens: [String]

        public init(lowercase: Bool = true, stripAccents: Bool? = nil, tokenizeChineseChars: Bool = true,
                    maxInputCharsPerWord: Int = 100, unkToken: String = "[UNK]", clsToken: String = "[CLS]",
                    sepToken: String = "[SEP]", padToken: String = "[PAD]",
                    specialTokens: [String] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) {
            self.lowercase = lowercase
            // BertTokenizer: strip_accents=None means "strip when lower-casing".
            self.stripAccents = stripAccents ?? lowercase
            self.tokenizeChineseChars = tokenizeChineseChars
            self.maxInputCharsPerWord = maxInputCharsPerWord
            self.unkToken = unkToken
            self.clsToken = clsToken
            self.sepToken = sepToken
            self.padToken = padToken
            self.specialTokens = specialTokens
        }

        /// The options a bundle manifest states.
        public init(_ spec: TokenizerSpec) {
            self.init(lowercase: spec.lowercase, stripAccents: spec.stripAccents,
                      tokenizeChineseChars: spec.tokenizeChineseChars,
                      maxInputCharsPerWord: spec.maxInputCharsPerWord, unkToken: spec.unkToken,
                      specialTokens: spec.specialTokens.sorted { $0.value < $1.value }.map(\.key))
        }
    }

    public typealias Word = [Unicode.Scalar]

    public let options: Options
    /// Tokens in id order (line number of vocab.txt = id).
    public let tokens: [String]
    private let vocab: [Word: Int]
    private let specials: [(scalars: Word, id: Int)]  // longest first, for leftmost-longest matching
    public let unkId: Int
    public let clsId: Int
    public let sepId: Int
    public let padId: Int
    private static let continuingPrefix: Word = ["#", "#"]

    /// - Throws: `PocketBertError.invalidVocabulary` when the vocabulary lacks a special token.
    public init(tokens: [String], options: Options = Options()) throws {
        guard !tokens.isEmpty else {
            throw PocketBertError.invalidVocabulary("the vocabulary is empty; vocab.txt needs one token per line")
        }
        self.options = options
        self.tokens = tokens
        var vocab: [Word: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            vocab[Word(token.unicodeScalars)] = id  // a repeated token keeps its last id, as the reference
        }
        self.vocab = vocab
        func id(_ token: String) throws -> Int {
            guard let id = vocab[Word(token.unicodeScalars)] else {
                throw PocketBertError.invalidVocabulary(
                    "the vocabulary lacks the special token \(token); use a BERT WordPiece vocab.txt")
            }
            return id
        }
        unkId = try id(options.unkToken)
        clsId = try id(options.clsToken)
        sepId = try id(options.sepToken)
        padId = try id(options.padToken)
        var specials: [(scalars: Word, id: Int)] = []
        for token in options.specialTokens {
            let tokenId = try id(token)
            specials.append((scalars: Word(token.unicodeScalars), id: tokenId))
        }
        self.specials = specials.sorted { $0.scalars.count > $1.scalars.count }
    }

    /// The tokenizer a bundle describes: its `vocab.txt` and the manifest's tokenizer options.
    public init(vocabURL: URL, spec: TokenizerSpec) throws {
        try self.init(tokens: try Self.readVocabulary(vocabURL), options: Options(spec))
        for (token, expected) in spec.specialTokens where vocab[Word(token.unicodeScalars)] != expected {
            throw PocketBertError.invalidVocabulary(
                "\(spec.vocabFile): \(token) is not id \(expected) as the manifest states; copy the bundle again")
        }
    }

    /// vocab.txt -> tokens in id order. Lines split on "\n" only (a trailing "\r" is dropped), as
    /// `pocketbert.pipeline.tokenizer.read_vocab` does.
    public static func readVocabulary(_ url: URL) throws -> [String] {
        let data = try readFile(url)
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line -> String in
            let bytes = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            return String(decoding: bytes, as: UTF8.self)
        }
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    public var vocabularySize: Int { tokens.count }

    /// The id of `token`, compared scalar by scalar.
    public func id(of token: String) -> Int? { vocab[Word(token.unicodeScalars)] }

    // MARK: - Encoding

    /// WordPiece ids of `text` without `[CLS]` / `[SEP]` and without truncation.
    public func tokenIds(_ text: String) -> [Int] {
        var ids: [Int] = []
        for segment in splitOnSpecialTokens(Word(text.unicodeScalars)) {
            switch segment {
            case let .special(id):
                ids.append(id)
            case let .text(scalars):
                for word in preTokenize(normalize(scalars)) {
                    ids.append(contentsOf: wordPiece(word))
                }
            }
        }
        return ids
    }

    /// The word pieces of `text` as strings (for display and tests).
    public func tokenize(_ text: String) -> [String] {
        tokenIds(text).map { tokens[$0] }
    }

    /// `[CLS] ids [SEP]`, truncated to `maxLength` keeping `[SEP]` last (HF truncation), unpadded.
    public func encode(_ text: String, maxLength: Int? = nil) -> [Int] {
        var ids = [clsId] + tokenIds(text) + [sepId]
        if let maxLength, ids.count > maxLength, maxLength >= 1 {
            ids = Array(ids.prefix(maxLength - 1)) + [sepId]
        }
        return ids
    }

    /// What the deployed model receives for `text`: ids truncated to the largest bucket, then padded
    /// with `[PAD]` / mask 0 to the smallest bucket that holds them.
    public func encode(_ text: String, buckets: [Int]) -> EncodedText {
        let sorted = buckets.sorted()
        let largest = sorted.last ?? Int.max
        var ids = [clsId] + tokenIds(text) + [sepId]
        let truncated = ids.count > largest
        if truncated { ids = Array(ids.prefix(largest - 1)) + [sepId] }
        let seqLen = sorted.first(where: { $0 >= ids.count }) ?? ids.count
        return EncodedText(ids: ids, seqLen: seqLen, padId: padId, truncated: truncated)
    }

    // MARK: - Steps

    enum Segment: Equatable {
        case special(Int)
        case text(ArraySlice<Unicode.Scalar>)
    }

    /// Splits the raw text around verbatim special tokens (leftmost-longest match).
    func splitOnSpecialTokens(_ text: Word) -> [Segment] {
        var segments: [Segment] = []
        var start = 0
        var i = 0
        while i < text.count {
            var matched: (length: Int, id: Int)?
            for special in specials where special.scalars.count <= text.count - i {
                if text[i..<(i + special.scalars.count)].elementsEqual(special.scalars) {
                    matched = (special.scalars.count, special.id)
                    break  // specials are sorted longest first
                }
            }
            if let matched {
                if start < i { segments.append(.text(text[start..<i])) }
                segments.append(.special(matched.id))
                i += matched.length
                start = i
            } else {
                i += 1
            }
        }
        if start < text.count { segments.append(.text(text[start..<text.count])) }
        return segments
    }

    /// BertNormalizer: clean text, space out CJK, strip accents, lower-case (in that order).
    func normalize<S: Sequence>(_ text: S) -> Word where S.Element == Unicode.Scalar {
        var out: Word = []
        for scalar in text {
            if Self.inRanges(BertUnicodeTables.removed, scalar.value) { continue }
            let s: Unicode.Scalar = Self.inRanges(BertUnicodeTables.spaces, scalar.value) ? " " : scalar
            if options.tokenizeChineseChars && Self.isChineseChar(s) {
                out.append(" ")
                out.append(s)
                out.append(" ")
            } else {
                out.append(s)
            }
        }
        if options.stripAccents {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: out)
            out = Word(String(view).decomposedStringWithCanonicalMapping.unicodeScalars)
                .filter { !Self.inRanges(BertUnicodeTables.marks, $0.value) }
        }
        if options.lowercase {
            // Per scalar, as Rust's char::to_lowercase: no context-dependent rules (final sigma stays σ).
            out = out.flatMap { scalar -> Word in
                if let multi = BertUnicodeTables.lowerMulti[scalar.value] {
                    return multi.compactMap(Unicode.Scalar.init)
                }
                return [Self.lower(scalar)]
            }
        }
        return out
    }

    /// BertPreTokenizer: split on whitespace (dropped) and around each punctuation scalar (kept).
    func preTokenize(_ text: Word) -> [Word] {
        var words: [Word] = []
        var current: Word = []
        for scalar in text {
            if Self.isWhitespace(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
            } else if Self.isPunctuation(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([scalar])
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Greedy longest-match-first WordPiece over one word.
    func wordPiece(_ word: Word) -> [Int] {
        if word.count > options.maxInputCharsPerWord { return [unkId] }
        var ids: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int?
            while start < end {
                var candidate: Word = start > 0 ? Self.continuingPrefix : []
                candidate.append(contentsOf: word[start..<end])
                if let id = vocab[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [unkId] }
            ids.append(id)
            start = end
        }
        return ids
    }

    // MARK: - Character classes (as the Rust `tokenizers` BERT normalizer and pre-tokenizer)

    /// Unicode White_Space (Rust's char::is_whitespace), which BertPreTokenizer splits on.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// ASCII punctuation (`$+<=>^`|~` included, as BertTokenizer) and Unicode P*, as HF measures them.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        inRanges(BertUnicodeTables.punct, s.value)
    }

    /// The CJK Unified Ideographs blocks HF `tokenizers` spaces out (its ranges, not Python BERT's;
    /// not Hiragana, Katakana or Hangul).
    static func isChineseChar(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Whether `value` falls in one of the sorted inclusive [first, last] pairs of `table`.
    static func inRanges(_ table: [UInt32], _ value: UInt32) -> Bool {
        var lo = 0
        var hi = table.count / 2 - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if value < table[2 * mid] {
                hi = mid - 1
            } else if value > table[2 * mid + 1] {
                lo = mid + 1
            } else {
                return true
            }
        }
        return false
    }

    /// The single-scalar lower-case mapping of `s` (itself when it has none).
    static func lower(_ s: Unicode.Scalar) -> Unicode.Scalar {
        let table = BertUnicodeTables.lower
        var lo = 0
        var hi = table.count / 2 - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let key = table[2 * mid]
            if s.value < key {
                hi = mid - 1
            } else if s.value > key {
                lo = mid + 1
            } else {
                return Unicode.Scalar(table[2 * mid + 1]) ?? s
            }
        }
        return s
    }
}

/// One text as the model receives it.
public struct EncodedText: Sendable, Equatable {
    /// `[CLS] ... [SEP]` after truncation, without padding.
    public let ids: [Int]
    /// The input length: the bucket (the smallest `seq_len` that holds `ids`), or, from `ModelBundle.call` for
    /// a dynamic-length artifact, the ids' own length.
    public let seqLen: Int
    /// `ids` padded with `[PAD]` to `seqLen`.
    public let inputIds: [Int32]
    /// 1 for each id, 0 for padding.
    public let attentionMask: [Int32]
    /// Whether the text had more tokens than the largest bucket.
    public let truncated: Bool

    public init(ids: [Int], seqLen: Int, padId: Int, truncated: Bool) {
        self.ids = ids
        self.seqLen = seqLen
        let padding = max(0, seqLen - ids.count)
        inputIds = ids.map { Int32($0) } + Array(repeating: Int32(padId), count: padding)
        attentionMask = Array(repeating: 1, count: ids.count) + Array(repeating: 0, count: padding)
        self.truncated = truncated
    }
}
