HELP = "export a checkpoint to a verified mobile bundle (ExecuTorch, LiteRT, Core ML, ONNX; fp32 down to int4)"
DESCRIPTION = """Export a checkpoint into one bundle folder: manifest.json, vocab.txt, tokenizer.json, golden.json
and one artifact per format x quantization x sequence-length bucket, each verified in its own runtime
against eager PyTorch fp32 right after it is written (a failing artifact fails the export; nothing is written).
Embedding bundles also pass each format x quant through the geometry gate (STS delta with --sts, top-10
retrieval overlap and cosines on corpus sentences, bucket and thread invariance), recorded in the manifest.

  pocketbert export s3 --out s3_bundle
  pocketbert export s3 --out s3_bundle --formats onnx,tflite --quant fp32,int8,int4 --seq-len 32,128
  pocketbert export s3 --out s3_auto --quant auto --max-sts-drop 0.3 --sts ../shared/data/stsb/dev.tsv

Quantization per format (export/quant.py): executorch fp32,int8,int8-static,int4-mixed,int4;
tflite fp32,fp16,int8,int8-static,int4-mixed,int4; coreml fp32,fp16,int8,int4-mixed,int4;
onnx fp32,int8,int8-static,int4-mixed,int4. auto: per format, the smallest rung that passes the gate.
"""


def add_arguments(p) -> None:
    from pocketbert.commands import default
    from pocketbert.export.bundle import ExportConfig

    formats, quants = ",".join(default(ExportConfig, "formats")), ",".join(default(ExportConfig, "quants"))
    seq_lens = ",".join(map(str, default(ExportConfig, "seq_lens")))
    max_sts_drop, gate_sample = default(ExportConfig, "max_sts_drop"), default(ExportConfig, "gate_sample")
    p.add_argument("checkpoint", help="checkpoint folder or `minilm`")
    p.add_argument("--out", required=True, help="bundle folder to write (must not exist, or be a previous bundle)")
    p.add_argument("--formats", default=formats, help=f"comma-separated: executorch,tflite,coreml,onnx (default {formats})")
    p.add_argument("--quant", default=quants,
                   help=f"comma-separated: fp32,fp16,int8,int8-static,int4-mixed,int4, or auto (default {quants})")
    p.add_argument("--seq-len", default=seq_lens, help=f"static sequence-length buckets, e.g. 32,128 (default {seq_lens})")
    p.add_argument("--task", choices=["embedding", "mlm", "classification"], default=None,
                   help="output to export (default: the checkpoint's task)")
    p.add_argument("--name", default=None, help="model name in artifact file names (default: the checkpoint folder name)")
    p.add_argument("--corpus", nargs="+", default=["default"],
                   help="text/TSV/CSV/JSONL files whose sentences calibrate int8-static and int4-mixed and feed the "
                        "gate, or `default` (the embedded default corpus, the default)")
    p.add_argument("--sts", default=None, help="STS-B TSV for the gate's STS delta (required by --quant auto)")
    p.add_argument("--max-sts-drop", type=float, default=max_sts_drop,
                   help=f"gate: STS Spearman points below PyTorch fp32 that still pass, >= 0 (default {max_sts_drop:g})")
    p.add_argument("--max-mb", type=float, default=None,
                   help="int4-mixed under a size budget: every part starts at int8 and the least sensitive go to int4 "
                        "until the estimated weights fit this many MB (default: plan for the gate instead)")
    p.add_argument("--gate-sample", type=int, default=gate_sample,
                   help=f"corpus sentences for the top-10 overlap (default {gate_sample})")
    p.add_argument("--no-gate", action="store_true", help="skip the geometry gate")
    p.add_argument("--static-shapes", action="store_true",
                   help="every artifact takes exactly its bucket (default: ExecuTorch and ONNX artifacts take any "
                        "length up to their bucket, which apps feed unpadded; LiteRT and Core ML are static)")


def run(args):
    from pocketbert.export.bundle import ExportConfig, main, parse_csv, parse_seq_lens

    corpus = None
    if not args.no_gate or {"int8-static", "int4-mixed", "auto"} & set(parse_csv(args.quant, "--quant")):
        from pocketbert.pipeline.data import read_texts

        corpus = read_texts(args.corpus).texts
    cfg = ExportConfig(checkpoint=args.checkpoint, out=args.out, formats=parse_csv(args.formats, "--formats"),
                       quants=parse_csv(args.quant, "--quant"), seq_lens=parse_seq_lens(args.seq_len),
                       task=args.task, name=args.name, command=args.command_line, corpus=corpus, sts=args.sts,
                       gate=not args.no_gate, gate_sample=args.gate_sample, max_sts_drop=args.max_sts_drop,
                       max_mb=args.max_mb, dynamic=not args.static_shapes)
    manifest = main(cfg)
    rows = [{"file": a.file, "format": a.format, "quant": a.quant, "seq_len": a.seq_len, "size_bytes": a.size_bytes,
             "export_seconds": a.export_seconds, "parity": a.parity["status"],
             "max_abs_diff": a.parity.get("max_abs_diff"), "min_cosine": a.parity.get("min_cosine"),
             "gate": (a.gate or {}).get("status", "-"), "sts_delta": (a.gate or {}).get("sts", {}).get("delta"),
             "top10_overlap": (a.gate or {}).get("top10_overlap")}
            for a in manifest.artifacts]
    lines = [f"bundle {args.out}: {len(rows)} artifact(s), task {manifest.model['task']}, buckets {manifest.seq_lens}",
             f"{'file':<52} {'MB':>8} {'sec':>7} {'parity':>8} {'max|d|':>10} {'cosine':>10} {'gate':>8} {'STS d':>6} {'top10':>6}"]
    for r in rows:
        d = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        c = "-" if r["min_cosine"] is None else f"{r['min_cosine']:.6f}"
        sts = "-" if r["sts_delta"] is None else f"{r['sts_delta']:+.2f}"
        top = "-" if r["top10_overlap"] is None else f"{r['top10_overlap']:.3f}"
        lines.append(f"{r['file']:<52} {r['size_bytes'] / 1e6:8.2f} {r['export_seconds']:7.1f} {r['parity']:>8} {d:>10} "
                     f"{c:>10} {r['gate']:>8} {sts:>6} {top:>6}")
    for fmt, choice in (manifest.quant_auto or {}).get("formats", {}).items():
        lines.append(f"auto {fmt}: {choice['reason']}")
    return {"out": args.out, "artifacts": rows, "manifest": manifest.to_dict()}, "\n".join(lines)
