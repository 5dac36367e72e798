"""The one training loop every stage shares: AdamW, warmup + linear decay, accumulation, clipping,
bf16 autocast on GPU, budgets in steps or minutes, evaluation with the best weights kept, metrics
and curves, resumable training states, Ctrl-C, and DDP under torchrun.

A stage hands `fit` an *objective*: an `nn.Module` whose `forward(batch) -> (loss, terms)` and
which holds the model being trained (`objective.student`), any frozen teacher (parameters with
`requires_grad=False`, which DDP ignores) and any training-only heads. Batches come from
`data.make_batch(indices, generator)`; the generator is re-seeded from (seed, step, micro-batch,
rank), so masking needs no saved RNG and a resumed run sees exactly the batches the uninterrupted
run saw.

Resumable state (`<work_dir>/train_state.pt`, written every `save_every` steps, at the end and on
Ctrl-C): trainable weights, AdamW moments, schedule position (step, elapsed seconds), data position
(epoch, micro-batch), best evaluation, torch RNG state. It is read with `torch.load(weights_only=True)`.

Distributed: `torchrun --nproc_per_node N pocketbert distill RECIPE` (gloo on CPU, nccl on GPU;
multi-node with torchrun's `--nnodes`, `--node_rank`, `--rdzv_endpoint`). Each rank takes every N-th
batch; gradients are averaged by DDP; rank 0 evaluates, logs and writes.

A stage reads: `run = start_run(...)`, set up, `fit(...)`, `write_and_verify(...)`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pocketbert import console
from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.files import check_output_dir
from pocketbert.pipeline.checkpoint import MARKER, load_checkpoint, save_checkpoint
from pocketbert.pipeline.data import collate, epoch_batches
from pocketbert.pipeline.distributed import Dist, clock
from pocketbert.pipeline.recipe import TrainConfig

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
LOG_EVERY_S = 30.0  # without a terminal, a progress line every this many seconds of training


# ---------------------------------------------------------------------------------------------
# Processes, devices and the run


def pick_device(cfg: TrainConfig) -> str:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise PocketBertError("train.device is cuda but no CUDA GPU is available; use train.device=auto or cpu")
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    use_bf16(cfg, device)  # fail at set-up, not after loading data
    return device


def use_bf16(cfg: TrainConfig, device: str) -> bool:
    if cfg.precision == "bf16" and device != "cuda":
        raise PocketBertError("train.precision bf16 needs a GPU (autocast on CPU is slower); use auto or fp32")
    return device == "cuda" and cfg.precision in ("auto", "bf16")


def work_dir_for(cfg: TrainConfig, out: str) -> Path:
    return Path(cfg.work_dir) if cfg.work_dir else Path(str(out).rstrip("/") + ".work")


def check_resume(work_dir: Path) -> Path:
    """The state file to resume from, or a one-line error before anything is done."""
    state = work_dir / STATE_FILE
    if not work_dir.is_dir():
        raise PocketBertError(f"--resume: {work_dir} does not exist; start the run without --resume first")
    if not state.is_file():
        raise PocketBertError(f"--resume: {work_dir} holds no training state ({STATE_FILE}); "
                              "start without --resume or point at the run's work folder")
    return state


@dataclass
class Run:
    """Where and how one training stage runs."""

    name: str  # prefix of its progress and log lines: distill[triple], finetune, pretrain
    out: Path  # the checkpoint folder it writes
    work_dir: Path  # training state, metrics and curves
    device: str  # cpu | cuda
    resume: bool = False  # continue from <work_dir>/train_state.pt
    command: str | None = None  # the `pocketbert ...` line recorded in the checkpoint's provenance
    ddp: Dist = field(default_factory=Dist)  # set by the stage once its inputs are checked (init_distributed)
    started: float = field(default_factory=time.perf_counter)  # for the stage's wall time

    def write_resolved(self, resolved: dict) -> Path:
        """The resolved recipe goes to the work folder (`recipe.json`), not the terminal; returns its path."""
        from pocketbert.files import write_json

        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.work_dir / "recipe.json", resolved)
        return self.work_dir / "recipe.json"


def start_run(name: str, cfg: TrainConfig, out: str, resume: bool, resume_dir: str | None,
              command: str | None = None) -> Run:
    """What every training stage does first, before any work: refuse an output folder that is not ours,
    find the work folder (and its saved state when resuming), pick the device, seed and size torch."""
    out_path = Path(out)
    check_output_dir(out_path, MARKER)
    work_dir = Path(resume_dir) if resume_dir else work_dir_for(cfg, out)
    if resume:
        check_resume(work_dir)
    device = pick_device(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Run(name, out_path, work_dir, device, resume, command)


# ---------------------------------------------------------------------------------------------
# Optimiser and schedule


def adamw(params: list[tuple[str, nn.Parameter]], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on weight matrices only (not biases, LayerNorm, embeddings' norms)."""
    decay = [p for n, p in params if p.ndim >= 2 and "LayerNorm" not in n]
    no_decay = [p for n, p in params if not (p.ndim >= 2 and "LayerNorm" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6)


def run_progress(step: int, total_steps: int | None, elapsed: float, budget_s: float) -> float:
    """How far the run is, 0..1: the larger of step / total_steps and elapsed / budget_s."""
    progress = 0.0
    if total_steps:
        progress = step / total_steps
    if budget_s > 0:
        progress = max(progress, elapsed / budget_s)
    return min(progress, 1.0)


def lr_factor(step: int, total_steps: int | None, elapsed: float, budget_s: float, warmup: float) -> float:
    """Linear warmup then linear decay to 0 at the end of the run.

    Progress is the larger of step / total_steps and elapsed / budget_s (whichever budget ends first).
    `warmup` < 1 is a fraction of the run, >= 1 a number of steps.
    """
    progress = run_progress(step, total_steps, elapsed, budget_s)
    if warmup >= 1:
        warm = step / warmup if step < warmup else 1.0
        frac = 0.0 if not total_steps else warmup / total_steps
    else:
        frac = warmup
        warm = progress / frac if frac > 0 and progress < frac else 1.0
    decay = 1.0 if progress <= frac else max(0.0, (1.0 - progress) / max(1e-9, 1.0 - frac))
    return max(0.0, min(warm, decay))


# ---------------------------------------------------------------------------------------------
# Metrics and what a person sees


def _append(metrics_path: Path, row: dict) -> None:
    with open(metrics_path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _start_metrics(metrics_path: Path, resumed_at: int | None, initial_eval: dict | None) -> None:
    """A fresh metrics log (with the untrained model's evaluation as step 0), or on resume the log
    cut back to the saved step: the steps after it run again and are logged again."""
    if resumed_at is None:
        metrics_path.unlink(missing_ok=True)
        if initial_eval:
            _append(metrics_path, {"kind": "eval", "step": 0, "time_s": 0.0, **initial_eval})
    elif metrics_path.is_file():
        keep = [line for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= resumed_at]
        metrics_path.write_text("".join(line + "\n" for line in keep))


def write_curves(metrics_path: Path, png: Path) -> None:
    """A PNG of the loss terms and evaluation metrics against the step (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({k for r in train for k in r if k.startswith("loss")})
    for k in keys:
        pts = [(r["step"], r[k]) for r in train if k in r]
        axes[0].plot(*zip(*pts), label=k)
    axes[0].set_xlabel("step")
    axes[0].set_title("training loss")
    axes[0].legend(fontsize=8)
    ekeys = sorted({k for r in evals for k in r if k not in ("kind", "step", "time_s")})
    for k in ekeys:
        pts = [(r["step"], r[k]) for r in evals if k in r]
        axes[1].plot(*zip(*pts), marker="o", label=k)
    axes[1].set_xlabel("step")
    axes[1].set_title("evaluation")
    if ekeys:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def pick_metric(metrics: dict, preferred: str) -> str | None:
    if preferred not in ("auto", "loss"):
        return preferred if preferred in metrics else None
    for key in ("suite_mean", "sts", "accuracy", "mlm_accuracy"):
        if key in metrics:
            return key
    return None


class Progress:
    """Training progress against the run's budget: steps/total for a step budget, elapsed/limit for a
    time budget (both when both are set).

    On a terminal: a bar. Otherwise (a log file, a pipe): a line at the first step, every `every_s`
    seconds of training, and at the last step, e.g.
    `distill[embedding]: step 164 | 01:10/05:00 | 2.34 it/s | loss 0.4521 (emb_mse 0.0012, emb_cos 0.4509)`.
    """

    def __init__(self, name: str, total_steps: int | None, budget_s: float, step: int, elapsed: float,
                 show: bool = True, stream=None, every_s: float = LOG_EVERY_S):
        self.name, self.total_steps, self.budget_s, self.every_s = name, total_steps, budget_s, every_s
        self.stream = stream if stream is not None else console.stream()
        self.show = show
        self.first_step, self.first_elapsed = step, elapsed  # the rate counts this session only
        self.printed_at: tuple[int, float] | None = None  # (step, elapsed) of the last log line
        self.bar = None
        if show and self.stream.isatty():
            from tqdm import tqdm

            # Width from the terminal the bar is drawn on (console.columns: 100 when it reports none), at most
            # 100. The text after the bar is ours (postfix[0]): tqdm's own clock would count evaluation and
            # restart at 0 on --resume.
            self.width = min(100, console.columns())
            self.bar = tqdm(total=1.0, initial=self.fraction(step, elapsed), file=self.stream, desc=name,
                            ncols=self.width, postfix=[self.budget(step, elapsed)],
                            bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {postfix[0]}")

    def fraction(self, step: int, elapsed: float) -> float:
        """How much of the budget is used, 0..1: the larger of the two when both are set (as `lr_factor`)."""
        used = step / self.total_steps if self.total_steps else 0.0
        if self.budget_s > 0:
            used = max(used, elapsed / self.budget_s)
        return min(used, 1.0)

    def budget(self, step: int, elapsed: float) -> str:
        steps = f"step {step}/{self.total_steps}" if self.total_steps else f"step {step}"
        time_text = f"{clock(elapsed)}/{clock(self.budget_s)}" if self.budget_s > 0 else clock(elapsed)
        return f"{steps} | {time_text}"

    def line(self, step: int, elapsed: float, loss: float, terms: dict) -> str:
        """What follows the bar, or follows the name in a log line."""
        rate = (step - self.first_step) / max(elapsed - self.first_elapsed, 1e-9)
        parts = ", ".join(f"{k} {v:.4f}" for k, v in terms.items())
        return f"{self.budget(step, elapsed)} | {rate:.2f} it/s | loss {loss:.4f}" + (f" ({parts})" if parts else "")

    def update(self, step: int, elapsed: float, loss: float, terms: dict, last: bool = False) -> None:
        """After every step; with `last` after the final one (closes the bar, logs the last step)."""
        if not self.show:
            return
        if self.bar is not None:
            # within the width: "<name>: 100%|<20>| " takes len(name) + 29 columns; the loss terms are cut first
            text, room = self.line(step, elapsed, loss, terms), self.width - len(self.name) - 29
            self.bar.postfix[0] = text if len(text) <= room else text[: max(room - 1, 0)] + "…"
            self.bar.update(self.fraction(step, elapsed) - self.bar.n)  # redraws at most every 0.1 s
            if last:
                self.bar.close()
            return
        if last:
            due = step > self.first_step and (self.printed_at is None or self.printed_at[0] != step)
        else:
            due = self.printed_at is None or elapsed - self.printed_at[1] >= self.every_s
        if due:
            print(f"{self.name}: {self.line(step, elapsed, loss, terms)}", file=self.stream, flush=True)
            self.printed_at = (step, elapsed)


# ---------------------------------------------------------------------------------------------
# Training state: one dataclass, saved and loaded as a plain dict


@dataclass
class TrainData:
    """The examples `fit` trains on."""

    make_batch: Callable[[list[int], torch.Generator], dict]  # example indices + seeded generator -> batch
    lengths: list[int]  # token length of every example (length grouping, epoch size)
    batch_size: int  # examples per micro-batch and process
    group_by_length: bool = True


@dataclass
class TrainState:
    """Where a run is. The first block is saved in train_state.pt; the rest lives for one session."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    micro_pos: int = 0  # next micro-batch of the epoch
    elapsed: float = 0.0  # training seconds (evaluation not counted): the time budget's clock
    examples: int = 0  # examples seen by all processes
    best: dict = field(default_factory=lambda: {"metric": None, "value": None, "step": None})
    best_state: dict | None = None  # student state_dict of the best evaluation (keep_best)

    loss: float = float("nan")  # of the last step, averaged over its micro-batches
    terms: dict = field(default_factory=dict)  # the last step's loss terms
    last_eval: dict = field(default_factory=dict)
    evaluated_at: int = -1  # step of the last evaluation in this session


def save_state(path: Path, state: TrainState, objective: nn.Module, optimizer: torch.optim.Optimizer,
               trainable: set[str], recipe: dict | None) -> None:
    """Write the resumable state atomically: a kill during the write leaves the previous state intact."""
    saved = {
        "trainable": {k: v.detach().cpu().clone() for k, v in objective.state_dict().items()
                      if k in trainable or k.startswith("student.")},
        "optimizer": optimizer.state_dict(),
        "step": state.step, "epoch": state.epoch, "micro_pos": state.micro_pos, "elapsed": state.elapsed,
        "examples": state.examples, "best": state.best, "best_state": state.best_state,
        "torch_rng": torch.get_rng_state(),
        "recipe": json.loads(json.dumps(recipe or {})),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)


def load_state(path: Path, objective: nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
    """Put the saved weights, AdamW moments and torch RNG back in place; return the saved position."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    _, unexpected = objective.load_state_dict(saved["trainable"], strict=False)
    if unexpected:
        raise PocketBertError(f"--resume: the saved state does not fit this recipe's model ({unexpected[:3]})")
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    return TrainState(step=saved["step"], epoch=saved["epoch"], micro_pos=saved["micro_pos"],
                      elapsed=saved["elapsed"], examples=saved["examples"], best=saved["best"],
                      best_state=saved.get("best_state"))


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class FitResult:
    steps: int
    final_loss: float
    last_terms: dict
    best_metric: str | None
    best_value: float | None
    best_step: int | None
    last_eval: dict
    wall_s: float
    examples_seen: int
    best_state: dict | None = None  # student state_dict with the best evaluation (keep_best)


class _Interrupt:
    """SIGINT handler that lets the loop finish its step, save, then stop."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.hit:  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _seed_for(seed: int, step: int, micro: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 4_099 + micro * 131 + rank * 7) % (2**63 - 1)


def _agreed(flag: bool, ddp: Dist, device: str, rank0_decides: bool) -> bool:
    """One answer for every rank: rank 0's (broadcast), or true if any rank says so (all-reduce)."""
    if not ddp.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    if rank0_decides:
        dist.broadcast(t, 0)
    else:
        dist.all_reduce(t)
    return t.item() > 0


def _evaluate(state: TrainState, objective: nn.Module, evaluate: Callable[[nn.Module], dict], metric: str,
              keep_best: bool, metrics_path: Path, ddp: Dist) -> None:
    """Rank 0 evaluates the student, logs, and keeps its weights when it beats the best so far."""
    state.evaluated_at = state.step
    if ddp.main:
        objective.student.eval()
        with torch.no_grad():
            m = evaluate(objective.student)
        objective.student.train()
        state.last_eval = m
        _append(metrics_path, {"kind": "eval", "step": state.step, "time_s": round(state.elapsed, 2), **m})
        key = pick_metric(m, metric)
        if key is not None and (state.best["value"] is None or m[key] > state.best["value"]):
            state.best = {"metric": key, "value": m[key], "step": state.step}
            if keep_best:
                state.best_state = {k: v.detach().cpu().clone() for k, v in objective.student.state_dict().items()}
    if ddp.active:
        dist.barrier()


@dataclass
class _Trainer:
    """What one `fit` trains with, set up once: the objective (and its DDP wrapper), the trainable parameters
    and their optimizer, the schedule's length and time budget, and where the state and the metrics go."""

    objective: nn.Module
    model: nn.Module  # the objective, or its DistributedDataParallel wrapper under torchrun
    named: list[tuple[str, nn.Parameter]]  # the trainable parameters
    optimizer: torch.optim.AdamW
    total_steps: int | None  # None: the time budget alone ends the run
    budget_s: float  # 0: no time budget
    bf16: bool
    state_path: Path
    metrics_path: Path

    @property
    def trainable(self) -> set[str]:
        return {n for n, _ in self.named}


def _set_up(objective: nn.Module, data: TrainData, cfg: TrainConfig, run: Run) -> _Trainer:
    """Move the objective to the device, wrap it for DDP, build AdamW and the schedule's length."""
    ddp, device = run.ddp, run.device
    bf16 = use_bf16(cfg, device)
    objective.to(device)
    named = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    if not named:
        raise PocketBertError("nothing to train: the objective has no trainable parameters")
    model = objective
    if ddp.active:
        model = nn.parallel.DistributedDataParallel(
            objective, device_ids=[ddp.local_rank] if device == "cuda" else None, find_unused_parameters=False)
    per_epoch = len(epoch_batches(data.lengths, data.batch_size, cfg.seed, 0, data.group_by_length, 0,
                                  ddp.world_size))
    total_steps = cfg.max_steps or (math.ceil(cfg.epochs * per_epoch / cfg.grad_accum) if cfg.epochs > 0 else None)
    return _Trainer(objective=objective, model=model, named=named, optimizer=adamw(named, cfg),
                    total_steps=total_steps, budget_s=cfg.max_minutes * 60.0, bf16=bf16,
                    state_path=run.work_dir / STATE_FILE, metrics_path=run.work_dir / METRICS_FILE)


def _micro_batch(data: TrainData, cfg: TrainConfig, ddp: Dist, state: TrainState,
                 batches: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """The next micro-batch's example indices and the epoch order they come from (a new epoch's order once
    this one is used up)."""
    if state.micro_pos >= len(batches):
        state.epoch, state.micro_pos = state.epoch + 1, 0
        batches = epoch_batches(data.lengths, data.batch_size, cfg.seed, state.epoch, data.group_by_length,
                                ddp.rank, ddp.world_size)
    idx = batches[state.micro_pos]
    state.micro_pos += 1
    return idx, batches


def _optimizer_step(t: _Trainer, data: TrainData, cfg: TrainConfig, run: Run, state: TrainState,
                    batches: list[list[int]]) -> tuple[float, list[list[int]]]:
    """One optimizer step over `cfg.grad_accum` micro-batches; `state` moves to the next step (its clock is the
    caller's). Returns the step's learning-rate factor and the epoch order to continue from."""
    ddp, device = run.ddp, run.device
    factor = lr_factor(state.step, t.total_steps, state.elapsed, t.budget_s, cfg.warmup)
    for g in t.optimizer.param_groups:
        g["lr"] = cfg.lr * factor
    t.optimizer.zero_grad(set_to_none=True)
    loss_sum, terms_sum = 0.0, {}
    for micro in range(cfg.grad_accum):
        idx, batches = _micro_batch(data, cfg, ddp, state, batches)
        gen = torch.Generator().manual_seed(_seed_for(cfg.seed, state.step, micro, ddp.rank))
        batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in data.make_batch(idx, gen).items()}
        # for schedules in the loss
        batch["progress"] = run_progress(state.step, t.total_steps, state.elapsed, t.budget_s)
        # DDP all-reduces gradients on the last micro-batch only
        sync = t.model.no_sync() if ddp.active and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
        with sync:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=t.bf16):
                loss, terms = t.model(batch)
            (loss / cfg.grad_accum).backward()
        loss_sum += float(loss.detach()) / cfg.grad_accum
        for k, v in terms.items():
            terms_sum[k] = terms_sum.get(k, 0.0) + v / cfg.grad_accum
        state.examples += len(idx) * ddp.world_size
    if not math.isfinite(loss_sum):
        raise PocketBertError(f"the loss became {loss_sum} at step {state.step + 1}; lower train.lr or check the data")
    if cfg.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for _, p in t.named], cfg.clip_norm)
    t.optimizer.step()
    state.step += 1
    state.loss, state.terms = loss_sum, terms_sum
    return factor, batches


