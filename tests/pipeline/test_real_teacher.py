"""The real packaged teacher (all-MiniLM-L6-v2) on STS-B dev: scores, students, trimming, HF parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.pipeline.student import is_single_char_piece, read_corpus_lines
from pocketbert.pipeline.tokenizer import Tokenizer

pytestmark = pytest.mark.slow

TEXTS = ["A man is playing the cello.", "Someone plays a string instrument.", "Une femme coupe un oignon — 你好 😀"]


def _json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def student_0_5(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "s2"
    assert main(["student", "--teacher", "minilm", "--layers", "0,5", "--out", str(out)]) == 0
    return out


def test_teacher_sts_dev(capsys, data_dir):
    r = _json(capsys, ["eval", "minilm", "--sts", str(data_dir / "stsb" / "dev.tsv")])
    assert r["pairs"] == 1500
    assert abs(r["spearman"] - 81.0) <= 0.1, r


def test_student_0_5_sts_dev(capsys, data_dir, student_0_5):
    r = _json(capsys, ["eval", str(student_0_5), "--sts", str(data_dir / "stsb" / "dev.tsv")])
    assert abs(r["spearman"] - 72.4) <= 0.2, r


def test_student_opens_in_transformers_and_sentence_transformers(capsys, student_0_5):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    ours = np.asarray(_json(capsys, ["embed", str(student_0_5), *TEXTS, "--show-embeddings"])["embeddings"])
    tok = AutoTokenizer.from_pretrained(student_0_5)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = AutoModel.from_pretrained(student_0_5).eval()(**batch).last_hidden_state
    m = batch["attention_mask"][..., None].float()
    hf = ((h * m).sum(1) / m.sum(1)).numpy()
    st = SentenceTransformer(str(student_0_5), device="cpu").encode(TEXTS)
    for other in (hf, st):
        cos = (ours * other).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(other, axis=-1)
        assert cos.min() >= 0.99999, cos


def test_vocab_trimming_on_shared_sentences(tmp_path, capsys, data_dir, student_0_5):
    corpus = [data_dir / "stsb" / "train.tsv", data_dir / "sst2" / "train.tsv"]
    out = tmp_path / "s2_trim"
    r = _json(capsys, ["student", "--teacher", "minilm", "--layers", "0,5", "--trim-vocab", *map(str, corpus),
                       "--out", str(out)])
    before = (student_0_5 / "model.safetensors").stat().st_size
    after = (out / "model.safetensors").stat().st_size
    assert r["vocab_size"] < 30522 and after < 0.8 * before, (before, after)
    old, new = Tokenizer(student_0_5), Tokenizer(out)
    assert {t for t in old.vocab if is_single_char_piece(t)} <= set(new.vocab)
    # Nothing becomes [UNK] that was not before: every sentence of both dev sets, old vs new.
    dev = list(read_corpus_lines([data_dir / "stsb" / "dev.tsv", data_dir / "sst2" / "dev.tsv"]))
    unk_old, unk_new = old.special_ids["[UNK]"], new.special_ids["[UNK]"]
    for text, a, b in zip(dev, old.encode_ids(dev), new.encode_ids(dev)):
        assert a.count(unk_old) == b.count(unk_new), text
    # The trimming corpus itself tokenizes to the same pieces.
    train = list(read_corpus_lines(corpus))[:5000]
    for a, b in zip(old.encode_ids(train), new.encode_ids(train)):
        assert [old.vocab[i] for i in a] == [new.vocab[i] for i in b]
    sts = str(data_dir / "stsb" / "dev.tsv")
    full = _json(capsys, ["eval", str(student_0_5), "--sts", sts])["spearman"]
    trimmed = _json(capsys, ["eval", str(out), "--sts", sts])["spearman"]
    print(f"\ntrim: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB, vocab 30522 -> {r['vocab_size']}, "
          f"STS-B dev {full:.2f} -> {trimmed:.2f}")
    # Dev words unseen in the trimming corpus are spelled with shorter pieces: a small, bounded loss.
    assert trimmed >= full - 1.0
