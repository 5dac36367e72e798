"""format name -> its exporter module (imported lazily: each pulls in a heavy toolchain).

Each format's module (executorch.py, tflite.py, coreml.py, onnx.py) is an `Exporter`: the same few names, so
that export, verify, the gate and eval call every format alike. Backend specifics stay inside each module.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from pocketbert.bundle.naming import FORMATS

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from .quant import QuantRecipe

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


class Runner(Protocol):
    """One loaded artifact: int32 (1, N) input_ids and attention_mask -> its float32 output."""

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Exporter(Protocol):
    """What every format's module provides."""

    # The runtime takes any length up to the bucket (ExecuTorch, ONNX Runtime); False: exactly the bucket.
    DYNAMIC_LENGTH: bool

    def export(self, module: nn.Module, example_inputs: tuple, path: Path, recipe: QuantRecipe,
               output_name: str = "embedding", calibration: list | None = None, dynamic: bool = False) -> dict:
        """Write the artifact `path` from a TaskModule and (input_ids, attention_mask) int32 (1, N) examples, as
        `recipe` (already validated: quant.QuantRecipe.of) says. Returns the format's notes for the manifest.

        calibration: (input_ids, attention_mask) int32 (1, N) pairs, for the recipes with static activations.
        dynamic: the artifact takes any length from wrapper.MIN_SEQ_LEN to N (DYNAMIC_LENGTH formats only).
        """
        ...

    def load(self, path: Path, threads: int = 1) -> Runner:
        """The artifact loaded in its runtime, on `threads` threads where the runtime lets us choose."""
        ...

    def unavailable_reason(self) -> str | None:
        """Why the runtime cannot run artifacts on this host (Core ML off macOS); None: it can."""
        ...

    def check_spec(self, path: Path, seq_len: int, output_name: str, output_shape: list[int], quant: str) -> dict:
        """What can be checked of an artifact without running it (where `unavailable_reason` says why not); {}:
        nothing beyond parity, which the runtime checks."""
        ...


def runs_everywhere() -> None:
    """`unavailable_reason` of a runtime that runs on every host pocketbert exports on."""
    return None


def no_spec_check(path: Path, seq_len: int, output_name: str, output_shape: list[int], quant: str) -> dict:
    """`check_spec` of a runtime that runs on every host: parity, in the runtime, checks the artifact."""
    return {}


def module(fmt: str) -> Exporter:
    if fmt not in FORMATS:
        raise KeyError(fmt)
    return cast(Exporter, importlib.import_module(f"pocketbert.export.{fmt}"))


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
    reason = mod.unavailable_reason()
    if reason:
        spec = mod.check_spec(path, seq_len, out_name, out_shape, quant)
        return None, {"status": "skipped", "max_abs_diff": None, "min_cosine": None, "cases": 0, "reason": reason,
                      **({"spec_check": spec} if spec else {})}
    run = mod.load(path)
    return [run(ids, mask) for ids, mask in inputs], None
