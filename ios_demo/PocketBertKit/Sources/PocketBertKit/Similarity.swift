import Foundation

/// Sentence-embedding post-processing: cosine similarity and top-k search.
public enum Similarity {
    /// Cosine similarity, computed in Double; 0 when one vector is all zeros, 1 when both are (as
    /// `pocketbert.bundle.parity.cosine` and the Kotlin core).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "cosine of vectors of different lengths \(a.count) and \(b.count)")
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices {
            let x = Double(a[i]), y = Double(b[i])
            dot += x * y
            na += x * x
            nb += y * y
        }
        guard na > 0, nb > 0 else { return na == nb ? 1 : 0 }
        return Float(dot / (na.squareRoot() * nb.squareRoot()))
    }

    /// `v / ||v||` (unchanged when all zeros).
    public static func l2Normalized(_ v: [Float]) -> [Float] {
        let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        guard norm > 0 else { return v }
        return v.map { Float(Double($0) / norm) }
    }

    public struct Match: Sendable, Equatable {
        public let index: Int
        public let score: Float
    }

    /// The `k` candidates most similar to `query`, best first; ties keep the lower index first.
    public static func topK(query: [Float], candidates: [[Float]], k: Int) -> [Match] {
        let scored = candidates.enumerated().map { Match(index: $0.offset, score: cosine(query, $0.element)) }
        return Array(scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }.prefix(max(0, k)))
    }
}

/// Classification post-processing: softmax and label names.
public enum Classifier {
    /// Softmax over logits, shifted by the maximum so large logits do not overflow.
    public static func softmax(_ logits: [Float]) -> [Float] {
        guard let maxLogit = logits.max() else { return [] }
        let exps = logits.map { Foundation.exp(Double($0 - maxLogit)) }
        let sum = exps.reduce(0, +)
        return exps.map { Float($0 / sum) }
    }

    public struct Prediction: Sendable, Equatable {
        public let label: String
        public let probability: Float
    }

    /// Label probabilities, most likely first. Labels beyond the manifest's list are named `LABEL_i`.
    public static func predictions(logits: [Float], labels: [String]) -> [Prediction] {
        softmax(logits).enumerated()
            .map { Prediction(label: $0.offset < labels.count ? labels[$0.offset] : "LABEL_\($0.offset)", probability: $0.element) }
            .sorted { $0.probability > $1.probability }
    }
}

/// MLM post-processing: the most likely tokens at a position of `(T, V)` logits.
public enum MaskedLM {
    public static func argmax<C: Collection>(_ values: C) -> Int where C.Element == Float, C.Index == Int {
        var best = values.startIndex
        for i in values.indices where values[i] > values[best] { best = i }
        return best - values.startIndex
    }

    /// For each `[MASK]` among `ids` (one encoded text), the `k` most likely tokens there, best first: what
    /// the app shows for an MLM bundle. `logits` is the model output, (seqLen, V) flattened row-major.
    public static func maskPredictions(ids: [Int], logits: [Float], tokenizer: WordPieceTokenizer, k: Int = 3)
        -> [[(token: String, probability: Float)]] {
        guard let maskId = tokenizer.id(of: "[MASK]") else { return [] }
        let vocab = tokenizer.vocabularySize
        return ids.enumerated().filter { $0.element == maskId && ($0.offset + 1) * vocab <= logits.count }.map { p in
            topTokens(logits: logits, vocabularySize: vocab, position: p.offset, k: k)
                .map { (token: tokenizer.tokens[$0.id], probability: $0.probability) }
        }
    }

    /// The `k` most likely token ids at `position`, with their softmax probabilities.
    public static func topTokens(logits: [Float], vocabularySize: Int, position: Int, k: Int) -> [(id: Int, probability: Float)] {
        let row = Array(logits[(position * vocabularySize)..<((position + 1) * vocabularySize)])
        let probs = Classifier.softmax(row)
        return probs.enumerated().sorted { $0.element > $1.element }.prefix(k).map { (id: $0.offset, probability: $0.element) }
    }
}
