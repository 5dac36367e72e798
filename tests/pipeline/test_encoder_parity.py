"""Our encoder against transformers at tiny random sizes: hidden states, attentions and MLM logits."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from pocketbert.pipeline.checkpoint import load_checkpoint

from helpers.checkpoints import make_hf_checkpoint

ATOL = 1e-5


def _inputs(vocab: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padded rows exercise the additive mask
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    ids[:, 0] = 2  # [CLS]
    return ids, mask


def _hf(path, head):
    import transformers as tf

    cls = {None: tf.AutoModel, "mlm": tf.AutoModelForMaskedLM, "classification": tf.AutoModelForSequenceClassification}
    return cls[head].from_pretrained(path, attn_implementation="eager").eval()


CASES = [
    ("bert", None, {}),
    ("bert", "mlm", {}),
    ("bert", "classification", {}),
    ("distilbert", None, {}),
    ("distilbert", "mlm", {}),
    ("albert", None, {}),  # E=16 < H=32, all layers shared
    ("albert", "mlm", {}),
    ("albert", "mlm", {"num_hidden_groups": 3}),  # factorized, no sharing
]


@pytest.mark.parametrize(("kind", "head", "overrides"), CASES, ids=[f"{k}-{h or 'base'}-{o}" for k, h, o in CASES])
def test_parity_with_transformers(tmp_path, kind, head, overrides):
    path = make_hf_checkpoint(tmp_path / "hf", kind, head=head, **overrides)
    hf = _hf(path, head)
    ours = load_checkpoint(path).model
    if kind == "albert":
        assert ours.config.factorized
        assert ours.config.sharing == ("all" if overrides.get("num_hidden_groups", 1) == 1 else "none")
    ids, mask = _inputs(ours.config.vocab_size)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        mine = ours(ids, mask, output_hidden_states=True, output_attentions=True)
        base = out  # *ForX models expose the backbone's hidden states directly
        assert len(mine.hidden_states) == len(base.hidden_states) == ours.config.num_hidden_layers + 1
        for a, b in zip(mine.hidden_states, base.hidden_states):
            assert_close(a, b, atol=ATOL, rtol=0)
        for a, b in zip(mine.attentions, base.attentions):
            assert_close(a, b, atol=ATOL, rtol=0)
        if head == "mlm":
            assert_close(ours.mlm_logits(mine.last_hidden_state), out.logits, atol=ATOL, rtol=0)
        elif head == "classification":
            assert_close(ours.classify(ids, mask), out.logits, atol=ATOL, rtol=0)
        else:
            assert_close(mine.last_hidden_state, out.last_hidden_state, atol=ATOL, rtol=0)


def test_export_path_matches_training_path(tiny_bert):
    """task_forward (what exporters trace) equals pooling the training forward, for int32 inputs too."""
    model = load_checkpoint(tiny_bert).model
    ids, mask = _inputs(model.config.vocab_size)
    with torch.no_grad():
        a = model.task_forward(ids.to(torch.int32), mask.to(torch.int32))
        b = model.pool(model(ids, mask).last_hidden_state, mask)
    assert_close(a, b, atol=1e-6, rtol=0)


def test_torch_export_is_static(tiny_bert):
    """The encoder traces with torch.export without graph breaks or data-dependent guards."""
    model = load_checkpoint(tiny_bert).model

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            return self.m.task_forward(ids, mask)

    ids, mask = _inputs(model.config.vocab_size)
    ep = torch.export.export(Wrapper(model), (ids[:1].to(torch.int32), mask[:1].to(torch.int32)))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    # No ops that coremltools rejects (new_ones) and no data-dependent scalars or guards.
    assert not any(bad in o for o in ops for bad in ("new_ones", "_assert_scalar", "_local_scalar_dense", "item")), ops
    assert_close(ep.module()(ids[:1].to(torch.int32), mask[:1].to(torch.int32)),
                 model.task_forward(ids[:1], mask[:1]), atol=1e-6, rtol=0)
