"""The one training loop every stage shares: AdamW, warmup + linear decay, accumulation, clipping,
bf16 autocast on GPU, budgets in steps or minutes, evaluation with the best weights kept, metrics
and curves, resumable training states, Ctrl-C, and DDP under torchrun.

A stage hands `fit` an *objective*: an `nn.Module` whose `forward(batch)` returns `(loss, terms)`
and which holds the model being trained (`objective.student`), any frozen teacher (parameters with
`requires_grad=False`, which DDP ignores) and any training-only heads. Batches come from
`make_batch(indices, generator)`; the generator is re-seeded from (seed, step, micro-batch, rank),
so masking needs no saved RNG and a resumed run sees exactly the batches the uninterrupted run saw.

Resumable state (`<work_dir>/train_state.pt`, written every `save_every` steps, at the end and on
Ctrl-C): trainable weights, AdamW moments, schedule position (step, elapsed seconds), data position
(epoch, micro-batch), best evaluation, torch RNG state. It is read with `torch.load(weights_only=True)`.

Distributed: `torchrun --nproc_per_node N pocketbert distill RECIPE` (gloo on CPU, nccl on GPU;
multi-node with torchrun's `--nnodes`, `--node_rank`, `--rdzv_endpoint`). Each rank takes every N-th
batch; gradients are averaged by DDP; rank 0 evaluates, logs and writes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.data import epoch_batches
from pocketbert.pipeline.recipe import TrainConfig

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


# ---------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


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


# ---------------------------------------------------------------------------------------------
# Optimiser and schedule


def adamw(params: list[tuple[str, nn.Parameter]], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on weight matrices only (not biases, LayerNorm, embeddings' norms)."""
    decay = [p for n, p in params if p.ndim >= 2 and "LayerNorm" not in n]
    no_decay = [p for n, p in params if not (p.ndim >= 2 and "LayerNorm" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6)


def lr_factor(step: int, total_steps: int | None, elapsed: float, budget_s: float, warmup: float) -> float:
    """Linear warmup then linear decay to 0 at the end of the run.

    Progress is the larger of step / total_steps and elapsed / budget_s (whichever budget ends first).
    `warmup` < 1 is a fraction of the run, >= 1 a number of steps.
    """
    progress = 0.0
    if total_steps:
        progress = step / total_steps
    if budget_s > 0:
        progress = max(progress, elapsed / budget_s)
    progress = min(progress, 1.0)
    if warmup >= 1:
        warm = step / warmup if step < warmup else 1.0
        frac = 0.0 if not total_steps else warmup / total_steps
    else:
        frac = warmup
        warm = progress / frac if frac > 0 and progress < frac else 1.0
    decay = 1.0 if progress <= frac else max(0.0, (1.0 - progress) / max(1e-9, 1.0 - frac))
    return max(0.0, min(warm, decay))


# ---------------------------------------------------------------------------------------------
# Metrics


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
    for key in ("sts", "accuracy", "mlm_accuracy"):
        if key in metrics:
            return key
    return None


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
    history: list = field(default_factory=list)


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


def fit(objective: nn.Module, make_batch: Callable[[list[int], torch.Generator], dict], lengths: list[int],
        cfg: TrainConfig, batch_size: int, group_by_length: bool, work_dir: Path, ddp: Dist, device: str,
        evaluate: Callable[[nn.Module], dict] | None = None, metric: str = "auto", resume: bool = False,
        recipe: dict | None = None, desc: str = "train", initial_eval: dict | None = None) -> FitResult:
    """Train `objective.student` (and the objective's other trainable modules) and return what happened.

    Args:
        objective: module with `.student` and `forward(batch) -> (loss, {term: float})`.
        make_batch: indices of examples + a seeded generator -> the batch dict for `objective`.
        lengths: token length of every training example (for length grouping and epoch size).
        evaluate: student -> {metric: value}, called on rank 0 every `eval_every` steps and at the end.
        resume: continue from `<work_dir>/train_state.pt`.
        initial_eval: the untrained model's metrics, logged as the step-0 evaluation.
    """
    bf16 = use_bf16(cfg, device)
    objective.to(device)
    named = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
    if not named:
        raise PocketBertError("nothing to train: the objective has no trainable parameters")
    model = objective
    if ddp.active:
        model = nn.parallel.DistributedDataParallel(
            objective, device_ids=[ddp.local_rank] if device == "cuda" else None, find_unused_parameters=False)
    optimizer = adamw(named, cfg)
    per_epoch = len(epoch_batches(lengths, batch_size, cfg.seed, 0, group_by_length, 0, ddp.world_size))
    total_steps = cfg.max_steps or (math.ceil(cfg.epochs * per_epoch / cfg.grad_accum) if cfg.epochs > 0 else None)
    budget_s = cfg.max_minutes * 60.0

    step, epoch, micro_pos, elapsed, examples = 0, 0, 0, 0.0, 0
    best = {"metric": None, "value": None, "step": None}
    best_state = None
    if ddp.main:
        work_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = work_dir / METRICS_FILE
    if resume:
        state = torch.load(work_dir / STATE_FILE, map_location="cpu", weights_only=True)
        missing, unexpected = objective.load_state_dict(state["trainable"], strict=False)
        if unexpected:
            raise PocketBertError(f"--resume: the saved state does not fit this recipe's model ({unexpected[:3]})")
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, micro_pos = state["step"], state["epoch"], state["micro_pos"]
        elapsed, examples = state["elapsed"], state["examples"]
        best = state["best"]
        best_state = state.get("best_state")
        torch.set_rng_state(state["torch_rng"])
        if ddp.main and metrics_path.is_file():
            keep = [line for line in metrics_path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= step]
            metrics_path.write_text("".join(line + "\n" for line in keep))
    elif ddp.main and metrics_path.is_file():
        metrics_path.unlink()
    if ddp.main and initial_eval and not resume:
        with open(metrics_path, "a") as f:
            f.write(json.dumps({"kind": "eval", "step": 0, "time_s": 0.0, **initial_eval}) + "\n")

    def trainable_state() -> dict:
        return {k: v.detach().cpu().clone() for k, v in objective.state_dict().items()
                if k in {n for n, _ in named} or k.startswith("student.")}

    def save_state() -> None:
        if not ddp.main:
            return
        state = {
            "trainable": trainable_state(), "optimizer": optimizer.state_dict(),
            "step": step, "epoch": epoch, "micro_pos": micro_pos, "elapsed": elapsed, "examples": examples,
            "best": best, "best_state": best_state, "torch_rng": torch.get_rng_state(),
            "recipe": json.loads(json.dumps(recipe or {})),
        }
        tmp = work_dir / f".{STATE_FILE}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, work_dir / STATE_FILE)  # a kill during the write leaves the previous state intact

    def log(row: dict) -> None:
        if ddp.main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    last_eval: dict = {}
    evaluated_at = -1

    def run_eval() -> None:
        nonlocal best_state, last_eval, evaluated_at
        if evaluate is None:
            return
        evaluated_at = step
        if ddp.main:
            objective.student.eval()
            with torch.no_grad():
                m = evaluate(objective.student)
            objective.student.train()
            last_eval = m
            log({"kind": "eval", "step": step, "time_s": round(elapsed, 2), **m})
            key = pick_metric(m, metric)
            if key is not None and (best["value"] is None or m[key] > best["value"]):
                best.update(metric=key, value=m[key], step=step)
                if cfg.keep_best:
                    best_state = {k: v.detach().cpu().clone() for k, v in objective.student.state_dict().items()}
        if ddp.active:
            dist.barrier()

    def out_of_budget() -> bool:
        done = (total_steps is not None and step >= total_steps) or (budget_s > 0 and elapsed >= budget_s)
        if ddp.active:  # rank 0's clock decides for everyone
            flag = torch.tensor([1.0 if done else 0.0], device=device)
            dist.broadcast(flag, 0)
            done = bool(flag.item())
        return done

    show_bar = ddp.main and sys.stderr.isatty()
    bar = None
    if show_bar:
        import shutil

        from tqdm import tqdm

        # ncols from shutil: a pty that reports 0 columns falls back to 100 instead of an invisible bar
        bar = tqdm(total=total_steps, initial=step, desc=desc, ncols=shutil.get_terminal_size((100, 20)).columns,
                   bar_format=None if total_steps else "{desc}: {n} steps [{elapsed}, {rate_fmt}] {postfix}")
    objective.student.train()
    batches = epoch_batches(lengths, batch_size, cfg.seed, epoch, group_by_length, ddp.rank, ddp.world_size)
    loss_value, terms = float("nan"), {}
    interrupted = False
    t_start = time.perf_counter() - elapsed
    with _Interrupt() as stop:
        while not out_of_budget():
            factor = lr_factor(step, total_steps, elapsed, budget_s, cfg.warmup)
            for g in optimizer.param_groups:
                g["lr"] = cfg.lr * factor
            optimizer.zero_grad(set_to_none=True)
            acc_loss, acc_terms = 0.0, {}
            for micro in range(cfg.grad_accum):
                if micro_pos >= len(batches):
                    epoch, micro_pos = epoch + 1, 0
                    batches = epoch_batches(lengths, batch_size, cfg.seed, epoch, group_by_length, ddp.rank,
                                            ddp.world_size)
                idx = batches[micro_pos]
                micro_pos += 1
                gen = torch.Generator().manual_seed(_seed_for(cfg.seed, step, micro, ddp.rank))
                batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in make_batch(idx, gen).items()}
                sync = contextlib.nullcontext()
                if ddp.active and micro < cfg.grad_accum - 1:
                    sync = model.no_sync()
                with sync:
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                        loss, t = model(batch)
                    (loss / cfg.grad_accum).backward()
                acc_loss += float(loss.detach()) / cfg.grad_accum
                for k, v in t.items():
                    acc_terms[k] = acc_terms.get(k, 0.0) + v / cfg.grad_accum
                examples += len(idx) * ddp.world_size
            if not math.isfinite(acc_loss):
                raise PocketBertError(f"the loss became {acc_loss} at step {step + 1}; lower train.lr or check the data")
            if cfg.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_([p for _, p in named], cfg.clip_norm)
            optimizer.step()
            step += 1
            elapsed = time.perf_counter() - t_start
            loss_value, terms = acc_loss, acc_terms
            if step % cfg.log_every == 0 or step == 1:
                log({"kind": "train", "step": step, "epoch": epoch, "time_s": round(elapsed, 2),
                     "lr": cfg.lr * factor, "loss": loss_value, **{f"loss_{k}": v for k, v in terms.items()}})
                if ddp.main and not show_bar:
                    parts = " ".join(f"{k}={v:.4f}" for k, v in terms.items())
                    print(f"{desc} step {step}{'/' + str(total_steps) if total_steps else ''} "
                          f"{elapsed:.0f}s loss={loss_value:.4f} {parts}", file=sys.stderr, flush=True)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{loss_value:.3f}", **{k: f"{v:.3f}" for k, v in terms.items()}})
            if cfg.eval_every and step % cfg.eval_every == 0:
                run_eval()
                t_start = time.perf_counter() - elapsed  # evaluation time is not training time
            if cfg.save_every and step % cfg.save_every == 0:
                save_state()
            hit = stop.hit
            if ddp.active:
                flag = torch.tensor([1.0 if hit else 0.0], device=device)
                dist.all_reduce(flag)
                hit = flag.item() > 0
            if hit:
                interrupted = True
                break
    if bar is not None:
        bar.close()
    if interrupted:
        save_state()
        if ddp.main:
            print(f"{desc}: interrupted at step {step}; state saved in {work_dir}, continue with --resume",
                  file=sys.stderr, flush=True)
        raise KeyboardInterrupt
    if evaluated_at != step:
        run_eval()
    save_state()
    if ddp.active:
        dist.barrier()
        dist.destroy_process_group()  # rank 0 writes the checkpoint alone from here
    if ddp.main and metrics_path.is_file():
        try:
            write_curves(metrics_path, work_dir / CURVES_FILE)
        except Exception as e:  # noqa: BLE001 - a plot must never fail a finished run
            print(f"{desc}: could not draw curves ({e})", file=sys.stderr)
    return FitResult(steps=step, final_loss=loss_value, last_terms=terms, best_metric=best["metric"],
                     best_value=best["value"], best_step=best["step"], last_eval=last_eval, wall_s=elapsed,
                     examples_seen=examples, best_state=copy.copy(best_state) if cfg.keep_best else None)


