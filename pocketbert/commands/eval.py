HELP = "STS Spearman (x100) of a checkpoint: cosine of pooled embeddings vs gold scores"
DESCRIPTION = """Evaluate sentence-embedding quality on an STS-B TSV (sentence1, sentence2, score in the last columns).

  pocketbert eval minilm --sts ../shared/data/stsb/dev.tsv
"""


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="checkpoint folder or `minilm`")
    p.add_argument("--sts", required=True, help="STS-B TSV file")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default 64)")


def run(args):
    import time

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
