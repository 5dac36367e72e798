HELP = "re-check a bundle: manifest, sha256 of every file, and each artifact's parity in its own runtime"
DESCRIPTION = """Verify a bundle written by `pocketbert export`: the manifest against its schema, every path inside the
bundle, the sha256 of every artifact and of golden.json, then each artifact run in its runtime on the
golden inputs against the stored eager PyTorch fp32 outputs at its bucket (Core ML off macOS: spec
check only), and bucket invariance: one text's outputs at every bucket of a format/quant agree (cosine
>= 0.9999 fp32, 0.999 fp16, 0.99 int8).
Any failure is one line and exit code 2.

  pocketbert verify s3_bundle
"""


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle folder (holds manifest.json)")
    p.add_argument("--formats", default=None, help="only run these formats' parity (sha256 is always checked for all)")


def run(args):
    from pocketbert.bundle.naming import FORMATS
    from pocketbert.errors import PocketBertError
    from pocketbert.export.bundle import parse_csv
    from pocketbert.export.verify import verify_bundle

    fmts = parse_csv(args.formats, "--formats") if args.formats else None
    for f in fmts or []:
        if f not in FORMATS:
            raise PocketBertError(f"unknown format {f!r}; choose from {', '.join(FORMATS)}")
    result = verify_bundle(args.bundle, fmts)
    lines = [f"bundle {args.bundle}: sha256 ok for all files; parity per artifact (max abs diff, min cosine vs "
             "golden) and bucket invariance (min cosine vs the same format/quant at the other buckets):"]
    for r in result["rows"]:
        d = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        c = "-" if r["min_cosine"] is None else f"{r['min_cosine']:.6f}"
        extra = f"  ({r['reason']})" if r.get("reason") and r["status"] != "passed" else ""
        inv = r.get("invariance") or {}
        b = "-" if inv.get("min_cosine") is None else f"{inv['min_cosine']:.6f}"
        lines.append(f"  {r['file']:<48} {r['status']:>8} {d:>10} {c:>10} {b:>10}{extra}")
    return result, "\n".join(lines)
