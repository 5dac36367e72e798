"""Sentence-level distillation from one or more teachers, width-agnostic, each with its own tokenizer.

The teachers' pooled embeddings of the training text are computed once per (corpus, teacher) and kept on
disk (`teacher_cache.py`), so no token alignment is needed and a second run costs no teacher pass. Terms:
- alpha_sim_mse x sum_t w_t MSE(the student's in-batch cosine matrix, teacher t's);
- alpha_proj_cos x (1 - cos) and alpha_proj_mse x MSE between a training-only projection of the student's
  embedding and the teachers' concatenated normalised embeddings (`losses.ensemble_target`): what a linear
  read-out of the teachers knows reaches the student;
- with an anchor (a teacher that shares the student's tokenizer and width, e.g. the checkpoint whose layers
  the student starts from), the student also stays in that teacher's space: alpha_emb_mse x MSE and
  alpha_emb_cos x (1 - cos) to its pooled embedding (from the cache), and alpha_token_mse x MSE to its last
  hidden states (real tokens; one anchor forward per step), weighted by 1 - anchor_decay x progress.
The in-batch matrix only constrains B(B-1)/2 pooled similarities; the anchor places the student quickly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses, names
from pocketbert.pipeline.data import cache_dir
from pocketbert.pipeline.objectives.base import Objective, Setup, encoder_of, same_vocab
from pocketbert.pipeline.teacher_cache import as_teacher, teacher_embeddings
from pocketbert.pipeline.validate import check_nonnegative

log = logging.getLogger("pocketbert.distill")


@dataclass
class EnsembleLoss:
    alpha_sim_mse: float = 1.0  # MSE between the student's in-batch cosine matrix and each teacher's (weighted)
    alpha_proj_cos: float = 0.0  # 1 - cos between a training-only projection of the student's embedding and the
    #   teachers' concatenated normalised embeddings (each scaled by sqrt(weight)); any width
    alpha_proj_mse: float = 0.0  # MSE between that projection and the concatenated target
    anchor: str | None = None  # the teacher (one of `teachers`, by path) whose own space the student keeps; it must
    #   share the student's tokenizer and width
    alpha_emb_mse: float = 1.0  # with `anchor`: MSE between the student's and the anchor's pooled embeddings
    alpha_emb_cos: float = 1.0  # with `anchor`: 1 - cos between them
    alpha_token_mse: float = 0.0  # with `anchor`: MSE between the student's and the anchor's last hidden states
    anchor_decay: float = 0.0  # with `anchor`: the anchor terms' weight falls linearly from 1 to 1 - anchor_decay over
    #   the run (1: to zero), so the teachers' similarity has the last word once the anchor has placed the student

    def check(self, prefix: str) -> None:
        check_nonnegative(self, prefix)
        if self.alpha_sim_mse + self.alpha_proj_cos + self.alpha_proj_mse == 0:
            raise PocketBertError(f"objective ensemble needs {prefix}.alpha_sim_mse, {prefix}.alpha_proj_cos or "
                                  f"{prefix}.alpha_proj_mse > 0")
        if not 0.0 <= self.anchor_decay <= 1.0:
            raise PocketBertError(f"{prefix}.anchor_decay must be in [0, 1], got {self.anchor_decay}")


class EnsembleObjective(Objective):
    """Width-agnostic sentence-level distillation from precomputed teacher embeddings (one (N, D_t) per teacher)."""

    name = "ensemble"
    Loss = EnsembleLoss
    token_aligned = False
    max_teachers = None

    def __init__(self, student, targets: list[torch.Tensor], weights: list[float], cfg: EnsembleLoss,
                 anchor: tuple[int, nn.Module] | None = None, caches: list[dict] | None = None):
        super().__init__()
        self.student, self.cfg, self.weights = student, cfg, weights
        self.targets = targets  # a plain list: not in state_dict, not broadcast by DDP
        self.anchor = [anchor] if anchor is not None else []  # (index into targets, frozen encoder), out of state_dict
        self.caches = caches or []
        width = sum(t.shape[1] for t in targets)
        self.projection = (nn.Linear(student.config.hidden_size, width)
                           if cfg.alpha_proj_cos > 0 or cfg.alpha_proj_mse > 0 else None)

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        paths = [t.path for t in recipe.teachers]
        if recipe.loss.anchor is not None and recipe.loss.anchor not in paths:
            for i, t in enumerate(recipe.teachers):  # a teacher that does not exist is the real cause: name it
                if not names.exists(t.path):
                    raise PocketBertError(f"teachers[{i}]: {t.path} does not exist; give a checkpoint folder, an "
                                          f".onnx encoder or one of {', '.join(names.known_names())}")
            raise PocketBertError(f"loss.anchor {recipe.loss.anchor!r} is not one of the teachers "
                                  f"({', '.join(paths)}); name one of them by its path")

    @classmethod
    def check_models(cls, setup: Setup) -> None:
        cls._anchor(setup)  # before any teacher pass: a bad anchor fails at once

    @staticmethod
    def _anchor(setup: Setup) -> tuple[int, nn.Module] | None:
        """(index, encoder) of `loss.anchor` among the teachers, checked against the student; None without one."""
        cfg = setup.recipe
        if cfg.loss.anchor is None:
            return None
        k = [t.path for t in cfg.teachers].index(cfg.loss.anchor)
        teacher = setup.teachers[k]
        model = encoder_of(teacher, "loss.anchor")
        if not same_vocab(teacher.path, setup.student_tokenizer):
            raise PocketBertError(f"loss.anchor {cfg.loss.anchor} has another tokenizer than the student "
                                  f"({teacher.path}/vocab.txt vs {setup.student_tokenizer}/vocab.txt); anchor the "
                                  "teacher whose layers the student starts from")
        if model.config.hidden_size != setup.student.config.hidden_size:
            raise PocketBertError(f"loss.anchor {cfg.loss.anchor} is {model.config.hidden_size} wide and the student "
                                  f"{setup.student.config.hidden_size}; the anchor terms compare vectors directly, "
                                  "so widths must match")
        return k, model.eval()

    @classmethod
    def create(cls, setup: Setup) -> EnsembleObjective:
        anchor = cls._anchor(setup)
        cfg = setup.recipe
        targets, caches = [], []
        for spec, teacher in zip(cfg.teachers, setup.teachers, strict=True):
            teacher = as_teacher(teacher, spec.path).with_backend(spec.backend)
            emb, info = teacher_embeddings(teacher, setup.train_texts, cfg.data.max_length, cache_dir())
            targets.append(torch.from_numpy(emb))
            caches.append({"path": spec.path, "weight": spec.weight, **info})
            say(f"distill: teacher {Path(str(spec.path)).name}: {'cached' if info['hit'] else 'computed'} "
                f"embeddings {tuple(emb.shape)}")
            log.debug("distill: teacher %s embeddings in %s", spec.path, info["file"])
        if anchor is not None:
            anchor[1].to(setup.device)
        return cls(setup.student, targets, [t.weight for t in cfg.teachers], cfg.loss, anchor, caches)

    def record(self) -> dict:
        return {"teachers": self.caches}

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        ids, mask = batch["input_ids"], batch["attention_mask"]
        index = torch.as_tensor(batch["index"], dtype=torch.long)
        teachers = [t[index].to(ids.device) for t in self.targets]  # each (B, D_t)
        s_hidden = self.student(ids, mask).last_hidden_state  # (B, T, H)
        s_pooled = self.student.pool(s_hidden, mask, normalize=False)  # (B, H)
        terms, total = {}, s_pooled.new_zeros(())
        if cfg.alpha_sim_mse > 0:
            terms["sim_mse"] = losses.similarity_mse(s_pooled, teachers, self.weights)
            total = total + cfg.alpha_sim_mse * terms["sim_mse"]
        if self.projection is not None:
            target = losses.ensemble_target(teachers, self.weights)
            projected = self.projection(s_pooled)
            terms["proj_cos"] = losses.embedding_cosine(projected, target)
            terms["proj_mse"] = losses.embedding_mse(projected, target)
            total = total + cfg.alpha_proj_cos * terms["proj_cos"] + cfg.alpha_proj_mse * terms["proj_mse"]
        if self.anchor:
            k, anchor = self.anchor[0]
            scale = 1.0 - cfg.anchor_decay * batch.get("progress", 0.0)  # linear decay over the run
            terms["emb_mse"] = losses.embedding_mse(s_pooled, teachers[k])
            terms["emb_cos"] = losses.embedding_cosine(s_pooled, teachers[k])
            total = total + scale * (cfg.alpha_emb_mse * terms["emb_mse"] + cfg.alpha_emb_cos * terms["emb_cos"])
            if cfg.alpha_token_mse > 0:
                with torch.no_grad():
                    t_hidden = anchor(ids, mask).last_hidden_state
                terms["token_mse"] = losses.hidden_mse(s_hidden, t_hidden, mask)
                total = total + scale * cfg.alpha_token_mse * terms["token_mse"]
        return total, {k: float(v.detach()) for k, v in terms.items()}
