package io.pocketbert.core

import java.io.File
import java.security.MessageDigest

/** A bundle the app cannot use, with one line naming the problem and the fix (shown in the UI, written by headless runs). */
class BundleError(message: String) : Exception(message)

/** One artifact row of the manifest (BUNDLE.md `artifacts`). */
data class Artifact(
    val file: String,
    val format: String,
    val backend: String,
    val quant: String,
    val seqLen: Int,
    val sizeBytes: Long,
    val sha256: String,
    /** Set for a dynamic-length artifact (manifest `min_seq_len`): it takes any length from this to [seqLen]. */
    val minSeqLen: Int? = null,
) {
    /** The key of the manifest's `tolerances` table, e.g. `tflite/int8`. */
    val toleranceKey: String get() = "$format/$quant"
    val label: String get() = "$format/$quant/seq$seqLen"
    val dynamic: Boolean get() = minSeqLen != null

    /** The input length for a text of `nTokens` ids (at most [seqLen]): the bucket, or for a dynamic-length
     *  artifact the text's own length, unpadded (BUNDLE.md `min_seq_len`; `pocketbert.bundle.manifest.Artifact.input_length`). */
    fun inputLength(nTokens: Int): Int = minSeqLen?.let { maxOf(it, minOf(nTokens, seqLen)) } ?: seqLen
}

/**
 * What the artifacts of one format/quant are held to: the manifest's `tolerances` entry (BUNDLE.md), read from the
 * bundle, never from a table of the app's. `minArgmaxAgreement` and `minInvarianceCosine` are null in a format
 * 1.0/1.1 manifest, which did not record them: the checks that need them then fail, asking for a re-export.
 */
data class Tolerance(
    val maxAbsDiff: Double,
    val minCosine: Double,
    /** MLM: the share of real positions, pooled over the cases, whose argmax must match golden's. */
    val minArgmaxAgreement: Double? = null,
    /** Bucket invariance: the smallest cosine between one text's outputs at two buckets. */
    val minInvarianceCosine: Double? = null,
)

/**
 * A pocketbert bundle, format 1 (export/BUNDLE.md), read through its `manifest.json` only.
 *
 * [open] checks the manifest, the schema major version, that every named file is present and inside the
 * bundle, and the golden file's sha256; artifact hashes are checked by [verifyArtifact] (it reads the whole file).
 */
class Bundle private constructor(val root: File, val manifest: Map<String, Any?>) {
    private val where = "${root.name}/$MANIFEST"
    val schemaVersion: String = manifest.str("schema_version", where)
    private val model = manifest.obj("model", where)
    val modelName: String = model.str("name", where)
    val task: String = model.str("task", where)
    val numParameters: Long = (model["num_parameters"] as? Number)?.toLong() ?: 0L
    val seqLens: List<Int> = manifest.list("seq_lens", where).ints("$where seq_lens").sorted()
    val labels: List<String> = (manifest["labels"] as? List<*>)?.map { it.toString() } ?: emptyList()
    val outputName: String = (manifest.list("outputs", where).firstOrNull()?.asObj("$where outputs"))
        ?.str("name", "$where outputs") ?: throw BundleError("$where: 'outputs' is empty; re-export the bundle")
    val tokenizerOptions: TokenizerOptions
    /** The `[PAD]` id golden inputs are padded with (manifest `tokenizer.special_tokens`). */
    val padId: Int
    val vocabFile: File
    val goldenFile: File
    val artifacts: List<Artifact>
    val tolerances: Map<String, Tolerance>

