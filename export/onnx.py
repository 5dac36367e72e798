"""ONNX: `torch.onnx.export(dynamo=True)` to one file; int8 by ONNX Runtime dynamic quantization."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import PocketBertError

from .wrapper import INPUT_NAMES

OPSET = 18


def _rename_io(model, output_name: str) -> None:
    """Name the graph output `output_name`; an internal value of that name (the exporter names the
    embedding gather `embedding`) is renamed first so the graph stays valid."""
    g = model.graph
    old = g.output[0].name
    if old == output_name:
        return
    taken = {v for n in g.node for v in n.output} | {i.name for i in g.initializer}
    if output_name in taken:
        fresh = output_name + "_internal"
        for n in g.node:
            n.output[:] = [fresh if v == output_name else v for v in n.output]
            n.input[:] = [fresh if v == output_name else v for v in n.input]
        for vi in g.value_info:
            if vi.name == output_name:
                vi.name = fresh
    for n in g.node:
        n.output[:] = [output_name if v == old else v for v in n.output]
        n.input[:] = [output_name if v == old else v for v in n.input]
    g.output[0].name = output_name


def export(module: torch.nn.Module, example_inputs: tuple, path: Path, quant: str, output_name: str = "embedding") -> dict:
    """Write `path` (.onnx, weights inside the file). Returns notes for the manifest."""
    import onnx

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(module, example_inputs, str(fp32), dynamo=True, external_data=False, optimize=True,
                          opset_version=OPSET, input_names=list(INPUT_NAMES), verbose=False)
        model = onnx.load(str(fp32))
        _rename_io(model, output_name)
        onnx.checker.check_model(model)
        if quant == "fp32":
            onnx.save(model, str(path))
        elif quant == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # The exporter's value_info can disagree with ONNX Runtime's rewritten graph (a classifier
            # Gemm failed shape inference: (32) vs (3)); the quantizer re-infers shapes without it.
            del model.graph.value_info[:]
            onnx.save(model, str(fp32))
            quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gather"])
        else:
            raise PocketBertError(f"onnx has no {quant} mode; use fp32 or int8")
    ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
    return {"opset": OPSET, "ops": ops}


class Runner:
    """One ONNX Runtime session; call with int32 (1, N) arrays."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": np.asarray(input_ids, dtype=np.int32), "attention_mask": np.asarray(attention_mask, dtype=np.int32)}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)


def load(path: Path) -> Runner:
    return Runner(path)
