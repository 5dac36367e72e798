package io.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * Read-outs of the self-test, and thresholds taken from the tolerance the manifest gives. The golden self-test on an
 * exported bundle: tests/apps/test_conformance.py (SelfTest.bundle).
 */
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

    private fun fixed(out: FloatArray) = object : ModelRunner {
        override fun run(inputIds: IntArray, attentionMask: IntArray) = out
    }

    @Test
    fun mlmAgreementIsTheManifestsThreshold() {
        // Two real tokens and one pad over a vocabulary of 3: golden argmax 2, 0; the output's is 2, 1 (1 of 2 agree).
        val case = GoldenCase("mlm", "x", intArrayOf(2, 3), 3, intArrayOf(2, 3, 0), intArrayOf(1, 1, 0), null, intArrayOf(2, 0, 1))
        val golden = Golden("logits", listOf(3), listOf(case))
        val a = Artifact("m.pte", "executorch", "xnnpack", "int8", 3, 1L, "0".repeat(64))
        val runner = fixed(floatArrayOf(0f, 1f, 5f, 0f, 9f, 0f, 0f, 0f, 0f))
        assertFalse(SelfTest.artifact(a, runner, golden, Tolerance(0.25, 0.99, minArgmaxAgreement = 0.8))[0].passed)
        assertTrue(SelfTest.artifact(a, runner, golden, Tolerance(0.25, 0.99, minArgmaxAgreement = 0.5))[0].passed)
        val old = SelfTest.artifact(a, runner, golden, Tolerance(0.25, 0.99))[0]  // a format 1.1 manifest
        assertFalse(old.passed)
        assertTrue(old.detail, old.detail.contains("min_argmax_agreement") && old.detail.contains("re-export"))
    }

    @Test
    fun bucketInvarianceIsTheManifestsThreshold() {
        val golden = Golden("embedding", listOf(4, 8), listOf(
            GoldenCase("x", "x", intArrayOf(2, 3), 4, intArrayOf(2, 3, 0, 0), intArrayOf(1, 1, 0, 0), floatArrayOf(1f, 0f), null),
        ))
        val small = Artifact("s4.onnx", "onnx", "onnxruntime", "int8", 4, 1L, "0".repeat(64))
        val large = Artifact("s8.onnx", "onnx", "onnxruntime", "int8", 8, 1L, "1".repeat(64))
        val runs = mapOf(small to mapOf("x" to floatArrayOf(1f, 0f)), large to mapOf("x" to floatArrayOf(1f, 0.1f)))  // cosine 0.995
        fun verdicts(t: Tolerance) = SelfTest.invariance(golden, runs, mapOf("onnx/int8" to t)).map { it.passed }
        assertEquals(listOf(true, true), verdicts(Tolerance(0.25, 0.99, minInvarianceCosine = 0.99)))
        assertEquals(listOf(false, false), verdicts(Tolerance(0.25, 0.99, minInvarianceCosine = 0.999)))
        val old = SelfTest.invariance(golden, runs, mapOf("onnx/int8" to Tolerance(0.25, 0.99)))
        assertTrue(old.all { !it.passed && it.detail.contains("min_invariance_cosine") && it.detail.contains("re-export") })
    }
}