def finish_outputs(work_dir: Path, out: Path) -> None:
    """Copy metrics.jsonl and curves.png beside the written checkpoint."""
    for name in (METRICS_FILE, CURVES_FILE):
        src = work_dir / name
        if src.is_file():
            tmp = out / f".{name}.tmp"
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, out / name)


def summary(result: FitResult) -> dict:
    return {"steps": result.steps, "final_loss": result.final_loss, "final_terms": result.last_terms,
            "best_metric": result.best_metric, "best_value": result.best_value, "best_step": result.best_step,
            "last_eval": result.last_eval, "train_wall_s": round(result.wall_s, 1),
            "examples_seen": result.examples_seen}


def start_run(cfg: TrainConfig, out: str, resume: bool, resume_dir: str | None) -> tuple[Path, Path, str]:
    """What every training stage does first, before any work: refuse an output folder that is not ours,
    find the work folder (and its saved state when resuming), pick the device, seed and size torch.

    Returns:
        (output folder, work folder, device).
    """
    from pocketbert.files import check_output_dir
    from pocketbert.pipeline.checkpoint import MARKER

    out_path = Path(out)
    check_output_dir(out_path, MARKER)
    work_dir = Path(resume_dir) if resume_dir else work_dir_for(cfg, out)
    if resume:
        check_resume(work_dir)
    device = pick_device(cfg)
    setup_torch(cfg)
    return out_path, work_dir, device


