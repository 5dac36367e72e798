package io.pocketbert.core

import java.io.File
import java.time.Instant

/** Latency statistics with the same definitions as `runtime_bench/stats.py`. */
object LatencyStats {
    /** q-th percentile (0..100), linear interpolation between closest ranks (numpy's default). */
    fun percentile(samples: List<Double>, q: Double): Double {
        require(samples.isNotEmpty()) { "percentile of no samples" }
        require(q in 0.0..100.0) { "percentile q must be in [0, 100], got $q" }
        val xs = samples.sorted()
        val rank = q / 100 * (xs.size - 1)
        val lo = Math.floor(rank).toInt()
        val hi = minOf(lo + 1, xs.size - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)
    }

    /** Mean of the samples between the 10th and 90th percentile, inclusive (the median when that band is empty). */
    fun trimmedMean(samples: List<Double>, lower: Double = 10.0, upper: Double = 90.0): Double {
        require(samples.isNotEmpty()) { "trimmed mean of no samples" }
        val lo = percentile(samples, lower)
        val hi = percentile(samples, upper)
        val kept = samples.filter { it in lo..hi }
        return if (kept.isNotEmpty()) kept.sum() / kept.size else percentile(samples, 50.0)
    }

    /** The results schema's latency metrics for one row. */
    fun summarize(samplesMs: List<Double>): Map<String, Any?> = linkedMapOf(
        "runs" to samplesMs.size,
        "latency_ms_p50" to percentile(samplesMs, 50.0),
        "latency_ms_p90" to percentile(samplesMs, 90.0),
        "latency_ms_p99" to percentile(samplesMs, 99.0),
        "latency_ms_trimmed_mean" to trimmedMean(samplesMs),
        "latency_ms_min" to samplesMs.minOrNull(),
        "latency_ms_max" to samplesMs.maxOrNull(),
    )
}

/** Where the numbers were measured (results schema `device`). */
data class DeviceInfo(
    val environment: String,
    val name: String,
    val os: String,
    val arch: String,
    val cores: Int,
    val memoryMb: Double? = null,
    val serial: String? = null,
    val cpuModel: String? = null,
) {
    fun toJson(): Map<String, Any?> = linkedMapOf<String, Any?>(
        "environment" to environment, "name" to name, "os" to os, "arch" to arch, "cores" to cores,
    ).also { m ->
        memoryMb?.let { m["memory_mb"] = it }
        serial?.let { m["serial"] = it }
        cpuModel?.let { m["cpu_model"] = it }
    }

    companion object {
        /** This JVM's host, for desktop runs of the benchmark code. */
        fun host(): DeviceInfo = DeviceInfo(
            environment = "host",
            name = try { java.net.InetAddress.getLocalHost().hostName } catch (e: Exception) { "unknown" },
            os = "${System.getProperty("os.name")} ${System.getProperty("os.version")}",
            arch = System.getProperty("os.arch") ?: "unknown",
            cores = Runtime.getRuntime().availableProcessors(),
        )
    }
}

/** Settings of one headless run (the `am start` extras). */
data class BenchmarkConfig(
    val runs: Int = 50,
    val warmup: Int = 5,
    val threads: Int = 4,
    /** Formats this platform runs; artifacts of other formats are left out of the results. */
    val formats: Set<String> = setOf("executorch", "tflite"),
    /** Only artifacts of these quantizations (empty: all). */
    val quants: Set<String> = emptySet(),
) {
    fun check() {
        if (runs < 1) throw BundleError("runs must be >= 1 (got $runs); pass --ei runs 50")
        if (warmup < 0) throw BundleError("warmup must be >= 0 (got $warmup)")
        if (threads < 1) throw BundleError("threads must be >= 1 (got $threads)")
    }
}

/** Loads one artifact in its runtime (ExecuTorch, LiteRT on the phone). Throws to report a load failure. */
fun interface RunnerFactory {
    fun load(file: File, artifact: Artifact, threads: Int): ModelRunner
}

/**
 * The headless benchmark: open the bundle, and for each artifact this platform runs verify its sha256, load it,
 * run the golden self-test on it, time it, and write `benchmark_results.json` in the runtime_bench schema.
 * A bad bundle still yields a results file, marked `complete: false` with the error in `extra.error`.
 */
object HeadlessBenchmark {
    const val RESULTS_FILE = "benchmark_results.json"
    const val SCHEMA_VERSION = "1.0"
    private const val BENCH_TEXT = "A man is playing a guitar on the street while people walk by."

