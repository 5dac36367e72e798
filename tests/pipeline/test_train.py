"""The training loop users have to trust: schedule, exact resume after SIGKILL, Ctrl-C, outputs, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.train import lr_factor

from helpers import default_sigint
from helpers.texts import synthetic_corpus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_lr_warmup_then_linear_decay():
    assert lr_factor(0, 100, 0, 0, 0.1) == 0.0
    assert lr_factor(5, 100, 0, 0, 0.1) == pytest.approx(0.5)
    assert lr_factor(10, 100, 0, 0, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 0, 0, 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, 0, 0.1) == 0.0
    assert lr_factor(5, 100, 0, 0, 10) == pytest.approx(0.5)  # warmup in steps
    # wall-clock budget: progress is elapsed / budget
    assert lr_factor(3, None, 30.0, 60.0, 0.0) == pytest.approx(0.5)


def _triple_args(tmp_path: Path, teacher: Path, out: Path, steps: int) -> list[str]:
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 2000)
    return ["distill", "distill-triple-tiny", f"teachers=[{teacher}]", f"data.train=[{corpus}]", f"out={out}",
            "student.layers=0,2", f"train.max_steps={steps}", "train.threads=1", "train.log_every=1",
            "train.save_every=10", "train.eval_every=0", "eval.mlm=false", "data.holdout=0"]


def _final(out: Path) -> dict:
    return json.loads((out / "pocketbert.json").read_text())["metrics"]


def test_sigkill_then_resume_ends_with_the_uninterrupted_loss(tmp_path, tiny_bert_mlm):
    steps = 400
    ref_out = tmp_path / "ref"
    cmd = [sys.executable, "-m", "pocketbert"]
    subprocess.run(cmd + _triple_args(tmp_path, tiny_bert_mlm, ref_out, steps), check=True, env=_env(),
                   capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + _triple_args(tmp_path, tiny_bert_mlm, out, steps), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out.with_name("killed.work") / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.is_file():
            lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip().endswith("}")]
            if lines and lines[-1]["step"] >= 45:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed; make it longer"
    assert (out.with_name("killed.work") / "train_state.pt").is_file()
    done = subprocess.run(cmd + _triple_args(tmp_path, tiny_bert_mlm, out, steps) + ["--resume", "--json"],
                          check=True, env=_env(), capture_output=True, text=True)
    result = json.loads(done.stdout)
    assert result["steps"] == steps
    ref, resumed = _final(ref_out), _final(out)
    assert resumed["final_loss"] == pytest.approx(ref["final_loss"], rel=1e-6, abs=1e-7)
    assert resumed["final_terms"] == pytest.approx(ref["final_terms"], rel=1e-6, abs=1e-7)
    # the metrics log has each step once, as if never interrupted
    steps_logged = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
                    if json.loads(x)["kind"] == "train"]
    assert steps_logged == list(range(1, steps + 1))


def test_ctrl_c_saves_a_state_that_resumes(tmp_path, tiny_bert_mlm):
    out = tmp_path / "out"
    args = _triple_args(tmp_path, tiny_bert_mlm, out, 100000)
    proc = subprocess.Popen([sys.executable, "-m", "pocketbert", *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    metrics = out.with_name("out.work") / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 15):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "continue with --resume" in err
    assert not out.exists()
    import torch

    state = torch.load(out.with_name("out.work") / "train_state.pt", weights_only=True)
    assert state["step"] >= 15 and "optimizer" in state and "trainable" in state
    # resume with a finite budget a little further on
    from pocketbert.cli import main

    # `--resume key=value`: the override after the flag still counts as an override
    assert main(args + ["--resume", f"train.max_steps={state['step'] + 5}"]) == 0
    assert _final(out)["steps"] == state["step"] + 5


def test_outputs_metrics_curves_and_best_weights(tmp_path, tiny_bert_mlm):
    from pocketbert.cli import main

    corpus = synthetic_corpus(tmp_path / "corpus.txt", 400)
    out = tmp_path / "out"
    assert main(["distill", "distill-triple-tiny", f"teachers=[{tiny_bert_mlm}]", f"data.train=[{corpus}]",
                 f"out={out}", "student.layers=0,2", "train.max_steps=30", "train.eval_every=10",
                 "train.grad_accum=2", "data.holdout=0.1", "loss.alpha_hidden_mse=1", "loss.alpha_attention=1"]) == 0
    rec = json.loads((out / "pocketbert.json").read_text())
    assert rec["stage"] == "distill" and rec["parent"]["path"] == str(tiny_bert_mlm.resolve())
    assert rec["recipe"]["train"]["grad_accum"] == 2 and rec["layer_map"] == [0, 2]
    assert rec["metrics"]["best_metric"] == "mlm_accuracy" and rec["metrics"]["weights"] == "best"
    assert set(rec["metrics"]["final_terms"]) == {"ce", "mlm", "cos", "hidden_mse", "attention"}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [10, 20, 30]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_checkpoint(out).model
    assert model.config.num_hidden_layers == 2 and model.cls is not None


def test_torchrun_two_cpu_processes(tmp_path, tiny_bert_mlm):
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 600)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pocketbert", "distill", "distill-triple-tiny", f"teachers=[{tiny_bert_mlm}]", f"data.train=[{corpus}]",
           f"out={out}", "student.layers=0,2", "train.max_steps=20", "train.threads=1", "train.eval_every=10",
           "data.batch_size=16", "--json"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = json.loads((out / "pocketbert.json").read_text())
    assert rec["metrics"]["steps"] == 20
    assert rec["metrics"]["examples_seen"] == 20 * 16 * 2  # two ranks, each its own shard
    single = tmp_path / "single"
    assert subprocess.run([sys.executable, "-m", "pocketbert", "student", "--teacher", str(tiny_bert_mlm), "--layers",
                           "0,2", "--out", str(single)], env=_env(), capture_output=True).returncode == 0
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".png" and p.suffix != ".jsonl") == \
        sorted(p.name for p in single.iterdir())
    loaded = load_checkpoint(out)
    assert loaded.model.config.num_hidden_layers == 2
