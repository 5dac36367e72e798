HELP = "embedding quality: STS Spearman and/or the dev suite, of checkpoints, peers, teachers or every artifact of a bundle"
DESCRIPTION = """Evaluate sentence-embedding quality, in PyTorch fp32 (numpy for static models) or, for a bundle, through
every artifact in its own runtime next to the PyTorch parent.

  --sts FILE     STS Spearman x100 on an STS-B or SICK TSV (cosine of the pair's embeddings against the score)
  --suite dev    the dev suite (../shared/data/README.md): STS-B dev, SICK-R, the SST-2 dev probe and the
                 AG News dev probe (5-fold), and their mean; the data folder is $POCKETBERT_DATA or
                 ../shared/data (or --data)

  pocketbert eval minilm --sts ../shared/data/stsb/dev.tsv
  pocketbert eval minilm paraphrase-minilm-l3 potion-base-2m --suite dev     # one row per model
  pocketbert eval model.onnx --tokenizer minilm --sts ../shared/data/stsb/dev.tsv
  pocketbert eval s3_bundle --suite dev     # one row per artifact, next to PyTorch fp32
"""


def add_arguments(p) -> None:
    p.add_argument("checkpoint", nargs="+", help="checkpoint folder, `minilm`, a peer (`paraphrase-minilm-l3`, an .onnx "
                   "encoder with --tokenizer, a static model folder), or a bundle folder (holds manifest.json)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (or `minilm`) of an .onnx encoder")
    p.add_argument("--sts", default=None, help="STS-B (or SICK) TSV file")
    p.add_argument("--suite", default=None, help="a named suite: `dev` (four tasks and their mean)")
    p.add_argument("--data", default=None, help="the shared data folder of the suite (default $POCKETBERT_DATA, "
                   "else ../shared/data)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default 64)")


def run(args):
    from pathlib import Path

    from pocketbert.errors import PocketBertError
    from pocketbert.pipeline.evaluate import read_sts
    from pocketbert.pipeline.suite import evaluate_model, format_scores, load_suite

    if args.sts is None and args.suite is None:
        raise PocketBertError("pass --sts FILE and/or --suite dev: what to evaluate on")
    if args.sts is not None:
        read_sts(args.sts)  # a bad file fails before any model loads
    suite = load_suite(args.suite, args.data) if args.suite else None
    results, texts = [], []
    for name in args.checkpoint:
        if (Path(name) / "manifest.json").is_file():  # a bundle: every artifact in its runtime
            from pocketbert.export.evaluate import evaluate_bundle, format_table

            result = evaluate_bundle(name, args.sts, suite=suite)
            results.append(result)
            texts.append(format_table(result))
            continue
        result = evaluate_model(name, args.sts, tokenizer=args.tokenizer, batch_size=args.batch_size, suite=suite)
        results.append({"model": name, **result})
        kind = ", static model" if result.get("kind") == "static" else ""
        line = [f"STS Spearman x100: {result['spearman']:.2f} on {result['pairs']} pairs ({args.sts}){kind}"] \
            if "spearman" in result else []
        if suite is not None:
            line.append(f"suite {suite.name}: {format_scores(name, result['suite'])}")
        texts.append("\n".join(line) if len(args.checkpoint) == 1 else f"{name}: " + " | ".join(line))
    return (results[0] if len(results) == 1 else {"results": results}), "\n".join(texts)
