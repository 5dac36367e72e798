"""What every distillation objective is: a module the training loop calls, plus what it owns.

An objective owns
- its loss section: a dataclass that the recipe's `loss:` is validated into (`Loss`, with `check`);
- its checks: on the recipe alone (`check_recipe`, no I/O), then on the loaded teachers and student
  (`check_models`, before any teacher pass or training step);
- what it adds to a batch (`add_to_batch`: masked tokens, gold labels), beyond the ids, mask and
  example indices that the driver (pipeline/distill.py) collates for every objective.

`create(setup)` builds the objective from what the driver set up (teachers, student, tokenized text);
the ensemble computes or reads its teacher embeddings there. `record()` is what the objective adds
to the checkpoint's pocketbert.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.tokenizer import Tokenizer


@dataclass
class Setup:
    """What the driver hands an objective: everything loaded and checked, nothing trained yet."""

    recipe: Any  # the DistillRecipe (typed loosely: recipe.py imports this package)
    teachers: list  # one per recipe teacher, in order: LoadedCheckpoint (BERT family) or a sentence teacher
    student: Encoder
    student_tokenizer: Path  # folder of the student's vocab.txt
    layer_map: list[int]  # teacher layer per student layer (the init's layers unless loss.layer_map)
    tokenizer: Tokenizer  # what the training text is tokenized with
    train_texts: list[str]
    train_ids: list[list[int]]
    train_labels: list[int] | None
    device: str


def same_vocab(a: Path, b: Path) -> bool:
    """True when two checkpoint folders hold the same WordPiece vocabulary (one tokenizer)."""
    if not (a / "vocab.txt").is_file() or not (b / "vocab.txt").is_file():
        return False
    return (a / "vocab.txt").read_bytes().splitlines() == (b / "vocab.txt").read_bytes().splitlines()


def encoder_of(teacher, role: str) -> Encoder:
    """The pocketbert Encoder of a loaded teacher, or a one-line error for a teacher-only model (MPNet)."""
    model = getattr(teacher, "model", None)
    if not isinstance(model, Encoder):
        raise PocketBertError(f"{role} {getattr(teacher, 'name', teacher)} is a sentence-embedding teacher only "
                              "(not a BERT-family encoder); use it in objective ensemble, or name a BERT-family "
                              "checkpoint here")
    return model


class Objective(nn.Module):
    """Base of the four objectives. Subclasses set the class attributes and implement `create` and `forward`."""

    name: ClassVar[str]
    Loss: ClassVar[type]  # the loss section's dataclass
    token_aligned: ClassVar[bool] = True  # teacher and student read the same token ids (one tokenizer)
    max_teachers: ClassVar[int | None] = 1  # None: any number
    needs_labels: ClassVar[bool] = False  # reads data.label_field
    student_mlm_head: ClassVar[bool | None] = None  # build the student's MLM head (None: when its source has one)

    @classmethod
    def check_recipe(cls, recipe) -> None:
        """Checks of the recipe alone (no files read): raise PocketBertError naming the key."""
        if cls.max_teachers is not None and len(recipe.teachers) > cls.max_teachers:
            raise PocketBertError(f"objective {cls.name} takes one teacher; list several teachers with objective "
                                  "ensemble")
        if cls.needs_labels and recipe.data.label_field is None:
            raise PocketBertError(f"objective {cls.name} needs data.label_field (the column with gold labels)")

    @classmethod
    def layer_map(cls, recipe, init_layers: list[int]) -> list[int]:
        """Teacher layer per student layer for the intermediate terms (the init's layers unless overridden)."""
        return init_layers

    @classmethod
    def check_models(cls, setup: Setup) -> None:
        """Checks of the loaded teachers against the student, before any teacher pass or training step."""
        if not cls.token_aligned:
            return
        teacher = setup.teachers[0]
        model = encoder_of(teacher, "teacher")
        if teacher.path != setup.student_tokenizer and not same_vocab(teacher.path, setup.student_tokenizer):
            raise PocketBertError(
                f"teacher and student vocabularies differ ({teacher.path}/vocab.txt vs "
                f"{setup.student_tokenizer}/vocab.txt): their tokenizers differ and objective {cls.name} compares "
                "token-level outputs; use objective ensemble (sentence level, each teacher with its own tokenizer) or a student built from "
                "this teacher without --trim-vocab")
        if setup.student.config.vocab_size != model.config.vocab_size:
            raise PocketBertError("teacher and student vocabularies differ in size; distil before trimming the "
                                  "vocabulary")

    @classmethod
    def create(cls, setup: Setup) -> Objective:
        raise NotImplementedError

    def add_to_batch(self, batch: dict, gen: torch.Generator) -> None:
        """Add this objective's fields to a collated batch (ids, mask and example indices are there)."""

    def record(self) -> dict:
        """What this objective adds to the checkpoint's pocketbert.json."""
        return {}
