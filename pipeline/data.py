"""Training text: files, folders and globs -> tokenized examples -> length-grouped, per-rank batches.

Sources (one string each):
- text files (`.txt` and anything unrecognised): one sentence or document per line;
- JSONL (`.jsonl`): the field `text_field` (default `text`) of each object;
- TSV / CSV (`.tsv`, `.csv`): the column `text_field` when given; otherwise a `sentence` column
  (SST-2), or `sentence1` and `sentence2` (STS-B, headed or in the GLUE 10-column layout), or every column;
- folders (every file inside, sorted) and globs (`data/*.txt`);
- `default`: the embedded default corpus (see `default_corpus`), which needs no download.

Lines that are not UTF-8 or are empty are counted and skipped with one warning per file; a corpus
with no text at all is an error. Labels (classification) come from the column or field `label_field`.
"""

from __future__ import annotations

import ast
import csv
import glob
import io
import json
import os
import random
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pocketbert.errors import PocketBertError

DEFAULT_CORPUS = "default"
_CORPUS_VERSION = 1


@dataclass
class TextRecords:
    """What `read_texts` found: the texts, labels (or None), and what was skipped."""

    texts: list[str] = field(default_factory=list)
    labels: list[int] | None = None
    skipped_empty: int = 0
    skipped_non_utf8: int = 0
    files: list[str] = field(default_factory=list)

    def skipped(self) -> str:
        """` (N empty, M non-UTF-8 skipped)` for a terminal line, or nothing when nothing was skipped."""
        if not (self.skipped_empty or self.skipped_non_utf8):
            return ""
        return f" ({self.skipped_empty} empty, {self.skipped_non_utf8} non-UTF-8 skipped)"


def expand_sources(sources: list[str]) -> list[Path | str]:
    """Sources -> concrete files (folders and globs expanded, sorted); `default` stays as is."""
    out: list[Path | str] = []
    for src in sources:
        if src == DEFAULT_CORPUS:
            out.append(DEFAULT_CORPUS)
            continue
        if any(ch in src for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(src), recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise PocketBertError(f"data source {src!r} matches no files; check the pattern")
            out.extend(files)
            continue
        path = Path(os.path.expanduser(src))
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise PocketBertError(f"data folder {path} holds no files; add text files or pass another folder")
            out.extend(files)
        elif path.is_file():
            out.append(path)
        else:
            raise PocketBertError(f"data source {path} does not exist; pass a text, JSONL, TSV or CSV file, a folder or a glob")
    return out


def _decoded_lines(path: Path, stats: TextRecords) -> list[str]:
    """Lines of a file; lines that are not UTF-8 are counted and dropped."""
    lines = []
    bad = 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError:
                bad += 1
    if bad:
        stats.skipped_non_utf8 += bad
        warnings.warn(f"{path}: skipped {bad} line(s) that are not UTF-8", stacklevel=3)
    return lines


def _label(value, where: str) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise PocketBertError(f"{where}: label {value!r} is not an integer class index") from None


# Sentence-pair layouts by header: (first sentence, second sentence, score) column names. STS-B (GLUE) and SICK.
PAIR_HEADERS = (("sentence1", "sentence2", "score"), ("sentence_A", "sentence_B", "relatedness_score"))


def pair_columns(header: list[str]) -> tuple[int, int, int | None] | None:
    """Column indices (a, b, score or None) of a headed pair file (STS-B or SICK), or None."""
    for a, b, score in PAIR_HEADERS:
        if a in header and b in header:
            return header.index(a), header.index(b), header.index(score) if score in header else None
    return None


def _table_rows(path: Path, lines: list[str], text_field: str | None, label_field: str | None):
    """(texts, label) per row of a TSV/CSV."""
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL))
    rows = [r for r in rows if r]
    if not rows:
        return
    header = [h.strip() for h in rows[0]]
    pair = pair_columns(header)
    named = text_field is not None or label_field is not None or "sentence" in header or pair is not None
    if text_field is not None:
        if text_field not in header:
            raise PocketBertError(f"{path}: no column {text_field!r} (columns: {', '.join(header)}); set data.text_field")
        cols = [header.index(text_field)]
    elif "sentence" in header:
        cols = [header.index("sentence")]
    elif pair is not None:  # STS-B or SICK: both sentences of each pair
        cols = list(pair[:2])
    elif len(header) == 10:  # GLUE STS-B without header: ..., sentence1, sentence2, score
        cols, named = [7, 8], False
    else:
        cols, named = list(range(len(header))), False
    label_col = None
    if label_field is not None:
        if label_field not in header:
            raise PocketBertError(f"{path}: no column {label_field!r} (columns: {', '.join(header)}); set data.label_field")
        label_col = header.index(label_field)
    for n, r in enumerate(rows[1:] if named else rows, 2 if named else 1):
        texts = [r[c] if c < len(r) else "" for c in cols]
        label = _label(r[label_col] if label_col < len(r) else None, f"{path}:{n}") if label_col is not None else None
        yield texts, label


