HELP = "build a student from a teacher by layer selection, optionally trimming the vocabulary"
DESCRIPTION = """Build a student from a teacher: keep a subset of its layers (DistilBERT-style init) and,
optionally, only the vocabulary a corpus uses (plus specials and every single-character piece). A corpus
item is a text or TSV file, or `wordfreq:LANG:N`: the N most frequent words of LANG by the wordfreq package
(word lists CC-BY-SA 4.0), a vocabulary not tied to one data set.

  pocketbert student --teacher minilm --layers 0,5 --out s2
  pocketbert student --teacher minilm --layers uniform:3 --trim-vocab stsb/train.tsv sst2/train.tsv --out s3
  pocketbert student --teacher s2 --layers all --trim-vocab wordfreq:en:20000 stsb/train.tsv --out s2t
  pocketbert student --teacher s2 --layers all --table-int4 --out s2q   # word table on the int4 export grid
"""


def add_arguments(p) -> None:
    p.add_argument("--teacher", required=True, help="local HF model folder (BERT, DistilBERT, ALBERT), `minilm`, "
                   "`paraphrase-minilm-l3`, or an .onnx encoder with --tokenizer")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (or `minilm`) of an .onnx teacher")
    p.add_argument("--layers", required=True,
                   help="teacher layers to keep: indices like 0,2,5, or every-other, first:N, last:N, uniform:N")
    p.add_argument("--trim-vocab", nargs="+", metavar="CORPUS", default=None,
                   help="text or TSV files and/or wordfreq:LANG:N (the N most frequent words); keep only the "
                   "tokens they use (plus specials and single characters)")
    p.add_argument("--table-int4", action="store_true",
                   help="store the word table on the int4 grid of the int4 embedding rungs (blocks of 32, "
                   "absmax/7 fp16 scales), so int4 artifacts of the table lose nothing more")
    p.add_argument("--out", required=True, help="output checkpoint folder (must not exist, or be a pocketbert checkpoint)")


def run(args):
    from pocketbert.pipeline.student import StudentConfig, main

    r = main(StudentConfig(teacher=args.teacher, layers=args.layers, out=args.out, trim_vocab=args.trim_vocab or [],
                           table_int4=args.table_int4, tokenizer=args.tokenizer, command=args.command_line))
    text = (f"wrote {r['out']}: layers {r['layers']} of {r['teacher']}, vocab {r['vocab_size']}, "
            f"{r['num_parameters'] / 1e6:.1f} M parameters, {r['weights_bytes'] / 1e6:.1f} MB")
    return {k: v for k, v in r.items() if k != "teacher"}, text
