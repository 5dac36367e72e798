"""One conformance suite for both app cores: the Kotlin core on the JVM and the Swift core in the Swift root
answer the same generated cases (tests/apps/conformance.py) and are judged here, per core and per family.

Kotlin needs `bash android_demo/tools/setup_kotlin.sh`, Swift `pocketbert setup-swift` (root); a core whose
toolchain is missing skips with the reason. The report (one line per core and family) is printed at the end
of the run; a failing family prints its first mismatch with both id lists.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import conformance
from app_cores import SUMMARIES, java_command

pytestmark = pytest.mark.slow  # the Kotlin and Swift toolchains

CORES = ["kotlin", "swift"]
FAMILIES = ["minilm", *(v[0] for v in conformance.VARIANTS)]
BUNDLE_CASES = ["good", "static_good", "bad_golden_id", "bad_golden_output", "output_altered_at_one_bucket",
                "output_within_max_abs_diff", "tighter_max_abs_diff", "turn_within_invariance_cosine",
                "tighter_invariance_cosine", "missing_manifest", "newer_schema", "missing_artifact", "sha256_mismatch"]
SWIFT_CASES = "/work/conformance"


@pytest.fixture(scope="session")
def cases(minilm_tokenizer_dir, data_dir, exported, tmp_path_factory) -> conformance.Cases:
    """The cases, generated once per run (HF ids computed here)."""
    families = conformance.tokenizer_families(minilm_tokenizer_dir, data_dir)
    return conformance.build(tmp_path_factory.mktemp("conformance"), families, minilm_tokenizer_dir / "vocab.txt",
                             exported)


def _kotlin(request, cases, tmp_path_factory):
    core_jar = request.getfixturevalue("core_jar")
    folder = tmp_path_factory.mktemp("kotlin_answers") / "cases"
    shutil.copytree(cases.root, folder)
    cmd = java_command(core_jar, "io.pocketbert.core.Conformance") + [str(folder / "request.json")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        pytest.fail(f"Kotlin conformance runner failed:\n{(r.stdout + r.stderr)[-6000:]}", pytrace=False)
    return folder


def _swift(request, cases):
    root = request.getfixturevalue("swift_root")
    runner = request.getfixturevalue("swift_conformance")
    root.copy_in(cases.root, SWIFT_CASES)
    r = root.run([runner, f"{SWIFT_CASES}/request.json"], timeout=1800)
    if r.returncode != 0:
        pytest.fail(f"Swift conformance runner failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-6000:]}",
                    pytrace=False)
    return root.host_path(SWIFT_CASES)


_ANSWERS: dict = {}


@pytest.fixture
def answers(request, cases, tmp_path_factory):
    """(core, answers folder): each core answers the whole request once per run."""
    core = request.param
    if core not in _ANSWERS:
        try:
            _ANSWERS[core] = ("ok", _kotlin(request, cases, tmp_path_factory) if core == "kotlin"
                              else _swift(request, cases))
        except pytest.skip.Exception as e:
            _ANSWERS[core] = ("skip", str(e))
            raise
        except BaseException as e:
            _ANSWERS[core] = ("fail", str(e)[-3000:])
            raise
    status, value = _ANSWERS[core]
    if status == "skip":
        pytest.skip(value)
    if status == "fail":
        pytest.fail(f"{core} core gave no answers: {value}", pytrace=False)
    return core, value


@pytest.mark.parametrize("answers", CORES, indirect=True)
@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_parity(answers, cases, family):
    """0 mismatches against HF `tokenizers` on the family's strings."""
    core, folder = answers
    index = FAMILIES.index(family)
    line, first = conformance.judge_tokenizer(cases, folder, index, core)
    SUMMARIES.append(f"conformance {line}")
    print(line)
    if first:
        SUMMARIES.append("  " + first.replace("\n", "\n  "))
        pytest.fail(first, pytrace=False)


@pytest.mark.parametrize("answers", CORES, indirect=True)
@pytest.mark.parametrize("name", BUNDLE_CASES)
def test_bundle_case(answers, cases, name):
    """The golden self-test (tokenizer, outputs at each bucket, bucket invariance) and the bad bundles."""
    core, folder = answers
    doc = json.loads((folder / "answers.json").read_text(encoding="utf-8"))["bundles"]
    line, problem = conformance.judge_bundle(cases, name, doc.get(name), core)
    SUMMARIES.append(f"conformance {line}")
    print(line)
    if problem:
        SUMMARIES.append(f"  {core} bundle/{name}: {problem}")
        pytest.fail(f"{core} bundle/{name}: {problem}", pytrace=False)


@pytest.mark.parametrize("answers", CORES, indirect=True)
@pytest.mark.parametrize("function", ["top_k", "classify"])
def test_postprocessing(answers, cases, function):
    """What the apps show from outputs: similarity ranking and label probabilities, as numpy computes them."""
    core, folder = answers
    doc = json.loads((folder / "answers.json").read_text(encoding="utf-8"))
    line, first = conformance.judge_postprocess(cases, doc.get("postprocess"), function, core)
    SUMMARIES.append(f"conformance {line}")
    print(line)
    if first:
        SUMMARIES.append("  " + first.replace("\n", "\n  "))
        pytest.fail(first, pytrace=False)


@pytest.mark.parametrize("answers", CORES, indirect=True)
def test_cores_call_artifacts_as_the_bench_does(answers, cases):
    """For the same texts, each core picks the artifact, the input length (a bucket, or the text's own length for
    a dynamic-length artifact) and the ids that the bench's real-length rows use."""
    core, folder = answers
    line, first = conformance.judge_calls(cases, folder, core)
    SUMMARIES.append(f"conformance {line}")
    print(line)
    if first:
        SUMMARIES.append("  " + first.replace("\n", "\n  "))
        pytest.fail(first, pytrace=False)
