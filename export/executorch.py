"""ExecuTorch: `torch.export` -> `to_edge_transform_and_lower` with the XNNPACK partitioner -> `.pte`.

int8: the XNNPACK PT2E quantizer (dynamic int8 activations, symmetric per-channel int8 linear weights)
plus the word embedding replaced by an int8 table with per-row scales before export. The PT2E
quantizer leaves embeddings in fp32, and in a small BERT the embedding is about half the weights
(MiniLM-L3: 53 MB -> 18 MB with it, cosine 0.99998 against fp32).

int8-static: the same quantizer with is_dynamic=False, its observers calibrated on corpus text.
int4: torchao `Int8DynamicActivationIntxWeightConfig` (int4 weights in groups of 32, dynamic int8
activations), which XNNPACK lowers to its qd8-f32-qb4w GEMM, and the word embedding as a packed int4
table (`Int4RowEmbedding`: plain gather + integer arithmetic, so no quantized-kernel library is needed at
run time). int4-mixed: int4 except the sensitive parts, which get the int8 recipe.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pocketbert.errors import PocketBertError

from . import formats
from .quant import QuantRecipe
from .wrapper import dynamic_shapes

# XNNPACK re-plans per length; a dynamic program cost the same as a static one at equal length
# (2-layer student, int8: 2.93 vs 2.88 ms CPU at 32 tokens, 11.37 vs 11.61 at 128).
DYNAMIC_LENGTH = True


class Int8RowEmbedding(nn.Module):
    """Weight-only int8 embedding: `q[ids].float() * scale[ids]`, symmetric, one fp32 scale per row.

    The gather runs on int8 rows (4x smaller table); only the gathered (B, T, E) rows are dequantized.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        from pocketbert.pipeline.quantize import symmetric_blocks

        q, scale = symmetric_blocks(weight, 8)  # (V, 1, E), (V, 1, 1)
        self.register_buffer("q", q.squeeze(1).to(torch.int8))  # (V, E)
        self.register_buffer("scale", scale.squeeze(1))  # (V, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # aten.embedding, not `q[ids]`: the portable index.Tensor kernel took 11% of the int8 program's time
        # (3.1 ms of 27 in ETDump, 2-layer H=384 student, seq 128), its embedding kernel 0.16 ms
        return F.embedding(ids, self.q).to(torch.float32) * F.embedding(ids, self.scale)  # (B, T, E)


class Int4RowEmbedding(nn.Module):
    """Weight-only int4 embedding: two symmetric int4 values per byte, one fp16 scale per `group` columns.

    Storage per row: E/2 bytes + 2 * E/group bytes (E=384, group 32: 216 bytes, 0.56x the int8 table).
    Unpacking is gather, floor division, subtract and multiply on the gathered (B, T, E) rows only
    (`pipeline.quantize.unpack_int4` computes the same values with bit operations, which are not core ATen).
    """

    ZERO_POINT = 8  # `pack_int4`'s offset form: each nibble holds q + 8

    def __init__(self, weight: torch.Tensor, group: int):
        super().__init__()
        from pocketbert.pipeline.quantize import pack_int4, symmetric_blocks

        rows, dim = weight.shape
        if dim % 2:
            raise PocketBertError(f"int4 embedding needs an even embedding size, got {dim}")
        self.group = group if dim % group == 0 else dim
        # rounded with the fp16 scales it dequantizes with (V, E/g, g), (V, E/g, 1)
        q, scale = symmetric_blocks(weight, 4, self.group, fp16_scale=True)
        # stored as q + 8 (0..15), so that `forward` unpacks without sign extension
        self.register_buffer("packed", pack_int4(q.reshape(rows, dim), zero_point=self.ZERO_POINT))  # (V, E/2)
        self.register_buffer("scale", scale.squeeze(-1).to(torch.float16))  # (V, E/g)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(ids, self.packed).to(torch.int32)  # (B, T, E/2); a gather kernel, as Int8RowEmbedding
        high = torch.div(rows, 16, rounding_mode="floor")  # core ATen ops only (no shift), portable kernels
        q = torch.stack((rows - high * 16, high), dim=-1).reshape(*ids.shape, -1) - self.ZERO_POINT  # (B, T, E), -8..7
        scale = F.embedding(ids, self.scale).to(torch.float32).unsqueeze(-1)  # (B, T, E/g, 1)
        return (q.to(torch.float32).reshape(*ids.shape, -1, self.group) * scale).reshape(*ids.shape, -1)


