"""The one symmetric weight grid (pipeline/quantize.py) that the int4 table snap, ExecuTorch's int8 / int4
tables and the int4-mixed probe share."""

from __future__ import annotations

import torch

from pocketbert.pipeline.quantize import fake_quant, symmetric_blocks


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
