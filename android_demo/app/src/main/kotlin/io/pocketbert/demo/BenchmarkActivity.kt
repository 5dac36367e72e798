package io.pocketbert.demo

import android.app.Activity
import android.os.Bundle
import android.util.Log
import io.pocketbert.core.BenchmarkConfig
import io.pocketbert.core.HeadlessBenchmark
import java.io.File
import kotlin.concurrent.thread

/**
 * Headless benchmark, started by `pocketbert bench --device adb` (runtime_bench/adb.py) or by hand:
 *
 *   adb shell am start -W -S -n io.pocketbert.demo/.BenchmarkActivity \
 *       --es bundle_dir /data/local/tmp/pocketbert/s3_bundle --ei runs 50 --ei warmup 5 --ei threads 4 \
 *       --es results_file benchmark_results.json
 *
 * Writes /sdcard/Android/data/io.pocketbert.demo/files/<results_file> in the runtime_bench results schema,
 * then finishes. A bad bundle (no manifest, newer schema, missing artifact) still writes a results file with
 * `complete: false` and the one-line error in `extra.error`; an artifact whose sha256 does not match gets a
 * `failed` row. Optional extras: --es quants int8,fp32 to limit the artifacts measured.
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val extras = intent.extras
        val config = BenchmarkConfig(
            runs = extras?.getInt("runs", 50) ?: 50,
            warmup = extras?.getInt("warmup", 5) ?: 5,
            threads = extras?.getInt("threads", 4) ?: 4,
            formats = Runtimes.FORMATS,
            quants = extras?.getString("quants")?.split(',')?.map { it.trim() }?.filter { it.isNotEmpty() }?.toSet() ?: emptySet(),
        )
        val bundleDir = BundleLocator.locate(this, extras?.getString("bundle_dir"))
        val resultsName = File(extras?.getString("results_file") ?: HeadlessBenchmark.RESULTS_FILE).name
        val out = File(getExternalFilesDir(null) ?: filesDir, resultsName)
        val device = androidDeviceInfo(this)
        thread(name = "pocketbert-benchmark") {
            val results = HeadlessBenchmark.run(bundleDir, out, config, device, Runtimes.factory)
            val status = (results["extra"] as? Map<*, *>)?.get("status")
            Log.i(TAG, "benchmark of $bundleDir: $status; results in $out")
            (results["extra"] as? Map<*, *>)?.get("error")?.let { Log.e(TAG, it.toString()) }
            runOnUiThread { finish() }
        }
    }

    companion object {
        const val TAG = "pocketbert"
    }
}
