"""Symmetric round-to-nearest weight quantization: the one grid every int8 / int4 table and fake-quant here uses.

Per block of `group` columns of a row (the whole row when `group` is None or does not divide it):
scale = absmax / qmax (qmax = 127 for int8, 7 for int4), q = round(w / scale). The int4 grid is what the
runtimes' int4 rungs store (ExecuTorch's packed table, ai-edge-quantizer's LiteRT blocks), so a table snapped
to it (`pipeline.student.snap_table_int4`) survives their quantization exactly.
"""

from __future__ import annotations

import torch


def symmetric_blocks(w: torch.Tensor, bits: int, group: int | None = None,
                     fp16_scale: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) of a 2-D weight (rows, cols): q (rows, cols/g, g) integers as float32 in [-qmax, qmax],
    scale (rows, cols/g, 1) float32, on the fp16 grid when `fp16_scale` (what a table with fp16 scales
    dequantizes with; a block whose fp16 scale underflows, e.g. an all-zero padding row, gets scale 0, q 0).
    Dequantize with `q * scale`."""
    rows, cols = w.shape
    g = group if group and cols % group == 0 else cols
    qmax = 2.0 ** (bits - 1) - 1
    wg = w.detach().float().reshape(rows, cols // g, g)
    scale = wg.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / qmax
    if fp16_scale:
        scale = scale.half().float()
    q = torch.where(scale > 0, torch.clamp(torch.round(wg / scale.clamp(min=1e-30)), -qmax, qmax), 0.0)
    return q, scale


def fake_quant(w: torch.Tensor, bits: int, group: int | None = None, fp16_scale: bool = False) -> torch.Tensor:
    """`w` after a round trip through `symmetric_blocks` (same shape, float32)."""
    q, scale = symmetric_blocks(w, bits, group, fp16_scale)
    return (q * scale).reshape(w.shape)
