"""`pocketbert bench --device adb`: the protocol round trip against a fake `adb` that acts on a local folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pocketbert.cli import main
from pocketbert.runtime_bench.adb import parse_binary_output
from pocketbert.runtime_bench.schema import read_results

from helpers.bundles import make_tiny_bundle
from helpers.checkpoints import make_hf_checkpoint

pytestmark = pytest.mark.integration

FAKE_ADB = Path(__file__).resolve().parents[1] / "fake_adb"


@pytest.fixture(scope="module")
def phone_bundle(tmp_path_factory) -> Path:
    """The tiny bundle plus a stand-in .tflite (a flatbuffer header, enough for the fake tools)."""
    teacher = make_hf_checkpoint(tmp_path_factory.mktemp("adb_teacher"), "bert")
    root = make_tiny_bundle(tmp_path_factory.mktemp("adb") / "bundle", teacher, broken=True)
    manifest = json.loads((root / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["format"] == "tflite":
            p = root / a["file"]
            p.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
            import hashlib

            a["size_bytes"], a["sha256"] = p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture()
def fake_phone(tmp_path, monkeypatch):
    root = tmp_path / "phone"
    root.mkdir()
    monkeypatch.setenv("PATH", f"{FAKE_ADB}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "emulator-5554")
    return root


def test_adb_app_round_trip(fake_phone, phone_bundle, tmp_path):
    out = tmp_path / "phone.json"
    assert main(["bench", str(phone_bundle), "--device", "adb", "--threads", "1,2", "--runs", "5", "--warmup", "1",
                 "--out", str(out)]) == 0
    doc = read_results(out)  # schema-validated
    assert doc["complete"] and doc["device"]["environment"] == "adb"
    assert doc["device"]["serial"] == "emulator-5554" and doc["device"]["arch"] == "arm64-v8a"
    assert {"neon", "asimddp", "i8mm"} <= set(doc["device"]["isa"])
    # the bundle was pushed where the app was told to read it
    pushed = fake_phone / "data/local/tmp/pocketbert" / phone_bundle.name
    assert (pushed / "manifest.json").read_bytes() == (phone_bundle / "manifest.json").read_bytes()
    tflite = [r for r in doc["rows"] if r["format"] == "tflite"]
    assert {(r["seq_len"], r["threads"]) for r in tflite} == {(16, 1), (32, 1), (16, 2), (32, 2)}
    assert all(r["status"] == "ok" and r["runs"] == 5 and r["gflops_per_inference"] > 0 for r in tflite)
    assert not [r for r in doc["rows"] if r["format"] == "onnx"]  # the app runs only phone formats
    assert {e["core"] for e in doc["estimates"]} >= {"Cortex-A55", "Cortex-X3"}


def test_adb_binary_round_trip(fake_phone, phone_bundle, tmp_path):
    out = tmp_path / "phone.json"
    assert main(["bench", str(phone_bundle), "--device", "adb:emulator-5554", "--binary",
                 str(FAKE_ADB / "benchmark_model"), "--threads", "2", "--runs", "50", "--out", str(out)]) == 0
    doc = read_results(out)
    rows = [r for r in doc["rows"] if r["format"] == "tflite"]
    assert len(rows) == 2 and all(r["status"] == "ok" and r["threads"] == 2 for r in rows)
    r = rows[0]
    assert r["latency_ms_p50"] == pytest.approx(4.2) and r["latency_ms_mean"] == pytest.approx(4.2105)
    assert r["load_ms"] == pytest.approx(15.23) and r["peak_rss_delta_mb"] == 7.25 and "benchmark_model" in r["latency_note"]
    assert (fake_phone / "data/local/tmp/pocketbert/bin/benchmark_model").is_file()


def test_parse_executor_runner_output():
    row = parse_binary_output("executor_runner", "I 00:00:01 Model executed successfully 20 time(s) in 84.0 ms.")
    assert row["runs"] == 20 and row["latency_ms_mean"] == pytest.approx(4.2)
    with pytest.raises(ValueError):
        parse_binary_output("benchmark_model", "ERROR: nothing")


def _fails(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_adb_not_installed(tmp_path, capsys, monkeypatch, phone_bundle):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "r.json"
    _fails(capsys, ["bench", str(phone_bundle), "--device", "adb", "--out", str(out)], "adb not found on PATH")
    assert not out.exists()


def test_no_device_attached(fake_phone, tmp_path, capsys, monkeypatch, phone_bundle):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    out = tmp_path / "r.json"
    _fails(capsys, ["bench", str(phone_bundle), "--device", "adb", "--out", str(out)], "no Android device attached")
    assert not out.exists()
    assert not any(fake_phone.iterdir())  # nothing was pushed


def test_wrong_serial(fake_phone, tmp_path, capsys, phone_bundle):
    out = tmp_path / "r.json"
    _fails(capsys, ["bench", str(phone_bundle), "--device", "adb:XYZ", "--out", str(out)], "device XYZ is not attached")
    assert not out.exists()


def test_missing_binary(fake_phone, tmp_path, capsys, phone_bundle):
    out = tmp_path / "r.json"
    _fails(capsys, ["bench", str(phone_bundle), "--device", "adb", "--binary", str(tmp_path / "nope"),
                    "--out", str(out)], "--binary")
    assert not out.exists()
