"""Corpus readers, the embedded default corpus, and length-grouped per-rank batches."""

from __future__ import annotations

import json
import warnings

import pytest

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import data
from pocketbert.pipeline.data import collate, epoch_batches, read_texts, split_holdout, tokenize
from pocketbert.pipeline.tokenizer import Tokenizer

from helpers.checkpoints import write_tiny_tokenizer


def test_text_jsonl_tsv_csv_folders_and_globs(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "from json", "y": 1}) + "\n")
    (tmp_path / "c.csv").write_text('text,label\n"hello, world",0\nbye,1\n')
    (tmp_path / "d.tsv").write_text("sentence\tlabel\ngood movie\t1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = read_texts([str(tmp_path / "a.txt")])
    assert recs.texts == ["first line", "second line"] and recs.skipped_empty == 1
    assert any("empty" in str(w.message) for w in caught)
    assert read_texts([str(tmp_path / "b.jsonl")], text_field="body").texts == ["from json"]
    csv = read_texts([str(tmp_path / "c.csv")], text_field="text", label_field="label")
    assert csv.texts == ["hello, world", "bye"] and csv.labels == [0, 1]
    assert read_texts([str(tmp_path / "d.tsv")]).texts == ["good movie"]
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "x.txt").write_text("one\n")
    (sub / "y.txt").write_text("two\n")
    assert read_texts([str(sub)]).texts == ["one", "two"]
    assert read_texts([str(sub / "*.txt")]).texts == ["one", "two"]
    assert read_texts([str(sub), str(tmp_path / "a.txt")], limit=3).texts == ["one", "two", "first line"]


def test_stsb_gives_both_sentences_and_sst2_its_sentence_column(data_dir):
    sts = read_texts([str(data_dir / "stsb" / "dev.tsv")])
    assert len(sts.texts) == 2 * 1500  # GLUE layout without a header row: sentence1 and sentence2 of each pair
    assert sts.texts[:2] == ["A man is playing the cello.", "A man seated is playing the cello."]
    sst = read_texts([str(data_dir / "sst2" / "dev.tsv")], label_field="label")
    assert len(sst.texts) == 6735 and set(sst.labels) == {0, 1}


def test_non_utf8_lines_are_counted_and_skipped(tmp_path):
    f = tmp_path / "mixed.txt"
    f.write_bytes(b"good line\n\xff\xfe bad bytes\nanother good one\n")
    with pytest.warns(UserWarning, match="not UTF-8"):
        recs = read_texts([str(f)])
    assert recs.texts == ["good line", "another good one"] and recs.skipped_non_utf8 == 1


def test_empty_corpus_and_missing_sources_are_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(PocketBertError, match="holds no text"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_texts([str(tmp_path / "empty.txt")])
    with pytest.raises(PocketBertError, match="does not exist"):
        read_texts([str(tmp_path / "nope.txt")])
    with pytest.raises(PocketBertError, match="matches no files"):
        read_texts([str(tmp_path / "*.md")])
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nx\t1\n")
    with pytest.raises(PocketBertError, match="no column 'text'"):
        read_texts([str(tmp_path / "t.tsv")], text_field="text")


def test_default_corpus_is_labelled_prose_from_installed_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path))
    sentences = data.harvest_default_corpus(max_sentences=300, max_files=400)
    assert len(sentences) >= 50
    assert all(s[0].isupper() and s[-1] in ".!?" and 6 <= len(s.split()) <= 40 for s in sentences)
    assert len(set(sentences)) == len(sentences)
    monkeypatch.setattr(data, "harvest_default_corpus", lambda: sentences)
    assert data.default_corpus() == sentences
    cached = data.default_corpus_path().read_text().splitlines()
    assert cached[0].startswith("# pocketbert default corpus: English prose harvested from docstrings")
    monkeypatch.setattr(data, "harvest_default_corpus", lambda: [])  # second call reads the cache
    assert read_texts(["default"]).texts == sentences


def test_epoch_batches_are_deterministic_grouped_and_sharded():
    lengths = [5 + (i * 37) % 60 for i in range(1000)]
    a = epoch_batches(lengths, 16, seed=1, epoch=0)
    assert a == epoch_batches(lengths, 16, seed=1, epoch=0)
    assert a != epoch_batches(lengths, 16, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    plain = epoch_batches(lengths, 16, seed=1, epoch=0, group_by_length=False)
    spread_plain = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain) / len(plain)
    assert spread < spread_plain / 5  # length grouping pads far less
    r0 = epoch_batches(lengths, 16, 1, 0, rank=0, world_size=2)
    r1 = epoch_batches(lengths, 16, 1, 0, rank=1, world_size=2)
    assert len(r0) == len(r1) and not {i for b in r0 for i in b} & {i for b in r1 for i in b}
    with pytest.raises(PocketBertError, match="fewer than"):
        epoch_batches([3, 4], 16, 1, 0, rank=0, world_size=2)


def test_tokenize_truncates_keeping_sep_and_collate_pads(tmp_path):
    write_tiny_tokenizer(tmp_path)
    tok = Tokenizer(tmp_path)
    ids = tokenize(tok, ["the man plays the guitar", "a dog " * 40], max_length=8)
    assert ids[0][0] == tok.special_ids["[CLS]"] and ids[0][-1] == tok.special_ids["[SEP]"]
    assert len(ids[1]) == 8 and ids[1][-1] == tok.special_ids["[SEP]"]
    input_ids, mask = collate(ids, tok.pad_id)
    assert input_ids.shape == (2, 8) and mask[0].sum() == len(ids[0])
    train, held = split_holdout(100, 0.1, seed=3)
    assert len(held) == 10 and not set(train) & set(held) and split_holdout(100, 0.1, 3) == (train, held)
