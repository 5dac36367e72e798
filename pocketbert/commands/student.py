HELP = "build a student from a teacher by layer selection, optionally trimming the vocabulary"
DESCRIPTION = """Build a student from a teacher: keep a subset of its layers (DistilBERT-style init) and,
optionally, only the vocabulary a corpus uses (plus specials and every single-character piece).

  pocketbert student --teacher minilm --layers 0,5 --out s2
  pocketbert student --teacher minilm --layers uniform:3 --trim-vocab stsb/train.tsv sst2/train.tsv --out s3
"""


def add_arguments(p) -> None:
    p.add_argument("--teacher", required=True, help="local HF model folder (BERT, DistilBERT, ALBERT), `minilm`, "
                   "`paraphrase-minilm-l3`, or an .onnx encoder with --tokenizer")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (or `minilm`) of an .onnx teacher")
    p.add_argument("--layers", required=True,
                   help="teacher layers to keep: indices like 0,2,5, or every-other, first:N, last:N, uniform:N")
    p.add_argument("--trim-vocab", nargs="+", metavar="CORPUS", default=None,
                   help="text or TSV files; keep only the tokens they use (plus specials and single characters)")
    p.add_argument("--out", required=True, help="output checkpoint folder (must not exist, or be a pocketbert checkpoint)")


def run(args):
    from pathlib import Path

    from pocketbert.files import check_output_dir, sha256_file
    from pocketbert.pipeline.checkpoint import MARKER, load_checkpoint, save_checkpoint
    from pocketbert.pipeline.student import (
        apply_vocab,
        parse_layers,
        read_corpus_lines,
        select_layers,
        trimmed_vocab,
    )
    from pocketbert.pipeline.tokenizer import Tokenizer, tokenizer_options

    out = Path(args.out)
    check_output_dir(out, MARKER)  # fail before any work
    corpus = [Path(p) for p in args.trim_vocab] if args.trim_vocab else None
    if corpus:
        for p in corpus:
            if not p.is_file():
                from pocketbert.errors import PocketBertError

                raise PocketBertError(f"--trim-vocab: corpus file {p} does not exist")
    teacher = load_checkpoint(args.teacher, tokenizer=args.tokenizer)
    layers = parse_layers(args.layers, teacher.model.config.num_hidden_layers)
    student = select_layers(teacher.model, layers)
    record = {
        "parent": {"path": str(teacher.path.resolve()), "model_type": teacher.model_type,
                   "weights_sha256": sha256_file(teacher.path / "model.safetensors"),
                   "num_hidden_layers": teacher.model.config.num_hidden_layers},
        "layer_map": layers,
        "stage": "student",
    }
    tokens = None
    vocab_before = student.config.vocab_size
    if corpus:
        tok = Tokenizer(teacher.path)
        keep = trimmed_vocab(tok, read_corpus_lines(corpus))
        student = apply_vocab(student, keep)
        tokens = [tok.vocab[i] for i in keep]
        record["vocab_trim"] = {"corpus": [str(p.resolve()) for p in corpus], "before": vocab_before,
                                "after": len(keep)}
    save_checkpoint(student, out, tokenizer_src=teacher.path, tokens=tokens,
                    tokenizer_opts=tokenizer_options(teacher.path), record=record)
    size = (out / "model.safetensors").stat().st_size
    result = {"out": str(out), "layers": layers, "num_hidden_layers": len(layers),
              "vocab_size": student.config.vocab_size, "num_parameters": sum(p.numel() for p in student.parameters()),
              "weights_bytes": size}
    text = (f"wrote {out}: layers {layers} of {teacher.path.name}, vocab {student.config.vocab_size}, "
            f"{result['num_parameters'] / 1e6:.1f} M parameters, {size / 1e6:.1f} MB")
    return result, text
