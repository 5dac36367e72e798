"""Teacher passes that scale: length-sorted token-budget batches, the chunked cache (resumes after SIGKILL
without recomputing finished chunks), torchrun sharding (2 ranks = 1 process), the ONNX Runtime backends
and their agreement gate, the progress line, and the one-line errors of `pocketbert encode`."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketbert.cli import main
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.evaluate import embed_texts
from pocketbert.pipeline.teacher_cache import (
    PassProgress,
    as_teacher,
    cache_key,
    load_sentence_teacher,
    plan_batches,
    teacher_embeddings,
)
from pocketbert.pipeline.tokenizer import Tokenizer

from helpers import REPO

_WORDS = ("the a man woman dog cat plays playing guitar cello runs street red blue big small movie good bad "
          "very quick brown fox jumps over lazy water music song dance").split()


def write_corpus(path: Path, n: int, seed: int = 0, longest: int = 40) -> Path:
    """`n` distinct lines of 1..`longest` words (numbered, so no two are equal)."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, longest))) + f" {i}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(cache: Path, **extra) -> dict:
    env = {**os.environ, "POCKETBERT_CACHE": str(cache), "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_batches_fit_the_token_budget_and_cover_every_row():
    lengths = np.sort(np.random.default_rng(0).integers(2, 200, size=1000))
    batches = plan_batches(lengths, max_tokens=2048, batch_size=64)
    assert batches[0][0] == 0 and batches[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(batches, batches[1:]))  # contiguous, no row twice
    for start, end in batches:
        rows = end - start
        assert rows <= 64
        assert rows == 1 or rows * lengths[end - 1] <= 2048  # padded to the batch's longest (its last)
    # a text longer than the budget still gets its own batch
    assert plan_batches(np.array([3, 5000]), max_tokens=100) == [(0, 1), (1, 2)]


def test_length_sorted_dynamic_batches_equal_one_text_at_a_time(tiny_bert):
    teacher = load_sentence_teacher(tiny_bert)
    texts = [" ".join(_WORDS[: 1 + (7 * i) % 30]) + f" {i}" for i in range(60)]
    batched = teacher.encode(texts, max_tokens=256)
    alone = np.concatenate([teacher.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=2e-6)
    # the same numbers as the evaluation's embed_texts (character-sorted, fixed batches)
    ckpt = load_checkpoint(tiny_bert)
    np.testing.assert_allclose(batched, embed_texts(ckpt.model, Tokenizer(ckpt.path), texts, max_length=128),
                               atol=2e-6)
    lengths = teacher.token_lengths(texts)
    assert lengths.min() >= 3 and (lengths == [len(r) for r in teacher.token_ids(texts)]).all()


def test_the_key_covers_corpus_order_length_backend_and_teacher(tiny_bert, tmp_path):
    from helpers.checkpoints import make_hf_checkpoint

    teacher = load_sentence_teacher(tiny_bert)
    texts = ["a man plays the cello", "a dog runs", "the movie was good"]
    key, parts = cache_key(teacher, texts, 128)
    assert parts["max_length"] == 128 and parts["backend"] == "fp32" and parts["teacher"] == "bert"
    others = [
        cache_key(teacher, texts[::-1], 128)[0],
        cache_key(teacher, texts[:2], 128)[0],
        cache_key(teacher, texts, 16)[0],
        cache_key(teacher.with_backend("onnx-int8"), texts, 128)[0],
        cache_key(load_sentence_teacher(make_hf_checkpoint(tmp_path / "other", "bert", seed=3)), texts, 128)[0],
    ]
    assert len({key, *others}) == 6
    assert cache_key(teacher, texts, 10_000)[1]["max_length"] == teacher.max_length  # capped by the teacher


def test_a_loaded_checkpoint_is_wrapped_and_cached(tiny_bert, tmp_path):
    texts = [" ".join(_WORDS[i % 30: i % 30 + 3 + i % 9]) for i in range(100)]
    ckpt = load_checkpoint(tiny_bert)
    emb, info = teacher_embeddings(ckpt, texts, 128, tmp_path, chunk_size=32)
    assert emb.shape == (100, 32) and emb.dtype == np.float32
    assert info["hit"] is False and info["pass"]["computed_chunks"] == 4 and info["pass"]["reused_chunks"] == 0
    assert Path(info["file"]).is_file() and not Path(info["file"]).with_suffix(".parts").exists()
    np.testing.assert_allclose(emb, as_teacher(ckpt).encode(texts, 128), atol=2e-6)
    again, info2 = teacher_embeddings(load_sentence_teacher(tiny_bert), texts, 128, tmp_path)
    assert info2["hit"] is True and info2["key"] == info["key"]
    assert (again == emb).all()
    recorded = json.loads(Path(info["file"]).with_suffix(".json").read_text())
    assert recorded["pass"]["sentences"] == 100 and recorded["texts"] == 100


def test_progress_lines_show_rate_and_eta_within_100_columns():
    clock = iter([0.0, 1.0, 10.0, 40.0, 80.0])  # the start, then one reading per update
    out = io.StringIO()  # not a terminal: a line at the first update, every 30 s, and at the end
    bar = PassProgress("encode mpnet (fp32) [rank 0 of 2]", 4000, stream=out, now=lambda: next(clock))
    bar.update(100)  # t=1: first line
    bar.update(900)  # t=10: not due
    bar.update(1000)  # t=40: due
    bar.update(2000)  # t=80: the end
    lines = out.getvalue().splitlines()
    assert lines == [
        "encode mpnet (fp32) [rank 0 of 2]: 100/4000 sentences | 00:01 | 100.0 sentences/s | ETA 00:39",
        "encode mpnet (fp32) [rank 0 of 2]: 2000/4000 sentences | 00:40 | 50.0 sentences/s | ETA 00:40",
        "encode mpnet (fp32) [rank 0 of 2]: 4000/4000 sentences | 01:20 | 50.0 sentences/s | ETA 00:00",
    ]
    assert max(len(line) for line in lines) <= 100
    quiet = io.StringIO()
    PassProgress("x", 10, show=False, stream=quiet).update(10)
    assert quiet.getvalue() == ""


@pytest.mark.integration
def test_a_pass_killed_with_sigkill_resumes_without_recomputing_finished_chunks(tiny_bert, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", 20000)
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "pocketbert", "encode", str(tiny_bert), "--corpus", str(corpus),
            "--chunk-size", "50", "--threads", "1", "--json"]
    proc = subprocess.Popen(argv, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    parts = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((cache / "teacher_emb").glob("*.parts/chunk-*.npy")) if (cache / "teacher_emb").is_dir() else []
        if len(found) >= 3:
            parts = found[0].parent
            break
        time.sleep(0.005)
    assert parts is not None, "the pass ended or stalled before writing 3 chunks"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    key = parts.name.removesuffix(".parts")
    assert not (cache / "teacher_emb" / f"{key}.npy").exists()
    finished = sorted(parts.glob("chunk-*.npy"))
    assert 3 <= len(finished) < 400
    # Mark the finished chunks: a resumed pass that recomputed them would overwrite the marks.
    for f in finished:
        rows = np.load(f).shape[0]
        np.save(f, np.full((rows, 32), 7.0, dtype=np.float32))

    done = subprocess.run(argv, env=_env(cache), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout)
    assert info["key"] == key and info["hit"] is False
    assert info["pass"]["reused_chunks"] == len(finished)
    assert info["pass"]["computed_chunks"] == 400 - len(finished)
    assert info["pass"]["computed_sentences"] == 20000 - 50 * len(finished)
    emb = np.load(info["file"])
    marked = (emb == 7.0).all(axis=1)
    assert marked.sum() == 50 * len(finished)  # exactly the finished chunks' rows came from disk
    assert not parts.exists()  # merged: the chunks are gone
    # every other row is what an uninterrupted pass computes, in corpus order
    teacher = load_sentence_teacher(tiny_bert)
    texts = corpus.read_text().splitlines()
    np.testing.assert_allclose(emb[~marked], teacher.encode([t for t, m in zip(texts, marked) if not m]),
                               atol=2e-6)


def _rank0_json(stdout: str) -> dict:
    """The one non-empty JSON document of a torchrun's stdout (each other rank prints `{}`)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while i < len(stdout.rstrip()):
        doc, i = decoder.raw_decode(stdout, i)
        docs.append(doc)
        while i < len(stdout) and stdout[i].isspace():
            i += 1
    filled = [d for d in docs if d]
    assert len(filled) == 1, stdout
    return filled[0]


_IN_GROUP = """
import sys, numpy as np, torch, torch.distributed as dist
from pathlib import Path
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.teacher_cache import teacher_embeddings
dist.init_process_group("gloo")  # the caller's own group, as a distillation under torchrun has
torch.set_num_threads(1)
texts = Path(sys.argv[2]).read_text().splitlines()
emb, info = teacher_embeddings(load_checkpoint(sys.argv[1]), texts, 128, Path(sys.argv[3]), chunk_size=64)
np.save(Path(sys.argv[3]) / f"rank{dist.get_rank()}.npy", emb)
assert info["pass"]["ranks"] == 2
dist.destroy_process_group()
"""


@pytest.mark.integration
def test_two_torchrun_ranks_equal_one_process(tiny_bert, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", 700)
    texts = corpus.read_text().splitlines()
    torch.set_num_threads(1)
    one, _ = teacher_embeddings(load_checkpoint(tiny_bert), texts, 128, tmp_path / "one", chunk_size=64)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

    # a new command: `torchrun -m pocketbert encode` makes its own gloo group
    done = subprocess.run([*run, "-m", "pocketbert", "encode", str(tiny_bert), "--corpus", str(corpus),
                           "--chunk-size", "64", "--max-length", "128", "--json"],
                          env=_env(tmp_path / "two"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    info = _rank0_json(done.stdout)
    assert info["pass"]["ranks"] == 2 and info["pass"]["computed_chunks"] == 11
    two = np.load(info["file"])
    assert np.abs(two - one).max() <= 1e-6

    # inside a process group the caller made: every rank gets the whole result
    script = tmp_path / "in_group.py"
    script.write_text(_IN_GROUP)
    done = subprocess.run([*run, str(script), str(tiny_bert), str(corpus), str(tmp_path / "group")],
                          env=_env(tmp_path / "group"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        assert np.abs(np.load(tmp_path / "group" / f"rank{rank}.npy") - one).max() <= 1e-6


@pytest.mark.integration
def test_onnx_backends_record_their_agreement_and_a_refused_one_writes_nothing(tiny_bert, tmp_path, capsys,
                                                                                  monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.txt", 300)
    texts = corpus.read_text().splitlines()
    fp32, _ = teacher_embeddings(load_sentence_teacher(tiny_bert), texts, 128, tmp_path)
    for backend in ("onnx-fp32", "onnx-int8"):
        emb, info = teacher_embeddings(load_sentence_teacher(tiny_bert, backend=backend), texts, 128, tmp_path)
        agreement = info["agreement"]
        assert agreement["backend"] == backend and agreement["sample"] == 256 and agreement["seed"] == 0
        assert 0.99 <= agreement["min"] <= agreement["mean"] <= 1.0 + 1e-6
        cos = (emb * fp32).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(fp32, axis=1)
        assert cos.min() >= 0.99
        assert json.loads(Path(info["file"]).with_suffix(".json").read_text())["agreement"] == agreement
    onnx_dir = next((tmp_path / "teacher_pass_onnx").iterdir())
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["fp32.onnx", "int8-attention.onnx"]

    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "refused"))
    code = main(["encode", str(tiny_bert), "--corpus", str(corpus), "--backend", "onnx-int8", "--min-agreement", "1.0"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("pocketbert encode: error: backend onnx-int8 of ")
    assert "agrees with fp32 down to cosine " in err and "below 1.0" in err
    emb_dir = tmp_path / "refused" / "teacher_emb"
    assert not emb_dir.exists() or not any(emb_dir.iterdir())


def test_a_missing_corpus_file_is_one_line_and_writes_nothing(tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    assert main(["encode", str(tiny_bert), "--corpus", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.txt" in err[0] and err[0].startswith("pocketbert encode: error:")
    assert not (tmp_path / "cache").exists()
    for bad in (["--chunk-size", "0"], ["--max-length", "1"], ["--min-agreement", "0.5"]):
        assert main(["encode", str(tiny_bert), "--corpus", str(tmp_path / "nope.txt"), *bad]) == 2
        assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_bf16_without_bf16_hardware_is_one_line_and_writes_nothing(tiny_bert, tmp_path, capsys, monkeypatch):
    from pocketbert.pipeline.teacher_cache import cpu_has_bf16

    if torch.cuda.is_available() or cpu_has_bf16():
        pytest.skip("this machine computes in bf16")
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "corpus.txt", 10)
    assert main(["encode", str(tiny_bert), "--corpus", str(corpus), "--backend", "bf16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pocketbert encode: error: backend bf16 needs bf16 arithmetic")
    assert not (tmp_path / "cache" / "teacher_emb").exists()
