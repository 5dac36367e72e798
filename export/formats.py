"""format name -> its exporter module (imported lazily: each pulls in a heavy toolchain)."""

from __future__ import annotations

import importlib
from types import ModuleType

from pocketbert.bundle.naming import FORMATS

# Distributions whose versions each format records in its artifacts' `tool_versions`.
TOOLS = {
    "executorch": ("torch", "executorch"),
    "tflite": ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"),
    "coreml": ("torch", "coremltools"),
    "onnx": ("torch", "onnx", "onnxscript", "onnxruntime"),
}

# Toolchain modules imported before an artifact's clock starts, so that `export_seconds` measures
# conversion and quantization, not the first import of a large package.
WARM_UP = {
    "executorch": ("executorch.exir", "executorch.backends.xnnpack.partition.xnnpack_partitioner",
                   "executorch.backends.xnnpack.quantizer.xnnpack_quantizer", "torchao.quantization.pt2e.quantize_pt2e"),
    "tflite": ("litert_torch", "ai_edge_quantizer.quantizer", "ai_edge_litert.interpreter"),
    "coreml": ("coremltools", "coremltools.optimize.coreml"),
    "onnx": ("onnx", "onnxscript", "onnxruntime", "onnxruntime.quantization"),
}


def module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise KeyError(fmt)
    return importlib.import_module(f"pocketbert.export.{fmt}")


def warm_up(fmt: str) -> None:
    for name in WARM_UP[fmt]:
        importlib.import_module(name)


def tool_versions(fmt: str) -> dict[str, str]:
    """The versions an artifact of `fmt` records: its toolchain's distributions only."""
    from pocketbert.files import dist_versions

    return dist_versions(*TOOLS[fmt])


def run_or_skip(fmt: str, path, inputs: list[tuple], seq_len: int, out_name: str, out_shape: list[int],
                quant: str) -> tuple[list | None, dict | None]:
    """Run an artifact in its runtime on `inputs` ((ids, mask) int32 pairs): `(outputs, None)`.

    A runtime that cannot run here (Core ML off macOS) gives `(None, skipped)`: a parity record with
    status `skipped`, the reason, and the format's spec check where it has one.
    """
    mod = module(fmt)
    reason = mod.unavailable_reason() if hasattr(mod, "unavailable_reason") else None
    if reason:
        spec = mod.check_spec(path, seq_len, out_name, out_shape, quant) if hasattr(mod, "check_spec") else {}
        return None, {"status": "skipped", "max_abs_diff": None, "min_cosine": None, "cases": 0, "reason": reason,
                      **({"spec_check": spec} if spec else {})}
    run = mod.load(path)
    return [run(ids, mask) for ids, mask in inputs], None
