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
    static: bool = False  # a static (model2vec) model: measured as model2vec runs it (numpy), no ONNX rows

    @classmethod
    def peer(cls, label: str, path: Path, config: dict, static: bool = False) -> Reference:
        from pocketbert.bundle.naming import model_slug

        return cls(Path(path), config, name=f"peer_{model_slug(label)}", static=static)


def default_cache() -> Path:
    return Path(os.environ.get("POCKETBERT_CACHE") or Path.home() / ".cache" / "pocketbert")


def mean_pooled(model):
    """`model` (a transformers encoder) with sentence-transformers mean pooling in its graph:
    (input_ids, attention_mask) (B, T) of any int type -> (B, H). Exported as an ONNX feature extractor."""
    import torch

    from .worker import mean_pool

    class MeanPooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            # transformers embeds int64 ids; int32 inputs (the bundle contract) are cast in the graph
            hidden = self.m(input_ids=input_ids.long(), attention_mask=attention_mask.long()).last_hidden_state
            return mean_pool(hidden, attention_mask)

    return MeanPooled(model)


def _export_teacher_onnx(teacher: Path, dst: Path) -> None:
    """The teacher as an ONNX feature extractor with mean pooling, dynamic batch and length (the
    sentence-transformers `backend="onnx"` route; the pooling runs in the graph instead of numpy)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(teacher).eval()
    ids = torch.ones(1, 16, dtype=torch.long)
    dyn = {0: "batch", 1: "sequence"}
    torch.onnx.export(mean_pooled(model), (ids, ids), str(dst), input_names=["input_ids", "attention_mask"],
                      output_names=["embedding"], dynamic_axes={"input_ids": dyn, "attention_mask": dyn},
                      opset_version=17, dynamo=False)


def prepare_baselines(ref: Reference, cache_root: Path | None = None) -> list[dict]:
    """Runnable baseline descriptions of one reference model; its ONNX files are made once per weights hash,
    in the cache (`<cache>/teacher-onnx/<sha>`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(ref.path)
    if ref.static:
        row = {"name": f"{ref.name}_model2vec_fp32", "format": "model2vec", "backend": "numpy", "quant": "fp32",
               "runner": "model2vec", "path": str(path), "size_bytes": (path / "model.safetensors").stat().st_size,
               "config": {**ref.config, "task": "embedding"}}
        return [{**row, "quality": ref.quality} if ref.quality else row]
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


def _measured(r: dict) -> dict:
    """The quality numbers of one eval row or document: STS (`sts_spearman_x100`) and the dev suite, flat
    (`suite_mean_x100` first, then `suite_stsb_x100`, ...), as the results schema's `quality` holds them."""
    q = {}
    if isinstance(r.get("suite"), dict) and isinstance(r["suite"].get("mean"), (int, float)):
        q["suite_mean_x100"] = r["suite"]["mean"]
        q |= {f"suite_{k}_x100": v for k, v in r["suite"].items() if k != "mean" and isinstance(v, (int, float))}
    if isinstance(r.get("spearman"), (int, float)):
        q["sts_spearman_x100"] = r["spearman"]
    return q


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
                if _measured(r) and r.get("format") and r.get("quant"):
                    by_artifact[(r["format"], r["quant"])] = {**_measured(r), "source": source, **_probe(doc)}
        elif isinstance(doc, dict) and _measured(doc) and doc.get("checkpoint"):
            by_checkpoint[str(Path(doc["checkpoint"]).resolve())] = {**_measured(doc), "source": source, **_probe(doc)}
        else:
            raise PocketBertError(f"--quality {p}: no STS spearman or suite in it; pass `pocketbert eval ... --json` "
                                  "output")
    return by_artifact, by_checkpoint
