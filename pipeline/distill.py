"""Distillation stage: teacher -> student, one of three objectives.

- `triple` (DistilBERT, Sanh et al. 2019): alpha_ce x soft-target KL on MLM logits at temperature T
  (x T^2) + alpha_mlm x MLM cross-entropy + alpha_cos x cosine of last hidden states, with dynamic
  15% masking (80/10/10); optional intermediate terms: hidden-state MSE through a layer map
  (projected when widths differ, TinyBERT) and attention-distribution KL (MiniLM).
- `embedding`: for sentence-embedding teachers without an MLM head (all-MiniLM-L6-v2): MSE and
  cosine between pooled embeddings, plus optional cosine of last hidden states.
- `task`: a fine-tuned classification teacher -> student with soft targets at T plus gold labels.
- `ensemble`: one or more sentence-embedding teachers with weights, width-agnostic: MSE between the
  student's in-batch cosine matrix and each teacher's, and/or a training-only projection of the student's
  embedding onto the teachers' concatenated normalised embeddings. Teacher embeddings are computed once
  per (corpus, teacher) with each teacher's own tokenizer and kept on disk (`teacher_cache.py`), so no
  token alignment is needed and a second run costs no teacher pass.

The student starts from layers of a checkpoint (`student.init: layers`; `student.source`, default the
(first) teacher), random weights, or a whole checkpoint. The objectives that feed the same token ids to
teacher and student (triple, embedding, task) need the student to share the teacher's tokenizer.
For `embedding` and `task` the teacher's outputs are cached per example during the first epoch and
reused afterwards (its inputs never change), so later epochs cost only the student.

Shape: set up (teacher, student, data, evaluation: every input checked before training), run
(`train.fit`), write and verify (`train.write_and_verify`: checkpoint, metrics and curves, reload).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses
from pocketbert.pipeline.checkpoint import LoadedCheckpoint, load_checkpoint, parent_record
from pocketbert.pipeline.data import cache_dir, collate, read_pairs, read_texts, split_holdout, tokenize
from pocketbert.pipeline.evaluate import make_evaluator
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.recipe import TOKEN_ALIGNED, DistillRecipe, LossConfig, to_dict
from pocketbert.pipeline.student import factorize_embeddings, parse_layers, prune_ffn, select_layers
from pocketbert.pipeline.teacher_cache import teacher_embeddings
from pocketbert.pipeline.tokenizer import Tokenizer
from pocketbert.pipeline.train import (
    TrainData,
    fit,
    init_distributed,
    start_run,
    write_and_verify,
)


class TripleObjective(nn.Module):
    """DistilBERT's triple loss, plus the optional intermediate-layer terms."""

    def __init__(self, student: Encoder, teacher: Encoder, cfg: LossConfig, layer_map: list[int]):
        super().__init__()
        self.student, self.cfg, self.layer_map = student, cfg, layer_map
        self.teacher = [teacher]  # a list keeps the frozen teacher out of state_dict and DDP
        sh, th = student.config.hidden_size, teacher.config.hidden_size
        # Student -> teacher width for the hidden-state terms when widths differ (TinyBERT's W_h);
        # training-only, not saved in the checkpoint.
        self.projection = nn.Linear(sh, th) if sh != th else None

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


class EmbeddingObjective(nn.Module):
    """Sentence-embedding distillation; the teacher's pooled (and last hidden) outputs are cached per example."""

    def __init__(self, student: Encoder, teacher: Encoder, cfg: LossConfig):
        super().__init__()
        self.student, self.cfg = student, cfg
        self.teacher = [teacher]
        self.pooled_cache: dict[int, torch.Tensor] = {}
        self.hidden_cache: dict[int, torch.Tensor] = {}  # fp16 (len, H): half the memory, cosine-exact enough

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


class TaskObjective(nn.Module):
    """Task distillation: alpha_soft x KL at temperature T (x T^2) + alpha_hard x cross-entropy with labels."""

    def __init__(self, student: Encoder, teacher: Encoder, cfg: LossConfig):
        super().__init__()
        self.student, self.cfg = student, cfg
        self.teacher = [teacher]
        self.logits_cache: dict[int, torch.Tensor] = {}

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