class XnnpackLayerNorm(nn.Module):
    """LayerNorm over the last dim of a (1, T, C) tensor, written in ops XNNPACK lowers.

    ExecuTorch's XNNPACK partitioner has no layer norm: `native_layer_norm` ran in portable kernels and cut
    the delegate into 13 pieces (2-layer student). XNNPACK's mean is a global average pool over the two
    innermost dims of a 4-D tensor, so the row mean is taken on (1, T, C, 1). Same formula as nn.LayerNorm
    (biased variance, eps inside the square root); outputs differ from it by float rounding (< 1e-5).
    """

    def __init__(self, ln: nn.LayerNorm):
        super().__init__()
        self.weight, self.bias, self.eps = ln.weight, ln.bias, ln.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[-1]
        x4 = x.reshape(1, -1, channels, 1)  # (1, T, C, 1); -1, not T: a symbolic T would not lower (dynamic)
        centred = x4 - x4.mean(dim=(2, 3), keepdim=True)
        var = (centred * centred).mean(dim=(2, 3), keepdim=True)  # (1, T, 1, 1)
        y = (centred * torch.rsqrt(var + self.eps)).reshape(1, -1, channels)
        return y * self.weight + self.bias


class BmmSelfAttention(nn.Module):
    """`encoder.SelfAttention` on 3-D batched matmuls, for batch 1 (every exported program's batch).

    The 4-D `q @ k^T` decomposes to `expand_copy` + `bmm`; XNNPACK takes the bmm but not the expand, so
    each matmul copied both operands in a portable kernel and split the delegate (8 expand_copy, 1.3 ms of
    27 in ETDump at seq 128). Heads here are a view and a permute of each projection, which XNNPACK runs.
    Every reshape names T as -1 and no other size, so the same graph lowers with a dynamic T. The
    projections keep their names (`query`, `key`, `value`), so quant.part_modules still finds them.
    """

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.query, self.key, self.value = attention.query, attention.key, attention.value
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nh, hd = self.num_heads, self.head_dim
        q = self.query(x).view(-1, nh, hd).permute(1, 0, 2)  # (nh, T, hd)
        k = self.key(x).view(-1, nh, hd).permute(1, 2, 0)  # (nh, hd, T)
        v = self.value(x).view(-1, nh, hd).permute(1, 0, 2)  # (nh, T, hd)
        scores = torch.bmm(q, k) / math.sqrt(hd) + mask.view(1, 1, -1)  # (nh, T, T); mask (1, 1, 1, T)
        probs = scores.softmax(dim=-1)
        ctx = torch.bmm(probs, v).permute(1, 0, 2).contiguous().view(1, -1, nh * hd)  # (1, T, H)
        return ctx, probs.unsqueeze(0)  # probs (1, nh, T, T): unused by the exported task


def for_xnnpack(module: nn.Module) -> nn.Module:
    """`module` (a TaskModule, changed in place) with every LayerNorm and self-attention in the forms above:
    the same function, in ops the XNNPACK delegate takes whole."""
    from pocketbert.pipeline.models.encoder import SelfAttention

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LayerNorm):
                setattr(parent, name, XnnpackLayerNorm(child))
            elif isinstance(child, SelfAttention):
                setattr(parent, name, BmmSelfAttention(child))
    return module


def quantize_embedding(module: nn.Module, bits: int = 8, group: int = 32) -> nn.Module:
    """A copy of the TaskModule whose word embedding is an Int8RowEmbedding (or Int4RowEmbedding)."""
    module = copy.deepcopy(module)
    emb = module.encoder.embeddings
    w = emb.word_embeddings.weight
    emb.word_embeddings = Int8RowEmbedding(w) if bits == 8 else Int4RowEmbedding(w, group)
    return module


def _pt2e_int8(module: nn.Module, example_inputs: tuple, calibration: list | None,
               shapes: dict | None = None) -> nn.Module:
    """XNNPACK PT2E int8: dynamic activations when `calibration` is None, else static, calibrated on it.
    `shapes`: torch.export dynamic_shapes (None: static)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(module, example_inputs, dynamic_shapes=shapes).module()
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=calibration is None)
    # Static: Linear modules only. The global static config also quantizes the adds, muls and softmax
    # around them; on the 2-layer MiniLM student that left a mean cosine to fp32 of 0.86 (Linear only:
    # 0.97) over 40 STS-B train sentences and the golden cases.
    quantizer = XNNPACKQuantizer()
    quantizer = quantizer.set_global(config) if calibration is None else quantizer.set_module_type(nn.Linear, config)
    prepared = prepare_pt2e(graph, quantizer)
    # dynamic quantization needs no calibration data; one pass sets up its observers
    for ids, mask in calibration or [example_inputs]:
        prepared(torch.as_tensor(ids), torch.as_tensor(mask))
    return convert_pt2e(prepared)


def _torchao_int4(module: nn.Module, group: int, keep_int8: list[str]) -> nn.Module:
    """int4 (groups of `group`) linear weights with dynamic int8 activations, in place; linears of the
    `keep_int8` parts (`layer.{i}.attention`, `layer.{i}.ffn`, quant.part_modules) get per-channel int8
    weights instead. Linears whose input size is not a multiple of `group` (a small head) stay fp32."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    from .quant import part_modules

    keep = {path for p in keep_int8 if p != "embeddings" for path in part_modules(p)}

    def is_linear(mod: nn.Module, fqn: str, int8: bool) -> bool:
        if not isinstance(mod, nn.Linear) or mod.in_features % group:
            return False
        return (fqn in keep) == int8

    quantize_(module, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(group)),
              filter_fn=lambda m, fqn: is_linear(m, fqn, int8=False))
    if keep:
        quantize_(module, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0)),
                  filter_fn=lambda m, fqn: is_linear(m, fqn, int8=True))
    return module


