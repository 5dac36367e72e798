HELP = "measure a bundle's artifacts (size, load, latency, memory) on this host or a phone, beside the teacher"
DESCRIPTION = """Measure every artifact of a bundle the same way: load time, first inference, latency
p50/p90/p99 and the 10-90% trimmed mean, peak RSS increase, file size, per thread count, each row in a
fresh process pinned to cores. With --baseline teacher the teacher runs interleaved (A B A B) as users
run it today (PyTorch eager fp32, ONNX Runtime fp32 and int8) and speedups are computed pair by pair.
Results follow runtime_bench/results.schema.json and are saved as each group finishes.

  pocketbert bench s3_bundle --threads 1,2 --seq-len 32,128 --baseline teacher --out results.json
  pocketbert bench s3_bundle --device adb --out phone.json            # the Android demo's headless benchmark
  pocketbert bench s3_bundle --device adb:SERIAL --binary benchmark_model --out phone.json
  pocketbert bench s3_bundle --device qemu:cortex-a55 --out a55.json    # golden parity on an emulated Arm core
"""


def _int_list(text: str, flag: str) -> list[int]:
    from pocketbert.errors import PocketBertError

    try:
        values = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise PocketBertError(f"{flag} {text!r}: give comma-separated positive integers, e.g. 1,2") from None
    if not values or any(v < 1 for v in values):
        raise PocketBertError(f"{flag} {text!r}: give comma-separated positive integers, e.g. 1,2")
    return list(dict.fromkeys(values))


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle folder written by `pocketbert export`")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--seq-len", default=None, help="comma-separated buckets to measure (default: all in the bundle)")
    p.add_argument("--runs", type=int, default=50, help="timed inferences per row (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed inferences per row before timing (default 10)")
    p.add_argument("--rounds", type=int, default=None, help="interleaving rounds (default: --runs, i.e. one timed run per row per round: A B A B ...)")
    p.add_argument("--formats", default=None, help="only these formats, e.g. onnx,tflite (default: all)")
    p.add_argument("--baseline", choices=["teacher"], default=None,
                   help="also measure the bundle's teacher as users run it today (eager fp32, ONNX Runtime fp32/int8)")
    p.add_argument("--teacher", default=None,
                   help="teacher HF folder or `minilm` for --baseline (default: the bundle's parent's teacher)")
    p.add_argument("--cache", default=None, help="folder for the teacher's ONNX baseline files (default ~/.cache/pocketbert)")
    p.add_argument("--quality", nargs="+", default=None, metavar="EVAL_JSON",
                   help="`pocketbert eval ... --json` outputs (of this bundle and/or the teacher) to attach STS "
                        "quality to rows, for the report's quality-vs-latency plot")
    p.add_argument("--no-profile", action="store_true", help="skip the per-operator profiles")
    p.add_argument("--device", default="host", help="host (default), adb / adb:SERIAL for an Android phone, or qemu[:CORE] for an emulated Arm core "
                        "(cortex-a55 default, cortex-a76, ...; run `pocketbert setup-arm64` first)")
    p.add_argument("--binary", default=None,
                   help="adb only: a benchmark binary to push and run (LiteRT benchmark_model or ExecuTorch "
                        "executor_runner) instead of the demo app")
    p.add_argument("--package", default="io.pocketbert.demo", help="adb only: the demo app's package")
    p.add_argument("--timeout", type=float, default=600, help="adb only: seconds to wait for the phone's results")
    p.add_argument("--out", required=True, help="results JSON file")


def _teacher_path(args, bundle):
    """The teacher folder for --baseline teacher: --teacher, else the bundle parent's parent checkpoint."""
    import json
    from pathlib import Path

    from pocketbert.errors import PocketBertError

    if args.teacher:
        from pocketbert.pipeline.checkpoint import resolve_teacher

        return Path(resolve_teacher(args.teacher))
    # Walk the parent chain (bundle -> checkpoint -> ... -> a plain HF folder, the teacher).
    path = Path(bundle.manifest["model"]["parent"]["path"])
    for _ in range(10):
        rec = path / "pocketbert.json"
        if not rec.is_file():
            if (path / "config.json").is_file():
                return path
            break
        try:
            parent = json.loads(rec.read_text()).get("parent", {}).get("path")
        except (ValueError, AttributeError):
            parent = None
        if not parent or not Path(parent).is_dir():
            break
        path = Path(parent)
    raise PocketBertError(f"--baseline teacher: cannot find the teacher of {bundle.root}; pass --teacher minilm or a folder")


