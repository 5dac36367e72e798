"""`pocketbert build` end to end on a tiny recipe: every stage, skip on re-run, --from, resume after Ctrl-C,
and bad recipes that fail before any training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pocketbert.cli import main

from helpers import default_sigint
from helpers.texts import sts_pairs, synthetic_corpus

pytestmark = pytest.mark.integration


def _labelled(path: Path) -> Path:
    """A tiny two-class set in the SST-2 layout (sentence, label) for the held-out probe."""
    good, bad = ("a good and happy film", "great fun"), ("a bad and sad film", "dull work")
    rows = [(f"{(good if i % 2 else bad)[i % 4 // 2]} number {i}", i % 2) for i in range(60)]
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory, tiny_bert) -> Path:
    d = tmp_path_factory.mktemp("build_inputs")
    corpus = synthetic_corpus(d / "corpus.txt", 200)
    recipe = {
        "distill": {
            "teachers": [str(tiny_bert)], "objective": "embedding",
            "student": {"init": "layers", "layers": "0,2"},
            "data": {"train": [str(corpus)], "max_length": 32, "batch_size": 16},
            "train": {"max_steps": 12, "lr": 1e-3, "threads": 1, "save_every": 4},
            "eval": {"at_start": False},
        },
        "trim_vocab": [str(corpus)],
        "export": {"formats": ["onnx", "executorch"], "quant": ["fp32", "int8"], "seq_len": [16]},
        "eval": {"sts": str(sts_pairs(d / "sts.tsv")), "probe": [str(_labelled(d / "probe.tsv"))] * 2},
        "bench": {"threads": [1], "seq_len": [16], "runs": 3, "warmup": 1, "baseline": "teacher"},
    }
    path = d / "build-tiny.yaml"
    path.write_text("# pocketbert build build-tiny.yaml --out DIR\n" + yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_recipe) -> Path:
    out = tmp_path_factory.mktemp("build") / "b"
    assert main(["build", str(tiny_recipe), "--out", str(out)]) == 0
    return out


def test_build_runs_every_stage_and_records_it(built):
    state = json.loads((built / "build.json").read_text())
    assert list(state["stages"]) == ["distill", "trim", "export", "eval", "bench", "report"]
    assert all(s["status"] == "done" for s in state["stages"].values())
    for name in ("distilled/pocketbert.json", "student/pocketbert.json", "bundle/manifest.json", "eval.json",
                 "results.json", "report.html", "report.md", "recipes/distill.yaml", "recipes/build.yaml"):
        assert (built / name).is_file(), name
    manifest = json.loads((built / "bundle" / "manifest.json").read_text())
    assert {(a["format"], a["quant"]) for a in manifest["artifacts"]} == {
        ("onnx", "fp32"), ("onnx", "int8"), ("executorch", "fp32"), ("executorch", "int8")}
    assert all(a["parity"]["status"] == "passed" for a in manifest["artifacts"])
    # the export stage gated every artifact on the recipe's corpus and its eval.sts file
    for a in manifest["artifacts"]:
        g = a["gate"]
        assert g["status"] in ("passed", "failed") and g["sample"] > 10 and g["sts"]["pairs"] == 8, a["file"]
        if a["quant"] == "fp32":
            assert g["status"] == "passed" and g["top10_overlap"] == 1.0
    results = json.loads((built / "results.json").read_text())
    roles = {r["role"] for r in results["rows"]}
    assert roles == {"artifact", "baseline"}
    artifact_rows = [r for r in results["rows"] if r["role"] == "artifact"]
    assert all(r["gate"]["status"] in ("passed", "failed") and "top10_overlap" in r["gate"] for r in artifact_rows)
    report = (built / "report.md").read_text()
    assert "### Geometry gate" in report and all(r["name"] in report.split("### Geometry gate")[1] for r in artifact_rows)
    student = json.loads((built / "student" / "pocketbert.json").read_text())
    assert student["parent"]["path"] == str((built / "distilled").resolve())
    # the held-out probe: measured for the exported checkpoint and the teacher, carried into the verdict
    assert 0 <= json.loads((built / "eval.json").read_text())["probe_accuracy"] <= 100
    assert all("probe_accuracy" in r["quality"] for r in results["rows"] if r.get("quality"))
    assert "probe accuracy" in (built / "report.md").read_text()


def test_rerun_skips_unchanged_stages(built, tiny_recipe, capsys):
    before = json.loads((built / "build.json").read_text())
    assert main(["build", str(tiny_recipe), "--out", str(built)]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, skipped") == 6, out
    after = json.loads((built / "build.json").read_text())
    assert {k: v["key"] for k, v in after["stages"].items()} == {k: v["key"] for k, v in before["stages"].items()}


def test_from_stage_reruns_that_stage_and_later(built, tiny_recipe, capsys):
    assert main(["build", str(tiny_recipe), "bench.runs=3", "--out", str(built), "--from", "bench"]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, skipped") == 4, out  # distill, trim, export, eval
    assert "[5/6] bench: pocketbert bench" in out and "[6/6] report: pocketbert report" in out


def test_changed_input_reruns_from_that_stage(built, tiny_recipe, capsys):
    """An override that changes the export stage re-runs export and everything after it, not training."""
    assert main(["build", str(tiny_recipe), "export.quant=[fp32]", "bench.enabled=false", "--out", str(built)]) == 0
    out = capsys.readouterr().out
    assert "[1/4] distill: up to date" in out and "[2/4] trim: up to date" in out
    assert "[3/4] export: pocketbert export" in out


def test_missing_teacher_fails_before_training(tmp_path, tiny_recipe, capsys):
    out = tmp_path / "b"
    assert main(["build", str(tiny_recipe), "distill.teachers=[/nope/teacher]", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    assert not out.exists()


def test_missing_corpus_fails_before_training(tmp_path, tiny_recipe, capsys):
    out = tmp_path / "b"
    assert main(["build", str(tiny_recipe), "distill.data.train=[/nope/corpus.txt]", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/nope/corpus.txt" in err
    assert not out.exists()


@pytest.mark.parametrize(("override", "needle"), [
    ("export.max_sts_drop=-1", "recipe section `export`: --max-sts-drop -1"),
    ("export.gate_sample=5", "recipe section `export`: --gate-sample 5"),
    ("bench.runs=0", "recipe section `bench`: --runs 0"),
])
def test_bad_export_or_bench_value_fails_before_anything_is_written(tmp_path, tiny_recipe, capsys, override, needle):
    out = tmp_path / "b"
    assert main(["build", str(tiny_recipe), override, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_ctrl_c_then_rerun_keeps_finished_stages(tmp_path, tiny_recipe):
    """Interrupt a real build process after training finished; the re-run does not train again."""
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "pocketbert", "build", str(tiny_recipe), "bench.enabled=false", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=default_sigint)
    deadline = time.time() + 300
    state_file = out / "build.json"
    while time.time() < deadline:
        if state_file.is_file():
            try:
                stages = json.loads(state_file.read_text())["stages"]
            except json.JSONDecodeError:
                stages = {}
            if stages.get("export", {}).get("status") == "started":
                break
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    stages = json.loads(state_file.read_text())["stages"]
    assert stages["distill"]["status"] == "done" and stages["export"]["status"] == "started"
    assert not (out / "bundle").exists()  # the export was written atomically: nothing half-written
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "[1/4] distill: up to date" in rerun.stdout and "[2/4] trim: up to date" in rerun.stdout
    assert (out / "bundle" / "manifest.json").is_file()


def test_every_shipped_build_recipe_loads_and_names_its_command():
    from importlib import resources

    from pocketbert.build import load_build_recipe

    folder = Path(str(resources.files("pocketbert") / "recipes"))
    recipes = sorted(folder.glob("*.yaml"))
    assert {p.stem for p in recipes} >= {"build-default", "build-sts", "build-sst2", "build-albert-tiny", "build-static"}
    for path in recipes:
        assert path.read_text().startswith(f"# pocketbert build {path.stem}"), path
        recipe = load_build_recipe(str(path))
        assert sum(s is not None for s in (recipe.distill, recipe.pretrain, recipe.static)) == 1


def test_unknown_build_recipe_key_names_the_nearest(tmp_path, tiny_recipe, capsys):
    assert main(["build", str(tiny_recipe), "export.formatz=[onnx]", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "export.formatz" in err and "export.formats" in err


def test_sst2_bench_baseline_is_the_fine_tuned_classifier(tmp_path, monkeypatch):
    """build-sst2 fine-tunes a classifier and distils it: the bench stage compares with that classifier
    (the model the recipe names), not with the base model the classifier was fine-tuned from."""
    from pocketbert.build import load_build_recipe, plan

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the recipe's ../shared/data paths
    recipe = load_build_recipe("build-sst2", ["bench.baseline=teacher"])
    stages = {s.name: s for s in plan(recipe, tmp_path)}
    assert list(stages) == ["finetune", "distill", "export", "bench", "report"]
    assert stages["bench"].config["teacher"] == str(tmp_path / "teacher")
    assert stages["distill"].config["teachers"][0]["path"] == str(tmp_path / "teacher")


def test_sts_export_stage_gates_on_the_recipes_corpus_and_sts(tmp_path, monkeypatch):
    """build-sts: the export stage gates on the trim_vocab corpus files (never a word list) and eval.sts;
    the files, not their sentences, make its key; export.gate=false drops both."""
    from pocketbert.build import load_build_recipe, plan

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the recipe's ../shared/data paths
    recipe = load_build_recipe("build-sts")
    export = {s.name: s for s in plan(recipe, tmp_path / "on")}["export"]
    assert export.config["gate"] and export.config["sts"] == str(Path(recipe.eval.sts).resolve())
    # the trimming files, else (build-sts trims nothing) the training data
    files = [p for p in recipe.trim_vocab if not p.startswith("wordfreq:")] or recipe.distill.data.train
    assert files and export.config["corpus_files"] == [str(Path(p).resolve()) for p in files]
    assert "corpus" not in export.config and set(export.config["corpus_files"]) <= set(export.inputs)
    assert "int4-mixed" in export.config["quants"] and export.describe.endswith(", gated)")
    off = {s.name: s for s in plan(load_build_recipe("build-sts", ["export.gate=false"]), tmp_path / "off")}["export"]
    # without the gate only int4-mixed's probe still reads the corpus
    assert not off.config["gate"] and off.config["sts"] is None and not off.describe.endswith(", gated)")
    assert off.config["corpus_files"] == (export.config["corpus_files"] if "int4-mixed" in off.config["quants"] else [])


def test_find_teacher_stops_at_the_distillation_teacher(tmp_path, tiny_bert):
    """trim -> distilled -> fine-tuned classifier -> base: the teacher is the fine-tuned classifier."""
    from pocketbert.pipeline.checkpoint import MARKER, find_teacher

    def ckpt(name: str, stage: str, parent: Path) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text("{}")
        (d / MARKER).write_text(json.dumps({"stage": stage, "parent": {"path": str(parent)}}))
        return d

    tuned = ckpt("teacher", "finetune", tiny_bert)
    trimmed = ckpt("student", "student", ckpt("distilled", "distill", tuned))
    assert find_teacher(trimmed) == tuned
    assert find_teacher(tuned) == tiny_bert  # a fine-tuned model's own lineage ends at its base
    assert find_teacher(tiny_bert) == tiny_bert  # a plain HF folder is its own teacher


def test_outputs_record_the_build_command(built):
    """Provenance is passed in: each stage's output names the build command and the stage, not a global."""
    student = json.loads((built / "student" / "pocketbert.json").read_text())["provenance"]["command"]
    distilled = json.loads((built / "distilled" / "pocketbert.json").read_text())["provenance"]["command"]
    bundle = json.loads((built / "bundle" / "manifest.json").read_text())["provenance"]["command"]
    assert student.startswith("pocketbert build ") and student.endswith("[stage trim]")
    assert distilled.endswith("[stage distill]") and bundle.endswith("[stage export]")


