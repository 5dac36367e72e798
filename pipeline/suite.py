"""The dev suite: four tasks and their mean, the one number every recipe choice is made on.

Defined by the shared data's README (`../shared/data/README.md`), all x100:
- `stsb`: STS-B dev, Spearman of the cosine of each pair's embeddings against the gold score;
- `sickr`: SICK-R (the SICK test split's relatedness), scored the same way;
- `sst2`: SST-2 accuracy of a logistic regression on frozen, L2-normalised embeddings, fitted on 8,000
  seeded rows of `sst2/train.tsv`, scored on `sst2/dev.tsv`;
- `agnews`: AG News accuracy of the same logistic regression, 5-fold cross-validated on `agnews/dev.tsv`
  (stratified folds, seed 0);
- `mean`: the mean of the four. A change that raises one and lowers the mean is not an improvement.

Sentences of the suite's dev files (STS-B dev, SICK test, SST-2 dev, AG News dev) never go into training
text: `dev_sentences` is what the distillation stage removes from its corpus. The SST-2 probe's 8,000
training rows are training data of the probe, not dev text.

A model is scored through one function, `embed(texts) -> (N, D)`, called once with every distinct text
of the suite, so PyTorch models, static models, teachers and each bundle artifact in its own runtime are
scored the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import mpnet, names, static
from pocketbert.pipeline.data import cache_dir, read_texts
from pocketbert.pipeline.evaluate import (
    StsPairs,
    linear_probe,
    probe_accuracy,
    read_probe,
    read_sts,
    sts_of,
    sts_spearman,
)
from pocketbert.pipeline.teacher_cache import as_teacher, load_sentence_teacher, teacher_embeddings

TASKS = ("stsb", "sickr", "sst2", "agnews")
SUITES = {  # suite name -> task -> files relative to the data folder (the probe: [train, dev])
    "dev": {"stsb": ["stsb/dev.tsv"], "sickr": ["sick/test.tsv"], "sst2": ["sst2/train.tsv", "sst2/dev.tsv"],
            "agnews": ["agnews/dev.tsv"]},
}
FOLDS = 5  # AG News cross-validation folds
# The dev files of each suite: their sentences never go into training text.
DEV_FILES = {"dev": ["stsb/dev.tsv", "sick/test.tsv", "sst2/dev.tsv", "agnews/dev.tsv"]}


def data_root() -> Path:
    """The shared data folder: $POCKETBERT_DATA, else `../shared/data` from the working directory."""
    return Path(os.environ.get("POCKETBERT_DATA", "../shared/data"))


@dataclass
class Labelled:
    texts: list[str]
    labels: list[int]


@dataclass
class Suite:
    """A suite's data, read and checked: the pairs of the two similarity tasks, the SST-2 probe (`read_probe`:
    train texts, train labels, dev texts, dev labels) and AG News' labelled texts. `files` lists every file read."""

    name: str
    root: Path
    stsb: StsPairs
    sickr: StsPairs
    sst2: tuple
    agnews: Labelled
    files: list[str] = field(default_factory=list)

    def texts(self) -> list[str]:
        """Every distinct text the suite embeds, in a fixed order."""
        return list(dict.fromkeys([*self.stsb.s1, *self.stsb.s2, *self.sickr.s1, *self.sickr.s2,
                                   *self.sst2[0], *self.sst2[2], *self.agnews.texts]))