def _teacher_config(path):
    import json

    hf = json.loads((path / "config.json").read_text())
    if "dim" in hf and "hidden_size" not in hf:  # DistilBERT names
        hf = dict(hf, hidden_size=hf["dim"], num_hidden_layers=hf["n_layers"], intermediate_size=hf["hidden_dim"],
                  num_attention_heads=hf["n_heads"])
    keys = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "embedding_size")
    cfg = {k: hf[k] for k in keys if k in hf}
    cfg["task"] = "embedding"
    if hf.get("model_type") == "albert":
        cfg["sharing"] = "all"
    return cfg


def _export_teacher_onnx(teacher, dst) -> None:
    """The teacher as an ONNX feature extractor with mean pooling, dynamic batch and length (the
    sentence-transformers `backend="onnx"` route; the pooling runs in the graph instead of numpy)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(teacher).eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            hidden = self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    ids = torch.ones(1, 16, dtype=torch.long)
    dyn = {0: "batch", 1: "sequence"}
    torch.onnx.export(MeanPooled(model), (ids, ids), str(dst), input_names=["input_ids", "attention_mask"],
                      output_names=["embedding"], dynamic_axes={"input_ids": dyn, "attention_mask": dyn},
                      opset_version=17, dynamo=False)


def prepare_teacher_baselines(teacher, cache_root) -> list[dict]:
    """Runnable baseline descriptions; the ONNX files are made once per teacher weights hash, in the cache."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pocketbert.files import sha256_file

    weights = next((teacher / n for n in ("model.safetensors", "pytorch_model.bin") if (teacher / n).is_file()), None)
    key = sha256_file(weights)[:16] if weights else teacher.name
    folder = Path(cache_root) / "teacher-onnx" / key
    fp32, int8 = folder / "teacher_fp32.onnx", folder / "teacher_int8.onnx"
    if not int8.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=folder.parent))
        try:
            _export_teacher_onnx(teacher, tmp / fp32.name)
            # sentence-transformers' qint8 route: dynamic quantization, int8 weights, per-tensor
            quantize_dynamic(str(tmp / fp32.name), str(tmp / int8.name), weight_type=QuantType.QInt8)
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    cfg = _teacher_config(teacher)
    weight_size = sum(f.stat().st_size for f in teacher.iterdir() if f.suffix in (".safetensors", ".bin"))
    return [
        {"name": "teacher_pytorch_fp32", "format": "pytorch", "backend": "eager", "quant": "fp32",
         "runner": "pytorch_eager", "path": str(teacher), "size_bytes": weight_size, "config": cfg},
        {"name": "teacher_onnx_fp32", "format": "onnx", "backend": "onnxruntime", "quant": "fp32",
         "runner": "onnxruntime", "path": str(fp32), "size_bytes": fp32.stat().st_size, "config": cfg},
        {"name": "teacher_onnx_int8", "format": "onnx", "backend": "onnxruntime", "quant": "int8",
         "runner": "onnxruntime", "path": str(int8), "size_bytes": int8.stat().st_size, "config": cfg},
    ]


def read_quality(paths) -> tuple[dict, dict]:
    """({(format, quant): quality} for bundle artifacts, {checkpoint path: quality}) from eval JSON files."""
    import json
    from pathlib import Path

    from pocketbert.errors import PocketBertError

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
                    by_artifact[(r["format"], r["quant"])] = {"sts_spearman_x100": r["spearman"], "source": source}
        elif isinstance(doc, dict) and isinstance(doc.get("spearman"), (int, float)) and doc.get("checkpoint"):
            by_checkpoint[str(Path(doc["checkpoint"]).resolve())] = {"sts_spearman_x100": doc["spearman"], "source": source}
        else:
            raise PocketBertError(f"--quality {p}: no STS spearman in it; pass `pocketbert eval ... --json` output")
    return by_artifact, by_checkpoint


