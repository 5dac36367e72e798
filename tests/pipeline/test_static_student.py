"""The static student: the StaticEncoder against model2vec's and sentence-transformers' own encoders on the
same table, the distillation against model2vec's `distill_from_model`, the stage end to end on the tiny
teacher, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.static import load_static_checkpoint
from pocketbert.pipeline.static_student import (
    StaticDataConfig,
    StaticRecipe,
    StaticTrainConfig,
    StaticVocabConfig,
)
from pocketbert.pipeline.tokenizer import Tokenizer

from helpers.checkpoints import make_tiny_static
from helpers.texts import synthetic_corpus

TEXTS = [
    "A man is playing a guitar.",
    "the quick brown fox jumps over the lazy dog",
    "Café déjà vu! 我喜欢 [UNK]-ish 😀 words",  # accents, CJK and emoji become [UNK]: dropped
    "very " * 30 + "good",
    "x",
]


@pytest.fixture(scope="module")
def tiny_static(tmp_path_factory) -> Path:
    return make_tiny_static(tmp_path_factory.mktemp("static") / "s")


def _ours(path: Path, texts: list[str], pad_to: int = 64) -> np.ndarray:
    ckpt = load_static_checkpoint(path)
    ids, mask = Tokenizer(path)(texts, max_length=pad_to, pad_to=pad_to)  # [CLS] ... [SEP] [PAD]...
    with torch.no_grad():
        return ckpt.model.embed(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def test_static_encoder_matches_model2vec(tiny_static):
    from model2vec import StaticModel

    ref = StaticModel.from_pretrained(str(tiny_static)).encode(TEXTS)
    assert _min_cosine(_ours(tiny_static, TEXTS), ref) >= 0.9999


def test_static_encoder_matches_sentence_transformers(tiny_static):
    sentence_transformers = pytest.importorskip("sentence_transformers")

    model = sentence_transformers.SentenceTransformer(str(tiny_static), device="cpu")
    assert type(model[0]).__name__ == "StaticEmbedding"
    # StaticEmbedding keeps [UNK] rows in the mean where model2vec (and we) drop them: texts without [UNK]
    known = [t for t in TEXTS if Tokenizer(tiny_static).special_ids["[UNK]"] not in Tokenizer(tiny_static).encode_ids([t])[0]]
    assert len(known) == len(TEXTS) - 1
    assert _min_cosine(_ours(tiny_static, known), model.encode(known)) >= 0.9999


def test_padding_and_specials_do_not_count(tiny_static):
    """The same text at two bucket lengths gives the same embedding; an empty text gives zeros."""
    short, long = _ours(tiny_static, TEXTS, 64), _ours(tiny_static, TEXTS, 128)
    np.testing.assert_allclose(short, long, atol=1e-6)
    assert not _ours(tiny_static, [""]).any()


@pytest.mark.integration
def test_distil_table_is_model2vecs_distillation(tiny_bert):
    """One teacher: our token table equals `distill_from_model(pca_dims=dim)` row for row (the added
    specials model2vec drops are zero rows)."""
    import transformers
    from model2vec.distill import distill_from_model

    from pocketbert.pipeline.static_student import distil_table

    tokens, table, record = distil_table([tiny_bert], dim=8, sif_coefficient=1e-4)
    ref = distill_from_model(transformers.AutoModel.from_pretrained(str(tiny_bert)),
                             transformers.AutoTokenizer.from_pretrained(str(tiny_bert)),
                             pca_dims=8, quantize_to="float32", device="cpu")
    row = {t: i for i, t in enumerate(tokens)}
    assert set(record["zero_rows"]) == {"[CLS]", "[SEP]", "[MASK]"}
    for i, t in enumerate(ref.tokens):
        np.testing.assert_allclose(table[row[t]], ref.embedding[i], atol=1e-5)
    assert all(not table[row[t]].any() for t in record["zero_rows"])


def _recipe(tmp_path: Path, teacher: Path, corpus: Path, **kw) -> StaticRecipe:
    return StaticRecipe(teachers=[str(teacher)], dim=kw.pop("dim", 16), out=str(tmp_path / "static"),
                        data=StaticDataConfig(train=[str(corpus)], max_length=16),
                        vocab=kw.pop("vocab", StaticVocabConfig(source="corpus")),
                        train=kw.pop("train", StaticTrainConfig(epochs=2, batch_size=16, lr=0.01)), **kw)


@pytest.mark.integration
def test_stage_distils_trains_and_writes_a_model2vec_folder(tmp_path, tiny_bert):
    from model2vec import StaticModel

    from pocketbert.pipeline import static_student
    from pocketbert.pipeline.names import load

    corpus = synthetic_corpus(tmp_path / "corpus.txt", 120)
    summary = static_student.main(_recipe(tmp_path, tiny_bert, corpus))
    out = Path(summary["out"])
    record = json.loads((out / "pocketbert.json").read_text())
    assert record["kind"] == "static" and record["distillation"]["library"] == "model2vec"
    assert len(record["training"]["log"]) == 2 and record["training"]["targets"][0]["path"] == str(tiny_bert)
    assert record["vocabulary"]["after"] < record["vocabulary"]["before"]
    ckpt = load(out)
    assert ckpt.model_type == "static" and ckpt.model.config.hidden_size == 16
    texts = ["the happy dog runs", "a red car"]
    assert _min_cosine(_ours(out, texts), StaticModel.from_pretrained(str(out)).encode(texts)) >= 0.9999


@pytest.mark.parametrize("dim", [0, 7, -64, True])
def test_bad_dim_is_one_line(dim):
    with pytest.raises(PocketBertError, match=r"static.dim .*even number of dimensions"):
        StaticRecipe(dim=dim).check()


@pytest.mark.integration
def test_dim_wider_than_the_teacher_is_refused(tmp_path, tiny_bert):
    from pocketbert.pipeline import static_student

    corpus = synthetic_corpus(tmp_path / "corpus.txt", 20)
    with pytest.raises(PocketBertError, match=r"static.dim 64 is larger than the teachers' token vectors allow"):
        static_student.main(_recipe(tmp_path, tiny_bert, corpus, dim=64))
    assert not (tmp_path / "static").exists()


@pytest.mark.integration
def test_empty_vocabulary_is_one_line(tmp_path, tiny_bert):
    from pocketbert.pipeline import static_student

    corpus = tmp_path / "cjk.txt"
    corpus.write_text("我喜欢自然语言处理\n東京は日本の首都です\n")  # every token is [UNK] in the tiny vocabulary
    with pytest.raises(PocketBertError, match=r"the vocabulary is empty"):
        static_student.main(_recipe(tmp_path, tiny_bert, corpus))
    assert not (tmp_path / "static").exists()