def setup_torch(cfg: TrainConfig) -> None:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)


# ---------------------------------------------------------------------------------------------
# Evaluation helpers shared by the stages (STS lives in pipeline/evaluate.py)


@torch.no_grad()
def mlm_accuracy(model: nn.Module, ids: list[list[int]], pad_id: int, special_ids: list[int], mask_id: int,
                 vocab_size: int, seed: int = 1234, batch_size: int = 64, probability: float = 0.15) -> float:
    """Share of masked tokens predicted exactly, on fixed masks (same seed every call), x100."""
    from pocketbert.pipeline.data import collate
    from pocketbert.pipeline.losses import IGNORE_INDEX, mask_tokens

    device = next(model.parameters()).device
    correct = total = 0
    for start in range(0, len(ids), batch_size):
        input_ids, mask = collate(ids[start:start + batch_size], pad_id)
        gen = torch.Generator().manual_seed(seed + start)
        masked, labels = mask_tokens(input_ids, mask, special_ids, mask_id, vocab_size, gen, probability)
        hidden = model(masked.to(device), mask.to(device)).last_hidden_state
        picked = labels.to(device) != IGNORE_INDEX
        pred = model.mlm_logits(hidden[picked]).argmax(-1)
        correct += int((pred == labels.to(device)[picked]).sum())
        total += int(picked.sum())
    return 100.0 * correct / max(total, 1)


