"""Bad input: a one-line error naming the problem, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pocketbert.cli import main


def _fails(capsys, argv, *needles, parent=None):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    if parent is not None:  # no temporary or partial folders left behind
        assert not [p for p in parent.iterdir() if p.name.startswith(".")], list(parent.iterdir())
    return err


def _student(teacher, out, layers="0,1"):
    return ["student", "--teacher", str(teacher), "--layers", layers, "--out", str(out)]


def test_teacher_path_missing(tmp_path, capsys):
    _fails(capsys, _student(tmp_path / "nope", tmp_path / "out"), "does not exist", parent=tmp_path)
    assert not (tmp_path / "out").exists()


def test_directory_without_weights(tmp_path, capsys, tiny_bert):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_bert / "config.json", bare / "config.json")
    _fails(capsys, _student(bare, tmp_path / "out"), "no model.safetensors")
    assert not (tmp_path / "out").exists()


def test_pickled_weights_are_refused(tmp_path, capsys, tiny_bert):
    bare = tmp_path / "pickled"
    bare.mkdir()
    shutil.copy(tiny_bert / "config.json", bare / "config.json")
    (bare / "pytorch_model.bin").write_bytes(b"not opened")
    _fails(capsys, _student(bare, tmp_path / "out"), "never unpickles")


def test_unsupported_model_type(tmp_path, capsys, tiny_bert):
    other = tmp_path / "gpt"
    shutil.copytree(tiny_bert, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (other / "config.json").write_text(json.dumps(cfg))
    _fails(capsys, _student(other, tmp_path / "out"), "unsupported model_type 'gpt2'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_damaged_safetensors(tmp_path, capsys, tiny_bert, damage):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bert, bad)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    if damage == "corrupted":
        weights.write_bytes(b"\x07" * 8 + data[8:])  # header length garbage
    else:
        weights.write_bytes(data[: len(data) // 2])
    _fails(capsys, _student(bad, tmp_path / "out"), "corrupted or truncated")
    assert not (tmp_path / "out").exists()


def test_layer_index_out_of_range(tmp_path, capsys, tiny_bert):
    _fails(capsys, _student(tiny_bert, tmp_path / "out", "0,3"), "out of range", "0..2", parent=tmp_path)
    assert not (tmp_path / "out").exists()


def test_layer_index_repeated(tmp_path, capsys, tiny_bert):
    _fails(capsys, _student(tiny_bert, tmp_path / "out", "1,1"), "repeated", parent=tmp_path)
    assert not (tmp_path / "out").exists()


def test_empty_sts_file(tmp_path, capsys, tiny_student):
    sts = tmp_path / "empty.tsv"
    sts.write_text("")
    _fails(capsys, ["eval", str(tiny_student), "--sts", str(sts)], "no sentence pairs")


def test_unreadable_sts_file(tmp_path, capsys, tiny_student):
    sts = tmp_path / "binary.tsv"
    sts.write_bytes(b"\xff\xfe\x00\x81 not utf-8 \xc3\x28")
    _fails(capsys, ["eval", str(tiny_student), "--sts", str(sts)], "cannot read STS file")


def test_missing_sts_file(tmp_path, capsys, tiny_student):
    _fails(capsys, ["eval", str(tiny_student), "--sts", str(tmp_path / "none.tsv")], "does not exist")


def test_output_exists_and_is_not_ours(tmp_path, capsys, tiny_bert):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    _fails(capsys, _student(tiny_bert, out), "not a pocketbert output")
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]


def test_rewriting_our_own_output_is_allowed(tmp_path, capsys, tiny_bert):
    out = tmp_path / "s"
    assert main(_student(tiny_bert, out)) == 0
    assert main(_student(tiny_bert, out, "2")) == 0
    assert json.loads((out / "pocketbert.json").read_text())["layer_map"] == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_real_process_prints_one_line(tmp_path):
    """Through the installed console entry point: exit 2 and one stderr line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "pocketbert", "student", "--teacher", str(tmp_path / "x"),
                           "--layers", "0", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
