"""The export stage: checkpoint -> one bundle folder (manifest, tokenizer, golden, verified artifacts).

Set up (validate every input before any work), run (export each format x quant x bucket),
verify (each artifact in its own runtime against eager PyTorch fp32, right after writing it),
gate (each format x quant family against the embedding geometry of fp32, gate.py; embedding bundles),
write (atomically: a temporary folder renamed into place only when every artifact passed).

`--quant auto` walks each format's ladder (quant.AUTO_LADDER, smallest first), exporting and gating
each rung, and keeps the first that passes; the manifest's `quant_auto` says what was tried and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketbert.bundle.manifest import MANIFEST, Artifact, Manifest, path_size
from pocketbert.bundle.naming import FORMATS, QUANTS, artifact_name, backend_of, model_slug
from pocketbert.bundle.parity import Tolerance, bucket_invariance, case_inputs, compare, tolerance
from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.files import atomic_output_dir, check_output_dir, path_sha256, provenance, write_json

from . import formats
from .evaluate import _encode
from .gate import (
    PROBE_TEXTS,
    TOP_K,
    GateConfig,
    Reference,
    build_reference,
    check_budget,
    gate_family,
    mixed_plan,
)
from .golden import build_golden
from .quant import CALIBRATED, INT4_GROUP, NEEDS_CORPUS, QuantRecipe, auto_ladder
from .wrapper import INPUT_NAMES, MIN_SEQ_LEN, TaskModule, output_name

log = logging.getLogger("pocketbert.export")

DEFAULT_FORMATS = tuple(FORMATS)
DEFAULT_QUANTS = ("fp32", "int8")
DEFAULT_SEQ_LENS = (128,)
AUTO = "auto"
CALIBRATION_TEXTS = 64  # corpus sentences the static rungs calibrate on (per bucket)


@dataclass
class ExportConfig:
    """What `pocketbert export` does. Validated at construction (bad values raise PocketBertError)."""

    checkpoint: str
    out: str
    formats: list[str] = field(default_factory=lambda: list(DEFAULT_FORMATS))
    quants: list[str] = field(default_factory=lambda: list(DEFAULT_QUANTS))
    seq_lens: list[int] = field(default_factory=lambda: list(DEFAULT_SEQ_LENS))
    task: str | None = None  # None: the checkpoint's task
    name: str | None = None  # model name in file names; None: the checkpoint folder's name
    corpus: list[str] | None = None  # sentences that calibrate and feed the gate (the CLI reads --corpus files)
    sts: str | None = None  # STS-B TSV for the gate's STS delta (required by --quant auto)
    gate: bool = True  # run the geometry gate (embedding bundles)
    gate_sample: int = 200  # corpus sentences for top-10 overlap and cosines
    max_sts_drop: float = GateConfig.max_sts_drop  # gate: STS points below fp32 that still pass
    max_mb: float | None = None  # int4-mixed: a size budget (keep at int8 the most that fits; gate.mixed_plan)
    # Formats whose runtime takes a dynamic length (ExecuTorch, ONNX Runtime: the exporters' DYNAMIC_LENGTH) export
    # each bucket's embedding / classification artifact with a dynamic length up to the bucket (`min_seq_len` in
    # the manifest), which apps feed unpadded; False: every artifact takes exactly its bucket.
    dynamic: bool = True
    command: str | None = None  # the `pocketbert ...` line recorded in the provenance (None: this process's)

    def __post_init__(self) -> None:
        if not self.formats:
            raise PocketBertError(f"--formats is empty; choose from {', '.join(FORMATS)}")
        if not self.quants:
            raise PocketBertError(f"--quant is empty; choose from {', '.join(QUANTS)} or {AUTO}")
        if AUTO in self.quants:
            if self.quants != [AUTO]:
                raise PocketBertError(f"--quant {','.join(self.quants)}: auto picks the rung itself; pass --quant auto alone")
            if not self.sts:
                raise PocketBertError("--quant auto measures the STS drop: pass --sts with an STS-B TSV "
                                      "(e.g. ../shared/data/stsb/dev.tsv)")
            if not self.gate:
                raise PocketBertError("--quant auto chooses by the gate; drop --no-gate")
            if not self.corpus:
                raise PocketBertError("--quant auto gates on corpus sentences: pass --corpus")
        # Each (format, rung) validated once, as the recipe its exporter receives (auto: each format's ladder). Not a
        # field: the build's stage key (dataclasses.asdict) holds what the user chose, not what follows from it.
        self._recipes = {(fmt, q): QuantRecipe.of(fmt, q) for fmt in self.formats
                         for q in (auto_ladder(fmt) if self.auto else self.quants)}
        needs_text = set(NEEDS_CORPUS) & set(self.quants + (["int8-static"] if self.auto else []))
        if needs_text and not self.corpus:
            raise PocketBertError(f"--quant {','.join(sorted(needs_text))} calibrates on corpus text: pass --corpus")
        for fmt in self.formats:
            if fmt not in FORMATS:
                raise PocketBertError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        if not math.isfinite(self.max_sts_drop) or self.max_sts_drop < 0:
            raise PocketBertError(f"--max-sts-drop {self.max_sts_drop}: give the STS points a rung may lose against "
                                  "fp32, a number >= 0 (0: no loss at all)")
        if self.max_mb is not None:
            if not math.isfinite(self.max_mb) or self.max_mb <= 0:
                raise PocketBertError(f"--max-mb {self.max_mb}: give a size budget in MB > 0")
            if "int4-mixed" not in self.quants and not self.auto:
                raise PocketBertError("--max-mb is the size budget of int4-mixed; add int4-mixed to --quant")
        if self.gate_sample <= 10:
            raise PocketBertError(f"--gate-sample {self.gate_sample}: give more than 10 sentences (top-10 needs them)")
        if self.sts:
            if not Path(self.sts).is_file():
                raise PocketBertError(f"--sts {self.sts}: no such file; pass an STS-B TSV such as ../shared/data/stsb/dev.tsv")
            from pocketbert.pipeline.evaluate import read_sts

            read_sts(self.sts)  # a malformed file fails here, not after the first artifacts
        if not self.seq_lens or any(n < 2 for n in self.seq_lens):
            raise PocketBertError(f"--seq-len {self.seq_lens}: each length must be an integer >= 2")
        self.formats = list(dict.fromkeys(self.formats))
        self.quants = list(dict.fromkeys(self.quants))
        self.seq_lens = sorted(set(self.seq_lens))
        if self.task is not None and self.task not in ("embedding", "mlm", "classification"):
            raise PocketBertError(f"--task {self.task!r}: choose embedding, mlm or classification")

    @property
    def auto(self) -> bool:
        return self.quants == [AUTO]

    def rungs(self, fmt: str) -> list[QuantRecipe]:
        """The recipes `fmt` exports, in order (auto: its ladder, smallest first)."""
        return [r for (f, _), r in self._recipes.items() if f == fmt]


def parse_csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in str(value).split(",") if v.strip()]
    if not items:
        raise PocketBertError(f"{what} is empty")
    return items


def parse_seq_lens(value: str) -> list[int]:
    out = []
    for v in parse_csv(value, "--seq-len"):
        try:
            out.append(int(v))
        except ValueError:
            raise PocketBertError(f"--seq-len {v!r} is not an integer; pass lengths like 32,128") from None
    return out


def _tokenizer_section(tok, max_length: int) -> dict:
    from pocketbert.pipeline.tokenizer import MAX_INPUT_CHARS_PER_WORD

    opts = tok.options
    return {
        "type": "wordpiece",
        "vocab_file": "vocab.txt",
        "tokenizer_file": "tokenizer.json",
        "lowercase": bool(opts["lowercase"]),
        "strip_accents": bool(opts["strip_accents"]),
        "tokenize_chinese_chars": bool(opts["tokenize_chinese_chars"]),
        "max_input_chars_per_word": MAX_INPUT_CHARS_PER_WORD,
        "unk_token": "[UNK]",
        "special_tokens": dict(tok.special_ids),
        "max_length": max_length,
    }


def _outputs_section(cfg, task: str, seq_lens: list[int]) -> list[dict]:
    if task == "embedding":
        return [{"name": "embedding", "dtype": "float32", "shape": [1, cfg.hidden_size],
                 "meaning": "sentence embedding", "pooling": cfg.pooling, "normalized": bool(cfg.normalize)}]
    if task == "classification":
        return [{"name": "logits", "dtype": "float32", "shape": [1, cfg.num_labels],
                 "meaning": "class logits (softmax for probabilities), order = labels"}]
    return [{"name": "logits", "dtype": "float32", "shape": {str(n): [1, n, cfg.vocab_size] for n in seq_lens},
             "meaning": "masked-LM logits per position over the vocabulary"}]


def _notes_for(recipe: QuantRecipe) -> dict:
    notes = {"recipe": recipe.description}
    if recipe.format == "coreml":
        notes["compute_precision"] = (
            "fp16 is Core ML's default compute precision (GPU and Neural Engine always compute in fp16); "
            + ("this artifact was converted with compute_precision FLOAT32, used on CPU" if recipe.name == "fp32"
               else "this artifact computes in fp16")
        )
    return notes


@torch.inference_mode()
def _reference(module: TaskModule, golden: dict, seq_len: int, pad_id: int) -> tuple[list, list[np.ndarray]]:
    """Golden cases that fit `seq_len`, padded to it, and eager fp32 outputs for exactly those inputs."""
    inputs, refs = [], []
    for case in golden["cases"]:
        if len(case["ids"]) > seq_len:
            continue
        ids, mask = case_inputs(case, seq_len, pad_id)
        inputs.append((ids, mask))
        refs.append(module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
    return inputs, refs


def verify_artifact(fmt: str, path: Path, inputs: list, refs: list[np.ndarray], tol: Tolerance,
                    seq_len: int, out_name: str, out_shape: list[int], quant: str,
                    outputs_out: list | None = None) -> dict:
    """Run the artifact in its runtime on `inputs` and compare with `refs` (see bundle.parity.compare).

    `outputs_out`, when given, receives the outputs (for the bucket-invariance check).
    """
    outputs, skipped = formats.run_or_skip(fmt, path, inputs, seq_len, out_name, out_shape, quant)
    if outputs and outputs_out is not None:
        outputs_out.extend(outputs)
    return skipped or compare(outputs, refs, tol)


def _corpus_sample(cfg: ExportConfig, need: bool) -> list[str]:
    """Distinct corpus sentences in a fixed shuffled order: the first CALIBRATION_TEXTS calibrate, the
    next `gate_sample` are the gate's retrieval sample. Empty when nothing needs them or none were given."""
    if not need or not cfg.corpus:
        return []
    texts = list(dict.fromkeys(cfg.corpus))
    random.Random(0).shuffle(texts)
    if len(texts) < CALIBRATION_TEXTS + 11:
        raise PocketBertError(f"the corpus has {len(texts)} distinct sentences; calibration and the gate need at "
                              f"least {CALIBRATION_TEXTS + 11}: pass more text with --corpus")
    return texts


