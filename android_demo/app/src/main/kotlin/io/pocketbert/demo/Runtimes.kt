package io.pocketbert.demo

import io.pocketbert.core.Artifact
import io.pocketbert.core.ModelRunner
import io.pocketbert.core.RunnerFactory
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.tensorflow.lite.Interpreter
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The formats this app runs, and the runtime for each. */
object Runtimes {
    val FORMATS = setOf("executorch", "tflite")

    val factory = RunnerFactory { file, artifact, threads ->
        when (artifact.format) {
            "executorch" -> ExecuTorchRunner(file, threads)
            "tflite" -> LiteRtRunner(file, threads)
            else -> throw IllegalArgumentException("format ${artifact.format} does not run on Android")
        }
    }

    fun load(file: File, artifact: Artifact, threads: Int): ModelRunner = factory.load(file, artifact, threads)
}

/** A `.pte` program (XNNPACK-delegated) through ExecuTorch's Java API: forward(input_ids, attention_mask). */
class ExecuTorchRunner(file: File, threads: Int) : ModelRunner {
    private val module: Module = Module.load(file.absolutePath, Module.LOAD_MODE_MMAP, threads)

    init {
        val err = module.loadMethod("forward")
        if (err != 0) throw IllegalStateException("ExecuTorch could not load forward() of ${file.name} (error 0x${err.toString(16)})")
    }

    override fun run(inputIds: IntArray, attentionMask: IntArray): FloatArray {
        val shape = longArrayOf(1, inputIds.size.toLong())  // (1, seq_len) int32, as exported
        val out = module.forward(
            EValue.from(Tensor.fromBlob(inputIds, shape)),
            EValue.from(Tensor.fromBlob(attentionMask, shape)),
        )
        if (out.isEmpty()) throw IllegalStateException("ExecuTorch forward() returned nothing")
        return out[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

/** A `.tflite` model through LiteRT's Interpreter (CPU, XNNPACK delegate by default). */
class LiteRtRunner(file: File, threads: Int) : ModelRunner {
    private val interpreter = Interpreter(file, Interpreter.Options().setNumThreads(threads))
    private val idsIndex: Int
    private val maskIndex: Int
    private val output: ByteBuffer

    init {
        if (interpreter.inputTensorCount != 2) {
            throw IllegalStateException("${file.name} has ${interpreter.inputTensorCount} inputs, expected input_ids and attention_mask")
        }
        // Inputs by name where the converter kept them, else in argument order (input_ids, attention_mask).
        val names = (0 until 2).map { interpreter.getInputTensor(it).name().lowercase() }
        maskIndex = names.indexOfFirst { "mask" in it }.takeIf { it >= 0 } ?: 1
        idsIndex = 1 - maskIndex
        output = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes()).order(ByteOrder.nativeOrder())
    }

    override fun run(inputIds: IntArray, attentionMask: IntArray): FloatArray {
        val inputs = arrayOfNulls<Any>(2)
        inputs[idsIndex] = arrayOf(inputIds)  // (1, seq_len) int32
        inputs[maskIndex] = arrayOf(attentionMask)
        output.rewind()
        interpreter.runForMultipleInputsOutputs(inputs, mapOf<Int, Any>(0 to output))
        output.rewind()
        val floats = output.asFloatBuffer()
        return FloatArray(floats.remaining()).also { floats.get(it) }
    }

    override fun close() = interpreter.close()
}
