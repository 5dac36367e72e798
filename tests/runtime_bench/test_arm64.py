"""ARM64 by emulation: `pocketbert setup-arm64` and `pocketbert bench --device qemu[:CORE]`.

The parity test builds (or reuses) the real emulation environment in the cache folder
($POCKETBERT_ARM64_CACHE or ~/.cache/pocketbert/arm64) from Debian's and PyPI's registries and runs a
tiny bundle's int8 .tflite and .onnx under qemu-aarch64 -cpu cortex-a55. Where the environment
cannot be built (no network, no apt-get), it skips with the set-up's one-line reason.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.runtime_bench import emulation
from pocketbert.runtime_bench.schema import read_results

SEQ = 16


def _assert_one_line_error(capsys, argv, needle) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert needle in err, err
    return err


# ------------------------------------------------------------------------------------ bad input


def test_setup_with_missing_emulator_is_one_line_exit_2(tmp_path, capsys):
    cache = tmp_path / "arm64"
    _assert_one_line_error(capsys, ["setup-arm64", "--cache", str(cache), "--qemu", str(tmp_path / "no-qemu-aarch64")],
                           "no such emulator")
    assert not cache.exists()


def _x86_only_wheel(folder: Path, name: str = "pbnoarm") -> Path:
    """A real (installable on x86_64) wheel that has no aarch64 build."""
    folder.mkdir(parents=True, exist_ok=True)
    whl = folder / f"{name}-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                    "Tag: cp311-cp311-manylinux_2_17_x86_64\n")
        z.writestr(f"{info}/RECORD", "")
    return whl


def test_setup_with_a_wheel_without_aarch64_build_is_one_line_exit_2(tmp_path, capsys):
    source = tmp_path / "wheels"
    _x86_only_wheel(source)
    cache = tmp_path / "arm64"
    err = _assert_one_line_error(capsys, ["setup-arm64", "--cache", str(cache), "--wheel-source", str(source),
                                          "--extra-wheel", "pbnoarm"], "no aarch64 wheel")
    assert "pbnoarm" in err
    assert not cache.exists()


def test_bench_with_missing_sysroot_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "arm64").mkdir()  # bench --cache C uses C/arm64: here an empty folder
    out = tmp_path / "r.json"
    _assert_one_line_error(capsys, ["bench", str(tmp_path / "bundle"), "--device", "qemu:cortex-a55", "--cache",
                                    str(tmp_path), "--out", str(out)], "no aarch64 sysroot")
    assert not out.exists()


def test_bench_without_emulator_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "arm64"
    python = cache / "sysroot" / emulation.PYTHON_IN_SYSROOT
    python.parent.mkdir(parents=True)
    python.write_bytes(b"")  # a sysroot, but no qemu-aarch64 beside it
    monkeypatch.setenv(emulation.CACHE_ENV, str(cache))
    out = tmp_path / "r.json"
    _assert_one_line_error(capsys, ["bench", str(tmp_path / "bundle"), "--device", "qemu", "--out", str(out)],
                           "no emulator")
    assert not out.exists()


def test_bench_with_unknown_core_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "r.json"
    _assert_one_line_error(capsys, ["bench", str(tmp_path), "--device", "qemu:cortex-x9", "--out", str(out)],
                           "unknown core")
    assert not out.exists()


# ------------------------------------------------------------------- the real emulated parity run


@pytest.fixture(scope="module")
def arm64_env():
    """The real emulation environment (built once into the cache), or a skip naming why it cannot be."""
    try:
        return emulation.setup(log=lambda m: None)
    except PocketBertError as e:
        pytest.skip(f"emulation environment cannot be built here: {e}")


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, tiny_student) -> Path:
    out = tmp_path_factory.mktemp("arm64") / "bundle"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx,tflite,executorch", "--quant", "int8",
                 "--seq-len", str(SEQ), "--name", "tiny"]) == 0
    return out


@pytest.mark.integration
def test_the_runner_needs_no_pocketbert_only_the_bundle_contracts_parity_file(int8_bundle, tmp_path):
    """The runner runs where pocketbert cannot be imported, as in the emulated Python: it loads
    pocketbert/bundle/parity.py from the path the spec names (the same `case_inputs` as export and verify)."""
    import os
    import site
    import subprocess
    import sys

    from pocketbert.bundle import parity
    from pocketbert.bundle.manifest import load_bundle

    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(site.getsitepackages())}  # numpy, onnxruntime
    no_pocketbert = subprocess.run([sys.executable, "-S", "-c", "import pocketbert"], cwd=tmp_path, env=env,
                                   capture_output=True, text=True)
    assert no_pocketbert.returncode != 0 and "No module named 'pocketbert'" in no_pocketbert.stderr
    bundle = load_bundle(int8_bundle)
    onnx = bundle.find("onnx", "int8")
    spec = json.dumps({"bundle": str(int8_bundle), "files": [onnx["file"]], "threads": 1, "timed_runs": 1,
                       "parity": parity.__file__})
    r = subprocess.run([sys.executable, "-S", str(emulation.RUNNER), spec], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(r.stdout)["rows"][0]
    assert row["status"] == "ok" and row["cases"] == len(parity.cases_for(bundle.golden(), SEQ))
    assert emulation.check_row(bundle, onnx, bundle.golden(), row)["status"] == "passed"
    assert "def case_inputs" not in emulation.RUNNER.read_text(encoding="utf-8")  # no copy of its own


@pytest.mark.slow
def test_int8_tflite_onnx_and_pte_match_golden_on_emulated_cortex_a55(arm64_env, int8_bundle, tmp_path, capsys):
    out = tmp_path / "a55.json"
    assert main(["bench", str(int8_bundle), "--device", "qemu:cortex-a55", "--runs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "EMULATION" in text and "cortex-a55" in text
    doc = read_results(out)  # schema-valid
    assert doc["device"]["environment"] == "emulation"
    assert doc["device"]["arch"] == "aarch64" and "cortex-a55" in doc["device"]["cpu_model"]
    rows = {r["format"]: r for r in doc["rows"]}
    assert set(rows) == {"tflite", "onnx", "executorch"}
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    for fmt, row in rows.items():
        assert row["quant"] == "int8"
        assert row["status"] == "ok", row.get("error")
        parity = row["extra"]["parity"]
        assert parity["status"] == "passed" and parity["cases"] > 0
        assert parity["max_abs_diff"] <= manifest["tolerances"][f"{fmt}/int8"]["max_abs_diff"]
        assert row["extra"]["core"] == "cortex-a55"
        # The same runner on the x86 host: Arm and host outputs are both within tolerance of golden.
        vs_host = row["extra"]["vs_host"]
        assert vs_host["status"] == "compared" and vs_host["cases"] == parity["cases"]
        assert vs_host["max_abs_diff"] <= 2 * manifest["tolerances"][f"{fmt}/int8"]["max_abs_diff"]
        # Emulated time is labelled as such and never put in the percentile fields host/phone rows use.
        assert row["latency_note"].startswith("EMULATED")
        assert "latency_ms_p50" not in row
    # The Arm code path really ran: the emulated runtimes report their aarch64 versions; the .pte ran in
    # ExecuTorch's C++ runtime from the aarch64 executorch wheel (pte_runner, no torch), the host's release.
    versions = doc["config"]["emulation"]["site_versions"]
    assert "onnxruntime" in versions and "ai_edge_litert" in versions
    assert rows["executorch"]["extra"]["runtime_versions"]["executorch"] == arm64_env["steps"]["executorch"].split()[1]


@pytest.mark.slow
def test_setup_is_idempotent(arm64_env):
    again = emulation.setup(log=lambda m: None)
    assert again["site_versions"] == arm64_env["site_versions"]
    assert again["seconds"]["sysroot"] == arm64_env["seconds"]["sysroot"]  # kept, not rebuilt
