HELP = "print the cosine similarity matrix of the embeddings of some texts"
DESCRIPTION = """Embed texts with a checkpoint (pooled as the checkpoint says) and print their cosine similarities.

  pocketbert embed minilm "A man plays the cello." "Someone plays an instrument."
"""


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="checkpoint folder or `minilm`")
    p.add_argument("texts", nargs="+", help="texts to embed")
    p.add_argument("--max-length", type=int, default=256, help="truncate texts to this many tokens (default 256)")
    p.add_argument("--show-embeddings", action="store_true", help="include the embeddings in --json output")


def run(args):
    from pocketbert.pipeline.evaluate import cosine_rows, embed_texts
    from pocketbert.pipeline.names import load
    from pocketbert.pipeline.tokenizer import Tokenizer

    ckpt = load(args.checkpoint)
    tok = Tokenizer(ckpt.path)
    emb = embed_texts(ckpt.model, tok, list(args.texts), max_length=args.max_length)
    n = len(args.texts)
    sim = [[float(cosine_rows(emb[i:i + 1], emb[j:j + 1])[0]) for j in range(n)] for i in range(n)]
    result = {"texts": list(args.texts), "cosine": sim}
    if args.show_embeddings:
        result["embeddings"] = emb.tolist()
    width = max(len(str(i)) for i in range(n)) + 1
    lines = [f"[{i}] {t}" for i, t in enumerate(args.texts)]
    lines.append(" " * width + "".join(f"{f'[{j}]':>8}" for j in range(n)))
    for i in range(n):
        lines.append(f"{f'[{i}]':<{width}}" + "".join(f"{sim[i][j]:8.4f}" for j in range(n)))
    return result, "\n".join(lines)
