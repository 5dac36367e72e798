"""Parity of an artifact's outputs: the tolerances, the golden case inputs, and the comparisons that
export, `pocketbert verify`, emulation and the app fixture generator all apply (BUNDLE.md).

This module imports numpy and the standard library only: the ARM64 runner loads it by file path inside an
emulated Python that has no pocketbert (runtime_bench/arm64_runner.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """What the artifacts of one format/quant are held to: the manifest's `tolerances` entry (BUNDLE.md).

    Export writes one per format/quant it keeps; every reader (verify, emulation, the Kotlin and Swift cores)
    applies the manifest's numbers, never a table of its own.
    """

    max_abs_diff: float  # largest |output - golden| over every value of every case
    min_cosine: float  # smallest cosine between a case's flattened output and golden's
    # MLM golden files store the argmax per position, not the logits: the share of real positions, pooled over
    # the cases, whose argmax must match
    min_argmax_agreement: float
    min_invariance_cosine: float  # one text padded to two buckets: the smallest cosine between the two outputs

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, entry: dict, fallback: Tolerance | None = None) -> Tolerance:
        """A manifest entry. Format 1.0/1.1 entries hold only `max_abs_diff` and `min_cosine`; `fallback`
        supplies the other two (export's numbers for that quantization, which were in force then)."""
        base = fallback.to_dict() if fallback is not None else {}
        return cls(**{f.name: entry.get(f.name, base.get(f.name)) for f in dataclasses.fields(cls)})


# What export writes into the manifest per precision (readers use the manifest's copy). Parity is against eager
# PyTorch fp32 on the golden inputs; the geometry gate (export/gate.py) is the quality bar of the quantized rungs,
# these only catch a broken artifact.
# int8-static: per-tensor activation ranges are lossy on odd inputs (parity), and made one text differ by cosine
# 0.97 between buckets 32 and 128 (2-layer student, ONNX Runtime); the gate fails it below 0.99.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_diff=1e-3, min_cosine=0.9999, min_argmax_agreement=0.99, min_invariance_cosine=0.9999),
    "fp16": Tolerance(max_abs_diff=5e-2, min_cosine=0.999, min_argmax_agreement=0.9, min_invariance_cosine=0.999),
    "int8": Tolerance(max_abs_diff=0.25, min_cosine=0.99, min_argmax_agreement=0.8, min_invariance_cosine=0.99),
    "int8-static": Tolerance(max_abs_diff=0.5, min_cosine=0.9, min_argmax_agreement=0.7, min_invariance_cosine=0.9),
    "int4-mixed": Tolerance(max_abs_diff=0.5, min_cosine=0.95, min_argmax_agreement=0.7, min_invariance_cosine=0.99),
    "int4": Tolerance(max_abs_diff=0.5, min_cosine=0.95, min_argmax_agreement=0.7, min_invariance_cosine=0.99),
}


def tolerance(quant: str) -> Tolerance:
    """What export writes for `quant` (a reader takes the manifest's entry: `Bundle.tolerance`)."""
    return TOLERANCES[quant]


def cases_for(golden: dict, seq_len: int) -> list[dict]:
    """The golden cases that fit a bucket of `seq_len` tokens (each artifact is checked on these)."""
    return [c for c in golden["cases"] if len(c["ids"]) <= seq_len]


def expected_at(case: dict, seq_len: int, key: str = "expected"):
    """The case's stored output (`expected` or `expected_argmax`) at bucket `seq_len`.

    golden.json 1.1 stores it per bucket (`buckets`); a 1.0 file has only the smallest bucket's, which
    stands for every bucket (padding does not change the masked model's output beyond float rounding).
    """
    for entry in case.get("buckets", []):
        if entry["seq_len"] == seq_len:
            return entry[key]
    return case[key]


