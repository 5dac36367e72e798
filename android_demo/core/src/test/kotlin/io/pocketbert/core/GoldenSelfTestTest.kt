package io.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** Read-outs of the self-test. The golden self-test on an exported bundle: tests/apps/test_conformance.py (SelfTest.bundle). */
class GoldenSelfTestTest {
    @Test
    fun similarityAndClassifierReadouts() {
        val a = floatArrayOf(1f, 0f)
        assertEquals(1.0, Similarity.cosine(a, floatArrayOf(2f, 0f)), 1e-12)
        assertEquals(listOf(1, 0), Similarity.topK(a, listOf(floatArrayOf(0f, 1f), floatArrayOf(1f, 0.1f)), 2).map { it.first })
        val p = Similarity.classify(floatArrayOf(0f, 2f), listOf("negative", "positive"))
        assertEquals("positive", p[0].first)
        assertEquals(1 / (1 + Math.exp(-2.0)), p[0].second, 1e-12)
    }
}