def _finish(t: _Trainer, cfg: TrainConfig, run: Run, state: TrainState, interrupted: bool,
            evaluate: Callable[[nn.Module], dict] | None, metric: str, recipe: dict | None) -> None:
    """After the loop: save and stop on Ctrl-C; otherwise the last evaluation, the final state, the end of DDP,
    and the curves."""
    ddp = run.ddp
    if interrupted:
        if ddp.main:
            save_state(t.state_path, state, t.objective, t.optimizer, t.trainable, recipe)
            say(f"{run.name}: interrupted at step {state.step}; state saved in {run.work_dir}, continue with --resume")
        raise KeyboardInterrupt
    if evaluate is not None and state.evaluated_at != state.step:
        _evaluate(state, t.objective, evaluate, metric, cfg.keep_best, t.metrics_path, ddp)
    if ddp.main:
        save_state(t.state_path, state, t.objective, t.optimizer, t.trainable, recipe)
    if ddp.active:
        dist.barrier()
        dist.destroy_process_group()  # rank 0 writes the checkpoint alone from here
    if ddp.main and t.metrics_path.is_file():
        try:
            write_curves(t.metrics_path, run.work_dir / CURVES_FILE)
        except Exception as e:  # noqa: BLE001 - a plot must never fail a finished run
            say(f"{run.name}: could not draw curves ({e})")


