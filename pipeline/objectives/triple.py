"""DistilBERT's triple loss (Sanh et al. 2019), for a teacher with an MLM head.

alpha_ce x soft-target KL on MLM logits at temperature T (x T^2) + alpha_mlm x MLM cross-entropy +
alpha_cos x cosine of last hidden states, with dynamic 15% masking (80/10/10); optional intermediate
terms: hidden-state MSE through a layer map (projected when widths differ, TinyBERT) and
attention-distribution KL (MiniLM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses
from pocketbert.pipeline.objectives.base import Objective, Setup, encoder_of
from pocketbert.pipeline.validate import check_masking, check_nonnegative


@dataclass
class TripleLoss:
    temperature: float = 2.0  # softmax temperature of the soft targets (DistilBERT: 2.0)
    alpha_ce: float = 5.0  # soft-target KL on MLM logits (x T^2)
    alpha_mlm: float = 2.0  # MLM cross-entropy on the masked tokens
    alpha_cos: float = 1.0  # cosine between last hidden states (real tokens)
    alpha_hidden_mse: float = 0.0  # intermediate: MSE of hidden states through `layer_map` (projected if widths differ)
    alpha_attention: float = 0.0  # intermediate: KL of attention distributions through `layer_map`
    layer_map: list[int] | None = None  # teacher layer for each student layer (None: the init's layers)
    mlm_probability: float = 0.15  # share of tokens picked for MLM (dynamic, per batch)
    mask_ratio: float = 0.8  # of those: replaced by [MASK]
    random_ratio: float = 0.1  # of those: replaced by a random token (the rest stay)

    def check(self, prefix: str) -> None:
        if self.temperature <= 0:
            raise PocketBertError(f"{prefix}.temperature must be > 0, got {self.temperature}")
        check_nonnegative(self, prefix)
        check_masking(self.mlm_probability, self.mask_ratio, self.random_ratio, prefix)


class TripleObjective(Objective):
    """DistilBERT's triple loss, plus the optional intermediate-layer terms."""

    name = "triple"
    Loss = TripleLoss
    student_mlm_head = True

    def __init__(self, student, teacher, cfg: TripleLoss, layer_map: list[int], specials: list[int] | None = None,
                 mask_id: int | None = None):
        super().__init__()
        self.student, self.cfg, self.layer_map = student, cfg, layer_map
        self.teacher = [teacher]  # a list keeps the frozen teacher out of state_dict and DDP
        self.specials, self.mask_id = specials or [], mask_id  # what add_to_batch never masks, and [MASK]
        sh, th = student.config.hidden_size, teacher.config.hidden_size
        # Student -> teacher width for the hidden-state terms when widths differ (TinyBERT's W_h);
        # training-only, not saved in the checkpoint.
        self.projection = nn.Linear(sh, th) if sh != th else None

    @classmethod
    def layer_map(cls, recipe, init_layers: list[int]) -> list[int]:
        return list(recipe.loss.layer_map) if recipe.loss.layer_map is not None else init_layers

    @classmethod
    def check_models(cls, setup: Setup) -> None:
        super().check_models(setup)
        teacher = encoder_of(setup.teachers[0], "teacher")
        if teacher.cls is None:
            raise PocketBertError(f"{setup.teachers[0].path} has no MLM head, which the triple loss needs; "
                                  "use objective=embedding for sentence-embedding teachers such as minilm")
        cfg, student, layer_map = setup.recipe.loss, setup.student, setup.layer_map
        if cfg.alpha_hidden_mse > 0 or cfg.alpha_attention > 0:
            if len(layer_map) != student.config.num_hidden_layers or not all(
                    0 <= k < teacher.config.num_hidden_layers for k in layer_map):
                raise PocketBertError(f"loss.layer_map {layer_map} must give one teacher layer "
                                      f"(0..{teacher.config.num_hidden_layers - 1}) per student layer "
                                      f"({student.config.num_hidden_layers})")
            if cfg.alpha_attention > 0 and student.config.num_attention_heads != teacher.config.num_attention_heads:
                raise PocketBertError("loss.alpha_attention needs the same number of attention heads in teacher "
                                      "and student")

    @classmethod
    def create(cls, setup: Setup) -> TripleObjective:
        teacher = setup.teachers[0].model.to(setup.device)
        return cls(setup.student, teacher, setup.recipe.loss, setup.layer_map,
                   sorted(setup.tokenizer.special_ids.values()), setup.tokenizer.mask_id)

    def add_to_batch(self, batch: dict, gen: torch.Generator) -> None:
        cfg = self.cfg
        batch["input_ids"], batch["labels"] = losses.mask_tokens(
            batch["input_ids"], batch["attention_mask"], self.specials, self.mask_id,
            self.student.config.vocab_size, gen, cfg.mlm_probability, cfg.mask_ratio, cfg.random_ratio)

    def _up(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.projection(hidden) if self.projection is not None else hidden

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg, teacher = self.cfg, self.teacher[0]
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        hidden_states = cfg.alpha_hidden_mse > 0
        attentions = cfg.alpha_attention > 0
        with torch.no_grad():
            t = teacher(ids, mask, output_hidden_states=hidden_states, output_attentions=attentions)
        s = self.student(ids, mask, output_hidden_states=hidden_states, output_attentions=attentions)
        picked = labels != losses.IGNORE_INDEX  # logits only where they are scored: (N, V), not (B, T, V)
        with torch.no_grad():
            t_logits = teacher.mlm_logits(t.last_hidden_state[picked])
        s_logits = self.student.mlm_logits(s.last_hidden_state[picked])
        total, terms = losses.triple_loss(s_logits, t_logits, labels[picked], self._up(s.last_hidden_state),
                                          t.last_hidden_state, mask, cfg.temperature, cfg.alpha_ce,
                                          cfg.alpha_mlm, cfg.alpha_cos)
        if hidden_states:
            # hidden_states[0] is the embedding output; student layer i (1-based) <- teacher layer map[i-1]+1
            pairs = [(s.hidden_states[i + 1], t.hidden_states[k + 1]) for i, k in enumerate(self.layer_map)]
            mse = sum(losses.hidden_mse(self._up(hs), ht, mask) for hs, ht in pairs) / len(pairs)
            total = total + cfg.alpha_hidden_mse * mse
            terms["hidden_mse"] = float(mse.detach())
        if attentions:
            kl = sum(losses.attention_kl(s.attentions[i], t.attentions[k], mask)
                     for i, k in enumerate(self.layer_map)) / len(self.layer_map)
            total = total + cfg.alpha_attention * kl
            terms["attention"] = float(kl.detach())
        return total, terms