def case_inputs(case: dict, seq_len: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A golden case as int32 (1, seq_len) arrays (padding further when the bucket is larger)."""
    ids = case["ids"]
    if len(ids) > seq_len:
        raise ValueError(f"case {case['name']} has {len(ids)} tokens > {seq_len}")
    input_ids = np.full((1, seq_len), pad_id, dtype=np.int32)
    mask = np.zeros((1, seq_len), dtype=np.int32)
    input_ids[0, : len(ids)] = ids
    mask[0, : len(ids)] = 1
    return input_ids, mask


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 and nb == 0.0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-30))


def compare(outputs: list[np.ndarray], refs: list[np.ndarray], tol: Tolerance) -> dict:
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
    ok = max_abs <= tol.max_abs_diff and min_cos >= tol.min_cosine
    result = {"status": "passed" if ok else "failed", "max_abs_diff": max_abs, "min_cosine": min_cos,
              "cases": len(refs)}
    if not ok:
        result["reason"] = (f"max_abs_diff {max_abs:.3g} (limit {tol.max_abs_diff:g}), "
                            f"min_cosine {min_cos:.6f} (limit {tol.min_cosine:g})")
    return result


def argmax_agreement(cases: list[dict], outputs: list[np.ndarray], seq_len: int, need: float) -> dict:
    """MLM parity: the share of real positions whose argmax equals golden's `expected_argmax`, pooled over the
    cases; passed when at least `need` (the manifest's `min_argmax_agreement`).

    Each output is either the logits ((1, seq_len, V) floats) or already the predicted ids per position
    (a 1-D integer array, as the emulated runner returns them).
    """
    agree = total = 0
    for case, out in zip(cases, outputs):
        n = len(case["ids"])
        out = np.asarray(out)
        integer_ids = out.ndim == 1 and np.issubdtype(out.dtype, np.integer)
        pred = out[:n] if integer_ids else out.reshape(seq_len, -1)[:n].argmax(-1)
        agree += int((pred == np.asarray(expected_at(case, seq_len, "expected_argmax")[:n])).sum())
        total += n
    share = agree / max(total, 1)
    return {"status": "passed" if share >= need else "failed", "max_abs_diff": None, "min_cosine": None,
            "cases": len(cases), "argmax_agreement": share,
            **({} if share >= need else {"reason": f"argmax agreement {share:.3f} < {need}"})}


def golden_parity(golden: dict, artifact: dict, outputs: list[np.ndarray], tol: Tolerance) -> dict:
    """Parity of `outputs` (one per `cases_for(golden, artifact["seq_len"])`, in order) against golden.json.

    Each output is compared with the case's golden output at this artifact's bucket (golden.json 1.1
    `buckets`; a 1.0 file's single output stands for every bucket).
    """
    seq_len = artifact["seq_len"]
    cases = cases_for(golden, seq_len)
    if len(outputs) != len(cases):
        return {"status": "failed", "max_abs_diff": None, "min_cosine": None, "cases": len(cases),
                "reason": f"{len(outputs)} outputs for {len(cases)} golden cases"}
    if golden.get("task") == "mlm" or (cases and "expected_argmax" in cases[0]):
        return argmax_agreement(cases, outputs, seq_len, tol.min_argmax_agreement)
    refs = [np.asarray(expected_at(c, seq_len), dtype=np.float32) for c in cases]
    return compare(outputs, refs, tol)


def bucket_invariance(outputs: dict[int, dict[str, np.ndarray]], n_tokens: dict[str, int], need: float,
                      per_position: bool = False) -> dict[int, dict]:
    """Cosine between each case's outputs at every pair of buckets of one format/quant.

    Args:
        outputs: seq_len -> {case name -> that artifact's output on the case padded to seq_len}.
        n_tokens: case name -> number of real tokens (MLM logits are compared on those positions only).
        need: the smallest cosine that passes (the manifest's `min_invariance_cosine`).
        per_position: outputs are (seq_len, V) logits (MLM), else one vector per case.

    Returns:
        seq_len -> `{status, min_cosine, min_cosine_required, other_seq_lens, cases, worst_case}`: the
        minimum over the cases and the other buckets; `skipped` when no other bucket shares a case.
    """

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
