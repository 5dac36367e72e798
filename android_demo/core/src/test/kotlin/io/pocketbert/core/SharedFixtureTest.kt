package io.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

/**
 * tests/fixtures/tiny_bundle: the golden fixture the Python, Kotlin and Swift tokenizers are all held to.
 * It keeps manifest, golden and vocab but not the model files, so it is also a "missing artifact" bundle.
 */
class SharedFixtureTest {
    private val dir = TestInputs.file("fixture")
    private val manifest = Json.parse(File(dir, "manifest.json").readText()).asObj("manifest")
    private val seqLens = manifest.list("seq_lens", "manifest").ints("seq_lens").toList()
    private val tokenizer = WordPieceTokenizer(
        WordPieceTokenizer.readVocab(File(dir, "vocab.txt")), Bundle.tokenizerOptions(manifest),
    )

    private fun assertAllPass(file: String) {
        val results = SelfTest.tokenizer(tokenizer, Golden.read(File(dir, file)), seqLens)
        assertTrue(results.isNotEmpty())
        results.firstOrNull { !it.passed }?.let { fail("$file case ${it.case}: ${it.detail}") }
        println("shared fixture $file: ${results.size} cases passed")
    }

    @Test
    fun goldenIds() = assertAllPass("golden.json")

    @Test
    fun tokenizerEdgeCases() = assertAllPass("tokenizer_cases.json")

    @Test
    fun bundleWithoutItsModelFilesIsRefused() {
        val msg = try {
            Bundle.open(dir)
            fail("expected a BundleError") as Nothing
        } catch (e: BundleError) {
            e.message!!
        }
        assertTrue(msg, msg.contains("is missing") && msg.contains(".onnx"))
        assertEquals(1, msg.lines().size)
    }
}