def test_overrides_without_a_recipe_name_apply_to_the_default(tmp_path, capsys):
    """`pocketbert build key=value --out D` is the default recipe with that override (here: a missing
    corpus, which fails before any training with one line)."""
    out = tmp_path / "b"
    assert main(["build", "distill.data.train=[/nope/corpus.txt]", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/nope/corpus.txt" in err and "does not exist" in err
    assert not out.exists()


def test_trim_vocab_takes_wordfreq_next_to_files(tmp_path, tiny_recipe):
    """A wordfreq item is a corpus of the trim stage: not a file input, its version part of the stage key."""
    from pocketbert.build import gate_corpus, load_build_recipe, plan, preflight

    recipe = load_build_recipe(str(tiny_recipe), ["trim_vocab=[wordfreq:en:20000, ../shared/data/stsb/train.tsv]"])
    trim = next(s for s in plan(recipe, tmp_path / "b") if s.name == "trim")
    stsb = str(Path("../shared/data/stsb/train.tsv").resolve())
    assert trim.config["trim_vocab"] == ["wordfreq:en:20000", stsb]
    assert trim.inputs == [stsb] and trim.config["wordfreq_version"] == "3.1.1"
    assert gate_corpus(recipe) == [stsb]  # a word list is not sentences for the export gate
    if Path(stsb).is_file():
        preflight(recipe)


@pytest.mark.parametrize(("item", "needle"), [("wordfreq:en:0", "write wordfreq:LANG:N"),
                                              ("wordfreq:zz:10", "no list for 'zz'")])
def test_bad_wordfreq_trim_fails_before_training(tmp_path, tiny_recipe, capsys, item, needle):
    out = tmp_path / "b"
    assert main(["build", str(tiny_recipe), f"trim_vocab=[{item}]", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_the_terminal_carries_only_pocketberts_lines(tiny_recipe, tmp_path):
    """A build in its own process (real file descriptors 1 and 2): other libraries' output (warnings, logging,
    prints, the C++ runtimes' writes) goes to <out>/build.log; the terminal gets pocketbert's lines and says where
    the log is."""
    out = tmp_path / "quiet"
    argv = [sys.executable, "-m", "pocketbert", "build", str(tiny_recipe), "bench.enabled=false", "eval.probe=[]",
            "export.formats=[executorch,onnx]", "--out", str(out)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    terminal = run.stdout + run.stderr
    chatter = ("W1203", "Warning", "warn(", "torchao", "Failed to load", "onnxruntime.", "LOAD REPORT", "copyreg",
               "opset")
    assert not [line for line in terminal.splitlines() if any(c in line for c in chatter)], terminal
    assert f"build: other libraries' messages go to {out / 'build.log'}" in terminal
    assert "[1/4] distill:" in run.stdout and "export: onnx int8 seq16" in run.stderr
    log = (out / "build.log").read_text()
    assert any(c in log for c in chatter)  # the libraries' lines are there, not lost
    assert "[1/4] distill:" in log and "export: onnx int8 seq16" in log  # with ours, as one story
