"""The dev suite (pipeline/suite.py): four numbers and their mean on a tiny fixture, against a hand computation;
bad suite files are one-line errors; dev-suite sentences never reach training text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.pipeline.suite import TASKS, dev_files, dev_sentences, load_suite, score_suite

from helpers.texts import STS_HEADER, make_suite_data


def _embed(texts: list[str]) -> np.ndarray:
    """Hand-made embeddings: pair k's cosine is set so that STS-B's order of cosines is [1, 2, 4, 3] against gold
    [1, 2, 3, 4] and SICK's is reversed; SST-2 and AG News classes lie on opposite axes."""
    cos_sts = {1: 0.1, 2: 0.2, 3: 0.4, 4: 0.3}
    out = []
    for t in texts:
        kind, side, *_ = t.split()
        if kind in ("sts", "sick"):
            k = int(side[1:])
            c = cos_sts[k] if kind == "sts" else 1.0 - 0.2 * k
            # a: e1; b: cos c to e1
            out.append([1.0, 0.0, 0.0] if side[0] == "a" else [c, float(np.sqrt(1 - c * c)), 0.0])
        else:
            positive = kind in ("good", "sport")
            out.append([0.0, 0.0, 1.0] if positive else [0.0, 1.0, 0.0])
    return np.asarray(out, dtype=np.float32)


def test_suite_matches_a_hand_computation(tmp_path):
    suite = load_suite("dev", make_suite_data(tmp_path))
    scores = score_suite(suite, _embed)
    # Spearman of ranks [1, 2, 4, 3] against [1, 2, 3, 4]: 1 - 6 * (0 + 0 + 1 + 1) / (4 * (16 - 1)) = 0.8
    assert scores["stsb"] == pytest.approx(80.0)
    assert scores["sickr"] == pytest.approx(-100.0)  # cosines fall as the gold score rises
    assert scores["sst2"] == pytest.approx(100.0) and scores["agnews"] == pytest.approx(100.0)
    assert scores["mean"] == pytest.approx((80.0 - 100.0 + 100.0 + 100.0) / 4)
    assert list(scores) == [*TASKS, "mean"]


def test_dev_sentences_are_the_dev_files(tmp_path):
    root = make_suite_data(tmp_path)
    dev = dev_sentences("dev", root)
    assert "sts a1" in dev and "sick b4" in dev and "good dev 1" in dev and "sport news 1" in dev
    assert "good train 1" not in dev  # the probe's training rows are training data
    assert dev_sentences("dev", tmp_path / "absent") == set()


def test_dev_files_are_what_exists_in_order(tmp_path):
    """The files the bench's real-length section reads by default (and the distillation keeps out of training)."""
    root = make_suite_data(tmp_path)
    assert dev_files("dev", root) == [root / f for f in ("stsb/dev.tsv", "sick/test.tsv", "sst2/dev.tsv", "agnews/dev.tsv")]
    (root / "sick" / "test.tsv").unlink()
    assert [p.relative_to(root).as_posix() for p in dev_files("dev", root)] == ["stsb/dev.tsv", "sst2/dev.tsv",
                                                                                 "agnews/dev.tsv"]
    assert dev_files("dev", tmp_path / "absent") == []


@pytest.mark.parametrize("broken, needle", [
    ("sick/test.tsv", "does not exist"),
    ("agnews/dev.tsv", "expected a header with `text` and `label`"),
    ("stsb/dev.tsv", "is not a number"),
])
def test_a_bad_suite_file_is_a_one_line_error(tmp_path, capsys, broken, needle):
    root = make_suite_data(tmp_path / "data")
    path = root / broken
    if needle == "does not exist":
        path.unlink()
    elif broken.startswith("agnews"):
        path.write_text("words\tclass\nsome text\tWorld\n")
    else:
        path.write_text(STS_HEADER + "0\tg\tf\t2012\t0\tn\tn\ta\tb\tfive\n")
    with pytest.raises(PocketBertError, match=needle):
        load_suite("dev", root)
    out = tmp_path / "o.json"
    code = main(["eval", str(tmp_path / "no-model"), "--suite", "dev", "--data", str(root), "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err
    assert not out.exists()


def test_unknown_suite_is_named(tmp_path):
    with pytest.raises(PocketBertError, match="unknown suite 'test'; the suites are: dev"):
        load_suite("test", tmp_path)


@pytest.mark.integration
def test_eval_suite_scores_a_checkpoint_and_its_bundle_alike(tmp_path, tiny_bert, capsys, monkeypatch):
    """`pocketbert eval --suite dev` on a checkpoint, and on a bundle of it: the PyTorch row of the bundle is the
    checkpoint's own numbers at the bundle's largest bucket, and every artifact is within 0.5 of it on the mean."""
    root = make_suite_data(tmp_path / "data")
    monkeypatch.setenv("POCKETBERT_DATA", str(root))
    assert main(["eval", str(tiny_bert), "--suite", "dev", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["suite"]) == {*TASKS, "mean"} and doc["suite_name"] == "dev"
    assert main(["export", str(tiny_bert), "--out", str(tmp_path / "b"), "--formats", "onnx,tflite",
                 "--quant", "fp32", "--seq-len", "16"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "b"), "--suite", "dev", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["format"] == "pytorch" and set(rows[0]["suite"]) == {*TASKS, "mean"}
    for r in rows[1:]:
        assert r["status"] == "ok" and abs(r["suite_delta_vs_pytorch"]) <= 0.5, r
