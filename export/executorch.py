"""ExecuTorch: `torch.export` -> `to_edge_transform_and_lower` with the XNNPACK partitioner -> `.pte`.

int8: the XNNPACK PT2E quantizer (dynamic int8 activations, symmetric per-channel int8 linear weights)
plus the word embedding replaced by an int8 table with per-row scales before export. The PT2E
quantizer leaves embeddings in fp32, and in a small BERT the embedding is about half the weights
(MiniLM-L3: 53 MB -> 18 MB with it, cosine 0.99998 against fp32).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pocketbert.errors import PocketBertError


class Int8RowEmbedding(nn.Module):
    """Weight-only int8 embedding: `q[ids].float() * scale[ids]`, symmetric, one fp32 scale per row.

    The gather runs on int8 rows (4x smaller table); only the gathered (B, T, E) rows are dequantized.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        w = weight.detach().float()
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0  # (V, 1)
        self.register_buffer("q", torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8))  # (V, E)
        self.register_buffer("scale", scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.q[ids].to(torch.float32) * self.scale[ids]  # (B, T, E)


def quantize_embedding(module: nn.Module) -> nn.Module:
    """A copy of the TaskModule whose word embedding is an Int8RowEmbedding."""
    module = copy.deepcopy(module)
    emb = module.encoder.embeddings
    emb.word_embeddings = Int8RowEmbedding(emb.word_embeddings.weight)
    return module


def _delegation(graph_module) -> dict:
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    total = info.num_delegated_nodes + info.num_non_delegated_nodes
    outside = sorted({b.op_type for b in info.delegation_by_operator.values() if b.non_delegated})
    return {
        "xnnpack_delegated_nodes": info.num_delegated_nodes,
        "total_op_nodes": total,
        "xnnpack_share": round(info.num_delegated_nodes / max(total, 1), 4),
        "xnnpack_subgraphs": info.num_delegated_subgraphs,
        "ops_outside_xnnpack": outside,
    }


def export(module: nn.Module, example_inputs: tuple, path: Path, quant: str, output_name: str = "embedding") -> dict:
    """Write `path` (.pte). Returns notes: how much of the graph XNNPACK runs."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    module = module.eval()
    if quant == "int8":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        module = quantize_embedding(module)
        graph = torch.export.export(module, example_inputs).module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
        prepared = prepare_pt2e(graph, quantizer)
        prepared(*example_inputs)  # dynamic quantization needs no calibration data; one pass sets up observers
        module = convert_pt2e(prepared)
    elif quant != "fp32":
        raise PocketBertError(f"executorch has no {quant} mode; use fp32 or int8")
    with torch.no_grad():
        program = torch.export.export(module, example_inputs)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    notes = _delegation(edge.exported_program().graph_module)
    Path(path).write_bytes(edge.to_executorch().buffer)
    return notes


def set_threads(n: int) -> None:
    """XNNPACK's thread pool size for this process (ExecuTorch pybindings)."""
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    _unsafe_reset_threadpool(int(n))


class Runner:
    """One loaded `forward` method; call with int32 (1, N) arrays."""

    def __init__(self, path: Path):
        from executorch.runtime import Runtime

        self.program = Runtime.get().load_program(Path(path))
        self.method = self.program.load_method("forward")

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int32))
        mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int32))
        return self.method.execute([ids, mask])[0].detach().numpy().astype(np.float32, copy=True)


def load(path: Path) -> Runner:
    return Runner(path)
