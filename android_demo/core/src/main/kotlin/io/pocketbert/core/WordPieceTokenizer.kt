package io.pocketbert.core

import java.io.File
import java.text.Normalizer

/** The bundle's tokenizer settings (manifest `tokenizer`), BERT defaults otherwise. */
data class TokenizerOptions(
    val lowercase: Boolean = true,
    val stripAccents: Boolean = true,
    val tokenizeChineseChars: Boolean = true,
    val maxInputCharsPerWord: Int = 100,
    val unkToken: String = "[UNK]",
    val clsToken: String = "[CLS]",
    val sepToken: String = "[SEP]",
    val padToken: String = "[PAD]",
    /** Tokens matched verbatim in the raw text before normalization (HF added tokens, `normalized: false`). */
    val specialTokens: List<String> = listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
)

/** One text as the model sees it: `ids` unpadded, `inputIds`/`attentionMask` padded to `seqLen`. */
class Encoding(val ids: IntArray, val seqLen: Int, val inputIds: IntArray, val attentionMask: IntArray)

/**
 * WordPiece tokenization identical to HF `tokenizers` (BertNormalizer -> BertPreTokenizer -> WordPiece ->
 * `[CLS] $A [SEP]`), the tokenizer `pocketbert export` writes golden ids with.
 *
 * Strings are walked by code point (JVM strings are UTF-16, emoji are surrogate pairs). Character classes come
 * from [BertUnicodeTables], measured from HF `tokenizers` itself, so the result does not depend on the Unicode
 * version of the JDK or of the phone; only the NFD decomposition uses `java.text.Normalizer`.
 */
class WordPieceTokenizer(vocab: List<String>, val options: TokenizerOptions = TokenizerOptions()) {
    private val vocab: Map<String, Int> = HashMap<String, Int>(vocab.size * 2).also { m ->
        vocab.forEachIndexed { i, t -> m[t] = i }  // a repeated token keeps its last line, as a Python dict would
    }
    private fun idOf(token: String): Int =
        vocab[token] ?: throw BundleError("vocabulary lacks $token; use the bundle's vocab.txt")

    val unkId = idOf(options.unkToken)
    val clsId = idOf(options.clsToken)
    val sepId = idOf(options.sepToken)
    val padId = idOf(options.padToken)
    private val specials: List<Pair<String, Int>> =
        options.specialTokens.filter { it.isNotEmpty() && it in this.vocab }.map { it to idOf(it) }
            .sortedByDescending { it.first.length }
    private val specialStarts: Set<Char> = specials.map { it.first[0] }.toSet()

    /** Ids of `text` without [CLS]/[SEP], untruncated. */
    fun tokenize(text: String): IntArray {
        val out = IntArrayList()
        var segmentStart = 0
        var i = 0
        // Special tokens are cut out of the raw text first (leftmost, then longest), as HF's added vocabulary does.
        while (i < text.length) {
            val hit = if (text[i] in specialStarts) specials.firstOrNull { text.startsWith(it.first, i) } else null
            if (hit != null) {
                tokenizeSegment(text.substring(segmentStart, i), out)
                out.add(hit.second)
                i += hit.first.length
                segmentStart = i
            } else {
                i++
            }
        }
        tokenizeSegment(text.substring(segmentStart), out)
        return out.toArray()
    }

    /** [CLS] ids [SEP], truncated to `maxLength` keeping [SEP] last. */
    fun encode(text: String, maxLength: Int): IntArray {
        require(maxLength >= 2) { "maxLength must leave room for [CLS] and [SEP]" }
        val body = tokenize(text)
        val n = minOf(body.size, maxLength - 2)
        val ids = IntArray(n + 2)
        ids[0] = clsId
        System.arraycopy(body, 0, ids, 1, n)
        ids[n + 1] = sepId
        return ids
    }

    /** Encode for a bundle with buckets `seqLens`: truncate to the largest, pad to the smallest that fits. */
    fun encodeForBuckets(text: String, seqLens: List<Int>): Encoding {
        require(seqLens.isNotEmpty()) { "no sequence-length buckets" }
        val sorted = seqLens.sorted()
        val ids = encode(text, sorted.last())
        return pad(ids, sorted.first { it >= ids.size })
    }

    /** `ids` ([CLS] ... [SEP], at most `seqLen`) padded with [PAD] / mask 0 to `seqLen`. */
    fun pad(ids: IntArray, seqLen: Int): Encoding {
        require(ids.size <= seqLen) { "${ids.size} ids do not fit length $seqLen" }
        val inputIds = IntArray(seqLen) { if (it < ids.size) ids[it] else padId }
        val mask = IntArray(seqLen) { if (it < ids.size) 1 else 0 }
        return Encoding(ids, seqLen, inputIds, mask)
    }