def _labelled(path: Path, text_field: str) -> Labelled:
    """Texts and class labels of a headed TSV; string labels (AG News' `World`, ...) become class indices."""
    if not path.is_file():
        raise PocketBertError(f"suite file {path} does not exist; point POCKETBERT_DATA (or --data) at the shared "
                              "data folder (its README lists the files)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PocketBertError(f"cannot read suite file {path} ({type(e).__name__}); restore it from the shared data") from None
    header = lines[0].split("\t") if lines else []
    if text_field not in header or "label" not in header:
        raise PocketBertError(f"{path}:1: expected a header with `{text_field}` and `label` columns, got "
                              f"{header[:4]}; restore the file from the shared data")
    t, c = header.index(text_field), header.index("label")
    texts, raw = [], []
    for n, line in enumerate(lines[1:], 2):
        cols = line.split("\t")
        if len(cols) <= max(t, c) or not cols[t].strip() or not cols[c].strip():
            raise PocketBertError(f"{path}:{n}: expected a text and a label separated by a tab; restore the file "
                                  "from the shared data")
        texts.append(cols[t].strip())
        raw.append(cols[c].strip())
    classes = sorted(set(raw))
    if len(classes) < 2:
        raise PocketBertError(f"{path}: needs at least two label classes, found {len(classes)}")
    index = {k: i for i, k in enumerate(classes)}
    return Labelled(texts, [index[x] for x in raw])


def load_suite(name: str = "dev", root: str | os.PathLike | None = None) -> Suite:
    """Read and check every file of a suite before any model is loaded.

    Raises:
        PocketBertError: an unknown suite name, or a missing or malformed file (one line naming it and the fix).
    """
    if name not in SUITES:
        raise PocketBertError(f"unknown suite {name!r}; the suites are: {', '.join(SUITES)}")
    root = Path(root) if root is not None else data_root()
    spec = {task: [root / f for f in files] for task, files in SUITES[name].items()}
    for paths in spec.values():
        for p in paths:
            if not p.is_file():
                raise PocketBertError(f"suite file {p} does not exist; point POCKETBERT_DATA (or --data) at the "
                                      "shared data folder (its README lists the files)")
    stsb, sickr = read_sts(spec["stsb"][0]), read_sts(spec["sickr"][0])
    sst2 = read_probe([str(p) for p in spec["sst2"]])  # 8,000 seeded training rows, every dev row
    agnews = _labelled(spec["agnews"][0], "text")
    if min(np.bincount(agnews.labels)) < FOLDS:
        raise PocketBertError(f"{spec['agnews'][0]}: every class needs at least {FOLDS} rows for {FOLDS}-fold "
                              "cross-validation")
    files = [str(p.resolve()) for paths in spec.values() for p in paths]
    return Suite(name, root, stsb, sickr, sst2, agnews, files)


def dev_files(name: str = "dev", root: str | os.PathLike | None = None) -> list[Path]:
    """A suite's dev files that exist under the data folder ([] without it): what training text must not
    contain, and the sentences whose lengths `pocketbert bench` times as users send them."""
    root = Path(root) if root is not None else data_root()
    return [root / f for f in DEV_FILES[name] if (root / f).is_file()]


def dev_sentences(name: str = "dev", root: str | os.PathLike | None = None) -> set[str]:
    """The sentences of a suite's dev files (stripped), which training text must not contain; empty when the
    data folder is absent (nothing to protect)."""
    return {t for p in dev_files(name, root) for t in read_texts([str(p)]).texts}


def cv_accuracy(x: np.ndarray, y: list[int], folds: int = FOLDS) -> float:
    """Mean accuracy x100 of the same logistic regression over stratified folds (shuffled, seed 0)."""
    from sklearn.model_selection import StratifiedKFold  # optional heavy dependency, needed only here

    y = np.asarray(y)
    scores = [linear_probe(x[tr], y[tr], x[te], y[te])
              for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y)]
    return float(np.mean(scores))


def score_suite(suite: Suite, embed: Callable[[list[str]], np.ndarray]) -> dict:
    """The four numbers and their mean (x100, 2 decimals) of one model, given as `embed(texts) -> (N, D)`."""
    texts = suite.texts()
    emb = np.asarray(embed(texts), dtype=np.float32)
    if emb.shape[0] != len(texts):
        raise ValueError(f"embed returned {emb.shape[0]} rows for {len(texts)} texts")
    row = {t: i for i, t in enumerate(texts)}

    def rows(ts: list[str]) -> np.ndarray:
        return emb[[row[t] for t in ts]]

    out = {
        "stsb": sts_spearman(rows(suite.stsb.s1), rows(suite.stsb.s2), suite.stsb.scores),
        "sickr": sts_spearman(rows(suite.sickr.s1), rows(suite.sickr.s2), suite.sickr.scores),
        "sst2": probe_accuracy(rows, suite.sst2),
        "agnews": cv_accuracy(rows(suite.agnews.texts), suite.agnews.labels),
    }
    out["mean"] = float(np.mean([out[t] for t in TASKS]))
    return {k: round(v, 2) for k, v in out.items()}


