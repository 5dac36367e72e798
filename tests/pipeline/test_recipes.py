"""Recipes: every shipped one loads; keys and types are checked; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.pipeline.recipe import (
    DistillRecipe,
    FinetuneRecipe,
    PretrainRecipe,
    load_recipe,
    parse_overrides,
    shipped_recipes,
)

from helpers.checkpoints import write_tiny_tokenizer

KIND = {"distill": DistillRecipe, "pretrain": PretrainRecipe, "finetune": FinetuneRecipe}


def test_every_shipped_recipe_loads_and_names_its_command():
    recipes = shipped_recipes()
    assert len(recipes) >= 8
    for path in recipes:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# pocketbert "), f"{path.name} must start with the command that runs it"
        stage = first.split()[2]
        assert path.stem in first or path.name in first
        cfg = load_recipe(KIND[stage], str(path))
        assert cfg.out


def test_overrides_are_typed_and_nested():
    cfg = load_recipe(DistillRecipe, "distill-minilm-sts",
                      ["train.max_steps=7", "student.layers=0,5", "loss.alpha_hidden_cos=0.5", "data.limit=null",
                       "train.keep_best=false", "data.train=[a.txt, b.txt]"])
    assert cfg.train.max_steps == 7 and cfg.student.layers == "0,5" and cfg.loss.alpha_hidden_cos == 0.5
    assert cfg.data.limit is None and cfg.train.keep_best is False and cfg.data.train == ["a.txt", "b.txt"]
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_unknown_key_names_the_nearest_valid_one():
    with pytest.raises(PocketBertError, match=r"unknown recipe key 'train.max_step'; did you mean 'train.max_steps'"):
        load_recipe(DistillRecipe, "distill-minilm-sts", ["train.max_step=3"])
    with pytest.raises(PocketBertError, match=r"'loss.alpha_cosine'; did you mean 'loss.alpha_cos"):
        load_recipe(DistillRecipe, "distill-triple-tiny", ["loss.alpha_cosine=1"])
    with pytest.raises(PocketBertError, match=r"'techer'; did you mean 'teachers'"):
        load_recipe(DistillRecipe, "distill-minilm-sts", ["techer=minilm"])


@pytest.mark.parametrize(("override", "message"), [
    ("train.max_steps=ten", "train.max_steps must be an integer"),
    ("train.lr=fast", "train.lr must be a number"),
    ("train.keep_best=3", "train.keep_best must be true or false"),
    ("objective=mlm", "objective must be one of triple, embedding, task"),
    ("loss.temperature=0", "loss.temperature must be > 0"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
])
def test_wrong_values_name_the_key(override, message):
    with pytest.raises(PocketBertError, match=message):
        load_recipe(DistillRecipe, "distill-triple-tiny", [override])


def test_teachers_is_the_one_spelling():
    """`teachers` lists every objective's teachers; the old single `teacher` key is refused, naming `teachers`."""
    with pytest.raises(PocketBertError, match=r"unknown recipe key 'teacher'; did you mean 'teachers'"):
        load_recipe(DistillRecipe, "distill-ensemble-sts", ["teacher=paraphrase-minilm-l3"])
    recipe = load_recipe(DistillRecipe, "distill-ensemble-sts", ["teachers=[paraphrase-minilm-l3]", "loss.anchor=null"])
    assert [t.path for t in recipe.teachers] == ["paraphrase-minilm-l3"] and recipe.teachers[0].weight == 1.0
    from pocketbert.build import BuildRecipe

    with pytest.raises(PocketBertError, match=r"unknown recipe key 'distill.teacher'; did you mean 'distill.teachers'"):
        load_recipe(BuildRecipe, "build-sts", ["distill.teacher=minilm"], package="pocketbert")


