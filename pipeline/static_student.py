"""The static student stage: a model2vec table distilled from local teachers, then trained on sentences.

    pocketbert build build-static --out build/static      (the `static:` section of a build recipe)

Set up (validate the recipe, resolve the teachers, read the corpus), run, write, verify:
  1. Token vectors: model2vec's distillation (`distill_from_model`, the library itself) of each teacher
     over its whole WordPiece vocabulary ([unused*] removed): one forward pass per token, mean-pooled,
     fp32, no PCA yet. Teachers that share the vocabulary (MiniLM-L6 and the L3 peer) are concatenated
     per token, then model2vec's `apply_pca` to `dim` and its Zipf/SIF weighting (`compute_weights`),
     exactly what `distill_from_model(pca_dims=dim)` does for one teacher.
  2. Vocabulary: the teacher's (`vocab.source: teacher`), or the tokens the corpus uses (`corpus`: plus the
     specials and every single-character piece, so every word still tokenizes; `max_tokens` keeps the
     most frequent ones).
  3. Training (the tokenlearn idea; `train.epochs` > 0): the table itself is trained so that the mean of a
     sentence's rows matches the teachers' sentence embeddings over the corpus, read from the
     teacher-embedding cache (`teacher_cache.py`; no teacher pass when cached). Targets:
       similarity  MSE between the student's in-batch cosine matrix and the mean of the teachers' (B, B)
                   cosine matrices (width-agnostic; the ensemble objective of pipeline/distill.py);
       projection  1 - cosine to the `dim`-d PCA of the concatenated L2-normalised teacher embeddings;
       both        their sum.
  4. Write a model2vec folder (+ our WordPiece files and pocketbert.json, `static.save_static_checkpoint`),
     reload it with pocketbert's model2vec reader and score `eval.sts`.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.files import check_output_dir, path_sha256
from pocketbert.pipeline.checkpoint import MARKER, load_checkpoint
from pocketbert.pipeline.data import cache_dir, read_texts
from pocketbert.pipeline.evaluate import read_sts, sts_of, sts_spearman
from pocketbert.pipeline.names import resolve
from pocketbert.pipeline.static import StaticModel, save_static_checkpoint
from pocketbert.pipeline.student import is_single_char_piece
from pocketbert.pipeline.teacher_cache import teacher_embeddings
from pocketbert.pipeline.tokenizer import SPECIAL_TOKENS, build_wordpiece, read_vocab, tokenizer_options

TARGETS = ("similarity", "projection", "both")
VOCAB_SOURCES = ("teacher", "corpus")
UNUSED_TOKENS = r"\[unused\d+\]"  # model2vec's default token_remove_pattern


@dataclass
class StaticVocabConfig:
    source: str = "teacher"  # teacher (its WordPiece vocabulary, [unused*] removed) | corpus (tokens data.train uses,
    #   plus the specials and every single-character piece)
    max_tokens: int = 0  # corpus: keep at most this many corpus tokens, the most frequent first (0 = all)
    min_count: int = 1  # corpus: a token must occur this often to be kept


@dataclass
class StaticDataConfig:
    train: list[str] = field(default_factory=lambda: ["default"])  # files, folders, globs or `default`
    max_length: int = 64  # teacher tokens per sentence for the teachers' embeddings (part of the cache key)


@dataclass
class StaticTrainConfig:
    epochs: float = 0.0  # passes over the distinct corpus sentences (0 = the distilled table as is)
    target: str = "similarity"  # similarity | projection | both (see the module docstring)
    lr: float = 0.01  # Adam learning rate, decayed linearly to 0
    batch_size: int = 256  # sentences per step (the similarity target compares each batch's pairs)
    seed: int = 0
    threads: int = 1  # torch CPU threads


@dataclass
class StaticRecipe:
    """`static:` of a build recipe: teachers -> model2vec table of `dim` columns -> (trained) static student."""

    teachers: list[str] = field(default_factory=lambda: ["minilm"])  # distillation teachers (one WordPiece vocabulary):
    #   folders, `minilm`, `paraphrase-minilm-l3`; their token vectors are concatenated before the PCA
    targets: list[str] = field(default_factory=list)  # teachers whose sentence embeddings train the table ([] = teachers)
    dim: int = 64  # embedding dimension after PCA (even: int4 packs two values per byte)
    sif_coefficient: float = 1e-4  # model2vec's SIF weighting a / (a + p(token)) with Zipf p by vocabulary rank
    out: str = "out/static"
    vocab: StaticVocabConfig = field(default_factory=StaticVocabConfig)
    data: StaticDataConfig = field(default_factory=StaticDataConfig)
    train: StaticTrainConfig = field(default_factory=StaticTrainConfig)
    sts: str | None = None  # STS-B TSV scored after writing (e.g. ../shared/data/stsb/dev.tsv)
    command: str | None = None  # the `pocketbert ...` line recorded in the provenance

    def check(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 2 or self.dim % 2:
            raise PocketBertError(f"static.dim {self.dim!r}: give an even number of dimensions >= 2, e.g. 64, 128 or 256")
        if not self.teachers:
            raise PocketBertError("static.teachers is empty; name at least one teacher, e.g. [minilm]")
        if not 0 < self.sif_coefficient < 1:
            raise PocketBertError(f"static.sif_coefficient must be in (0, 1), got {self.sif_coefficient}")
        if self.vocab.source not in VOCAB_SOURCES:
            raise PocketBertError(f"static.vocab.source {self.vocab.source!r}: choose {' or '.join(VOCAB_SOURCES)}")
        if self.vocab.max_tokens < 0 or self.vocab.min_count < 1:
            raise PocketBertError("static.vocab.max_tokens must be >= 0 and static.vocab.min_count >= 1")
        if self.train.target not in TARGETS:
            raise PocketBertError(f"static.train.target {self.train.target!r}: choose {', '.join(TARGETS)}")
        if self.train.epochs < 0 or self.train.lr <= 0 or self.train.batch_size < 2 or self.train.threads < 1:
            raise PocketBertError("static.train: epochs >= 0, lr > 0, batch_size >= 2 and threads >= 1")
        if self.data.max_length < 4:
            raise PocketBertError(f"static.data.max_length must be >= 4, got {self.data.max_length}")
        if not self.data.train:
            raise PocketBertError("static.data.train is empty; list at least one file, folder, glob or `default`")
        if self.sts and not Path(self.sts).is_file():
            raise PocketBertError(f"static.sts: {self.sts} does not exist; fix the recipe or set static.sts=null")

    def target_list(self) -> list[str]:
        return list(self.targets) or list(self.teachers)


def _log(msg: str) -> None:
    say(f"static: {msg}")


# ---------------------------------------------------------------------------------------------
# 1. model2vec distillation


def token_vectors(teacher: Path, cache: Path | None = None) -> tuple[list[str], np.ndarray, bool]:
    """(tokens, (V, H) fp32 vectors, cache hit) of one local teacher folder by model2vec's
    `distill_from_model` (no PCA, no SIF: those run on the concatenation). Tokens are model2vec's, in id
    order. With `cache`, kept in `<cache>/static_tokens/<key>.npz`, keyed by the teacher's weights and
    vocabulary sha256 and the model2vec version (one forward pass per token costs minutes on a CPU)."""
    import hashlib
    import os
    from importlib import metadata


    key = hashlib.sha256("|".join([path_sha256(teacher / "model.safetensors"), path_sha256(teacher / "vocab.txt"),
                                   metadata.version("model2vec"), UNUSED_TOKENS]).encode()).hexdigest()
    path = Path(cache) / "static_tokens" / f"{key}.npz" if cache else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return [str(t) for t in f["tokens"]], f["vectors"].astype(np.float32), True
        except (OSError, ValueError, KeyError):
            pass  # unreadable: recompute below
    import transformers
    from model2vec.distill import distill_from_model

    transformers.logging.set_verbosity_error()
    model = transformers.AutoModel.from_pretrained(str(teacher))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(teacher), use_fast=True)
    m2v = distill_from_model(model, tokenizer, pca_dims=None, sif_coefficient=None, quantize_to="float32",
                             token_remove_pattern=UNUSED_TOKENS, device="cpu")
    tokens, vectors = list(m2v.tokens), np.asarray(m2v.embedding, dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
        np.savez(tmp, tokens=np.array(tokens), vectors=vectors)
        os.replace(tmp, path)  # readers never see half a file
    return tokens, vectors, False


def distil_table(teachers: list[Path], dim: int, sif_coefficient: float,
                 cache: Path | None = None) -> tuple[list[str], np.ndarray, dict]:
    """Concatenated teacher token vectors -> model2vec's PCA to `dim` -> its SIF weights. Returns
    (tokens, (V, dim) table, record).

    Raises:
        PocketBertError: teachers with different vocabularies, or `dim` wider than the vectors or the vocabulary.
    """
    from model2vec.distill.inference import apply_pca, compute_weights


    tokens, parts, record = None, [], []
    for path in teachers:
        t0 = time.perf_counter()
        toks, vecs, hit = token_vectors(path, cache)
        if tokens is not None and toks != tokens:
            raise PocketBertError(f"teacher {path} has another vocabulary than {teachers[0]}; static distillation "
                                  "concatenates token vectors, so every teacher must share one WordPiece vocabulary")
        tokens = toks
        parts.append(vecs)
        record.append({"path": str(path), "tokens": len(toks), "width": int(vecs.shape[1]), "cached": hit,
                       "seconds": round(time.perf_counter() - t0, 1)})
        _log(f"model2vec token vectors of {path}: {vecs.shape} in {record[-1]['seconds']} s"
             + (" (cached)" if hit else ""))
    vecs = np.concatenate(parts, axis=1)  # (V, sum H)
    if dim > min(vecs.shape):
        raise PocketBertError(f"static.dim {dim} is larger than the teachers' token vectors allow "
                              f"({vecs.shape[1]} columns, {vecs.shape[0]} tokens); choose a smaller dim")
    table = apply_pca(vecs, dim) * compute_weights(len(vecs), sif_coefficient=sif_coefficient)[:, None]
    # model2vec's vocabulary drops the added special tokens ([CLS], [SEP], [MASK]); the bundle's WordPiece
    # vocabulary keeps them (the apps' tokenizers emit them), as zero rows the model never counts.
    vocab = [t for t in read_vocab(teachers[0] / "vocab.txt") if not re.fullmatch(UNUSED_TOKENS, t)]
    row = {t: i for i, t in enumerate(tokens)}
    known = set(vocab)
    unknown = [t for t in tokens if t not in known]
    if unknown:
        raise PocketBertError(f"model2vec's vocabulary of {teachers[0]} has tokens its vocab.txt lacks ({unknown[:3]})")
    full = np.zeros((len(vocab), dim), dtype=np.float32)
    for i, t in enumerate(vocab):
        if t in row:
            full[i] = table[row[t]]
    return vocab, full, {"teachers": record, "pca_from": int(vecs.shape[1]),
                         "zero_rows": [t for t in vocab if t not in row]}


# ---------------------------------------------------------------------------------------------
# 2. Vocabulary


def corpus_vocab(tokens: list[str], texts: list[str], options: dict, max_tokens: int, min_count: int) -> list[int]:
    """Rows to keep, in old order: specials, every single-character piece, and the corpus tokens that occur
    >= min_count times (the `max_tokens` most frequent when > 0).

    Raises:
        PocketBertError: the corpus yields no token at all (an empty vocabulary).
    """

    tok = build_wordpiece(tokens, options["lowercase"], options["strip_accents"], options["tokenize_chinese_chars"])
    unk = tokens.index("[UNK]")
    counts: Counter = Counter()
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        counts.update(i for i in enc.ids if i != unk)
    frequent = [i for i, c in counts.most_common() if c >= min_count]
    if max_tokens:
        frequent = frequent[:max_tokens]
    if not frequent:
        raise PocketBertError(f"the vocabulary is empty: no token of the corpus occurs {min_count} time(s) or more; "
                              "give a corpus with text (static.data.train) or lower static.vocab.min_count")
    keep = set(frequent)
    keep.update(i for i, t in enumerate(tokens) if t in SPECIAL_TOKENS or is_single_char_piece(t))
    return sorted(keep)


# ---------------------------------------------------------------------------------------------
# 3. Training against the teachers' sentence embeddings


def _bag(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ids and offsets for `F.embedding_bag` (every list non-empty)."""
    flat = torch.tensor([i for row in ids for i in row], dtype=torch.long)
    offsets = torch.tensor(np.cumsum([0] + [len(r) for r in ids[:-1]]), dtype=torch.long)
    return flat, offsets


