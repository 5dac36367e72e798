HELP = "STS Spearman (x100) of a checkpoint, or of every artifact of a bundle in its own runtime"
DESCRIPTION = """Evaluate sentence-embedding quality on an STS-B TSV (sentence1, sentence2, score in the last columns).

  pocketbert eval minilm --sts ../shared/data/stsb/dev.tsv
  pocketbert eval s3_bundle --sts ../shared/data/stsb/dev.tsv   # one row per artifact, next to PyTorch fp32
"""


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="checkpoint folder or `minilm`, or a bundle folder (holds manifest.json)")
    p.add_argument("--sts", required=True, help="STS-B TSV file")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default 64)")


def run(args):
    import time
    from pathlib import Path

    if (Path(args.checkpoint) / "manifest.json").is_file():  # a bundle: every artifact in its runtime
        from pocketbert.export.evaluate import evaluate_bundle, format_table

        result = evaluate_bundle(args.checkpoint, args.sts)
        return result, format_table(result)

    from pocketbert.pipeline.checkpoint import load_checkpoint
    from pocketbert.pipeline.evaluate import evaluate_sts, read_sts
    from pocketbert.pipeline.tokenizer import Tokenizer

    pairs = read_sts(args.sts)  # fail on a bad file before loading the model
    ckpt = load_checkpoint(args.checkpoint)
    t0 = time.perf_counter()
    rho = evaluate_sts(ckpt.model, Tokenizer(ckpt.path), pairs, batch_size=args.batch_size)
    result = {"spearman": round(rho, 4), "pairs": len(pairs.scores), "checkpoint": str(ckpt.path),
              "seconds": round(time.perf_counter() - t0, 2)}
    return result, f"STS Spearman x100: {rho:.2f} on {len(pairs.scores)} pairs ({args.sts})"