def fit(objective: nn.Module, data: TrainData, cfg: TrainConfig, run: Run,
        evaluate: Callable[[nn.Module], dict] | None = None, metric: str = "auto", recipe: dict | None = None,
        initial_eval: dict | None = None) -> FitResult:
    """Train `objective.student` (and the objective's other trainable modules) and return what happened.

    Args:
        objective: module with `.student` and `forward(batch) -> (loss, {term: float})`.
        data: the examples and how to batch them.
        run: work folder, device, processes; `run.resume` continues from `<work_dir>/train_state.pt`.
        evaluate: student -> {metric: value}, called on rank 0 every `eval_every` steps and at the end.
        metric: the evaluation key that picks the best weights (`auto`: sts > accuracy > mlm_accuracy).
        recipe: the resolved recipe, saved with the training state.
        initial_eval: the untrained model's metrics, logged as the step-0 evaluation.
    Raises:
        PocketBertError: nothing to train, a state that does not fit, a loss that is not finite.
        KeyboardInterrupt: after Ctrl-C, once the state is saved.
    """
    ddp, device = run.ddp, run.device
    t = _set_up(objective, data, cfg, run)
    if ddp.main:
        run.work_dir.mkdir(parents=True, exist_ok=True)
    state = load_state(t.state_path, objective, t.optimizer) if run.resume else TrainState()
    if ddp.main:
        _start_metrics(t.metrics_path, state.step if run.resume else None, initial_eval)
    progress = Progress(run.name, t.total_steps, t.budget_s, state.step, state.elapsed, show=ddp.main)
    objective.student.train()
    batches = epoch_batches(data.lengths, data.batch_size, cfg.seed, state.epoch, data.group_by_length, ddp.rank,
                            ddp.world_size)
    interrupted = False
    t_start = time.perf_counter() - state.elapsed
    with _Interrupt() as stop:
        while True:
            done = ((t.total_steps is not None and state.step >= t.total_steps)
                    or (t.budget_s > 0 and state.elapsed >= t.budget_s))
            if _agreed(done, ddp, device, rank0_decides=True):  # rank 0's clock decides for everyone
                break
            factor, batches = _optimizer_step(t, data, cfg, run, state, batches)
            state.elapsed = time.perf_counter() - t_start
            if ddp.main and (state.step % cfg.log_every == 0 or state.step == 1):
                _append(t.metrics_path, {"kind": "train", "step": state.step, "epoch": state.epoch,
                                         "time_s": round(state.elapsed, 2), "lr": cfg.lr * factor, "loss": state.loss,
                                         **{f"loss_{k}": v for k, v in state.terms.items()}})
            progress.update(state.step, state.elapsed, state.loss, state.terms)
            if cfg.eval_every and state.step % cfg.eval_every == 0:
                if evaluate is not None:
                    _evaluate(state, objective, evaluate, metric, cfg.keep_best, t.metrics_path, ddp)
                t_start = time.perf_counter() - state.elapsed  # evaluation time is not training time
            if ddp.main and cfg.save_every and state.step % cfg.save_every == 0:
                save_state(t.state_path, state, objective, t.optimizer, t.trainable, recipe)
            interrupted = _agreed(stop.hit, ddp, device, rank0_decides=False)
            if interrupted:
                break
    progress.update(state.step, state.elapsed, state.loss, state.terms, last=True)
    _finish(t, cfg, run, state, interrupted, evaluate, metric, recipe)
    return FitResult(steps=state.step, final_loss=state.loss, last_terms=state.terms, best_metric=state.best["metric"],
                     best_value=state.best["value"], best_step=state.best["step"], last_eval=state.last_eval,
                     wall_s=state.elapsed, examples_seen=state.examples,
                     best_state=copy.copy(state.best_state) if cfg.keep_best else None)