def projection_target(embs: list[np.ndarray], dim: int) -> np.ndarray:
    """(N, dim) PCA of the concatenated L2-normalised teacher embeddings (each teacher counts equally)."""
    cat = np.concatenate([e / np.clip(np.linalg.norm(e, axis=1, keepdims=True), 1e-12, None) for e in embs], axis=1)
    cat = cat - cat.mean(0)
    _, _, vt = np.linalg.svd(cat[:: max(1, len(cat) // 20000)], full_matrices=False)  # (sum D, sum D) from a sample
    return (cat @ vt[:dim].T).astype(np.float32)


def train_table(table: np.ndarray, ids: list[list[int]], embs: list[np.ndarray], cfg: StaticTrainConfig,
                evaluate=None) -> tuple[np.ndarray, list[dict]]:
    """Train the rows so that each sentence's mean row matches its teacher embeddings. Returns the last
    table (no selection by `evaluate`, which only logs) and one log row per epoch.

    Args:
        table: (V, D) initial rows.
        ids: per sentence, its student token ids without specials and [UNK] (empty rows are skipped).
        embs: per target teacher, (N, H_t) sentence embeddings in the order of `ids`.
        evaluate: table -> score, logged after each epoch (the STS file: watched, never chosen on).
    """
    torch.manual_seed(cfg.seed)
    weight = torch.nn.Parameter(torch.from_numpy(table.copy()))
    teachers = [F.normalize(torch.from_numpy(e), dim=1) for e in embs]  # (N, H_t) each
    proj = torch.from_numpy(projection_target(embs, table.shape[1])) if cfg.target != "similarity" else None
    keep = np.array([i for i, row in enumerate(ids) if row])
    steps_per_epoch = max(1, len(keep) // cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    opt = torch.optim.Adam([weight], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    log, step = [], 0
    if evaluate is not None:
        log.append({"epoch": 0, "step": 0, "score": round(evaluate(table), 4)})
        _log(f"epoch 0: score {log[0]['score']:.2f}")
    while step < total:
        order = rng.permutation(keep)
        t0, losses = time.perf_counter(), []
        for b in range(steps_per_epoch):
            if step >= total:
                break
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            flat, offsets = _bag([ids[i] for i in idx])
            pooled = F.embedding_bag(flat, weight, offsets, mode="mean")  # (B, D)
            loss = torch.zeros(())
            if cfg.target in ("similarity", "both"):
                s = F.normalize(pooled, dim=1)
                want = sum(t[idx] @ t[idx].T for t in teachers) / len(teachers)  # (B, B) mean teacher cosine
                loss = loss + F.mse_loss(s @ s.T, want)
            if proj is not None:
                loss = loss + (1 - F.cosine_similarity(pooled, proj[idx], dim=1)).mean()
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1 - step / total)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        row = {"epoch": round(step / steps_per_epoch, 3), "step": step, "loss": round(float(np.mean(losses)), 6),
               "seconds": round(time.perf_counter() - t0, 1)}
        if evaluate is not None:
            row["score"] = round(evaluate(weight.detach().numpy()), 4)
        log.append(row)
        _log(", ".join(f"{k} {v}" for k, v in row.items()))
    return weight.detach().numpy().copy(), log


# ---------------------------------------------------------------------------------------------
# The stage


def _student_ids(tokens: list[str], options: dict, texts: list[str]) -> list[list[int]]:
    """Per text, the student's ids as model2vec encodes them: no [CLS]/[SEP], no [UNK]."""

    tok = build_wordpiece(tokens, options["lowercase"], options["strip_accents"], options["tokenize_chinese_chars"])
    unk = tokens.index("[UNK]")
    return [[i for i in e.ids if i != unk] for e in tok.encode_batch(texts, add_special_tokens=False)]


def _sts_scorer(tokens: list[str], options: dict, sts_path: str):
    """table -> STS Spearman x100 (the method of `pocketbert eval` on a static model)."""

    pairs = read_sts(sts_path)
    texts = list(dict.fromkeys(pairs.s1 + pairs.s2))
    ids = _student_ids(tokens, options, texts)
    row = {t: i for i, t in enumerate(texts)}

    def score(table: np.ndarray) -> float:
        emb = np.stack([table[r].mean(0) if r else np.zeros(table.shape[1], np.float32) for r in ids])
        return sts_spearman(emb[[row[t] for t in pairs.s1]], emb[[row[t] for t in pairs.s2]], pairs.scores)

    return score


def main(cfg: StaticRecipe, resume: bool = False, command: str | None = None) -> dict:
    """Write the static student checkpoint `cfg.out`; returns a summary. `resume` is accepted for the build
    (the stage is short and always starts over)."""

    cfg.check()
    out = Path(cfg.out)
    check_output_dir(out, MARKER)
    teachers = [resolve(t) for t in cfg.teachers]
    targets = [resolve(t) for t in cfg.target_list()] if cfg.train.epochs > 0 else []
    texts = (list(dict.fromkeys(read_texts(cfg.data.train).texts))
             if cfg.train.epochs > 0 or cfg.vocab.source == "corpus" else [])
    torch.set_num_threads(cfg.train.threads)
    t_start = time.perf_counter()

    tokens, table, distilled = distil_table(teachers, cfg.dim, cfg.sif_coefficient, cache_dir())
    options = tokenizer_options(teachers[0])
    vocab = {"source": cfg.vocab.source, "before": len(tokens)}
    if cfg.vocab.source == "corpus":
        keep = corpus_vocab(tokens, texts, options, cfg.vocab.max_tokens, cfg.vocab.min_count)
        tokens, table = [tokens[i] for i in keep], table[keep]
    vocab["after"] = len(tokens)
    _log(f"vocabulary: {vocab}")
    score = _sts_scorer(tokens, options, cfg.sts) if cfg.sts else None
    training = {"epochs": 0}
    if cfg.train.epochs > 0:
        embs, cache = [], []
        for path in targets:
            emb, info = teacher_embeddings(load_checkpoint(path), texts, cfg.data.max_length, cache_dir())
            embs.append(emb)
            cache.append({"path": str(path), "file": info["file"], "hit": info["hit"]})
            _log(f"target {path.name}: {'cached' if info['hit'] else 'computed'} embeddings {emb.shape}")
        table, log = train_table(table, _student_ids(tokens, options, texts), embs, cfg.train, score)
        training = {**{k: getattr(cfg.train, k) for k in ("epochs", "target", "lr", "batch_size", "seed")},
                    "sentences": len(texts), "targets": cache, "log": log}
    record = {
        "stage": "static",
        "parent": {"path": str(teachers[0].resolve()), "model_type": "bert",
                   "weights_sha256": path_sha256(teachers[0] / "model.safetensors"), "num_hidden_layers": 0},
        "distillation": {"library": "model2vec", "dim": cfg.dim, "sif_coefficient": cfg.sif_coefficient, **distilled},
        "vocabulary": vocab,
        "training": training,
    }
    save_static_checkpoint(table, tokens, out, options, record, command=command or cfg.command)
    summary = {"out": str(out), "dim": cfg.dim, "vocab_size": len(tokens), "parameters": int(table.size),
               "seconds": round(time.perf_counter() - t_start, 1)}
    if cfg.sts:

        summary["sts"] = round(sts_of(StaticModel.load(out).embed, read_sts(cfg.sts)), 4)
        _log(f"STS {cfg.sts}: {summary['sts']}")
    return summary
