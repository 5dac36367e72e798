"""Teacher sentence embeddings: one interface over every teacher kind, passes that scale, and a disk cache.

The interface. `load_sentence_teacher(name_or_path, backend, tokenizer, device)` gives a `SentenceTeacher`
for `mpnet` (all-mpnet-base-v2, `pipeline/mpnet.py`), an MPNet folder, or anything `load_checkpoint` opens
(`minilm`, `paraphrase-minilm-l3`, BERT / DistilBERT / ALBERT folders, .onnx encoders with a tokenizer,
static models); `as_teacher(LoadedCheckpoint)` wraps a loaded checkpoint. Each teacher brings its own
tokenizer, pooling and normalisation, a token limit (sentence-transformers' max_seq_length when the folder
states one, else what its positions hold), and `encode(texts, max_length) -> (n, dim) float32`.

Backends (`BACKENDS`):
  fp32       PyTorch fp32 on the teacher's device (the CPU, or the rank's GPU).
  bf16       PyTorch autocast bf16, on a GPU with bf16 or a CPU with AVX512-BF16/AMX (refused on AVX2 CPUs).
  onnx-fp32  ONNX Runtime on the CPU: the pooled embedding exported once (torch.onnx, dynamic batch and
             length) to `<cache>/teacher_pass_onnx/<kind>-<weights sha256[:16]>-<pooling>[-norm]/fp32.onnx`.
  onnx-int8  the same graph with int8 weights (`quantize_dynamic`) on the MatMuls of `INT8_ROLES`,
             `int8-<roles>.onnx` beside it.
A backend other than fp32 is used only with its agreement to fp32 measured on the corpus it encodes: the
per-sentence cosine on a seeded sample (`AGREEMENT_SAMPLE` sentences, seed `AGREEMENT_SEED`) must be at
least `MIN_AGREEMENT` for every sentence; the sample size, minimum and mean go into the cache info, and a
lower minimum is a one-line error naming the backend and the minimum.

The pass. Texts are tokenized by the teacher and sorted by token length (stable). Chunk c of the K =
ceil(N / chunk_size) chunks takes every K-th text of that order from position c, so every chunk spans the
whole length range and costs the same (ranks share them evenly, the ETA holds), and is itself in length
order; each chunk is cut into batches of at most `max_tokens` padded tokens (rows x longest row) and
`batch_size` rows, each padded to its own longest row (dynamic padding). A progress bar (a terminal) or a
line every `LOG_EVERY_S` seconds (a log) shows sentences, rate and ETA.

The cache, `<cache>/teacher_emb/`:
  <key>.npy     (N, D) float32 embeddings, rows in corpus order: what callers get.
  <key>.json    what the key was made of, the pass (chunks, sentences/s, ranks) and the agreement.
  <key>.parts/  only while a pass is unfinished: chunk-<i>.npy, the rows of chunk i in its order, each
                written whole (temporary file + rename), and agreement.json; a pass killed at any point
                (SIGKILL included) resumes from the chunks it finished. Removed once <key>.npy is written.
key = sha256 of the corpus content and order, the teacher's kind, weights sha256 and tokenizer sha256,
its pooling and normalisation, the effective max_length and the backend (with its int8 roles). A file
whose shape does not fit its key is recomputed. The device is not in the key: fp32 on a GPU computes the
same function as on the CPU.

Ranks. Inside a torch.distributed process group of more than one rank (torchrun; gloo on the CPU, nccl on
GPUs), whether the caller made it or `encode_corpus` did: the ranks agree on the key, share out the
chunks that no rank has on disk (round robin), each computes and writes its own, and one
all_reduce sums the (N, D) rows each rank holds (every row comes from exactly one rank, the others add
zeros, so the sum is exact). Rank 0 writes `<key>.npy`; every rank returns the full result.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pocketbert import console
from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256, write_json
from pocketbert.pipeline import mpnet, names
from pocketbert.pipeline.data import cache_dir, read_texts
from pocketbert.pipeline.distributed import clock, init_distributed
from pocketbert.pipeline.evaluate import cosine_rows
from pocketbert.pipeline.mpnet import max_seq_length
from pocketbert.pipeline.tokenizer import Tokenizer

FORMAT = 2
BACKENDS = ("fp32", "bf16", "onnx-fp32", "onnx-int8")
MIN_AGREEMENT = 0.99  # per-sentence cosine to fp32, every sentence of the sample
AGREEMENT_SAMPLE = 256
AGREEMENT_SEED = 0
CHUNK_SIZE = 512  # sentences per resumable chunk: 2 chunks for 1,000 texts, 134 for 68,000
# Padded tokens and rows per batch. On a CPU a forward of 64 rows already runs at full speed, and smaller
# batches span narrower length ranges: 1,000 STS-B + SST-2 texts (11,199 tokens) pad to 13,232 tokens at
# 4096/64 against 22,320 at 16384/256. A GPU wants more (--max-tokens 65536 --batch-size 512, say).
MAX_TOKENS = 4096
BATCH_SIZE = 64
LOG_EVERY_S = 30.0
ONNX_OPSET = 18
# The MatMuls that get int8 weights (per tensor; activations quantized per tensor at run time): the attention
# projections only. Measured per-sentence cosine to fp32 on the seeded 256-sentence sample of 4,000 STS-B +
# SST-2 train texts (min / mean), ONNX Runtime 1.32 on an AVX2 CPU (no VNNI):
#                             attention   attention+FFN-in   all MatMuls   all, per-channel
#   all-MiniLM-L6-v2          0.994/0.998    -                0.881/0.961   0.968/0.991
#   paraphrase-MiniLM-L3-v2   0.997/0.999    -                -             0.962/0.990
#   all-mpnet-base-v2         0.983/0.997    0.901/0.959 (rr)  0.324/0.513 (rr)  garbage (-0.11/0.05)
# The feed-forward activations carry outlier channels that one per-tensor scale cannot hold; per-channel
# weights are worse for MPNet (ONNX Runtime's dynamic per-channel MatMul), and 7-bit weights (reduce_range,
# "rr") do not rescue them. So int8 is the attention projections, and the agreement gate refuses it for
# mpnet on this corpus (0.983 < 0.99): mpnet's fast path on a CPU is onnx-fp32.
INT8_ROLES = ("attention",)


def corpus_sha256(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def files_sha256(folder: Path, names: tuple[str, ...]) -> str:
    """sha256 over (name, file sha256) of those of `names` that exist in `folder`."""
    h = hashlib.sha256()
    for name in names:
        if (folder / name).is_file():
            h.update(f"{name}\0{path_sha256(folder / name)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The teacher interface


class _EncoderEmbed(nn.Module):
    """An Encoder's (or StaticEncoder's) pooled embedding as forward(input_ids, attention_mask) -> (B, D)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.embed(input_ids, attention_mask)


