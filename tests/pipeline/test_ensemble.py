"""Multi-teacher (ensemble) distillation: the losses against their plain formulas, the on-disk teacher
embedding cache (no teacher forward on a second run), initialisation from another checkpoint's layers,
and the one-line error for token-aligned objectives whose teacher and student tokenizers differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.pipeline import losses
from pocketbert.pipeline.checkpoint import load_checkpoint

from helpers.checkpoints import make_hf_checkpoint, make_tiny_mpnet
from helpers.texts import make_suite_data, synthetic_corpus


def test_similarity_mse_against_its_formula():
    torch.manual_seed(0)
    s, t1, t2 = torch.randn(5, 8), torch.randn(5, 16), torch.randn(5, 4)
    weights = [1.0, 3.0]

    def cos_matrix(x):
        return torch.tensor([[float(torch.dot(x[i], x[j]) / (x[i].norm() * x[j].norm())) for j in range(len(x))]
                             for i in range(len(x))])

    plain = sum(w / 4.0 * ((cos_matrix(s) - cos_matrix(t)) ** 2).mean() for w, t in zip(weights, (t1, t2)))
    assert torch.allclose(losses.similarity_mse(s, [t1, t2], weights), plain, atol=1e-6)
    # = MSE against the weighted mean teacher matrix, plus a constant that does not depend on the student
    mean = 0.25 * cos_matrix(t1) + 0.75 * cos_matrix(t2)
    const = sum(w / 4.0 * ((cos_matrix(t) - mean) ** 2).mean() for w, t in zip(weights, (t1, t2)))
    assert torch.allclose(((cos_matrix(s) - mean) ** 2).mean() + const, plain, atol=1e-6)


def test_ensemble_target_rows_give_the_ensemble_cosine():
    torch.manual_seed(1)
    t1, t2 = torch.randn(4, 6), torch.randn(4, 3)
    target = losses.ensemble_target([t1, t2], [1.0, 1.0])
    assert target.shape == (4, 9)
    assert torch.allclose(target.norm(dim=1), torch.ones(4), atol=1e-6)
    cos = torch.nn.functional.cosine_similarity
    expected = 0.5 * cos(t1[0], t1[1], dim=0) + 0.5 * cos(t2[0], t2[1], dim=0)
    assert torch.allclose(target[0] @ target[1], expected, atol=1e-6)


@pytest.fixture(scope="module")
def second_teacher(tmp_path_factory) -> Path:
    """Another tiny BERT (different weights): the second teacher and a layer source."""
    return make_hf_checkpoint(tmp_path_factory.mktemp("teacher_b"), "bert", seed=7)


def _ensemble(tmp_path: Path, teachers: list[Path], corpus: Path, out: str, *extra: str) -> list[str]:
    listed = ", ".join(f"{{path: {t}, weight: {w}}}" for t, w in zip(teachers, (1.0, 2.0)))
    return ["distill", "distill-ensemble-tiny", f"teachers=[{listed}]",
            f"data.train=[{corpus}]", f"out={tmp_path / out}", "train.max_steps=6", "train.threads=1",
            "loss.alpha_proj_cos=1.0", "loss.alpha_proj_mse=1.0", *extra]


@pytest.mark.integration
def test_teacher_embeddings_are_cached_on_disk(tmp_path, tiny_bert, second_teacher, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 120)
    assert main(_ensemble(tmp_path, [tiny_bert, second_teacher], corpus, "a")) == 0
    first = json.loads((tmp_path / "a" / "pocketbert.json").read_text())
    n_texts = first["data"]["texts"]
    # every teacher forward of the objective is a teacher pass, recorded with what it computed
    assert [t["pass"]["computed_sentences"] for t in first["teachers"]] == [n_texts, n_texts]
    assert [t["hit"] for t in first["teachers"]] == [False, False]
    assert set(first["metrics"]["final_terms"]) == {"sim_mse", "proj_cos", "proj_mse"}
    assert len(list((tmp_path / "cache" / "teacher_emb").glob("*.npy"))) == 2

    assert main(_ensemble(tmp_path, [tiny_bert, second_teacher], corpus, "b")) == 0
    second = json.loads((tmp_path / "b" / "pocketbert.json").read_text())
    assert [t["hit"] for t in second["teachers"]] == [True, True]  # no teacher pass on the second run
    assert [t["key"] for t in second["teachers"]] == [t["key"] for t in first["teachers"]]
    # one more text is a new corpus: a new key, and a teacher pass again
    with open(corpus, "a") as f:
        f.write("a completely new sentence about cheese\n")
    assert main(_ensemble(tmp_path, [tiny_bert], corpus, "c")) == 0
    third = json.loads((tmp_path / "c" / "pocketbert.json").read_text())
    assert third["teachers"][0]["hit"] is False
    assert third["teachers"][0]["pass"]["computed_sentences"] == n_texts + 1
    # the projection is training-only: the checkpoint holds an encoder of the student's width and nothing else
    assert load_checkpoint(tmp_path / "a").model.config.hidden_size == 32


@pytest.mark.integration
def test_student_from_another_checkpoints_layers(tmp_path, tiny_bert, second_teacher, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 80)
    argv = _ensemble(tmp_path, [tiny_bert, second_teacher], corpus, "s", "loss.alpha_proj_cos=0",
                     "loss.alpha_proj_mse=0", f"student.source={second_teacher}", "student.layers=1",
                     "train.max_steps=1", "train.lr=0")
    assert main(argv) == 0
    rec = json.loads((tmp_path / "s" / "pocketbert.json").read_text())
    assert rec["student_init"] == {"init": "layers", "layer_map": [1], "source": str(second_teacher.resolve())}
    student = load_checkpoint(tmp_path / "s").model.state_dict()
    source = load_checkpoint(second_teacher).model.state_dict()
    for key, value in student.items():  # lr 0: the student is still layer 1 of the source
        assert torch.equal(value, source[key.replace("encoder.layer.0.", "encoder.layer.1.", 1)]), key


def _trimmed_student(tmp_path: Path, tiny_bert: Path, capsys, monkeypatch) -> tuple[Path, Path]:
    """(corpus, a 1-layer student of tiny_bert with its vocabulary trimmed to it): another tokenizer."""
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 40)
    trimmed = tmp_path / "trimmed"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "0", "--trim-vocab", str(corpus),
                 "--out", str(trimmed)]) == 0
    capsys.readouterr()
    return corpus, trimmed


@pytest.mark.integration
def test_token_aligned_objective_refuses_a_student_with_another_tokenizer(tmp_path, tiny_bert, capsys, monkeypatch):
    corpus, trimmed = _trimmed_student(tmp_path, tiny_bert, capsys, monkeypatch)
    code = main(["distill", "distill-embedding-tiny", f"teachers=[{tiny_bert}]", f"student.source={trimmed}",
                 "student.layers=0", f"data.train=[{corpus}]", f"out={tmp_path / 'o'}", "train.max_steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "tokenizers differ" in err and "objective ensemble" in err
    assert not (tmp_path / "o").exists()
    # the sentence-level objective takes the same pair: each teacher embeds with its own tokenizer
    assert main(["distill", "distill-ensemble-tiny", f"teachers=[{tiny_bert}]",
                 f"student.source={trimmed}", "student.layers=0", f"data.train=[{corpus}]",
                 f"out={tmp_path / 'e'}", "train.max_steps=2", "train.threads=1"]) == 0
    assert load_checkpoint(tmp_path / "e").model.config.vocab_size < load_checkpoint(tiny_bert).model.config.vocab_size


@pytest.mark.integration
def test_several_teachers_need_the_ensemble_objective(tmp_path, tiny_bert, second_teacher, capsys):
    code = main(["distill", "distill-embedding-tiny", f"teachers=[{{path: {tiny_bert}}}, {{path: {second_teacher}}}]",
                 f"out={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "objective ensemble" in err and len(err.splitlines()) == 1, err


def test_anchor_terms_against_their_formula(tiny_bert, second_teacher):
    """With an anchor the loss is sim_mse + emb_mse + (1 - cos) to the anchor's pooled embedding + MSE to its
    last hidden states on real tokens, each with its alpha; the anchor is run, the others come from the cache."""
    from pocketbert.pipeline.objectives import EnsembleLoss, EnsembleObjective

    torch.manual_seed(3)
    student = load_checkpoint(tiny_bert).model.train()
    anchor = load_checkpoint(second_teacher).model.eval()
    targets = [torch.randn(6, 32), torch.randn(6, 32)]
    cfg = EnsembleLoss(alpha_sim_mse=0.5, alpha_emb_mse=2.0, alpha_emb_cos=3.0, alpha_token_mse=4.0, anchor="b")
    objective = EnsembleObjective(student, targets, [1.0, 1.0], cfg, anchor=(1, anchor))
    ids = torch.randint(5, 90, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    total, terms = objective({"input_ids": ids, "attention_mask": mask, "index": [4, 0, 2]})

    s_hidden = student(ids, mask).last_hidden_state
    s = (s_hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # mean over real tokens
    t = targets[1][[4, 0, 2]]
    emb_mse = ((s - t) ** 2).mean()
    emb_cos = (1 - torch.nn.functional.cosine_similarity(s, t, dim=-1)).mean()
    t_hidden = anchor(ids, mask).last_hidden_state
    real = mask.bool()
    token_mse = ((s_hidden[real] - t_hidden[real]) ** 2).mean()
    sim = losses.similarity_mse(s, [targets[0][[4, 0, 2]], t], [1.0, 1.0])
    plain = 0.5 * sim + 2.0 * emb_mse + 3.0 * emb_cos + 4.0 * token_mse
    assert set(terms) == {"sim_mse", "emb_mse", "emb_cos", "token_mse"}
    assert torch.allclose(total, plain, atol=1e-5)
    assert terms["token_mse"] == pytest.approx(float(token_mse.detach()), rel=1e-5)
    # anchor_decay: the anchor terms fall linearly with the run's progress (here 3/4 of the way: x 0.4)
    objective.cfg = EnsembleLoss(alpha_sim_mse=0.5, alpha_emb_mse=2.0, alpha_emb_cos=3.0, alpha_token_mse=4.0,
                               anchor="b", anchor_decay=0.8)
    late, _ = objective({"input_ids": ids, "attention_mask": mask, "index": [4, 0, 2], "progress": 0.75})
    assert torch.allclose(late, 0.5 * sim + 0.4 * (2.0 * emb_mse + 3.0 * emb_cos + 4.0 * token_mse), atol=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("anchor, needle", [("nowhere", "is not one of the teachers"),
                                            ("TRIMMED", "has another tokenizer than the student")])
def test_a_bad_anchor_is_a_one_line_error(tmp_path, tiny_bert, capsys, monkeypatch, anchor, needle):
    corpus, trimmed = _trimmed_student(tmp_path, tiny_bert, capsys, monkeypatch)
    anchor = str(trimmed) if anchor == "TRIMMED" else anchor
    code = main(["distill", "distill-ensemble-tiny",
                 f"teachers=[{{path: {tiny_bert}}}, {{path: {trimmed}}}]", f"loss.anchor={anchor}",
                 "student.layers=0", f"data.train=[{corpus}]", f"out={tmp_path / 'o'}", "train.max_steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err
    assert not (tmp_path / "o").exists()


def test_read_pairs_takes_sts_and_two_column_rows(tmp_path):
    from pocketbert.pipeline.data import read_pairs

    (tmp_path / "p.tsv").write_text("0\tg\tf\t2012\t1\tn\tn\ta cat sits.\ta cat is sitting.\t4.2\n"
                                    "a dog runs.\tthe dog is running.\n"
                                    "sentence1\tsentence2\tscore\n"  # a header: not in the corpus, dropped
                                    "a cat sits.\tnot in the corpus\t1.0\n", encoding="utf-8")
    position = {"a cat sits.": 0, "a cat is sitting.": 1, "a dog runs.": 2, "the dog is running.": 3}
    assert read_pairs([str(tmp_path / "p.tsv")], position) == ([(0, 1), (2, 3)], 2)
    with pytest.raises(PocketBertError, match="has both sentences in the training corpus"):
        read_pairs([str(tmp_path / "p.tsv")], {})


@pytest.mark.integration
def test_pairs_join_every_batch(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 60)
    lines = corpus.read_text().splitlines()
    (tmp_path / "pairs.tsv").write_text("".join(f"{lines[i]}\t{lines[i + 1]}\t3.0\n" for i in range(0, 10, 2)))
    seen = []
    from pocketbert.pipeline.objectives import EnsembleObjective

    real = EnsembleObjective.forward

    def spy(self, batch):
        seen.append(list(batch["index"]))
        return real(self, batch)

    monkeypatch.setattr(EnsembleObjective, "forward", spy)
    assert main(["distill", "distill-ensemble-tiny", f"teachers=[{tiny_bert}]",
                 f"data.train=[{corpus}]", f"data.pairs=[{tmp_path / 'pairs.tsv'}]", "data.pairs_per_batch=2",
                 f"out={tmp_path / 'o'}", "train.max_steps=3", "train.threads=1"]) == 0
    rec = json.loads((tmp_path / "o" / "pocketbert.json").read_text())
    assert rec["data"]["pairs"] == 5
    texts = list(dict.fromkeys(lines))
    pair_ids = {(texts.index(lines[i]), texts.index(lines[i + 1])) for i in range(0, 10, 2)}
    for index in seen:  # each batch holds at least one whole pair
        assert any(a in index and b in index for a, b in pair_ids), index


@pytest.mark.integration
def test_pairs_per_batch_needs_pairs(tmp_path, tiny_bert, capsys):
    code = main(["distill", "distill-ensemble-tiny", f"teachers=[{tiny_bert}]",
                 "data.pairs_per_batch=4", f"out={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "data.pairs" in err, err


def test_probe_accuracy_reads_what_embeddings_carry(tmp_path):
    """The held-out probe: a logistic regression on normalised embeddings scores 100 where the embedding
    carries the label, and about chance where it carries noise; bad probe files are one-line errors."""
    import numpy as np

    from pocketbert.pipeline.evaluate import probe_accuracy, read_probe

    rows = [(f"text number {i} is {'good' if i % 2 else 'bad'}", i % 2) for i in range(400)]
    for name in ("train", "dev"):
        (tmp_path / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    probe = read_probe([str(tmp_path / "train.tsv"), str(tmp_path / "dev.tsv")])
    assert len(probe[0]) == 400 and len(probe[2]) == 400

    def telling(texts):
        return np.array([[1.0, 0.1] if t.endswith("good") else [0.1, 1.0] for t in texts])

    rng = np.random.default_rng(0)
    assert probe_accuracy(telling, probe) == 100.0
    assert 35.0 < probe_accuracy(lambda texts: rng.normal(size=(len(texts), 8)), probe) < 65.0
    with pytest.raises(PocketBertError, match="two labelled files"):
        read_probe([str(tmp_path / "train.tsv")])


@pytest.mark.integration
def test_factorized_student_is_an_albert_checkpoint(tmp_path, tiny_bert, second_teacher, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 80)
    argv = _ensemble(tmp_path, [tiny_bert, second_teacher], corpus, "f", "student.layers=0,2",
                     "student.embedding_size=16", "student.intermediate_size=48", "train.max_steps=2")
    assert main(argv) == 0
    out = tmp_path / "f"
    rec = json.loads((out / "pocketbert.json").read_text())
    fit = rec["student_init"]["factorized"]
    assert fit["embedding_size"] == 16 and fit["fit_mse_end"] < fit["fit_mse_start"]
    assert rec["student_init"]["pruned_ffn"]["intermediate_size"] == 48
    hf = json.loads((out / "config.json").read_text())
    assert hf["model_type"] == "albert" and hf["embedding_size"] == 16 and hf["num_hidden_groups"] == 2
    assert hf["intermediate_size"] == 48
    model = load_checkpoint(out).model
    assert model.embeddings.word_embeddings.weight.shape[1] == 16 and model.config.hidden_size == 32


def test_embedding_size_needs_a_sentence_objective(tmp_path, tiny_bert, capsys):
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 10)
    assert main(["distill", "distill-triple-tiny", f"data.train=[{corpus}]", f"out={tmp_path / 'x'}",
                 "student.embedding_size=8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "student.embedding_size is for sentence-embedding students" in err[0]


@pytest.mark.integration
def test_mpnet_is_an_ensemble_teacher_and_never_an_anchor(tmp_path, tiny_bert, capsys, monkeypatch):
    """An MPNet folder (its own tokenizer and architecture) teaches through the cached sentence embeddings; named
    as the anchor, which needs the student's tokenizer and an encoder, it is a one-line error before any pass."""

    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    mpnet_dir = make_tiny_mpnet(tmp_path / "mpnet")
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 60)
    argv = ["distill", "distill-ensemble-tiny", f"teachers=[{tiny_bert}, {mpnet_dir}]", f"data.train=[{corpus}]",
            "train.max_steps=3", "train.threads=1", "loss.alpha_proj_cos=1.0"]
    assert main([*argv, f"out={tmp_path / 'o'}"]) == 0
    rec = json.loads((tmp_path / "o" / "pocketbert.json").read_text())
    assert [t["teacher"] for t in rec["teachers"]] == ["bert", "mpnet"]  # each cached with its own tokenizer
    assert rec["parent"]["path"] == str(tiny_bert.resolve())  # the BERT-family teacher is the parent
    capsys.readouterr()
    code = main([*argv, f"loss.anchor={mpnet_dir}", f"out={tmp_path / 'a'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "sentence-embedding teacher only" in err and not (tmp_path / "a").exists()


def test_a_missing_teacher_is_named_before_the_anchor(tmp_path):
    """A `teachers` list that names a missing folder reports the folder, not an anchor mismatch."""
    from pocketbert.pipeline.recipe import DistillRecipe, load_recipe

    with pytest.raises(PocketBertError, match=r"teachers\[1\]: /nope/teacher does not exist"):
        load_recipe(DistillRecipe, "distill-ensemble-sts", ["teachers=[minilm, /nope/teacher]"])


@pytest.mark.integration
def test_eval_suite_scores_each_evaluation_and_picks_the_best_on_its_mean(tmp_path, tiny_bert, monkeypatch):
    """`eval.suite: dev` in a recipe: every evaluation carries the suite's four numbers and their mean, and the
    best checkpoint is chosen on `suite_mean` (the metric `auto` prefers)."""
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POCKETBERT_DATA", str(make_suite_data(tmp_path / "data")))
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 80)
    assert main(_ensemble(tmp_path, [tiny_bert], corpus, "s", "eval.suite=dev", "train.eval_every=3")) == 0
    rec = json.loads((tmp_path / "s" / "pocketbert.json").read_text())
    assert rec["metrics"]["best_metric"] == "suite_mean"
    rows = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "suite_mean" in r]
    assert scored and all({"suite_stsb", "suite_sickr", "suite_sst2", "suite_agnews"} <= set(r) for r in scored)
    assert max(r["suite_mean"] for r in scored) == pytest.approx(rec["metrics"]["best_value"])
