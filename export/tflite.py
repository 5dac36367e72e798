"""TFLite / LiteRT: `litert-torch` converts (no TensorFlow needed); `ai-edge-quantizer` quantizes.

int8 = recipe `dynamic_wi8_afp32` (per-channel int8 weights, embedding lookup included, fp32 activations
quantized on the fly). litert-torch's own PT2E dynamic quantization broke EMBEDDING_LOOKUP here, so the
quantizer works on the converted fp32 flatbuffer instead. fp16 = FLOAT_CASTING of fully-connected and
embedding weights to fp16 (explicitly dequantized; compute stays fp32). int8-static = static int8
fully-connected ops (int8 weights and activations, calibrated on corpus text through the `serving_default`
signature) and the int8 embedding lookup of `dynamic_wi8`. int4 = `dynamic_wi4b32_afp32`
(int4 weights in blocks of 32, the embedding lookup included). int4-mixed adds `dynamic_wi8_afp32`
rows for the sensitive parts: the quantizer uses the last recipe row whose regex matches an op's
output tensor name, and litert-torch names tensors by module path (`.../Layer_1/.../Linear_query;1`).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import PocketBertError

from . import formats
from .quant import QuantRecipe
from .wrapper import INPUT_NAMES

# litert-torch lowers most aten ops through a JAX bridge that needs static shapes: a dynamic sequence
# length fails in `sub` of the attention mask (AssertionError: float32[1,-9223372036854775808]), and
# resize_tensor_input on a static model fails in its RESHAPEs, whose target shapes are constants.
DYNAMIC_LENGTH = False

# The LiteRT interpreter runs on every host pocketbert exports on: parity always runs (formats.Exporter).
unavailable_reason, check_spec = formats.runs_everywhere, formats.no_spec_check


class _Named(torch.nn.Module):
    def __init__(self, module: torch.nn.Module, output_name: str):
        super().__init__()
        self.module = module
        self.output_name = output_name

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.output_name: self.module(input_ids, attention_mask)}


def _fp16_recipe():
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    rp = recipe_manager.RecipeManager()
    for op in (qtyping.TFLOperationName.FULLY_CONNECTED, qtyping.TFLOperationName.EMBEDDING_LOOKUP):
        rp.add_quantization_config(
            regex=".*", operation_name=op, algorithm_key=AlgorithmName.FLOAT_CASTING,
            op_config=qtyping.OpQuantizationConfig(
                weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
                compute_precision=qtyping.ComputePrecision.FLOAT,
                explicit_dequantize=True,
            ),
        )
    return rp.get_quantization_recipe()


def _part_regex(part: str) -> str:
    """Regex of the op output tensor names of one part (`embeddings`, `layer.{i}.attention`, ...) in
    litert-torch's naming: a module path of `{class}_{attribute}` steps, the layer list folded into
    `Layer_{i}` (`.../Layer_0/...Attention_attention/...SelfOutput_output/torch.nn.modules.linear.Linear_dense;3`).

    A fused name can hold a neighbour's path (`Layer_0/.../LayerNorm;;.../Layer_1/.../Linear_query;1`, and
    the key and value projections carry the query's); `[^;/]*` keeps each step inside one path and one
    module, so `Output_output` (feed-forward) never matches `SelfOutput_output` (attention).
    """
    from .quant import part_modules

    if part == "embeddings":
        return "Embedding_word_embeddings"
    if part == "embedding_mapping":  # its own ops only: layer 0's query, key and value carry its path before `;;`
        return "^[^;]*_encoder/[^;/]*Linear_embedding_hidden_mapping_in;\\d*;$"  # the quantizer appends a `;`
    alternatives = []
    for path in part_modules(part):
        layer, *steps = path.removeprefix("encoder.encoder.layer.").split(".")
        alternatives.append(f"Layer_{layer}/" + "".join(f"[^;/]*_{s}/" for s in steps[:-1]) + f"[^;/]*Linear_{steps[-1]};")
    return "|".join(alternatives)


def _recipe(recipe: QuantRecipe):
    """ai-edge-quantizer's recipe rows for a quantized `recipe` (the module docstring)."""
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer import recipe as presets

    if recipe.weight_bits == 8 and not recipe.calibrated:
        return presets.dynamic_wi8_afp32()
    if recipe.calibrated:
        # Static int8 on FULLY_CONNECTED only, the embedding lookup int8 (dynamic: the policy has no static
        # EMBEDDING_LOOKUP). `static_wi8_ai8` on every supported op broke the model (max abs diff 126 on
        # the golden cases, tiny and 2-layer students alike); FULLY_CONNECTED alone kept a mean cosine of
        # 0.970 to fp32 on 40 STS-B train sentences (2-layer student).
        rp = recipe_manager.RecipeManager()
        rp.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.FULLY_CONNECTED,
                             activation_num_bits=8, weight_num_bits=8)
        return rp.get_quantization_recipe() + presets.dynamic_wi8c_afp32(
            operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP)
    if recipe.weight_bits == 4:  # blocks of 32 (INT4_GROUP)
        rows = presets.dynamic_wi4b32_afp32()
        for part in recipe.keep_int8:  # int4-mixed: the quantizer takes the last row whose regex matches an op
            rows = rows + presets.dynamic_wi8c_afp32(regex=_part_regex(part))
        return rows
    return _fp16_recipe()


