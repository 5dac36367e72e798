"""Every loss against its plain formula (loops over rows, no fused ops), and BERT's dynamic masking."""

from __future__ import annotations

import math

import pytest
import torch

from pocketbert.pipeline import losses
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.distill import build_student
from pocketbert.pipeline.recipe import DistillRecipe, build
from pocketbert.pipeline.student import select_layers

torch.manual_seed(0)


def _softmax(row, t):
    z = [x / t for x in row]
    m = max(z)
    e = [math.exp(x - m) for x in z]
    s = sum(e)
    return [x / s for x in e]


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_soft_target_kl_matches_the_formula_times_t_squared():
    s, t = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    temp = 2.0
    rows = [(s[b, i].tolist(), t[b, i].tolist()) for b in range(2) for i in range(3) if mask[b, i]]
    expected = 0.0
    for srow, trow in rows:
        ps, pt = _softmax(srow, temp), _softmax(trow, temp)
        expected += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    expected = expected / len(rows) * temp**2
    assert losses.soft_target_kl(s, t, temp, mask).item() == pytest.approx(expected, rel=1e-5)
    # equals torch's KLDivLoss(batchmean) formulation used by the original DistilBERT code
    ref = torch.nn.KLDivLoss(reduction="batchmean")(
        torch.log_softmax(s[mask] / temp, -1), torch.softmax(t[mask] / temp, -1)) * temp**2
    assert losses.soft_target_kl(s, t, temp, mask).item() == pytest.approx(ref.item(), rel=1e-5)


