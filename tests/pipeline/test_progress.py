"""What a person sees while training without a terminal: periodic log lines against the run's budget."""

from __future__ import annotations

import io

import torch
from torch import nn

from pocketbert.pipeline.recipe import TrainConfig
from pocketbert.pipeline.train import Progress, Run, TrainData, clock, fit


def test_clock_reads_minutes_and_hours():
    assert clock(0) == "00:00"
    assert clock(70.9) == "01:10"
    assert clock(300) == "05:00"
    assert clock(3725) == "1:02:05"


def test_log_lines_show_steps_against_a_step_budget():
    out = io.StringIO()  # not a tty
    p = Progress("finetune", 100, 0.0, 0, 0.0, stream=out, every_s=30.0)
    p.update(1, 0.5, 0.75, {"ce": 0.75})
    for step in range(2, 60):  # under 30 s of training since the last line: no line
        p.update(step, step * 0.5, 0.5, {"ce": 0.5})
    p.update(60, 31.0, 0.25, {"ce": 0.25})
    p.update(61, 31.5, 0.125, {"ce": 0.125}, last=True)
    assert out.getvalue().splitlines() == [
        "finetune: step 1/100 | 00:00 | 2.00 it/s | loss 0.7500 (ce 0.7500)",
        "finetune: step 60/100 | 00:31 | 1.94 it/s | loss 0.2500 (ce 0.2500)",
        "finetune: step 61/100 | 00:31 | 1.94 it/s | loss 0.1250 (ce 0.1250)",
    ]


def test_log_lines_show_elapsed_against_a_time_budget_and_count_the_rate_from_a_resume():
    out = io.StringIO()
    p = Progress("distill[embedding]", None, 300.0, 100, 60.0, stream=out)  # resumed at step 100, 1 minute in
    p.update(101, 60.5, 2.0, {})
    p.update(164, 70.0, 1.5, {"emb_mse": 0.5, "emb_cos": 1.0}, last=True)
    assert out.getvalue().splitlines() == [
        "distill[embedding]: step 101 | 01:00/05:00 | 2.00 it/s | loss 2.0000",
        "distill[embedding]: step 164 | 01:10/05:00 | 6.40 it/s | loss 1.5000 (emb_mse 0.5000, emb_cos 1.0000)",
    ]


def test_no_lines_from_other_ranks_or_before_a_step():
    out = io.StringIO()
    quiet = Progress("pretrain", 10, 0.0, 0, 0.0, show=False, stream=out)
    quiet.update(1, 1.0, 1.0, {})
    quiet.update(1, 1.0, 1.0, {}, last=True)
    idle = Progress("pretrain", 10, 0.0, 10, 5.0, stream=out)  # resumed at the end: nothing runs
    idle.update(10, 5.0, float("nan"), {}, last=True)
    assert out.getvalue() == ""


class _Regression(nn.Module):
    def __init__(self):
        super().__init__()
        self.student = nn.Linear(4, 1)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        mse = ((self.student(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()
        return mse, {"mse": float(mse.detach())}


def test_fit_without_a_terminal_logs_the_first_and_last_step(tmp_path, capsys):
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def make_batch(index: list[int], gen: torch.Generator) -> dict:
        return {"x": x[index], "y": y[index]}

    result = fit(_Regression(), TrainData(make_batch, [4] * 64, 8), TrainConfig(max_steps=12, lr=1e-2, threads=1),
                 Run("regression", tmp_path / "out", tmp_path / "work", "cpu"))
    lines = capsys.readouterr().err.splitlines()  # pytest's capture is not a tty
    assert lines[0].startswith("regression: step 1/12 | 00:00 | ")
    assert lines[-1].startswith("regression: step 12/12 | 00:")
    assert lines[-1].endswith(f"loss {result.final_loss:.4f} (mse {result.last_terms['mse']:.4f})")
    assert "\r" not in "".join(lines)
