"""format name -> its exporter module (imported lazily: each pulls in a heavy toolchain)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .naming import FORMATS

# Distributions whose versions each format records in its artifacts' `tool_versions`.
TOOLS = {
    "executorch": ("torch", "executorch"),
    "tflite": ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"),
    "coreml": ("torch", "coremltools"),
    "onnx": ("torch", "onnx", "onnxscript", "onnxruntime"),
}


def module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise KeyError(fmt)
    return importlib.import_module(f"pocketbert.export.{fmt}")


def tool_versions(fmt: str) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in TOOLS[fmt]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
