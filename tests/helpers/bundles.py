"""A tiny bundle written by hand in the BUNDLE.md format, so that bench tests do not depend on the exporter."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

SEQ_LENS = [16, 32]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def make_tiny_bundle(root: Path, teacher: Path, broken: bool = True) -> Path:
    """A bundle in the BUNDLE.md format with ONNX fp32/int8 artifacts of a tiny BERT (mean pooled),
    written by hand so these tests do not depend on the exporter; `broken` adds a .tflite of garbage bytes."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    from pocketbert.pipeline.checkpoint import read_config
    from pocketbert.runtime_bench.baselines import mean_pooled

    root.mkdir(parents=True)
    model = AutoModel.from_pretrained(teacher).eval()

    artifacts = []
    for n in SEQ_LENS:
        ids = torch.ones(1, n, dtype=torch.int32)
        fp32 = root / f"tiny_onnxruntime_fp32_seq{n}.onnx"
        torch.onnx.export(mean_pooled(model), (ids, ids), str(fp32), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=17, dynamo=False)
        int8 = root / f"tiny_onnxruntime_int8_seq{n}.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        files = [(fp32, "onnx", "onnxruntime", "fp32"), (int8, "onnx", "onnxruntime", "int8")]
        if broken:
            bad = root / f"tiny_litert_int8_seq{n}.tflite"
            bad.write_bytes(b"this is not a flatbuffer" * 10)
            files.append((bad, "tflite", "litert", "int8"))
        for path, fmt, backend, quant in files:
            artifacts.append({"file": path.name, "format": fmt, "backend": backend, "quant": quant, "seq_len": n,
                              "size_bytes": path.stat().st_size, "sha256": _sha(path), "export_seconds": 0.1,
                              "tool_versions": {}, "parity": {"status": "skipped", "reason": "test bundle"}, "notes": {}})
    shutil.copy(teacher / "vocab.txt", root / "vocab.txt")
    (root / "tokenizer.json").write_text("{}")
    (root / "golden.json").write_text(json.dumps({"schema_version": "1.0", "cases": []}))
    cfg = {**read_config(teacher).to_dict(), "task": "embedding"}
    shape = {str(n): [1, n] for n in SEQ_LENS}
    manifest = {
        "schema_version": "1.0",
        "model": {"name": "tiny", "task": "embedding", "config": cfg, "num_parameters": 100000,
                  "parent": {"path": str(teacher), "weights_sha256": _sha(teacher / "model.safetensors")}},
        "inputs": [{"name": "input_ids", "dtype": "int32", "shape": shape},
                   {"name": "attention_mask", "dtype": "int32", "shape": shape}],
        "outputs": [{"name": "embedding", "dtype": "float32", "shape": [1, cfg["hidden_size"]], "meaning": "sentence embedding",
                     "pooling": "mean", "normalized": False}],
        "seq_lens": SEQ_LENS,
        "tokenizer": {"type": "wordpiece", "vocab_file": "vocab.txt", "tokenizer_file": "tokenizer.json", "lowercase": True,
                      "strip_accents": True, "tokenize_chinese_chars": True, "max_input_chars_per_word": 100,
                      "unk_token": "[UNK]", "special_tokens": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4},
                      "max_length": max(SEQ_LENS)},
        "tolerances": {k: {"max_abs_diff": 0.1, "min_cosine": 0.99} for k in ("onnx/fp32", "onnx/int8", "tflite/int8")},
        "golden": {"file": "golden.json", "sha256": _sha(root / "golden.json")},
        "artifacts": artifacts,
        "provenance": {"command": "test", "versions": {}, "created_utc": "2026-01-01T00:00:00Z"},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
