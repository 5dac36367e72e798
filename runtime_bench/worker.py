"""One measured model in one fresh process: `python -m pocketbert.runtime_bench.worker SPEC_JSON`.

A fresh process per (row, threads) gives a clean load time and a clean peak-RSS delta. The process pins
itself to `spec["cores"]` before any runtime is imported (thread pools are sized and placed at import or
load), loads the model, runs one first inference, then answers commands on stdin, one JSON per line:

  {"cmd": "run", "n": 5}        -> {"samples_ms": [...], "cpu_ms": [...]}  (wall clock, process CPU time)
  {"cmd": "run_texts", "indices": [0, 1]}  -> the same for those real-length inputs of the spec's
                                   `texts_file` (a row over several programs: `paths`)
  {"cmd": "stats"}              -> {"peak_rss_delta_mb": ...}
  {"cmd": "profile", "n": 10}   -> {"ops_top": [...], "ops_profile_note": "..."}
  {"cmd": "exit"}

Replies are lines starting with `@@pocketbert ` (runtimes print to stdout too; those lines are ignored).
The first reply is {"ready": true, "load_ms", "first_inference_ms"} or {"error": "..."}.
This file imports no pocketbert training code; runtimes are imported lazily, per runner.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path

PREFIX = "@@pocketbert "


def reply(obj: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _status_kb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> float | None:
    """Current RSS in MB, after resetting the kernel's peak-RSS counter (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    rss = _status_kb("VmRSS")
    if rss is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 * (1 / 1024 if sys.platform == "darwin" else 1)
    return rss / 1024


def peak_rss_mb() -> float | None:
    hwm = _status_kb("VmHWM")
    if hwm is None:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / 2**20 if sys.platform == "darwin" else r / 1024
    return hwm / 1024


def make_inputs(seq_len: int, vocab_size: int, seed: int = 0):
    """Token ids (deterministic, [CLS] ... [SEP]) and an all-ones mask: the full bucket is real text."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1000 if vocab_size > 2000 else 5, vocab_size, size=(1, seq_len), dtype=np.int64)
    ids[0, 0], ids[0, -1] = (101, 102) if vocab_size > 2000 else (2, 3)
    mask = np.ones((1, seq_len), dtype=np.int64)
    return ids, mask


def _feed_for(name: str, position: int, ids, mask):
    lname = name.lower()
    if "mask" in lname:
        return mask
    if "token_type" in lname or "segment" in lname:
        return ids * 0
    if "ids" in lname or "input" in lname:
        return ids
    return ids if position == 0 else mask


# ---------------------------------------------------------------- runners: load() -> Program

class Program:
    """A loaded model: `prepare(ids, mask)` makes the runtime's inputs from int64 (1, N) arrays (outside any
    timing: an app has its tensors before it calls the model), `run(args)` is the timed call."""

    def __init__(self, prepare, run, handle):
        self.prepare, self.run, self.handle = prepare, run, handle


def load_onnxruntime(spec: dict, path: str) -> Program:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if spec.get("profile_dir"):
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(spec["profile_dir"]) / "ort")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()

    def prepare(ids, mask):
        return {inp.name: _feed_for(inp.name, i, ids, mask).astype(np.int32 if "int32" in inp.type else np.int64)
                for i, inp in enumerate(inputs)}

    return Program(prepare, lambda feed: sess.run(None, feed), sess)


def load_litert(spec: dict, path: str) -> Program:
    """Inputs are set in `run` only when they change (a fixed-bucket row sets them once, as before); a new
    length resizes the inputs first (`resize_tensor_input`, then `allocate_tensors`), as an app would."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=spec["threads"])
    interp.allocate_tensors()
    details = interp.get_input_details()
    named = any("mask" in d["name"].lower() for d in details)
    out_idx = [d["index"] for d in interp.get_output_details()]
    state = {"args": None, "shape": [list(d["shape"]) for d in details]}

    def prepare(ids, mask):
        return [(_feed_for(d["name"], i, ids, mask) if named else (ids, mask)[min(i, 1)]).astype(d["dtype"])
                for i, d in enumerate(details)]

    def run(args):
        if args is not state["args"]:
            shapes = [list(a.shape) for a in args]
            if shapes != state["shape"]:
                for d, shape in zip(details, shapes):
                    interp.resize_tensor_input(d["index"], shape)
                interp.allocate_tensors()
                state["shape"] = shapes
            for d, a in zip(details, args):
                interp.set_tensor(d["index"], a)
            state["args"] = args
        interp.invoke()
        return [interp.get_tensor(i) for i in out_idx]

    return Program(prepare, run, interp)