class EnsembleObjective(nn.Module):
    """Width-agnostic sentence-level distillation from precomputed teacher embeddings (one (N, D_t) per teacher).

    alpha_sim_mse x sum_t w_t MSE(cos matrix of the student, of teacher t) + alpha_proj_cos x (1 - cos) and
    alpha_proj_mse x MSE between `projection(student embedding)` and the concatenated target
    (`losses.ensemble_target`). The projection is used only in training and not saved.

    With an anchor (a teacher that shares the student's tokenizer and width, e.g. the checkpoint whose layers
    the student starts from), the student also stays in that teacher's space: alpha_emb_mse x MSE and
    alpha_emb_cos x (1 - cos) to its pooled embedding (from the cache) and alpha_token_mse x MSE to its last
    hidden states (real tokens; one anchor forward per step), weighted by 1 - anchor_decay x progress of the run.
    The in-batch matrix only constrains B(B-1)/2 pooled similarities; the token states give the student
    (B, T, H) targets, which is what lets a 2-layer cut of a 3-layer model recover its teacher quickly
    (measured in distill-ensemble-sts.yaml).
    """

    def __init__(self, student: Encoder, targets: list[torch.Tensor], weights: list[float], cfg: LossConfig,
                 anchor: tuple[int, Encoder] | None = None):
        super().__init__()
        self.student, self.cfg, self.weights = student, cfg, weights
        self.targets = targets  # a plain list: not in state_dict, not broadcast by DDP
        self.anchor = [anchor] if anchor is not None else []  # (index into targets, frozen encoder), kept out of state_dict
        width = sum(t.shape[1] for t in targets)
        self.projection = (nn.Linear(student.config.hidden_size, width)
                           if cfg.alpha_proj_cos > 0 or cfg.alpha_proj_mse > 0 else None)

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


def ensemble_anchor(cfg: DistillRecipe, specs: list, ckpts: list[LoadedCheckpoint], student: Encoder,
                    student_tok: Path) -> tuple[int, Encoder] | None:
    """(index, encoder) of `loss.anchor` among the teachers, checked against the student; None without one."""
    if cfg.loss.anchor is None:
        return None
    k = [t.path for t in specs].index(cfg.loss.anchor)
    anchor = ckpts[k]
    if not _same_vocab(anchor.path, student_tok):
        raise PocketBertError(f"loss.anchor {cfg.loss.anchor} has another tokenizer than the student ({anchor.path}/vocab.txt "
                              f"vs {student_tok}/vocab.txt); anchor the teacher whose layers the student starts from")
    if anchor.model.config.hidden_size != student.config.hidden_size:
        raise PocketBertError(f"loss.anchor {cfg.loss.anchor} is {anchor.model.config.hidden_size} wide and the student "
                              f"{student.config.hidden_size}; the anchor terms compare vectors directly, so widths must match")
    return k, anchor.model.eval()


def _same_vocab(a: Path, b: Path) -> bool:
    return (a / "vocab.txt").read_bytes().splitlines() == (b / "vocab.txt").read_bytes().splitlines()