@dataclass
class SentenceTeacher:
    """A sentence-embedding teacher behind one backend.

    `module` maps (input_ids, attention_mask), int64 (B, T), to the pooled (B, dim) embedding, normalised
    when `normalize`; `tokenize` maps texts to their untruncated ids, special tokens included.
    """

    name: str  # as the user gave it: `mpnet`, `minilm`, a path
    kind: str  # mpnet | bert | distilbert | albert | static
    path: Path  # the folder holding weights and tokenizer
    module: nn.Module
    tokenize: Callable[[list[str]], list[list[int]]]
    pad_id: int
    dim: int
    max_length: int  # the teacher's own token limit
    pooling: str
    normalize: bool
    weights_sha256: str
    tokenizer_sha256: str
    backend: str = "fp32"
    device: str = "cpu"
    _session: object = field(default=None, repr=False, compare=False)  # ONNX Runtime, once prepared

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    def with_backend(self, backend: str) -> SentenceTeacher:
        """The same teacher (module shared) behind another backend."""
        return dataclasses.replace(self, backend=backend, _session=None)

    def limit(self, max_length: int | None) -> int:
        """Tokens kept per text: `max_length`, at most the teacher's own limit."""
        return self.max_length if max_length is None else max(2, min(int(max_length), self.max_length))

    def cache_parts(self, max_length: int | None) -> dict:
        """What the teacher contributes to a cache key."""
        parts = {"teacher": self.kind, "teacher_weights_sha256": self.weights_sha256,
                 "tokenizer_sha256": self.tokenizer_sha256, "pooling": self.pooling, "normalize": self.normalize,
                 "max_length": self.limit(max_length), "backend": self.backend}
        if self.backend == "onnx-int8":
            parts["int8_roles"] = list(INT8_ROLES)
        return parts

    def token_ids(self, texts: list[str], max_length: int | None = None) -> list[list[int]]:
        """Ids per text, truncated to `limit(max_length)` keeping the final special token (as HF truncation)."""
        limit = self.limit(max_length)
        return [ids if len(ids) <= limit else ids[: limit - 1] + [ids[-1]] for ids in self.tokenize(list(texts))]

    def token_lengths(self, texts: list[str], max_length: int | None = None) -> np.ndarray:
        return np.array([len(r) for r in self.token_ids(texts, max_length)], dtype=np.int64)

    def prepare(self, root: Path | None = None) -> SentenceTeacher:
        """Make the backend ready (export and quantize the ONNX graph once, open the session); returns self."""
        if self.backend == "bf16":
            check_bf16(self.device)
        elif self.backend.startswith("onnx") and self._session is None:
            if not str(self.device).startswith("cpu"):
                raise PocketBertError(f"backend {self.backend} runs ONNX Runtime on the CPU; on a GPU use "
                                      "--backend fp32 or bf16")
            import onnxruntime as ort

            path = export_onnx(self, Path(root or cache_dir()), self.backend.split("-", 1)[1])
            so = ort.SessionOptions()
            so.intra_op_num_threads = torch.get_num_threads()
            so.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return self

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """One padded batch, int64 (B, T) -> (B, dim) float32, through the backend."""
        if self.backend.startswith("onnx"):
            self.prepare()
            out = self._session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
            return np.asarray(out, dtype=np.float32)
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with torch.inference_mode():
            if self.backend == "bf16":
                check_bf16(self.device)
                with torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16):
                    out = self.module(ids, mask)
            else:
                out = self.module(ids, mask)
        return out.float().cpu().numpy()

    def encode_rows(self, rows: list[list[int]]) -> np.ndarray:
        """Token id rows (already truncated) padded to their longest -> (len(rows), dim) float32."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return self.run(ids, mask)

    def encode(self, texts: list[str], max_length: int | None = None, max_tokens: int = MAX_TOKENS,
               batch_size: int = BATCH_SIZE) -> np.ndarray:
        """(len(texts), dim) float32 embeddings in input order: length-sorted batches, dynamic padding."""
        rows = self.token_ids(texts, max_length)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        for start, end in plan_batches(lengths[order], max_tokens, batch_size):
            idx = order[start:end]
            out[idx] = self.encode_rows([rows[i] for i in idx])
        return out


def plan_batches(sorted_lengths: np.ndarray, max_tokens: int = MAX_TOKENS,
                 batch_size: int = BATCH_SIZE) -> list[tuple[int, int]]:
    """[start, end) runs over ascending lengths: as many rows as fit `max_tokens` padded tokens (rows x the
    run's longest, its last) and `batch_size`; at least one row each."""
    out, start, n = [], 0, len(sorted_lengths)
    while start < n:
        end = start + 1
        while end < n and end - start < batch_size and (end - start + 1) * int(sorted_lengths[end]) <= max_tokens:
            end += 1
        out.append((start, end))
        start = end
    return out


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX; Linux cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def check_bf16(device: str) -> None:
    if str(device).startswith("cuda"):
        if not torch.cuda.is_bf16_supported():
            raise PocketBertError("backend bf16: this GPU has no bf16; use --backend fp32")
    elif not cpu_has_bf16():
        raise PocketBertError("backend bf16 needs bf16 arithmetic: a GPU (--device cuda) or a CPU with "
                              "AVX512-BF16/AMX, which this one lacks; use --backend onnx-int8 or fp32 here")


def as_teacher(teacher, name: str | None = None) -> SentenceTeacher:
    """A SentenceTeacher as is; a LoadedCheckpoint (Encoder or StaticEncoder) wrapped with its own tokenizer."""
    if isinstance(teacher, SentenceTeacher):
        return teacher
    path, model = Path(teacher.path), teacher.model.eval()
    tok = Tokenizer(path)
    cfg = model.config
    positions = getattr(cfg, "max_position_embeddings", 512)
    return SentenceTeacher(
        name=name or str(path), kind=teacher.model_type, path=path, module=_EncoderEmbed(model),
        tokenize=lambda texts: tok.encode_ids(texts), pad_id=tok.pad_id, dim=cfg.hidden_size,
        max_length=min(max_seq_length(path) or positions, positions), pooling=cfg.pooling,
        normalize=bool(cfg.normalize), weights_sha256=path_sha256(path / "model.safetensors"),
        tokenizer_sha256=files_sha256(path, ("tokenizer.json", "vocab.txt", "tokenizer_config.json")),
        device=str(next(model.parameters()).device))


def load_sentence_teacher(name_or_path, backend: str = "fp32", tokenizer: str | os.PathLike | None = None,
                          device: str = "cpu") -> SentenceTeacher:
    """A teacher by name or path: `mpnet` (assembled on first use), an MPNet folder, or anything
    `load_checkpoint` accepts (`minilm`, `paraphrase-minilm-l3`, a folder, an .onnx encoder with `tokenizer`).

    Args:
        backend: one of `BACKENDS`; ONNX graphs are exported on first use (`prepare`).
        device: `cpu`, `cuda` or `cuda:N` (PyTorch backends).
    Raises:
        PocketBertError: an unknown name or path, a missing or corrupted mpnet part, a bad checkpoint.
    """
    if backend not in BACKENDS:
        raise PocketBertError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PocketBertError(f"--device {device}: no CUDA GPU is available; use --device cpu")
    if str(name_or_path) == mpnet.NAME or mpnet.is_mpnet_folder(name_or_path):
        path = mpnet.resolve_mpnet() if str(name_or_path) == mpnet.NAME else Path(name_or_path)
        module, facts = mpnet.load_mpnet_module(path)
        tok = mpnet.load_mpnet_tokenizer(path)
        return SentenceTeacher(
            name=str(name_or_path), kind="mpnet", path=path, module=module.to(device),
            tokenize=lambda texts: [e.ids for e in tok.encode_batch(texts)], pad_id=facts["pad_id"],
            dim=facts["dim"], max_length=facts["max_length"], pooling=facts["pooling"],
            normalize=facts["normalize"], weights_sha256=path_sha256(path / "model.safetensors"),
            tokenizer_sha256=files_sha256(path, ("tokenizer.json",)), backend=backend, device=str(device))
    ckpt = names.load(name_or_path, tokenizer=tokenizer)
    ckpt.model.to(device)
    return as_teacher(ckpt, str(name_or_path)).with_backend(backend)


# ---------------------------------------------------------------------------------------------
# The ONNX Runtime path


def _matmul_role(node) -> str | None:
    """attention | ffn_in | ffn_out for a MatMul, from the module path torch.onnx records in its metadata."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
    except (ValueError, SyntaxError):
        return None
    module = scopes[-2] if len(scopes) >= 2 else ""  # the last scope is the op itself
    if re.search(r"\.intermediate\.dense$", module):
        return "ffn_in"
    if re.search(r"layer\.\d+\.output\.dense$", module):
        return "ffn_out"
    if ".attention." in module:
        return "attention"
    return None


def export_onnx(teacher: SentenceTeacher, root: Path, quant: str) -> Path:
    """The teacher's pooled embedding as ONNX (`fp32` or `int8`), exported and quantized once, cached."""
    folder = root / "teacher_pass_onnx" / (f"{teacher.kind}-{teacher.weights_sha256[:16]}-{teacher.pooling}"
                                      + ("-norm" if teacher.normalize else ""))
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "fp32.onnx"
    if not fp32.is_file():
        _log(f"{teacher.name}: exporting to ONNX once ({fp32})")
        sample = teacher.token_ids(["A man is playing a cello on a stage.", "Hello there."])
        width = max(len(r) for r in sample)
        ids = torch.full((2, width), teacher.pad_id, dtype=torch.int64)
        mask = torch.zeros((2, width), dtype=torch.int64)
        for i, r in enumerate(sample):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        seq = torch.export.Dim("seq", min=2, max=teacher.max_length)
        tmp = folder / f".fp32.onnx.tmp-{os.getpid()}"
        module = teacher.module.to("cpu").eval()
        try:
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                # stdout: the exporter's progress lines are not our output; its warning that the two inputs
                # share the batch and length axes is what we asked for.
                warnings.simplefilter("ignore", UserWarning)
                torch.onnx.export(module, (ids, mask), str(tmp), dynamo=True, external_data=False, optimize=True,
                                  opset_version=ONNX_OPSET, input_names=["input_ids", "attention_mask"],
                                  dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}), verbose=False)
            os.replace(tmp, fp32)
        finally:
            tmp.unlink(missing_ok=True)
    if quant == "fp32":
        return fp32
    roles = INT8_ROLES
    int8 = folder / f"int8-{'-'.join(roles)}.onnx"
    if not int8.is_file():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        model = onnx.load(str(fp32))
        inits = {t.name for t in model.graph.initializer}
        nodes = [n.name for n in model.graph.node
                 if n.op_type == "MatMul" and n.input[1] in inits and _matmul_role(n) in roles]
        _log(f"{teacher.name}: int8 weights on {len(nodes)} MatMuls ({', '.join(roles)}) -> {int8}")
        tmp = folder / f".int8.onnx.tmp-{os.getpid()}"
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is for static quantization
        try:
            quantize_dynamic(str(fp32), str(tmp), op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
                             weight_type=QuantType.QInt8)
            os.replace(tmp, int8)
        finally:
            logging.getLogger().setLevel(quiet)
            tmp.unlink(missing_ok=True)
    return int8