def _summary(doc: dict) -> str:
    lines = [f"{'name':44} {'seq':>4} {'thr':>3} {'size MB':>8} {'p50 ms':>8} {'%peak':>6}  speedup"]
    for r in doc["rows"]:
        if r["status"] != "ok":
            lines.append(f"{r['name'][:44]:44} {r['seq_len']:>4} {r['threads']:>3}  {r['status'].upper()}: {r.get('error', '')[:80]}")
            continue
        size = f"{r['size_bytes'] / 1e6:8.2f}" if "size_bytes" in r else f"{'-':>8}"
        pf = f"{100 * r['peak_fraction']:5.1f}%" if "peak_fraction" in r else f"{'-':>6}"
        sp = ", ".join(f"{v:.2f}x vs {k}" for k, v in r.get("speedup_vs", {}).items() if k.startswith("teacher"))
        lines.append(f"{r['name'][:44]:44} {r['seq_len']:>4} {r['threads']:>3} {size} {r['latency_ms_p50']:8.2f} {pf}  {sp}")
    return "\n".join(lines)


def run(args):
    import os
    import sys
    from pathlib import Path

    from pocketbert.errors import PocketBertError
    from pocketbert.export.manifest import load_bundle
    from pocketbert.runtime_bench.schema import check_output_file

    if args.device.startswith("qemu"):  # emulated Arm cores: runtime_bench/emulation.py (issue 9)
        from pocketbert.export.parity import compare
        from pocketbert.runtime_bench import emulation

        return emulation.bench_command(args, compare)
    out = check_output_file(args.out)
    threads = _int_list(args.threads, "--threads")
    if args.runs < 1:
        raise PocketBertError(f"--runs {args.runs}: give at least 1")
    if args.warmup < 0:
        raise PocketBertError(f"--warmup {args.warmup}: give 0 or more")
    device = args.device
    if device != "host" and device != "adb" and not device.startswith("adb:"):
        raise PocketBertError(f"--device {device!r}: use host, adb or adb:SERIAL")
    bundle = load_bundle(args.bundle)
    seq_lens = _int_list(args.seq_len, "--seq-len") if args.seq_len else bundle.seq_lens
    missing = [n for n in seq_lens if n not in bundle.seq_lens]
    if missing:
        raise PocketBertError(f"--seq-len {missing} not in the bundle (it has buckets {bundle.seq_lens})")
    if args.formats:
        wanted = {f.strip() for f in args.formats.split(",") if f.strip()}
        have = {a["format"] for a in bundle.artifacts}
        if not wanted <= have:
            raise PocketBertError(f"--formats {sorted(wanted - have)} not in the bundle (it has {sorted(have)})")
        bundle.manifest["artifacts"] = [a for a in bundle.artifacts if a["format"] in wanted]

    quality_by_artifact, quality_by_checkpoint = read_quality(args.quality)
    for a in bundle.artifacts:
        q = quality_by_artifact.get((a["format"], a["quant"]))
        if q:
            a["quality"] = q

    if device.startswith("adb"):
        from pocketbert.runtime_bench import adb

        serial = device.split(":", 1)[1] if ":" in device else None
        doc = adb.run_adb_bench(bundle, out, serial=serial, threads=threads, seq_lens=seq_lens, runs=args.runs,
                                warmup=args.warmup, binary=args.binary, package=args.package, timeout=args.timeout)
        return doc, f"wrote {out} ({len(doc['rows'])} rows from {doc['device'].get('name', 'the phone')})\n" + _summary(doc)

    baselines = None
    if args.baseline == "teacher":
        teacher = _teacher_path(args, bundle)
        cache = Path(args.cache or os.environ.get("POCKETBERT_CACHE") or Path.home() / ".cache" / "pocketbert")
        print(f"preparing teacher baselines from {teacher} (cache {cache})", file=sys.stderr)
        baselines = prepare_teacher_baselines(teacher, cache)
        q = quality_by_checkpoint.get(str(teacher.resolve()))
        for b in baselines:
            if q and b["quant"] == "fp32":  # an eval of the teacher checkpoint is its fp32 quality
                b["quality"] = q

    from pocketbert.runtime_bench.bench import run_bench

    doc = run_bench(bundle, out, threads=threads, seq_lens=seq_lens, runs=args.runs, warmup=args.warmup,
                    baselines=baselines, rounds=args.rounds, profile=not args.no_profile,
                    log=lambda s: print(s, file=sys.stderr))
    failed = [r for r in doc["rows"] if r["status"] == "failed"]
    text = f"wrote {out}: {len(doc['rows'])} rows" + (f", {len(failed)} failed" if failed else "") + "\n" + _summary(doc)
    return doc, text
