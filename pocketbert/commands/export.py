HELP = "export a checkpoint to a verified mobile bundle (ExecuTorch, LiteRT, Core ML, ONNX; fp32/fp16/int8)"
DESCRIPTION = """Export a checkpoint into one bundle folder: manifest.json, vocab.txt, tokenizer.json, golden.json
and one artifact per format x quantization x sequence-length bucket, each verified in its own runtime
against eager PyTorch fp32 right after it is written (a failing artifact fails the export; nothing is written).

  pocketbert export s3 --out s3_bundle
  pocketbert export s3 --out s3_bundle --formats onnx,tflite --quant fp32,int8 --seq-len 32,128

Quantization per format: executorch fp32,int8; tflite fp32,fp16,int8; coreml fp32,fp16,int8; onnx fp32,int8.
"""


def add_arguments(p) -> None:
    from pocketbert.export.bundle import DEFAULT_FORMATS, DEFAULT_QUANTS, DEFAULT_SEQ_LENS

    formats, quants, seq_lens = ",".join(DEFAULT_FORMATS), ",".join(DEFAULT_QUANTS), ",".join(map(str, DEFAULT_SEQ_LENS))
    p.add_argument("checkpoint", help="checkpoint folder or `minilm`")
    p.add_argument("--out", required=True, help="bundle folder to write (must not exist, or be a previous bundle)")
    p.add_argument("--formats", default=formats, help=f"comma-separated: executorch,tflite,coreml,onnx (default {formats})")
    p.add_argument("--quant", default=quants, help=f"comma-separated: fp32,fp16,int8 (default {quants})")
    p.add_argument("--seq-len", default=seq_lens, help=f"static sequence-length buckets, e.g. 32,128 (default {seq_lens})")
    p.add_argument("--task", choices=["embedding", "mlm", "classification"], default=None,
                   help="output to export (default: the checkpoint's task)")
    p.add_argument("--name", default=None, help="model name in artifact file names (default: the checkpoint folder name)")


def run(args):
    import logging

    from pocketbert.export.bundle import ExportConfig, main, parse_csv, parse_seq_lens

    log = logging.getLogger("pocketbert")  # our progress lines only, not the toolchains' INFO chatter
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    cfg = ExportConfig(checkpoint=args.checkpoint, out=args.out, formats=parse_csv(args.formats, "--formats"),
                       quants=parse_csv(args.quant, "--quant"), seq_lens=parse_seq_lens(args.seq_len),
                       task=args.task, name=args.name, command=args.command_line)
    manifest = main(cfg)
    rows = [{k: a[k] for k in ("file", "format", "quant", "seq_len", "size_bytes", "export_seconds")}
            | {"parity": a["parity"]["status"], "max_abs_diff": a["parity"].get("max_abs_diff"),
               "min_cosine": a["parity"].get("min_cosine")}
            for a in manifest["artifacts"]]
    lines = [f"bundle {args.out}: {len(rows)} artifact(s), task {manifest['model']['task']}, buckets {manifest['seq_lens']}",
             f"{'file':<48} {'MB':>8} {'sec':>7} {'parity':>8} {'max|d|':>10} {'cosine':>10}"]
    for r in rows:
        d = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        c = "-" if r["min_cosine"] is None else f"{r['min_cosine']:.6f}"
        lines.append(f"{r['file']:<48} {r['size_bytes'] / 1e6:8.2f} {r['export_seconds']:7.1f} {r['parity']:>8} {d:>10} {c:>10}")
    return {"out": args.out, "artifacts": rows, "manifest": manifest}, "\n".join(lines)
