"""The one place artifact file names are made: `{model}_{backend}_{quant}_seq{N}.{ext}`.

Readers never parse these names back; they find artifacts through `manifest.json` (see BUNDLE.md).
"""

from __future__ import annotations

import re

# format -> (backend, file extension). `.mlpackage` is a folder.
FORMATS: dict[str, tuple[str, str]] = {
    "executorch": ("xnnpack", "pte"),
    "tflite": ("litert", "tflite"),
    "coreml": ("coreml", "mlpackage"),
    "onnx": ("onnxruntime", "onnx"),
}
# The quantization ladder, largest first. What each name means per format is the table in quant.py.
QUANTS = ("fp32", "fp16", "int8", "int8-static", "int4-mixed", "int4")


def backend_of(fmt: str) -> str:
    return FORMATS[fmt][0]


def model_slug(name: str) -> str:
    """A file-name-safe model name: lower case, [a-z0-9-] only (so `_` stays the field separator)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "model"


def artifact_name(model: str, fmt: str, quant: str, seq_len: int) -> str:
    """`{model}_{backend}_{quant}_seq{N}.{ext}`, e.g. `s3_xnnpack_int8_seq128.pte`, `s3_litert_int8-static_seq128.tflite`.

    Quant names use `-`, never `_`, so `_` stays the field separator.
    """
    backend, ext = FORMATS[fmt]
    return f"{model_slug(model)}_{backend}_{quant}_seq{int(seq_len)}.{ext}"