def test_soft_target_kl_is_zero_for_equal_logits():
    x = torch.randn(5, 11)
    assert losses.soft_target_kl(x, x.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_mlm_cross_entropy_only_counts_labelled_positions():
    logits = torch.randn(2, 4, 6)
    labels = torch.tensor([[-100, 3, -100, 1], [5, -100, -100, -100]])
    expected = []
    for b in range(2):
        for i in range(4):
            if labels[b, i] != -100:
                p = _softmax(logits[b, i].tolist(), 1.0)
                expected.append(-math.log(p[labels[b, i]]))
    assert losses.mlm_cross_entropy(logits, labels).item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_hidden_cosine_over_real_tokens():
    s, t = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    vals = [1 - _cos(s[b, i].tolist(), t[b, i].tolist()) for b in range(2) for i in range(5) if mask[b, i]]
    assert losses.hidden_cosine(s, t, mask).item() == pytest.approx(sum(vals) / len(vals), rel=1e-5)


def test_hidden_mse_over_real_tokens():
    s, t = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    vals = [(s[b, i, d] - t[b, i, d]).item() ** 2 for b in range(2) for i in range(4) if mask[b, i] for d in range(3)]
    assert losses.hidden_mse(s, t, mask).item() == pytest.approx(sum(vals) / len(vals), rel=1e-5)


def test_attention_kl_matches_the_formula():
    b, h, n = 2, 3, 4
    s = torch.softmax(torch.randn(b, h, n, n), -1)
    t = torch.softmax(torch.randn(b, h, n, n), -1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    vals = []
    for bi in range(b):
        for hi in range(h):
            for q in range(n):
                if mask[bi, q]:
                    vals.append(sum(t[bi, hi, q, k].item() * (math.log(t[bi, hi, q, k].item()) - math.log(s[bi, hi, q, k].item()))
                                    for k in range(n)))
    assert losses.attention_kl(s, t, mask).item() == pytest.approx(sum(vals) / len(vals), rel=1e-4)


def test_embedding_losses():
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    mse = sum((s[i, d] - t[i, d]).item() ** 2 for i in range(4) for d in range(6)) / 24
    cos = sum(1 - _cos(s[i].tolist(), t[i].tolist()) for i in range(4)) / 4
    assert losses.embedding_mse(s, t).item() == pytest.approx(mse, rel=1e-5)
    assert losses.embedding_cosine(s, t).item() == pytest.approx(cos, rel=1e-5)


def test_classification_cross_entropy():
    logits, labels = torch.randn(3, 2), torch.tensor([0, 1, 1])
    expected = sum(-math.log(_softmax(logits[i].tolist(), 1.0)[labels[i]]) for i in range(3)) / 3
    assert losses.classification_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_triple_loss_is_the_weighted_sum_with_distilbert_defaults():
    s_logits, t_logits = torch.randn(6, 10), torch.randn(6, 10)
    labels = torch.tensor([1, 2, 3, 4, 5, 6])
    sh, th = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    total, terms = losses.triple_loss(s_logits, t_logits, labels, sh, th, mask)
    ce = losses.soft_target_kl(s_logits, t_logits, 2.0)
    mlm = losses.mlm_cross_entropy(s_logits, labels)
    cos = losses.hidden_cosine(sh, th, mask)
    assert total.item() == pytest.approx(5.0 * ce.item() + 2.0 * mlm.item() + 1.0 * cos.item(), rel=1e-5)
    assert terms == pytest.approx({"ce": ce.item(), "mlm": mlm.item(), "cos": cos.item()}, rel=1e-5)


def test_mask_tokens_80_10_10_and_never_specials():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (64, 128))
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    mask = torch.ones_like(ids)
    mask[:, 100:] = 0
    masked, labels = losses.mask_tokens(ids, mask, [0, 1, 2, 3, 4], 4, 1000, gen)
    picked = labels != -100
    assert not picked[:, 0].any() and not picked[:, 100:].any()
    rate = picked.sum().item() / (64 * 98)
    assert rate == pytest.approx(0.15, abs=0.01)
    assert torch.equal(labels[picked], ids[picked])
    as_mask = (masked == 4) & picked
    unchanged = (masked == ids) & picked
    assert as_mask.sum().item() / picked.sum().item() == pytest.approx(0.8, abs=0.03)
    # 10% kept + the ~0.1% of random replacements that draw the same id
    assert unchanged.sum().item() / picked.sum().item() == pytest.approx(0.1, abs=0.03)
    assert torch.equal(masked[~picked], ids[~picked])
    # dynamic: a fresh draw gives new masks; the same seed gives the same masks
    again, _ = losses.mask_tokens(ids, mask, [0, 1, 2, 3, 4], 4, 1000, torch.Generator().manual_seed(0))
    other, _ = losses.mask_tokens(ids, mask, [0, 1, 2, 3, 4], 4, 1000, torch.Generator().manual_seed(1))
    assert torch.equal(again, masked) and not torch.equal(other, masked)


def test_distill_layer_init_copies_teacher_layer_k_into_student_layer_i(tiny_bert_mlm):
    teacher_ckpt = load_checkpoint(tiny_bert_mlm, with_mlm_head=True)
    teacher = teacher_ckpt.model
    cfg = build(DistillRecipe, {"student": {"init": "layers", "layers": "2,0"}})
    student, layer_map, _, record = build_student(cfg, teacher_ckpt)
    assert layer_map == [2, 0] and record["layer_map"] == [2, 0]
    ts, ss = teacher.state_dict(), student.state_dict()
    for i, k in enumerate(layer_map):
        keys = [key for key in ss if key.startswith(f"encoder.layer.{i}.")]
        assert keys
        for key in keys:
            assert torch.equal(ss[key], ts[key.replace(f"encoder.layer.{i}.", f"encoder.layer.{k}.", 1)])
    for key in ss:
        if not key.startswith("encoder.layer."):
            assert torch.equal(ss[key], ts[key])
    assert torch.equal(ss["cls.predictions.bias"], ts["cls.predictions.bias"])
    # the random-init ablation student has the same shape but not the teacher's weights
    rnd, _, _, _ = build_student(build(DistillRecipe, {"student": {"init": "random", "layers": "2,0"}}), teacher_ckpt)
    assert rnd.config.num_hidden_layers == 2
    assert not torch.equal(rnd.state_dict()["encoder.layer.0.attention.self.query.weight"],
                           ts["encoder.layer.2.attention.self.query.weight"])
    assert select_layers(teacher, [2, 0]).config == student.config
