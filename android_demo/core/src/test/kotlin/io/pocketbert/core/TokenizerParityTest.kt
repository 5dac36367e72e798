package io.pocketbert.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

/** Tokenizer rules on a small vocabulary. Parity with HF `tokenizers` on the full corpus: tests/apps/test_conformance.py. */
class TokenizerParityTest {
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
