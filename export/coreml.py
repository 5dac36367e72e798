"""Core ML: `coremltools.convert` from a `torch.export` program -> `.mlpackage` (mlprogram, iOS 17).

fp32 converts with compute_precision FLOAT32 (fp32 weights; runs fp32 on CPU). fp16 is Core ML's
default: fp16 weights and compute (the GPU and Neural Engine compute in fp16 in any case). int8 =
the fp16 program with `linear_quantize_weights` (int8 symmetric per-channel weights). int4 = an iOS 18
program (per-block quantization needs it) with int4 symmetric weights in blocks of 32, the embedding
table included; int4-mixed keeps the sensitive parts' weights at int8 through `op_name_configs`.
int8-static is refused: calibrating activations runs the model, which only macOS can.

Core ML predicts only on macOS. Elsewhere verification checks the spec instead: input and output
names, dtypes and shapes, and after quantization that the weights really are int8.
"""

from __future__ import annotations

import logging
import platform
import warnings
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import PocketBertError

from .quant import QuantRecipe
from .wrapper import INPUT_NAMES

MIN_TARGET = "iOS17"
# Converted from a static `torch.export` program: each artifact takes exactly its bucket (Core ML's flexible
# input shapes are not used).
DYNAMIC_LENGTH = False
log = logging.getLogger("pocketbert.export.coreml")


def unavailable_reason() -> str | None:
    if platform.system() != "Darwin":
        return f"Core ML predicts only on macOS (this is {platform.system()}); spec checked instead"
    return None


def _part_consts(mlmodel, parts: list[str]) -> list[str]:
    """Names of the const weight ops of `parts` (`embeddings`, `layer.{i}.attention`, ...): the converter
    names them after the parameter (`p_encoder_encoder_layer_0_attention_self_query_weight_to_fp16`)."""
    from .quant import part_modules

    fn = mlmodel.get_spec().mlProgram.functions["main"]
    ops = [op.outputs[0].name for op in fn.block_specializations[fn.opset].operations if op.type == "const"]
    keys = [path.replace(".", "_") + "_weight_to_fp16" for p in parts for path in part_modules(p)]
    return [name for name in ops if any(name.endswith(k) for k in keys)]


def export(module: torch.nn.Module, example_inputs: tuple, path: Path, recipe: QuantRecipe, output_name: str = "embedding",
           calibration: list | None = None, dynamic: bool = False) -> dict:
    """Write `path` (a .mlpackage folder) as `recipe` says (formats.Exporter). Returns notes (compute precision,
    weight dtypes). Core ML has no calibrated recipe (quant.REFUSALS), so `calibration` is not read.

    dynamic: refused: Core ML artifacts take exactly their bucket (DYNAMIC_LENGTH).
    """
    import coremltools as ct

    if dynamic:
        raise PocketBertError("coreml artifacts take exactly their bucket (DYNAMIC_LENGTH is False); pass dynamic=False")
    with torch.no_grad():
        program = torch.export.export(module.eval(), example_inputs)
    program = program.run_decompositions({})
    inputs = [ct.TensorType(name=n, shape=tuple(t.shape), dtype=np.int32) for n, t in zip(INPUT_NAMES, example_inputs)]
    precision = ct.precision.FLOAT32 if recipe.weight_bits == 32 else ct.precision.FLOAT16
    target = "iOS18" if recipe.weight_bits == 4 else MIN_TARGET  # per-block quantization needs iOS 18
    mlmodel = ct.convert(program, inputs=inputs, outputs=[ct.TensorType(name=output_name)],
                         convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target),
                         compute_precision=precision, skip_model_load=True)
    if recipe.weight_bits in (8, 4):
        import coremltools.optimize.coreml as cto

        int8 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                           weight_threshold=512)
        if recipe.weight_bits == 8:
            config = cto.OptimizationConfig(global_config=int8)
        else:
            config = cto.OptimizationConfig(
                global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                                          block_size=recipe.group, weight_threshold=512),
                op_name_configs={name: int8 for name in _part_consts(mlmodel, list(recipe.keep_int8))})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            mlmodel = cto.linear_quantize_weights(mlmodel, config=config)
        _explain_quantizer_warnings(caught, module)
    mlmodel.save(str(path))
    return {"minimum_deployment_target": target, "weight_dtypes": weight_dtypes(path)}


