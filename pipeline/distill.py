"""Distillation stage: teachers -> student, with one of four objectives (pipeline/objectives/).

- `triple` (DistilBERT): soft MLM targets + MLM cross-entropy + hidden-state cosine, for an MLM teacher.
- `embedding`: pooled-embedding MSE and cosine to one sentence-embedding teacher (all-MiniLM-L6-v2).
- `task`: soft class targets at T plus gold labels, from a fine-tuned classifier.
- `ensemble`: any number of weighted sentence-embedding teachers, each with its own tokenizer and width
  (MPNet included), through cached teacher embeddings; optionally anchored to one that shares the student's.

The student starts from layers of a checkpoint (`student.init: layers`; `student.source`, default the
first teacher), random weights, or a whole checkpoint, and may be shrunk before training (FFN pruning,
a factorized embedding; pipeline/student.py).

Shape: set up (teachers, student, text; the objective checks each against the others before any teacher
pass), run (`train.fit`), write and verify (`train.write_and_verify`: checkpoint, metrics and curves, reload).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.pipeline import mpnet, names
from pocketbert.pipeline.checkpoint import LoadedCheckpoint, parent_record
from pocketbert.pipeline.data import collate, read_pairs, read_texts, split_holdout, tokenize
from pocketbert.pipeline.distributed import init_distributed
from pocketbert.pipeline.evaluate import make_evaluator
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.objectives import Setup
from pocketbert.pipeline.recipe import DistillRecipe, to_dict
from pocketbert.pipeline.student import factorize_embeddings, parse_layers, prune_ffn, select_layers
from pocketbert.pipeline.suite import dev_sentences, load_suite, score_suite
from pocketbert.pipeline.teacher_cache import SentenceTeacher, load_sentence_teacher
from pocketbert.pipeline.tokenizer import Tokenizer
from pocketbert.pipeline.train import TrainData, fit, start_run, write_and_verify

log = logging.getLogger("pocketbert.distill")

def build_student(cfg: DistillRecipe, teacher: LoadedCheckpoint) -> tuple[Encoder, list[int], Path, dict]:
    """The student, the teacher layers it starts from, its tokenizer folder, and its record.

    `init: layers` copies layers of `student.source` (default: the first teacher), `random` takes its config
    with random weights, and a folder loads that whole checkpoint.
    """
    init = cfg.student.init
    mlm_head = cfg.objective_class.student_mlm_head
    if init in ("layers", "random"):
        source = teacher if cfg.student.source is None else names.load(cfg.student.source, with_mlm_head=mlm_head)
        if not isinstance(getattr(source, "model", None), Encoder):
            raise PocketBertError(f"student.source {cfg.student.source or cfg.teachers[0].path} is a teacher only, not "
                                  "a BERT-family encoder whose layers a student can copy; set student.source to one "
                                  "(e.g. paraphrase-minilm-l3)")
    else:
        if not (Path(init).is_dir() or init in names.known_names()):
            raise PocketBertError(f"student.init {init!r} is not layers, random, a checkpoint folder or "
                                  f"{', '.join(f'`{n}`' for n in names.known_names())}")
        source = names.load(init, with_mlm_head=mlm_head)
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


def load_teacher(spec) -> LoadedCheckpoint | SentenceTeacher:
    """A recipe teacher: MPNet (`mpnet` or its folder) as a sentence teacher behind its backend; any other model as
    a checkpoint (the ensemble wraps it behind its backend when it computes the teacher pass)."""
    if spec.path == mpnet.NAME or mpnet.is_mpnet_folder(spec.path):
        return load_sentence_teacher(spec.path, backend=spec.backend)
    return names.load(spec.path, tokenizer=spec.tokenizer)


def drop_dev_sentences(records, dev: set[str]) -> int:
    """Remove from `records` (in place, labels kept aligned) every text that is a sentence of a dev-suite file;
    returns how many went."""
    keep = [i for i, t in enumerate(records.texts) if t not in dev]
    removed = len(records.texts) - len(keep)
    if removed:
        records.texts = [records.texts[i] for i in keep]
        if records.labels is not None:
            records.labels = [records.labels[i] for i in keep]
        say(f"distill: {removed} training text(s) are dev-suite sentences: removed")
        if not records.texts:
            raise PocketBertError("every training text is a dev-suite sentence; train on other text (the suite's "
                                  "dev files never go into training)")
    return removed


def shrink_student(spec, student: Encoder, record: dict, train_ids: list[list[int]], resume: bool,
                   seed: int) -> tuple[Encoder, dict]:
    """`student.intermediate_size` (FFN pruning), then `student.embedding_size` (factorized embedding), both
    measured on the training text; before the objective and the optimizer see the student. On a resumed run
    only the shapes matter (the weights come from the checkpoint), so the embedding fit is skipped."""
    if spec.intermediate_size is not None and spec.intermediate_size != student.config.intermediate_size:
        student, pruned = prune_ffn(student, spec.intermediate_size, train_ids, seed=seed)
        record = {**record, "pruned_ffn": pruned}
        say(f"distill: feed-forward blocks pruned to {spec.intermediate_size} neurons (importance kept "
            f"{pruned['importance_kept']})")
    if spec.embedding_size is not None:  # factorize_embeddings checks the size against the student's width
        student, fitted = factorize_embeddings(student, spec.embedding_size, train_ids, steps=0 if resume else 800,
                                               seed=seed)
        record = {**record, "factorized": fitted}
        say(f"distill: embedding factorized to E={spec.embedding_size} (fit MSE {fitted['fit_mse_start']} -> "
            f"{fitted['fit_mse_end']})")
    return student.train(), record


def main(cfg: DistillRecipe, resume: bool = False, resume_dir: str | None = None, command: str | None = None) -> dict:
    """Run one distillation recipe; returns the summary written into the checkpoint's pocketbert.json."""
    run = start_run(f"distill[{cfg.objective}]", cfg.train, cfg.out, resume, resume_dir, command)
    kind = cfg.objective_class

    # -- set up: teachers, student, text; the objective checks them against each other ---------------
    teachers = [load_teacher(t) for t in cfg.teachers]  # MLM heads only if present
    for t in teachers:
        (t.model if isinstance(t, LoadedCheckpoint) else t.module).eval().requires_grad_(False)
    student, init_layers, student_tok, student_record = build_student(cfg, teachers[0])
    tokenizer = Tokenizer(teachers[0].path if kind.token_aligned else student_tok)
    setup = Setup(cfg, teachers, student, student_tok, kind.layer_map(cfg, init_layers), tokenizer, [], [], None,
                  run.device)
    kind.check_models(setup)  # before reading text or any teacher pass
    parent = parent_teacher(teachers)
    records, removed, ids, train_idx, held_idx = training_text(cfg, tokenizer, student)
    setup.train_ids = train_ids = [ids[i] for i in train_idx]
    setup.train_texts = [records.texts[i] for i in train_idx]
    setup.train_labels = [records.labels[i] for i in train_idx] if records.labels is not None else None
    setup.student, student_record = shrink_student(cfg.student, student, student_record, train_ids, resume,
                                                   cfg.train.seed)
    pairs = []  # read before the teacher passes: a bad file fails at once
    if cfg.data.pairs:
        pairs, dropped = read_pairs(cfg.data.pairs, {records.texts[i]: k for k, i in enumerate(train_idx)})
        say(f"distill: {len(pairs)} sentence pairs ({dropped} rows not in the corpus), {cfg.data.pairs_per_batch} "
            "added to each batch")
    suite = load_suite(cfg.eval.suite) if cfg.eval.suite else None
    evaluate = make_evaluator(cfg.eval, cfg.data, tokenizer, [ids[i] for i in held_idx],
                              (lambda embed: score_suite(suite, embed)) if suite else None)
    run.ddp = ddp = init_distributed(run.device)  # before the teacher passes, which ranks share
    objective = kind.create(setup)
    student = objective.student
    make_batch = batch_maker(cfg, objective, train_ids, pairs, tokenizer.pad_id)

    resolved = to_dict(cfg)
    baseline = {}
    if ddp.main:
        # one short line a person reads at 100 columns; the resolved teachers and the student record in the log
        say(f"distill: {cfg.objective} | teachers {', '.join(Path(str(t.path)).name for t in cfg.teachers)} | "
            f"{len(train_ids)} texts{records.skipped()} | {run.device}")
        log.debug("distill: teachers %s | student %s", [str(t.path) for t in teachers], student_record)
        log.debug("distill: resolved recipe in %s", run.write_resolved(resolved))
        if evaluate is not None and cfg.eval.at_start and not resume:
            baseline = evaluate_before_training(cfg, teachers, student, evaluate)
            say(f"distill: before training: {baseline}")

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
        "parent": parent_record(parent),
        "teachers": None,
        **objective.record(),
        "student_init": student_record,
        "layer_map": setup.layer_map,
        "recipe": resolved,
        "data": {"files": records.files, "texts": len(train_ids), "held_out": len(held_idx),
                 "dev_suite_sentences_removed": removed,
                 "skipped_empty": records.skipped_empty, "skipped_non_utf8": records.skipped_non_utf8,
                 "pairs": len(pairs) or None},
    }
    return write_and_verify(run, objective, result, record, student_tok, train_ids, tokenizer.pad_id,
                            before_training=baseline)


