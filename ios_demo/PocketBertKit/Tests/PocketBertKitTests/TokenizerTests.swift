import XCTest
@testable import PocketBertKit

/// The WordPiece tokenizer gives exactly the ids of pocketbert's Python tokenizer (HF `tokenizers`).
final class TokenizerTests: XCTestCase {
    /// The vocabulary of the Kotlin `TokenizerParityTest`, for rules that need no golden file.
    static let small = try! WordPieceTokenizer(
        tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "b", "!", "cafe", "中"])

    private func goldenCase(_ name: String) throws -> (ModelBundle, GoldenCase) {
        let bundle = try Fixture.bundle()
        let c = try XCTUnwrap(bundle.golden.findCase(named: name), "golden.json has no case \(name)")
        return (bundle, c)
    }

    private func assertMatchesGolden(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (bundle, c) = try goldenCase(name)
        let e = bundle.encode(c.text)
        XCTAssertEqual(e.ids, c.ids, "ids of case \(name)", file: file, line: line)
        XCTAssertEqual(e.seqLen, c.seqLen, "bucket of case \(name)", file: file, line: line)
        XCTAssertEqual(e.inputIds.map(Int.init), c.inputIds, file: file, line: line)
        XCTAssertEqual(e.attentionMask.map(Int.init), c.attentionMask, file: file, line: line)
    }

    // MARK: - Every case of the shared fixture (Kotlin: TokenizerParityTest.sameIdsAsHfTokenizers)

    func testEveryGoldenCaseGivesThePythonIds() throws {
        let bundle = try Fixture.bundle()
        XCTAssertGreaterThanOrEqual(bundle.golden.cases.count, 20)
        for c in bundle.golden.cases {
            XCTAssertEqual(bundle.encode(c.text).ids, c.ids, "golden case \(c.name): \(c.text.debugDescription)")
        }
    }

    func testEveryExtraTokenizerCaseGivesThePythonIds() throws {
        let bundle = try Fixture.bundle()
        let cases = try Fixture.tokenizerCases()
        XCTAssertGreaterThanOrEqual(cases.cases.count, 25)
        for c in cases.cases {
            let e = bundle.encode(c.text)
            XCTAssertEqual(e.ids, c.ids, "tokenizer case \(c.name): \(c.text.debugDescription) -> \(bundle.tokenizer.tokenize(c.text))")
            XCTAssertEqual(e.seqLen, c.seqLen, "bucket of \(c.name)")
        }
    }

    // MARK: - Named edge cases (the golden cases every implementation must pass)

    func testAccentsAreStrippedAndLowerCased() throws {
        try assertMatchesGolden("accents")
        XCTAssertEqual(Self.small.tokenIds("CAFÉ"), [11])
        XCTAssertEqual(Self.small.tokenIds("cafe\u{301}"), [11], "a decomposed accent strips the same way")
    }

    func testCJKIdeographsAreSplitIntoSingleCharacters() throws {
        try assertMatchesGolden("cjk")
        XCTAssertEqual(Self.small.tokenIds("中中"), [12, 12])
        XCTAssertEqual(Self.small.tokenIds("a中b"), [8, 12, 9])
    }

    func testEmojiBecomeUnknown() throws {
        try assertMatchesGolden("emoji")
        XCTAssertEqual(Self.small.tokenIds("a 😀 b"), [8, 1, 9])
    }

    func testControlCharactersAreDropped() throws {
        try assertMatchesGolden("control_chars")
        XCTAssertEqual(Self.small.tokenIds("a\u{0}\u{7}\u{200B}\u{FEFF}b"), Self.small.tokenIds("ab"))
        XCTAssertEqual(Self.small.tokenIds("a\tb\r\nb"), [8, 9, 9], "tab, CR and LF are whitespace, not dropped")
    }

    func testWordLongerThan100CharactersIsUnknown() throws {
        try assertMatchesGolden("long_word")
        XCTAssertEqual(Self.small.tokenIds(String(repeating: "a", count: 101)), [1])
        let cases = try Fixture.tokenizerCases()
        let bundle = try Fixture.bundle()
        let unk = bundle.tokenizer.unkId
        XCTAssertEqual(try XCTUnwrap(cases.findCase(named: "word_of_101_chars")).ids, [bundle.tokenizer.clsId, unk, bundle.tokenizer.sepId])
        XCTAssertFalse(bundle.encode(String(repeating: "a", count: 100)).ids.contains(unk), "100 characters is still a word")
    }

    func testEmptyAndWhitespaceOnlyGiveClsSep() throws {
        try assertMatchesGolden("empty")
        try assertMatchesGolden("whitespace")
        XCTAssertEqual(Self.small.encode(""), [2, 3])
        XCTAssertEqual(Self.small.encode(" \t\n\u{00A0}\u{3000} "), [2, 3])
    }

    func testPunctuationIsIsolated() throws {
        try assertMatchesGolden("punctuation")
        XCTAssertEqual(Self.small.tokenIds("a!b!!"), [8, 10, 9, 10, 10])
    }

    func testSpecialTokensInTextKeepTheirIds() throws {
        XCTAssertEqual(Self.small.tokenIds("a[MASK]b"), [8, 4, 9])
        XCTAssertEqual(Self.small.tokenIds("[mask]").first, 1, "matching is case-sensitive on the raw text")
    }

    func testTruncationKeepsSepLast() throws {
        try assertMatchesGolden("very_long")
        let (bundle, c) = try goldenCase("very_long")
        XCTAssertEqual(c.ids.count, bundle.manifest.maxSeqLen)
        XCTAssertEqual(bundle.encode(c.text).ids.last, bundle.tokenizer.sepId)
        XCTAssertTrue(bundle.encode(c.text).truncated)
    }

    // MARK: - Rules on a small vocabulary (Kotlin: greedyLongestMatchAndUnknownWords)

    func testGreedyLongestMatchAndUnknownWords() {
        XCTAssertEqual(Self.small.tokenIds("unaffable"), [5, 6, 7])
        XCTAssertEqual(Self.small.tokenIds("unaffablex"), [1], "an unmatched rest makes the whole word [UNK]")
        XCTAssertEqual(Self.small.tokenIds("CAFÉ!中"), [11, 10, 12])
        XCTAssertEqual(Self.small.tokenIds("a[MASK]b"), [8, 4, 9])
        XCTAssertEqual(Self.small.tokenIds(String(repeating: "a", count: 101)), [1])
        XCTAssertEqual(Self.small.tokenize("unaffable"), ["un", "##aff", "##able"])
    }

    // MARK: - Buckets (Kotlin: truncationKeepsSepAndPadsToSmallestBucket)

    func testTruncationKeepsSepAndPadsToSmallestBucket() {
        let e = Self.small.encode("a b a", buckets: [8, 4])
        XCTAssertEqual(e.ids, [2, 8, 9, 8, 3])
        XCTAssertEqual(e.seqLen, 8)
        XCTAssertEqual(e.inputIds, [2, 8, 9, 8, 3, 0, 0, 0])
        XCTAssertEqual(e.attentionMask, [1, 1, 1, 1, 1, 0, 0, 0])
        XCTAssertFalse(e.truncated)
        let t = Self.small.encode("a b a b a b a b a b", buckets: [4, 8])
        XCTAssertEqual(t.ids, [2, 8, 9, 8, 9, 8, 9, 3])
        XCTAssertEqual(t.seqLen, 8)
        XCTAssertTrue(t.truncated)
        XCTAssertEqual(Self.small.encode("", buckets: [4, 8]).seqLen, 4)
    }

    func testBucketChoiceOnTheFixture() throws {
        let bundle = try Fixture.bundle()
        let cases = try Fixture.tokenizerCases()
        for (name, bucket, count) in [("exactly_16_ids", 16, 16), ("17_ids_next_bucket", 32, 17),
                                      ("exactly_32_ids", 32, 32), ("33_ids_truncated", 32, 32)] {
            let c = try XCTUnwrap(cases.findCase(named: name))
            let e = bundle.encode(c.text)
            XCTAssertEqual(e.seqLen, bucket, name)
            XCTAssertEqual(e.ids.count, count, name)
            XCTAssertEqual(e.ids.last, bundle.tokenizer.sepId, name)
        }
        XCTAssertEqual(bundle.manifest.bucket(forTokenCount: 2), 16)
        XCTAssertEqual(bundle.manifest.bucket(forTokenCount: 17), 32)
        XCTAssertEqual(bundle.manifest.bucket(forTokenCount: 500), 32)
    }

    // MARK: - Vocabulary file

    func testVocabularyReadsLinesExactly() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vocab-\(UUID().uuidString).txt")
        try Data("[PAD]\r\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncafé\ncafe\u{301}\n".utf8).write(to: url)
        let tokens = try WordPieceTokenizer.readVocabulary(url)
        XCTAssertEqual(tokens.count, 7)
        XCTAssertEqual(tokens[0], "[PAD]", "a trailing CR is dropped")
        let tok = try WordPieceTokenizer(tokens: tokens, options: .init(lowercase: false, stripAccents: false))
        // Swift's String == treats these as equal; the tokenizer must not.
        XCTAssertEqual(tok.id(of: "café"), 5)
        XCTAssertEqual(tok.id(of: "cafe\u{301}"), 6)
    }

    func testVocabularyWithoutSpecialTokensIsRefused() {
        XCTAssertThrowsError(try WordPieceTokenizer(tokens: ["a", "b"])) { error in
            guard case PocketBertError.invalidVocabulary = error else { return XCTFail("\(error)") }
        }
    }
}
