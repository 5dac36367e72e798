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


def _parent_row(bundle, texts: list[str], largest: int) -> tuple[dict, np.ndarray | None]:
    """The PyTorch fp32 row of the bundle's parent checkpoint (truncated as the artifacts are) and its embeddings."""
    from pocketbert.files import path_sha256
    from pocketbert.pipeline.evaluate import embed_texts
    from pocketbert.pipeline.names import load
    from pocketbert.pipeline.tokenizer import Tokenizer

    parent = bundle.manifest["model"]["parent"]
    path = Path(parent["path"])
    row = {"artifact": "pytorch (parent checkpoint)", "format": "pytorch", "quant": "fp32", "seq_len": largest}
    if not (path / "model.safetensors").is_file():
        return {**row, "status": "skipped", "reason": f"parent checkpoint {path} not found"}, None
    if path_sha256(path / "model.safetensors") != parent["weights_sha256"]:
        return {**row, "status": "skipped",
                "reason": f"parent checkpoint {path} changed since export (sha256 differs)"}, None
    model = load(path).model
    return {**row, "status": "ok"}, embed_texts(model, Tokenizer(path), texts, max_length=largest)


def _artifact_groups(bundle, formats_filter: list[str] | None) -> dict[tuple[str, str], dict[int, dict]]:
    """The bundle's artifacts as (format, quant) -> bucket -> manifest row, in manifest order."""
    groups: dict[tuple[str, str], dict[int, dict]] = {}
    for a in bundle.artifacts:
        if not formats_filter or a["format"] in formats_filter:
            groups.setdefault((a["format"], a["quant"]), {})[a["seq_len"]] = a
    return groups


def _artifact_row(bundle, fmt: str, quant: str, by_len: dict[int, dict], tok, texts: list[str],
                  encoded: list) -> tuple[dict, np.ndarray | None, float]:
    """One (format, quant) family's row, its (len(texts), H) embeddings and the seconds they took once the
    artifacts were loaded. Each text runs in the smallest bucket of the family that holds it (`encoded`: the
    texts in the bundle's buckets, reused when the family has them all). `(row, None, 0)` when the runtime
    cannot run here."""
    have = sorted(by_len)
    row = {"artifact": ", ".join(by_len[n]["file"] for n in have), "format": fmt, "quant": quant, "seq_len": have,
           "size_bytes": sum(by_len[n]["size_bytes"] for n in have)}
    mod = formats.module(fmt)
    reason = mod.unavailable_reason()
    if reason:
        return {**row, "status": "skipped", "spearman": None, "reason": reason}, None, 0.0
    runners = {n: mod.load(bundle.artifact_path(by_len[n])) for n in have}
    t0 = time.perf_counter()
    inputs = encoded if have == bundle.seq_lens else _encode(tok, texts, have)
    emb = np.stack([np.asarray(runners[n](ids, mask), dtype=np.float32).reshape(-1) for n, ids, mask in inputs])
    return {**row, "status": "ok"}, emb, time.perf_counter() - t0


def _add_deltas(rows: list[dict], suite) -> None:
    """Each row's `delta_vs_pytorch` (Spearman points) and, with a suite, `suite_delta_vs_pytorch` (of the mean),
    against the first row (PyTorch fp32), in place; None where either side has no score."""
    ref = rows[0]
    for r in rows:
        r["delta_vs_pytorch"] = (None if ref.get("spearman") is None or r.get("spearman") is None
                                 else round(r["spearman"] - ref["spearman"], 4))
        if suite is not None:
            r["suite_delta_vs_pytorch"] = (None if "suite" not in ref or "suite" not in r
                                           else round(r["suite"]["mean"] - ref["suite"]["mean"], 2))


