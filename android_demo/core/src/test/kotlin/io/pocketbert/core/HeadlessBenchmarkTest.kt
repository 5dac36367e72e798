package io.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.io.RandomAccessFile

/**
 * The headless benchmark writes results in the runtime_bench schema (validated by the Python test) for the
 * exported bundle, and a failing result for each kind of bad bundle. Results go under pocketbert.outDir/<case>/.
 */
class HeadlessBenchmarkTest {
    private val config = BenchmarkConfig(runs = 20, warmup = 2, threads = 1, formats = setOf("onnx"))

    private fun bench(dir: File, case: String): Map<String, Any?> =
        HeadlessBenchmark.run(
            dir, File(File(TestInputs.outDir, case), HeadlessBenchmark.RESULTS_FILE), config, DeviceInfo.host(),
            ReplayRunner.factory(TestInputs.file("replay")),
        )

    private fun copyBundle(name: String): File {
        val src = TestInputs.file("bundle")
        val dst = File(File(TestInputs.outDir, "bundles"), name)
        dst.deleteRecursively()
        dst.mkdirs()
        src.listFiles()!!.forEach { it.copyTo(File(dst, it.name)) }
        return dst
    }

    private fun expectBundleError(dir: File, vararg words: String): String {
        val msg = try {
            Bundle.open(dir).artifacts.forEach { Bundle.open(dir).verifyArtifact(it) }
            fail("expected a BundleError") as Nothing
        } catch (e: BundleError) {
            e.message!!
        }
        for (w in words) assertTrue("'$w' not in: $msg", msg.contains(w))
        assertEquals("one line", 1, msg.lines().size)
        return msg
    }

    @Test
    fun goodBundle() {
        val r = bench(TestInputs.file("bundle"), "good")
        assertEquals(true, r["complete"])
        @Suppress("UNCHECKED_CAST")
        val rows = r["rows"] as List<Map<String, Any?>>
        assertTrue(rows.isNotEmpty())
        for (row in rows) assertEquals("${row["name"]}: ${row["error"]}", "ok", row["status"])
    }

    @Test
    fun missingManifest() {
        val dir = copyBundle("nomanifest")
        File(dir, "manifest.json").delete()
        val msg = expectBundleError(dir, "has no manifest.json")
        val r = bench(dir, "missing_manifest")
        assertEquals(false, r["complete"])
        assertEquals(msg, (r["extra"] as Map<*, *>)["error"])
    }

    @Test
    fun newerSchemaVersion() {
        val dir = copyBundle("newer")
        val mf = File(dir, "manifest.json")
        mf.writeText(mf.readText().replaceFirst(Regex("\"schema_version\": \"1\\.[0-9]+\""), "\"schema_version\": \"2.0\""))
        expectBundleError(dir, "schema_version 2.0 is not supported", "update the app")
        assertEquals(false, bench(dir, "newer_schema")["complete"])
    }

    @Test
    fun missingArtifactFile() {
        val dir = copyBundle("noartifact")
        val victim = Bundle.open(dir).artifacts.first().file
        File(dir, victim).delete()
        expectBundleError(dir, victim, "is missing")
        assertEquals(false, bench(dir, "missing_artifact")["complete"])
    }

    @Test
    fun sha256Mismatch() {
        val dir = copyBundle("badsha")
        val victim = Bundle.open(dir).artifacts.first().file
        RandomAccessFile(File(dir, victim), "rw").use { f ->
            f.seek(f.length() / 2)
            val b = f.read()
            f.seek(f.length() / 2)
            f.write(b xor 0xFF)
        }
        expectBundleError(dir, victim, "sha256", "does not match the manifest")
        val r = bench(dir, "sha256_mismatch")
        @Suppress("UNCHECKED_CAST")
        val rows = r["rows"] as List<Map<String, Any?>>
        val row = rows.first { it["file"] == victim }
        assertEquals("failed", row["status"])
        assertTrue(row["error"].toString().contains("sha256"))
        assertEquals("failed", (r["extra"] as Map<*, *>)["status"])
    }

    /** Statistics of the samples file, written for the Python test to compare with runtime_bench.stats. */
    @Test
    fun latencyStatistics() {
        val samples = (Json.parse(TestInputs.file("statsSamples").readText()) as List<*>).map { (it as Number).toDouble() }
        File(TestInputs.outDir, "stats.json").writeText(Json.write(LatencyStats.summarize(samples)))
    }
}
