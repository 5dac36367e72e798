package io.pocketbert.core

import java.io.File

/**
 * The Kotlin side of tests/apps/test_conformance.py: answers the suite's request with the core's own functions
 * (the ones the app calls) and writes the answers for Python to judge; it judges nothing itself.
 *
 *   java -cp ... io.pocketbert.core.Conformance request.json
 *
 * request.json (paths relative to its folder):
 *   tokenizer: [{family, vocab, options: {lowercase, strip_accents, tokenize_chinese_chars}, texts, answers}]
 *     texts: JSON lines, one string each; answers (written): JSON lines, the `[CLS] ... [SEP]` ids of each
 *     text, untruncated (WordPieceTokenizer.encode).
 *   bundles: [{name, bundle, replay}], answers_file: written as {bundles: {name: {error, checks: [{target, case,
 *     passed, detail}]}}, postprocess}: Bundle.open, then SelfTest.bundle with outputs recorded from the real
 *     runtimes (replay.json).
 *   postprocess: {vectors, logits, labels}: answered as {top_k: per vector, Similarity.topK over all vectors
 *     ([index, cosine] best first); classify: per logits row, Similarity.classify ([label, probability])}.
 *   calls: [{bundle, texts, answers}]: per text (JSON lines), how the app calls each format/quant of the bundle
 *     (Bundle.encodeFor): answers (written) JSON lines of [[format, quant, artifact file, input length, ids], ...].
 */
object Conformance {
    @JvmStatic
    fun main(args: Array<String>) {
        val requestFile = File(args[0]).absoluteFile
        val dir = requestFile.parentFile
        val request = Json.parse(requestFile.readText()).asObj("request")
        for (family in request.list("tokenizer", "request").map { it.asObj("tokenizer family") }) {
            val opts = family.obj("options", "family")
            val options = TokenizerOptions(
                lowercase = opts.bool("lowercase", true),
                stripAccents = opts.bool("strip_accents", opts.bool("lowercase", true)),
                tokenizeChineseChars = opts.bool("tokenize_chinese_chars", true),
            )
            val tokenizer = WordPieceTokenizer(WordPieceTokenizer.readVocab(File(dir, family.str("vocab", "f"))), options)
            File(dir, family.str("answers", "f")).bufferedWriter(Charsets.UTF_8).use { out ->
                File(dir, family.str("texts", "f")).bufferedReader(Charsets.UTF_8).useLines { lines ->
                    for (line in lines) {
                        if (line.isBlank()) continue
                        val text = Json.parse(line) as String
                        out.write(Json.write(tokenizer.encode(text, Int.MAX_VALUE).toList(), 0))
                        out.write("\n")
                    }
                }
            }
        }
        val answers = linkedMapOf<String, Any?>()
        for (b in request.list("bundles", "request").map { it.asObj("bundle") }) {
            val factory = ReplayRunner.factory(File(dir, b.str("replay", "bundle")))
            answers[b.str("name", "bundle")] = try {
                val bundle = Bundle.open(File(dir, b.str("bundle", "bundle")))
                val checks = SelfTest.bundle(bundle, bundle.artifacts, factory)
                linkedMapOf("error" to null, "checks" to checks.map {
                    linkedMapOf("target" to it.target, "case" to it.case, "passed" to it.passed, "detail" to it.detail)
                })
            } catch (e: BundleError) {
                linkedMapOf("error" to e.message, "checks" to emptyList<Any>())
            }
        }
        val post = request.obj("postprocess", "request")
        val vectors = post.list("vectors", "postprocess").map { (it as List<Any?>).floats("vectors") }
        val logits = post.list("logits", "postprocess").map { (it as List<Any?>).floats("logits") }
        val labels = post.list("labels", "postprocess").map { it as String }
        val postprocess = linkedMapOf<String, Any?>(
            "top_k" to vectors.map { q -> Similarity.topK(q, vectors, vectors.size).map { listOf(it.first, it.second) } },
            "classify" to logits.map { row -> Similarity.classify(row, labels).map { listOf(it.first, it.second) } },
        )
        for (c in (request["calls"] as? List<*>).orEmpty().map { it.asObj("calls") }) {
            val bundle = Bundle.open(File(dir, c.str("bundle", "calls")))
            val tokenizer = bundle.tokenizer()
            val families = bundle.artifacts.map { it.format to it.quant }.distinct()
            File(dir, c.str("answers", "calls")).bufferedWriter(Charsets.UTF_8).use { out ->
                File(dir, c.str("texts", "calls")).bufferedReader(Charsets.UTF_8).useLines { lines ->
                    for (line in lines) {
                        if (line.isBlank()) continue
                        val text = Json.parse(line) as String
                        val row = families.map { (format, quant) ->
                            val (a, enc) = bundle.encodeFor(tokenizer, text, format, quant)!!
                            listOf(format, quant, a.file, enc.seqLen, enc.ids.toList())
                        }
                        out.write(Json.write(row, 0))
                        out.write("\n")
                    }
                }
            }
        }
        val doc = linkedMapOf<String, Any?>("bundles" to answers, "postprocess" to postprocess)
        File(dir, request.str("answers_file", "request")).writeText(Json.write(doc), Charsets.UTF_8)
        println("conformance (kotlin): answered ${request.list("tokenizer", "r").size} tokenizer families, ${answers.size} bundles")
    }
}
