"""Parity of an artifact's outputs against reference outputs: max abs diff and worst-case cosine."""

from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 and nb == 0.0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-30))


def compare(outputs: list[np.ndarray], refs: list[np.ndarray], tol: dict) -> dict:
    """`{status, max_abs_diff, min_cosine, cases}`: passed when every case is within `tol`.

    Non-finite outputs fail. Cosine is over each case's flattened output (an embedding, the class
    logits, or all MLM logits of the sequence).
    """
    max_abs, min_cos = 0.0, 1.0
    for out, ref in zip(outputs, refs):
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        ref = np.asarray(ref, dtype=np.float64).reshape(-1)
        if out.shape != ref.shape:
            return {"status": "failed", "max_abs_diff": None, "min_cosine": None, "cases": len(refs),
                    "reason": f"output has {out.size} values, expected {ref.size}"}
        if not np.isfinite(out).all():
            return {"status": "failed", "max_abs_diff": None, "min_cosine": None, "cases": len(refs),
                    "reason": "output has NaN or Inf"}
        max_abs = max(max_abs, float(np.abs(out - ref).max(initial=0.0)))
        min_cos = min(min_cos, cosine(out, ref))
    ok = max_abs <= tol["max_abs_diff"] and min_cos >= tol["min_cosine"]
    result = {"status": "passed" if ok else "failed", "max_abs_diff": max_abs, "min_cosine": min_cos,
              "cases": len(refs)}
    if not ok:
        result["reason"] = (f"max_abs_diff {max_abs:.3g} (limit {tol['max_abs_diff']:g}), "
                            f"min_cosine {min_cos:.6f} (limit {tol['min_cosine']:g})")
    return result


# Bucket invariance: one text's outputs at two buckets (padded to each) must agree at least this well.
# The same numbers as the min_cosine tolerances against eager fp32; the outputs are compared with each
# other here, not with eager PyTorch.
INVARIANCE_MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}


def bucket_invariance(outputs: dict[int, dict[str, np.ndarray]], n_tokens: dict[str, int], quant: str,
                      per_position: bool = False) -> dict[int, dict]:
    """Cosine between each case's outputs at every pair of buckets of one format/quant.

    Args:
        outputs: seq_len -> {case name -> that artifact's output on the case padded to seq_len}.
        n_tokens: case name -> number of real tokens (MLM logits are compared on those positions only).
        per_position: outputs are (seq_len, V) logits (MLM), else one vector per case.

    Returns:
        seq_len -> `{status, min_cosine, min_cosine_required, other_seq_lens, cases, worst_case}`: the
        minimum over the cases and the other buckets; `skipped` when no other bucket shares a case.
    """
    need = INVARIANCE_MIN_COSINE[quant]

    def rows(out, seq_len, name):
        out = np.asarray(out, dtype=np.float64)
        return out.reshape(seq_len, -1)[: n_tokens[name]] if per_position else out

    result = {}
    for n, outs in outputs.items():
        worst, worst_case, pairs, others = 1.0, None, 0, set()
        for m, other in outputs.items():
            if m == n:
                continue
            for name in outs.keys() & other.keys():
                c = cosine(rows(outs[name], n, name), rows(other[name], m, name))
                pairs += 1
                others.add(m)
                if c < worst or worst_case is None:
                    worst, worst_case = c, f"{name} vs seq{m}"
        if pairs == 0:
            result[n] = {"status": "skipped", "min_cosine": None, "min_cosine_required": need, "cases": 0,
                         "reason": "no other bucket of this format and quantization holds the same cases"}
            continue
        ok = worst >= need
        result[n] = {"status": "passed" if ok else "failed", "min_cosine": worst, "min_cosine_required": need,
                     "other_seq_lens": sorted(others), "cases": pairs, "worst_case": worst_case}
        if not ok:
            result[n]["reason"] = f"bucket invariance: cosine {worst:.6f} < {need} ({worst_case})"
    return result