def build_student(cfg: DistillRecipe, teacher: LoadedCheckpoint) -> tuple[Encoder, list[int], Path, dict]:
    """The student, the layer map the intermediate losses use, its tokenizer folder, and its record.

    `init: layers` copies layers of `student.source` (default: the teacher), `random` takes its config with
    random weights, and a folder loads that whole checkpoint. Objectives that give teacher and student the
    same token ids (TOKEN_ALIGNED) need both to use one vocabulary.
    """
    init = cfg.student.init
    aligned = cfg.objective in TOKEN_ALIGNED
    if init in ("layers", "random"):
        source = teacher if cfg.student.source is None else load_checkpoint(
            cfg.student.source, with_mlm_head=True if cfg.objective == "triple" else None)
    else:
        from pocketbert.pipeline.peers import NAMED_PEERS

        if not (Path(init).is_dir() or init in NAMED_PEERS or init == "minilm"):
            raise PocketBertError(f"student.init {init!r} is not layers, random, a checkpoint folder, `minilm` or "
                                  f"{', '.join(f'`{n}`' for n in NAMED_PEERS)}")
        source = load_checkpoint(init, with_mlm_head=True if cfg.objective == "triple" else None)
    if aligned and source.path != teacher.path and not _same_vocab(source.path, teacher.path):
        raise PocketBertError(
            f"teacher and student vocabularies differ ({teacher.path}/vocab.txt vs {source.path}/vocab.txt): their "
            f"tokenizers differ and objective {cfg.objective} compares token-level outputs; use objective ensemble (sentence level, "
            "each teacher with its own tokenizer) or a student built from this teacher without --trim-vocab")
    n_source = source.model.config.num_hidden_layers
    src = {} if source is teacher else {"source": str(source.path.resolve())}
    if init == "layers":
        layers = parse_layers(cfg.student.layers, n_source)
        return (select_layers(source.model, layers).train(), layers, source.path,
                {"init": "layers", "layer_map": layers, **src})
    if init == "random":
        n = cfg.student.num_hidden_layers or len(parse_layers(cfg.student.layers, n_source))
        torch.manual_seed(cfg.train.seed)
        student = Encoder(source.model.config.replace(num_hidden_layers=n), with_mlm_head=source.model.cls is not None)
        layers = parse_layers(f"uniform:{n}", n_source) if n <= n_source else list(range(n_source))
        return student.train(), layers, source.path, {"init": "random", "num_hidden_layers": n, **src}
    student = source.model
    n = student.config.num_hidden_layers
    n_teacher = teacher.model.config.num_hidden_layers
    layers = source.record.get("layer_map") or parse_layers(f"uniform:{n}", n_teacher)
    return student.train(), list(layers), source.path, {"init": str(source.path.resolve()), "layer_map": layers}


def shrink_student(spec, student: Encoder, record: dict, train_ids: list[list[int]], resume: bool,
                   seed: int) -> tuple[Encoder, dict]:
    """`student.intermediate_size` (FFN pruning), then `student.embedding_size` (factorized embedding), both
    measured on the training text; before the objective and the optimizer see the student. On a resumed run
    only the shapes matter (the weights come from the checkpoint), so the embedding fit is skipped."""
    if spec.intermediate_size is not None and spec.intermediate_size != student.config.intermediate_size:
        student, pruned = prune_ffn(student, spec.intermediate_size, train_ids, seed=seed)
        record = {**record, "pruned_ffn": pruned}
        print(f"distill: feed-forward blocks pruned to {spec.intermediate_size} neurons (importance kept "
              f"{pruned['importance_kept']})", file=sys.stderr, flush=True)
    if spec.embedding_size is not None:  # factorize_embeddings checks the size against the student's width
        student, fitted = factorize_embeddings(student, spec.embedding_size, train_ids, steps=0 if resume else 800,
                                               seed=seed)
        record = {**record, "factorized": fitted}
        print(f"distill: embedding factorized to E={spec.embedding_size} (fit MSE {fitted['fit_mse_start']} -> "
              f"{fitted['fit_mse_end']})", file=sys.stderr, flush=True)
    return student.train(), record


