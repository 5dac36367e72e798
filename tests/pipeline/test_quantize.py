"""The one symmetric weight grid (pipeline/quantize.py) that the int4 table snap, ExecuTorch's int8 / int4
tables and the int4-mixed probe share."""

from __future__ import annotations

import pytest
import torch

from pocketbert.pipeline.quantize import fake_quant, pack_int4, symmetric_blocks, unpack_int4


def test_symmetric_blocks_grid():
    torch.manual_seed(0)
    w = torch.randn(6, 64)
    w[2] = 0.0  # an all-zero row (the padding token's) stays zero
    q, scale = symmetric_blocks(w, 4, 32, fp16_scale=True)
    assert q.shape == (6, 2, 32) and scale.shape == (6, 2, 1)
    assert q.abs().max() == 7 and torch.equal(q, q.round())
    assert torch.equal(scale, scale.half().float()) and not fake_quant(w, 4, 32, fp16_scale=True)[2].any()
    # each block's largest value lands on +-7 scale, so a second round trip changes nothing (idempotent grid)
    once = fake_quant(w, 4, 32, fp16_scale=True)
    assert torch.equal(fake_quant(once, 4, 32, fp16_scale=True), once)
    # int8: one scale per row (group None, or a group that does not divide the row)
    q8, s8 = symmetric_blocks(w, 8)
    assert s8.shape == (6, 1, 1) and q8.abs().max() == 127
    assert torch.equal(symmetric_blocks(w, 8, 48)[1], s8)
    assert (fake_quant(w, 8) - w).abs().max() <= s8.max() / 2 + 1e-7


def test_int4_packing_is_two_values_per_byte_low_nibble_first():
    """The one packer every int4 table uses: ONNX's INT4 (two's complement) and ExecuTorch's table (q + 8)."""
    q = torch.tensor([[-8, 7, -1, 0, 3, -5], [1, 2, 3, 4, 5, 6]], dtype=torch.int8)
    twos = pack_int4(q)
    assert twos.dtype == torch.uint8 and twos.shape == (2, 3)
    assert twos[0].tolist() == [0x8 | 0x7 << 4, 0xF | 0x0 << 4, 0x3 | 0xB << 4]
    assert pack_int4(q, zero_point=8)[0].tolist() == [0 | 15 << 4, 7 | 8 << 4, 11 | 3 << 4]
    for zp in (0, 8):
        assert torch.equal(unpack_int4(pack_int4(q, zp), zp), q)
    odd = pack_int4(torch.tensor([-1, 2, 7]))  # an odd count gets one zero nibble
    assert odd.tolist() == [0xF | 0x2 << 4, 0x7] and unpack_int4(odd).tolist() == [-1, 2, 7, 0]
    q4, _ = symmetric_blocks(torch.randn(4, 64), 4, 32)  # float integers, as the exporters pass them
    assert torch.equal(unpack_int4(pack_int4(q4.reshape(4, 64))), q4.reshape(4, 64).to(torch.int8))
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        pack_int4(torch.tensor([8, 0]))


def test_executorch_int4_table_unpacks_as_unpack_int4():
    """ExecuTorch's int4 table stores `pack_int4(q, zero_point=8)`; its forward (floor division, core ATen ops)
    gives the rows `unpack_int4` gives, times their fp16 group scales."""
    from pocketbert.export.executorch import Int4RowEmbedding

    torch.manual_seed(0)
    emb = Int4RowEmbedding(torch.randn(10, 64), 32)
    q = unpack_int4(emb.packed, zero_point=emb.ZERO_POINT).float()  # (V, E)
    want = (q.reshape(10, 2, 32) * emb.scale.float().unsqueeze(-1)).reshape(10, 64)
    assert torch.equal(emb(torch.arange(10)[None])[0], want)