# What a lowered program may still run in portable kernels, outside the XNNPACK delegate, and why. Every linear,
# matmul and layer norm is inside the delegate: tests/export/test_lowering.py reads each exported program's
# operator table (`portable_ops`) and holds it to this list.
OPS_OUTSIDE_XNNPACK = {
    "aten::embedding": "table gathers (word rows, int8 / int4 packed, their scales; position rows): XNNPACK has no gather",
    "aten::select_copy": "row 0 of the token-type table (every sentence is segment 0)",
    "aten::slice_copy": "the first T position ids",
    "aten::unsqueeze_copy": "the attention mask to (B, 1, 1, T) before the delegate; int4 group scales to (B, T, E/g, 1)",
    "dim_order_ops::_to_dim_order_copy": "int32 ids to int64 and the int mask to float: XNNPACK computes in float",
    "aten::sum": "mean pooling's two sums over T (XNNPACK's reductions are means over 4-D inner dims)",
    "aten::sym_size": "the dynamic length T, read once (dynamic-length programs)",
    # the int4 word table, unpacked from two values per byte on the gathered (B, T, E) rows only
    "aten::div": "int4 table: the high nibble (floor division by 16, int32)",
    "aten::sub": "int4 table: the low nibble and the -8 offset (int32)",
    "aten::mul": "int4 table: the high nibble times 16 (int32); the rows times their fp16 group scales",
    "aten::cat": "int4 table: low and high nibbles interleaved (stack)",
    "executorch_prim::et_view": "int4 table: a view of the unpacked rows (no copy) where T is dynamic",
}


def portable_ops(path: Path) -> list[str]:
    """The operators a .pte runs outside its delegates (`aten::embedding`, ...), read from the program itself."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(path).read_bytes())
    program = getattr(program, "program", program)  # newer releases wrap it with the named data
    return sorted({op.name for plan in program.execution_plan for op in plan.operators})


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


def export(module: nn.Module, example_inputs: tuple, path: Path, recipe: QuantRecipe, output_name: str = "embedding",
           calibration: list | None = None, dynamic: bool = False) -> dict:
    """Write `path` (.pte) as `recipe` says (formats.Exporter). Returns notes: how much of the graph XNNPACK runs.

    calibration: (input_ids, attention_mask) int32 (1, N) pairs (int8-static only).
    dynamic: the program takes any sequence length from wrapper.MIN_SEQ_LEN to the example's N (XNNPACK re-plans its
        buffers when the length changes); otherwise exactly N.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    module = for_xnnpack(copy.deepcopy(module).eval())
    shapes = dynamic_shapes(example_inputs[0].shape[1]) if dynamic else None
    if recipe.weight_bits == 8:  # int8, int8-static
        if recipe.calibrated and not calibration:
            raise PocketBertError("executorch int8-static needs calibration inputs")
        module = _pt2e_int8(quantize_embedding(module), example_inputs, calibration if recipe.calibrated else None,
                            shapes)
    elif recipe.weight_bits == 4:  # int4, int4-mixed
        module = _torchao_int4(quantize_embedding(module, recipe.embedding_bits, recipe.group), recipe.group,
                               list(recipe.keep_int8))
    with torch.no_grad():
        program = torch.export.export(module, example_inputs, dynamic_shapes=shapes)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    notes = _delegation(edge.exported_program().graph_module)
    Path(path).write_bytes(edge.to_executorch().buffer)
    notes["portable_ops"] = portable_ops(path)
    return notes


# ExecuTorch's pybindings run on every host pocketbert exports on: parity always runs (formats.Exporter).
unavailable_reason, check_spec = formats.runs_everywhere, formats.no_spec_check


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


def load(path: Path, threads: int | None = None) -> Runner:
    """A Runner; `threads` resets XNNPACK's process-wide thread pool first (None: leave it)."""
    if threads is not None:
        set_threads(threads)
    return Runner(path)