    fun run(
        bundleDir: File,
        outFile: File,
        config: BenchmarkConfig,
        device: DeviceInfo,
        factory: RunnerFactory,
        clock: () -> Long = System::nanoTime,
    ): Map<String, Any?> {
        val rows = ArrayList<Map<String, Any?>>()
        val results = linkedMapOf<String, Any?>(
            "schema_version" to SCHEMA_VERSION,
            "kind" to "pocketbert-bench-results",
            "complete" to false,
            "created_utc" to Instant.now().toString(),
            "device" to device.toJson(),
            "config" to linkedMapOf<String, Any?>(
                "threads" to listOf(config.threads), "runs" to config.runs, "warmup" to config.warmup,
                // Replaced by the bundle's buckets once the manifest is read; the schema needs at least one.
                "seq_lens" to listOf(128), "batch_size" to 1,
            ),
            "rows" to rows,
            "provenance" to linkedMapOf("writer" to "android_demo core HeadlessBenchmark", "bundle_dir" to bundleDir.path),
        )
        try {
            config.check()
            val bundle = Bundle.open(bundleDir)
            @Suppress("UNCHECKED_CAST")
            (results["config"] as MutableMap<String, Any?>)["seq_lens"] = bundle.seqLens
            results["bundle"] = linkedMapOf(
                "path" to bundleDir.path, "model_name" to bundle.modelName, "task" to bundle.task,
                "manifest_sha256" to Bundle.sha256(File(bundleDir, Bundle.MANIFEST)),
                "num_parameters" to bundle.numParameters,
            )
            val golden = bundle.golden()
            val tokenizerChecks = SelfTest.tokenizer(bundle.tokenizer(), golden, bundle.seqLens)
            val tokFailed = tokenizerChecks.filter { !it.passed }
            val artifacts = bundle.artifactsFor(config.formats)
                .filter { config.quants.isEmpty() || it.quant in config.quants }
            if (artifacts.isEmpty()) {
                throw BundleError(
                    "${bundleDir.name} has no artifact this app runs (${config.formats.joinToString()}); " +
                        "export with --formats executorch,tflite",
                )
            }
            val tokenizer = bundle.tokenizer()
            for (a in artifacts) rows.add(benchArtifact(bundle, a, golden, tokenizer, config, factory, clock))
            val failedRows = rows.count { it["status"] != "ok" }
            results["notes"] = listOf(
                "tokenizer self-test: ${tokenizerChecks.size - tokFailed.size}/${tokenizerChecks.size} golden cases passed" +
                    (tokFailed.firstOrNull()?.let { "; first failure ${it.case}: ${it.detail}" } ?: ""),
            )
            results["extra"] = linkedMapOf(
                "status" to if (tokFailed.isEmpty() && failedRows == 0) "passed" else "failed",
                "tokenizer_cases" to tokenizerChecks.size,
                "tokenizer_failed" to tokFailed.map { it.case },
            )
            results["complete"] = true
        } catch (e: BundleError) {
            results["notes"] = listOf(e.message ?: "bundle error")
            results["extra"] = linkedMapOf("status" to "failed", "error" to (e.message ?: "bundle error"))
        }
        outFile.absoluteFile.parentFile?.mkdirs()
        val tmp = File(outFile.path + ".tmp")
        tmp.writeText(Json.write(results) + "\n", Charsets.UTF_8)
        if (!tmp.renameTo(outFile)) { outFile.delete(); tmp.renameTo(outFile) }
        return results
    }

    private fun benchArtifact(
        bundle: Bundle, a: Artifact, golden: Golden, tokenizer: WordPieceTokenizer, config: BenchmarkConfig,
        factory: RunnerFactory, clock: () -> Long,
    ): Map<String, Any?> {
        val row = linkedMapOf<String, Any?>(
            "name" to File(a.file).name, "file" to a.file, "format" to a.format, "backend" to a.backend,
            "quant" to a.quant, "seq_len" to a.seqLen, "threads" to config.threads, "role" to "artifact",
            "status" to "failed", "size_bytes" to a.sizeBytes,
        )
        try {
            bundle.verifyArtifact(a)
        } catch (e: BundleError) {
            row["error"] = e.message
            return row
        }
        val t0 = clock()
        val runner = try {
            factory.load(bundle.artifactFile(a), a, config.threads)
        } catch (e: Exception) {
            row["error"] = "could not load ${a.file}: ${e.message?.lineSequence()?.first()}"
            return row
        }
        runner.use { r ->
            row["load_ms"] = (clock() - t0) / 1e6
            val checks = SelfTest.artifact(a, r, golden, bundle.tolerance(a), bundle.padId)
            val failed = checks.filter { !it.passed }
            // The timed input: a golden case of this bucket (real tokens), else a sentence padded to it.
            val input = golden.cases.firstOrNull { it.seqLen == a.seqLen }?.let { it.inputIds to it.attentionMask }
                ?: tokenizer.encodeForBuckets(BENCH_TEXT, listOf(a.seqLen)).let { it.inputIds to it.attentionMask }
            val (inputIds, mask) = input
            try {
                val t1 = clock()
                r.run(inputIds, mask)
                row["first_inference_ms"] = (clock() - t1) / 1e6
                repeat(config.warmup) { r.run(inputIds, mask) }
                val samples = ArrayList<Double>(config.runs)
                repeat(config.runs) {
                    val s = clock()
                    r.run(inputIds, mask)
                    samples.add((clock() - s) / 1e6)
                }
                row.putAll(LatencyStats.summarize(samples))
                row["samples_ms"] = samples
            } catch (e: Exception) {
                row["error"] = "inference failed: ${e.message?.lineSequence()?.first()}"
                return row
            }
            row["extra"] = linkedMapOf(
                "golden_cases" to checks.size, "golden_passed" to checks.size - failed.size,
                "golden_failed" to failed.map { "${it.case}: ${it.detail}" },
            )
            if (failed.isEmpty()) {
                row["status"] = "ok"
            } else {
                row["error"] = "self-test failed on ${failed.size}/${checks.size} golden cases (first: ${failed[0].case}: ${failed[0].detail})"
            }
        }
        return row
    }
}
