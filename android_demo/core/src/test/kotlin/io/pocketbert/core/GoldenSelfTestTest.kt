package io.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/** The golden self-test on a bundle written by `pocketbert export` in the same test run. */
class GoldenSelfTestTest {
    private fun check(dir: File): Pair<List<CheckResult>, List<CheckResult>> {
        val bundle = Bundle.open(dir)
        val golden = bundle.golden()
        val tok = SelfTest.tokenizer(bundle.tokenizer(), golden, bundle.seqLens)
        val factory = ReplayRunner.factory(TestInputs.file("replay"))
        val outs = bundle.artifacts.flatMap { a ->
            factory.load(bundle.artifactFile(a), a, 1).use { SelfTest.artifact(a, it, golden, bundle.tolerance(a), bundle.padId) }
        }
        return tok to outs
    }

    @Test
    fun passesOnTheExportedBundle() {
        val (tok, outs) = check(TestInputs.file("bundle"))
        assertTrue("golden file has 20+ cases", tok.size >= 20)
        assertEquals("tokenizer failures: ${tok.filter { !it.passed }}", 0, tok.count { !it.passed })
        assertTrue(outs.isNotEmpty())
        assertEquals("artifact failures: ${outs.filter { !it.passed }}", 0, outs.count { !it.passed })
        println("golden self-test: ${tok.size} tokenizer cases, ${outs.size} artifact checks passed")
    }

    @Test
    fun failsWhenAGoldenIdIsAltered() {
        val (tok, _) = check(TestInputs.file("badIdsBundle"))
        val failed = tok.filter { !it.passed }
        assertEquals(listOf("plain"), failed.map { it.case })
        assertTrue(failed[0].detail, failed[0].detail.startsWith("ids differ at position"))
    }

    @Test
    fun failsWhenAGoldenOutputIsAltered() {
        val (tok, outs) = check(TestInputs.file("badOutputBundle"))
        assertFalse(tok.any { !it.passed })
        val failed = outs.filter { !it.passed }
        assertEquals("both buckets' artifacts check the altered case", 2, failed.size)
        assertTrue(failed.all { it.case == "plain" })
        assertTrue(failed[0].detail, failed[0].detail.startsWith("max_abs_diff"))
    }

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