def main(cfg: DistillRecipe, resume: bool = False, resume_dir: str | None = None, command: str | None = None) -> dict:
    """Run one distillation recipe; returns the summary written into the checkpoint's pocketbert.json."""
    run = start_run(f"distill[{cfg.objective}]", cfg.train, cfg.out, resume, resume_dir, command)

    # -- set up: teachers, student, data, evaluation ---------------------------------------------
    specs = cfg.teacher_list()
    teacher_ckpts = [load_checkpoint(t.path, tokenizer=t.tokenizer) for t in specs]  # MLM heads only if present
    teacher_ckpt = teacher_ckpts[0]
    teacher = teacher_ckpt.model.eval()
    if cfg.objective == "triple" and teacher.cls is None:
        raise PocketBertError(f"{teacher_ckpt.path} has no MLM head, which the triple loss needs; "
                              "use objective=embedding for sentence-embedding teachers such as minilm")
    if cfg.objective == "task" and teacher.config.task != "classification":
        raise PocketBertError(f"{teacher_ckpt.path} is not a classification model; fine-tune one first "
                              "(pocketbert finetune) for objective=task")
    for ckpt in teacher_ckpts:
        for p in ckpt.model.parameters():
            p.requires_grad_(False)
    student, layer_map, student_tok_path, student_record = build_student(cfg, teacher_ckpt)
    anchor = ensemble_anchor(cfg, specs, teacher_ckpts, student, student_tok_path)  # checked before any teacher pass
    if cfg.loss.layer_map is not None:
        layer_map = cfg.loss.layer_map
    if cfg.loss.alpha_hidden_mse > 0 or cfg.loss.alpha_attention > 0:
        if len(layer_map) != student.config.num_hidden_layers or not all(
                0 <= k < teacher.config.num_hidden_layers for k in layer_map):
            raise PocketBertError(f"loss.layer_map {layer_map} must give one teacher layer "
                                  f"(0..{teacher.config.num_hidden_layers - 1}) per student layer "
                                  f"({student.config.num_hidden_layers})")
        if cfg.loss.alpha_attention > 0 and student.config.num_attention_heads != teacher.config.num_attention_heads:
            raise PocketBertError("loss.alpha_attention needs the same number of attention heads in teacher and student")
    if cfg.objective == "embedding" and student.config.hidden_size != teacher.config.hidden_size:
        raise PocketBertError(f"objective embedding compares embeddings directly: the student's hidden size "
                              f"({student.config.hidden_size}) must equal the teacher's ({teacher.config.hidden_size})")
    if cfg.objective in TOKEN_ALIGNED and student.config.vocab_size != teacher.config.vocab_size:
        raise PocketBertError("teacher and student vocabularies differ in size; distil before trimming the vocabulary")
    tokenizer = Tokenizer(teacher_ckpt.path if cfg.objective in TOKEN_ALIGNED else student_tok_path)
    label_field = cfg.data.label_field if cfg.objective == "task" else None
    records = read_texts(cfg.data.train, cfg.data.text_field, label_field, cfg.data.limit)
    if cfg.objective == "ensemble":  # each distinct sentence once: in-batch duplicates would be free pairs
        records.texts = list(dict.fromkeys(records.texts))
    ids = tokenize(tokenizer, records.texts, min(cfg.data.max_length, student.config.max_position_embeddings))
    train_idx, held_idx = split_holdout(len(ids), cfg.data.holdout, cfg.train.seed)
    train_ids = [ids[i] for i in train_idx]
    student, student_record = shrink_student(cfg.student, student, student_record, train_ids, resume, cfg.train.seed)
    pairs = []  # read before the teacher passes: a bad file fails at once
    if cfg.data.pairs:
        pairs, dropped = read_pairs(cfg.data.pairs, {records.texts[i]: k for k, i in enumerate(train_idx)})
        print(f"distill: {len(pairs)} sentence pairs ({dropped} rows not in the corpus), {cfg.data.pairs_per_batch} "
              "added to each batch", file=sys.stderr, flush=True)
    teacher_cache = []
    if cfg.objective == "ensemble":
        train_texts = [records.texts[i] for i in train_idx]
        targets = []
        for spec, ckpt in zip(specs, teacher_ckpts, strict=True):
            emb, info = teacher_embeddings(ckpt, train_texts, cfg.data.max_length, cache_dir())
            targets.append(torch.from_numpy(emb))
            teacher_cache.append({"path": spec.path, "weight": spec.weight, **info})
            print(f"distill: teacher {spec.path}: {'cached' if info['hit'] else 'computed'} embeddings "
                  f"{tuple(emb.shape)} ({info['file']})", file=sys.stderr, flush=True)
    train_labels = [records.labels[i] for i in train_idx] if records.labels is not None else None
    if train_labels is not None:
        n_labels = teacher.config.num_labels
        bad = [x for x in train_labels if x is None or not 0 <= x < n_labels]
        if bad:
            raise PocketBertError(f"label {bad[0]!r} is outside the teacher's {n_labels} classes")
    evaluate = make_evaluator(cfg.eval, cfg.data, tokenizer, [ids[i] for i in held_idx])
    run.ddp = ddp = init_distributed(run.device)
    specials = sorted(tokenizer.special_ids.values())

    if cfg.objective == "triple":
        objective = TripleObjective(student, teacher, cfg.loss, layer_map)
    elif cfg.objective == "embedding":
        objective = EmbeddingObjective(student, teacher, cfg.loss)
    elif cfg.objective == "task":
        objective = TaskObjective(student, teacher, cfg.loss)
    else:
        objective = EnsembleObjective(student, targets, [t.weight for t in specs], cfg.loss, anchor)
        if anchor is not None:
            anchor[1].to(run.device)
    if cfg.objective != "ensemble":  # the ensemble reads cached teacher embeddings (and at most the anchor)
        teacher.to(run.device)

    def make_batch(index: list[int], gen: torch.Generator) -> dict:
        if pairs and cfg.data.pairs_per_batch:  # + k random related pairs (seeded: a resumed run draws the same)
            drawn = torch.randint(len(pairs), (cfg.data.pairs_per_batch,), generator=gen).tolist()
            index = list(dict.fromkeys([*index, *(i for k in drawn for i in pairs[k])]))
        input_ids, mask = collate([train_ids[i] for i in index], tokenizer.pad_id)
        batch = {"input_ids": input_ids, "attention_mask": mask, "index": index}
        if cfg.objective == "triple":
            batch["input_ids"], batch["labels"] = losses.mask_tokens(
                input_ids, mask, specials, tokenizer.mask_id, student.config.vocab_size, gen,
                cfg.loss.mlm_probability, cfg.loss.mask_ratio, cfg.loss.random_ratio)
        elif cfg.objective == "task":
            batch["labels"] = torch.tensor([train_labels[i] for i in index], dtype=torch.long)
        return batch

    resolved = to_dict(cfg)
    baseline = {}
    if ddp.main:
        print(f"distill: {cfg.objective} | teacher {teacher_ckpt.path} | student {student_record} | "
              f"{len(train_ids)} training texts ({records.skipped_empty} empty, {records.skipped_non_utf8} non-UTF-8 "
              f"skipped) | device {run.device}", file=sys.stderr)
        print(f"distill: resolved recipe in {run.write_resolved(resolved)}", file=sys.stderr, flush=True)
        if evaluate is not None and cfg.eval.at_start and not resume:
            if cfg.objective == "ensemble":  # each teacher with its own tokenizer
                baseline = {"teachers": {t.path: make_evaluator(cfg.eval, cfg.data, Tokenizer(c.path), [])(c.model)
                                         for t, c in zip(specs, teacher_ckpts, strict=True)}}
            else:
                baseline = {"teacher": evaluate(teacher)}
            baseline["student_init"] = evaluate(student)
            print(f"distill: before training: {baseline}", file=sys.stderr, flush=True)

    # -- run -------------------------------------------------------------------------------------
    result = fit(objective, TrainData(make_batch, [len(x) for x in train_ids], cfg.data.batch_size,
                                      cfg.data.group_by_length), cfg.train, run, evaluate, cfg.eval.metric, resolved,
                 initial_eval=baseline.get("student_init"))
    if not ddp.main:
        return {}

    # -- write and verify -------------------------------------------------------------------------
    record = {
        "stage": "distill",
        "objective": cfg.objective,
        "parent": parent_record(teacher_ckpt),
        "teachers": teacher_cache or None,
        "student_init": student_record,
        "layer_map": layer_map,
        "recipe": resolved,
        "data": {"files": records.files, "texts": len(train_ids), "held_out": len(held_idx),
                 "skipped_empty": records.skipped_empty, "skipped_non_utf8": records.skipped_non_utf8,
                 "pairs": len(pairs) or None},
    }
    return write_and_verify(run, objective, result, record, student_tok_path, train_ids, tokenizer.pad_id,
                            before_training=baseline)
