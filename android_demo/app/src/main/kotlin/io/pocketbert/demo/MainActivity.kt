package io.pocketbert.demo

import android.app.Activity
import android.graphics.Color
import android.os.Bundle
import android.text.InputType
import android.view.View
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.Spinner
import android.widget.TextView
import io.pocketbert.core.Artifact
import io.pocketbert.core.BundleError
import io.pocketbert.core.ModelRunner
import io.pocketbert.core.SelfTest
import io.pocketbert.core.Similarity
import io.pocketbert.core.WordPieceTokenizer
import java.util.concurrent.Executors
import io.pocketbert.core.Bundle as PocketBundle

/**
 * Pick a backend (format/quant), type texts (one per line), run: an embedding bundle ranks lines 2..n by cosine
 * similarity to line 1, a classifier shows class probabilities; each with its measured latency. The self-test
 * button checks the tokenizer and every artifact against golden.json. Model work runs off the UI thread.
 */
class MainActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private var bundle: PocketBundle? = null
    private var tokenizer: WordPieceTokenizer? = null
    private val runners = HashMap<Artifact, ModelRunner>()
    private val threads = 4

    private lateinit var status: TextView
    private lateinit var backend: Spinner
    private lateinit var input: EditText
    private lateinit var output: TextView
    private lateinit var buttons: List<Button>

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        buildUi()
        val dir = BundleLocator.locate(this, intent.getStringExtra("bundle_dir"))
        status.text = "Opening $dir ..."
        worker.execute {
            try {
                val b = PocketBundle.open(dir)
                val t = b.tokenizer()
                val backends = b.artifactsFor(Runtimes.FORMATS).map { "${it.format}/${it.quant}" }.distinct().sorted()
                if (backends.isEmpty()) throw BundleError("${dir.name} has no ExecuTorch or LiteRT artifact; export with --formats executorch,tflite")
                runOnUiThread {
                    bundle = b
                    tokenizer = t
                    status.setTextColor(Color.DKGRAY)
                    status.text = "${b.modelName} (${b.task}), buckets ${b.seqLens}, ${b.artifacts.size} artifacts\n$dir"
                    backend.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, backends)
                    buttons.forEach { it.isEnabled = true }
                }
            } catch (e: BundleError) {
                showError(e.message ?: "bad bundle")
            }
        }
    }

    override fun onDestroy() {
        worker.execute { runners.values.forEach { it.close() }; runners.clear() }
        worker.shutdown()
        super.onDestroy()
    }

    private fun buildUi() {
        val pad = (12 * resources.displayMetrics.density).toInt()
        val column = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(pad, pad, pad, pad) }
        status = TextView(this)
        backend = Spinner(this)
        input = EditText(this).apply {
            inputType = InputType.TYPE_CLASS_TEXT or InputType.TYPE_TEXT_FLAG_MULTI_LINE
            minLines = 4
            hint = "One text per line. Embeddings: line 1 is the query."
            setText("A man is playing a guitar.\nSomeone plays an instrument.\nA woman is slicing an onion.")
        }
        val run = Button(this).apply { text = "Run"; setOnClickListener { onRun() } }
        val selfTest = Button(this).apply { text = "Self-test (golden.json)"; setOnClickListener { onSelfTest() } }
        buttons = listOf(run, selfTest).onEach { it.isEnabled = false }
        output = TextView(this).apply { setTextIsSelectable(true); typeface = android.graphics.Typeface.MONOSPACE }
        listOf<View>(status, backend, input, run, selfTest, output).forEach { column.addView(it) }
        setContentView(ScrollView(this).apply { addView(column) })
    }

    private fun showError(message: String) = runOnUiThread {
        status.setTextColor(Color.rgb(176, 0, 32))
        status.text = message
    }

    private fun showOutput(text: String) = runOnUiThread { output.text = text }

    /** Verify the artifact's sha256 once, then keep it loaded. */
    private fun runnerFor(b: PocketBundle, a: Artifact): ModelRunner = runners.getOrPut(a) {
        b.verifyArtifact(a)
        Runtimes.load(b.artifactFile(a), a, threads)
    }

    private fun onRun() {
        val b = bundle ?: return
        val tok = tokenizer ?: return
        val (format, quant) = (backend.selectedItem as String).split('/')
        val texts = input.text.toString().lines().filter { it.isNotBlank() }
        if (texts.isEmpty()) return showOutput("Type at least one text.")
        worker.execute {
            try {
                val results = texts.map { text ->
                    // the bucket's artifact, padded to it, or a dynamic-length artifact at the text's own length
                    val (a, enc) = b.encodeFor(tok, text, format, quant) ?: throw BundleError("no $format/$quant artifact")
                    val r = runnerFor(b, a)
                    val t0 = System.nanoTime()
                    val out = r.run(enc.inputIds, enc.attentionMask)
                    Triple(text, out, "${"%.2f".format((System.nanoTime() - t0) / 1e6)} ms, seq${enc.seqLen}, ${enc.ids.size} tokens")
                }
                showOutput(render(b, results))
            } catch (e: BundleError) {
                showError(e.message ?: "bad bundle")
            } catch (e: Exception) {
                showOutput("Inference failed: ${e.message}")
            }
        }
    }

    private fun render(b: PocketBundle, results: List<Triple<String, FloatArray, String>>): String = buildString {
        when (b.task) {
            "embedding" -> {
                val (query, q, qInfo) = results[0]
                appendLine("query: $query  [$qInfo]")
                val ranked = Similarity.topK(q, results.drop(1).map { it.second }, results.size)
                for ((i, cos) in ranked) appendLine("%.4f  %s  [%s]".format(cos, results[i + 1].first, results[i + 1].third))
            }
            "classification" -> for ((text, logits, info) in results) {
                appendLine("$text  [$info]")
                for ((label, p) in Similarity.classify(logits, b.labels)) appendLine("  %-16s %.4f".format(label, p))
            }
            else -> append("A ${b.task} bundle: use the self-test and the headless benchmark.")
        }
    }

    private fun onSelfTest() {
        val b = bundle ?: return
        showOutput("Running the golden self-test ...")
        worker.execute {
            val lines = try {
                // The core's whole self-test (tests/apps/test_conformance.py holds both cores to it).
                SelfTest.bundle(b, b.artifactsFor(Runtimes.FORMATS), Runtimes.factory, threads)
            } catch (e: BundleError) {
                return@execute showError(e.message ?: "bad bundle")
            }
            val failed = lines.count { !it.passed }
            showOutput(buildString {
                appendLine(if (failed == 0) "PASS: all ${lines.size} checks" else "FAIL: $failed of ${lines.size} checks")
                for (r in lines) appendLine("${if (r.passed) "pass" else "FAIL"}  ${r.target}  ${r.case}: ${r.detail}")
            })
        }
    }
}
