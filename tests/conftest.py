"""Shared fixtures: tiny random HF checkpoints (BERT, DistilBERT, ALBERT) and the shared data folder."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# The app cores' fixtures and the end-of-run JUnit / XCTest / conformance summary (tests/apps/app_cores.py, on
# the pythonpath), as a plugin: a tests/apps/conftest.py would shadow this module for `from conftest import`.
pytest_plugins = ["app_cores"]
DATA = Path(os.environ.get("POCKETBERT_DATA", REPO.parent / "shared" / "data"))

_WORDS = (
    "the a an is are was were be of and or to in on at for with by from as it this that these those "
    "man woman men women person people child dog cat bird horse car plane train guitar cello flute "
    "play plays playing played run runs running walk walks walking ride riding eat eating cook cooking "
    "is not no yes good bad great movie film story funny sad happy love hate best worst very really "
    "one two three red blue green big small quick brown fox jump jumps over lazy "
    "water street road table music song dance dancing sing singing talk talking read reading"
).split()


def tiny_vocab() -> list[str]:
    """A small uncased WordPiece vocabulary: specials, every printable ASCII char (plain and ##), words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    pieces = chars + ["##" + c for c in chars if c.isalnum()] + ["##s", "##ing", "##ed", "##ly"]
    vocab = list(dict.fromkeys(specials + pieces + _WORDS))
    return vocab


def write_tiny_tokenizer(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    (path / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "BertTokenizer"}')


def make_hf_checkpoint(path: Path, kind: str = "bert", head: str | None = None, seed: int = 0, **overrides) -> Path:
    """Save a tiny random transformers model to `path` (safetensors) with a tiny vocabulary.

    kind: bert | distilbert | albert. head: None (base model), "mlm" or "classification".
    ALBERT defaults to a factorized embedding (E=16 < H=32) and all layers shared.
    """
    import transformers as tf

    torch.manual_seed(seed)
    vocab = len(tiny_vocab())
    if kind == "bert":
        cfg = tf.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=128, **overrides)
        cls = {None: tf.BertModel, "mlm": tf.BertForMaskedLM, "classification": tf.BertForSequenceClassification}[head]
    elif kind == "distilbert":
        cfg = tf.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=3, n_heads=4, hidden_dim=64,
                                  max_position_embeddings=128, **overrides)
        cls = {None: tf.DistilBertModel, "mlm": tf.DistilBertForMaskedLM}[head]
    elif kind == "albert":
        kw = dict(vocab_size=vocab, embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=128, num_hidden_groups=1)
        kw.update(overrides)
        cfg = tf.AlbertConfig(**kw)
        cls = {None: tf.AlbertModel, "mlm": tf.AlbertForMaskedLM, "classification": tf.AlbertForSequenceClassification}[head]
    else:
        raise ValueError(kind)
    model = cls(cfg).eval()
    # Random, not zero, LayerNorm and bias parameters so that parity tests see every term.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path, safe_serialization=True)
    write_tiny_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "stsb" / "dev.tsv").is_file():
        pytest.skip(f"shared data not found at {DATA} (set POCKETBERT_DATA)")
    return DATA


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BertModel checkpoint (embedding-style, no head)."""
    return make_hf_checkpoint(tmp_path_factory.mktemp("tiny_bert"), "bert")


@pytest.fixture(scope="session")
def tiny_bert_mlm(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("tiny_bert_mlm"), "bert", head="mlm")


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory, tiny_bert) -> Path:
    """A pocketbert checkpoint: layers 0,2 of the tiny BERT, written by `pocketbert student`."""
    from pocketbert.cli import main

    out = tmp_path_factory.mktemp("students") / "tiny_student"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "0,2", "--out", str(out)]) == 0
    return out


def default_sigint() -> None:
    """Popen preexec_fn: a child that reacts to SIGINT as in a terminal, even when this test run was started
    in the background (where the shell makes children ignore SIGINT, and Python then keeps ignoring it)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    """Tiers: a test not marked `integration` or `slow` is a `unit` test (`pytest -m unit`, `make test-fast`)."""
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("integration", "slow")):
            item.add_marker(pytest.mark.unit)