def _op_counts(path: Path) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    ops = Counter(d["op_name"] for d in interp._get_ops_details())
    return dict(sorted(ops.items()))


def export(module: torch.nn.Module, example_inputs: tuple, path: Path, recipe: QuantRecipe, output_name: str = "embedding",
           calibration: list | None = None, dynamic: bool = False) -> dict:
    """Write `path` (.tflite) as `recipe` says (formats.Exporter). Returns notes (op counts of the flatbuffer).

    calibration: (input_ids, attention_mask) int32 (1, N) pairs (int8-static only).
    dynamic: refused: LiteRT artifacts take exactly their bucket (DYNAMIC_LENGTH).
    """
    import litert_torch

    path = Path(path)
    if dynamic:
        raise PocketBertError("tflite artifacts take exactly their bucket (DYNAMIC_LENGTH is False); pass dynamic=False")
    if recipe.calibrated and not calibration:
        raise PocketBertError("tflite int8-static needs calibration inputs")
    # Keyword sample inputs and a dict output give the signature the manifest's names
    # (`input_ids`, `attention_mask` -> `embedding` / `logits`) instead of args_0, args_1 -> output_0.
    named = _Named(module.eval(), output_name).eval()
    edge = litert_torch.convert(named, sample_kwargs=dict(zip(INPUT_NAMES, example_inputs)))
    if recipe.weight_bits == 32:
        edge.export(str(path))
    else:
        from ai_edge_quantizer import quantizer

        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            fp32 = Path(tmp) / "fp32.tflite"
            edge.export(str(fp32))
            qt = quantizer.Quantizer(str(fp32))
            qt.load_quantization_recipe(_recipe(recipe))
            if qt.need_calibration:
                samples = [dict(zip(INPUT_NAMES, (np.asarray(i, np.int32), np.asarray(m, np.int32))))
                           for i, m in calibration]
                qt.quantize(qt.calibrate({"serving_default": samples}, num_threads=1)).export_model(str(path), overwrite=True)
            else:
                qt.quantize().export_model(str(path), overwrite=True)
        path.chmod(0o644)  # the quantizer writes the file executable
    return {"ops": _op_counts(path)}


class Runner:
    """One interpreter; call with int32 (1, N) arrays. Inputs are matched by name, else by position."""

    def __init__(self, path: Path, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - older installs
            from tflite_runtime.interpreter import Interpreter
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        details = self.interp.get_input_details()
        by_name = {d["name"]: d["index"] for d in details}
        order = [d["index"] for d in details]
        self.ids_index = next((i for n, i in by_name.items() if "input_ids" in n or n.endswith("args_0")), order[0])
        self.mask_index = next((i for n, i in by_name.items() if "attention_mask" in n or n.endswith("args_1")), order[1])
        self.out_index = self.interp.get_output_details()[0]["index"]

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        self.interp.set_tensor(self.ids_index, np.ascontiguousarray(input_ids, dtype=np.int32))
        self.interp.set_tensor(self.mask_index, np.ascontiguousarray(attention_mask, dtype=np.int32))
        self.interp.invoke()
        return np.array(self.interp.get_tensor(self.out_index), dtype=np.float32)


def load(path: Path, threads: int = 1) -> Runner:
    return Runner(path, threads=threads)
