"""Symmetric round-to-nearest weight quantization: the one grid every int8 / int4 table and fake-quant here uses.

Per block of `group` columns of a row (the whole row when `group` is None or does not divide it):
scale = absmax / qmax (qmax = 127 for int8, 7 for int4), q = round(w / scale). The int4 grid is what the
runtimes' int4 rungs store (ExecuTorch's packed table, ai-edge-quantizer's LiteRT blocks), so a table snapped
to it (`pipeline.student.snap_table_int4`) survives their quantization exactly. Tables stored two int4 values
per byte (ExecuTorch's, ONNX Runtime's) pack with `pack_int4`.
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


def pack_int4(q: torch.Tensor, zero_point: int = 0) -> torch.Tensor:
    """Two int4 values per byte, the first of each pair in the low nibble: q (..., n) integers in [-8, 7] (any
    dtype) -> uint8 (..., ceil(n / 2)); an odd n is padded with one zero nibble.

    Each value is stored as the nibble `(q + zero_point) & 0xF`: zero_point 0 is two's complement (ONNX's INT4),
    zero_point 8 the offset form 0..15 (ExecuTorch's int4 table, which unpacks with floor division alone).

    Raises:
        ValueError: a value outside [-8, 7].
    """
    q = q.to(torch.int16)
    if q.numel() and (q.min() < -8 or q.max() > 7):
        raise ValueError(f"int4 values must lie in [-8, 7], got [{int(q.min())}, {int(q.max())}]")
    nibbles = (q + zero_point) & 0x0F  # (..., n), 0..15
    if nibbles.shape[-1] % 2:
        nibbles = torch.nn.functional.pad(nibbles, (0, 1))
    return (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).to(torch.uint8)  # (..., ceil(n / 2))


def unpack_int4(packed: torch.Tensor, zero_point: int = 0) -> torch.Tensor:
    """The inverse of `pack_int4`: uint8 (..., k) -> int8 (..., 2k) in [-8, 7] (a padding nibble included)."""
    nibbles = torch.stack((packed & 0x0F, packed >> 4), dim=-1).reshape(*packed.shape[:-1], -1).to(torch.int16)
    return ((nibbles - zero_point + 8) % 16 - 8).to(torch.int8)  # (..., 2k): back from the stored nibble