def format_scores(name: str, scores: dict) -> str:
    """One line: `name  stsb 81.03  sickr 77.15  sst2 83.12  agnews 88.10  mean 82.35`."""
    return f"{name}  " + "  ".join(f"{k} {scores[k]:.2f}" for k in (*TASKS, "mean") if k in scores)


def model_embedder(name_or_path, tokenizer=None, max_length: int = 256, batch_size: int = 64,
                   cache: bool | None = None) -> tuple[Callable[[list[str]], np.ndarray], Path, str]:
    """(embed, folder, kind) for any model name or path: texts -> (N, D) float32 pooled embeddings, in PyTorch
    fp32 (length-sorted batches, `teacher_cache.SentenceTeacher.encode`) at most `max_length` tokens and at most
    the model's own limit, or numpy for a static (model2vec) model; `kind` is `encoder`, `mpnet` or `static`.

    `cache` (default: for named models, whose weights never change) keeps the embeddings in the teacher cache,
    so a reference scored by every build costs one pass.
    """
    if static.is_static(name_or_path):
        model = static.StaticModel.load(name_or_path)
        return model.embed, model.path, "static"
    if str(name_or_path) == mpnet.NAME or mpnet.is_mpnet_folder(name_or_path):
        teacher = load_sentence_teacher(name_or_path)
    else:
        teacher = as_teacher(names.load(name_or_path, tokenizer=tokenizer), str(name_or_path))
    if cache is None:
        cache = str(name_or_path) in names.known_names()

    def embed(texts: list[str]) -> np.ndarray:
        if cache:
            return teacher_embeddings(teacher, texts, max_length, cache_dir(), batch_size, progress=False)[0]
        return teacher.encode(texts, max_length, batch_size=batch_size)

    return embed, teacher.path, "mpnet" if teacher.kind == "mpnet" else "encoder"


def evaluate_model(name_or_path, sts_path=None, tokenizer=None, batch_size: int = 64, probe: list[str] | None = None,
                   suite: str | Suite | None = None) -> dict:
    """A model scored in PyTorch fp32 (numpy for static models): STS Spearman x100 on `sts_path`, the held-out
    probe's accuracy (`probe` = [train TSV, dev TSV]) and/or the dev suite (`suite`, a name or a loaded Suite).

    Every file is read before the model is loaded. Returns `{checkpoint, seconds}` with `spearman` and `pairs`,
    `probe_accuracy` and `probe`, `suite` ({stsb, sickr, sst2, agnews, mean}) and `suite_name` as asked;
    `kind: static` for a static model.
    """
    pairs = read_sts(sts_path) if sts_path else None  # bad files fail before the model loads
    probe_data = read_probe(probe) if probe else None
    suite = load_suite(suite) if isinstance(suite, str) else suite
    embed, path, kind = model_embedder(name_or_path, tokenizer, batch_size=batch_size)
    t0 = time.perf_counter()
    out: dict = {"checkpoint": str(path), **({"kind": kind} if kind != "encoder" else {})}
    if pairs is not None:
        out |= {"spearman": round(sts_of(embed, pairs), 4), "pairs": len(pairs.scores)}
    if probe_data is not None:
        out |= {"probe_accuracy": probe_accuracy(embed, probe_data), "probe": [str(Path(p).resolve()) for p in probe]}
    if suite is not None:
        out |= {"suite": score_suite(suite, embed), "suite_name": suite.name}
    return {**out, "seconds": round(time.perf_counter() - t0, 2)}

