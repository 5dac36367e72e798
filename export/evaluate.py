"""STS through every runnable artifact of a bundle, each in its own runtime, next to PyTorch fp32.

Each sentence runs at batch 1 in the smallest bucket that holds it (the largest, truncated, when
none does), exactly as an app would. The PyTorch fp32 row runs the bundle's parent checkpoint with the
same truncation (the largest bucket), batched.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pocketbert.bundle.manifest import bucket_for, load_bundle
from pocketbert.errors import PocketBertError

from . import formats


def _encode(tok, texts: list[str], buckets: list[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(bucket, input_ids (1, N) int32, attention_mask (1, N) int32) per text."""
    largest = buckets[-1]
    out = []
    for ids in tok.encode_ids(texts):
        if len(ids) > largest:
            ids = ids[: largest - 1] + [ids[-1]]
        n = bucket_for(buckets, len(ids))
        input_ids = np.full((1, n), tok.pad_id, dtype=np.int32)
        mask = np.zeros((1, n), dtype=np.int32)
        input_ids[0, : len(ids)] = ids
        mask[0, : len(ids)] = 1
        out.append((n, input_ids, mask))
    return out


def _parent_row(bundle, texts: list[str], index, pairs, largest: int) -> dict:
    from pocketbert.files import path_sha256
    from pocketbert.pipeline.checkpoint import load_checkpoint
    from pocketbert.pipeline.evaluate import embed_texts, sts_spearman
    from pocketbert.pipeline.tokenizer import Tokenizer

    parent = bundle.manifest["model"]["parent"]
    path = Path(parent["path"])
    row = {"artifact": "pytorch (parent checkpoint)", "format": "pytorch", "quant": "fp32", "seq_len": largest}
    if not (path / "model.safetensors").is_file():
        return {**row, "status": "skipped", "spearman": None, "reason": f"parent checkpoint {path} not found"}
    if path_sha256(path / "model.safetensors") != parent["weights_sha256"]:
        return {**row, "status": "skipped", "spearman": None,
                "reason": f"parent checkpoint {path} changed since export (sha256 differs)"}
    model = load_checkpoint(path).model
    t0 = time.perf_counter()
    emb = embed_texts(model, Tokenizer(path), texts, max_length=largest)
    rho = sts_spearman(emb[[index[t] for t in pairs.s1]], emb[[index[t] for t in pairs.s2]], pairs.scores)
    return {**row, "status": "ok", "spearman": round(rho, 4), "seconds": round(time.perf_counter() - t0, 2)}


def evaluate_bundle(bundle_path, sts_path, formats_filter: list[str] | None = None, threads: int = 1) -> dict:
    """STS Spearman x100 per runnable (format, quant) of the bundle, plus the PyTorch fp32 parent row.

    Returns `{bundle, pairs, rows}`; a row per (format, quant) with `spearman`, `delta_vs_pytorch`
    (points) and `status` (`ok` or `skipped` with a reason, e.g. Core ML off macOS).
    Raises:
        PocketBertError: not an embedding bundle, a bad STS file, a bundle that fails its checks.
    """
    from pocketbert.pipeline.evaluate import read_sts, sts_spearman
    from pocketbert.pipeline.tokenizer import Tokenizer

    pairs = read_sts(sts_path)
    bundle = load_bundle(bundle_path)
    if bundle.task != "embedding":
        raise PocketBertError(f"{bundle_path} is a {bundle.task} bundle; eval --sts needs an embedding bundle "
                              "(export with --task embedding)")
    bundle.check_all_sha256()
    tok = Tokenizer(bundle.root)
    texts = list(dict.fromkeys(pairs.s1 + pairs.s2))
    index = {t: i for i, t in enumerate(texts)}
    buckets = bundle.seq_lens
    encoded = _encode(tok, texts, buckets)

    rows = [_parent_row(bundle, texts, index, pairs, buckets[-1])]
    groups: dict[tuple[str, str], dict[int, dict]] = {}
    for a in bundle.artifacts:
        if not formats_filter or a["format"] in formats_filter:
            groups.setdefault((a["format"], a["quant"]), {})[a["seq_len"]] = a
    if "executorch" in {f for f, _ in groups}:
        from .executorch import set_threads

        set_threads(threads)
    for (fmt, quant), by_len in groups.items():
        have = sorted(by_len)
        names = ", ".join(by_len[n]["file"] for n in have)
        row = {"artifact": names, "format": fmt, "quant": quant, "seq_len": have,
               "size_bytes": sum(by_len[n]["size_bytes"] for n in have)}
        mod = formats.module(fmt)
        reason = mod.unavailable_reason() if hasattr(mod, "unavailable_reason") else None
        if reason:
            rows.append({**row, "status": "skipped", "spearman": None, "reason": reason})
            continue
        runners = {n: mod.load(bundle.artifact_path(by_len[n])) for n in have}
        t0 = time.perf_counter()
        group_inputs = encoded if have == buckets else _encode(tok, texts, have)
        emb = [np.asarray(runners[n](ids, mask), dtype=np.float32).reshape(-1) for n, ids, mask in group_inputs]
        emb = np.stack(emb)
        rho = sts_spearman(emb[[index[t] for t in pairs.s1]], emb[[index[t] for t in pairs.s2]], pairs.scores)
        rows.append({**row, "status": "ok", "spearman": round(rho, 4),
                     "seconds": round(time.perf_counter() - t0, 2)})
    ref = rows[0]["spearman"]
    for r in rows:
        r["delta_vs_pytorch"] = None if ref is None or r["spearman"] is None else round(r["spearman"] - ref, 4)
    return {"bundle": str(bundle_path), "sts": str(sts_path), "pairs": len(pairs.scores), "rows": rows}


def format_table(result: dict) -> str:
    lines = [f"STS Spearman x100 on {result['pairs']} pairs ({result['sts']}), bundle {result['bundle']}",
             f"{'format':<11} {'quant':<5} {'buckets':<10} {'spearman':>9} {'delta':>7}  note"]
    for r in result["rows"]:
        rho = "-" if r["spearman"] is None else f"{r['spearman']:.2f}"
        delta = "-" if r["delta_vs_pytorch"] is None else f"{r['delta_vs_pytorch']:+.2f}"
        buckets = ",".join(map(str, r["seq_len"])) if isinstance(r["seq_len"], list) else str(r["seq_len"])
        note = r.get("reason", "") if r["status"] != "ok" else (f"{r['seconds']:.1f}s" if "seconds" in r else "")
        lines.append(f"{r['format']:<11} {r['quant']:<5} {buckets:<10} {rho:>9} {delta:>7}  {note}")
    return "\n".join(lines)