def parent_teacher(teachers: list) -> LoadedCheckpoint:
    """The checkpoint's parent (the teacher export records and the bench measures): the first BERT-family
    teacher."""
    parent = next((t for t in teachers if isinstance(t, LoadedCheckpoint)), None)
    if parent is None:
        raise PocketBertError("list a BERT-family teacher among teachers (the model the student replaces, e.g. "
                              "minilm): it is the checkpoint's parent and the teacher the bench measures")
    return parent


def training_text(cfg: DistillRecipe, tokenizer: Tokenizer, student: Encoder):
    """The recipe's training text without dev-suite sentences (and, for the sentence objectives, each distinct
    sentence once), tokenized, and split into training and held-out rows.

    Returns:
        (records, removed, ids, train_idx, held_idx): the texts read, how many were dev-suite sentences, the token
        ids of every text, and the indices of the training and held-out texts.
    """
    kind = cfg.objective_class
    records = read_texts(cfg.data.train, cfg.data.text_field, cfg.data.label_field if kind.needs_labels else None,
                         cfg.data.limit)
    removed = drop_dev_sentences(records, dev_sentences())  # dev-suite text never trains a student
    if not kind.token_aligned:  # each distinct sentence once: in-batch duplicates would be free pairs
        records.texts = list(dict.fromkeys(records.texts))
    ids = tokenize(tokenizer, records.texts, min(cfg.data.max_length, student.config.max_position_embeddings))
    train_idx, held_idx = split_holdout(len(ids), cfg.data.holdout, cfg.train.seed)
    return records, removed, ids, train_idx, held_idx