# ---------------------------------------------------------------------------------------------
# Ranks


@dataclass
class Ranks:
    """The process group a pass runs in (one rank when there is none): where collectives run."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"  # cuda for nccl

    @classmethod
    def current(cls) -> Ranks:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
            return cls(dist.get_rank(), dist.get_world_size(), device)
        return cls()

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def gather(self, values: np.ndarray) -> np.ndarray:
        """(n,) int64 per rank -> (world, n) on every rank."""
        if not self.active:
            return values[None]
        mine = torch.from_numpy(values.astype(np.int64)).to(self.device)
        out = [torch.zeros_like(mine) for _ in range(self.world)]
        dist.all_gather(out, mine)
        return torch.stack(out).cpu().numpy()

    def sum_(self, arr: np.ndarray, block_bytes: int = 64 << 20) -> np.ndarray:
        """All-reduce `arr` (2-D) in place, in row blocks of at most `block_bytes`."""
        if not self.active or arr.size == 0:
            return arr
        rows = max(1, block_bytes // max(1, arr[0].nbytes))
        for start in range(0, len(arr), rows):
            t = torch.from_numpy(np.ascontiguousarray(arr[start:start + rows])).to(self.device)
            dist.all_reduce(t)
            arr[start:start + rows] = t.cpu().numpy()
        return arr

    def max(self, value: float) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())


# ---------------------------------------------------------------------------------------------
# Progress


def _log(msg: str) -> None:
    say(f"teacher pass: {msg}")


class PassProgress:
    """Sentences encoded against this rank's share. On a terminal a tqdm bar within 100 columns (count,
    sentences/s, ETA); otherwise a line at the first update, every `every_s` seconds and at the end, e.g.
    `encode mpnet: 2048/4000 sentences | 01:10 | 29.3 sentences/s | ETA 01:07`."""

    def __init__(self, desc: str, total: int, show: bool = True, stream=None, every_s: float = LOG_EVERY_S,
                 now: Callable[[], float] = time.perf_counter):
        self.desc, self.total, self.every_s, self.now = desc, total, every_s, now
        self.stream = stream if stream is not None else console.stream()
        self.show = show and total > 0
        self.done, self.start, self.printed_at = 0, now(), None
        self.bar = None
        if self.show and self.stream.isatty():
            from tqdm import tqdm

            width = min(100, console.columns())
            self.bar = tqdm(total=total, desc=desc, unit=" sent", file=self.stream, ncols=width, mininterval=0.5,
                            smoothing=0.1)

    def line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (f"{self.desc}: {self.done}/{self.total} sentences | {clock(elapsed)} | {rate:.1f} sentences/s"
                f" | ETA {clock(eta)}")

    def update(self, n: int) -> None:
        self.done += n
        if not self.show:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = self.now()
        if self.printed_at is None or now - self.printed_at >= self.every_s or self.done >= self.total:
            print(self.line(now), file=self.stream, flush=True)
            self.printed_at = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# The cache


def cache_key(teacher, texts: list[str], max_length: int | None) -> tuple[str, dict]:
    """(key, what it was made of) for a teacher (SentenceTeacher or LoadedCheckpoint) over `texts`."""
    teacher = as_teacher(teacher)
    parts = {"format": FORMAT, "corpus_sha256": corpus_sha256(texts), "texts": len(texts),
             **teacher.cache_parts(max_length)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), parts


def _valid(path: Path, shape: tuple[int, int]) -> bool:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return arr.shape == shape and arr.dtype == np.float32


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # a concurrent pass on the same key may have finished
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32))
    os.replace(tmp, path)  # readers never see half a file


def sample_indices(n: int, size: int = AGREEMENT_SAMPLE, seed: int = AGREEMENT_SEED) -> np.ndarray:
    """A seeded sample of corpus rows, ascending."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def measure_agreement(teacher: SentenceTeacher, texts: list[str], max_length: int | None,
                      ranks: Ranks | None = None, sample: int = AGREEMENT_SAMPLE,
                      seed: int = AGREEMENT_SEED) -> dict:
    """Per-sentence cosine of the teacher's backend against its fp32 on a seeded sample of `texts`
    (each rank encodes a share; every rank gets the same numbers)."""
    ranks = ranks or Ranks()
    idx = sample_indices(len(texts), sample, seed)
    cos = np.zeros((len(idx), 1), dtype=np.float32)
    mine = np.arange(ranks.rank, len(idx), ranks.world)
    if len(mine):
        chosen = [texts[i] for i in idx[mine]]
        fast = teacher.encode(chosen, max_length)
        ref = teacher.with_backend("fp32").encode(chosen, max_length)
        cos[mine, 0] = cosine_rows(fast.astype(np.float64), ref.astype(np.float64))
    ranks.sum_(cos)
    return {"backend": teacher.backend, "sample": int(len(idx)), "seed": seed,
            "min": float(cos.min()) if len(idx) else 1.0, "mean": float(cos.mean()) if len(idx) else 1.0}