def _calibration_inputs(tok, texts: list[str], seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each text as int32 (1, seq_len) input_ids / attention_mask, truncated keeping [SEP] last."""
    out = []
    for ids in tok.encode_ids(texts):
        if len(ids) > seq_len:
            ids = ids[: seq_len - 1] + [ids[-1]]
        out.append(case_inputs({"name": "calibration", "ids": ids}, seq_len, tok.pad_id))
    return out


def _probe_texts(texts: list[str], gate_sample: int) -> list[str]:
    """The int4-mixed probe's sentences: those after the gate's sample (so that the gate measures sentences
    the choice never saw), else, from a small corpus, the calibration sentences."""
    after = texts[CALIBRATION_TEXTS + gate_sample:][:PROBE_TEXTS]
    return after if len(after) > 2 * TOP_K else texts[:CALIBRATION_TEXTS]


def _export_one(recipe: QuantRecipe, seq_len: int, module: TaskModule, tmp: Path, name: str, out_name: str,
                ref: tuple[list, list, list[str]], out_shape: list[int], calibration: list | None, mixed: dict | None,
                strict: bool, dynamic: bool = False) -> tuple[Artifact, dict]:
    """Export and verify one artifact of `recipe` (int4-mixed: its parts from the plan `mixed`) into `tmp`: its
    manifest row and its outputs per golden case name (empty when the runtime cannot run here). Raises
    PocketBertError on a toolchain failure, and on a parity failure when `strict`.

    dynamic: the artifact takes any length up to `seq_len` (the format's DYNAMIC_LENGTH); its parity runs
    the golden cases unpadded, as apps feed it, against the eager outputs at the bucket."""
    fmt, quant = recipe.format, recipe.name
    mod = formats.module(fmt)
    inputs, refs, case_names = ref
    example = (torch.from_numpy(inputs[0][0]), torch.from_numpy(inputs[0][1]))
    if dynamic:  # each case at its own length: mask (1, N) holds its n real tokens first
        inputs = [(ids[:, :max(int(mask.sum()), MIN_SEQ_LEN)], mask[:, :max(int(mask.sum()), MIN_SEQ_LEN)])
                  for ids, mask in inputs]
    fname = artifact_name(name, fmt, quant, seq_len)
    path = tmp / fname
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # toolchains print; keep stdout for --json
            notes = mod.export(module, example, path, recipe, output_name=out_name,
                               calibration=calibration if recipe.calibrated else None, dynamic=dynamic)
    except PocketBertError:
        raise
    except Exception as e:  # a toolchain failure: name the artifact, keep one line
        msg = " ".join(str(e).split())[:300] or type(e).__name__
        raise PocketBertError(f"exporting {fname} failed in {fmt}: {type(e).__name__}: {msg}") from e
    seconds = time.perf_counter() - t0
    outs: list = []
    parity = verify_artifact(fmt, path, inputs, refs, tolerance(quant), seq_len, out_name, out_shape, quant, outs)
    cos = f" (min cosine {parity['min_cosine']:.5f})" if isinstance(parity.get("min_cosine"), float) else ""
    log.info("export: %s %s seq%d  %.1f MB  %.0f s  parity %s%s", fmt, quant, seq_len, path_size(path) / 1e6,
             seconds, parity["status"], cos)
    log.debug("%s: parity %s", fname, parity)
    if parity["status"] == "failed" and strict:
        raise PocketBertError(f"parity failed for {fname}: {parity.get('reason')}; nothing was written")
    notes = {**_notes_for(recipe), **(notes or {})}
    if recipe.calibrated:
        notes["calibration"] = {"texts": len(calibration), "seq_len": seq_len}
    if recipe.name == "int4-mixed":
        notes["sensitivity"] = mixed
    return Artifact(file=fname, format=fmt, backend=backend_of(fmt), quant=quant, seq_len=seq_len,
                    min_seq_len=MIN_SEQ_LEN if dynamic else None, size_bytes=path_size(path),
                    sha256=path_sha256(path), export_seconds=round(seconds, 3),
                    tool_versions=formats.tool_versions(fmt), parity=parity, notes=notes), dict(zip(case_names, outs))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _gate_short(g: dict) -> str:
    """The gate in a few words for the terminal (`_gate_line` has every number, in the log)."""
    if g["status"] == "skipped":
        return f"skipped ({g['reason'].split(' (')[0].split(';')[0]})"
    sts = f"STS {g['sts']['delta']:+.2f}, " if "sts" in g else ""
    return f"{g['status']} ({sts}top-10 {g['top10_overlap']:.3f})"


def _gate_line(g: dict) -> str:
    if g["status"] == "skipped":
        return f"skipped ({g['reason']})"
    sts = f"STS {g['sts']['delta']:+.2f}, " if "sts" in g else ""
    return (f"{g['status']}: {sts}top-10 {g['top10_overlap']:.3f}, cosine mean {g['mean_cosine']:.4f} "
            f"min {g['min_cosine']:.4f}, buckets {g['bucket_invariance']['min_cosine_across_buckets']:.5f}, "
            f"threads {g['thread_invariance']['min_cosine']:.6f}" + (f" ({'; '.join(g['reasons'])})" if "reasons" in g else ""))


def _tried_row(quant: str, family: list[Artifact], failed: list[Artifact]) -> dict:
    """One rung as `quant_auto` records it."""
    g = family[0].gate or {"status": "skipped"}
    row = {"quant": quant, "size_bytes": sum(a.size_bytes for a in family), "gate": g["status"],
           "sts_drop": -g["sts"]["delta"] if "sts" in g else None, "top10_overlap": g.get("top10_overlap"),
           "passed": not failed and g["status"] == "passed"}
    reasons = [f"parity failed at seq {a.seq_len}: {a.parity.get('reason')}" for a in failed] + g.get("reasons", [])
    if reasons:
        row["reasons"] = reasons
    return row


def _auto_reason(quant: str, row: dict, tried: list[dict], budget: float) -> str:
    passed = f"STS drop {row['sts_drop']:.2f} <= {budget:g}, top-10 overlap {row['top10_overlap']:.3f}"
    before = "; ".join(f"{r['quant']} failed ({', '.join(r['reasons'])})" for r in tried[:-1])
    return f"{quant}: the smallest rung that passes the gate ({passed})" + (f"; smaller rungs: {before}" if before else "")


def _no_rung_line(fmt: str, budget: float, tried: list[dict]) -> str:
    """One line: no rung passed; the best one (fewest failed checks, then smallest STS drop)."""
    measured = [r for r in tried if r["sts_drop"] is not None] or tried
    best = min(measured, key=lambda r: (len(r.get("reasons", [])), r["sts_drop"] if r["sts_drop"] is not None else 1e9))
    what = ", ".join(filter(None, [f"STS drop {best['sts_drop']:.2f}" if best["sts_drop"] is not None else None,
                                   f"top-10 overlap {best['top10_overlap']:.3f}" if best["top10_overlap"] is not None else None]))
    return (f"--quant auto: no {fmt} rung passes the gate with --max-sts-drop {budget:g}; best {best['quant']} "
            f"({what}; {'; '.join(best.get('reasons', []))}); raise --max-sts-drop or choose --quant yourself")


def _record_invariance(artifacts: list[Artifact], fmt: str, ran: dict[str, dict[int, dict]], golden: dict,
                       task: str) -> None:
    """Bucket invariance of one format's artifacts, recorded as `invariance` on each (BUNDLE.md).

    Raises:
        PocketBertError: one text's outputs at two buckets disagree beyond the quantization's
            `min_invariance_cosine`.
    """
    n_tokens = {c["name"]: len(c["ids"]) for c in golden["cases"]}
    for quant, by_len in ran.items():
        need = tolerance(quant).min_invariance_cosine
        for seq_len, inv in bucket_invariance(by_len, n_tokens, need, per_position=task == "mlm").items():
            a = next(a for a in artifacts if (a.format, a.quant, a.seq_len) == (fmt, quant, seq_len))
            a.invariance = inv
            log.debug("%s: bucket invariance %s", a.file, inv)
            if inv["status"] != "skipped":
                cos = inv["min_cosine"]
                log.info("export: %s %s seq%d  bucket invariance %s (min cosine %s)", a.format, a.quant, a.seq_len,
                         inv["status"], f"{cos:.6f}" if isinstance(cos, float) else cos)
            if inv["status"] == "failed":
                raise PocketBertError(f"{a.file}: {inv['reason']}; nothing was written")


@dataclass
class _Job:
    """One export whose inputs passed every check (`_set_up`): what each step after it reads."""

    cfg: ExportConfig
    ckpt: Any  # the loaded checkpoint (pipeline.names.load): its folder, model and type
    model: torch.nn.Module  # its model, in eval mode, its config's task set to `task`
    module: TaskModule  # the model with its task's head and pooling: what every artifact computes
    tok: Any  # the checkpoint's Tokenizer
    task: str  # embedding, mlm or classification
    name: str  # the model's name in artifact file names
    out_name: str  # the artifacts' output name (`embedding` or `logits`)
    rungs: dict[str, list[QuantRecipe]]  # format -> the recipes it exports, in order (auto: its ladder)
    texts: list[str]  # the corpus sample (`_corpus_sample`): calibration first, then the gate's sentences
    gating: bool  # the geometry gate runs (an embedding bundle and --gate)


@dataclass
class _Checks:
    """What every artifact is exported with and checked against, made once inside the bundle folder."""

    golden: dict  # golden.json: the fixed cases and their eager fp32 outputs
    outputs: list[dict]  # the manifest's `outputs` section
    refs: dict[int, tuple[list, list, list[str]]]  # bucket -> (inputs, eager fp32 outputs, case names) of the cases
    out_shapes: dict[int, list[int]]  # bucket -> output shape ((1, H), (1, labels) or (1, N, V))
    calibration: dict[int, list]  # bucket -> int8-static calibration inputs ({} without a corpus)
    reference: Reference | None  # the gate's eager fp32 outputs (None: no gate)
    gate_cfg: GateConfig
    mixed: dict | None  # int4-mixed's plan (gate.mixed_plan), the manifest's `notes.sensitivity`


def _task_of(cfg: ExportConfig, model: torch.nn.Module) -> str:
    """The task to export (`cfg.task`, else the checkpoint's); an embedding export of a checkpoint with another
    head sets the model's config to `embedding`. Raises PocketBertError for a head the checkpoint lacks."""
    mcfg = model.config
    task = cfg.task or mcfg.task
    if task != mcfg.task:
        if task != "embedding":
            raise PocketBertError(
                f"--task {task}: the checkpoint is a {mcfg.task} checkpoint without a {task} head; "
                f"use --task {mcfg.task} or embedding"
            )
        model.config = dataclasses.replace(mcfg, task="embedding")
    return task


def _set_up(cfg: ExportConfig) -> _Job:
    """Load the checkpoint and check every input against it, before any work (PocketBertError otherwise)."""
    from pocketbert.pipeline.names import load
    from pocketbert.pipeline.tokenizer import Tokenizer

    check_output_dir(Path(cfg.out), MANIFEST)
    ckpt = load(cfg.checkpoint)
    model = ckpt.model.eval()
    task = _task_of(cfg, model)
    mcfg = model.config
    too_long = [n for n in cfg.seq_lens if n > mcfg.max_position_embeddings]
    if too_long:
        raise PocketBertError(
            f"--seq-len {','.join(map(str, too_long))} exceeds the model's max_position_embeddings "
            f"({mcfg.max_position_embeddings}); pass lengths <= {mcfg.max_position_embeddings}"
        )
    static = ckpt.model_type == "static"
    if static and "int4-mixed" in cfg.quants:
        raise PocketBertError("--quant int4-mixed keeps sensitive transformer layers at int8; a static model is one "
                              "table: use int8 or int4")
    tok = Tokenizer(ckpt.path)
    if len(tok.vocab) != mcfg.vocab_size:
        raise PocketBertError(f"{ckpt.path}: vocab.txt has {len(tok.vocab)} tokens but the model {mcfg.vocab_size}")
    if cfg.auto and task != "embedding":
        raise PocketBertError(f"--quant auto chooses by the geometry gate, which measures embeddings; a {task} "
                              "export needs its rungs named, e.g. --quant fp32,int8")
    name = model_slug(cfg.name or (ckpt.path.name if cfg.checkpoint != "minilm" else "all-minilm-l6-v2"))
    module = TaskModule(model).eval()
    # a static model has no layers for int4-mixed to keep at int8 (auto's ladder skips the rung)
    rungs = {fmt: [r for r in cfg.rungs(fmt) if not (static and r.name == "int4-mixed")] for fmt in cfg.formats}
    names = {r.name for recipes in rungs.values() for r in recipes}
    if cfg.max_mb is not None and "int4-mixed" in names:
        check_budget(module, INT4_GROUP, int(cfg.max_mb * 1e6))
    gating = cfg.gate and task == "embedding"
    texts = _corpus_sample(cfg, need=gating or bool(names & {*CALIBRATED, "int4-mixed"}))
    return _Job(cfg, ckpt, model, module, tok, task, name, output_name(task), rungs, texts, gating)


def _write_tokenizer(job: _Job, tmp: Path) -> None:
    """vocab.txt and tokenizer.json into the bundle (a checkpoint without tokenizer.json gets one built from its
    vocabulary and options)."""
    from pocketbert.pipeline.tokenizer import build_wordpiece

    shutil.copyfile(job.ckpt.path / "vocab.txt", tmp / "vocab.txt")
    if (job.ckpt.path / "tokenizer.json").is_file():
        shutil.copyfile(job.ckpt.path / "tokenizer.json", tmp / "tokenizer.json")
    else:
        o = job.tok.options
        build_wordpiece(job.tok.vocab, o["lowercase"], o["strip_accents"], o["tokenize_chinese_chars"]).save(
            str(tmp / "tokenizer.json"))


def _prepare_checks(job: _Job, tmp: Path) -> _Checks:
    """golden.json (written into `tmp`), each bucket's eager references and calibration inputs, the gate's
    reference and int4-mixed's plan: the first work of an export, after every input check."""
    cfg, module, texts, seq_lens = job.cfg, job.module, job.texts, job.cfg.seq_lens
    golden = build_golden(module, job.tok, seq_lens, job.task)
    write_json(tmp / "golden.json", golden)
    mcfg = job.model.config
    outputs = _outputs_section(mcfg, job.task, seq_lens)
    refs = {n: (*_reference(module, golden, n, job.tok.pad_id), [c["name"] for c in golden["cases"] if len(c["ids"]) <= n])
            for n in seq_lens}
    out_shapes = {n: [1, n, mcfg.vocab_size] if job.task == "mlm" else list(outputs[0]["shape"]) for n in seq_lens}
    calibration = {n: _calibration_inputs(job.tok, texts[:CALIBRATION_TEXTS], n) for n in seq_lens} if texts else {}
    if job.gating and not texts:
        log.info("gate skipped: no corpus sentences given (--corpus)")
    reference = (build_reference(module, job.tok, texts[CALIBRATION_TEXTS:CALIBRATION_TEXTS + cfg.gate_sample],
                                 seq_lens, cfg.sts) if job.gating and texts else None)
    gate_cfg = GateConfig(max_sts_drop=cfg.max_sts_drop)
    mixed = None
    if any(r.name == "int4-mixed" for recipes in job.rungs.values() for r in recipes):
        probe = _encode(job.tok, _probe_texts(texts, cfg.gate_sample), seq_lens)
        mixed = mixed_plan(module, probe, INT4_GROUP, gate_cfg.min_top10_overlap,
                           None if cfg.max_mb is None else int(cfg.max_mb * 1e6))
    return _Checks(golden, outputs, refs, out_shapes, calibration, reference, gate_cfg, mixed)


def _export_family(job: _Job, checks: _Checks, tmp: Path, recipe: QuantRecipe, dynamic: bool) -> list[Artifact]:
    """Export and verify `recipe` at every bucket, then check that the buckets agree (`_record_invariance`).
    Raises PocketBertError as `_export_one` does (strict unless auto), and for buckets that disagree."""
    done = [_export_one(recipe, n, job.module, tmp, job.name, job.out_name, checks.refs[n], checks.out_shapes[n],
                        checks.calibration.get(n), checks.mixed, strict=not job.cfg.auto, dynamic=dynamic)
            for n in job.cfg.seq_lens]
    family = [row for row, _ in done]
    ran = {row.seq_len: outs for row, outs in done if outs}  # seq_len -> {case: output}
    _record_invariance(family, recipe.format, {recipe.name: ran} if ran else {}, checks.golden, job.task)
    return family


def _gate(fmt: str, quant: str, family: list[Artifact], checks: _Checks, tmp: Path) -> None:
    """Run the geometry gate on one family and record it on each of its artifacts."""
    result = gate_family(fmt, {a.seq_len: tmp / a.file for a in family}, checks.reference, checks.gate_cfg)
    log.info("export: %s %s gate %s", fmt, quant, _gate_short(result))
    log.debug("%s/%s gate: %s", fmt, quant, _gate_line(result))
    for a in family:
        a.gate = result


def _export_format(job: _Job, checks: _Checks, tmp: Path, fmt: str) -> tuple[list[Artifact], dict | None]:
    """One format's artifacts: every rung, or with auto the rungs up to the first that passes the gate (rejected
    ones leave nothing behind). Returns them and, with auto, the format's `quant_auto` entry.

    Raises:
        PocketBertError: a rung that fails (not auto), or no rung that passes (auto).
    """
    cfg = job.cfg
    with contextlib.redirect_stdout(sys.stderr):
        formats.warm_up(fmt)
    mod = formats.module(fmt)
    unavailable = mod.unavailable_reason()
    if cfg.auto and unavailable:
        log.info("%s: --quant auto skipped: %s", fmt, unavailable)
        return [], {"chosen": None, "reason": f"not chosen: the gate runs the model and {unavailable}", "tried": []}
    # MLM logits are per position ((1, N, V): their shape follows the length), so MLM stays static
    dynamic = cfg.dynamic and job.task != "mlm" and mod.DYNAMIC_LENGTH
    artifacts, tried = [], []
    for recipe in job.rungs[fmt]:
        if recipe.name == "int4-mixed":
            recipe = recipe.keeping(checks.mixed["kept_int8"])
        try:
            family = _export_family(job, checks, tmp, recipe, dynamic)
        except PocketBertError as e:
            if not cfg.auto:
                raise
            for n in cfg.seq_lens:
                _remove(tmp / artifact_name(job.name, fmt, recipe.name, n))
            tried.append({"quant": recipe.name, "size_bytes": None, "gate": "not run", "sts_drop": None,
                          "top10_overlap": None, "passed": False, "reasons": [str(e)]})
            continue
        failed = [a for a in family if a.parity["status"] == "failed"]
        if checks.reference is not None and not failed:
            _gate(fmt, recipe.name, family, checks, tmp)
        if not cfg.auto:
            artifacts += family
            continue
        row = _tried_row(recipe.name, family, failed)
        tried.append(row)
        if row["passed"]:
            return family, {"chosen": recipe.name, "tried": tried,
                            "reason": _auto_reason(recipe.name, row, tried, cfg.max_sts_drop)}
        for a in family:  # a rejected rung leaves nothing behind
            _remove(tmp / a.file)
    if cfg.auto:
        raise PocketBertError(_no_rung_line(fmt, cfg.max_sts_drop, tried))
    return artifacts, None


def _manifest(job: _Job, checks: _Checks, tmp: Path, artifacts: list[Artifact], auto: dict) -> Manifest:
    """The bundle's manifest: the model and where it came from, inputs and outputs, tokenizer, golden, the
    artifacts with their tolerances, and with auto what each format chose and why."""
    from pocketbert.pipeline.checkpoint import find_teacher, parent_record, read_config

    cfg, mcfg = job.cfg, job.model.config
    model_section = {"name": job.name, "task": job.task, "config": mcfg.to_dict(),
                     "num_parameters": sum(p.numel() for p in job.model.parameters()), "parent": parent_record(job.ckpt)}
    teacher = find_teacher(job.ckpt.path)
    if teacher is not None and (teacher / "model.safetensors").is_file():
        model_section["teacher"] = {"path": str(teacher.resolve()),
                                    "weights_sha256": path_sha256(teacher / "model.safetensors"),
                                    "config": read_config(teacher).to_dict()}
    return Manifest(
        model=model_section,
        inputs=[{"name": n, "dtype": "int32", "shape": {str(s): [1, s] for s in cfg.seq_lens}} for n in INPUT_NAMES],
        outputs=checks.outputs, seq_lens=cfg.seq_lens, tokenizer=_tokenizer_section(job.tok, max(cfg.seq_lens)),
        golden={"file": "golden.json", "sha256": path_sha256(tmp / "golden.json")}, artifacts=artifacts,
        provenance=provenance(*sorted({d for f in cfg.formats for d in formats.TOOLS[f]}), command=cfg.command),
        tolerances={a.key: tolerance(a.quant) for a in artifacts},
        labels=([mcfg.id2label.get(i, f"LABEL_{i}") for i in range(mcfg.num_labels)]
                if job.task == "classification" else None),
        quant_auto={"max_sts_drop": cfg.max_sts_drop, "sts": cfg.sts, "formats": auto} if cfg.auto else None)


def _header(cfg: ExportConfig) -> str:
    """The export in one short line for the terminal (`main` logs the full configuration at DEBUG)."""
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    quants = "quant auto" if cfg.auto else count(len(cfg.quants), "quant")
    return (f"export: {count(len(cfg.formats), 'format')} x {quants} x {count(len(cfg.seq_lens), 'length')} "
            f"-> {Path(cfg.out).name}")


def main(cfg: ExportConfig) -> Manifest:
    """Export `cfg.checkpoint` into the bundle `cfg.out`: set up (every check), then in a temporary folder the
    tokenizer, golden cases and references, each format's artifacts, and the manifest; the folder becomes
    `cfg.out` only when all of it succeeded. Returns the manifest it wrote.

    Raises:
        PocketBertError: bad input (before anything is written) or an artifact that fails parity
            (then nothing is written either).
    """
    job = _set_up(cfg)
    say(_header(cfg))
    log.debug("export %s -> %s: formats=%s quants=%s seq_lens=%s task=%s", job.ckpt.path, cfg.out, cfg.formats,
              cfg.quants, cfg.seq_lens, job.task)
    with atomic_output_dir(Path(cfg.out), MANIFEST) as tmp:
        _write_tokenizer(job, tmp)
        checks = _prepare_checks(job, tmp)
        artifacts, auto = [], {}
        for fmt in cfg.formats:
            family, choice = _export_format(job, checks, tmp, fmt)
            artifacts += family
            if choice is not None:
                auto[fmt] = choice
        manifest = _manifest(job, checks, tmp, artifacts, auto)
        manifest.write(tmp)
    return manifest
