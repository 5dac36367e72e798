"""Measure every artifact of a bundle on this host, interleaved with baselines, into the results schema.

Set up (read the bundle, plan rows, measure the host's GEMM peak), run (per thread count and sequence
length: one fresh pinned process per row, warm up, then rounds A B A B ...), write (after every group,
atomically, so an interrupted run keeps what it measured), verify (every write is schema-validated).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.bundle.manifest import load_bundle
from pocketbert.errors import PocketBertError
from pocketbert.runtime_bench import flops, mobile, stats, sysinfo
from pocketbert.runtime_bench.baselines import Reference, default_cache, prepare_baselines, read_quality
from pocketbert.runtime_bench.schema import KIND, SCHEMA_VERSION, write_results
from pocketbert.runtime_bench.worker import PREFIX

RUNNER_OF_FORMAT = {"onnx": "onnxruntime", "tflite": "litert", "executorch": "executorch", "coreml": "coreml",
                    "pytorch": "pytorch_eager"}
REPLY_TIMEOUT_S = 900.0


@dataclass
class Target:
    """One thing to measure at one seq_len: an artifact of the bundle or a baseline the CLI prepared."""

    name: str
    format: str
    backend: str
    quant: str
    seq_len: int
    role: str  # artifact | baseline
    path: str
    runner: str
    size_bytes: int | None
    config: dict  # encoder config (HF keys) for FLOPs
    vocab_size: int
    file: str | None = None
    quality: dict = field(default_factory=dict)
    skip_reason: str | None = None
    delegated_share: float | None = None  # ExecuTorch: XNNPACK share of the graph's nodes (manifest notes)
    gate: dict | None = None  # the geometry gate's summary (gate_summary)


def gate_summary(gate: dict | None) -> dict | None:
    """The manifest's `gate` of an artifact as a results row carries it: status and the headline numbers."""
    if not gate:
        return None
    out = {"status": gate["status"]}
    if "sts" in gate:
        out["sts_delta"] = gate["sts"]["delta"]
    for key in ("top10_overlap", "min_cosine"):
        if key in gate:
            out[key] = gate[key]
    if "bucket_invariance" in gate:
        out["min_bucket_cosine"] = gate["bucket_invariance"]["min_cosine_across_buckets"]
    if "thread_invariance" in gate:
        out["min_thread_cosine"] = gate["thread_invariance"]["min_cosine"]
    if gate.get("reasons"):
        out["reasons"] = list(gate["reasons"])
    return out


def targets_from_bundle(bundle, seq_lens: list[int], label: str | None = None) -> list[Target]:
    """Artifacts at the requested seq_lens, in manifest order. Core ML is skipped (with a reason) off macOS.

    `label`: the bundle is a compared one (`--compare`): its rows are named `{label}:{file}`, role `compare`.
    """
    config = dict(bundle.manifest["model"]["config"])
    config.setdefault("task", bundle.task)
    quality = bundle.manifest["model"].get("quality") or {}
    out = []
    for a in bundle.artifacts:
        if a["seq_len"] not in seq_lens:
            continue
        q = {k: v for k, v in (a.get("quality") or quality).items() if isinstance(v, (int, float, str))}
        out.append(Target(name=f"{label}:{a['file']}" if label else a["file"], file=a["file"], format=a["format"],
                          backend=a["backend"], quant=a["quant"], seq_len=a["seq_len"],
                          role="compare" if label else "artifact", path=str(bundle.artifact_path(a)),
                          runner=RUNNER_OF_FORMAT[a["format"]], size_bytes=a.get("size_bytes"), config=config,
                          vocab_size=int(config.get("vocab_size", 30522)), quality=q, skip_reason=_skip_reason(a["format"]),
                          delegated_share=(a.get("notes") or {}).get("xnnpack_share"), gate=gate_summary(a.get("gate"))))
    return out


def _skip_reason(fmt: str) -> str | None:
    if fmt == "coreml" and sys.platform != "darwin":
        return "Core ML runs only on macOS; measure it with the iOS demo app's benchmark"
    return None


def targets_from_baselines(baselines: list[dict], seq_lens: list[int]) -> list[Target]:
    """Baseline descriptions {name, format, backend, quant, runner, path, size_bytes, config, quality?}."""
    out = []
    for b in baselines:
        for n in seq_lens:
            out.append(Target(name=b["name"], format=b["format"], backend=b["backend"], quant=b["quant"], seq_len=n,
                              role="baseline", path=str(b["path"]), runner=b["runner"], size_bytes=b.get("size_bytes"),
                              config=b["config"], vocab_size=int(b["config"].get("vocab_size", 30522)),
                              quality=dict(b.get("quality") or {})))
    return out


# ---------------------------------------------------------------- one worker process

