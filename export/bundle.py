"""The export stage: checkpoint -> one bundle folder (manifest, tokenizer, golden, verified artifacts).

Set up (validate every input before any work), run (export each format x quant x bucket),
verify (each artifact in its own runtime against eager PyTorch fp32, right after writing it),
write (atomically: a temporary folder renamed into place only when every artifact passed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pocketbert.bundle.manifest import MANIFEST, SCHEMA_VERSION, path_size, validate_manifest
from pocketbert.bundle.naming import FORMATS, QUANTS, artifact_name, backend_of, model_slug
from pocketbert.bundle.parity import case_inputs, compare, tolerance
from pocketbert.errors import PocketBertError
from pocketbert.files import atomic_output_dir, check_output_dir, path_sha256, provenance, write_json

from . import formats
from .golden import build_golden
from .quant import RECIPES, check_pair
from .wrapper import INPUT_NAMES, TaskModule, output_name

log = logging.getLogger("pocketbert.export")

DEFAULT_FORMATS = tuple(FORMATS)
DEFAULT_QUANTS = ("fp32", "int8")
DEFAULT_SEQ_LENS = (128,)


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
    command: str | None = None  # the `pocketbert ...` line recorded in the provenance (None: this process's)

    def __post_init__(self) -> None:
        if not self.formats:
            raise PocketBertError(f"--formats is empty; choose from {', '.join(FORMATS)}")
        if not self.quants:
            raise PocketBertError(f"--quant is empty; choose from {', '.join(QUANTS)}")
        for fmt in self.formats:
            for q in self.quants:
                check_pair(fmt, q)
        if not self.seq_lens or any(n < 2 for n in self.seq_lens):
            raise PocketBertError(f"--seq-len {self.seq_lens}: each length must be an integer >= 2")
        self.formats = list(dict.fromkeys(self.formats))
        self.quants = list(dict.fromkeys(self.quants))
        self.seq_lens = sorted(set(self.seq_lens))
        if self.task is not None and self.task not in ("embedding", "mlm", "classification"):
            raise PocketBertError(f"--task {self.task!r}: choose embedding, mlm or classification")


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


def _notes_for(fmt: str, quant: str) -> dict:
    notes = {"recipe": RECIPES[(fmt, quant)]}
    if fmt == "coreml":
        notes["compute_precision"] = (
            "fp16 is Core ML's default compute precision (GPU and Neural Engine always compute in fp16); "
            + ("this artifact was converted with compute_precision FLOAT32, used on CPU" if quant == "fp32"
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


def verify_artifact(fmt: str, path: Path, inputs: list, refs: list[np.ndarray], tol: dict,
                    seq_len: int, out_name: str, out_shape: list[int], quant: str) -> dict:
    """Run the artifact in its runtime on `inputs` and compare with `refs` (see bundle.parity.compare)."""
    outputs, skipped = formats.run_or_skip(fmt, path, inputs, seq_len, out_name, out_shape, quant)
    return skipped or compare(outputs, refs, tol)


def main(cfg: ExportConfig) -> dict:
    """Export `cfg.checkpoint` into the bundle `cfg.out`. Returns the manifest.

    Raises:
        PocketBertError: bad input (before anything is written) or an artifact that fails parity
            (then nothing is written either).
    """
    from pocketbert.pipeline.checkpoint import find_teacher, load_checkpoint, parent_record, read_config
    from pocketbert.pipeline.tokenizer import Tokenizer, build_wordpiece

    out = Path(cfg.out)
    check_output_dir(out, MANIFEST)
    ckpt = load_checkpoint(cfg.checkpoint)
    model = ckpt.model.eval()
    mcfg = model.config
    task = cfg.task or mcfg.task
    if task != mcfg.task:
        if task != "embedding":
            raise PocketBertError(
                f"--task {task}: the checkpoint is a {mcfg.task} checkpoint without a {task} head; "
                f"use --task {mcfg.task} or embedding"
            )
        model.config = dataclasses.replace(mcfg, task="embedding")
        mcfg = model.config
    too_long = [n for n in cfg.seq_lens if n > mcfg.max_position_embeddings]
    if too_long:
        raise PocketBertError(
            f"--seq-len {','.join(map(str, too_long))} exceeds the model's max_position_embeddings "
            f"({mcfg.max_position_embeddings}); pass lengths <= {mcfg.max_position_embeddings}"
        )
    tok = Tokenizer(ckpt.path)
    if len(tok.vocab) != mcfg.vocab_size:
        raise PocketBertError(f"{ckpt.path}: vocab.txt has {len(tok.vocab)} tokens but the model {mcfg.vocab_size}")
    name = model_slug(cfg.name or (ckpt.path.name if cfg.checkpoint != "minilm" else "all-minilm-l6-v2"))
    module = TaskModule(model).eval()
    out_name = output_name(task)
    log.info("export %s -> %s: formats=%s quants=%s seq_lens=%s task=%s", ckpt.path, out, cfg.formats,
             cfg.quants, cfg.seq_lens, task)

    with atomic_output_dir(out, MANIFEST) as tmp:
        shutil.copyfile(ckpt.path / "vocab.txt", tmp / "vocab.txt")
        if (ckpt.path / "tokenizer.json").is_file():
            shutil.copyfile(ckpt.path / "tokenizer.json", tmp / "tokenizer.json")
        else:
            o = tok.options
            build_wordpiece(tok.vocab, o["lowercase"], o["strip_accents"], o["tokenize_chinese_chars"]).save(
                str(tmp / "tokenizer.json"))
        golden = build_golden(module, tok, cfg.seq_lens, task)
        write_json(tmp / "golden.json", golden)

        outputs = _outputs_section(mcfg, task, cfg.seq_lens)
        artifacts = []
        for fmt in cfg.formats:
            mod = formats.module(fmt)
            with contextlib.redirect_stdout(sys.stderr):
                formats.warm_up(fmt)
            for seq_len in cfg.seq_lens:
                inputs, refs = _reference(module, golden, seq_len, tok.pad_id)
                example = (torch.from_numpy(inputs[0][0]), torch.from_numpy(inputs[0][1]))
                out_shape = [1, seq_len, mcfg.vocab_size] if task == "mlm" else list(outputs[0]["shape"])
                for quant in cfg.quants:
                    fname = artifact_name(name, fmt, quant, seq_len)
                    path = tmp / fname
                    t0 = time.perf_counter()
                    try:
                        with contextlib.redirect_stdout(sys.stderr):  # toolchains print; keep stdout for --json
                            notes = mod.export(module, example, path, quant, output_name=out_name)
                    except PocketBertError:
                        raise
                    except Exception as e:  # a toolchain failure: name the artifact, keep one line
                        msg = " ".join(str(e).split())[:300] or type(e).__name__
                        raise PocketBertError(f"exporting {fname} failed in {fmt}: {type(e).__name__}: {msg}") from e
                    seconds = time.perf_counter() - t0
                    tol = tolerance(quant)
                    parity = verify_artifact(fmt, path, inputs, refs, tol, seq_len, out_name, out_shape, quant)
                    log.info("%s: %.1fs, %s", fname, seconds, parity)
                    if parity["status"] == "failed":
                        raise PocketBertError(f"parity failed for {fname}: {parity.get('reason')}; nothing was written")
                    artifacts.append({
                        "file": fname, "format": fmt, "backend": backend_of(fmt), "quant": quant,
                        "seq_len": seq_len, "size_bytes": path_size(path), "sha256": path_sha256(path),
                        "export_seconds": round(seconds, 3), "tool_versions": formats.tool_versions(fmt),
                        "parity": parity, "notes": {**_notes_for(fmt, quant), **(notes or {})},
                    })

        manifest = {
            "schema_version": SCHEMA_VERSION,
            "model": {
                "name": name, "task": task, "config": mcfg.to_dict(),
                "num_parameters": sum(p.numel() for p in model.parameters()),
                "parent": parent_record(ckpt),
            },
            "inputs": [{"name": n, "dtype": "int32", "shape": {str(s): [1, s] for s in cfg.seq_lens}}
                       for n in INPUT_NAMES],
            "outputs": outputs,
            "seq_lens": cfg.seq_lens,
            "tokenizer": _tokenizer_section(tok, max(cfg.seq_lens)),
            "tolerances": {f"{f}/{q}": tolerance(q) for f in cfg.formats for q in cfg.quants},
            "golden": {"file": "golden.json", "sha256": path_sha256(tmp / "golden.json")},
            "artifacts": artifacts,
            "provenance": provenance(*sorted({d for f in cfg.formats for d in formats.TOOLS[f]}), command=cfg.command),
        }
        teacher = find_teacher(ckpt.path)
        if teacher is not None and (teacher / "model.safetensors").is_file():
            manifest["model"]["teacher"] = {"path": str(teacher.resolve()),
                                            "weights_sha256": path_sha256(teacher / "model.safetensors"),
                                            "config": read_config(teacher).to_dict()}
        if task == "classification":
            manifest["labels"] = [mcfg.id2label.get(i, f"LABEL_{i}") for i in range(mcfg.num_labels)]
        validate_manifest(manifest, "manifest being written")
        write_json(tmp / MANIFEST, manifest)
    return manifest
