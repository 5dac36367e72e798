"""The quantization names (`fp32`, `fp16`, `int8`) and what each means for each backend.

Each exporter implements its rows; this table is what the CLI validates against and what the
manifest records. An unsupported (format, quant) pair is a `PocketBertError` before any work.
"""

from __future__ import annotations

from pocketbert.bundle.naming import FORMATS, QUANTS
from pocketbert.errors import PocketBertError

# (format, quant) -> recipe, as recorded in the manifest notes.
RECIPES: dict[tuple[str, str], str] = {
    ("executorch", "fp32"): "fp32 graph lowered to XNNPACK",
    ("executorch", "int8"): (
        "XNNPACK PT2E quantizer: dynamic int8 activations, per-channel int8 linear weights; "
        "word embedding as an int8 table with per-row fp32 scales (weight-only)"
    ),
    ("tflite", "fp32"): "litert-torch fp32",
    ("tflite", "fp16"): "ai-edge-quantizer fp16 weights (float_casting), fp32 compute",
    ("tflite", "int8"): "ai-edge-quantizer dynamic_wi8_afp32: int8 weights (embedding included), fp32 activations",
    ("coreml", "fp32"): "mlprogram, fp32 weights and compute_precision FLOAT32",
    ("coreml", "fp16"): "mlprogram, fp16 weights and compute (Core ML's default)",
    ("coreml", "int8"): "mlprogram fp16, then linear_quantize_weights (int8 symmetric per-channel weights)",
    ("onnx", "fp32"): "torch.onnx.export(dynamo=True), fp32",
    ("onnx", "int8"): "onnxruntime quantize_dynamic: int8 MatMul and Gather (embedding) weights, per-channel",
}

def supported(fmt: str) -> list[str]:
    return [q for q in QUANTS if (fmt, q) in RECIPES]


def check_pair(fmt: str, quant: str) -> str:
    """The recipe of (fmt, quant); PocketBertError naming the valid choices otherwise."""
    if fmt not in FORMATS:
        raise PocketBertError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if quant not in QUANTS:
        raise PocketBertError(f"unknown quantization {quant!r}; choose from {', '.join(QUANTS)}")
    recipe = RECIPES.get((fmt, quant))
    if recipe is None:
        raise PocketBertError(f"{fmt} has no {quant} mode; {fmt} supports {', '.join(supported(fmt))}")
    return recipe