    init {
        val tok = manifest.obj("tokenizer", where)
        tokenizerOptions = tokenizerOptions(manifest, where)
        padId = ((tok["special_tokens"] as? Map<*, *>)?.get("[PAD]") as? Number)?.toInt() ?: 0
        vocabFile = inside(tok.str("vocab_file", "$where tokenizer"))
        goldenFile = inside(manifest.obj("golden", where).str("file", "$where golden"))
        artifacts = manifest.list("artifacts", where).mapIndexed { i, a ->
            val m = a.asObj("$where artifacts[$i]")
            val w = "$where artifacts[$i]"
            Artifact(
                file = m.str("file", w), format = m.str("format", w), backend = m.str("backend", w),
                quant = m.str("quant", w), seqLen = m.int("seq_len", w),
                sizeBytes = (m["size_bytes"] as? Number)?.toLong() ?: 0L, sha256 = m.str("sha256", w),
                minSeqLen = (m["min_seq_len"] as? Number)?.toInt(),
            )
        }
        tolerances = manifest.obj("tolerances", where).mapValues { (k, v) ->
            val t = v.asObj("$where tolerances/$k")
            Tolerance(
                (t["max_abs_diff"] as? Number)?.toDouble() ?: throw BundleError("$where: tolerances/$k lacks max_abs_diff"),
                (t["min_cosine"] as? Number)?.toDouble() ?: throw BundleError("$where: tolerances/$k lacks min_cosine"),
                (t["min_argmax_agreement"] as? Number)?.toDouble(),
                (t["min_invariance_cosine"] as? Number)?.toDouble(),
            )
        }
        for (f in listOf(vocabFile, goldenFile)) {
            if (!f.isFile) throw BundleError("${root.name}: ${f.name} named in the manifest is missing; push the whole bundle folder again")
        }
        for (a in artifacts) {
            if (!inside(a.file).exists()) {
                throw BundleError("${root.name}: artifact ${a.file} named in the manifest is missing; push the whole bundle folder again")
            }
        }
        val goldenSha = manifest.obj("golden", where).str("sha256", "$where golden")
        if (sha256(goldenFile) != goldenSha) {
            throw BundleError("${root.name}: ${goldenFile.name} does not match its sha256 in the manifest; re-export or re-push the bundle")
        }
    }

    /** A file named by the manifest; refuses absolute paths and paths that leave the bundle. */
    fun inside(rel: String): File {
        val f = File(root, rel)
        val rootPath = root.canonicalPath
        if (rel.isEmpty() || File(rel).isAbsolute || rel.contains('\\') ||
            !(f.canonicalPath == rootPath || f.canonicalPath.startsWith(rootPath + File.separator))
        ) {
            throw BundleError("${root.name}: manifest path '$rel' is not inside the bundle; refusing to read it")
        }
        return f
    }

    fun artifactFile(a: Artifact): File = inside(a.file)

    fun tolerance(a: Artifact): Tolerance =
        tolerances[a.toleranceKey] ?: throw BundleError("$where: no tolerance for ${a.toleranceKey}; re-export the bundle")

    /** Throws [BundleError] unless the artifact's bytes match the manifest's sha256. */
    fun verifyArtifact(a: Artifact) {
        val f = artifactFile(a)
        if (!f.exists()) throw BundleError("${root.name}: artifact ${a.file} is missing; push the whole bundle folder again")
        if (f.isDirectory) return  // .mlpackage folders are for Core ML, never run on Android
        val got = sha256(f)
        if (got != a.sha256) {
            throw BundleError(
                "${root.name}: ${a.file} sha256 ${got.take(12)}... does not match the manifest (${a.sha256.take(12)}...); " +
                    "the file was changed or truncated, push the bundle again",
            )
        }
    }

    fun tokenizer(): WordPieceTokenizer = WordPieceTokenizer(WordPieceTokenizer.readVocab(vocabFile), tokenizerOptions)

    fun golden(): Golden = Golden.read(goldenFile)

    /** Artifacts of the formats this platform runs, e.g. `setOf("executorch", "tflite")` on Android. */
    fun artifactsFor(formats: Set<String>): List<Artifact> = artifacts.filter { it.format in formats }

    /** The artifact of (format, quant) whose bucket is the smallest holding `nTokens` tokens (else the largest). */
    fun artifactFor(format: String, quant: String, nTokens: Int): Artifact? {
        val rows = artifacts.filter { it.format == format && it.quant == quant }.sortedBy { it.seqLen }
        return rows.firstOrNull { it.seqLen >= nTokens } ?: rows.lastOrNull()
    }

