"""Distillation and pretraining losses as pure functions of tensors.

Each function takes plain tensors and returns a scalar; tests check every one against its plain
formula. Names follow the papers: DistilBERT (Sanh et al. 2019) `alpha_ce`, `alpha_mlm`, `alpha_cos`,
`temperature`; TinyBERT (Jiao et al. 2020) hidden-state MSE and attention KL; MiniLM (Wang et al.
2020) attention-distribution KL; sentence-embedding distillation as in Reimers & Gurevych 2020.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label of positions that are not predicted (not masked / padding)


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher_T || student_T) x T^2, averaged over the selected rows (DistilBERT's `loss_ce`).

    Args:
        student_logits, teacher_logits: (..., C) logits of the same shape.
        temperature: T; both distributions are softmax(logits / T). The T^2 factor keeps gradient
            magnitudes independent of T (Hinton et al. 2015).
        mask: (...) bool, rows that count (DistilBERT: the MLM positions); None = every row.
    Returns:
        Scalar: sum over C of p_t (log p_t - log p_s), mean over selected rows, times T^2.
    """
    c = student_logits.shape[-1]
    s = student_logits.reshape(-1, c).float()
    t = teacher_logits.reshape(-1, c).float()
    if mask is not None:
        keep = mask.reshape(-1).bool()
        s, t = s[keep], t[keep]
    if s.shape[0] == 0:
        return student_logits.sum() * 0.0
    log_ps = F.log_softmax(s / temperature, dim=-1)
    log_pt = F.log_softmax(t / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()
    return kl * temperature**2


def mlm_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose label is not IGNORE_INDEX. logits (B, T, V), labels (B, T)."""
    if not (labels != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def hidden_cosine(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of 1 - cos(h_s, h_t) (DistilBERT's `loss_cos`). hidden (B, T, H), mask (B, T)."""
    keep = attention_mask.bool()
    s = student_hidden[keep].float()  # (N, H)
    t = teacher_hidden[keep].float()
    if s.shape[0] == 0:
        return student_hidden.sum() * 0.0
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


def hidden_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real tokens and features (TinyBERT). The caller projects widths first."""
    keep = attention_mask.bool()
    s = student_hidden[keep].float()
    t = teacher_hidden[keep].float()
    if s.shape[0] == 0:
        return student_hidden.sum() * 0.0
    return F.mse_loss(s, t)


def attention_kl(student_probs: torch.Tensor, teacher_probs: torch.Tensor, attention_mask: torch.Tensor,
                 eps: float = 1e-12) -> torch.Tensor:
    """KL(teacher || student) of self-attention distributions (MiniLM), mean over heads and real queries.

    Args:
        student_probs, teacher_probs: (B, heads, T, T) softmax probabilities; the head counts must match.
        attention_mask: (B, T); padding queries are skipped (padding keys already have probability 0).
    """
    q = attention_mask.bool()[:, None, :].expand(-1, student_probs.shape[1], -1)  # (B, heads, T)
    s = student_probs.float()[q]  # (N, T)
    t = teacher_probs.float()[q]
    if s.shape[0] == 0:
        return student_probs.sum() * 0.0
    return (t * (torch.log(t + eps) - torch.log(s + eps))).sum(-1).mean()


def embedding_mse(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Mean squared error between pooled sentence embeddings (B, H) (Reimers & Gurevych 2020)."""
    return F.mse_loss(student_emb.float(), teacher_emb.float())


def embedding_cosine(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos between pooled sentence embeddings (B, H)."""
    return (1.0 - F.cosine_similarity(student_emb.float(), teacher_emb.float(), dim=-1)).mean()


def cosine_matrix(emb: torch.Tensor) -> torch.Tensor:
    """(B, D) embeddings -> (B, B) in-batch cosine similarities."""
    x = F.normalize(emb.float(), dim=-1)
    return x @ x.T


def _shares(weights: list[float]) -> list[float]:
    total = float(sum(weights))
    return [w / total for w in weights]


def similarity_mse(student_emb: torch.Tensor, teacher_embs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """sum_t w_t * mean((C_s - C_t)^2), C = in-batch cosine matrix (B, B), w normalised to sum 1.

    Width-agnostic: only (B, B) matrices are compared, so student and teachers may differ in width and
    tokenizer. Equal, up to a constant, to the MSE against the weighted mean matrix sum_t w_t C_t, i.e. the
    similarity of the teacher ensemble ("the sum of their cosines").
    """
    c_s = cosine_matrix(student_emb)
    return sum(w * F.mse_loss(c_s, cosine_matrix(t)) for w, t in zip(_shares(weights), teacher_embs, strict=True))


def ensemble_target(teacher_embs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """(B, sum D_t): each teacher's L2-normalised embedding times sqrt(w_t), concatenated (w normalised to sum 1).

    The rows have unit norm, and the dot product of two rows is sum_t w_t cos_t: the ensemble's cosine.
    """
    return torch.cat([F.normalize(t.float(), dim=-1) * w**0.5 for w, t in zip(_shares(weights), teacher_embs,
                                                                               strict=True)], dim=-1)


def classification_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, C) logits against (B,) integer labels."""
    return F.cross_entropy(logits.float(), labels)


def triple_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor,
                temperature: float = 2.0, alpha_ce: float = 5.0, alpha_mlm: float = 2.0,
                alpha_cos: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """DistilBERT's loss: alpha_ce x soft-target KL on the MLM positions + alpha_mlm x MLM CE + alpha_cos x hidden cosine.

    As in the original code (`distiller.py`, `mlm=True`), the soft-target term is taken over the
    masked positions only and the cosine term over every real token of the last hidden states.
    Returns:
        (total, {"ce": ..., "mlm": ..., "cos": ...}) with the unweighted terms as floats.
    """
    predicted = labels != IGNORE_INDEX
    terms = {
        "ce": soft_target_kl(student_logits, teacher_logits, temperature, predicted),
        "mlm": mlm_cross_entropy(student_logits, labels),
        "cos": hidden_cosine(student_hidden, teacher_hidden, attention_mask),
    }
    total = alpha_ce * terms["ce"] + alpha_mlm * terms["mlm"] + alpha_cos * terms["cos"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: list[int], mask_id: int,
                vocab_size: int, generator: torch.Generator, probability: float = 0.15,
                mask_ratio: float = 0.8, random_ratio: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's dynamic masking: pick `probability` of the real, non-special tokens; of those 80% -> [MASK],
    10% -> a random token, 10% unchanged. Fresh each call, so each epoch sees new masks.

    At least one token per batch is picked so that the MLM loss is always defined.
    Returns:
        (masked input ids, labels) with labels = original id at picked positions, IGNORE_INDEX elsewhere.
    """
    ids = input_ids.clone()
    candidates = attention_mask.bool() & ~torch.isin(ids, torch.tensor(special_ids, dtype=ids.dtype))
    draw = torch.rand(ids.shape, generator=generator)
    picked = candidates & (draw < probability)
    if not picked.any() and candidates.any():
        flat = candidates.reshape(-1).nonzero()[0]
        picked.view(-1)[flat] = True
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE_INDEX))
    action = torch.rand(ids.shape, generator=generator)
    to_mask = picked & (action < mask_ratio)
    to_random = picked & (action >= mask_ratio) & (action < mask_ratio + random_ratio)
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=generator, dtype=ids.dtype)
    ids = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    ids = torch.where(to_random, random_ids, ids)
    return ids, labels