def batch_maker(cfg: DistillRecipe, objective, train_ids: list[list[int]], pairs: list,
                pad_id: int) -> Callable[[list[int], torch.Generator], dict]:
    """`TrainData.make_batch`: the texts at `index`, plus `data.pairs_per_batch` related pairs drawn with the
    seeded generator (a resumed run draws the same), collated, with what the objective adds."""

    def make_batch(index: list[int], gen: torch.Generator) -> dict:
        if pairs and cfg.data.pairs_per_batch:  # + k random related pairs (seeded: a resumed run draws the same)
            drawn = torch.randint(len(pairs), (cfg.data.pairs_per_batch,), generator=gen).tolist()
            index = list(dict.fromkeys([*index, *(i for k in drawn for i in pairs[k])]))
        input_ids, mask = collate([train_ids[i] for i in index], pad_id)
        batch = {"input_ids": input_ids, "attention_mask": mask, "index": index}
        objective.add_to_batch(batch, gen)
        return batch

    return make_batch


def evaluate_before_training(cfg: DistillRecipe, teachers: list, student: Encoder,
                             evaluate: Callable[[Encoder], dict]) -> dict:
    """`eval.at_start`: the teachers' scores (the token-aligned objectives' teacher on the student's evaluation;
    otherwise each BERT-family teacher with its own tokenizer) and the untrained student's (`student_init`)."""
    if cfg.objective_class.token_aligned:
        baseline = {"teacher": evaluate(teachers[0].model)}
    else:  # each teacher with its own tokenizer
        baseline = {"teachers": {t.path: make_evaluator(cfg.eval, cfg.data, Tokenizer(c.path), [])(c.model)
                                 for t, c in zip(cfg.teachers, teachers, strict=True)
                                 if isinstance(c, LoadedCheckpoint)}}
    baseline["student_init"] = evaluate(student)
    return baseline
