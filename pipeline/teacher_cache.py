"""Teacher sentence embeddings on disk, so a second teacher or a second run costs no teacher pass.

`<cache>/teacher_emb/<key>.npy` holds the (N, D) float32 pooled embeddings of one teacher over one
corpus, rows in corpus order. The key is the sha256 of: the corpus content (every text, in order,
length-prefixed), the teacher's weights file sha256, its tokenizer's vocab.txt sha256, its pooling and
normalisation, and the token limit. A changed text, order, weight, tokenizer or limit is a new key;
a file whose shape does not fit its key is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from pocketbert.files import path_sha256
from pocketbert.pipeline.evaluate import embed_texts
from pocketbert.pipeline.tokenizer import Tokenizer

FORMAT = 1


def corpus_sha256(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cache_key(ckpt, texts: list[str], max_length: int) -> tuple[str, dict]:
    """(key, what it was made of) for a LoadedCheckpoint teacher over `texts`."""
    cfg = ckpt.model.config
    parts = {
        "format": FORMAT,
        "corpus_sha256": corpus_sha256(texts),
        "texts": len(texts),
        "teacher_weights_sha256": path_sha256(ckpt.path / "model.safetensors"),
        "tokenizer_vocab_sha256": path_sha256(ckpt.path / "vocab.txt"),
        "pooling": cfg.pooling,
        "normalize": cfg.normalize,
        "max_length": max_length,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), parts


def teacher_embeddings(ckpt, texts: list[str], max_length: int, root: Path,
                       batch_size: int = 64) -> tuple[np.ndarray, dict]:
    """(N, D) pooled teacher embeddings of `texts` (with the teacher's own tokenizer), from the cache or computed.

    Returns:
        (embeddings, info) where info holds the key, its parts, the file and `hit` (True: read from disk).
    """
    key, parts = cache_key(ckpt, texts, max_length)
    path = Path(root) / "teacher_emb" / f"{key}.npy"
    info = {"key": key, **parts, "file": str(path)}
    if path.is_file():
        try:
            emb = np.load(path, allow_pickle=False)
            if emb.shape == (len(texts), ckpt.model.config.hidden_size) and emb.dtype == np.float32:
                return emb, {**info, "hit": True}
        except (OSError, ValueError):
            pass  # unreadable: recompute below
    emb = embed_texts(ckpt.model.eval(), Tokenizer(ckpt.path), texts, batch_size=batch_size, max_length=max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, emb.astype(np.float32, copy=False))
    os.replace(tmp, path)  # readers never see half a file
    return emb, {**info, "hit": False}