class Worker:
    """A fresh measuring process for one target at one thread count (see worker.py for the protocol)."""

    def __init__(self, target: Target, threads: int, cores: list[int] | None, profile_dir: str | None = None,
                 paths: list[str] | None = None, texts_file: str | None = None):
        spec = {"runner": target.runner, "path": target.path, "seq_len": target.seq_len, "threads": threads,
                "cores": cores, "vocab_size": target.vocab_size, "profile_dir": profile_dir,
                "paths": paths, "texts_file": texts_file}
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", TOKENIZERS_PARALLELISM="false")
        self.stderr = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen([sys.executable, "-m", "pocketbert.runtime_bench.worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        self._buf = b""

    def read(self, timeout: float = REPLY_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith(PREFIX):
                    return json.loads(text[len(PREFIX):])
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return {"error": f"no answer from the {self.proc.args[-1][:40]} worker in {timeout:.0f} s"}
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    return {"error": self._stderr_tail() or f"worker exited with code {self.proc.returncode}"}
                self._buf += chunk

    def ask(self, cmd: dict) -> dict:
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return {"error": self._stderr_tail() or "worker exited"}
        return self.read()

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        lines = [ln.strip() for ln in self.stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1][:400] if lines else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.ask({"cmd": "exit"})
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _start(target: Target, threads: int, cores: list[int] | None, row: dict, what: str, log,
           **worker_args) -> tuple[Worker | None, dict]:
    """A loaded worker and its ready reply; (None, reply) with `row` marked failed when it did not load."""
    w = Worker(target, threads, cores, **worker_args)
    ready = w.read()
    if "error" in ready:
        w.kill()
        row.update(status="failed", error=f"failed to load: {ready['error']}")
        log(f"  {what}: FAILED to load: {ready['error']}")
        return None, ready
    return w, ready


def cores_for(threads: int) -> list[int] | None:
    """Pin to the first `threads` available cores; None where the OS has no affinity API."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    return sysinfo.available_cores()[:threads]


# ---------------------------------------------------------------- host peak

def measure_peak(threads_list: list[int]) -> dict:
    per = {}
    for t in threads_list:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
                   PYTHONWARNINGS="ignore")
        spec = json.dumps({"mode": "peak", "threads": t, "cores": cores_for(t)})
        proc = subprocess.run([sys.executable, "-m", "pocketbert.runtime_bench.worker", spec], capture_output=True,
                              text=True, env=env, timeout=300)
        got = [json.loads(ln[len(PREFIX):]) for ln in proc.stdout.splitlines() if ln.startswith(PREFIX)]
        per[str(t)] = got[0] if got else {"fp32_gflops": None, "int8_gops": None}
    top = per[str(max(threads_list))]
    return {"fp32_gflops": top["fp32_gflops"], "int8_gops": top["int8_gops"], "threads": max(threads_list),
            "method": "best rate of repeated square GEMMs (256, 512, 1024) in a pinned process: ONNX Runtime "
                      "MatMul, numpy matmul (OpenBLAS) and torch.mm for fp32; ONNX Runtime MatMulInteger and "
                      "torch._int_mm for int8 -> int32; per_thread has each thread count and the winning GEMM; "
                      "a t-thread row's % of peak uses the best peak at <= t threads",
            "per_thread": per}


# ---------------------------------------------------------------- the run

def _base_row(t: Target, threads: int) -> dict:
    row = {"name": t.name, "format": t.format, "backend": t.backend, "quant": t.quant, "seq_len": t.seq_len,
           "threads": threads, "role": t.role}
    if t.file:
        row["file"] = t.file
    if t.size_bytes is not None:
        row["size_bytes"] = int(t.size_bytes)
    if t.quality:
        row["quality"] = t.quality
    if isinstance(t.delegated_share, (int, float)):
        row["delegated_share"] = float(t.delegated_share)
    if t.gate:
        row["gate"] = t.gate
    return row


def _add_work(row: dict, t: Target, peak: dict, threads: int) -> None:
    work = flops.encoder_work(t.config, t.seq_len)
    row["gflops_per_inference"] = work.flops / 1e9
    if "latency_ms_p50" not in row:
        return
    row["achieved_gflops"] = work.flops / 1e9 / (row["latency_ms_p50"] / 1e3)
    # the peak a t-thread run could reach: the best measured at <= t threads (on a busy machine the
    # 2-thread GEMM can measure below the 1-thread one)
    per = [v for k, v in peak.get("per_thread", {}).items() if int(k) <= threads]
    fp32 = max((v["fp32_gflops"] for v in per if v.get("fp32_gflops")), default=None)
    int8 = max((v["int8_gops"] for v in per if v.get("int8_gops")), default=None)
    linear_peak = int8 if t.quant == "int8" else fp32
    if fp32 and linear_peak:
        # time this work would take at the host's peak / measured time (int8: weight GEMMs at the int8 peak)
        ideal_ms = (work.linear_flops / linear_peak + work.attention_flops / fp32) / 1e6
        row["peak_fraction"] = ideal_ms / row["latency_ms_p50"]


def _split(runs: int, rounds: int) -> list[int]:
    base, extra = divmod(runs, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def run_group(targets: list[Target], threads: int, runs: int, warmup: int, rounds: int, peak: dict,
              log: Callable[[str], None]) -> list[dict]:
    """Measure `targets` (one seq_len) at `threads`, interleaved; returns their rows."""
    cores = cores_for(threads)
    rows, workers, round_samples, round_cpu = {}, {}, {}, {}
    for t in targets:
        row = _base_row(t, threads)
        rows[t.name] = row
        if t.skip_reason:
            row.update(status="skipped", error=t.skip_reason)
            continue
        # started one at a time: load time is measured on a quiet machine
        w, ready = _start(t, threads, cores, row, f"{t.name} seq{t.seq_len} t{threads}", log)
        if w is None:
            continue
        row.update(load_ms=ready["load_ms"], first_inference_ms=ready["first_inference_ms"])
        workers[t.name] = w
        round_samples[t.name] = []
        round_cpu[t.name] = []
    try:
        for name, w in workers.items():
            if warmup:
                got = w.ask({"cmd": "run", "n": warmup})
                if "error" in got:
                    rows[name].update(status="failed", error=f"warm-up failed: {got['error']}")
        live = [n for n in workers if "status" not in rows[n]]
        for i, n_runs in enumerate(_split(runs, rounds)):
            order = live if i % 2 == 0 else live[::-1]  # A B, then B A: no row always runs right after another
            for name in order:
                if "status" in rows[name]:
                    continue
                got = workers[name].ask({"cmd": "run", "n": n_runs})
                if "error" in got:
                    rows[name].update(status="failed", error=f"inference failed: {got['error']}")
                else:
                    round_samples[name].append(got["samples_ms"])
                    round_cpu[name].append(got["cpu_ms"])
        for name, w in workers.items():
            got = w.ask({"cmd": "stats"})
            if got.get("peak_rss_delta_mb") is not None:
                rows[name]["peak_rss_delta_mb"] = got["peak_rss_delta_mb"]
    finally:
        for w in workers.values():
            w.close()
    by_name = {t.name: t for t in targets}
    for name in workers:
        row = rows[name]
        samples = [x for r in round_samples[name] for x in r]
        if "status" not in row and samples:
            row.update(status="ok", **stats.summarize(samples))
            cpu = [x for r in round_cpu[name] for x in r]
            row.update(cpu_ms_p50=stats.percentile(cpu, 50), cpu_ms_trimmed_mean=stats.trimmed_mean(cpu))
            _add_work(row, by_name[name], peak, threads)
    # pairwise speedups: each row over every baseline, and each artifact over its format's fp32 artifact
    for name, row in rows.items():
        if row.get("status") != "ok":
            continue
        refs = [o for o in rows.values() if o is not row and o.get("status") == "ok" and (
            o["role"] == "baseline" or (row["role"] == "artifact" and o["role"] == "artifact"
                                        and o["format"] == row["format"] and o["quant"] == "fp32")
            or (row["role"] == "artifact" and o["role"] == "compare" and o["format"] == row["format"]
                and o["quant"] == row["quant"]))]
        speedups, cpu_speedups = {}, {}
        for o in refs:
            speedups[o["name"]] = stats.paired_speedup(round_samples[o["name"]], round_samples[name])
            cpu_speedups[o["name"]] = stats.paired_speedup(round_cpu[o["name"]], round_cpu[name])
        if speedups:
            row["speedup_vs"] = speedups
            row["cpu_speedup_vs"] = cpu_speedups
    for row in rows.values():
        if row.get("status") == "ok":
            log(f"  {row['name']} seq{row['seq_len']} t{threads}: p50 {row['latency_ms_p50']:.2f} ms")
    return [rows[t.name] for t in targets]


def profile_rows(rows: list[dict], targets: list[Target], threads: int, n: int, log) -> None:
    """Per-operator profile of each ok row, in its own process (profiling slows the timed runs)."""
    by_name = {t.name: t for t in targets}
    for row in rows:
        t = by_name.get(row["name"])
        if row.get("status") != "ok" or t is None:
            continue
        if t.runner not in ("onnxruntime", "executorch"):
            from pocketbert.runtime_bench.worker import profile as _profile_note

            row["ops_profile_note"] = _profile_note({"runner": t.runner}, None, None, 0)["ops_profile_note"]
            continue
        with tempfile.TemporaryDirectory(prefix="pocketbert-profile-") as d:
            w = Worker(t, threads, cores_for(threads), profile_dir=d)
            try:
                if "error" in w.read():
                    continue
                got = w.ask({"cmd": "profile", "n": n})
            finally:
                w.close()
        if "error" in got:
            row["ops_profile_note"] = f"profile failed: {got['error']}"
        else:
            row["ops_top"] = got["ops_top"]
            row["ops_profile_note"] = got["ops_profile_note"]
        log(f"  profiled {row['name']} seq{row['seq_len']}")


# ---------------------------------------------------------------- real lengths

@dataclass
class TextRow:
    """One artifact family (a format and quantization, every bucket of it) or one baseline, run on the sampled
    texts as an app calls it: `calls` holds, per text, the program (index into `paths`), the ids it is fed
    and how many are real tokens; `buckets` the bundle bucket each text falls in (for the per-bucket table)."""

    name: str
    format: str
    backend: str
    quant: str
    role: str
    runner: str
    paths: list[str]
    calls: list[tuple[int, list[int], int]]
    buckets: list[int]
    vocab_size: int
    files: list[str] = field(default_factory=list)
    shape: str = "buckets"  # buckets | dynamic (every program takes the text's own length)
    skip_reason: str | None = None


def text_rows(bundle, token_ids: list[list[int]], targets: list[Target], label: str | None = None) -> list[TextRow]:
    """A TextRow per (format, quant) of `bundle` that `targets` measure (its artifacts at every bucket, as an
    app has them), in manifest order; `label`: a compared bundle (role `compare`)."""
    from .lengths import calls

    wanted = {(t.format, t.quant) for t in targets}
    config = bundle.manifest["model"]["config"]
    rows = []
    for fmt, quant in dict.fromkeys((a["format"], a["quant"]) for a in bundle.artifacts):
        if (fmt, quant) not in wanted:
            continue
        family = [a for a in bundle.artifacts if (a["format"], a["quant"]) == (fmt, quant)]
        files = [a["file"] for a in family]
        got = calls(bundle, family, token_ids)
        name = f"{fmt}/{quant}"
        rows.append(TextRow(name=f"{label}:{name}" if label else name, format=fmt, backend=family[0]["backend"],
                            quant=quant, role="compare" if label else "artifact", runner=RUNNER_OF_FORMAT[fmt],
                            paths=[str(bundle.artifact_path(a)) for a in family],
                            calls=[(files.index(c.artifact["file"]), c.ids, c.n_tokens) for c in got],
                            buckets=[c.artifact["seq_len"] for c in got], vocab_size=int(config.get("vocab_size", 30522)),
                            files=files, shape="dynamic" if all("min_seq_len" in a for a in family) else "buckets",
                            skip_reason=_skip_reason(fmt)))
    return rows


def baseline_text_rows(baselines: list[dict], bundle, token_ids: list[list[int]]) -> list[TextRow]:
    """Each baseline as users run it: the text's own ids (truncated to the bundle's largest bucket, so that
    both sides see the same tokens), no padding."""
    from pocketbert.bundle.manifest import bucket_for

    limit = max(bundle.seq_lens)
    cut = [ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:] for ids in token_ids]
    return [TextRow(name=b["name"], format=b["format"], backend=b["backend"], quant=b["quant"], role="baseline",
                    runner=b["runner"], paths=[str(b["path"])], calls=[(0, ids, len(ids)) for ids in cut],
                    buckets=[bucket_for(bundle.seq_lens, len(ids)) for ids in cut],
                    vocab_size=int(b["config"].get("vocab_size", 30522)), shape="dynamic") for b in baselines]


def _text_summary(samples: list[float], cpu: list[float], buckets: list[int]) -> dict:
    out = {"texts": len(samples), "latency_ms_p50": stats.percentile(samples, 50),
           "latency_ms_p90": stats.percentile(samples, 90), "cpu_ms_p50": stats.percentile(cpu, 50),
           "cpu_ms_p90": stats.percentile(cpu, 90), "per_bucket": {}}
    for b in sorted(set(buckets)):
        mine = [x for x, k in zip(samples, buckets) if k == b]
        mine_cpu = [x for x, k in zip(cpu, buckets) if k == b]
        out["per_bucket"][str(b)] = {"texts": len(mine), "share": len(mine) / len(samples),
                                     "latency_ms_p50": stats.percentile(mine, 50),
                                     "latency_ms_p90": stats.percentile(mine, 90),
                                     "cpu_ms_p50": stats.percentile(mine_cpu, 50)}
    return out


def _paired_text_speedup(other: list[float], this: list[float]) -> float:
    """Median over texts of other / this: both rows ran the same text in the same round."""
    return stats.percentile([o / t for o, t in zip(other, this) if t > 0], 50)


def run_texts(rows: list[TextRow], threads: int, rounds: int, warmup: int, log: Callable[[str], None]) -> list[dict]:
    """Measure every TextRow on its calls, interleaved: round i runs the same slice of texts on every row
    (A B C, then C B A). Returns the `real_lengths.rows` entries."""
    cores = cores_for(threads)
    out, workers, samples, cpu = {}, {}, {}, {}
    n = len(rows[0].calls) if rows else 0
    with tempfile.TemporaryDirectory(prefix="pocketbert-texts-") as tmp:
        for i, r in enumerate(rows):
            entry = {"name": r.name, "format": r.format, "backend": r.backend, "quant": r.quant, "role": r.role,
                     "threads": threads, "shape": r.shape, **({"files": r.files} if r.files else {})}
            out[r.name] = entry
            if r.skip_reason:
                entry.update(status="skipped", error=r.skip_reason)
                continue
            texts_file = Path(tmp) / f"{i}.json"
            texts_file.write_text(json.dumps(r.calls))
            spec = Target(name=r.name, format=r.format, backend=r.backend, quant=r.quant, seq_len=len(r.calls[0][1]),
                          role=r.role, path=r.paths[0], runner=r.runner, size_bytes=None, config={},
                          vocab_size=r.vocab_size)
            w, _ = _start(spec, threads, cores, entry, f"{r.name} real lengths", log, paths=r.paths,
                          texts_file=str(texts_file))
            if w is None:
                continue
            first = {}  # warm-up: each program's first text, then the first `warmup` texts
            for k, (prog, _, _) in enumerate(r.calls):
                first.setdefault(prog, k)
            got = w.ask({"cmd": "run_texts", "indices": sorted(set(first.values()) | set(range(min(warmup, n))))})
            if "error" in got:
                entry.update(status="failed", error=f"warm-up failed: {got['error']}")
                w.close()
                continue
            workers[r.name], samples[r.name], cpu[r.name] = w, [], []
        try:
            live = list(workers)
            for i, k in enumerate(_split(n, rounds)):
                start = sum(_split(n, rounds)[:i])
                for name in live if i % 2 == 0 else live[::-1]:
                    if "status" in out[name]:
                        continue
                    got = workers[name].ask({"cmd": "run_texts", "indices": list(range(start, start + k))})
                    if "error" in got:
                        out[name].update(status="failed", error=f"inference failed: {got['error']}")
                    else:
                        samples[name] += got["samples_ms"]
                        cpu[name] += got["cpu_ms"]
        finally:
            for w in workers.values():
                w.close()
    by_name = {r.name: r for r in rows}
    for name in workers:
        if "status" not in out[name]:
            out[name].update(status="ok", **_text_summary(samples[name], cpu[name], by_name[name].buckets))
    for name, entry in out.items():
        if entry.get("status") != "ok":
            continue
        refs = [o for o in out.values() if o is not entry and o.get("status") == "ok" and (
            o["role"] == "baseline" or (entry["role"] == "artifact" and o["role"] == "compare"
                                        and (o["format"], o["quant"]) == (entry["format"], entry["quant"])))]
        if refs:
            entry["speedup_vs"] = {o["name"]: _paired_text_speedup(samples[o["name"]], samples[name]) for o in refs}
            entry["cpu_speedup_vs"] = {o["name"]: _paired_text_speedup(cpu[o["name"]], cpu[name]) for o in refs}
        log(f"  {name} real lengths t{threads}: p50 {entry['latency_ms_p50']:.2f} ms, p90 {entry['latency_ms_p90']:.2f} ms")
    return list(out.values())


def measure_real_lengths(bundle, targets: list[Target], baselines: list[dict], compared: list[tuple[str, object]],
                         sources: list[str], sample_size: int, threads: int, rounds: int, warmup: int,
                         log: Callable[[str], None]) -> dict:
    """The `real_lengths` section: the texts of `sources`, their token-length distribution through the bundle's
    buckets, and every artifact family, compared bundle and baseline measured on a seeded sample of them."""
    from . import lengths

    texts = lengths.read_sentences(sources)
    token_ids = lengths.encode(bundle, texts)
    picked = lengths.sample(len(texts), sample_size)
    chosen = [token_ids[i] for i in picked]
    log(f"real lengths: {len(texts)} texts from {len(sources)} file(s), {len(chosen)} sampled, {threads} thread(s)")
    rows = text_rows(bundle, chosen, targets)
    for label, other in compared:  # the same texts, tokenized by the compared bundle's own vocabulary
        rows += text_rows(other, lengths.encode(other, [texts[i] for i in picked]), targets, label)
    rows += baseline_text_rows(baselines, bundle, chosen)
    return {"source": {"files": [str(p) for p in sources], "texts": len(texts), "sample": len(chosen),
                       "seed": lengths.SAMPLE_SEED},
            "distribution": lengths.distribution(bundle, token_ids), "sample_distribution": lengths.distribution(bundle, chosen),
            "threads": threads, "rounds": min(rounds, len(chosen)),
            "rows": run_texts(rows, threads, min(rounds, len(chosen)), warmup, log)}


def new_document(bundle, config: dict, device: dict, command: str | None = None) -> dict:
    from pocketbert.files import provenance

    m = bundle.manifest
    return {
        "schema_version": SCHEMA_VERSION, "kind": KIND, "complete": False,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bundle": {"path": str(Path(bundle.root).resolve()), "model_name": m["model"]["name"], "task": m["model"]["task"],
                   "num_parameters": int(m["model"]["num_parameters"])},
        "device": device, "config": config, "rows": [], "peak": {}, "estimates": [],
        "provenance": provenance("onnxruntime", "ai-edge-litert", "executorch", command=command), "notes": [],
    }


def add_estimates(doc: dict, targets: list[Target]) -> None:
    seen = set()
    for t in targets:
        if (t.name, t.seq_len) in seen:
            continue
        seen.add((t.name, t.seq_len))
        doc["estimates"].extend(mobile.estimate_rows(t.name, t.quant, t.seq_len, flops.encoder_work(t.config, t.seq_len)))


def run_bench(bundle, out: Path, threads: list[int], seq_lens: list[int], runs: int, warmup: int,
              baselines: list[dict] | None = None, rounds: int | None = None, profile: bool = True,
              log: Callable[[str], None] = print, command: str | None = None,
              compared: list[tuple[str, object]] | None = None, texts: list[str] | None = None,
              text_sample: int = 300) -> dict:
    """Measure the bundle's artifacts (and baselines, and the artifacts of `compared` (label, bundle) pairs)
    on this host; write `out` as the run goes. `texts`: files whose sentences give the real-length section
    (measured at the first thread count, `text_sample` of them); None or []: no such section.

    Returns the final results document (also written to `out`, `complete: true`).
    """
    compared = compared or []
    artifact_targets = targets_from_bundle(bundle, seq_lens)
    targets = (artifact_targets + [t for label, b in compared for t in targets_from_bundle(b, seq_lens, label)]
               + targets_from_baselines(baselines or [], seq_lens))
    if not artifact_targets:
        raise PocketBertError(f"{bundle.root}: no artifact at seq_len {seq_lens}; the bundle has {bundle.seq_lens}")
    rounds = max(1, min(rounds or runs, runs))  # default: one timed run per row per round, A B C A B C ...
    device = sysinfo.host_info()
    config = {"threads": threads, "runs": runs, "warmup": warmup, "seq_lens": seq_lens, "batch_size": 1,
              "rounds": rounds, "baseline": ",".join(b["name"] for b in baselines) if baselines else None}
    if compared:
        config["compared"] = {label: str(Path(b.root).resolve()) for label, b in compared}
    doc = new_document(bundle, config, device, command)
    if max(threads) > device["cores_available"]:
        doc["notes"].append(f"{max(threads)} threads on {device['cores_available']} available cores: threads share cores")
    doc["notes"].append("host CPU, not a phone: see `device` and the mobile `estimates` (lower bounds, not measurements)")
    doc["notes"].append(f"load average at start {_loadavg()} on {device['cores']} cores")
    log(f"measuring host GEMM peak at {threads} threads")
    doc["peak"] = measure_peak(threads)
    add_estimates(doc, targets)
    write_results(out, doc)
    for n in seq_lens:
        group = [t for t in targets if t.seq_len == n]
        for th in threads:
            log(f"seq_len {n}, {th} thread(s): {len(group)} rows, {rounds} interleaved rounds")
            rows = run_group(group, th, runs, warmup, rounds, doc["peak"], log)
            if profile and th == threads[0]:
                profile_rows(rows, group, th, max(1, min(runs, 10)), log)
            doc["rows"].extend(rows)
            write_results(out, doc)
    if texts:
        doc["real_lengths"] = measure_real_lengths(bundle, targets, baselines or [], compared, texts, text_sample,
                                                   threads[0], min(rounds, 10), warmup, log)
        write_results(out, doc)
    doc["notes"].append(f"load average at end {_loadavg()}: other processes on this machine slow multi-thread "
                        "rows most (a thread that loses its core stalls every parallel region)")
    doc["complete"] = True
    write_results(out, doc)
    return doc


@dataclass
class BenchOptions:
    """What `pocketbert bench` measures. Validated at construction (bad values raise PocketBertError)."""

    bundle: str
    out: str
    device: str = "host"  # host | adb | adb:SERIAL | qemu[:CORE]
    threads: list[int] = field(default_factory=lambda: [1, 2])
    seq_lens: list[int] | None = None  # None: every bucket of the bundle
    runs: int = 50
    warmup: int = 10
    rounds: int | None = None  # None: one timed run per row per round
    formats: list[str] | None = None  # None: every format of the bundle
    baseline: str | None = None  # teacher: the teacher as users run it, interleaved
    teacher: Reference | None = None  # None: the teacher recorded in the bundle's manifest
    peers: list[Reference] = field(default_factory=list)  # public models measured the same way, interleaved
    quality: list[str] = field(default_factory=list)  # `pocketbert eval --json` files
    profile: bool = True
    cache: str | None = None  # teacher ONNX files and the arm64 environment live under it
    binary: str | None = None  # adb: a benchmark binary to push instead of the demo app
    package: str = "io.pocketbert.demo"
    timeout: float = 600
    command: str | None = None  # the `pocketbert ...` line recorded in the results' provenance
    compare: list[str] = field(default_factory=list)  # other bundles (`PATH` or `LABEL=PATH`) measured in the same run
    # files whose sentences give the latency at real lengths (None: no such section; `pocketbert bench` and the
    # build pass the dev suite's files, pipeline/suite.py dev_files, when the shared data is here)
    texts: list[str] | None = None
    text_sample: int = 300  # texts sampled from them (0: no real-length section)

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise PocketBertError(f"--runs {self.runs}: give at least 1")
        if self.warmup < 0:
            raise PocketBertError(f"--warmup {self.warmup}: give 0 or more")
        if self.rounds is not None and not 1 <= self.rounds <= self.runs:
            raise PocketBertError(f"--rounds {self.rounds}: give a number from 1 to --runs ({self.runs}); each round "
                                  "times every row once")
        d = self.device
        if not (d in ("host", "adb") or d.startswith(("adb:", "qemu"))):
            raise PocketBertError(f"--device {d!r}: use host, adb, adb:SERIAL or qemu[:CORE]")
        if not self.timeout > 0:
            raise PocketBertError(f"--timeout {self.timeout}: give the seconds to wait for the phone, > 0")
        if self.binary and not d.startswith("adb"):
            raise PocketBertError(f"--binary runs on a phone: add --device adb (not --device {d})")
        if self.text_sample < 0:
            raise PocketBertError(f"--text-sample {self.text_sample}: give 0 (no real-length latency) or more")
        if (self.compare or self.texts) and d != "host":
            raise PocketBertError(f"--compare and --texts are measured on this host: drop them with --device {d}")
        for f in self.texts or []:
            if not Path(f).is_file():
                raise PocketBertError(f"--texts {f}: no such file; give text, TSV or CSV files of the sentences to time")
        labels = [c.split("=", 1)[0] for c in self.compare if "=" in c]
        if len(set(labels)) != len(labels):
            raise PocketBertError(f"--compare labels {labels} repeat; give each compared bundle its own LABEL=PATH")
        for c in self.compare:
            if not Path(c.rpartition("=")[2]).is_dir():
                raise PocketBertError(f"--compare {c}: no such bundle folder; give [LABEL=]BUNDLE, a folder written by "
                                      "`pocketbert export`")


def _teacher_from_manifest(bundle) -> Reference:
    rec = bundle.manifest["model"].get("teacher")
    if not rec or not Path(rec["path"]).is_dir():
        raise PocketBertError(f"--baseline teacher: {bundle.root} records no teacher that exists here; "
                              "pass --teacher minilm or a folder")
    return Reference(Path(rec["path"]), dict(rec["config"]))


def _summary(doc: dict) -> str:
    lines = [f"{'name':44} {'seq':>4} {'thr':>3} {'size MB':>8} {'p50 ms':>8} {'%peak':>6}  speedup"]
    for r in doc["rows"]:
        if r["status"] != "ok":
            lines.append(f"{r['name'][:44]:44} {r['seq_len']:>4} {r['threads']:>3}  {r['status'].upper()}: {r.get('error', '')[:80]}")
            continue
        size = f"{r['size_bytes'] / 1e6:8.2f}" if "size_bytes" in r else f"{'-':>8}"
        pf = f"{100 * r['peak_fraction']:5.1f}%" if "peak_fraction" in r else f"{'-':>6}"
        sp = ", ".join(f"{v:.2f}x vs {k}" for k, v in r.get("speedup_vs", {}).items() if k.startswith(("teacher", "peer")))
        lines.append(f"{r['name'][:44]:44} {r['seq_len']:>4} {r['threads']:>3} {size} {r['latency_ms_p50']:8.2f} {pf}  {sp}")
    return "\n".join(lines)


def main(opts: BenchOptions, log: Callable[[str], None] = print) -> tuple[dict, str]:
    """Measure a bundle where `opts.device` says; returns (results document, human summary).

    Raises:
        PocketBertError: a bad bundle, a bucket or format the bundle lacks, no teacher for the baseline,
            or a device that cannot be reached.
    """
    from .schema import check_output_file

    if opts.device.startswith("qemu"):  # emulated Arm cores: golden parity, emulated times only
        from . import emulation

        cache = Path(opts.cache) / "arm64" if opts.cache else None
        doc = emulation.run_bundle(opts.bundle, opts.out, opts.device, formats=opts.formats, threads=1,
                                   timed_runs=min(opts.runs, 3), cache=cache, log=log)
        return doc, emulation.parity_table(doc) + f"\nresults: {opts.out}"
    out = check_output_file(opts.out)
    bundle = load_bundle(opts.bundle)
    seq_lens = opts.seq_lens or bundle.seq_lens
    missing = [n for n in seq_lens if n not in bundle.seq_lens]
    if missing:
        raise PocketBertError(f"--seq-len {missing} not in the bundle (it has buckets {bundle.seq_lens})")
    if opts.formats:
        have = {a["format"] for a in bundle.artifacts}
        if not set(opts.formats) <= have:
            raise PocketBertError(f"--formats {sorted(set(opts.formats) - have)} not in the bundle (it has {sorted(have)})")
        bundle.manifest["artifacts"] = [a for a in bundle.artifacts if a["format"] in opts.formats]

    quality_by_artifact, quality_by_checkpoint = read_quality(opts.quality)
    for a in bundle.artifacts:
        q = quality_by_artifact.get((a["format"], a["quant"]))
        if q:
            a["quality"] = q

    if opts.device.startswith("adb"):
        from . import adb

        serial = opts.device.split(":", 1)[1] if ":" in opts.device else None
        doc = adb.run_adb_bench(bundle, out, serial=serial, threads=opts.threads, seq_lens=seq_lens, runs=opts.runs,
                                warmup=opts.warmup, binary=opts.binary, package=opts.package, timeout=opts.timeout,
                                command=opts.command)
        return doc, f"wrote {out} ({len(doc['rows'])} rows from {doc['device'].get('name', 'the phone')})\n" + _summary(doc)

    compared = [_compared(c, bundle, seq_lens, opts.formats) for c in opts.compare]
    texts = list(opts.texts or []) if opts.text_sample else []
    refs = ([opts.teacher or _teacher_from_manifest(bundle)] if opts.baseline == "teacher" else []) + opts.peers
    baselines = []
    cache = Path(opts.cache) if opts.cache else default_cache()
    for ref in refs:
        ref.quality = ref.quality or quality_by_checkpoint.get(str(Path(ref.path).resolve()), {})
        log(f"preparing {ref.name} baselines (ONNX exports cached in {Path(cache).name})")
        baselines += prepare_baselines(ref, cache)
    doc = run_bench(bundle, out, threads=opts.threads, seq_lens=seq_lens, runs=opts.runs, warmup=opts.warmup,
                    baselines=baselines, rounds=opts.rounds, profile=opts.profile, log=log, command=opts.command,
                    compared=compared, texts=texts, text_sample=opts.text_sample)
    if not texts and opts.text_sample:
        doc["notes"].append("no real-length latency: no texts to time (the dev suite's files were not found; "
                            "pass --texts FILE)")
    failed = [r for r in doc["rows"] if r["status"] == "failed"]
    text = f"wrote {out}: {len(doc['rows'])} rows" + (f", {len(failed)} failed" if failed else "") + "\n" + _summary(doc)
    return doc, text


def _compared(spec: str, bundle, seq_lens: list[int], formats: list[str] | None) -> tuple[str, object]:
    """(label, bundle) of a `--compare` value (`PATH` or `LABEL=PATH`; the label defaults to the folder name),
    restricted to `formats` like the main bundle. It must hold the buckets measured."""
    label, _, path = spec.rpartition("=")
    other = load_bundle(path)
    label = label or Path(path).resolve().name
    missing = [n for n in seq_lens if n not in other.seq_lens]
    if missing:
        raise PocketBertError(f"--compare {spec}: it has buckets {other.seq_lens}, not {missing}; compare bundles "
                              "exported with the same --seq-len")
    if formats:
        other.manifest["artifacts"] = [a for a in other.artifacts if a["format"] in formats]
    if other.manifest["model"].get("config", {}).get("vocab_size") != bundle.manifest["model"]["config"].get("vocab_size"):
        raise PocketBertError(f"--compare {spec}: its vocabulary size differs; compare bundles of the same student")
    return label, other


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"
