"""Run a bundle's artifacts on golden.json inside the emulated aarch64 Python and print JSON.

This file is copied into the emulation cache and executed there by Debian's arm64 python3.11 under
qemu-aarch64 (see runtime_bench/emulation.py). It imports only the standard library, numpy and the
runtime of each artifact (ai_edge_litert, onnxruntime, executorch), never pocketbert: the emulated
site-packages hold only the aarch64 wheels. The host compares the outputs with golden.json using
pocketbert.bundle.parity, the same check `pocketbert verify` runs.

    qemu-aarch64 -cpu cortex-a55 -L SYSROOT SYSROOT/usr/bin/python3.11 arm64_runner.py SPEC_JSON

SPEC_JSON: {"bundle": DIR, "files": [artifact file names], "threads": 1, "timed_runs": 1}
stdout (one JSON object): {"python", "machine", "versions", "rows": [{file, status, outputs | argmax,
load_ms, first_inference_ms, inference_ms, error}]}; a row whose runtime cannot load is "failed" with
its one-line error, the others still run.
"""

import json
import sys
import time


def case_inputs(np, case, seq_len, pad_id):
    # Same padding as pocketbert.export.golden.case_inputs: int32 (1, seq_len), mask 1 on real tokens.
    ids = case["ids"]
    input_ids = np.full((1, seq_len), pad_id, dtype=np.int32)
    mask = np.zeros((1, seq_len), dtype=np.int32)
    input_ids[0, : len(ids)] = ids
    mask[0, : len(ids)] = 1
    return input_ids, mask


def load_tflite(np, path, threads):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    details = interp.get_input_details()
    by_name = {d["name"]: d["index"] for d in details}
    order = [d["index"] for d in details]
    # Inputs by name, else by position, as pocketbert.export.tflite.Runner matches them.
    ids_index = next((i for n, i in by_name.items() if "input_ids" in n or n.endswith("args_0")), order[0])
    mask_index = next((i for n, i in by_name.items() if "attention_mask" in n or n.endswith("args_1")), order[1])
    out_index = interp.get_output_details()[0]["index"]

    def run(input_ids, attention_mask):
        interp.set_tensor(ids_index, np.ascontiguousarray(input_ids, dtype=np.int32))
        interp.set_tensor(mask_index, np.ascontiguousarray(attention_mask, dtype=np.int32))
        interp.invoke()
        return np.array(interp.get_tensor(out_index), dtype=np.float32)

    return run


def load_onnx(np, path, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

    def run(input_ids, attention_mask):
        feeds = {"input_ids": np.asarray(input_ids, dtype=np.int32), "attention_mask": np.asarray(attention_mask, dtype=np.int32)}
        return np.asarray(session.run(None, feeds)[0], dtype=np.float32)

    return run


def load_executorch(np, path, threads):
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")

    def run(input_ids, attention_mask):
        ids = torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int32))
        mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int32))
        return method.execute([ids, mask])[0].detach().numpy().astype(np.float32, copy=True)

    return run


LOADERS = {"tflite": load_tflite, "onnx": load_onnx, "executorch": load_executorch}
RUNTIME_MODULES = {"tflite": "ai_edge_litert", "onnx": "onnxruntime", "executorch": "executorch"}


def version_of(module):
    try:
        from importlib.metadata import version

        return version({"ai_edge_litert": "ai-edge-litert"}.get(module, module))
    except Exception:  # noqa: BLE001 - a missing distribution is reported as None
        return None


def run_artifact(np, root, artifact, golden, pad_id, threads, timed_runs, mlm):
    fmt, seq_len = artifact["format"], artifact["seq_len"]
    row = {"file": artifact["file"], "format": fmt, "quant": artifact["quant"], "seq_len": seq_len}
    if fmt not in LOADERS:
        return {**row, "status": "skipped", "error": f"format {fmt} has no aarch64 Linux runtime"}
    cases = [c for c in golden["cases"] if len(c["ids"]) <= seq_len]
    try:
        t0 = time.perf_counter()
        run = LOADERS[fmt](np, f"{root}/{artifact['file']}", threads)
        row["load_ms"] = (time.perf_counter() - t0) * 1e3
        outputs = []
        for i, case in enumerate(cases):
            t0 = time.perf_counter()
            out = run(*case_inputs(np, case, seq_len, pad_id))
            if i == 0:
                row["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
            outputs.append(out)
        times = []
        for _ in range(timed_runs if cases else 0):
            t0 = time.perf_counter()
            run(*case_inputs(np, cases[0], seq_len, pad_id))
            times.append((time.perf_counter() - t0) * 1e3)
    except Exception as e:  # noqa: BLE001 - one artifact's failure is reported, the others still run
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        return {**row, "status": "failed", "error": msg}
    row["inference_ms"] = times
    if mlm:
        # Per real position, the argmax over the vocabulary (the MLM golden stores only that).
        row["argmax"] = [np.asarray(o).reshape(seq_len, -1)[: len(c["ids"])].argmax(-1).tolist()
                         for c, o in zip(cases, outputs)]
    else:
        row["outputs"] = [np.asarray(o, dtype=np.float32).reshape(-1).tolist() for o in outputs]
    return {**row, "status": "ok", "cases": len(cases)}


def main(argv):
    spec = json.loads(argv[1])
    import platform

    import numpy as np

    root = spec["bundle"]
    with open(f"{root}/manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    with open(f"{root}/{manifest['golden']['file']}", encoding="utf-8") as f:
        golden = json.load(f)
    pad_id = manifest["tokenizer"]["special_tokens"]["[PAD]"]
    mlm = golden.get("task") == "mlm" or any("expected_argmax" in c for c in golden["cases"][:1])
    wanted = set(spec["files"])
    rows = [run_artifact(np, root, a, golden, pad_id, int(spec.get("threads", 1)), int(spec.get("timed_runs", 1)), mlm)
            for a in manifest["artifacts"] if a["file"] in wanted]
    versions = {"numpy": np.__version__}
    for fmt in {r["format"] for r in rows}:
        if fmt in RUNTIME_MODULES:
            versions[RUNTIME_MODULES[fmt]] = version_of(RUNTIME_MODULES[fmt])
    json.dump({"python": platform.python_version(), "machine": platform.machine(), "versions": versions, "rows": rows},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
