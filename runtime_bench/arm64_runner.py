"""Run a bundle's artifacts on golden.json inside the emulated aarch64 Python and print JSON.

Debian's arm64 python3.11 runs this file under qemu-aarch64 (see runtime_bench/emulation.py). The emulated
site-packages hold only the aarch64 wheels (numpy and the runtime of each artifact: ai_edge_litert,
onnxruntime, executorch), not pocketbert, so the runner loads the one module of the bundle contract it needs,
pocketbert/bundle/parity.py (numpy and the standard library only), from the file the spec names: the golden
cases are padded by the same `cases_for` / `case_inputs` as everywhere else. The host compares the outputs
with golden.json using the same module's `golden_parity`, the check `pocketbert verify` runs.

    qemu-aarch64 -cpu cortex-a55 -L SYSROOT SYSROOT/usr/bin/python3.11 arm64_runner.py SPEC_JSON

SPEC_JSON: {"bundle": DIR, "files": [artifact file names], "threads": 1, "timed_runs": 1,
"parity": path of pocketbert/bundle/parity.py}
stdout (one JSON object): {"python", "machine", "versions", "rows": [{file, status, outputs | argmax,
load_ms, first_inference_ms, inference_ms, error}]}; a row whose runtime cannot load is "failed" with
its one-line error, the others still run.
"""

import json
import sys
import time

PARITY_MODULE = "pocketbert_bundle_parity"


def load_parity(path):
    """pocketbert/bundle/parity.py loaded from its file (the emulated Python has no pocketbert to import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(PARITY_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[PARITY_MODULE] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def host_parity():
    from pocketbert.bundle import parity

    return parity


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


def run_artifact(np, root, artifact, golden, pad_id, threads, timed_runs, mlm, parity=None):
    """Run one artifact on every golden case that fits its bucket. `parity`: the bundle contract's parity
    module (None: import it, as the host does)."""
    parity = parity or host_parity()
    fmt, seq_len = artifact["format"], artifact["seq_len"]
    row = {"file": artifact["file"], "format": fmt, "quant": artifact["quant"], "seq_len": seq_len}
    if fmt not in LOADERS:
        return {**row, "status": "skipped", "error": f"format {fmt} has no aarch64 Linux runtime"}
    cases = parity.cases_for(golden, seq_len)
    try:
        t0 = time.perf_counter()
        run = LOADERS[fmt](np, f"{root}/{artifact['file']}", threads)
        row["load_ms"] = (time.perf_counter() - t0) * 1e3
        outputs = []
        for i, case in enumerate(cases):
            t0 = time.perf_counter()
            out = run(*parity.case_inputs(case, seq_len, pad_id))
            if i == 0:
                row["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
            outputs.append(out)
        times = []
        for _ in range(timed_runs if cases else 0):
            t0 = time.perf_counter()
            run(*parity.case_inputs(cases[0], seq_len, pad_id))
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
    parity = load_parity(spec["parity"])
    with open(f"{root}/manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    with open(f"{root}/{manifest['golden']['file']}", encoding="utf-8") as f:
        golden = json.load(f)
    pad_id = manifest["tokenizer"]["special_tokens"]["[PAD]"]
    mlm = golden.get("task") == "mlm" or any("expected_argmax" in c for c in golden["cases"][:1])
    wanted = set(spec["files"])
    rows = [run_artifact(np, root, a, golden, pad_id, int(spec.get("threads", 1)), int(spec.get("timed_runs", 1)), mlm,
                         parity) for a in manifest["artifacts"] if a["file"] in wanted]
    versions = {"numpy": np.__version__}
    for fmt in {r["format"] for r in rows}:
        if fmt in RUNTIME_MODULES:
            versions[RUNTIME_MODULES[fmt]] = version_of(RUNTIME_MODULES[fmt])
    json.dump({"python": platform.python_version(), "machine": platform.machine(), "versions": versions, "rows": rows},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
