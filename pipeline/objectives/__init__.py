"""Distillation objectives, one module each (see `base.py` for what an objective owns).

| objective | teachers | loss section | adds to a batch |
|---|---|---|---|
| `triple` (DistilBERT) | one, with an MLM head, the student's tokenizer | `TripleLoss` | masked ids, MLM labels |
| `embedding` | one sentence embedder, the student's tokenizer and width | `EmbeddingLoss` | - |
| `task` | one fine-tuned classifier, the student's tokenizer | `TaskLoss` | gold labels |
| `ensemble` | any number, each with its own tokenizer and width | `EnsembleLoss` | - (targets by example index) |
"""

from pocketbert.pipeline.objectives.base import Objective, Setup
from pocketbert.pipeline.objectives.embedding import EmbeddingLoss, EmbeddingObjective
from pocketbert.pipeline.objectives.ensemble import EnsembleLoss, EnsembleObjective
from pocketbert.pipeline.objectives.task import TaskLoss, TaskObjective
from pocketbert.pipeline.objectives.triple import TripleLoss, TripleObjective

OBJECTIVES: dict[str, type[Objective]] = {o.name: o for o in (TripleObjective, EmbeddingObjective, TaskObjective,
                                                              EnsembleObjective)}

__all__ = ["OBJECTIVES", "Objective", "Setup", "TripleLoss", "TripleObjective", "EmbeddingLoss", "EmbeddingObjective",
           "TaskLoss", "TaskObjective", "EnsembleLoss", "EnsembleObjective"]