@torch.no_grad()
def classification_accuracy(model: nn.Module, ids: list[list[int]], labels: list[int], pad_id: int,
                            batch_size: int = 64) -> float:
    """Accuracy x100 of argmax class logits."""
    from pocketbert.pipeline.data import collate

    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        input_ids, mask = collate([ids[i] for i in idx], pad_id)
        pred = model.classify(input_ids.to(device), mask.to(device)).argmax(-1).cpu()
        correct += int((pred == torch.tensor([labels[i] for i in idx])).sum())
    return 100.0 * correct / max(len(ids), 1)


def make_evaluator(eval_cfg, data_cfg, tokenizer, holdout_ids: list[list[int]]) -> Callable[[nn.Module], dict] | None:
    """The evaluation a recipe asks for, as one function student -> {metric: value}.

    Inputs are read here, before training, so a bad evaluation file fails the run at once.
    """
    from pocketbert.pipeline.data import read_texts, tokenize
    from pocketbert.pipeline.evaluate import evaluate_sts, read_sts

    sts = read_sts(eval_cfg.sts) if eval_cfg.sts else None
    cls_ids = cls_labels = None
    if eval_cfg.classification:
        if data_cfg.label_field is None:
            raise PocketBertError("eval.classification needs data.label_field (the label column)")
        recs = read_texts([eval_cfg.classification], data_cfg.text_field, data_cfg.label_field,
                          limit=eval_cfg.max_examples)
        cls_ids = tokenize(tokenizer, recs.texts, data_cfg.max_length)
        cls_labels = recs.labels
    held = holdout_ids[: eval_cfg.max_examples] if eval_cfg.mlm else []
    if eval_cfg.mlm and not held:
        raise PocketBertError("eval.mlm needs held-out text: set data.holdout (e.g. 0.05)")
    if sts is None and cls_ids is None and not held:
        return None
    specials = sorted(tokenizer.special_ids.values())

    def evaluate(model: nn.Module) -> dict:
        if next(model.parameters()).device.type != "cpu":
            model = copy.deepcopy(model).cpu()
        m = {}
        if sts is not None:
            m["sts"] = round(evaluate_sts(model, tokenizer, sts), 4)
        if cls_ids is not None and model.classifier is not None:
            m["accuracy"] = round(classification_accuracy(model, cls_ids, cls_labels, tokenizer.pad_id), 4)
        if held and model.cls is not None:
            m["mlm_accuracy"] = round(mlm_accuracy(model, held, tokenizer.pad_id, specials, tokenizer.mask_id,
                                                   model.config.vocab_size), 4)
        return m

    return evaluate


def verify_reload(model: nn.Module, out: Path, ids: list[list[int]], pad_id: int) -> None:
    """Every training stage ends here: the written checkpoint, loaded back, reproduces the trained model."""
    from pocketbert.pipeline.checkpoint import load_checkpoint
    from pocketbert.pipeline.data import collate

    reloaded = load_checkpoint(out).model
    sample_ids, sample_mask = collate(ids[:4], pad_id)
    with torch.no_grad():
        same = torch.allclose(model.task_forward(sample_ids, sample_mask),
                              reloaded.task_forward(sample_ids, sample_mask), atol=1e-4, rtol=1e-4)
    if not same:
        raise PocketBertError(f"{out}: the reloaded checkpoint does not reproduce the trained model")
