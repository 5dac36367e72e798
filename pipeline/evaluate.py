"""Sentence-embedding quality: STS-B Spearman of cosine similarities, the sentence-transformers way.

Score = Spearman correlation (x100) between cos(embed(s1), embed(s2)) and the gold score, with the
embeddings mean-pooled over real tokens (all-MiniLM-L6-v2 on STS-B dev: 81.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.tokenizer import Tokenizer


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
