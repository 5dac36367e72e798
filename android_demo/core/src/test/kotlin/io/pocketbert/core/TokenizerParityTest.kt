package io.pocketbert.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import org.junit.Test

class TokenizerParityTest {
    /** Every string of the cases file (JSON lines {text, ids} from HF `tokenizers`) must give the same ids. */
    @Test
    fun sameIdsAsHfTokenizers() {
        // Optional -Dpocketbert.tokenizerOptions={"lowercase": .., "strip_accents": .., "tokenize_chinese_chars": ..}
        val opts = System.getProperty("pocketbert.tokenizerOptions")?.let { Json.parse(it).asObj("options") } ?: emptyMap()
        val options = TokenizerOptions(
            lowercase = opts.bool("lowercase", true),
            stripAccents = opts.bool("strip_accents", opts.bool("lowercase", true)),
            tokenizeChineseChars = opts.bool("tokenize_chinese_chars", true),
        )
        val tokenizer = WordPieceTokenizer(WordPieceTokenizer.readVocab(TestInputs.file("vocab")), options)
        var n = 0
        TestInputs.file("tokenizerCases").bufferedReader(Charsets.UTF_8).useLines { lines ->
            for (line in lines) {
                if (line.isBlank()) continue
                val case = Json.parse(line).asObj("case")
                val text = case.str("text", "case")
                val want = case.list("ids", "case").ints("case")
                val got = tokenizer.encode(text, Int.MAX_VALUE)
                if (!got.contentEquals(want)) {
                    fail(
                        "MISMATCH on string #$n ${Json.write(text, 0)}\n  HF:     ${want.toList()}\n  Kotlin: ${got.toList()}\n" +
                            "  normalized: ${Json.write(tokenizer.normalize(text), 0)}\n" +
                            "  words: ${Json.write(tokenizer.preTokenize(tokenizer.normalize(text)), 0)}",
                    )
                }
                n++
            }
        }
        println("tokenizer parity: $n strings, 0 mismatches ($options)")
    }

    private val small = WordPieceTokenizer(
        listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "b", "!", "cafe", "中"),
    )

    @Test
    fun greedyLongestMatchAndUnknownWords() {
        assertArrayEquals(intArrayOf(5, 6, 7), small.tokenize("unaffable"))
        assertArrayEquals(intArrayOf(1), small.tokenize("unaffablex"))  // an unmatched rest makes the whole word [UNK]
        assertArrayEquals(intArrayOf(11, 10, 12), small.tokenize("CAFÉ!中"))
        assertArrayEquals(intArrayOf(8, 4, 9), small.tokenize("a[MASK]b"))
        assertArrayEquals(intArrayOf(1), small.tokenize("a".repeat(101)))
    }

    @Test
    fun truncationKeepsSepAndPadsToSmallestBucket() {
        val e = small.encodeForBuckets("a b a", listOf(8, 4))
        assertArrayEquals(intArrayOf(2, 8, 9, 8, 3), e.ids)
        assertEquals(8, e.seqLen)
        assertArrayEquals(intArrayOf(2, 8, 9, 8, 3, 0, 0, 0), e.inputIds)
        assertArrayEquals(intArrayOf(1, 1, 1, 1, 1, 0, 0, 0), e.attentionMask)
        val t = small.encodeForBuckets("a b a b a b a b a b", listOf(4, 8))
        assertArrayEquals(intArrayOf(2, 8, 9, 8, 9, 8, 9, 3), t.ids)
        assertEquals(8, t.seqLen)
        assertEquals(4, small.encodeForBuckets("", listOf(4, 8)).seqLen)
    }
}
