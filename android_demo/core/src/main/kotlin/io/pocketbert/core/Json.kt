package io.pocketbert.core

/**
 * A small JSON reader and writer, so that `core` needs nothing beyond the Kotlin standard library
 * (Android has org.json, a desktop JVM does not).
 *
 * Values map to: object -> Map<String, Any?> (insertion ordered), array -> List<Any?>, string -> String,
 * number -> Long when integral and without exponent, else Double; true/false -> Boolean; null -> null.
 */
object Json {
    class ParseError(message: String) : IllegalArgumentException(message)

    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipWs()
        val v = p.value()
        p.skipWs()
        if (p.i != text.length) throw ParseError("trailing characters at offset ${p.i}")
        return v
    }

    private class Parser(val s: String) {
        var i = 0

        fun skipWs() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun value(): Any? {
            if (i >= s.length) throw ParseError("unexpected end of JSON")
            return when (val c = s[i]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') num() else throw ParseError("unexpected '$c' at offset $i")
            }
        }

        fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, i)) throw ParseError("bad literal at offset $i")
            i += word.length
            return v
        }

        fun obj(): Map<String, Any?> {
            val m = LinkedHashMap<String, Any?>()
            i++
            skipWs()
            if (i < s.length && s[i] == '}') { i++; return m }
            while (true) {
                skipWs()
                if (i >= s.length || s[i] != '"') throw ParseError("expected a key at offset $i")
                val k = str()
                skipWs()
                if (i >= s.length || s[i] != ':') throw ParseError("expected ':' at offset $i")
                i++
                skipWs()
                m[k] = value()
                skipWs()
                if (i >= s.length) throw ParseError("unterminated object")
                if (s[i] == ',') { i++; continue }
                if (s[i] == '}') { i++; return m }
                throw ParseError("expected ',' or '}' at offset $i")
            }
        }

        fun arr(): List<Any?> {
            val a = ArrayList<Any?>()
            i++
            skipWs()
            if (i < s.length && s[i] == ']') { i++; return a }
            while (true) {
                skipWs()
                a.add(value())
                skipWs()
                if (i >= s.length) throw ParseError("unterminated array")
                if (s[i] == ',') { i++; continue }
                if (s[i] == ']') { i++; return a }
                throw ParseError("expected ',' or ']' at offset $i")
            }
        }

        fun str(): String {
            val sb = StringBuilder()
            i++
            while (true) {
                if (i >= s.length) throw ParseError("unterminated string")
                val c = s[i++]
                when (c) {
                    '"' -> return sb.toString()
                    '\\' -> {
                        if (i >= s.length) throw ParseError("unterminated escape")
                        when (val e = s[i++]) {
                            '"' -> sb.append('"'); '\\' -> sb.append('\\'); '/' -> sb.append('/')
                            'b' -> sb.append('\b'); 'f' -> sb.append('\u000C'); 'n' -> sb.append('\n')
                            'r' -> sb.append('\r'); 't' -> sb.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) throw ParseError("bad \\u escape")
                                sb.append(s.substring(i, i + 4).toInt(16).toChar())  // surrogate halves pair up in the builder
                                i += 4
                            }
                            else -> throw ParseError("bad escape '\\$e'")
                        }
                    }
                    else -> sb.append(c)
                }
            }
        }

        fun num(): Any {
            val start = i
            if (s[i] == '-') i++
            var integral = true
            while (i < s.length) {
                val c = s[i]
                if (c in '0'..'9') i++
                else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { integral = false; i++ }
                else break
            }
            val t = s.substring(start, i)
            return if (integral) t.toLongOrNull() ?: t.toDouble() else t.toDouble()
        }
    }

    /** Serialize maps, lists, strings, numbers, booleans and null; `indent` > 0 pretty-prints. */
    fun write(v: Any?, indent: Int = 2): String = StringBuilder().also { emit(it, v, indent, 0) }.toString()

    private fun emit(sb: StringBuilder, v: Any?, indent: Int, depth: Int) {
        fun nl(d: Int) { if (indent > 0) { sb.append('\n'); repeat(d * indent) { sb.append(' ') } } }
        when (v) {
            null -> sb.append("null")
            is String -> quote(sb, v)
            is Boolean -> sb.append(v.toString())
            is Float -> emit(sb, v.toDouble(), indent, depth)
            is Double -> if (v.isNaN() || v.isInfinite()) sb.append("null")
                else if (v == Math.rint(v) && Math.abs(v) < 1e15) sb.append(v.toLong().toString()).append(".0")
                else sb.append(v.toString())
            is Number -> sb.append(v.toString())
            is Map<*, *> -> {
                if (v.isEmpty()) { sb.append("{}"); return }
                sb.append('{')
                var first = true
                for ((k, x) in v) {
                    if (!first) sb.append(',')
                    first = false
                    nl(depth + 1)
                    quote(sb, k.toString())
                    sb.append(if (indent > 0) ": " else ":")
                    emit(sb, x, indent, depth + 1)
                }
                nl(depth)
                sb.append('}')
            }
            is Iterable<*> -> {
                val items = v.toList()
                if (items.isEmpty()) { sb.append("[]"); return }
                sb.append('[')
                items.forEachIndexed { n, x ->
                    if (n > 0) sb.append(',')
                    nl(depth + 1)
                    emit(sb, x, indent, depth + 1)
                }
                nl(depth)
                sb.append(']')
            }
            is IntArray -> emit(sb, v.toList(), indent, depth)
            is FloatArray -> emit(sb, v.toList(), indent, depth)
            is DoubleArray -> emit(sb, v.toList(), indent, depth)
            else -> quote(sb, v.toString())
        }
    }

    private fun quote(sb: StringBuilder, s: String) {
        sb.append('"')
        for (c in s) {
            when {
                c == '"' -> sb.append("\\\"")
                c == '\\' -> sb.append("\\\\")
                c == '\n' -> sb.append("\\n")
                c == '\r' -> sb.append("\\r")
                c == '\t' -> sb.append("\\t")
                c < ' ' -> sb.append(String.format("\\u%04x", c.code))
                else -> sb.append(c)
            }
        }
        sb.append('"')
    }
}