    /** The normalized text of one segment (no special tokens), as BertNormalizer writes it. */
    fun normalize(text: String): String {
        val sb = StringBuilder(text.length + 8)
        var i = 0
        while (i < text.length) {
            val cp = text.codePointAt(i)
            i += Character.charCount(cp)
            when {
                inRanges(BertUnicodeTables.REMOVED, cp) -> {}
                inRanges(BertUnicodeTables.SPACES, cp) -> sb.append(' ')
                options.tokenizeChineseChars && isChineseChar(cp) -> sb.append(' ').appendCodePoint(cp).append(' ')
                else -> sb.appendCodePoint(cp)
            }
        }
        var s = sb.toString()
        if (options.stripAccents) {
            val nfd = Normalizer.normalize(s, Normalizer.Form.NFD)
            val kept = StringBuilder(nfd.length)
            forEachCodePoint(nfd) { if (!inRanges(BertUnicodeTables.MARKS, it)) kept.appendCodePoint(it) }
            s = kept.toString()
        }
        if (options.lowercase) {
            val low = StringBuilder(s.length)
            // Per code point, as Rust's char::to_lowercase: no context-dependent rules (final sigma stays σ).
            forEachCodePoint(s) { cp ->
                val multi = BertUnicodeTables.LOWER_MULTI[cp]
                if (multi != null) multi.forEach { low.appendCodePoint(it) } else low.appendCodePoint(lower(cp))
            }
            s = low.toString()
        }
        return s
    }

    /** BertPreTokenizer: split on whitespace (dropped) and punctuation (kept as single-character words). */
    fun preTokenize(normalized: String): List<String> {
        val words = ArrayList<String>()
        val cur = StringBuilder()
        forEachCodePoint(normalized) { cp ->
            when {
                isWhitespace(cp) -> if (cur.isNotEmpty()) { words.add(cur.toString()); cur.setLength(0) }
                inRanges(BertUnicodeTables.PUNCT, cp) -> {
                    if (cur.isNotEmpty()) { words.add(cur.toString()); cur.setLength(0) }
                    words.add(String(Character.toChars(cp)))
                }
                else -> cur.appendCodePoint(cp)
            }
        }
        if (cur.isNotEmpty()) words.add(cur.toString())
        return words
    }

    private fun tokenizeSegment(segment: String, out: IntArrayList) {
        if (segment.isEmpty()) return
        for (word in preTokenize(normalize(segment))) wordPiece(word, out)
    }

    /** Greedy longest-match-first over code points; a word with an unmatchable rest becomes one [UNK]. */
    private fun wordPiece(word: String, out: IntArrayList) {
        val cps = word.codePoints().toArray()
        if (cps.size > options.maxInputCharsPerWord) { out.add(unkId); return }
        val pieces = IntArrayList()
        var start = 0
        while (start < cps.size) {
            var end = cps.size
            var found = -1
            while (start < end) {
                val sub = String(cps, start, end - start)
                val id = vocab[if (start > 0) "##$sub" else sub]
                if (id != null) { found = id; break }
                end--
            }
            if (found < 0) { out.add(unkId); return }
            pieces.add(found)
            start = end
        }
        out.addAll(pieces)
    }

    companion object {
        /** Read `vocab.txt`: one token per line, the line number is the id. */
        fun readVocab(file: File): List<String> {
            val lines = file.readText(Charsets.UTF_8).split("\n").toMutableList()
            if (lines.isNotEmpty() && lines.last().isEmpty()) lines.removeAt(lines.size - 1)
            return lines.map { it.trimEnd('\r') }
        }

        /** The CJK Unified Ideograph blocks HF `tokenizers` pads with spaces (its ranges, not Python BERT's). */
        fun isChineseChar(cp: Int): Boolean =
            cp in 0x4E00..0x9FFF || cp in 0x3400..0x4DBF || cp in 0x20000..0x2A6DF || cp in 0x2A700..0x2B73F ||
                cp in 0x2B740..0x2B81F || cp in 0x2B920..0x2CEAF || cp in 0xF900..0xFAFF || cp in 0x2F800..0x2FA1F

        /** Unicode White_Space (Rust's char::is_whitespace), which BertPreTokenizer splits on. */
        fun isWhitespace(cp: Int): Boolean =
            cp in 0x09..0x0D || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || cp in 0x2000..0x200A ||
                cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000

        internal fun inRanges(table: IntArray, cp: Int): Boolean {
            var lo = 0
            var hi = table.size / 2 - 1
            while (lo <= hi) {
                val mid = (lo + hi) ushr 1
                when {
                    cp < table[2 * mid] -> hi = mid - 1
                    cp > table[2 * mid + 1] -> lo = mid + 1
                    else -> return true
                }
            }
            return false
        }

        internal fun lower(cp: Int): Int {
            val t = BertUnicodeTables.LOWER
            var lo = 0
            var hi = t.size / 2 - 1
            while (lo <= hi) {
                val mid = (lo + hi) ushr 1
                when {
                    cp < t[2 * mid] -> hi = mid - 1
                    cp > t[2 * mid] -> lo = mid + 1
                    else -> return t[2 * mid + 1]
                }
            }
            return cp
        }

        private inline fun forEachCodePoint(s: String, f: (Int) -> Unit) {
            var i = 0
            while (i < s.length) {
                val cp = s.codePointAt(i)
                f(cp)
                i += Character.charCount(cp)
            }
        }
    }
}

/** A growable IntArray without boxing. */
internal class IntArrayList {
    private var a = IntArray(16)
    var size = 0
        private set

    fun add(v: Int) {
        if (size == a.size) a = a.copyOf(size * 2)
        a[size++] = v
    }

    fun addAll(o: IntArrayList) { for (k in 0 until o.size) add(o.a[k]) }
    fun toArray(): IntArray = a.copyOf(size)
}
