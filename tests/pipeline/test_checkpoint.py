"""Checkpoints: HF-compatible folders that transformers and sentence-transformers open, round trips, records."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch.testing import assert_close

from pocketbert.pipeline.checkpoint import load_checkpoint, save_checkpoint
from pocketbert.pipeline.evaluate import embed_texts
from pocketbert.pipeline.models.encoder import Encoder, tiny_config
from pocketbert.pipeline.tokenizer import Tokenizer

from helpers.checkpoints import make_hf_checkpoint, tiny_vocab, write_tiny_tokenizer

TEXTS = ["the quick brown fox jumps over the lazy dog", "a man is playing a guitar", "Café? 你好!"]


def _batch(path):
    ids, mask = Tokenizer(path)(TEXTS)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def _random_model(tmp_path, **overrides) -> tuple[Encoder, object]:
    torch.manual_seed(0)
    cfg = tiny_config(vocab_size=len(tiny_vocab()), **overrides)
    model = Encoder(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    tok_dir = tmp_path / "tok"
    write_tiny_tokenizer(tok_dir)
    return model, tok_dir


def test_embedding_checkpoint_opens_in_transformers_and_sentence_transformers(tmp_path, tiny_bert):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    src = load_checkpoint(tiny_bert).model
    out = save_checkpoint(src, tmp_path / "ck", tokenizer_src=tiny_bert, record={"stage": "test"})
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["architectures"] == ["BertModel"]
    for name in ("model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "modules.json",
                 "1_Pooling/config.json", "sentence_bert_config.json", "pocketbert.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))

    ours = embed_texts(load_checkpoint(out).model, Tokenizer(out), TEXTS)
    hf_tok = AutoTokenizer.from_pretrained(out)
    batch = hf_tok(TEXTS, padding=True, return_tensors="pt")
    ids, _ = Tokenizer(out)(TEXTS)
    np.testing.assert_array_equal(batch["input_ids"].numpy(), ids)
    with torch.no_grad():
        h = AutoModel.from_pretrained(out).eval()(**batch).last_hidden_state
    m = batch["attention_mask"][..., None].float()
    hf_mean = ((h * m).sum(1) / m.sum(1)).numpy()
    st = SentenceTransformer(str(out), device="cpu").encode(TEXTS)
    for other in (hf_mean, st):
        cos = (ours * other).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(other, axis=-1)
        assert cos.min() >= 0.99999


def test_record_says_how_it_was_made(tmp_path, tiny_bert):
    out = save_checkpoint(load_checkpoint(tiny_bert).model, tmp_path / "ck", tokenizer_src=tiny_bert,
                          record={"parent": {"path": str(tiny_bert)}, "layer_map": [0, 1, 2]})
    rec = json.loads((out / "pocketbert.json").read_text())
    assert rec["parent"]["path"] == str(tiny_bert) and rec["layer_map"] == [0, 1, 2]
    assert rec["config"]["num_hidden_layers"] == 3 and rec["task"] == "embedding"
    assert {"command", "versions", "git_commit", "created_utc"} <= set(rec["provenance"])
    assert rec["provenance"]["versions"]["torch"].startswith("2.")
    assert len(rec["weights_sha256"]) == 64


def test_mlm_checkpoint_round_trip_and_transformers(tmp_path, tiny_bert_mlm):
    from transformers import AutoModelForMaskedLM

    src = load_checkpoint(tiny_bert_mlm).model
    assert src.cls is not None and src.config.task == "mlm"
    out = save_checkpoint(src, tmp_path / "mlm", tokenizer_src=tiny_bert_mlm)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    ids, mask = _batch(out)
    with torch.no_grad():
        expected = src.mlm_logits(src(ids, mask).last_hidden_state)
        again = load_checkpoint(out).model
        assert_close(again.mlm_logits(again(ids, mask).last_hidden_state), expected, atol=1e-6, rtol=0)
        hf = AutoModelForMaskedLM.from_pretrained(out).eval()
        assert_close(hf(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=0)


def test_classification_checkpoint_round_trip(tmp_path):
    from transformers import AutoModelForSequenceClassification

    path = make_hf_checkpoint(tmp_path / "hf", "bert", head="classification")
    src = load_checkpoint(path).model
    assert src.config.task == "classification" and src.config.num_labels == 2
    out = save_checkpoint(src, tmp_path / "cls", tokenizer_src=path)
    ids, mask = _batch(out)
    with torch.no_grad():
        hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
        assert_close(hf(input_ids=ids, attention_mask=mask).logits, src.classify(ids, mask), atol=1e-5, rtol=0)


def test_albert_factorized_shared_saves_as_albert(tmp_path):
    from transformers import AutoModel

    model, tok = _random_model(tmp_path, embedding_size=16, sharing="all")
    out = save_checkpoint(model, tmp_path / "albert", tokenizer_src=tok)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "albert" and cfg["embedding_size"] == 16 and cfg["num_hidden_groups"] == 1
    ids, mask = _batch(out)
    with torch.no_grad():
        expected = model(ids, mask).last_hidden_state
        assert_close(AutoModel.from_pretrained(out).eval()(input_ids=ids, attention_mask=mask).last_hidden_state,
                     expected, atol=1e-5, rtol=0)
        again = load_checkpoint(out).model
        assert again.config.sharing == "all" and len(again.encoder.layer) == 1
        assert_close(again(ids, mask).last_hidden_state, expected, atol=1e-6, rtol=0)


def test_attention_only_sharing_round_trip(tmp_path):
    """HF ALBERT has no attention-only sharing: saved as one group per layer, re-tied on load."""
    from transformers import AutoModel

    model, tok = _random_model(tmp_path, embedding_size=16, sharing="attention", num_hidden_layers=3)
    assert model.encoder.layer[0].attention is model.encoder.layer[2].attention
    n_unique = sum(p.numel() for p in model.parameters())
    out = save_checkpoint(model, tmp_path / "att", tokenizer_src=tok)
    assert json.loads((out / "config.json").read_text())["num_hidden_groups"] == 3
    ids, mask = _batch(out)
    with torch.no_grad():
        expected = model(ids, mask).last_hidden_state
        assert_close(AutoModel.from_pretrained(out).eval()(input_ids=ids, attention_mask=mask).last_hidden_state,
                     expected, atol=1e-5, rtol=0)
        again = load_checkpoint(out).model
    assert again.encoder.layer[0].attention is again.encoder.layer[2].attention
    assert sum(p.numel() for p in again.parameters()) == n_unique
    assert_close(again(ids, mask).last_hidden_state, expected, atol=1e-6, rtol=0)
