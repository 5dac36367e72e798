"""The ExecuTorch lowering: every linear, matmul and layer norm runs inside the XNNPACK delegate.

The check reads each exported program's own operator table (what the runtime will run outside its
delegates) and holds it to `executorch.OPS_OUTSIDE_XNNPACK`, the list of what may stay outside and why.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pocketbert.export import executorch as ex
from pocketbert.export.quant import QuantRecipe
from pocketbert.export.wrapper import TaskModule
from pocketbert.pipeline.models.encoder import Encoder, tiny_config

pytestmark = pytest.mark.integration

# Operator names that must never be outside the delegate: fp32 GEMMs and what used to cut the delegate apart.
FORBIDDEN = ("linear", "mm", "matmul", "layer_norm", "index", "expand", "softmax", "gelu")
ALL_LINEARS_INT8 = ["embedding_mapping", "layer.0.attention", "layer.0.ffn", "layer.1.attention", "layer.1.ffn"]


def _module(factorized: bool) -> TaskModule:
    torch.manual_seed(0)
    cfg = tiny_config(embedding_size=16) if factorized else tiny_config()
    return TaskModule(Encoder(cfg).eval()).eval()


def _inputs(n: int, seq_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A text of n tokens, padded to seq_len (None: unpadded)."""
    seq_len = seq_len or n
    ids = torch.zeros(1, seq_len, dtype=torch.int32)
    ids[0, :n] = torch.arange(5, 5 + n, dtype=torch.int32) % 120 + 5
    mask = torch.zeros(1, seq_len, dtype=torch.int32)
    mask[0, :n] = 1
    return ids, mask


@pytest.mark.parametrize("quant, factorized, dynamic", [
    ("int8", False, False),
    ("int8", False, True),
    ("int4-mixed", True, True),  # the build-sts shape: int4 word table, every linear int8
])
def test_linears_matmuls_and_layer_norms_run_inside_xnnpack(tmp_path, quant, factorized, dynamic):
    module = _module(factorized)
    path = tmp_path / "model.pte"
    recipe = QuantRecipe.of("executorch", quant, ALL_LINEARS_INT8 if quant == "int4-mixed" else ())
    notes = ex.export(module, _inputs(16), path, recipe, dynamic=dynamic)
    ops = ex.portable_ops(path)
    assert notes["portable_ops"] == ops
    unexplained = [op for op in ops if op not in ex.OPS_OUTSIDE_XNNPACK]
    assert not unexplained, f"operators outside XNNPACK with no reason in OPS_OUTSIDE_XNNPACK: {unexplained}"
    gemm = [op for op in ops if any(word in op for word in FORBIDDEN)]
    assert not gemm, f"{gemm} run outside the XNNPACK delegate"
    assert notes["xnnpack_subgraphs"] <= 4, notes  # the delegate is no longer cut by layer norms and copies

    # the rewritten graph still computes the model, padded and (dynamic) at the text's own length
    run = ex.load(path, threads=1)
    lengths = [(7, 16), (16, 16)] + ([(7, None), (2, None)] if dynamic else [])
    for n, seq_len in lengths:
        ids, mask = _inputs(n, seq_len)
        got = run(ids.numpy(), mask.numpy())
        want = module(ids, mask).detach().numpy()
        cos = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
        assert cos > 0.99, (n, seq_len, cos)


def test_layer_norm_and_attention_rewrites_match_the_encoder():
    """The XNNPACK forms are the same function as the encoder's modules (float rounding only)."""
    module = _module(False)
    rewritten = ex.for_xnnpack(_module(False))
    for n, seq_len in ((5, 16), (16, 16), (9, None)):
        ids, mask = _inputs(n, seq_len)
        torch.testing.assert_close(rewritten(ids, mask), module(ids, mask), atol=2e-6, rtol=1e-5)
