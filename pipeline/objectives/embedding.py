"""Sentence-embedding distillation from one teacher that shares the student's tokenizer and width
(Reimers & Gurevych 2020): MSE and cosine between pooled embeddings, plus an optional cosine of the
last hidden states. The teacher's outputs are cached per example during the first epoch and reused
afterwards (its inputs never change), so later epochs cost only the student.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses
from pocketbert.pipeline.objectives.base import Objective, Setup
from pocketbert.pipeline.validate import check_nonnegative


@dataclass
class EmbeddingLoss:
    alpha_emb_mse: float = 1.0  # MSE between pooled (un-normalised) embeddings
    alpha_emb_cos: float = 1.0  # 1 - cos between pooled embeddings
    alpha_hidden_cos: float = 0.0  # 1 - cos between last hidden states (real tokens)
    cache_teacher: bool = True  # keep teacher outputs across epochs (no teacher pass after epoch 1)

    def check(self, prefix: str) -> None:
        check_nonnegative(self, prefix)


class EmbeddingObjective(Objective):
    """Sentence-embedding distillation; the teacher's pooled (and last hidden) outputs are cached per example."""

    name = "embedding"
    Loss = EmbeddingLoss

    def __init__(self, student, teacher, cfg: EmbeddingLoss):
        super().__init__()
        self.student, self.cfg = student, cfg
        self.teacher = [teacher]
        self.pooled_cache: dict[int, torch.Tensor] = {}
        self.hidden_cache: dict[int, torch.Tensor] = {}  # fp16 (len, H): half the memory, cosine-exact enough

    @classmethod
    def check_models(cls, setup: Setup) -> None:
        super().check_models(setup)
        teacher = setup.teachers[0].model
        if setup.student.config.hidden_size != teacher.config.hidden_size:
            raise PocketBertError(f"objective embedding compares embeddings directly: the student's hidden size "
                                  f"({setup.student.config.hidden_size}) must equal the teacher's "
                                  f"({teacher.config.hidden_size})")

    @classmethod
    def create(cls, setup: Setup) -> EmbeddingObjective:
        return cls(setup.student, setup.teachers[0].model.to(setup.device), setup.recipe.loss)

    @torch.no_grad()
    def _teacher(self, index: list[int], ids: torch.Tensor, mask: torch.Tensor):
        need_hidden = self.cfg.alpha_hidden_cos > 0
        if not self.cfg.cache_teacher or any(i not in self.pooled_cache for i in index):
            teacher = self.teacher[0]
            h = teacher(ids, mask).last_hidden_state
            p = teacher.pool(h, mask, normalize=False)
            if not self.cfg.cache_teacher:
                return p, h
            lengths = mask.sum(1).tolist()
            for row, i in enumerate(index):
                self.pooled_cache[i] = p[row].detach().cpu()
                if need_hidden:
                    self.hidden_cache[i] = h[row, : lengths[row]].detach().to(torch.float16).cpu()
        p = torch.stack([self.pooled_cache[i] for i in index]).to(ids.device)
        h = None
        if need_hidden:
            h = torch.zeros(ids.shape[0], ids.shape[1], p.shape[1], device=ids.device)
            for row, i in enumerate(index):
                cached = self.hidden_cache[i]
                h[row, : cached.shape[0]] = cached.to(ids.device, torch.float32)
        return p, h

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        ids, mask = batch["input_ids"], batch["attention_mask"]
        t_pooled, t_hidden = self._teacher(batch["index"], ids, mask)
        s_hidden = self.student(ids, mask).last_hidden_state
        s_pooled = self.student.pool(s_hidden, mask, normalize=False)
        terms = {"emb_mse": losses.embedding_mse(s_pooled, t_pooled),
                 "emb_cos": losses.embedding_cosine(s_pooled, t_pooled)}
        total = cfg.alpha_emb_mse * terms["emb_mse"] + cfg.alpha_emb_cos * terms["emb_cos"]
        if t_hidden is not None:
            terms["hidden_cos"] = losses.hidden_cosine(s_hidden, t_hidden, mask)
            total = total + cfg.alpha_hidden_cos * terms["hidden_cos"]
        return total, {k: float(v.detach()) for k, v in terms.items()}
