"""Tiny random checkpoints over one tiny uncased vocabulary: HF BERT / DistilBERT / ALBERT, an MPNet folder laid
out as sentence-transformers saves all-mpnet-base-v2, and a static (model2vec-style) student."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch

# The words of the tiny vocabulary (after the specials and the characters); tests draw sentences from them.
WORDS = (
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
    vocab = list(dict.fromkeys(specials + pieces + WORDS))
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


def make_tiny_mpnet(path: Path, seed: int = 0, max_seq_length: int = 48) -> Path:
    """A random MPNetModel folder laid out as sentence-transformers saves all-mpnet-base-v2."""
    import transformers as tf

    torch.manual_seed(seed)
    vocab = ["<s>", "<pad>", "</s>", "<unk>"] + [t for t in tiny_vocab() if t != "[PAD]"] + ["<mask>"]
    cfg = tf.MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=66, pad_token_id=1)
    model = tf.MPNetModel(cfg).eval()
    with torch.no_grad():  # random, not zero, LayerNorm and bias terms: parity sees every term
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path, safe_serialization=True)
    tf.MPNetTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(path)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                "do_lower_case": False}))
    return path


# The tokenizer options of the static student folders (what model2vec records for an uncased BERT vocabulary).
STATIC_TOKENIZER_OPTIONS = {"lowercase": True, "strip_accents": True, "tokenize_chinese_chars": True}


def make_tiny_static(path: Path, dim: int = 32, seed: int = 0) -> Path:
    """A static student folder over the tiny vocabulary with a random table (the rows of the specials too)."""
    from pocketbert.pipeline.static import save_static_checkpoint

    tokens = tiny_vocab()
    table = np.random.default_rng(seed).normal(size=(len(tokens), dim)).astype(np.float32)
    return save_static_checkpoint(table, tokens, path, STATIC_TOKENIZER_OPTIONS, {"stage": "static"})
