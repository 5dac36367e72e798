package io.pocketbert.core

import java.io.File

/**
 * One golden case (BUNDLE.md `golden.json`). `expected` is null for MLM bundles, which store `expectedArgmax`.
 * `expectedByBucket` / `argmaxByBucket` (format 1.1 `buckets`) hold the eager output at every bucket the case fits.
 */
class GoldenCase(
    val name: String,
    val text: String,
    val ids: IntArray,
    val seqLen: Int,
    val inputIds: IntArray,
    val attentionMask: IntArray,
    val expected: FloatArray?,
    val expectedArgmax: IntArray?,
    val expectedByBucket: Map<Int, FloatArray> = emptyMap(),
    val argmaxByBucket: Map<Int, IntArray> = emptyMap(),
) {
    /** The eager output at bucket `n` (a 1.0 file's single `expected` stands for every bucket). */
    fun expectedAt(n: Int): FloatArray? = expectedByBucket[n] ?: expected

    fun expectedArgmaxAt(n: Int): IntArray? = argmaxByBucket[n] ?: expectedArgmax
}

class Golden(val outputName: String, val seqLens: List<Int>, val cases: List<GoldenCase>) {
    companion object {
        fun read(file: File): Golden {
            val w = file.name
            val root = try {
                Json.parse(file.readText(Charsets.UTF_8)).asObj(w)
            } catch (e: Json.ParseError) {
                throw BundleError("$w is not valid JSON (${e.message}); push the bundle again")
            }
            Bundle.checkSchemaVersion(root["schema_version"], w)
            val cases = root.list("cases", w).mapIndexed { i, c ->
                val m = c.asObj("$w cases[$i]")
                val cw = "$w case ${m["name"] ?: i}"
                val buckets = (m["buckets"] as? List<Any?>)?.map { it.asObj("$cw buckets") } ?: emptyList()
                GoldenCase(
                    name = m.str("name", cw), text = m.str("text", cw), ids = m.list("ids", cw).ints(cw),
                    seqLen = m.int("seq_len", cw), inputIds = m.list("input_ids", cw).ints(cw),
                    attentionMask = m.list("attention_mask", cw).ints(cw),
                    expected = (m["expected"] as? List<Any?>)?.floats(cw),
                    expectedArgmax = (m["expected_argmax"] as? List<Any?>)?.ints(cw),
                    expectedByBucket = buckets.filter { it["expected"] is List<*> }
                        .associate { it.int("seq_len", cw) to it.list("expected", cw).floats(cw) },
                    argmaxByBucket = buckets.filter { it["expected_argmax"] is List<*> }
                        .associate { it.int("seq_len", cw) to it.list("expected_argmax", cw).ints(cw) },
                )
            }
            return Golden(root.str("output_name", w), root.list("seq_lens", w).ints(w).toList(), cases)
        }
    }
}

/** A loaded model for one artifact (one static sequence length). Implemented per runtime in the app. */
interface ModelRunner : AutoCloseable {
    /** Run one padded example; returns the output flattened row-major (embedding: H floats, logits: labels). */
    fun run(inputIds: IntArray, attentionMask: IntArray): FloatArray
    override fun close() {}
}

/** One line of the self-test screen: a case checked against the tokenizer or one artifact. */
data class CheckResult(val target: String, val case: String, val passed: Boolean, val detail: String)

/**
 * The golden self-test: the tokenizer must give each case's exact ids, and each artifact's output must be
 * within the manifest's tolerance of the eager PyTorch output stored with the case.
 */
object SelfTest {
    fun tokenizer(tokenizer: WordPieceTokenizer, golden: Golden, seqLens: List<Int>): List<CheckResult> =
        golden.cases.map { c ->
            val e = tokenizer.encodeForBuckets(c.text, seqLens)
            val problem = when {
                !e.ids.contentEquals(c.ids) -> "ids differ at position ${firstDiff(e.ids, c.ids)}: " +
                    "got ${e.ids.toList()}, golden ${c.ids.toList()}"
                e.seqLen != c.seqLen -> "bucket ${e.seqLen}, golden ${c.seqLen}"
                !e.inputIds.contentEquals(c.inputIds) -> "input_ids differ at position ${firstDiff(e.inputIds, c.inputIds)}"
                !e.attentionMask.contentEquals(c.attentionMask) -> "attention_mask differs"
                else -> null
            }
            CheckResult("tokenizer", c.name, problem == null, problem ?: "${e.ids.size} ids, seq${e.seqLen}")
        }