def load_executorch(spec: dict, path: str) -> Program:
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(spec["threads"])
    rt = Runtime.get()
    program = rt.load_program(path, enable_etdump=bool(spec.get("profile_dir")), debug_buffer_size=0)
    method = program.load_method("forward")
    meta = method.metadata
    dtypes = [{"Int": torch.int32, "Long": torch.int64}.get(str(meta.input_tensor_meta(i).dtype()).split(".")[-1], torch.int32)
              for i in range(meta.num_inputs())]

    def prepare(ids, mask):
        return [torch.from_numpy((ids, mask)[min(i, 1)]).to(dtype) for i, dtype in enumerate(dtypes)]

    return Program(prepare, method.execute, program)


def load_pytorch_eager(spec: dict, path: str) -> Program:
    """The teacher as users run it today: transformers AutoModel, fp32, mean pooling over the mask."""
    import torch
    from transformers import AutoModel

    torch.set_num_threads(spec["threads"])
    model = AutoModel.from_pretrained(path).eval()  # its modeling module was imported in prepare

    @torch.inference_mode()
    def run(args):
        t_ids, t_mask = args
        return mean_pool(model(input_ids=t_ids, attention_mask=t_mask).last_hidden_state, t_mask)

    return Program(lambda ids, mask: (torch.from_numpy(ids), torch.from_numpy(mask)), run, model)


def mean_pool(hidden, mask):
    """Mean of `hidden` (B, T, H) over the real tokens of `mask` (B, T): the sentence-transformers pooling
    that users run around a transformers model (the teacher baselines; our encoder pools in its graph)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, H)


def load_model2vec(spec: dict, path: str) -> Program:
    """A static (model2vec) peer as model2vec runs it: numpy, the mean of the table rows of the real tokens,
    L2-normalised. `path` is the model folder (model.safetensors holds `embeddings`, (V, D))."""
    import numpy as np
    from safetensors.numpy import load_file

    table = load_file(str(Path(path) / "model.safetensors"))["embeddings"]

    def run(real):
        v = table[real].mean(axis=0)
        return v / (np.linalg.norm(v) + 1e-32)

    return Program(lambda ids, mask: ids[0][mask[0].astype(bool)], run, table)


def load_coreml(spec: dict, path: str) -> Program:
    import coremltools as ct

    model = ct.models.MLModel(path, compute_units=ct.ComputeUnit.CPU_ONLY)
    names = [i.name for i in model.get_spec().description.input]

    def prepare(ids, mask):
        return {n: _feed_for(n, i, ids, mask).astype("int32") for i, n in enumerate(names)}

    return Program(prepare, model.predict, model)


RUNNERS = {"onnxruntime": load_onnxruntime, "litert": load_litert, "executorch": load_executorch,
           "pytorch_eager": load_pytorch_eager, "coreml": load_coreml, "model2vec": load_model2vec}
# Modules imported before the RSS baseline, so that the delta is the model, not the runtime library.
RUNTIME_MODULES = {"onnxruntime": ["numpy", "onnxruntime"], "litert": ["numpy", "ai_edge_litert.interpreter"],
                   "executorch": ["torch", "executorch.runtime", "executorch.extension.pybindings.portable_lib"],
                   "pytorch_eager": ["torch", "transformers"], "coreml": ["coremltools"],
                   "model2vec": ["numpy", "safetensors.numpy"]}


def prepare_pytorch_eager(spec: dict) -> None:
    """Import the model's modeling module (transformers imports it lazily) so load_ms is the load, not the import."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    MODEL_MAPPING[type(AutoConfig.from_pretrained(spec["path"]))]


PREPARE = {"pytorch_eager": prepare_pytorch_eager}


# ---------------------------------------------------------------- per-operator profiles

