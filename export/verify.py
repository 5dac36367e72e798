"""Re-check a written bundle: manifest, sha256 of every file, and parity of every artifact in its runtime.

Parity here compares with golden.json's stored eager fp32 outputs (no checkpoint needed), through the
bundle contract's `golden_parity`, the same check emulation and the apps apply; then bucket invariance:
one text's outputs at every bucket of a format/quant agree (`bucket_invariance`). Every threshold is the
manifest's (`Bundle.tolerance`).
"""

from __future__ import annotations

from pocketbert.bundle.manifest import Bundle, load_bundle
from pocketbert.bundle.parity import bucket_invariance, case_inputs, cases_for, golden_parity
from pocketbert.errors import PocketBertError

from . import formats


def check_artifact(bundle: Bundle, artifact: dict, golden: dict, outputs_out: dict | None = None) -> dict:
    """Parity of one artifact against golden.json (a parity dict as in the manifest).

    `outputs_out`, when given, receives {case name: output} for the bucket-invariance check.
    """
    seq_len = artifact["seq_len"]
    pad_id = bundle.manifest["tokenizer"]["special_tokens"]["[PAD]"]
    out = bundle.manifest["outputs"][0]
    shape = out["shape"][str(seq_len)] if isinstance(out["shape"], dict) else out["shape"]
    inputs = [case_inputs(c, seq_len, pad_id) for c in cases_for(golden, seq_len)]
    outputs, skipped = formats.run_or_skip(artifact["format"], bundle.artifact_path(artifact), inputs, seq_len,
                                           golden["output_name"], shape, artifact["quant"])
    if outputs and outputs_out is not None:
        outputs_out.update({c["name"]: o for c, o in zip(cases_for(golden, seq_len), outputs)})
    return skipped or golden_parity(golden, artifact, outputs, bundle.tolerance(artifact))


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
    outputs: dict[tuple[str, str], dict[int, dict]] = {}  # (format, quant) -> seq_len -> {case: output}
    need: dict[tuple[str, str], float] = {}  # (format, quant) -> the manifest's min_invariance_cosine
    for a in bundle.artifacts:
        if formats_filter and a["format"] not in formats_filter:
            continue
        ran: dict = {}
        parity = check_artifact(bundle, a, golden, ran)
        if ran:
            outputs.setdefault((a["format"], a["quant"]), {})[a["seq_len"]] = ran
            need[a["format"], a["quant"]] = bundle.tolerance(a).min_invariance_cosine
        rows.append({"file": a["file"], "format": a["format"], "quant": a["quant"], "seq_len": a["seq_len"],
                     "sha256": "ok", **{k: parity.get(k) for k in ("status", "max_abs_diff", "min_cosine", "reason")},
                     **({"argmax_agreement": parity["argmax_agreement"]} if "argmax_agreement" in parity else {})})
        if parity["status"] == "failed":
            failed.append(f"{a['file']}: {parity.get('reason')}")
    # Bucket invariance: each case's outputs across the buckets of one format/quant agree.
    n_tokens = {c["name"]: len(c["ids"]) for c in golden["cases"]}
    mlm = golden.get("task") == "mlm"
    for (fmt, quant), by_len in outputs.items():
        for seq_len, inv in bucket_invariance(by_len, n_tokens, need[fmt, quant], per_position=mlm).items():
            row = next(r for r in rows if (r["format"], r["quant"], r["seq_len"]) == (fmt, quant, seq_len))
            row["invariance"] = inv
            if inv["status"] == "failed":
                failed.append(f"{row['file']}: {inv['reason']}")
    if failed:
        raise PocketBertError(f"{path}: parity failed for {len(failed)} artifact(s): {'; '.join(failed)}")
    return {"bundle": str(path), "rows": rows}
