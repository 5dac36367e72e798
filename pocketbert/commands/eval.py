HELP = "STS Spearman (x100) of a checkpoint, or of every artifact of a bundle in its own runtime"
DESCRIPTION = """Evaluate sentence-embedding quality on an STS-B TSV (sentence1, sentence2, score in the last columns).

  pocketbert eval minilm --sts ../shared/data/stsb/dev.tsv
  pocketbert eval paraphrase-minilm-l3 --sts ../shared/data/stsb/dev.tsv   # a peer (imported from ONNX once)
  pocketbert eval model.onnx --tokenizer minilm --sts ../shared/data/stsb/dev.tsv
  pocketbert eval potion-base-2m --sts ../shared/data/stsb/dev.tsv         # a static (model2vec) peer
  pocketbert eval s3_bundle --sts ../shared/data/stsb/dev.tsv   # one row per artifact, next to PyTorch fp32
"""


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="checkpoint folder, `minilm`, a peer (`paraphrase-minilm-l3`, an .onnx encoder "
                   "with --tokenizer, a static model folder), or a bundle folder (holds manifest.json)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (or `minilm`) of an .onnx encoder")
    p.add_argument("--sts", required=True, help="STS-B TSV file")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default 64)")


def run(args):
    from pathlib import Path

    if (Path(args.checkpoint) / "manifest.json").is_file():  # a bundle: every artifact in its runtime
        from pocketbert.export.evaluate import evaluate_bundle, format_table

        result = evaluate_bundle(args.checkpoint, args.sts)
        return result, format_table(result)
    from pocketbert.pipeline.evaluate import evaluate_model

    result = evaluate_model(args.checkpoint, args.sts, tokenizer=args.tokenizer, batch_size=args.batch_size)
    kind = ", static model" if result.get("kind") == "static" else ""
    return result, f"STS Spearman x100: {result['spearman']:.2f} on {result['pairs']} pairs ({args.sts}){kind}"
