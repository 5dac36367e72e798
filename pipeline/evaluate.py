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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import spearmanr

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.data import collate, read_texts, tokenize
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
    """STS-B TSV (GLUE layout: ..., sentence1, sentence2, score in the last three columns; header optional).

    Also accepted: three columns `sentence1<TAB>sentence2<TAB>score`.
    """
    path = Path(path)
    if not path.is_file():
        raise PocketBertError(f"STS file {path} does not exist; pass an STS-B TSV such as stsb/dev.tsv")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PocketBertError(f"cannot read STS file {path} ({type(e).__name__}); pass a UTF-8 STS-B TSV") from None
    s1, s2, scores = [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 3:
            raise PocketBertError(f"{path}:{n}: expected tab-separated sentence1, sentence2, score; got {len(cols)} column(s)")
        try:
            score = float(cols[-1])
        except ValueError:
            if n == 1:
                continue  # header row
            raise PocketBertError(f"{path}:{n}: score {cols[-1]!r} is not a number") from None
        s1.append(cols[-3])
        s2.append(cols[-2])
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


def evaluate_sts(model: Encoder, tokenizer: Tokenizer, pairs: StsPairs, batch_size: int = 64) -> float:
    """STS Spearman x100 of the model in PyTorch (cosine of pooled embeddings vs gold)."""
    texts = list(dict.fromkeys(pairs.s1 + pairs.s2))  # embed each distinct sentence once
    emb = embed_texts(model, tokenizer, texts, batch_size=batch_size)
    row = {t: i for i, t in enumerate(texts)}
    e1 = emb[[row[t] for t in pairs.s1]]
    e2 = emb[[row[t] for t in pairs.s2]]
    return sts_spearman(e1, e2, pairs.scores)


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
    import random

    if len(files) != 2:
        raise PocketBertError(f"the probe takes two labelled files, [train, dev]; got {len(files)}")
    train, dev = (read_texts([f], "sentence", "label") for f in files)
    if train.labels is None or dev.labels is None or len(set(train.labels)) < 2:
        raise PocketBertError(f"the probe files {files[0]}, {files[1]} need a `label` column with at least two classes")
    idx = random.Random(0).sample(range(len(train.texts)), min(PROBE_TRAIN, len(train.texts)))
    return [train.texts[i] for i in idx], [train.labels[i] for i in idx], dev.texts, dev.labels


def probe_accuracy(embed: Callable[[list[str]], np.ndarray], probe: tuple) -> float:
    """Accuracy x100 on the dev texts of a logistic regression fitted on the training texts' embeddings
    (L2-normalised; sklearn's default L2 penalty, C=1): the same read-out for every model compared."""
    from sklearn.linear_model import LogisticRegression

    tr_x, tr_y, dev_x, dev_y = probe

    def unit(texts):
        e = embed(texts)
        return e / np.clip(np.linalg.norm(e, axis=1, keepdims=True), 1e-12, None)

    clf = LogisticRegression(max_iter=2000, C=1.0).fit(unit(tr_x), tr_y)
    return round(100.0 * float(clf.score(unit(dev_x), dev_y)), 2)


def evaluate_model(name_or_path, sts_path, tokenizer=None, batch_size: int = 64, probe: list[str] | None = None) -> dict:
    """STS Spearman x100 of a checkpoint, a named peer (`paraphrase-minilm-l3`, an `.onnx` encoder with
    `tokenizer`) or a static model (`potion-base-2m`), in PyTorch fp32 (numpy for static models).

    Returns `{spearman, pairs, checkpoint, seconds}` (+ `kind: static`, + `probe_accuracy` and `probe` with
    `probe` = [train TSV, dev TSV]); the STS file and the probe are read first.
    """
    import time

    from pocketbert.pipeline.checkpoint import load_checkpoint
    from pocketbert.pipeline.static import StaticModel, evaluate_static_sts, is_static
    from pocketbert.pipeline.tokenizer import Tokenizer

    pairs = read_sts(sts_path)  # fail on a bad file before loading the model
    probe_data = read_probe(probe) if probe else None
    t0 = time.perf_counter()
    if is_static(name_or_path):  # a static (model2vec) peer: no transformer
        model = StaticModel.load(name_or_path)
        rho, path, extra = evaluate_static_sts(model, pairs), model.path, {"kind": "static"}
        embed = None
    else:
        ckpt = load_checkpoint(name_or_path, tokenizer=tokenizer)
        t0 = time.perf_counter()
        tok = Tokenizer(ckpt.path)
        rho, path, extra = evaluate_sts(ckpt.model, tok, pairs, batch_size=batch_size), ckpt.path, {}

        def embed(texts):
            return embed_texts(ckpt.model, tok, texts, batch_size=batch_size, max_length=128)
    if probe_data is not None and embed is not None:
        extra |= {"probe_accuracy": probe_accuracy(embed, probe_data), "probe": [str(Path(p).resolve()) for p in probe]}
    return {"spearman": round(rho, 4), "pairs": len(pairs.scores), "checkpoint": str(path), **extra,
            "seconds": round(time.perf_counter() - t0, 2)}
