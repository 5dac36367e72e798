"""`pocketbert build` with a `static:` section on the tiny teacher: every stage (static, export, eval, bench
beside the teacher and potion-base-2M, report), and the one-line errors of a bad dim or an empty vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pocketbert.cli import main

from helpers.texts import sts_pairs, synthetic_corpus

pytestmark = pytest.mark.integration


def _recipe(d: Path, teacher: Path, corpus: Path, peers: list[str]) -> Path:
    recipe = {
        "static": {
            "teachers": [str(teacher)], "dim": 16,
            "vocab": {"source": "corpus"},
            "data": {"train": [str(corpus)], "max_length": 16},
            "train": {"epochs": 2, "batch_size": 16, "lr": 0.01},
        },
        "export": {"formats": ["onnx", "executorch"], "quant": ["fp32", "int8"], "seq_len": [16]},
        "eval": {"sts": str(sts_pairs(d / "sts.tsv"))},
        "bench": {"threads": [1], "seq_len": [16], "runs": 3, "warmup": 1, "baseline": "teacher", "peers": peers},
    }
    path = d / "build-static-tiny.yaml"
    path.write_text("# pocketbert build build-static-tiny.yaml --out DIR\n" + yaml.safe_dump(recipe))
    return path


def test_static_build_runs_every_stage(tmp_path, tiny_bert):
    pytest.importorskip("yantrikdb")  # potion-base-2m, the static peer
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 150)
    out = tmp_path / "b"
    assert main(["build", str(_recipe(tmp_path, tiny_bert, corpus, ["potion-base-2m"])), "--out", str(out)]) == 0
    state = json.loads((out / "build.json").read_text())
    assert list(state["stages"]) == ["static", "export", "eval", "bench", "report"]
    assert json.loads((out / "static" / "pocketbert.json").read_text())["kind"] == "static"
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["model"]["teacher"]["path"] == str(tiny_bert.resolve())
    results = json.loads((out / "results.json").read_text())
    names = {r["name"] for r in results["rows"] if r["status"] == "ok"}
    assert "peer_potion-base-2m_model2vec_fp32" in names and "teacher_onnx_int8" in names
    assert "verdict" in (out / "report.md").read_text().lower()


@pytest.mark.parametrize("dim", ["63", "0"])
def test_bad_dim_is_one_line_exit_2(tmp_path, tiny_bert, capsys, dim):
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 20)
    out = tmp_path / "b"
    assert main(["build", str(_recipe(tmp_path, tiny_bert, corpus, [])), f"static.dim={dim}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"static.dim {dim}" in err[0]
    assert not out.exists()


def test_empty_vocabulary_is_one_line_exit_2(tmp_path, tiny_bert, capsys):
    corpus = tmp_path / "cjk.txt"
    corpus.write_text("我喜欢自然语言处理\n東京は日本の首都です\n")  # only [UNK] in the tiny vocabulary
    out = tmp_path / "b"
    assert main(["build", str(_recipe(tmp_path, tiny_bert, corpus, [])), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # the stage logs its progress on stderr before it fails; the failure itself is one line, no traceback
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "the vocabulary is empty" in errors[0] and "Traceback" not in err
    assert not (out / "static").exists() and not (out / "bundle").exists()