def _jsonl_rows(path: Path, lines: list[str], text_field: str | None, label_field: str | None):
    key = text_field or "text"
    for n, line in enumerate(lines, 1):
        if not line.strip():
            yield [""], None
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise PocketBertError(f"{path}:{n}: not a JSON object; JSONL needs one object per line") from None
        if not isinstance(obj, dict) or key not in obj:
            raise PocketBertError(f"{path}:{n}: no field {key!r}; set data.text_field to the field holding the text")
        label = _label(obj.get(label_field), f"{path}:{n}") if label_field is not None else None
        yield [str(obj[key])], label


def read_texts(sources: list[str], text_field: str | None = None, label_field: str | None = None,
               limit: int | None = None) -> TextRecords:
    """Read every source into one list of texts (and labels when `label_field` is set).

    Raises:
        PocketBertError: a source is missing, a named column/field is absent, or no text is left.
    """
    out = TextRecords(labels=[] if label_field is not None else None)
    for src in expand_sources(sources):
        if src == DEFAULT_CORPUS:
            if label_field is not None:
                raise PocketBertError("the default corpus has no labels; give labelled TSV/CSV/JSONL files")
            out.files.append(str(default_corpus_path()))
            out.texts.extend(default_corpus())
            continue
        out.files.append(str(src))
        lines = _decoded_lines(src, out)
        suffix = src.suffix.lower()
        if suffix in (".tsv", ".csv"):
            rows = _table_rows(src, lines, text_field, label_field)
        elif suffix == ".jsonl":
            rows = _jsonl_rows(src, lines, text_field, label_field)
        else:
            if label_field is not None:
                raise PocketBertError(f"{src}: plain text has no labels; give a TSV/CSV/JSONL with column {label_field!r}")
            rows = (([line], None) for line in lines)
        empty = 0
        for texts, label in rows:
            for t in texts:
                t = t.strip()
                if not t:
                    empty += 1
                    continue
                out.texts.append(t)
                if out.labels is not None:
                    out.labels.append(label)
        if empty:
            out.skipped_empty += empty
            warnings.warn(f"{src}: skipped {empty} empty line(s)", stacklevel=2)
        if limit is not None and len(out.texts) >= limit:
            break
    if limit is not None:
        out.texts = out.texts[:limit]
        if out.labels is not None:
            out.labels = out.labels[:limit]
    if not out.texts:
        raise PocketBertError(f"the corpus {', '.join(sources)} holds no text; give files with at least one non-empty line")
    return out


# ---------------------------------------------------------------------------------------------
# The embedded default corpus


