"""Pretraining stage: an encoder from scratch with masked language modelling (BERT) and the ALBERT options.

- MLM with dynamic masking: 15% of real tokens picked per batch (80% [MASK], 10% random, 10% kept).
- ALBERT (Lan et al. 2020): factorized embeddings (`model.embedding_size` E < H) and cross-layer
  sharing (`model.sharing`: all | attention), both properties of the one encoder.
- Optional sentence-order prediction (`sop: true`): every line is cut at a random token into two
  segments A and B, fed as `[CLS] A [SEP] B [SEP]` (segment ids 0/1) in order or swapped (half each);
  a 2-way head on the pooler predicts the order. The head is training-only and not saved.

Shape: set up (tokenizer, config, data, evaluation), run (`train.fit`), write and verify
(`train.write_and_verify`).
"""

from __future__ import annotations

import torch
from torch import nn

from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses
from pocketbert.pipeline.data import collate, read_texts, split_holdout, tokenize
from pocketbert.pipeline.distributed import init_distributed
from pocketbert.pipeline.evaluate import make_evaluator
from pocketbert.pipeline.models.encoder import Encoder, minilm_l6_config, tiny_config
from pocketbert.pipeline.names import resolve
from pocketbert.pipeline.recipe import PretrainRecipe, to_dict
from pocketbert.pipeline.tokenizer import Tokenizer
from pocketbert.pipeline.train import TrainData, fit, start_run, write_and_verify


class PretrainObjective(nn.Module):
    """MLM cross-entropy (+ alpha_sop x sentence-order cross-entropy)."""

    def __init__(self, student: Encoder, sop: bool, alpha_sop: float):
        super().__init__()
        self.student, self.alpha_sop = student, alpha_sop
        self.sop_classifier = nn.Linear(student.config.hidden_size, 2) if sop else None

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        out = self.student(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        labels = batch["labels"]
        picked = labels != losses.IGNORE_INDEX
        mlm = losses.mlm_cross_entropy(self.student.mlm_logits(out.last_hidden_state[picked]), labels[picked])
        terms = {"mlm": mlm}
        total = mlm
        if self.sop_classifier is not None:
            logits = self.sop_classifier(self.student.pooler(out.last_hidden_state))
            terms["sop"] = losses.classification_cross_entropy(logits, batch["sop_labels"])
            total = total + self.alpha_sop * terms["sop"]
        return total, {k: float(v.detach()) for k, v in terms.items()}


def model_config(cfg: PretrainRecipe, vocab_size: int, pad_id: int):
    base = tiny_config if cfg.model.preset == "tiny" else minilm_l6_config
    overrides = {k: getattr(cfg.model, k) for k in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "embedding_size", "hidden_act") if getattr(cfg.model, k) is not None}
    try:
        return base(vocab_size=vocab_size, pad_token_id=pad_id, sharing=cfg.model.sharing, pooling=cfg.model.pooling,
                    task="mlm", with_pooler=cfg.sop, **overrides)
    except ValueError as e:
        raise PocketBertError(f"model: {e}") from None


def sop_pair(ids: list[int], cls_id: int, sep_id: int, gen: torch.Generator) -> tuple[list[int], list[int], int]:
    """[CLS] A [SEP] B [SEP] from one line's ids (with its specials); label 1 when the halves are swapped."""
    body = ids[1:-1]
    if len(body) < 2:
        return ids, [0] * len(ids), 0
    cut = int(torch.randint(1, len(body), (1,), generator=gen))
    a, b = body[:cut], body[cut:]
    swapped = int(torch.rand((), generator=gen) < 0.5)
    if swapped:
        a, b = b, a
    seq = [cls_id, *a, sep_id, *b, sep_id]
    return seq, [0] * (len(a) + 2) + [1] * (len(b) + 1), swapped


def main(cfg: PretrainRecipe, resume: bool = False, resume_dir: str | None = None, command: str | None = None) -> dict:
    run = start_run("pretrain", cfg.train, cfg.out, resume, resume_dir, command)

    # -- set up ---------------------------------------------------------------------------------
    tok_dir = resolve(cfg.model.tokenizer)  # a folder, or `minilm` for its uncased 30522 vocabulary
    if not (tok_dir / "vocab.txt").is_file():
        raise PocketBertError(f"model.tokenizer {tok_dir} has no vocab.txt; point it at a folder with a WordPiece vocabulary")
    tokenizer = Tokenizer(tok_dir)
    mcfg = model_config(cfg, len(tokenizer), tokenizer.pad_id)
    records = read_texts(cfg.data.train, cfg.data.text_field, None, cfg.data.limit)
    ids = tokenize(tokenizer, records.texts, min(cfg.data.max_length, mcfg.max_position_embeddings))
    train_idx, held_idx = split_holdout(len(ids), cfg.data.holdout, cfg.train.seed)
    train_ids = [ids[i] for i in train_idx]
    evaluate = make_evaluator(cfg.eval, cfg.data, tokenizer, [ids[i] for i in held_idx])
    run.ddp = ddp = init_distributed(run.device)
    torch.manual_seed(cfg.train.seed)
    model = Encoder(mcfg)
    objective = PretrainObjective(model, cfg.sop, cfg.alpha_sop)
    specials = sorted(tokenizer.special_ids.values())
    cls_id, sep_id = tokenizer.special_ids["[CLS]"], tokenizer.special_ids["[SEP]"]

    def make_batch(index: list[int], gen: torch.Generator) -> dict:
        rows = [train_ids[i] for i in index]
        batch = {}
        if cfg.sop:
            pairs = [sop_pair(r, cls_id, sep_id, gen) for r in rows]
            rows = [p[0] for p in pairs]
            types, _ = collate([p[1] for p in pairs], 0)
            batch["token_type_ids"] = types
            batch["sop_labels"] = torch.tensor([p[2] for p in pairs], dtype=torch.long)
        input_ids, mask = collate(rows, tokenizer.pad_id)
        batch["input_ids"], batch["labels"] = losses.mask_tokens(
            input_ids, mask, specials, tokenizer.mask_id, mcfg.vocab_size, gen, cfg.mlm_probability,
            cfg.mask_ratio, cfg.random_ratio)
        batch["attention_mask"] = mask
        return batch

    resolved = to_dict(cfg)
    if ddp.main:
        say(f"pretrain: {mcfg.num_parameters() / 1e6:.2f} M parameters | {len(train_ids)} texts{records.skipped()} "
            f"| device {run.device}")
        say(f"pretrain: resolved recipe in {run.write_resolved(resolved)}")

    # -- run ------------------------------------------------------------------------------------
    # sop: a line becomes [CLS] A [SEP] B [SEP], one token longer
    lengths = [len(x) + (1 if cfg.sop else 0) for x in train_ids]
    result = fit(objective, TrainData(make_batch, lengths, cfg.data.batch_size, cfg.data.group_by_length), cfg.train,
                 run, evaluate, cfg.eval.metric, resolved)
    if not ddp.main:
        return {}

    # -- write and verify -----------------------------------------------------------------------
    record = {
        "stage": "pretrain",
        "parent": None,
        "recipe": resolved,
        "data": {"files": records.files, "texts": len(train_ids), "held_out": len(held_idx),
                 "skipped_empty": records.skipped_empty, "skipped_non_utf8": records.skipped_non_utf8},
    }
    return write_and_verify(run, objective, result, record, tok_dir, train_ids, tokenizer.pad_id)