def teacher_embeddings(teacher, texts: list[str], max_length: int | None, root: Path,
                       batch_size: int = BATCH_SIZE, *, max_tokens: int = MAX_TOKENS, chunk_size: int = CHUNK_SIZE,
                       min_agreement: float = MIN_AGREEMENT, progress: bool = True) -> tuple[np.ndarray, dict]:
    """(N, D) float32 pooled teacher embeddings of `texts` (with the teacher's own tokenizer), rows in corpus
    order: read from the cache, or computed (resuming from finished chunks), sharded over the ranks of the
    process group when there is one.

    Args:
        teacher: a SentenceTeacher (`load_sentence_teacher`) or a LoadedCheckpoint (wrapped, fp32).
        max_length: tokens per text, at most the teacher's own limit (None: that limit).
        root: the cache folder (`pocketbert.pipeline.data.cache_dir()`).
    Returns:
        (embeddings, info): info holds the key, its parts, the file, `hit` (True: read from disk, no pass),
        the pass (chunks computed and reused, sentences/s, ranks) and, for a backend other than fp32, its
        agreement with fp32.
    Raises:
        PocketBertError: the backend's agreement with fp32 is below `min_agreement`; ranks with different
            corpora or teachers.
    """
    teacher = as_teacher(teacher)
    ranks = Ranks.current()
    key, parts = cache_key(teacher, texts, max_length)
    _check_same_key(ranks, key)
    folder = Path(root) / "teacher_emb"
    final, info_path, parts_dir = folder / f"{key}.npy", folder / f"{key}.json", folder / f"{key}.parts"
    info = {"key": key, **parts, "file": str(final)}
    shape = (len(texts), teacher.dim)
    if ranks.gather(np.array([_valid(final, shape)])).all():
        return _read_cached(final, info_path, info)

    t0 = time.perf_counter()
    agreement = _prepare_backend(teacher, texts, max_length, root, parts_dir, ranks, min_agreement)
    plan = _plan_chunks(teacher, texts, max_length, chunk_size, parts_dir, ranks)
    emb = np.zeros(shape, dtype=np.float32)
    for i in plan.provided:
        emb[plan.chunks[i]] = np.load(plan.files[i], allow_pickle=False)
    pass_s = _encode_chunks(teacher, plan, emb, ranks, max_tokens, batch_size, progress)
    ranks.sum_(emb)
    computed = sum(len(plan.chunks[i]) for i in plan.missing)
    record = {
        **info,
        "pass": {"sentences": len(texts), "computed_sentences": computed,
                 "computed_chunks": len(plan.missing), "reused_chunks": len(plan.chunks) - len(plan.missing),
                 "chunk_size": chunk_size, "max_tokens": max_tokens, "batch_size": batch_size,
                 "ranks": ranks.world, "threads_per_rank": torch.get_num_threads(), "device": teacher.device,
                 "encode_s": round(pass_s, 3), "total_s": round(time.perf_counter() - t0, 3),
                 "sentences_per_s": round(computed / pass_s, 2) if pass_s > 0 else None,
                 "padded_tokens": int(sum((e - s) * int(plan.lengths[c[e - 1]]) for c in plan.chunks
                                          for s, e in plan_batches(plan.lengths[c], max_tokens, batch_size))),
                 "tokens": int(plan.lengths.sum())},
        "agreement": agreement,
    }
    _write_final(final, info_path, emb, record, ranks)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return emb, {**record, "hit": False}


