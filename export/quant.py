"""The quantization names and what each means for each backend: one small table.

| name        | weights                              | activations                          |
|-------------|--------------------------------------|--------------------------------------|
| fp32        | fp32                                 | fp32                                 |
| fp16        | fp16                                 | fp32 (LiteRT) or fp16 (Core ML)      |
| int8        | int8 per-channel, embedding included | fp32, quantized on the fly (dynamic) |
| int8-static | int8 per-channel, embedding included | int8 with ranges calibrated on corpus text |
| int4-mixed  | int4 groups of 32, except the parts the sensitivity probe keeps at int8 (`part_modules`) | as int4 |
| int4        | int4 groups of 32, embedding table included | fp32 (dynamic int8 where the runtime's int4 kernels want it) |

Each exporter implements its rows; this table is what the CLI validates against and what the
manifest records. A pair a runtime cannot run is a one-line refusal (`REFUSALS`) before any work. Export
validates each (format, name) once, where its config is checked, into a `QuantRecipe`, the value every
exporter receives.
"""

from __future__ import annotations

from dataclasses import dataclass

from pocketbert.bundle.naming import FORMATS, QUANTS
from pocketbert.errors import PocketBertError

# int4 block (group) size along the input dimension, shared by every backend so that the rungs compare.
INT4_GROUP = 32

# The parts int4-mixed can keep at int8: the word embedding table, and per encoder layer its attention
# (query, key, value, output projection: 4 H^2 weights) and its feed-forward block (intermediate and output:
# 2 H I weights, twice the attention's in BERT). Module paths are those of the exported TaskModule (HF BERT
# names); each backend finds the ops of a part through them. A factorized (ALBERT) student has one more part,
# its E -> H mapping: few weights, but every token passes through it, and at int4 it alone took a 2-layer
# student's top-10 overlap from 0.99 to 0.91 (eager and in both runtimes).
EMBEDDING_TABLE = "encoder.embeddings.word_embeddings"
EMBEDDING_MAPPING = "encoder.encoder.embedding_hidden_mapping_in"
PART_LINEARS = {
    "attention": ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"),
    "ffn": ("intermediate.dense", "output.dense"),
}


def part_modules(part: str) -> list[str]:
    """Module paths of one part: `embeddings`, `embedding_mapping` (factorized students), `layer.{i}.attention`,
    `layer.{i}.ffn`, or `layer.{i}` (both).

    Raises:
        PocketBertError: an unknown part name.
    """
    if part == "embeddings":
        return [EMBEDDING_TABLE]
    if part == "embedding_mapping":
        return [EMBEDDING_MAPPING]
    pieces = part.split(".")
    if 2 <= len(pieces) <= 3 and pieces[0] == "layer" and pieces[1].isdigit() and pieces[2:] in ([], ["attention"], ["ffn"]):
        kinds = pieces[2:] or list(PART_LINEARS)
        return [f"encoder.encoder.layer.{pieces[1]}.{name}" for kind in kinds for name in PART_LINEARS[kind]]
    raise PocketBertError(f"unknown model part {part!r}; use embeddings, embedding_mapping, layer.N, layer.N.attention or layer.N.ffn")


# (format, quant) -> recipe, as recorded in the manifest notes.
RECIPES: dict[tuple[str, str], str] = {
    ("executorch", "fp32"): "fp32 graph lowered to XNNPACK",
    ("executorch", "int8"): (
        "XNNPACK PT2E quantizer: dynamic int8 activations, per-channel int8 linear weights; "
        "word embedding as an int8 table with per-row fp32 scales (weight-only)"
    ),
    ("executorch", "int8-static"): (
        "XNNPACK PT2E quantizer, static (is_dynamic=False) on Linear modules: int8 activations calibrated on "
        "corpus text, per-channel int8 weights; word embedding as an int8 table with per-row fp32 scales"
    ),
    ("executorch", "int4"): (
        f"torchao Int8DynamicActivationIntxWeightConfig (XNNPACK qd8-f32-qb4w): int4 linear weights in groups of "
        f"{INT4_GROUP}, dynamic int8 activations; word embedding as a packed int4 table, fp16 scale per {INT4_GROUP}"
    ),
    ("executorch", "int4-mixed"): "the int4 recipe with the sensitive parts (see notes.sensitivity) at int8",
    ("tflite", "fp32"): "litert-torch fp32",
    ("tflite", "fp16"): "ai-edge-quantizer fp16 weights (float_casting), fp32 compute",
    ("tflite", "int8"): "ai-edge-quantizer dynamic_wi8_afp32: int8 weights (embedding included), fp32 activations",
    ("tflite", "int8-static"): (
        "ai-edge-quantizer static int8 FULLY_CONNECTED (int8 weights, int8 activations calibrated on corpus "
        "text); embedding lookup int8 weights (dynamic_wi8)"
    ),
    ("tflite", "int4"): (
        f"ai-edge-quantizer dynamic_wi4b{INT4_GROUP}_afp32: int4 weights in blocks of {INT4_GROUP} (embedding "
        "included), fp32 activations quantized on the fly"
    ),
    ("tflite", "int4-mixed"): "the int4 recipe with the sensitive parts (see notes.sensitivity) at int8 (dynamic_wi8)",
    ("coreml", "fp32"): "mlprogram, fp32 weights and compute_precision FLOAT32",
    ("coreml", "fp16"): "mlprogram, fp16 weights and compute (Core ML's default)",
    ("coreml", "int8"): "mlprogram fp16, then linear_quantize_weights (int8 symmetric per-channel weights)",
    ("coreml", "int4"): (
        f"mlprogram fp16 (iOS 18), then linear_quantize_weights int4 symmetric per_block {INT4_GROUP} "
        "(embedding included)"
    ),
    ("coreml", "int4-mixed"): "the int4 recipe with the sensitive parts (see notes.sensitivity) at int8",
    ("onnx", "fp32"): "torch.onnx.export(dynamo=True), fp32",
    ("onnx", "int8"): "onnxruntime quantize_dynamic: int8 MatMul and Gather (embedding) weights, per-channel",
    ("onnx", "int8-static"): (
        "onnxruntime quantize_static, QDQ: int8 MatMul and Gather weights per-channel, uint8 asymmetric "
        "activations calibrated on corpus text (MinMax)"
    ),
    ("onnx", "int4"): (
        f"onnxruntime MatMulNBitsQuantizer: MatMulNBits int4 (blocks of {INT4_GROUP}, symmetric, fp32 scales) and "
        "the embedding as GatherBlockQuantized int4 with fp16 scales"
    ),
    ("onnx", "int4-mixed"): "the int4 recipe with the sensitive parts (see notes.sensitivity) at int8 (quantize_dynamic)",
}

