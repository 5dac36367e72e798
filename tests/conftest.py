"""Shared fixtures: tiny random HF checkpoints (BERT, DistilBERT, ALBERT), a tiny student, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.checkpoints import make_hf_checkpoint

REPO = Path(__file__).resolve().parents[1]
# The app cores' fixtures and the end-of-run JUnit / XCTest / conformance summary (tests/apps/app_cores.py, on
# the pythonpath), as a plugin. Plain helpers shared by test modules live in tests/helpers/, not here.
pytest_plugins = ["app_cores"]
DATA = Path(os.environ.get("POCKETBERT_DATA", REPO.parent / "shared" / "data"))


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


def pytest_collection_modifyitems(config, items):
    """Tiers: a test not marked `integration` or `slow` is a `unit` test (`pytest -m unit`, `make test-fast`)."""
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("integration", "slow")):
            item.add_marker(pytest.mark.unit)