    /**
     * How the app calls (format, quant) for `text`: ids truncated to that family's largest bucket, the artifact
     * of the smallest bucket that holds them ([artifactFor]), and its input: padded to the bucket, or, for a
     * dynamic-length artifact, the ids at their own length. The bench's real-length rows call artifacts the same
     * way (runtime_bench/lengths.py); tests/apps/test_conformance.py holds both to it. Null when the bundle has
     * no (format, quant) artifact.
     */
    fun encodeFor(tokenizer: WordPieceTokenizer, text: String, format: String, quant: String): Pair<Artifact, Encoding>? {
        val largest = artifacts.filter { it.format == format && it.quant == quant }.maxOfOrNull { it.seqLen } ?: return null
        val ids = tokenizer.encode(text, largest)
        val a = artifactFor(format, quant, ids.size) ?: return null
        return a to tokenizer.pad(ids, a.inputLength(ids.size))
    }

    companion object {
        const val MANIFEST = "manifest.json"
        const val SUPPORTED_MAJOR = 1

        /** Open and check a bundle folder; every problem is a [BundleError] with one line for the user. */
        fun open(dir: File): Bundle {
            if (!dir.isDirectory) {
                throw BundleError("bundle folder $dir does not exist; push a bundle written by `pocketbert export` (see README)")
            }
            val mf = File(dir, MANIFEST)
            if (!mf.isFile) {
                throw BundleError("${dir.name} has no $MANIFEST; push the folder written by `pocketbert export`, not a single file")
            }
            val parsed = try {
                Json.parse(mf.readText(Charsets.UTF_8))
            } catch (e: Json.ParseError) {
                throw BundleError("${dir.name}/$MANIFEST is not valid JSON (${e.message}); push the bundle again")
            }
            val manifest = parsed.asObj("${dir.name}/$MANIFEST")
            checkSchemaVersion(manifest["schema_version"], "${dir.name}/$MANIFEST")
            return Bundle(dir, manifest)
        }

        /** The manifest's `tokenizer` settings (BUNDLE.md), BERT defaults for absent keys. */
        fun tokenizerOptions(manifest: Map<String, Any?>, where: String = MANIFEST): TokenizerOptions {
            val tok = manifest.obj("tokenizer", where)
            val type = tok.str("type", "$where tokenizer")
            if (type != "wordpiece") throw BundleError("$where: tokenizer type '$type' is not supported (only wordpiece)")
            val specials = (tok["special_tokens"] as? Map<*, *>)?.keys?.map { it.toString() }
            return TokenizerOptions(
                lowercase = tok.bool("lowercase", true),
                stripAccents = tok.bool("strip_accents", tok.bool("lowercase", true)),
                tokenizeChineseChars = tok.bool("tokenize_chinese_chars", true),
                maxInputCharsPerWord = (tok["max_input_chars_per_word"] as? Number)?.toInt() ?: 100,
                unkToken = tok["unk_token"] as? String ?: "[UNK]",
                specialTokens = specials ?: TokenizerOptions().specialTokens,
            )
        }

        /** Accept `1.x`; refuse other majors (a newer exporter may have changed the meaning of fields). */
        fun checkSchemaVersion(version: Any?, where: String) {
            val v = version as? String
            val major = v?.substringBefore('.')?.toIntOrNull()
                ?: throw BundleError("$where: no valid schema_version; this is not a pocketbert bundle")
            if (major != SUPPORTED_MAJOR) {
                throw BundleError(
                    "$where: schema_version $v is not supported (this app reads $SUPPORTED_MAJOR.x); " +
                        "update the app or export with a matching pocketbert",
                )
            }
        }

        fun sha256(f: File): String {
            val md = MessageDigest.getInstance("SHA-256")
            f.inputStream().use { s ->
                val buf = ByteArray(1 shl 16)
                while (true) {
                    val n = s.read(buf)
                    if (n < 0) break
                    md.update(buf, 0, n)
                }
            }
            return md.digest().joinToString("") { "%02x".format(it) }
        }
    }
}