def evaluate_bundle(bundle_path, sts_path=None, formats_filter: list[str] | None = None, threads: int = 1,
                    suite=None) -> dict:
    """STS Spearman x100 (`sts_path`) and/or the dev suite (`suite`: a name or a loaded `Suite`) per runnable
    (format, quant) of the bundle, each artifact in its own runtime, plus the PyTorch fp32 parent row.

    Returns `{bundle, rows}` (+ `sts`, `pairs`; + `suite_name`); a row per (format, quant) with `spearman` and
    `delta_vs_pytorch` (points), `suite` ({stsb, sickr, sst2, agnews, mean}) and `suite_delta_vs_pytorch` (of
    the mean), and `status` (`ok` or `skipped` with a reason, e.g. Core ML off macOS).
    Raises:
        PocketBertError: not an embedding bundle, a bad STS or suite file, a bundle that fails its checks.
    """
    from pocketbert.pipeline.evaluate import read_sts, sts_of
    from pocketbert.pipeline.suite import load_suite, score_suite
    from pocketbert.pipeline.tokenizer import Tokenizer

    if sts_path is None and suite is None:
        raise PocketBertError("nothing to evaluate: pass an STS file (--sts) and/or a suite (--suite dev)")
    pairs = read_sts(sts_path) if sts_path else None
    suite = load_suite(suite) if isinstance(suite, str) else suite
    bundle = load_bundle(bundle_path)
    if bundle.task != "embedding":
        raise PocketBertError(f"{bundle_path} is a {bundle.task} bundle; eval needs an embedding bundle "
                              "(export with --task embedding)")
    bundle.check_all_sha256()
    tok = Tokenizer(bundle.root)
    texts = list(dict.fromkeys((pairs.s1 + pairs.s2 if pairs else []) + (suite.texts() if suite else [])))
    index = {t: i for i, t in enumerate(texts)}

    def scored(row: dict, emb: np.ndarray, seconds: float) -> dict:
        def embed(ts: list[str]) -> np.ndarray:
            return emb[[index[t] for t in ts]]

        if pairs is not None:
            row["spearman"] = round(sts_of(embed, pairs), 4)
        if suite is not None:
            row["suite"] = score_suite(suite, embed)
        return {**row, "seconds": round(seconds, 2)}

    t0 = time.perf_counter()
    parent, emb = _parent_row(bundle, texts, bundle.seq_lens[-1])
    rows = [scored(parent, emb, time.perf_counter() - t0) if emb is not None else {**parent, "spearman": None}]
    groups = _artifact_groups(bundle, formats_filter)
    if "executorch" in {f for f, _ in groups}:
        from .executorch import set_threads

        set_threads(threads)
    encoded = _encode(tok, texts, bundle.seq_lens)
    for (fmt, quant), by_len in groups.items():
        row, emb, seconds = _artifact_row(bundle, fmt, quant, by_len, tok, texts, encoded)
        rows.append(row if emb is None else scored(row, emb, seconds))
    _add_deltas(rows, suite)
    out = {"bundle": str(bundle_path), "rows": rows}
    if pairs is not None:
        out |= {"sts": str(sts_path), "pairs": len(pairs.scores)}
    if suite is not None:
        out |= {"suite_name": suite.name, "suite_files": suite.files}
    return out


def format_table(result: dict) -> str:
    suite = "suite_name" in result
    title = [f"STS Spearman x100 on {result['pairs']} pairs ({result['sts']})" if "sts" in result else "",
             f"dev suite {result['suite_name']!r} (x100)" if suite else ""]
    lines = [f"{'; '.join(t for t in title if t)}, bundle {result['bundle']}",
             f"{'format':<11} {'quant':<10} {'buckets':<10} {'spearman':>9} {'delta':>7}"
             + ("   stsb  sickr   sst2 agnews   mean  delta" if suite else "") + "  note"]
    for r in result["rows"]:
        rho = "-" if r.get("spearman") is None else f"{r['spearman']:.2f}"
        delta = "-" if r.get("delta_vs_pytorch") is None else f"{r['delta_vs_pytorch']:+.2f}"
        buckets = ",".join(map(str, r["seq_len"])) if isinstance(r["seq_len"], list) else str(r["seq_len"])
        note = r.get("reason", "") if r["status"] != "ok" else (f"{r['seconds']:.1f}s" if "seconds" in r else "")
        cells = ""
        if suite:
            s = r.get("suite") or {}
            d = r.get("suite_delta_vs_pytorch")
            cells = "".join(f" {s[k]:>6.2f}" if k in s else f" {'-':>6}" for k in ("stsb", "sickr", "sst2", "agnews",
                                                                                  "mean"))
            cells += f" {d:+6.2f}" if d is not None else f" {'-':>6}"
        lines.append(f"{r['format']:<11} {r['quant']:<10} {buckets:<10} {rho:>9} {delta:>7}{cells}  {note}")
    return "\n".join(lines)