# ---------------------------------------------------------------------------------------------
# The end every training stage shares: write, verify, summarise


def write_and_verify(run: Run, objective: nn.Module, result: FitResult, record: dict, tokenizer_src: Path,
                     sample_ids: list[list[int]], pad_id: int, **metrics) -> dict:
    """Write the trained student (its best evaluated weights if kept) as a checkpoint with `record`,
    put metrics.jsonl and curves.png beside it, check that the checkpoint loaded back reproduces the
    model on a few of `sample_ids`, and return the stage's summary.

    Args:
        record: the stage's pocketbert.json entries (stage, parent, recipe, data, ...); its `metrics`
            are filled here from `result` and the extra `metrics` given.
        tokenizer_src: folder whose tokenizer files the checkpoint copies.
    Raises:
        PocketBertError: the reloaded checkpoint does not reproduce the trained model.
    """
    model = objective.student.cpu().eval()
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    record["metrics"] = {**summary(result), **metrics, "weights": "best" if result.best_state is not None else "last"}
    save_checkpoint(model, run.out, tokenizer_src=tokenizer_src, record=record, command=run.command)
    for name in (METRICS_FILE, CURVES_FILE):
        src = run.work_dir / name
        if src.is_file():
            tmp = run.out / f".{name}.tmp"
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, run.out / name)

    reloaded = load_checkpoint(run.out).model
    sample, sample_mask = collate(sample_ids[:4], pad_id)
    with torch.no_grad():
        same = torch.allclose(model.task_forward(sample, sample_mask), reloaded.task_forward(sample, sample_mask),
                              atol=1e-4, rtol=1e-4)
    if not same:
        raise PocketBertError(f"{run.out}: the reloaded checkpoint does not reproduce the trained model")
    return {"out": str(run.out), "work_dir": str(run.work_dir), **record["metrics"],
            "wall_s": round(time.perf_counter() - run.started, 1)}


def summary(result: FitResult) -> dict:
    return {"steps": result.steps, "final_loss": result.final_loss, "final_terms": result.last_terms,
            "best_metric": result.best_metric, "best_value": result.best_value, "best_step": result.best_step,
            "last_eval": result.last_eval, "train_wall_s": round(result.wall_s, 1),
            "examples_seen": result.examples_seen}