    /**
     * Run every golden case that fits `artifact`'s bucket (padded to it with `padId`) through `runner` and compare
     * with the golden outputs, as `pocketbert verify` does: each case within `tolerance` (max |diff| and cosine);
     * MLM bundles by the share of real positions whose argmax matches, over all cases (`minArgmaxAgreement`).
     */
    fun artifact(
        artifact: Artifact, runner: ModelRunner, golden: Golden, tolerance: Tolerance, padId: Int = 0,
        sink: MutableMap<String, FloatArray>? = null,
    ): List<CheckResult> {
        val n = artifact.seqLen
        val cases = golden.cases.filter { it.ids.size <= n }
        val outputs = cases.map { c ->
            try {
                runner.run(IntArray(n) { if (it < c.ids.size) c.ids[it] else padId }, IntArray(n) { if (it < c.ids.size) 1 else 0 })
                    .also { sink?.put(c.name, it) }
            } catch (e: Exception) {
                e
            }
        }
        if (cases.any { it.expectedArgmax != null }) return mlm(artifact, cases, outputs, tolerance.minArgmaxAgreement)
        return cases.zip(outputs).map { (c, out) ->
            when (out) {
                is FloatArray -> compare(artifact.label, c, out, tolerance, n)
                else -> CheckResult(artifact.label, c.name, false, "runtime error: ${(out as Exception).message?.lineSequence()?.first()}")
            }
        }
    }

    /** The check a format 1.0/1.1 manifest cannot pass: it records no `key` threshold for the artifact. */
    private fun unrecorded(target: String, case: String, key: String, a: Artifact) = CheckResult(
        target, case, false,
        "the manifest records no $key for ${a.toleranceKey} (format 1.0/1.1); re-export the bundle",
    )

    private fun mlm(artifact: Artifact, cases: List<GoldenCase>, outputs: List<Any>, need: Double?): List<CheckResult> {
        if (need == null) return cases.map { unrecorded(artifact.label, it.name, "min_argmax_agreement", artifact) }
        var agree = 0
        var total = 0
        // (ran, detail) per case; the verdict is on the agreement pooled over all cases, as
        // pocketbert/bundle/parity.py argmax_agreement.
        val perCase = cases.zip(outputs).map { (c, out) ->
            val argmax = c.expectedArgmaxAt(artifact.seqLen) ?: return@map false to "golden case has no expected_argmax"
            if (out !is FloatArray) return@map false to "runtime error: ${(out as Exception).message?.lineSequence()?.first()}"
            if (out.size % artifact.seqLen != 0) return@map false to "output size ${out.size} is not ${artifact.seqLen} x V"
            val v = out.size / artifact.seqLen
            val real = c.ids.size
            val a = (0 until real).count { p -> argmaxOf(out, p * v, v) == argmax[p] }
            agree += a
            total += real
            true to "$a/$real positions agree"
        }
        val share = agree.toDouble() / maxOf(total, 1)
        return cases.zip(perCase).map { (c, r) ->
            CheckResult(artifact.label, c.name, r.first && share >= need,
                "${r.second}; overall argmax agreement %.3f (need >= %.2f)".format(share, need))
        }
    }

    fun compare(target: String, c: GoldenCase, out: FloatArray, tol: Tolerance, seqLen: Int = c.seqLen): CheckResult {
        val exp = c.expectedAt(seqLen) ?: return CheckResult(target, c.name, false, "golden case has no expected output")
        if (exp.size != out.size) return CheckResult(target, c.name, false, "output has ${out.size} values, golden ${exp.size}")
        if (out.any { !it.isFinite() }) return CheckResult(target, c.name, false, "output has NaN or Inf")
        val maxAbs = exp.indices.maxOfOrNull { Math.abs(exp[it].toDouble() - out[it].toDouble()) } ?: 0.0
        val cos = Similarity.cosine(exp, out)
        val ok = maxAbs <= tol.maxAbsDiff && cos >= tol.minCosine
        return CheckResult(
            target, c.name, ok,
            "max_abs_diff %.3g (<= %.3g), cosine %.6f (>= %.6f)".format(maxAbs, tol.maxAbsDiff, cos, tol.minCosine),
        )
    }

