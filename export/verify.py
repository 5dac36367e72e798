"""Re-check a written bundle: manifest, sha256 of every file, and parity of every artifact in its runtime.

Parity here compares with golden.json's stored eager fp32 outputs (no checkpoint needed). A golden
case shorter than an artifact's bucket is padded to it; the masked model's output does not depend on
the amount of padding beyond float rounding, which the fp32 tolerance covers.
"""

from __future__ import annotations

import numpy as np

from pocketbert.errors import PocketBertError

from . import formats
from .golden import case_inputs
from .manifest import Bundle, load_bundle
from .parity import compare

# MLM golden files store the argmax per position, not the logits: parity is the share of real
# positions whose argmax matches, required to be at least this high.
MLM_MIN_AGREEMENT = {"fp32": 0.99, "fp16": 0.9, "int8": 0.8, "int8-static": 0.7, "int4-mixed": 0.7, "int4": 0.7}


def _cases_for(golden: dict, seq_len: int) -> list[dict]:
    return [c for c in golden["cases"] if len(c["ids"]) <= seq_len]


def check_artifact(bundle: Bundle, artifact: dict, golden: dict) -> dict:
    """Parity of one artifact against golden.json (a parity dict as in the manifest)."""
    fmt, quant, seq_len = artifact["format"], artifact["quant"], artifact["seq_len"]
    path = bundle.artifact_path(artifact)
    mod = formats.module(fmt)
    out_name = golden["output_name"]
    reason = mod.unavailable_reason() if hasattr(mod, "unavailable_reason") else None
    if reason:
        out = bundle.manifest["outputs"][0]
        shape = out["shape"][str(seq_len)] if isinstance(out["shape"], dict) else out["shape"]
        spec = mod.check_spec(path, seq_len, out_name, shape, quant) if hasattr(mod, "check_spec") else {}
        return {"status": "skipped", "max_abs_diff": None, "min_cosine": None, "cases": 0, "reason": reason,
                **({"spec_check": spec} if spec else {})}
    pad_id = bundle.manifest["tokenizer"]["special_tokens"]["[PAD]"]
    cases = _cases_for(golden, seq_len)
    run = mod.load(path)
    outputs = [run(*case_inputs(c, seq_len, pad_id)) for c in cases]
    if golden.get("task") == "mlm" or "expected_argmax" in (cases[0] if cases else {}):
        agree = total = 0
        for c, o in zip(cases, outputs):
            n = len(c["ids"])
            pred = np.asarray(o).reshape(seq_len, -1)[:n].argmax(-1)
            agree += int((pred == np.asarray(c["expected_argmax"][:n])).sum())
            total += n
        share = agree / max(total, 1)
        ok = share >= MLM_MIN_AGREEMENT[quant]
        return {"status": "passed" if ok else "failed", "max_abs_diff": None, "min_cosine": None,
                "cases": len(cases), "argmax_agreement": share,
                **({} if ok else {"reason": f"argmax agreement {share:.3f} < {MLM_MIN_AGREEMENT[quant]}"})}
    refs = [np.asarray(c["expected"], dtype=np.float32) for c in cases]
    return compare(outputs, refs, bundle.tolerance(artifact))


def verify_bundle(path, formats_filter: list[str] | None = None) -> dict:
    """Load and check a bundle. Returns `{bundle, rows}`; raises PocketBertError on any failure.

    Raises:
        PocketBertError: invalid manifest, a path outside the bundle, a missing file, a sha256
            mismatch (checked for every file before anything runs), or an artifact out of tolerance.
    """
    bundle = load_bundle(path)
    bundle.check_all_sha256()
    golden = bundle.golden()
    rows, failed = [], []
    for a in bundle.artifacts:
        if formats_filter and a["format"] not in formats_filter:
            continue
        parity = check_artifact(bundle, a, golden)
        rows.append({"file": a["file"], "format": a["format"], "quant": a["quant"], "seq_len": a["seq_len"],
                     "sha256": "ok", **{k: parity.get(k) for k in ("status", "max_abs_diff", "min_cosine", "reason")},
                     **({"argmax_agreement": parity["argmax_agreement"]} if "argmax_agreement" in parity else {})})
        if parity["status"] == "failed":
            failed.append(f"{a['file']}: {parity.get('reason')}")
    if failed:
        raise PocketBertError(f"{path}: parity failed for {len(failed)} artifact(s): {'; '.join(failed)}")
    return {"bundle": str(path), "rows": rows}
