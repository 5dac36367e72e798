"""Sentence-embedding and task distillation, teacher caching, fine-tuning and ALBERT-style pretraining,
each through the real CLI on tiny checkpoints (plus one short real all-MiniLM-L6-v2 run, marked slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pocketbert.cli import main
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.data import collate, tokenize
from pocketbert.pipeline.objectives import EmbeddingLoss, EmbeddingObjective
from pocketbert.pipeline.recipe import TrainConfig
from pocketbert.pipeline.student import select_layers
from pocketbert.pipeline.tokenizer import Tokenizer
from pocketbert.pipeline.train import Run, TrainData, fit

from helpers.checkpoints import write_tiny_tokenizer
from helpers.texts import synthetic_corpus

pytestmark = pytest.mark.integration


def _record(out: Path) -> dict:
    return json.loads((out / "pocketbert.json").read_text())


def _sst_like(path: Path, n: int, seed: int) -> Path:
    import random

    rng = random.Random(seed)
    good, bad = ["good", "great", "best", "funny", "happy"], ["bad", "worst", "sad", "hate"]
    rows = ["sentence\tlabel"]
    for _ in range(n):
        label = rng.randint(0, 1)
        word = rng.choice(good if label else bad)
        rows.append(f"the {rng.choice(['movie', 'film', 'story', 'song'])} is {rng.choice(['very ', 'really ', ''])}{word}\t{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_embedding_distillation_tiny(tmp_path, tiny_bert):
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 300)
    out = tmp_path / "emb"
    assert main(["distill", "distill-embedding-tiny", f"teachers=[{tiny_bert}]", f"data.train=[{corpus}]", f"out={out}",
                 "train.max_steps=40", "train.threads=1"]) == 0
    rec = _record(out)
    assert rec["objective"] == "embedding" and rec["task"] == "embedding"
    assert set(rec["metrics"]["final_terms"]) == {"emb_mse", "emb_cos", "hidden_cos"}
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["metrics"]["final_terms"]["emb_cos"] < first["loss_emb_cos"]
    assert (out / "modules.json").is_file()  # a sentence-transformers folder, like its teacher
    assert load_checkpoint(out).model.config.num_hidden_layers == 1


def test_teacher_outputs_are_cached_after_the_first_epoch(tmp_path, tiny_bert):
    teacher = load_checkpoint(tiny_bert).model.eval()
    tok = Tokenizer(tiny_bert)
    ids = tokenize(tok, synthetic_corpus(tmp_path / "c.txt", 64).read_text().splitlines(), 32)
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))

    def run(cache: bool) -> float:
        torch.manual_seed(0)
        student = select_layers(teacher, [0])
        objective = EmbeddingObjective(student, teacher, EmbeddingLoss(alpha_hidden_cos=1.0, cache_teacher=cache))

        def make_batch(index, gen):
            input_ids, mask = collate([ids[i] for i in index], tok.pad_id)
            return {"input_ids": input_ids, "attention_mask": mask, "index": index}

        cfg = TrainConfig(max_steps=12, threads=1, lr=1e-3)
        return fit(objective, TrainData(make_batch, [len(x) for x in ids], 16), cfg,
                   Run("test", tmp_path / "out", tmp_path / f"w{cache}", "cpu")).final_loss

    cached = run(True)
    assert len(calls) == 4  # 64 texts / 16 per batch: one teacher pass per batch of epoch 1 only, 3 epochs run
    calls.clear()
    live = run(False)
    assert len(calls) == 12
    assert cached == pytest.approx(live, rel=1e-3)  # fp16 hidden cache: same training, up to rounding


def test_finetune_then_task_distillation_tiny(tmp_path, tiny_bert):
    train = _sst_like(tmp_path / "train.tsv", 400, 0)
    dev = _sst_like(tmp_path / "dev.tsv", 100, 1)
    teacher = tmp_path / "classifier"
    assert main(["finetune", "finetune-tiny", f"model={tiny_bert}", f"data.train=[{train}]",
                 f"eval.classification={dev}", f"out={teacher}", "train.max_steps=150", "train.threads=1",
                 "train.eval_every=50"]) == 0
    rec = _record(teacher)
    assert rec["task"] == "classification" and rec["metrics"]["best_metric"] == "accuracy"
    assert rec["metrics"]["best_value"] >= 90.0  # the sentiment word decides the label
    model = load_checkpoint(teacher).model
    assert model.config.num_labels == 2 and model.classifier is not None

    student = tmp_path / "student"
    assert main(["distill", "distill-task-tiny", f"teachers=[{teacher}]", f"data.train=[{train}]",
                 f"eval.classification={dev}", f"out={student}", "train.max_steps=100", "train.threads=1",
                 "eval.at_start=true"]) == 0
    srec = _record(student)
    assert srec["objective"] == "task" and set(srec["metrics"]["final_terms"]) == {"soft", "hard"}
    assert srec["metrics"]["before_training"]["teacher"]["accuracy"] == pytest.approx(rec["metrics"]["best_value"])
    assert srec["metrics"]["best_value"] >= 85.0
    assert load_checkpoint(student).model.config.num_hidden_layers == 1


def test_albert_pretraining_with_sop_and_sharing(tmp_path):
    tok = tmp_path / "tok"
    write_tiny_tokenizer(tok)
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 500)
    out = tmp_path / "albert"
    assert main(["pretrain", "pretrain-albert-tiny", f"model.tokenizer={tok}", f"data.train=[{corpus}]", f"out={out}",
                 "train.max_steps=60", "train.threads=1", "train.eval_every=30", "eval.max_examples=50"]) == 0
    rec = _record(out)
    assert rec["model_type"] == "albert" and rec["config"]["sharing"] == "all" and rec["config"]["embedding_size"] == 16
    assert set(rec["metrics"]["final_terms"]) == {"mlm", "sop"}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert rows[-1]["loss_mlm"] < rows[0]["loss_mlm"]
    model = load_checkpoint(out).model
    assert len(model.encoder.layer) == 1 and model.config.num_hidden_layers == 4
    # an ALBERT checkpoint opens in transformers
    import transformers

    hf = transformers.AutoModelForMaskedLM.from_pretrained(out)
    assert hf.config.embedding_size == 16


def test_attention_only_sharing_pretrains(tmp_path):
    tok = tmp_path / "tok"
    write_tiny_tokenizer(tok)
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 200)
    out = tmp_path / "shared_attention"
    assert main(["pretrain", "pretrain-tiny", f"model.tokenizer={tok}", f"data.train=[{corpus}]", f"out={out}",
                 "model.sharing=attention", "train.max_steps=10", "train.threads=1", "eval.mlm=false",
                 "data.holdout=0"]) == 0
    model = load_checkpoint(out).model
    assert model.encoder.layer[0].attention is model.encoder.layer[3].attention


@pytest.mark.slow
def test_real_minilm_embedding_distillation_improves_sts(tmp_path, data_dir):
    """A short real run (60 steps on STS-B train sentences): the 3-layer student moves toward the teacher."""
    out = tmp_path / "l3"
    assert main(["distill", "distill-minilm-sts", f"out={out}", f"data.train=[{data_dir / 'stsb' / 'train.tsv'}]",
                 f"eval.sts={data_dir / 'stsb' / 'dev.tsv'}", "train.max_minutes=0", "train.max_steps=60",
                 "train.eval_every=0", "data.limit=4000", "train.threads=2"]) == 0
    rec = _record(out)
    before = rec["metrics"]["before_training"]
    assert before["teacher"]["sts"] == pytest.approx(81.0, abs=0.1)
    assert rec["metrics"]["best_value"] > before["student_init"]["sts"] + 1.0


def test_student_from_a_pocketbert_student_checkpoint(tmp_path, tiny_bert, tiny_student):
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 100)
    out = tmp_path / "from_ckpt"
    assert main(["distill", "distill-embedding-tiny", f"teachers=[{tiny_bert}]", f"student.init={tiny_student}",
                 f"data.train=[{corpus}]", f"out={out}", "train.max_steps=5", "train.threads=1"]) == 0
    rec = _record(out)
    assert rec["student_init"]["layer_map"] == [0, 2] and rec["layer_map"] == [0, 2]
    assert load_checkpoint(out).model.config.num_hidden_layers == 2


def test_bf16_on_cpu_is_a_one_line_error(tmp_path, capsys, tiny_bert):
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 50)
    out = tmp_path / "out"
    assert main(["distill", "distill-embedding-tiny", f"teachers=[{tiny_bert}]", f"data.train=[{corpus}]", f"out={out}",
                 "train.precision=bf16", "train.device=cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bf16 needs a GPU" in err
    assert not out.exists()


def test_intermediate_losses_project_when_widths_differ(tiny_bert_mlm):
    from pocketbert.pipeline.losses import mask_tokens
    from pocketbert.pipeline.models.encoder import Encoder
    from pocketbert.pipeline.objectives import TripleLoss, TripleObjective

    teacher = load_checkpoint(tiny_bert_mlm).model.eval()
    student = Encoder(teacher.config.replace(hidden_size=16, embedding_size=16, intermediate_size=32, num_hidden_layers=2),
                      with_mlm_head=True)
    objective = TripleObjective(student, teacher, TripleLoss(alpha_hidden_mse=1.0, alpha_attention=1.0), [0, 2])
    assert tuple(objective.projection.weight.shape) == (32, 16)
    ids = torch.randint(5, teacher.config.vocab_size, (3, 9))
    mask = torch.ones_like(ids)
    masked, labels = mask_tokens(ids, mask, [0, 1, 2, 3, 4], 4, teacher.config.vocab_size,
                                 torch.Generator().manual_seed(0))
    loss, terms = objective({"input_ids": masked, "attention_mask": mask, "labels": labels})
    loss.backward()
    assert set(terms) == {"ce", "mlm", "cos", "hidden_mse", "attention"} and torch.isfinite(loss)
    assert objective.projection.weight.grad is not None and objective.projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