def _check_same_key(ranks: Ranks, key: str) -> None:
    """Every rank of a process group must be encoding the same corpus with the same teacher."""
    if ranks.active:
        digests = ranks.gather(np.frombuffer(bytes.fromhex(key), dtype=np.uint8).astype(np.int64))
        if not (digests == digests[0]).all():
            raise PocketBertError("the ranks of this process group passed different corpora or teachers to the "
                                  "teacher pass; give every rank the same texts, teacher and max_length")


def _read_cached(final: Path, info_path: Path, info: dict) -> tuple[np.ndarray, dict]:
    """A cache hit: the embeddings, and what the pass that wrote them recorded (if its record is readable)."""
    emb = np.load(final, allow_pickle=False)
    try:
        recorded = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    return emb, {**recorded, **info, "hit": True}


def _prepare_backend(teacher: SentenceTeacher, texts: list[str], max_length: int | None, root: Path,
                     parts_dir: Path, ranks: Ranks, min_agreement: float) -> dict | None:
    """Make the backend ready on every rank and, for a backend other than fp32, measure its agreement with fp32
    before anything is written (a refused backend leaves nothing); returns that agreement (None for fp32)."""
    if ranks.rank == 0:
        teacher.prepare(root)  # an ONNX export happens once, on rank 0, before the others open it
    ranks.barrier()
    teacher.prepare(root)
    agreement = None
    if teacher.backend != "fp32":
        agreement = _agreement(teacher, texts, max_length, ranks, parts_dir / "agreement.json")
        if agreement["min"] < min_agreement:
            raise PocketBertError(
                f"backend {teacher.backend} of {teacher.name} agrees with fp32 down to cosine {agreement['min']:.6f} "
                f"(mean {agreement['mean']:.6f}, {agreement['sample']} sampled sentences), below {min_agreement}; "
                "use --backend fp32 (or onnx-fp32)")
    if ranks.rank == 0:
        parts_dir.mkdir(parents=True, exist_ok=True)
        if agreement is not None:
            write_json(parts_dir / "agreement.json", agreement)
    return agreement


