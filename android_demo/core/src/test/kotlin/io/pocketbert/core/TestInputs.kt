package io.pocketbert.core

import org.junit.Assert.fail
import java.io.File

/** Inputs prepared by tests/apps/test_android_core.py, passed as -Dpocketbert.<name>=<path>. */
object TestInputs {
    fun file(name: String): File {
        val v = System.getProperty("pocketbert.$name")
            ?: fail("system property pocketbert.$name is not set; run through tests/apps/test_android_core.py") as Nothing
        return File(v)
    }

    val outDir: File get() = file("outDir").also { it.mkdirs() }
}

/**
 * Outputs recorded from onnxruntime (Python) for the golden inputs of each ONNX artifact, looked up by the
 * exact input ids: it stands in for a phone runtime, and a wrong tokenization finds no recorded output.
 */
class ReplayRunner(private val outputs: Map<String, FloatArray>) : ModelRunner {
    override fun run(inputIds: IntArray, attentionMask: IntArray): FloatArray =
        outputs[key(inputIds, attentionMask)] ?: throw IllegalStateException("no recorded output for these input ids")

    companion object {
        fun key(inputIds: IntArray, attentionMask: IntArray): String =
            inputIds.joinToString(",") + "|" + attentionMask.joinToString(",")

        /** replay.json: {artifact file: [{input_ids, attention_mask, output}]} -> a RunnerFactory. */
        fun factory(replay: File): RunnerFactory {
            val root = Json.parse(replay.readText()).asObj("replay")
            return RunnerFactory { _, artifact, _ ->
                val rows = root[artifact.file] as? List<Any?> ?: throw IllegalStateException("nothing recorded for ${artifact.file}")
                ReplayRunner(rows.associate { r ->
                    val m = r.asObj("replay row")
                    key(m.list("input_ids", "r").ints("r"), m.list("attention_mask", "r").ints("r")) to
                        m.list("output", "r").floats("r")
                })
            }
        }
    }
}