def test_the_loss_section_is_the_objectives():
    """Each objective owns its loss keys: another objective's key is named with the objective."""
    from pocketbert.pipeline.objectives import EnsembleLoss, TripleLoss

    assert isinstance(load_recipe(DistillRecipe, "distill-triple-tiny").loss, TripleLoss)
    assert isinstance(load_recipe(DistillRecipe, "distill-ensemble-sts").loss, EnsembleLoss)
    with pytest.raises(PocketBertError, match=r"unknown recipe key 'loss.alpha_ce'.*\(the loss keys of objective ensemble\)"):
        load_recipe(DistillRecipe, "distill-ensemble-sts", ["loss.alpha_ce=1"])
    with pytest.raises(PocketBertError, match=r"unknown recipe key 'loss.alpha_hidden_cos'.*\(the loss keys of objective ensemble\)"):
        load_recipe(DistillRecipe, "distill-embedding-tiny", ["objective=ensemble"])


# -- bad input through the real CLI: one line, exit 2, nothing written --------------------------


def _one_line_error(capsys, argv, out, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert needle in err, err
    assert not out.exists()
    assert not out.with_name(out.name + ".work").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def _tiny_triple(tmp_path, teacher) -> list[str]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the man plays the guitar\nthe dog runs on the road\n" * 20)
    return ["distill", "distill-triple-tiny", f"teachers=[{teacher}]", f"data.train=[{corpus}]",
            f"out={tmp_path / 'out'}", "student.layers=0,2", "train.max_steps=2"]


def test_cli_unknown_recipe_key(tmp_path, capsys, tiny_bert_mlm):
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert_mlm) + ["train.warmpu=0.1"], tmp_path / "out",
                    "did you mean 'train.warmup'")


def test_cli_wrong_type(tmp_path, capsys, tiny_bert_mlm):
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert_mlm) + ["data.batch_size=big"], tmp_path / "out",
                    "data.batch_size must be an integer")


def test_cli_empty_corpus(tmp_path, capsys, tiny_bert_mlm):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert_mlm) + [f"data.train=[{empty}]"], tmp_path / "out",
                    "holds no text")


def test_cli_teacher_and_student_vocabularies_differ(tmp_path, capsys, tiny_bert_mlm):
    trim = tmp_path / "trim.txt"
    trim.write_text("the man plays the guitar\n")
    student = tmp_path / "trimmed_student"
    assert main(["student", "--teacher", str(tiny_bert_mlm), "--layers", "0,2", "--trim-vocab", str(trim),
                 "--out", str(student)]) == 0
    capsys.readouterr()
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert_mlm) + [f"student.init={student}"], tmp_path / "out",
                    "teacher and student vocabularies differ")


def test_cli_resume_without_a_checkpoint(tmp_path, capsys, tiny_bert_mlm):
    nothing = tmp_path / "nothing_here"
    nothing.mkdir()
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert_mlm) + ["--resume", str(nothing)], tmp_path / "out",
                    "holds no training state")
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert_mlm) + ["--resume"], tmp_path / "out",
                    "does not exist; start the run without --resume")


def test_cli_triple_needs_an_mlm_teacher(tmp_path, capsys, tiny_bert):
    _one_line_error(capsys, _tiny_triple(tmp_path, tiny_bert), tmp_path / "out", "has no MLM head")


def test_cli_pretrain_and_finetune_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    _one_line_error(capsys, ["pretrain", "pretrain-tiny", f"out={out}", "model.tokenizer=" + str(tmp_path / "none")],
                    out, "does not exist")
    write_tiny_tokenizer(tmp_path / "tok")
    _one_line_error(capsys, ["pretrain", "pretrain-tiny", f"out={out}", f"model.tokenizer={tmp_path / 'tok'}",
                             "model.sharing=some"], out, "sharing must be one of")
    _one_line_error(capsys, ["finetune", "finetune-tiny", f"out={out}", "data.label_field=null"], out,
                    "data.label_field is required")
    _one_line_error(capsys, ["distill", "no-such-recipe", f"out={out}"], out, "recipe no-such-recipe does not exist")
