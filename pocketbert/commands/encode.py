HELP = "fill the teacher-embedding cache for a corpus (length-sorted, chunked, resumable; torchrun shards it)"
DESCRIPTION = """Encode the distinct texts of a corpus with a teacher into the teacher-embedding cache that
distillation reads (<cache>/teacher_emb/, pipeline/teacher_cache.py), and print the throughput.

Texts are sorted by token length into batches of at most --max-tokens padded tokens; finished chunks are
kept, so a killed pass resumes where it stopped. A backend other than fp32 is used only when it agrees
with fp32 (per-sentence cosine >= 0.99 on a seeded sample of the corpus).

  pocketbert encode mpnet --corpus ../shared/data/stsb/train.tsv ../shared/data/sst2/train.tsv
  pocketbert encode minilm --corpus texts.txt --backend onnx-int8 --max-length 128
  torchrun --nproc-per-node 2 -m pocketbert encode mpnet --corpus texts.txt   # 2 ranks share the chunks
"""


def add_arguments(p) -> None:
    from pocketbert.pipeline.teacher_cache import BACKENDS, BATCH_SIZE, CHUNK_SIZE, MAX_TOKENS, MIN_AGREEMENT

    p.add_argument("teacher", help="`mpnet`, `minilm`, `paraphrase-minilm-l3`, a model folder (BERT family or "
                   "MPNet) or an .onnx encoder (with --tokenizer)")
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                   help="text files (one text per line) or TSV/CSV/JSONL; each distinct text is encoded once")
    p.add_argument("--text-field", default=None, help="column or field holding the text (TSV/CSV/JSONL)")
    p.add_argument("--limit", type=int, default=None, help="encode only the first N distinct texts")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per text, at most the teacher's own limit (default: that limit)")
    p.add_argument("--backend", choices=BACKENDS, default="fp32",
                   help="fp32 (PyTorch), bf16 (GPU), onnx-fp32 or onnx-int8 (ONNX Runtime; default fp32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (or `minilm`) of an .onnx encoder")
    p.add_argument("--threads", type=int, default=None, help="torch/ONNX Runtime threads per process")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                   help=f"padded tokens per batch at most (default {MAX_TOKENS})")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"texts per batch at most (default {BATCH_SIZE})")
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                   help=f"texts per resumable chunk (default {CHUNK_SIZE})")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"least per-sentence cosine to fp32 a fast backend must reach (default {MIN_AGREEMENT}; "
                   "it can only be raised)")


def run(args):
    from pocketbert.pipeline.teacher_cache import encode_corpus

    info = encode_corpus(args.teacher, args.corpus, max_length=args.max_length, backend=args.backend,
                         device=args.device, tokenizer=args.tokenizer, text_field=args.text_field, limit=args.limit,
                         threads=args.threads, chunk_size=args.chunk_size, max_tokens=args.max_tokens,
                         batch_size=args.batch_size, min_agreement=args.min_agreement)
    if not info:  # a non-zero torchrun rank: rank 0 reports
        return {}, ""
    head = f"{info['texts']} texts, {args.teacher} ({info['backend']}, max_length {info['max_length']})"
    agreement = info.get("agreement")
    agree = (f"; agreement with fp32: min cosine {agreement['min']:.4f}, mean {agreement['mean']:.4f} "
             f"on {agreement['sample']} sentences" if agreement else "")
    if info["hit"]:
        return info, f"{head}: already cached, no teacher pass ({info['file']}){agree}"
    p = info["pass"]
    rate = f"{p['sentences_per_s']:.1f} sentences/s" if p["sentences_per_s"] else "nothing to encode"
    text = (f"{head}: {p['computed_sentences']} encoded in {p['encode_s']:.1f} s, {rate} "
            f"({p['ranks']} rank(s) x {p['threads_per_rank']} thread(s), {p['device']}; {p['reused_chunks']} of "
            f"{p['reused_chunks'] + p['computed_chunks']} chunks reused){agree}\ncache: {info['file']}")
    return info, text
