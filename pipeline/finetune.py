"""Fine-tuning stage: an encoder checkpoint -> a sequence classifier (the teacher for task distillation).

The backbone is copied from the checkpoint; BERT's pooler (dense + tanh over [CLS]) is kept when
the checkpoint has one and freshly initialised otherwise, and a new linear classifier is added.
Loss: cross-entropy with the gold labels. Evaluation: accuracy on `eval.classification`.

Shape: set up (model, data, evaluation), run (`train.fit`), write and verify (`train.write_and_verify`).
"""

from __future__ import annotations

import torch
from torch import nn

from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses, names
from pocketbert.pipeline.checkpoint import parent_record
from pocketbert.pipeline.data import collate, read_texts, tokenize
from pocketbert.pipeline.distributed import init_distributed
from pocketbert.pipeline.evaluate import make_evaluator
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.recipe import FinetuneRecipe, to_dict
from pocketbert.pipeline.tokenizer import Tokenizer
from pocketbert.pipeline.train import TrainData, fit, start_run, write_and_verify


class ClassifierObjective(nn.Module):
    def __init__(self, student: Encoder):
        super().__init__()
        self.student = student

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        logits = self.student.classify(batch["input_ids"], batch["attention_mask"])
        ce = losses.classification_cross_entropy(logits, batch["labels"])
        return ce, {"ce": float(ce.detach())}


def classifier_from(base: Encoder, num_labels: int, seed: int) -> Encoder:
    """A classification encoder with `base`'s backbone (and pooler, if any); new head weights."""
    cfg = base.config.replace(task="classification", num_labels=num_labels,
                              id2label={i: str(i) for i in range(num_labels)}, with_pooler=True)
    torch.manual_seed(seed)
    model = Encoder(cfg, with_mlm_head=False)
    state = {k: v for k, v in base.state_dict().items() if not k.startswith(("cls.", "classifier."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    new = {k for k in missing if not k.startswith(("pooler.", "classifier."))}
    if new or unexpected:
        raise PocketBertError(f"cannot reuse the backbone: missing {sorted(new)[:3]}, unexpected {unexpected[:3]}")
    return model


def main(cfg: FinetuneRecipe, resume: bool = False, resume_dir: str | None = None, command: str | None = None) -> dict:
    run = start_run("finetune", cfg.train, cfg.out, resume, resume_dir, command)

    # -- set up ---------------------------------------------------------------------------------
    base = names.load(cfg.model, with_mlm_head=False)
    tokenizer = Tokenizer(base.path)
    records = read_texts(cfg.data.train, cfg.data.text_field, cfg.data.label_field, cfg.data.limit)
    if any(x is None or x < 0 for x in records.labels):
        raise PocketBertError("labels must be integers >= 0 (class indices)")
    num_labels = max(2, max(records.labels) + 1)
    ids = tokenize(tokenizer, records.texts, min(cfg.data.max_length, base.model.config.max_position_embeddings))
    labels = records.labels
    evaluate = make_evaluator(cfg.eval, cfg.data, tokenizer, [])
    run.ddp = ddp = init_distributed(run.device)
    model = classifier_from(base.model, num_labels, cfg.train.seed)
    objective = ClassifierObjective(model)

    def make_batch(index: list[int], gen: torch.Generator) -> dict:
        input_ids, mask = collate([ids[i] for i in index], tokenizer.pad_id)
        return {"input_ids": input_ids, "attention_mask": mask,
                "labels": torch.tensor([labels[i] for i in index], dtype=torch.long)}

    resolved = to_dict(cfg)
    if ddp.main:
        say(f"finetune: {base.path} -> {num_labels} classes | {len(ids)} texts | device {run.device}")
        say(f"finetune: resolved recipe in {run.write_resolved(resolved)}")

    # -- run ------------------------------------------------------------------------------------
    result = fit(objective, TrainData(make_batch, [len(x) for x in ids], cfg.data.batch_size, cfg.data.group_by_length),
                 cfg.train, run, evaluate, cfg.eval.metric, resolved)
    if not ddp.main:
        return {}

    # -- write and verify -----------------------------------------------------------------------
    record = {
        "stage": "finetune",
        "parent": parent_record(base),
        "recipe": resolved,
        "data": {"files": records.files, "texts": len(ids), "num_labels": num_labels,
                 "skipped_empty": records.skipped_empty, "skipped_non_utf8": records.skipped_non_utf8},
    }
    return write_and_verify(run, objective, result, record, base.path, ids, tokenizer.pad_id)