/** Typed access into parsed JSON, naming the missing or mistyped key in the error. */
internal fun Map<String, Any?>.obj(key: String, where: String): Map<String, Any?> =
    (this[key] as? Map<*, *>)?.let { m -> m.entries.associate { it.key.toString() to it.value } }
        ?: throw BundleError("$where: '$key' is missing or not an object")

internal fun Map<String, Any?>.list(key: String, where: String): List<Any?> =
    this[key] as? List<Any?> ?: throw BundleError("$where: '$key' is missing or not a list")

internal fun Map<String, Any?>.str(key: String, where: String): String =
    this[key] as? String ?: throw BundleError("$where: '$key' is missing or not a string")

internal fun Map<String, Any?>.int(key: String, where: String): Int =
    (this[key] as? Number)?.toInt() ?: throw BundleError("$where: '$key' is missing or not a number")

internal fun Map<String, Any?>.bool(key: String, default: Boolean): Boolean = this[key] as? Boolean ?: default

@Suppress("UNCHECKED_CAST")
internal fun Any?.asObj(where: String): Map<String, Any?> =
    this as? Map<String, Any?> ?: throw BundleError("$where: expected an object")

internal fun List<Any?>.ints(where: String): IntArray =
    IntArray(size) { (this[it] as? Number)?.toInt() ?: throw BundleError("$where: element $it is not a number") }

internal fun List<Any?>.floats(where: String): FloatArray =
    FloatArray(size) { (this[it] as? Number)?.toFloat() ?: throw BundleError("$where: element $it is not a number") }
