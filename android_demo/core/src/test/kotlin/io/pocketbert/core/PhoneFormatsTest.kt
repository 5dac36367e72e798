package io.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Test
import java.io.File

/** ExecuTorch and LiteRT artifacts (the formats the app runs) with outputs recorded from their Python runtimes. */
class PhoneFormatsTest {
    @Test
    fun selfTestAndBenchmark() {
        val dir = TestInputs.file("bundle")
        val bundle = Bundle.open(dir)
        val golden = bundle.golden()
        val factory = ReplayRunner.factory(TestInputs.file("replay"))
        val android = bundle.artifactsFor(setOf("executorch", "tflite"))
        val checks = android.flatMap { a ->
            bundle.verifyArtifact(a)
            factory.load(bundle.artifactFile(a), a, 1).use { SelfTest.artifact(a, it, golden, bundle.tolerance(a), bundle.padId) }
        }
        assertEquals("failures: ${checks.filter { !it.passed }}", 0, checks.count { !it.passed })
        val results = HeadlessBenchmark.run(
            dir, File(TestInputs.outDir, HeadlessBenchmark.RESULTS_FILE),
            BenchmarkConfig(runs = 10, warmup = 1, threads = 2), DeviceInfo.host(), factory,
        )
        assertEquals("passed", (results["extra"] as Map<*, *>)["status"])
        println("phone formats: ${android.size} artifacts, ${checks.size} golden checks passed")
    }
}
