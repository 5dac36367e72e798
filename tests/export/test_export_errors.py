"""Export, verify and eval bad input: one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pocketbert.cli import main

pytestmark = pytest.mark.integration


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("args, needle", [
    (["--formats", "onnx,pdf"], "unknown format 'pdf'"),
    (["--quant", "int3"], "unknown quantization 'int3'"),
    (["--formats", "executorch", "--quant", "fp16"], "executorch has no fp16 mode"),
    (["--seq-len", "32,abc"], "not an integer"),
    (["--seq-len", "1"], ">= 2"),
])
def test_bad_export_options(tiny_student, tmp_path, capsys, args, needle):
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_student), "--out", str(out), *args]) == 2
    assert needle in _one_line_error(capsys)
    _nothing_written(out)


@pytest.fixture
def no_export_work(monkeypatch):
    """Fail the test if export gets as far as its first step of work (golden cases, then references, then artifacts)."""
    from pocketbert.export import bundle

    def refuse(*args, **kwargs):
        raise AssertionError("export started work before it refused the input")

    monkeypatch.setattr(bundle, "build_golden", refuse)


def _sts_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "sts.tsv"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("args, needle", [
    (["--quant", "auto", "--max-sts-drop", "-1"], "--max-sts-drop -1.0: give the STS points a rung may lose"),
    (["--max-sts-drop", "nan"], "--max-sts-drop nan"),
    (["--quant", "int4-mixed", "--max-mb", "inf"], "--max-mb inf: give a size budget in MB > 0"),
    (["--quant", "auto", "--sts", "BROKEN"], "score 'high' is not a number"),
    (["--quant", "int8-static", "--corpus", "SMALL"], "the corpus has 20 distinct sentences"),
    (["--quant", "int4-mixed", "--max-mb", "0.001"], "even all int4 is about"),
])
def test_bad_values_are_refused_before_any_work(tiny_student, tmp_path, capsys, no_export_work, args, needle):
    """Each refusal is one line naming the real cause, before the first step of work (`export --quant auto
    --max-sts-drop -1` used to run the whole ladder first)."""
    sts = _sts_file(tmp_path, ["a man plays\ta man is playing\t4.5", "a dog runs\tthe cat sleeps\thigh"])
    small = tmp_path / "small.txt"
    small.write_text("".join(f"sentence number {i}\n" for i in range(20)), encoding="utf-8")
    args = [{"BROKEN": str(sts), "SMALL": str(small)}.get(a, a) for a in args]
    if "--sts" not in args:
        args += ["--sts", str(_sts_file(tmp_path, ["a man plays\ta man is playing\t4.5"]))]
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx", *args]) == 2
    assert needle in _one_line_error(capsys)
    _nothing_written(out)


def test_auto_refuses_a_task_the_gate_cannot_measure(tiny_bert_mlm, tmp_path, capsys, no_export_work):
    out = tmp_path / "bundle"
    sts = _sts_file(tmp_path, ["a man plays\ta man is playing\t4.5"])
    assert main(["export", str(tiny_bert_mlm), "--out", str(out), "--formats", "onnx", "--quant", "auto",
                 "--sts", str(sts)]) == 2
    assert "--quant auto chooses by the geometry gate, which measures embeddings; a mlm export" in _one_line_error(capsys)
    _nothing_written(out)


def test_seq_len_above_max_positions(tiny_student, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx", "--seq-len", "32,512"]) == 2
    line = _one_line_error(capsys)
    assert "512" in line and "max_position_embeddings (128)" in line
    _nothing_written(out)


def test_missing_checkpoint(tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(tmp_path / "nope"), "--out", str(out), "--formats", "onnx"]) == 2
    assert "does not exist" in _one_line_error(capsys)
    _nothing_written(out)


def test_task_without_head(tiny_student, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx", "--task", "mlm"]) == 2
    assert "without a mlm head" in _one_line_error(capsys)
    _nothing_written(out)


def test_out_is_someone_elses_folder(tiny_student, tmp_path, capsys):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx"]) == 2
    assert "not a pocketbert output" in _one_line_error(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------------------------
# Broken bundles: a small real one (ONNX fp32), altered per test


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory, tiny_student) -> Path:
    out = tmp_path_factory.mktemp("errs") / "b"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx", "--quant", "fp32",
                 "--seq-len", "16"]) == 0
    return out


def _altered(small_bundle: Path, tmp_path: Path, change) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(small_bundle, dst)
    m = json.loads((dst / "manifest.json").read_text())
    change(m)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize("command", ["verify", "eval"])
def test_manifest_path_outside_bundle(small_bundle, tmp_path, capsys, data_dir, command):
    (tmp_path / "x").write_bytes(b"outside")

    def change(m):
        m["artifacts"][0]["file"] = "../x"

    bundle = _altered(small_bundle, tmp_path, change)
    extra = ["--sts", str(data_dir / "stsb" / "dev.tsv")] if command == "eval" else []
    assert main([command, str(bundle), *extra]) == 2
    assert "outside the bundle" in _one_line_error(capsys)


def test_wrong_sha256_in_manifest(small_bundle, tmp_path, capsys):
    def change(m):
        m["artifacts"][0]["sha256"] = "0" * 64

    assert main(["verify", str(_altered(small_bundle, tmp_path, change))]) == 2
    assert "sha256" in _one_line_error(capsys)


def test_golden_file_tampered(small_bundle, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle, bundle)
    golden = json.loads((bundle / "golden.json").read_text())
    golden["cases"][0]["expected"][0] += 1.0
    (bundle / "golden.json").write_text(json.dumps(golden))
    assert main(["verify", str(bundle)]) == 2
    assert "golden.json does not match its sha256" in _one_line_error(capsys)


def test_unknown_schema_major_version(small_bundle, tmp_path, capsys):
    def change(m):
        m["schema_version"] = "2.0"

    assert main(["verify", str(_altered(small_bundle, tmp_path, change))]) == 2
    assert "schema_version 2.0 is not supported" in _one_line_error(capsys)


def test_manifest_violating_schema(small_bundle, tmp_path, capsys):
    def change(m):
        m["artifacts"][0]["quant"] = "int3"

    assert main(["verify", str(_altered(small_bundle, tmp_path, change))]) == 2
    assert "invalid at artifacts/0/quant" in _one_line_error(capsys)


def test_not_a_bundle(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "no manifest.json" in _one_line_error(capsys)


def test_verify_unknown_format_filter(small_bundle, capsys):
    assert main(["verify", str(small_bundle), "--formats", "pdf"]) == 2
    assert "unknown format 'pdf'" in _one_line_error(capsys)


def test_eval_needs_an_embedding_bundle(tiny_bert_mlm, tmp_path, capsys, data_dir):
    out = tmp_path / "mlm"
    assert main(["export", str(tiny_bert_mlm), "--out", str(out), "--formats", "onnx", "--quant", "fp32",
                 "--seq-len", "16"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--sts", str(data_dir / "stsb" / "dev.tsv")]) == 2
    assert "needs an embedding bundle" in _one_line_error(capsys)
