"""Baselines measured in the same interleaved run as a bundle's artifacts: the teacher and the peers (public
models a user could download instead) as users run them today (transformers eager fp32, ONNX Runtime fp32
and dynamic int8), and eval-JSON quality for the rows.

The caller names each model and gives its encoder config (HF keys, for FLOPs): runtime_bench imports no
training code, so it never looks inside checkpoints' lineage or imports peers itself.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256


@dataclass
class Reference:
    """A model a bundle is compared with: an HF folder, its encoder config and, if evaluated, its quality.

    `name` prefixes its rows: `teacher` for the teacher, `peer_<slug>` for a peer.
    """

    path: Path
    config: dict  # hidden_size, num_hidden_layers, intermediate_size, num_attention_heads, vocab_size, ...
    quality: dict = field(default_factory=dict)
    name: str = "teacher"

    @classmethod
    def peer(cls, label: str, path: Path, config: dict) -> Reference:
        from pocketbert.bundle.naming import model_slug

        return cls(Path(path), config, name=f"peer_{model_slug(label)}")


def default_cache() -> Path:
    return Path(os.environ.get("POCKETBERT_CACHE") or Path.home() / ".cache" / "pocketbert")


def _export_teacher_onnx(teacher: Path, dst: Path) -> None:
    """The teacher as an ONNX feature extractor with mean pooling, dynamic batch and length (the
    sentence-transformers `backend="onnx"` route; the pooling runs in the graph instead of numpy)."""
    import torch
    from transformers import AutoModel

    from .worker import mean_pool

    model = AutoModel.from_pretrained(teacher).eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return mean_pool(self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state,
                             attention_mask)

    ids = torch.ones(1, 16, dtype=torch.long)
    dyn = {0: "batch", 1: "sequence"}
    torch.onnx.export(MeanPooled(model), (ids, ids), str(dst), input_names=["input_ids", "attention_mask"],
                      output_names=["embedding"], dynamic_axes={"input_ids": dyn, "attention_mask": dyn},
                      opset_version=17, dynamo=False)


def prepare_baselines(ref: Reference, cache_root: Path | None = None) -> list[dict]:
    """Runnable baseline descriptions of one reference model; its ONNX files are made once per weights hash,
    in the cache (`<cache>/teacher-onnx/<sha>`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(ref.path)
    weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), None)
    key = path_sha256(weights)[:16] if weights else path.name
    folder = Path(cache_root or default_cache()) / "teacher-onnx" / key
    fp32, int8 = folder / "teacher_fp32.onnx", folder / "teacher_int8.onnx"
    if not int8.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=folder.parent))
        try:
            _export_teacher_onnx(path, tmp / fp32.name)
            # sentence-transformers' qint8 route: dynamic quantization, int8 weights, per-tensor
            quantize_dynamic(str(tmp / fp32.name), str(tmp / int8.name), weight_type=QuantType.QInt8)
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    cfg = {**ref.config, "task": "embedding"}
    weight_size = sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))
    rows = [
        {"name": f"{ref.name}_pytorch_fp32", "format": "pytorch", "backend": "eager", "quant": "fp32",
         "runner": "pytorch_eager", "path": str(path), "size_bytes": weight_size, "config": cfg},
        {"name": f"{ref.name}_onnx_fp32", "format": "onnx", "backend": "onnxruntime", "quant": "fp32",
         "runner": "onnxruntime", "path": str(fp32), "size_bytes": fp32.stat().st_size, "config": cfg},
        {"name": f"{ref.name}_onnx_int8", "format": "onnx", "backend": "onnxruntime", "quant": "int8",
         "runner": "onnxruntime", "path": str(int8), "size_bytes": int8.stat().st_size, "config": cfg},
    ]
    for row in rows:
        if ref.quality and row["quant"] == "fp32":  # an eval of the checkpoint is its fp32 quality
            row["quality"] = ref.quality
    return rows


def _probe(doc: dict) -> dict:
    """The held-out probe's accuracy of the PyTorch fp32 model, where the eval measured one (the same for every
    artifact of a bundle: the probe reads the model, not a runtime)."""
    value = doc.get("probe_accuracy")
    return {"probe_accuracy": value} if isinstance(value, (int, float)) else {}


def read_quality(paths) -> tuple[dict, dict]:
    """({(format, quant): quality} for bundle artifacts, {checkpoint path: quality}) from eval JSON files."""
    by_artifact, by_checkpoint = {}, {}
    for p in paths or []:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PocketBertError(f"--quality {p}: cannot read it as JSON ({e}); pass `pocketbert eval ... --json` output") from None
        source = f"pocketbert eval: {Path(p).name}"
        if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
            for r in doc["rows"]:
                if isinstance(r.get("spearman"), (int, float)) and r.get("format") and r.get("quant"):
                    by_artifact[(r["format"], r["quant"])] = {"sts_spearman_x100": r["spearman"], "source": source,
                                                              **_probe(doc)}
        elif isinstance(doc, dict) and isinstance(doc.get("spearman"), (int, float)) and doc.get("checkpoint"):
            by_checkpoint[str(Path(doc["checkpoint"]).resolve())] = {"sts_spearman_x100": doc["spearman"], "source": source,
                                                                     **_probe(doc)}
        else:
            raise PocketBertError(f"--quality {p}: no STS spearman in it; pass `pocketbert eval ... --json` output")
    return by_artifact, by_checkpoint