# Pairs a runtime cannot run, with the one-line reason.
REFUSALS: dict[tuple[str, str], str] = {
    ("coreml", "int8-static"): (
        "Core ML activation calibration (linear_quantize_activations) runs the model, which needs macOS"
    ),
}

# The rungs `--quant auto` tries per format, smallest expected artifact first; fp32 is not a quantization.
AUTO_LADDER = ("int4", "int4-mixed", "int8-static", "int8", "fp16")

# Rungs whose export needs calibration text.
CALIBRATED = ("int8-static",)
NEEDS_CORPUS = (*CALIBRATED, "int4-mixed")  # int4-mixed: its probe picks the int8 parts on corpus sentences


def supported(fmt: str) -> list[str]:
    return [q for q in QUANTS if (fmt, q) in RECIPES]


def check_pair(fmt: str, quant: str) -> str:
    """The recipe of (fmt, quant); PocketBertError naming the valid choices (or the refusal) otherwise."""
    if fmt not in FORMATS:
        raise PocketBertError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if quant not in QUANTS:
        raise PocketBertError(f"unknown quantization {quant!r}; choose from {', '.join(QUANTS)} or auto")
    recipe = RECIPES.get((fmt, quant))
    if recipe is None:
        why = f"{fmt} cannot do {quant}: {REFUSALS[(fmt, quant)]}" if (fmt, quant) in REFUSALS else f"{fmt} has no {quant} mode"
        raise PocketBertError(f"{why}; {fmt} supports {', '.join(supported(fmt))}")
    return recipe


def auto_ladder(fmt: str) -> list[str]:
    """The rungs `--quant auto` tries for `fmt`, smallest first."""
    return [q for q in AUTO_LADDER if (fmt, q) in RECIPES]



# The table above per quantization name: (weight bits, int4 group, activations); see QuantRecipe.
_SHAPES: dict[str, tuple[int, int | None, str]] = {
    "fp32": (32, None, "float"),
    "fp16": (16, None, "float"),
    "int8": (8, None, "dynamic"),
    "int8-static": (8, None, "static"),
    "int4": (4, INT4_GROUP, "dynamic"),
    "int4-mixed": (4, INT4_GROUP, "dynamic"),
}


@dataclass(frozen=True)
class QuantRecipe:
    """One quantization of one format, as its exporter receives it: built by `of`, which checks the pair.

    format: the exporter's format (`executorch`, `tflite`, `coreml`, `onnx`).
    name: the quantization name (the manifest's `quant` of the artifact).
    weight_bits: 32, 16, 8 or 4 (int4-mixed: 4, with `keep_int8` at 8).
    group: the int4 block size along the input dimension (INT4_GROUP); None: one scale per output channel.
    activations: `float` (fp32, or fp16 where the format computes in it), `dynamic` (quantized on the fly where
        the backend's integer kernels take them) or `static` (int8, ranges calibrated on corpus text: the
        exporter needs calibration inputs).
    description: the recipe in words (RECIPES), the manifest's `notes.recipe`.
    keep_int8: the parts int4-mixed keeps at int8 (`embeddings`, `layer.{i}.attention`, ...; part_modules).
    """

    format: str
    name: str
    weight_bits: int
    group: int | None
    activations: str
    description: str
    keep_int8: tuple[str, ...] = ()

    @classmethod
    def of(cls, fmt: str, quant: str, keep_int8: list[str] | tuple[str, ...] = ()) -> QuantRecipe:
        """The recipe of (fmt, quant).

        Raises:
            PocketBertError: a pair `check_pair` refuses, parts kept at int8 by a rung other than int4-mixed,
                or an unknown part name.
        """
        description = check_pair(fmt, quant)
        keep = tuple(keep_int8)
        if keep and quant != "int4-mixed":
            raise PocketBertError(f"{fmt} {quant} keeps no parts at int8 (got {', '.join(keep)}); only int4-mixed does")
        for part in keep:
            part_modules(part)  # an unknown part raises
        bits, group, activations = _SHAPES[quant]
        return cls(fmt, quant, bits, group, activations, description, keep)

    def keeping(self, parts: list[str]) -> QuantRecipe:
        """This int4-mixed recipe with `parts` kept at int8 (the plan of gate.mixed_plan)."""
        return QuantRecipe.of(self.format, self.name, parts)

    @property
    def calibrated(self) -> bool:
        return self.activations == "static"

    @property
    def embedding_bits(self) -> int:
        """Bits of the word embedding table in an integer rung: int4 unless int4-mixed keeps `embeddings` at int8."""
        return 4 if self.weight_bits == 4 and "embeddings" not in self.keep_int8 else 8
