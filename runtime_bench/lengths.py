"""The lengths users send: texts of a file, tokenized as the apps tokenize them, through the bundle's bucket choice.

`pocketbert bench` measures each artifact family (one format and quantization, all its buckets) on a seeded
sample of these texts exactly as an app calls it: WordPiece ids truncated to the largest bucket, the smallest
bucket that holds them (`pocketbert.bundle.manifest.bucket_for`), padded to that bucket, or, for an artifact
with a dynamic length (`min_seq_len` in the manifest), not padded (`input_length`). `pocketbert bench` and
the build pass the dev suite's files (`pocketbert.pipeline.suite.dev_files`: STS-B dev, SICK test, SST-2 dev,
AG News dev) unless `--texts` names others.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from pocketbert.bundle.manifest import bucket_for, input_length
from pocketbert.errors import PocketBertError

# The columns of a TSV / CSV that hold sentences (the dev suite's files: STS-B, SICK, SST-2, AG News).
TEXT_COLUMNS = ("sentence", "sentence1", "sentence2", "sentence_A", "sentence_B", "text")
SAMPLE_SEED = 0


def read_sentences(paths: list[str | Path]) -> list[str]:
    """Every sentence of `paths`: a TSV/CSV's sentence columns (TEXT_COLUMNS; a pair file gives both), else
    one text per non-empty line.

    Raises:
        PocketBertError: a missing file, a table without a sentence column, or no text at all.
    """
    out: list[str] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise PocketBertError(f"--texts {path}: no such file; give text, TSV or CSV files")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if path.suffix.lower() in (".tsv", ".csv"):
            delim = "\t" if path.suffix.lower() == ".tsv" else ","
            rows = list(csv.reader(lines, delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL))
            header = [h.strip() for h in rows[0]] if rows else []
            cols = [header.index(c) for c in TEXT_COLUMNS if c in header]
            if not cols and len(header) == 10:  # STS-B as GLUE ships it, no header: ..., sentence1, sentence2, score
                cols, rows = [7, 8], [[]] + rows
            if not cols:
                raise PocketBertError(f"--texts {path}: no sentence column (looked for {', '.join(TEXT_COLUMNS)}; "
                                      f"it has {', '.join(header) or 'none'})")
            out += [r[c].strip() for r in rows[1:] for c in cols if c < len(r) and r[c].strip()]
        else:
            out += [line.strip() for line in lines if line.strip()]
    if not out:
        raise PocketBertError(f"--texts {', '.join(map(str, paths))}: no text in these files")
    return out


def tokenizer(bundle):
    """The bundle's WordPiece tokenizer (HF `tokenizers`, from vocab.txt and the manifest's options), the
    pipeline every app mirrors: [CLS] ids [SEP], no truncation (see `encode`)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    t = bundle.manifest["tokenizer"]
    lines = bundle.path(t["vocab_file"]).read_text(encoding="utf-8").split("\n")
    vocab = {tok.rstrip("\r"): i for i, tok in enumerate(lines[:-1] if lines[-1] == "" else lines)}
    tok = Tokenizer(WordPiece(vocab, unk_token=t["unk_token"], max_input_chars_per_word=t["max_input_chars_per_word"]))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=t["tokenize_chinese_chars"],
                                                strip_accents=t["strip_accents"], lowercase=t["lowercase"])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = t["special_tokens"]
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", special["[CLS]"]), ("[SEP]", special["[SEP]"])])
    return tok


def encode(bundle, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, [CLS] ... [SEP], before truncation."""
    return [list(enc.ids) for enc in tokenizer(bundle).encode_batch(texts)]


@dataclass
class Call:
    """One text as an app calls one artifact family: which artifact, its padded ids, how many are real."""

    artifact: dict
    ids: list[int]
    n_tokens: int


def calls(bundle, family: list[dict], token_ids: list[list[int]]) -> list[Call]:
    """Each text's call into `family` (the artifacts of one format and quantization): ids truncated to the
    family's largest bucket, the artifact of the smallest bucket that holds them, the ids padded to that
    artifact's input length (a dynamic-length artifact: not padded)."""
    by_len = {a["seq_len"]: a for a in family}
    pad = bundle.manifest["tokenizer"]["special_tokens"]["[PAD]"]
    limit = max(by_len)
    out = []
    for ids in token_ids:
        if len(ids) > limit:  # truncated as the apps truncate: [SEP] stays last
            ids = ids[: limit - 1] + ids[-1:]
        artifact = by_len[bucket_for(sorted(by_len), len(ids))]
        n = input_length(artifact, len(ids))
        out.append(Call(artifact, ids[:n] + [pad] * (n - len(ids)), min(len(ids), n)))
    return out


def sample(count: int, n: int, seed: int = SAMPLE_SEED) -> list[int]:
    """Indices of a seeded sample of `n` of `count` texts (all of them, in order, when there are fewer)."""
    if count <= n:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), n))


def distribution(bundle, token_ids: list[list[int]]) -> dict:
    """Token-length percentiles of every text, the share of texts per bucket, and how many were truncated."""
    from pocketbert.runtime_bench.stats import percentile

    lengths = [len(ids) for ids in token_ids]
    buckets = [bucket_for(bundle.seq_lens, n) for n in lengths]
    limit = max(bundle.seq_lens)
    return {"texts": len(lengths), "tokens_p50": percentile(lengths, 50), "tokens_p90": percentile(lengths, 90),
            "tokens_max": max(lengths),
            "share_by_bucket": {str(b): buckets.count(b) / len(buckets) for b in bundle.seq_lens},
            "truncated_share": sum(n > limit for n in lengths) / len(lengths)}