@dataclass
class _ChunkPlan:
    """The corpus cut into chunks that are saved as they finish, and which rank does what with them."""

    rows: list[list[int]]  # token ids of every text
    lengths: np.ndarray  # (N,) int64 token counts
    chunks: list[np.ndarray]  # row indices of each chunk, in length order
    files: list[Path]  # each chunk's file in the parts folder
    missing: list[int]  # chunks no rank holds: computed in this pass
    mine: list[int]  # the missing chunks this rank computes
    provided: list[int]  # held chunks this rank reads in (the lowest rank that holds each)


def _plan_chunks(teacher: SentenceTeacher, texts: list[str], max_length: int | None, chunk_size: int,
                 parts_dir: Path, ranks: Ranks) -> _ChunkPlan:
    rows = teacher.token_ids(texts, max_length)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    n_chunks = -(-len(order) // chunk_size)
    chunks = [order[c::n_chunks] for c in range(n_chunks)]  # strided: equal cost, each in length order
    files = [parts_dir / f"chunk-{i:05d}.npy" for i in range(len(chunks))]
    have = np.array([_valid(f, (len(c), teacher.dim)) for f, c in zip(files, chunks)], dtype=np.int64)
    holders = ranks.gather(have)  # (world, chunks)
    missing = [i for i in range(len(chunks)) if not holders[:, i].any()]
    provided = [i for i in range(len(chunks)) if holders[:, i].any() and int(np.argmax(holders[:, i])) == ranks.rank]
    return _ChunkPlan(rows=rows, lengths=lengths, chunks=chunks, files=files, missing=missing,
                      mine=missing[ranks.rank::ranks.world], provided=provided)


def _encode_chunks(teacher: SentenceTeacher, plan: _ChunkPlan, emb: np.ndarray, ranks: Ranks, max_tokens: int,
                   batch_size: int, progress: bool) -> float:
    """Encode this rank's chunks into `emb` (N, D), saving each chunk as it finishes; returns the pass's seconds
    (the slowest rank's)."""
    where = f" [rank {ranks.rank} of {ranks.world}]" if ranks.active else ""
    bar = PassProgress(f"encode {teacher.name} ({teacher.backend}){where}",
                       sum(len(plan.chunks[i]) for i in plan.mine), show=progress and ranks.rank == 0)
    t_pass = time.perf_counter()
    try:
        for i in plan.mine:
            chunk = plan.chunks[i]
            out = np.zeros((len(chunk), teacher.dim), dtype=np.float32)
            for start, end in plan_batches(plan.lengths[chunk], max_tokens, batch_size):
                out[start:end] = teacher.encode_rows([plan.rows[j] for j in chunk[start:end]])
                bar.update(end - start)
            _save(plan.files[i], out)
            emb[chunk] = out
    finally:
        bar.close()
    return ranks.max(time.perf_counter() - t_pass)


def _write_final(final: Path, info_path: Path, emb: np.ndarray, record: dict, ranks: Ranks) -> None:
    """Rank 0 writes the embeddings and their record; a rank whose cache folder is not rank 0's writes its own."""
    if ranks.rank == 0:
        _save(final, emb)
        write_json(info_path, record)
    ranks.barrier()
    if not _valid(final, emb.shape):
        _save(final, emb)
        write_json(info_path, record)


def _agreement(teacher: SentenceTeacher, texts: list[str], max_length: int | None, ranks: Ranks,
               path: Path) -> dict:
    """The backend's agreement with fp32 on this corpus: measured once per key (the pass keeps it in `path`
    for a resumed pass)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    ok = np.array([bool(recorded) and recorded.get("backend") == teacher.backend])
    if ranks.gather(ok).all():
        return recorded
    _log(f"{teacher.name}: measuring {teacher.backend} against fp32 on {min(len(texts), AGREEMENT_SAMPLE)} "
         "sampled sentences")
    return measure_agreement(teacher, texts, max_length, ranks)


# ---------------------------------------------------------------------------------------------
# `pocketbert encode`


def encode_corpus(teacher: str, corpus: list[str], *, max_length: int | None = None, backend: str = "fp32",
                  device: str = "auto", tokenizer: str | None = None, text_field: str | None = None,
                  limit: int | None = None, threads: int | None = None, chunk_size: int = CHUNK_SIZE,
                  max_tokens: int = MAX_TOKENS, batch_size: int = BATCH_SIZE, min_agreement: float = MIN_AGREEMENT,
                  root: Path | None = None) -> dict:
    """Fill the cache for one teacher over the distinct texts of `corpus`, in corpus order.

    Under torchrun (WORLD_SIZE > 1) without a process group, one is made here (gloo on the CPU, nccl on
    GPUs) and closed at the end. Returns the cache info on rank 0, {} on the other ranks.
    """
    for name, value in (("--chunk-size", chunk_size), ("--max-tokens", max_tokens), ("--batch-size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be a positive integer, got {limit}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"--max-length must be at least 2, got {max_length}")
    if not MIN_AGREEMENT <= min_agreement <= 1.0:
        raise ValueError(f"--min-agreement must be between {MIN_AGREEMENT} and 1.0, got {min_agreement}")
    texts = list(dict.fromkeys(read_texts(corpus, text_field).texts))  # before any teacher is loaded
    if limit is not None:
        texts = texts[:limit]
    if threads is not None:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not backend.startswith("onnx") else "cpu"
    made_group = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (dist.is_available() and dist.is_initialized())
    if made_group and device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    ddp = init_distributed("cuda" if device.startswith("cuda") else "cpu")
    try:
        t = load_sentence_teacher(teacher, backend=backend, tokenizer=tokenizer, device=device)
        _, info = teacher_embeddings(t, texts, max_length, Path(root or cache_dir()), batch_size,
                                     max_tokens=max_tokens, chunk_size=chunk_size, min_agreement=min_agreement)
    finally:
        if made_group and dist.is_initialized():
            dist.destroy_process_group()
    return {**info, "corpus": [str(c) for c in corpus], "name": teacher} if ddp.main else {}