    /**
     * Bucket invariance over the outputs the artifact checks collected (`runs`: artifact -> case -> output): for each
     * artifact, the minimum cosine between its output on a case and the same format/quant's output on that case
     * at every other bucket (MLM: the logits of the real positions), at least the manifest's `minInvarianceCosine`
     * (`tolerances`, keyed by [Artifact.toleranceKey]). One result per artifact that shares a case with another
     * bucket, as `pocketbert verify` computes it.
     */
    fun invariance(
        golden: Golden, runs: Map<Artifact, Map<String, FloatArray>>, tolerances: Map<String, Tolerance>,
    ): List<CheckResult> {
        val tokens = golden.cases.associate { it.name to it.ids.size }
        val mlm = golden.cases.any { it.expectedArgmax != null }
        fun rows(out: FloatArray, seqLen: Int, case: String): FloatArray =
            if (mlm) out.copyOf((out.size / seqLen) * tokens.getValue(case)) else out
        val results = ArrayList<CheckResult>()
        for ((a, outs) in runs) {
            var worst = 1.0
            var worstCase = ""
            var pairs = 0
            for ((b, other) in runs) {
                if (b == a || b.format != a.format || b.quant != a.quant || b.seqLen == a.seqLen) continue
                for ((case, out) in outs) {
                    val o = other[case] ?: continue
                    val x = rows(out, a.seqLen, case)
                    val y = rows(o, b.seqLen, case)
                    val cos = if (x.size == y.size) Similarity.cosine(x, y) else 0.0
                    if (pairs == 0 || cos < worst) { worst = cos; worstCase = "$case vs seq${b.seqLen}" }
                    pairs++
                }
            }
            if (pairs == 0) continue
            val need = tolerances[a.toleranceKey]?.minInvarianceCosine
            if (need == null) {
                results += unrecorded("${a.label} bucket invariance", worstCase, "min_invariance_cosine", a)
                continue
            }
            results += CheckResult(
                "${a.label} bucket invariance", worstCase, worst >= need,
                "min cosine %.6f over %d case pairs (>= %.4f)".format(worst, pairs, need),
            )
        }
        return results
    }

    /**
     * The whole golden self-test of a bundle, as the app's Self-test button runs it: the tokenizer on every case,
     * then for each artifact its sha256, its runtime (`factory`) and its outputs within tolerance, then bucket
     * invariance. A bad artifact becomes a failed check, never an exception.
     */
    fun bundle(bundle: Bundle, artifacts: List<Artifact>, factory: RunnerFactory, threads: Int = 1): List<CheckResult> {
        val golden = bundle.golden()
        val results = ArrayList(tokenizer(bundle.tokenizer(), golden, bundle.seqLens))
        val runs = LinkedHashMap<Artifact, Map<String, FloatArray>>()
        for (a in artifacts) {
            try {
                bundle.verifyArtifact(a)
            } catch (e: BundleError) {
                results += CheckResult(a.label, "(sha256)", false, e.message ?: "bad artifact")
                continue
            }
            val runner = try {
                factory.load(bundle.artifactFile(a), a, threads)
            } catch (e: Exception) {
                results += CheckResult(a.label, "(load)", false, "could not load: ${e.message?.lineSequence()?.first()}")
                continue
            }
            val outs = LinkedHashMap<String, FloatArray>()
            runner.use { results += artifact(a, it, golden, bundle.tolerance(a), bundle.padId, outs) }
            runs[a] = outs
        }
        return results + invariance(golden, runs, bundle.tolerances)
    }

    private fun argmaxOf(a: FloatArray, off: Int, n: Int): Int {
        var best = 0
        for (k in 1 until n) if (a[off + k] > a[off + best]) best = k
        return best
    }

    private fun firstDiff(a: IntArray, b: IntArray): Int {
        for (k in 0 until minOf(a.size, b.size)) if (a[k] != b[k]) return k
        return minOf(a.size, b.size)
    }
}

/** Embedding and classifier read-outs shown by the app. */
object Similarity {
    fun cosine(a: FloatArray, b: FloatArray): Double {
        require(a.size == b.size) { "vectors of different sizes ${a.size} and ${b.size}" }
        var dot = 0.0
        var na = 0.0
        var nb = 0.0
        for (k in a.indices) {
            dot += a[k].toDouble() * b[k]
            na += a[k].toDouble() * a[k]
            nb += b[k].toDouble() * b[k]
        }
        if (na == 0.0 || nb == 0.0) return if (na == nb) 1.0 else 0.0
        return dot / (Math.sqrt(na) * Math.sqrt(nb))
    }

    /** Indices of the `k` candidates most similar to `query`, best first, with their cosine. */
    fun topK(query: FloatArray, candidates: List<FloatArray>, k: Int): List<Pair<Int, Double>> =
        candidates.mapIndexed { i, c -> i to cosine(query, c) }.sortedByDescending { it.second }.take(k)

    /** Numerically stable softmax. */
    fun softmax(logits: FloatArray): DoubleArray {
        val m = logits.maxOrNull()?.toDouble() ?: return DoubleArray(0)
        val e = DoubleArray(logits.size) { Math.exp(logits[it] - m) }
        val s = e.sum()
        return DoubleArray(e.size) { e[it] / s }
    }

    /** (label, probability) best first; labels default to `LABEL_i` when the manifest has none. */
    fun classify(logits: FloatArray, labels: List<String>): List<Pair<String, Double>> {
        if (labels.isNotEmpty() && labels.size != logits.size) {
            throw BundleError("model gives ${logits.size} logits but the manifest lists ${labels.size} labels; re-export the bundle")
        }
        val p = softmax(logits)
        return p.indices.map { (labels.getOrNull(it) ?: "LABEL_$it") to p[it] }.sortedByDescending { it.second }
    }
}
