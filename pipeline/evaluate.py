"""Evaluation of a model in PyTorch: what training stages track, and what `pocketbert eval` reports.

- STS-B: Spearman correlation (x100) between cos(embed(s1), embed(s2)) and the gold score, with the
  embeddings pooled as the model's config says, the sentence-transformers way (all-MiniLM-L6-v2 on
  STS-B dev: 81.0).
- Classification accuracy (x100) of argmax class logits.
- MLM accuracy (x100): share of masked tokens predicted exactly, on fixed masks.
- Held-out probe: accuracy (x100) of a logistic regression on the frozen, normalised sentence embeddings
  (up to 8,000 training texts, all dev texts): a check that a student distilled for similarity did not
  lose what else its embeddings carry (SST-2 sentiment, say, when it was distilled for STS).

`make_evaluator` turns a recipe's `eval` section into the one function a training stage calls.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import spearmanr

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.data import collate, pair_columns, read_texts, tokenize
from pocketbert.pipeline.losses import IGNORE_INDEX, mask_tokens
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.tokenizer import Tokenizer

if TYPE_CHECKING:  # types only: export reads this module and needs no recipes
    from pocketbert.pipeline.recipe import DataConfig, EvalConfig


@dataclass
class StsPairs:
    s1: list[str]
    s2: list[str]
    scores: np.ndarray  # (N,) float, 0..5


def read_sts(path: str | Path) -> StsPairs:
    """Scored sentence pairs: a headed STS-B or SICK TSV (columns by name: `sentence1`, `sentence2`, `score`, or
    SICK's `sentence_A`, `sentence_B`, `relatedness_score`), or headerless rows with the two sentences and the
    score in the last three columns (GLUE STS-B, or `sentence1<TAB>sentence2<TAB>score`).

    Raises:
        PocketBertError: a missing, unreadable or malformed file (the line and what is wrong), or no pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise PocketBertError(f"STS file {path} does not exist; pass an STS-B TSV such as stsb/dev.tsv")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PocketBertError(f"cannot read STS file {path} ({type(e).__name__}); pass a UTF-8 STS-B TSV") from None
    lines = text.splitlines()
    headed = pair_columns(lines[0].split("\t")) if lines else None
    if headed is not None and headed[2] is None:
        raise PocketBertError(f"{path}:1: the header names the sentences but no score column; add `score` "
                              "(STS-B) or `relatedness_score` (SICK)")
    a, b, c = headed if headed is not None else (-3, -2, -1)
    s1, s2, scores = [], [], []
    for n, line in enumerate(lines[1:] if headed else lines, 2 if headed else 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 3 or (headed and len(cols) <= max(a, b, c)):
            raise PocketBertError(f"{path}:{n}: expected tab-separated sentence1, sentence2, score; got {len(cols)} column(s)")
        try:
            score = float(cols[c])
        except ValueError:
            if n == 1:
                continue  # header row
            raise PocketBertError(f"{path}:{n}: score {cols[c]!r} is not a number") from None
        s1.append(cols[a])
        s2.append(cols[b])
        scores.append(score)
    if not scores:
        raise PocketBertError(f"STS file {path} holds no sentence pairs; pass a non-empty STS-B TSV")
    return StsPairs(s1, s2, np.asarray(scores, dtype=np.float64))


@torch.inference_mode()
def embed_texts(model: Encoder, tokenizer: Tokenizer, texts: list[str], batch_size: int = 64,
                max_length: int = 256) -> np.ndarray:
    """(N, H) float32 sentence embeddings, in input order. Batches are length-sorted to pad little."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    max_length = min(max_length, model.config.max_position_embeddings)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = tokenizer([texts[i] for i in idx], max_length=max_length)
        emb = model.embed(torch.from_numpy(ids), torch.from_numpy(mask))
        out[idx] = emb.float().numpy()
    return out


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.clip(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12, None)
    return (a * b).sum(-1)


def sts_spearman(emb1: np.ndarray, emb2: np.ndarray, gold: np.ndarray) -> float:
    """Spearman x100 between row cosines and gold scores."""
    return float(spearmanr(cosine_rows(emb1, emb2), gold).statistic * 100.0)


def sts_of(embed: Callable[[list[str]], np.ndarray], pairs: StsPairs) -> float:
    """STS Spearman x100 of a model given as `embed(texts) -> (N, D)`: each distinct sentence embedded once."""
    texts = list(dict.fromkeys(pairs.s1 + pairs.s2))
    emb = embed(texts)
    row = {t: i for i, t in enumerate(texts)}
    return sts_spearman(emb[[row[t] for t in pairs.s1]], emb[[row[t] for t in pairs.s2]], pairs.scores)


def evaluate_sts(model: Encoder, tokenizer: Tokenizer, pairs: StsPairs, batch_size: int = 64) -> float:
    """STS Spearman x100 of the model in PyTorch (cosine of pooled embeddings vs gold)."""
    return sts_of(lambda texts: embed_texts(model, tokenizer, texts, batch_size=batch_size), pairs)


@torch.no_grad()
def mlm_accuracy(model: Encoder, ids: list[list[int]], pad_id: int, special_ids: list[int], mask_id: int,
                 vocab_size: int, seed: int = 1234, batch_size: int = 64, probability: float = 0.15) -> float:
    """Share of masked tokens predicted exactly, on fixed masks (same seed every call), x100."""
    device = next(model.parameters()).device
    correct = total = 0
    for start in range(0, len(ids), batch_size):
        input_ids, mask = collate(ids[start:start + batch_size], pad_id)
        gen = torch.Generator().manual_seed(seed + start)
        masked, labels = mask_tokens(input_ids, mask, special_ids, mask_id, vocab_size, gen, probability)
        hidden = model(masked.to(device), mask.to(device)).last_hidden_state
        picked = labels.to(device) != IGNORE_INDEX
        pred = model.mlm_logits(hidden[picked]).argmax(-1)
        correct += int((pred == labels.to(device)[picked]).sum())
        total += int(picked.sum())
    return 100.0 * correct / max(total, 1)


@torch.no_grad()
def classification_accuracy(model: Encoder, ids: list[list[int]], labels: list[int], pad_id: int,
                            batch_size: int = 64) -> float:
    """Accuracy x100 of argmax class logits."""
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        input_ids, mask = collate([ids[i] for i in idx], pad_id)
        pred = model.classify(input_ids.to(device), mask.to(device)).argmax(-1).cpu()
        correct += int((pred == torch.tensor([labels[i] for i in idx])).sum())
    return 100.0 * correct / max(len(ids), 1)


def make_evaluator(eval_cfg: EvalConfig, data_cfg: DataConfig, tokenizer: Tokenizer,
                   holdout_ids: list[list[int]]) -> Callable[[Encoder], dict] | None:
    """The evaluation a recipe asks for, as one function model -> {metric: value}; None if it asks for none.

    Inputs are read here, before training, so a bad evaluation file fails the run at once.
    """
    sts = read_sts(eval_cfg.sts) if eval_cfg.sts else None
    cls_ids = cls_labels = None
    if eval_cfg.classification:
        if data_cfg.label_field is None:
            raise PocketBertError("eval.classification needs data.label_field (the label column)")
        recs = read_texts([eval_cfg.classification], data_cfg.text_field, data_cfg.label_field,
                          limit=eval_cfg.max_examples)
        cls_ids = tokenize(tokenizer, recs.texts, data_cfg.max_length)
        cls_labels = recs.labels
    held = holdout_ids[: eval_cfg.max_examples] if eval_cfg.mlm else []
    if eval_cfg.mlm and not held:
        raise PocketBertError("eval.mlm needs held-out text: set data.holdout (e.g. 0.05)")
    if sts is None and cls_ids is None and not held:
        return None
    specials = sorted(tokenizer.special_ids.values())

    def evaluate(model: Encoder) -> dict:
        if next(model.parameters()).device.type != "cpu":
            model = copy.deepcopy(model).cpu()
        m = {}
        if sts is not None:
            m["sts"] = round(evaluate_sts(model, tokenizer, sts), 4)
        if cls_ids is not None and model.classifier is not None:
            m["accuracy"] = round(classification_accuracy(model, cls_ids, cls_labels, tokenizer.pad_id), 4)
        if held and model.cls is not None:
            m["mlm_accuracy"] = round(mlm_accuracy(model, held, tokenizer.pad_id, specials, tokenizer.mask_id,
                                                   model.config.vocab_size), 4)
        return m

    return evaluate


PROBE_TRAIN = 8000  # training texts of the probe (a seeded sample): enough for a stable linear read-out


def read_probe(files: list[str]) -> tuple:
    """(train texts, train labels, dev texts, dev labels) of a probe given as [train TSV, dev TSV] with
    `sentence` and `label` columns (SST-2 layout); read before any model is loaded."""
    if len(files) != 2:
        raise PocketBertError(f"the probe takes two labelled files, [train, dev]; got {len(files)}")
    train, dev = (read_texts([f], "sentence", "label") for f in files)
    if train.labels is None or dev.labels is None or len(set(train.labels)) < 2:
        raise PocketBertError(f"the probe files {files[0]}, {files[1]} need a `label` column with at least two classes")
    idx = random.Random(0).sample(range(len(train.texts)), min(PROBE_TRAIN, len(train.texts)))
    return [train.texts[i] for i in idx], [train.labels[i] for i in idx], dev.texts, dev.labels


def linear_probe(train_x: np.ndarray, train_y, dev_x: np.ndarray, dev_y) -> float:
    """Accuracy x100 on the dev rows of a logistic regression (sklearn's L2 penalty, C=1) fitted on the training
    rows, both L2-normalised: the one linear read-out every model is compared with."""
    from sklearn.linear_model import LogisticRegression  # optional heavy dependency, needed only here

    def unit(e):
        return e / np.clip(np.linalg.norm(e, axis=1, keepdims=True), 1e-12, None)

    return 100.0 * float(LogisticRegression(max_iter=2000, C=1.0).fit(unit(train_x), train_y).score(unit(dev_x), dev_y))


def probe_accuracy(embed: Callable[[list[str]], np.ndarray], probe: tuple) -> float:
    """`linear_probe` of a model given as `embed(texts)`, on a probe from `read_probe`."""
    tr_x, tr_y, dev_x, dev_y = probe
    return round(linear_probe(embed(tr_x), tr_y, embed(dev_x), dev_y), 2)
