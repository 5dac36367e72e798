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