def cache_dir() -> Path:
    """The user cache folder for pocketbert ($POCKETBERT_CACHE, else $XDG_CACHE_HOME/pocketbert, else ~/.cache/pocketbert)."""
    env = os.environ.get("POCKETBERT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pocketbert"


def default_corpus_path() -> Path:
    return cache_dir() / f"default-corpus-v{_CORPUS_VERSION}.txt"


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PROSE = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'()\-]+[a-z][.!?]$")


def _prose_sentences(doc: str):
    """English prose sentences of a docstring: paragraphs before any code, parameter list or markup."""
    for para in re.split(r"\n\s*\n", doc):
        if any(mark in para for mark in (">>>", "::", "--", "==", "`", "|", "http", "{", "}", "_", "=", "[", "]", "/")):
            continue
        text = " ".join(para.split())
        for sent in _SENTENCE_END.split(text):
            words = sent.split()
            if 6 <= len(words) <= 40 and _PROSE.match(sent):
                yield sent


def harvest_default_corpus(max_sentences: int = 60000, max_files: int = 6000) -> list[str]:
    """English prose from the docstrings (read with `ast`, nothing is imported) and metadata summaries
    of the installed Python packages, deduplicated, in a deterministic order."""
    from importlib import metadata

    seen: dict[str, None] = {}
    for dist in sorted(metadata.distributions(), key=lambda d: (d.metadata.get("Name") or "").lower()):
        summary = (dist.metadata.get("Summary") or "").strip()
        for s in _prose_sentences(summary if summary.endswith(".") else summary + "."):
            seen.setdefault(s)
    roots = sorted({p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir()})
    n_files = 0
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if n_files >= max_files or len(seen) >= max_sentences:
                break
            if "test" in path.parts[-2] or path.name.startswith("test"):
                continue
            n_files += 1
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        for s in _prose_sentences(doc):
                            seen.setdefault(s)
    return list(seen)[:max_sentences]


def default_corpus() -> list[str]:
    """The embedded default corpus: English prose harvested from the docstrings and metadata of the
    installed Python packages. It is software documentation, not general text: good enough to run
    and test every objective without a download, not a substitute for a real corpus.

    Built once and cached in `default_corpus_path()` (first line: a `#` label saying what it is).
    """
    path = default_corpus_path()
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line for line in lines[1:] if line.strip()]
    sentences = harvest_default_corpus()
    if not sentences:
        raise PocketBertError("no docstrings found to build the default corpus; pass data files instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    label = ("# pocketbert default corpus: English prose harvested from docstrings and package metadata of the "
             "installed Python packages (not general-domain text)")
    tmp.write_text(label + "\n" + "\n".join(sentences) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return sentences


# ---------------------------------------------------------------------------------------------
# Tokenization and batches


def tokenize(tokenizer, texts: list[str], max_length: int, chunk: int = 4096) -> list[list[int]]:
    """Token ids per text ([CLS] ... [SEP], truncated keeping [SEP] last), encoded in chunks."""
    out: list[list[int]] = []
    for start in range(0, len(texts), chunk):
        for ids in tokenizer.encode_ids(texts[start:start + chunk]):
            if len(ids) > max_length:
                ids = ids[: max_length - 1] + [ids[-1]]
            out.append(ids)
    return out


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True,
                  rank: int = 0, world_size: int = 1, group_factor: int = 50) -> list[list[int]]:
    """The batches (lists of example indices) that `rank` sees in `epoch`, a pure function of its arguments.

    Shuffled with (seed, epoch); with `group_by_length`, shuffled chunks of `group_factor` batches are
    sorted by length before being cut into batches, so a batch pads little yet the order stays random.
    Batches are dealt round-robin to ranks; every rank gets the same number (the tail is dropped).
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        mega = batch_size * group_factor
        grouped = []
        for start in range(0, len(order), mega):
            grouped.extend(sorted(order[start:start + mega], key=lambda i: lengths[i]))
        order = grouped
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    per_rank = len(batches) // world_size
    if per_rank == 0:
        raise PocketBertError(
            f"the corpus gives {len(batches)} batch(es) of {batch_size}, fewer than the {world_size} processes; "
            "lower data.batch_size or add text"
        )
    return batches[rank: per_rank * world_size: world_size]


def read_pairs(paths: list[str], position: dict[str, int]) -> tuple[list[tuple[int, int]], int]:
    """Related sentence pairs from TSV files, as index pairs into a corpus (`position`: text -> index).

    A file headed as STS-B or SICK is read by column name (`PAIR_HEADERS`); otherwise a row is
    `..., sentence1, sentence2, score` (STS-B) or `sentence1<TAB>sentence2`. The score is never read.
    Only pairs whose two sentences are in the corpus are kept (they need teacher embeddings); returns the
    pairs and the number of rows dropped.
    """
    pairs, dropped = [], 0
    for item in paths:
        path = Path(item)
        if not path.is_file():
            raise PocketBertError(f"pairs file {path} does not exist; list TSV files of sentence pairs in data.pairs")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise PocketBertError(f"cannot read pairs file {path} ({type(e).__name__}); pass a UTF-8 TSV") from None
        headed = pair_columns(lines[0].split("\t")) if lines else None  # SICK and headed STS-B: by name
        for line in lines[1:] if headed else lines:
            cols = line.split("\t")
            if len(cols) < 2 or (headed and len(cols) <= max(headed[:2])):
                dropped += 1
                continue
            if headed:
                a, b = cols[headed[0]], cols[headed[1]]
            else:
                try:
                    float(cols[-1])
                    a, b = (cols[-3], cols[-2]) if len(cols) >= 3 else (cols[-2], cols[-1])
                except ValueError:
                    a, b = cols[-2], cols[-1]
            if a in position and b in position and a != b:
                pairs.append((position[a], position[b]))
            else:
                dropped += 1
    if not pairs:
        raise PocketBertError(f"no pair in {', '.join(map(str, paths))} has both sentences in the training corpus; "
                              "add the pairs' files to data.train")
    return pairs, dropped


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest row: (input_ids, attention_mask), int64 (B, T)."""
    width = max(len(r) for r in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, r in enumerate(ids):
        input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return input_ids, mask


def split_holdout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, held-out) index split; held-out is `fraction` of n (0 = none)."""
    idx = list(range(n))
    if fraction <= 0:
        return idx, []
    random.Random(seed).shuffle(idx)
    k = max(1, int(round(n * fraction)))
    return sorted(idx[k:]), sorted(idx[:k])