def _top(totals: dict[str, float], counts: dict[str, int], n_runs: int, k: int = 8) -> list[dict]:
    total = sum(totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:k]
    return [{"op": op, "time_ms": us / 1000 / n_runs, "share": us / total, "count": counts[op] // max(n_runs, 1)}
            for op, us in rows]


def profile_onnxruntime(handle, infer, n: int) -> dict:
    for _ in range(n):
        infer()
    path = handle.end_profiling()
    events = json.loads(Path(path).read_text())
    totals, counts = collections.defaultdict(float), collections.Counter()
    runs = sum(1 for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            totals[op] += e.get("dur", 0)
            counts[op] += 1
    return {"ops_top": _top(totals, counts, max(runs, 1)),
            "ops_profile_note": f"ONNX Runtime profiler, {max(runs, 1)} runs, kernel time per op type"}


def profile_executorch(handle, infer, n: int, profile_dir: str) -> dict:
    """ETDump through the devtools Inspector. Events nest: DELEGATE_CALL wraps the XNNPACK operators it ran
    (named like `Fully Connected (NC, QDU8, F32, QC8W) GEMM #3`), OPERATOR_CALL wraps `native_call_*` kernels;
    the leaves are ranked, as a share of Method::execute time."""
    import re

    for _ in range(n):
        infer()
    etdump = str(Path(profile_dir) / "run.etdp")
    handle.write_etdump_result_to_file(etdump, str(Path(profile_dir) / "debug.bin"))
    from executorch.devtools import Inspector

    inspector = Inspector(etdump_path=etdump)
    totals, counts = collections.defaultdict(float), collections.Counter()
    execute_ms, delegate_ms, runs = 0.0, 0.0, 0
    for block in inspector.event_blocks:
        for ev in block.events:
            if ev.perf_data is None:
                continue
            raw = list(ev.perf_data.raw)  # ms per occurrence
            if ev.name == "Method::execute":
                runs += len(raw)
                execute_ms += sum(raw)
            elif ev.name == "DELEGATE_CALL":
                delegate_ms += sum(raw)
            elif ev.name not in ("OPERATOR_CALL", "Program::load_method", "Method::init"):
                op = re.sub(r"\s+#\d+$", "", ev.name).removeprefix("native_call_")
                totals[op] += sum(raw) * 1000
                counts[op] += len(raw)
    runs = max(runs, 1)
    top = _top(totals, counts, runs)
    total_us = execute_ms * 1000 or sum(totals.values()) or 1.0
    for row in top:
        row["share"] = min(row["time_ms"] * runs * 1000 / total_us, 1.0)
    share = f"{100 * delegate_ms / execute_ms:.0f}%" if execute_ms else "?"
    return {"ops_top": top,
            "ops_profile_note": f"ExecuTorch ETDump, {runs} runs; XNNPACK delegate calls take {share} of "
                                "execute time; shares are of Method::execute time"}


def profile(spec: dict, handle, infer, n: int) -> dict:
    runner = spec["runner"]
    if runner == "onnxruntime":
        return profile_onnxruntime(handle, infer, n)
    if runner == "executorch":
        return profile_executorch(handle, infer, n, spec["profile_dir"])
    if runner == "litert":
        return {"ops_top": [], "ops_profile_note": "LiteRT's Python Interpreter has no op profiler; use "
                "benchmark_model --enable_op_profiling=true on the device"}
    return {"ops_top": [], "ops_profile_note": f"no per-operator profile for {runner}"}


# ---------------------------------------------------------------- GEMM peak

def _ort_gemm(n: int, int8: bool, threads: int):
    """A one-node ONNX Runtime session: MatMul (fp32) or MatMulInteger (uint8 x int8 -> int32), B constant."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        a = rng.integers(0, 255, (n, n), dtype=np.uint8)
        b = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "B")
        io = (TensorProto.UINT8, TensorProto.INT32, "MatMulInteger")
    else:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")
        io = (TensorProto.FLOAT, TensorProto.FLOAT, "MatMul")
    graph = helper.make_graph([helper.make_node(io[2], ["A", "B"], ["Y"])], "gemm",
                              [helper.make_tensor_value_info("A", io[0], [n, n])],
                              [helper.make_tensor_value_info("Y", io[1], [n, n])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"A": a})


def gemm_peak(threads: int, seconds: float = 0.3) -> dict:
    """Best rate any of a few square GEMMs reaches, over the libraries the runtimes use: fp32 through
    ONNX Runtime's MLAS, numpy (OpenBLAS) and torch.mm (MKL, which can pick slow kernels on AMD CPUs);
    int8 through ONNX Runtime MatMulInteger and torch._int_mm (oneDNN), int8 x int8 -> int32.

    Sizes 256 to 1024 and best-of timing: on a shared machine a short GEMM is more often left alone by the
    scheduler than a long one, and the best rate is the closest to what the core can do.
    """
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    out = {"fp32_gflops": None, "int8_gops": None, "fp32_source": None, "int8_source": None}

    def best_rate(fn, n: int) -> float:
        fn()
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            fn()
            best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        return best

    for n in (256, 512, 1024):
        a32 = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        t32 = torch.from_numpy(a32)
        a8 = torch.randint(-127, 127, (n, n), dtype=torch.int8)
        candidates = [("fp32", f"numpy matmul {n}", lambda a=a32: a @ a), ("fp32", f"torch.mm {n}", lambda t=t32: torch.mm(t, t)),
                      ("int8", f"torch._int_mm {n}", lambda a=a8: torch._int_mm(a, a)),
                      ("fp32", f"onnxruntime MatMul {n}", _ort_gemm(n, False, threads)),
                      ("int8", f"onnxruntime MatMulInteger {n}", _ort_gemm(n, True, threads))]
        for kind, name, fn in candidates:
            try:
                rate = best_rate(fn, n)
            except RuntimeError:
                continue
            key = "fp32_gflops" if kind == "fp32" else "int8_gops"
            if out[key] is None or rate > out[key]:
                out[key], out[kind + "_source"] = rate, name
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    cores = spec.get("cores")
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    if spec.get("mode") == "peak":
        reply(gemm_peak(spec["threads"]))
        return 0
    runner = spec["runner"]
    try:
        import importlib

        for mod in RUNTIME_MODULES[runner]:
            importlib.import_module(mod)
        if runner in PREPARE:
            PREPARE[runner](spec)
        ids, mask = make_inputs(spec["seq_len"], spec.get("vocab_size") or 30522)
        rss0 = reset_peak_rss()
        t0 = time.perf_counter()
        programs = [RUNNERS[runner](spec, path) for path in spec.get("paths") or [spec["path"]]]
        load_ms = (time.perf_counter() - t0) * 1e3
        fixed = programs[0].prepare(ids, mask)
        texts = _text_inputs(spec, programs)
        t0 = time.perf_counter()
        if texts:
            programs[texts[0][0]].run(texts[0][1])
        else:
            programs[0].run(fixed)
        first_ms = (time.perf_counter() - t0) * 1e3
    except Exception as e:  # any runtime's load failure becomes a failed row, not a crash of the bench
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        reply({"error": msg[:400]})
        return 1
    reply({"ready": True, "load_ms": load_ms, "first_inference_ms": first_ms})

    def timed(calls) -> dict:
        samples, cpu = [], []
        for program, args in calls:
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            program.run(args)
            t1, c1 = time.perf_counter_ns(), time.process_time_ns()
            samples.append((t1 - t0) / 1e6)
            cpu.append((c1 - c0) / 1e6)  # CPU time of all this process's threads: not inflated by waiting
        return {"samples_ms": samples, "cpu_ms": cpu}

    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "run":
                reply(timed([(programs[0], fixed)] * cmd["n"]))
            elif cmd["cmd"] == "run_texts":
                reply(timed([(programs[texts[k][0]], texts[k][1]) for k in cmd["indices"]]))
            elif cmd["cmd"] == "stats":
                peak = peak_rss_mb()
                reply({"peak_rss_delta_mb": None if peak is None or rss0 is None else max(peak - rss0, 0.0)})
            elif cmd["cmd"] == "profile":
                reply(profile(spec, programs[0].handle, lambda: programs[0].run(fixed), cmd["n"]))
            elif cmd["cmd"] == "exit":
                reply({"bye": True})
                return 0
        except Exception as e:
            reply({"error": " ".join(f"{type(e).__name__}: {e}".split())[:400]})
    return 0


def _text_inputs(spec: dict, programs: list[Program]) -> list[tuple[int, object]]:
    """The real-length inputs of `spec["texts_file"]` (JSON: [[program index, ids, n real tokens], ...], ids
    already padded to what that program takes), each prepared for its program; [] without the file."""
    import numpy as np

    if not spec.get("texts_file"):
        return []
    out = []
    for index, ids, n_real in json.loads(Path(spec["texts_file"]).read_text()):
        ids = np.asarray([ids], dtype=np.int64)
        mask = (np.arange(ids.shape[1]) < n_real).astype(np.int64)[None]
        out.append((index, programs[index].prepare(ids, mask)))
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
