import XCTest
@testable import PocketBertKit

/// Similarity, top-k, softmax, labels and MLM read-outs (Kotlin: GoldenSelfTestTest.similarityAndClassifierReadouts).
final class PostProcessingTests: XCTestCase {
    func testSimilarityAndClassifierReadouts() {
        let a: [Float] = [1, 0]
        XCTAssertEqual(Similarity.cosine(a, [2, 0]), 1, accuracy: 1e-7)
        XCTAssertEqual(Similarity.topK(query: a, candidates: [[0, 1], [1, 0.1]], k: 2).map(\.index), [1, 0])
        let p = Classifier.predictions(logits: [0, 2], labels: ["negative", "positive"])
        XCTAssertEqual(p[0].label, "positive")
        XCTAssertEqual(Double(p[0].probability), 1 / (1 + exp(-2.0)), accuracy: 1e-6)
    }

    func testCosineEdgeCases() {
        XCTAssertEqual(Similarity.cosine([1, 2, 3], [-1, -2, -3]), -1, accuracy: 1e-6)
        XCTAssertEqual(Similarity.cosine([1, 0], [0, 1]), 0, accuracy: 1e-7)
        XCTAssertEqual(Similarity.cosine([0, 0], [1, 1]), 0, "a zero vector has no direction")
        let unit = Similarity.l2Normalized([3, 4])
        XCTAssertEqual(unit[0], 0.6, accuracy: 1e-7)
        XCTAssertEqual(unit[1], 0.8, accuracy: 1e-7)
    }

    func testTopKOrdersByScoreThenIndexAndClampsK() {
        let matches = Similarity.topK(query: [1, 0], candidates: [[1, 1], [1, 0], [1, 1], [-1, 0]], k: 10)
        XCTAssertEqual(matches.map(\.index), [1, 0, 2, 3])
        XCTAssertEqual(Similarity.topK(query: [1, 0], candidates: [[1, 0]], k: 0), [])
    }

    func testSoftmaxIsStableAndSumsToOne() {
        let p = Classifier.softmax([1000, 1001, 999])
        XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertTrue(p.allSatisfy { $0.isFinite })
        XCTAssertGreaterThan(p[1], p[0])
        XCTAssertEqual(Classifier.softmax([]), [])
    }

    func testLabelsBeyondTheManifestListAreNamed() {
        let p = Classifier.predictions(logits: [0, 0, 5], labels: ["a", "b"])
        XCTAssertEqual(p.map(\.label), ["LABEL_2", "a", "b"])
    }

    func testMaskedLMTopTokens() {
        // T = 2 positions, V = 3 tokens.
        let logits: [Float] = [0, 1, 2, 5, 0, 0]
        XCTAssertEqual(MaskedLM.topTokens(logits: logits, vocabularySize: 3, position: 1, k: 1).map { $0.id }, [0])
        XCTAssertEqual(MaskedLM.topTokens(logits: logits, vocabularySize: 3, position: 0, k: 2).map { $0.id }, [2, 1])
        XCTAssertEqual(MaskedLM.argmax(logits[3..<6]), 0)
    }

    /// Embeddings of golden cases: similar texts score higher than unrelated ones only with a trained
    /// model, so here only the read-out shape is checked on the fixture's (random) expected outputs.
    func testFixtureEmbeddingsHaveTheManifestWidth() throws {
        let bundle = try Fixture.bundle()
        let hidden = bundle.manifest.model.config.hiddenSize
        for c in bundle.golden.cases {
            XCTAssertEqual(c.expected?.count, hidden, c.name)
        }
        let vectors = bundle.golden.cases.compactMap(\.expected)
        let top = Similarity.topK(query: vectors[0], candidates: vectors, k: 1)
        XCTAssertEqual(top.first?.index, 0, "a vector is most similar to itself")
        XCTAssertEqual(top.first?.score ?? 0, 1, accuracy: 1e-5)
    }

    func testMaskPredictionsAtEachMask() throws {
        let tok = try WordPieceTokenizer(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
        let ids = tok.encode("a [MASK] b [MASK]")  // [CLS] a [MASK] b [MASK] [SEP]
        var logits = [Float](repeating: 0, count: ids.count * 7)
        logits[2 * 7 + 6] = 5  // position 2: "b"
        logits[4 * 7 + 5] = 5  // position 4: "a"
        let guesses = MaskedLM.maskPredictions(ids: ids, logits: logits, tokenizer: tok, k: 1)
        XCTAssertEqual(guesses.map { $0.map(\.token) }, [["b"], ["a"]])
        XCTAssertTrue(MaskedLM.maskPredictions(ids: tok.encode("a b"), logits: logits, tokenizer: tok).isEmpty)
    }
}
