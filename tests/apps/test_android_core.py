"""JVM tests of android_demo/core: compiled with kotlinc, run with JUnit 4, fed by inputs prepared here.

Toolchain: `bash android_demo/tools/setup_kotlin.sh` (kotlinc from the npm package `kotlin-compiler`, JUnit 4
from Debian `junit4`). Where java, kotlinc or JUnit is missing every test here skips with the reason.
The compiled jar is cached under ~/.cache/pocketbert/kotlin, keyed by a hash of the Kotlin sources.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from pocketbert.cli import main

from app_cores import KOTLIN_CACHE as CACHE
from app_cores import KOTLIN_CORE as CORE
from app_cores import REPO, record_outputs, run_junit

pytestmark = pytest.mark.slow  # the Kotlin toolchain: compiles the core and the app sources


def test_app_sources_typecheck_against_api_stubs(core_jar, tmp_path):
    """app/ compiles with core against stubs of the Android, ExecuTorch and LiteRT APIs it calls (no SDK here)."""
    stubs_src = REPO / "android_demo" / "tools" / "api_stubs"
    app_src = REPO / "android_demo" / "app" / "src" / "main" / "kotlin"
    sources = sorted(stubs_src.rglob("*.java")) + sorted(app_src.rglob("*.kt")) + sorted((CORE / "src/main/kotlin").rglob("*.kt"))
    h = hashlib.sha256(b"app-typecheck")
    for p in sources:
        h.update(p.relative_to(REPO).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    stamp = CACHE / f"app-typecheck-{h.hexdigest()[:16]}.ok"
    if stamp.is_file():
        return
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("no javac (JDK) on PATH to compile the API stubs")
    classes = tmp_path / "stubs"
    r = subprocess.run([javac, "-d", str(classes), *map(str, sorted(stubs_src.rglob("*.java")))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([core_jar["kotlinc"], "-nowarn", "-jvm-target", "17", "-cp", f"{classes}:{core_jar['jar']}",
                        str(app_src), "-d", str(tmp_path / "app.jar")],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"app sources do not compile against the API stubs:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}", pytrace=False)
    stamp.write_text("ok\n")


def test_core_unit_tests(core_jar):
    """JUnit unit tests of core that need no inputs (tokenizer rules on a small vocabulary, read-outs)."""
    run_junit(core_jar, "TokenizerParityTest", {})
    run_junit(core_jar, "GoldenSelfTestTest", {})


def test_shared_golden_fixture(core_jar):
    """The Kotlin tokenizer gives the ids of tests/fixtures/tiny_bundle (golden + tokenizer cases), as Python and Swift do."""
    fixture = REPO / "tests" / "fixtures" / "tiny_bundle"
    if not (fixture / "tokenizer_cases.json").is_file():
        pytest.skip(f"shared fixture {fixture} not present")
    out = run_junit(core_jar, "SharedFixtureTest", {"fixture": fixture})
    assert "shared fixture golden.json" in out and "shared fixture tokenizer_cases.json" in out


# ---------------------------------------------------------------- headless results
# The tokenizer parity corpus and the golden self-test on an exported bundle are in test_conformance.py,
# which holds the Kotlin and the Swift core to the same cases.


@pytest.fixture(scope="session")
def headless_results(core_jar, exported, tmp_path_factory) -> Path:
    """Run the headless benchmark on the good bundle and on each kind of bad bundle; returns the results folder."""
    out_dir = tmp_path_factory.mktemp("android_results")
    rng = random.Random(1)
    samples = [rng.lognormvariate(0, 0.3) * 10 for _ in range(37)] + [250.0]
    (out_dir / "samples.json").write_text(json.dumps(samples))
    run_junit(core_jar, "HeadlessBenchmarkTest", {**exported, "outDir": out_dir, "statsSamples": out_dir / "samples.json"})
    return out_dir


def _results_schema():
    path = REPO / "runtime_bench" / "results.schema.json"
    if not path.is_file():
        pytest.skip("runtime_bench/results.schema.json not present yet")
    return json.loads(path.read_text(encoding="utf-8"))


def test_headless_results_validate_against_results_schema(headless_results):
    import jsonschema

    schema = _results_schema()
    files = sorted(headless_results.rglob("benchmark_results.json"))
    assert {f.parent.name for f in files} == {"good", "missing_manifest", "newer_schema", "missing_artifact", "sha256_mismatch"}
    for f in files:
        jsonschema.validate(json.loads(f.read_text(encoding="utf-8")), schema)
    good = json.loads((headless_results / "good" / "benchmark_results.json").read_text(encoding="utf-8"))
    assert good["complete"] is True and good["extra"]["status"] == "passed"
    assert good["device"]["environment"] == "host"
    assert good["config"]["seq_lens"] == [32, 128]
    assert {r["seq_len"] for r in good["rows"]} == {32, 128}
    for row in good["rows"]:
        assert row["status"] == "ok" and row["runs"] == 20 and row["extra"]["golden_passed"] == row["extra"]["golden_cases"] > 0


@pytest.mark.parametrize("case, words", [
    ("missing_manifest", ["has no manifest.json"]),
    ("newer_schema", ["schema_version 2.0 is not supported"]),
    ("missing_artifact", ["is missing", "push the whole bundle folder again"]),
])
def test_headless_bad_bundle_writes_failing_result(headless_results, case, words):
    res = json.loads((headless_results / case / "benchmark_results.json").read_text(encoding="utf-8"))
    assert res["complete"] is False and res["rows"] == []
    assert res["extra"]["status"] == "failed"
    assert all(w in res["extra"]["error"] for w in words), res["extra"]["error"]
    assert "\n" not in res["extra"]["error"]


def test_headless_sha256_mismatch_fails_that_artifact(headless_results):
    res = json.loads((headless_results / "sha256_mismatch" / "benchmark_results.json").read_text(encoding="utf-8"))
    assert res["extra"]["status"] == "failed"
    failed = [r for r in res["rows"] if r["status"] == "failed"]
    assert len(failed) == 1 and "sha256" in failed[0]["error"] and "does not match the manifest" in failed[0]["error"]
    assert all(r["status"] == "ok" for r in res["rows"] if r is not failed[0])


def test_latency_statistics_match_runtime_bench(headless_results):
    from pocketbert.runtime_bench.stats import summarize

    samples = json.loads((headless_results / "samples.json").read_text())
    kotlin = json.loads((headless_results / "stats.json").read_text())
    python = summarize(samples)
    assert kotlin.keys() == python.keys()
    for k, v in python.items():
        assert kotlin[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


@pytest.mark.slow
def test_self_test_and_benchmark_on_phone_formats(core_jar, tiny_student, tmp_path):
    """The formats the app runs: ExecuTorch and LiteRT artifacts (fp32, int8) from `pocketbert export`, their
    outputs recorded from the real Python runtimes, pass core's self-test and headless benchmark."""
    bundle = tmp_path / "bundle"
    rc = main(["export", str(tiny_student), "--out", str(bundle), "--formats", "executorch,tflite",
               "--quant", "fp32,int8", "--seq-len", "32"])
    assert rc == 0, "pocketbert export failed"
    (tmp_path / "replay.json").write_text(json.dumps(record_outputs(bundle)), encoding="utf-8")
    out = run_junit(core_jar, "PhoneFormatsTest", {"bundle": bundle, "replay": tmp_path / "replay.json", "outDir": tmp_path / "out"})
    assert "phone formats: 4 artifacts" in out, out
    results = json.loads((tmp_path / "out" / "benchmark_results.json").read_text(encoding="utf-8"))
    import jsonschema

    jsonschema.validate(results, _results_schema())
    assert {(r["format"], r["quant"]) for r in results["rows"]} == {
        ("executorch", "fp32"), ("executorch", "int8"), ("tflite", "fp32"), ("tflite", "int8")}
    assert all(r["status"] == "ok" for r in results["rows"]), results["rows"]