def _explain_quantizer_warnings(caught: list, module: torch.nn.Module) -> None:
    """coremltools' block quantizer computes `round(w / scale)` with scale = absmax / qmax per block: a block whose
    weights are all zero has scale 0, so numpy warns `invalid value encountered in divide` (0 / 0) and then `in cast`
    (NaN -> int). Such a block dequantizes to code x 0 = 0 whatever code was stored, exactly its fp32 value, so the
    warning costs nothing; it is explained in the log (with the count of all-zero blocks), not shown. Any other
    warning is passed on as it came."""
    zero_div = [w for w in caught if issubclass(w.category, RuntimeWarning) and "invalid value" in str(w.message)]
    for w in caught:
        if w not in zero_div:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if zero_div:
        from .quant import INT4_GROUP

        blocks = sum(int((p.detach().reshape(-1, INT4_GROUP).abs().amax(1) == 0).sum())
                     for p in module.parameters() if p.ndim == 2 and p.shape[-1] % INT4_GROUP == 0)
        log.debug("coreml: %d numpy 'invalid value' warnings from coremltools' block quantizer: all-zero weight blocks "
                 "(%d in this model's weights, blocks of %d) have scale 0; they dequantize to 0 exactly",
                 len(zero_div), blocks, INT4_GROUP)


def _spec(path: Path):
    import coremltools as ct

    return ct.models.MLModel(str(path), skip_model_load=True).get_spec()


def weight_dtypes(path: Path) -> dict[str, int]:
    """Count of weight tensors (>= 64 elements) per dtype, read from the mlprogram spec.

    int8 weights appear as the int8 `quantized_data` of `constexpr_affine_dequantize` ops (iOS 17);
    iOS 18 programs hold int4/int8 `data` as inline inputs of `constexpr_blockwise_shift_scale` ops.
    """
    from coremltools.proto import MIL_pb2

    fn = _spec(path).mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    counts: dict[str, int] = {}

    def count(t) -> None:
        size = 1
        for d in t.dimensions:
            size *= d.constant.size
        if size >= 64:
            name = MIL_pb2.DataType.Name(t.dataType).lower()
            counts[name] = counts.get(name, 0) + 1

    for op in block.operations:
        if not op.type.startswith("const"):
            continue
        for attr in op.attributes.values():
            if attr.type.WhichOneof("type") == "tensorType":
                count(attr.type.tensorType)
        for arg in op.inputs.values():
            for a in arg.arguments:
                if a.WhichOneof("binding") == "value" and a.value.type.WhichOneof("type") == "tensorType":
                    count(a.value.type.tensorType)
    return dict(sorted(counts.items()))


def check_spec(path: Path, seq_len: int, output_name: str, output_shape: list[int], quant: str) -> dict:
    """Check names, dtypes, shapes (and int8 weights for int8); raise PocketBertError on a mismatch."""
    spec = _spec(path)
    problems = []
    ins = {i.name: i for i in spec.description.input}
    for name in INPUT_NAMES:
        if name not in ins:
            problems.append(f"input {name} missing (has {sorted(ins)})")
            continue
        arr = ins[name].type.multiArrayType
        if list(arr.shape) != [1, seq_len]:
            problems.append(f"input {name} shape {list(arr.shape)} != [1, {seq_len}]")
        if arr.dataType != 131104:  # ArrayFeatureType.INT32
            problems.append(f"input {name} is not int32")
    outs = {o.name: o for o in spec.description.output}
    if output_name not in outs:
        problems.append(f"output {output_name} missing (has {sorted(outs)})")
    elif outs[output_name].type.multiArrayType.shape and list(outs[output_name].type.multiArrayType.shape) != list(output_shape):
        problems.append(f"output {output_name} shape {list(outs[output_name].type.multiArrayType.shape)} != {output_shape}")
    dtypes = weight_dtypes(path)
    if quant == "int8" and not dtypes.get("int8"):
        problems.append(f"int8 artifact has no int8 weights ({dtypes})")
    if quant in ("int4", "int4-mixed") and not dtypes.get("int4"):
        problems.append(f"{quant} artifact has no int4 weights ({dtypes})")
    if quant == "fp16" and dtypes.get("float32"):
        problems.append(f"fp16 artifact still has fp32 weights ({dtypes})")
    if problems:
        raise PocketBertError(f"Core ML spec check failed for {Path(path).name}: {'; '.join(problems)}")
    return {"inputs": list(INPUT_NAMES), "output": output_name, "weight_dtypes": dtypes, "status": "passed"}


class Runner:
    """macOS only: one MLModel on CPU; call with int32 (1, N) arrays."""

    def __init__(self, path: Path, compute_units: str = "CPU_ONLY"):
        import coremltools as ct

        reason = unavailable_reason()
        if reason:
            raise PocketBertError(reason)
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        self.output = self.model.get_spec().description.output[0].name

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out = self.model.predict({"input_ids": np.asarray(input_ids, dtype=np.int32),
                                  "attention_mask": np.asarray(attention_mask, dtype=np.int32)})
        return np.asarray(out[self.output], dtype=np.float32)


def load(path: Path, threads: int = 1) -> Runner:
    """A Runner (macOS only); Core ML schedules its own threads, so `threads` is not read (formats.Exporter)."""
    return Runner(path)
