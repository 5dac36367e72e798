"""Task distillation from a fine-tuned classification teacher: alpha_soft x KL at temperature T (x T^2)
+ alpha_hard x cross-entropy with the gold labels. The teacher's logits are cached per example."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses
from pocketbert.pipeline.objectives.base import Objective, Setup
from pocketbert.pipeline.validate import check_nonnegative


@dataclass
class TaskLoss:
    temperature: float = 2.0  # softmax temperature of the soft targets
    alpha_soft: float = 1.0  # soft-target KL on class logits (x T^2)
    alpha_hard: float = 1.0  # cross-entropy with the gold labels
    cache_teacher: bool = True  # keep teacher logits across epochs (no teacher pass after epoch 1)

    def check(self, prefix: str) -> None:
        if self.temperature <= 0:
            raise PocketBertError(f"{prefix}.temperature must be > 0, got {self.temperature}")
        check_nonnegative(self, prefix)


class TaskObjective(Objective):
    """alpha_soft x KL at temperature T (x T^2) + alpha_hard x cross-entropy with labels."""

    name = "task"
    Loss = TaskLoss
    needs_labels = True

    def __init__(self, student, teacher, cfg: TaskLoss, labels: list[int]):
        super().__init__()
        self.student, self.cfg, self.labels = student, cfg, labels
        self.teacher = [teacher]
        self.logits_cache: dict[int, torch.Tensor] = {}

    @classmethod
    def check_models(cls, setup: Setup) -> None:
        super().check_models(setup)
        teacher = setup.teachers[0].model
        if teacher.config.task != "classification":
            raise PocketBertError(f"{setup.teachers[0].path} is not a classification model; fine-tune one first "
                                  "(pocketbert finetune) for objective=task")

    @classmethod
    def create(cls, setup: Setup) -> TaskObjective:
        teacher = setup.teachers[0].model
        bad = [x for x in setup.train_labels if x is None or not 0 <= x < teacher.config.num_labels]
        if bad:
            raise PocketBertError(f"label {bad[0]!r} is outside the teacher's {teacher.config.num_labels} classes")
        return cls(setup.student, teacher.to(setup.device), setup.recipe.loss, setup.train_labels)

    def add_to_batch(self, batch: dict, gen: torch.Generator) -> None:
        batch["labels"] = torch.tensor([self.labels[i] for i in batch["index"]], dtype=torch.long)

    @torch.no_grad()
    def _teacher(self, index: list[int], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.cfg.cache_teacher:
            return self.teacher[0].classify(ids, mask)
        if any(i not in self.logits_cache for i in index):
            logits = self.teacher[0].classify(ids, mask)
            for row, i in enumerate(index):
                self.logits_cache[i] = logits[row].detach().float().cpu()
        return torch.stack([self.logits_cache[i] for i in index]).to(ids.device)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        ids, mask = batch["input_ids"], batch["attention_mask"]
        t_logits = self._teacher(batch["index"], ids, mask)
        s_logits = self.student.classify(ids, mask)
        terms = {"soft": losses.soft_target_kl(s_logits, t_logits, cfg.temperature),
                 "hard": losses.classification_cross_entropy(s_logits, batch["labels"])}
        total = cfg.alpha_soft * terms["soft"] + cfg.alpha_hard * terms["hard"]
        return total, {k: float(v.detach()) for k, v in terms.items()}
