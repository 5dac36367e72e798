"""The shared golden fixture `tests/fixtures/tiny_bundle` still matches what `pocketbert export` writes.

The Swift (`ios_demo/PocketBertKit`) and Kotlin (`android_demo/core`) tests read this fixture instead of a
bundle with models, so the three tokenizers and golden checks are held to one file. This test regenerates
the fixture in a temporary folder with the same deterministic tiny model (tests/fixtures/make_tiny_bundle.py)
and fails when the committed copy has drifted: token ids exactly, outputs within 1e-5, and the manifest
fields an app reads. Fix a failure by running `python tests/fixtures/make_tiny_bundle.py` and committing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "tiny_bundle"
FILES = {"manifest.json", "golden.json", "vocab.txt", "tokenizer.json", "tokenizer_cases.json"}
OUTPUT_ATOL = 1e-5  # eager fp32 on the same CPU kernels; across torch builds the last bits may move
CASE_KEYS = ("name", "text", "ids", "seq_len", "input_ids", "attention_mask")
# What an app reads from the manifest; provenance, timings, paths and tool versions may differ run to run.
MANIFEST_KEYS = ("schema_version", "inputs", "outputs", "seq_lens", "tokenizer", "labels", "tolerances")
ARTIFACT_KEYS = ("file", "format", "backend", "quant", "seq_len", "min_seq_len")


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_tiny_bundle", FIXTURES / "make_tiny_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def fixture_differences(committed: Path, fresh: Path) -> list[str]:
    """Every way `committed` differs from a freshly exported `fresh` fixture, one line each."""
    problems: list[str] = []
    if (committed / "vocab.txt").read_bytes() != (fresh / "vocab.txt").read_bytes():
        problems.append("vocab.txt differs")
    if _json(committed / "tokenizer.json") != _json(fresh / "tokenizer.json"):
        problems.append("tokenizer.json differs")

    cm, fm = _json(committed / "manifest.json"), _json(fresh / "manifest.json")
    for key in MANIFEST_KEYS:
        if cm.get(key) != fm.get(key):
            problems.append(f"manifest.json {key}: {cm.get(key)!r} != export's {fm.get(key)!r}")
    for key in ("name", "task", "config", "num_parameters"):
        if cm["model"].get(key) != fm["model"].get(key):
            problems.append(f"manifest.json model.{key} differs from export's")
    pick = [[{k: a.get(k) for k in ARTIFACT_KEYS} for a in m["artifacts"]] for m in (cm, fm)]
    if pick[0] != pick[1]:
        problems.append(f"manifest.json artifacts {pick[0]} != export's {pick[1]}")

    for name in ("golden.json", "tokenizer_cases.json"):
        cg, fg = _json(committed / name), _json(fresh / name)
        for key in ("schema_version", "output_name", "seq_lens"):
            if cg.get(key) != fg.get(key):
                problems.append(f"{name} {key}: {cg.get(key)!r} != export's {fg.get(key)!r}")
        if [c["name"] for c in cg["cases"]] != [c["name"] for c in fg["cases"]]:
            problems.append(f"{name}: case names differ from export's")
            continue
        for cc, fc in zip(cg["cases"], fg["cases"]):
            for key in CASE_KEYS:
                if cc.get(key) != fc.get(key):
                    problems.append(f"{name} case {cc['name']}: {key} differs from export's")
            if "expected" in fc or "expected" in cc:
                exp_c, exp_f = cc.get("expected") or [], fc.get("expected") or []
                if len(exp_c) != len(exp_f):
                    problems.append(f"{name} case {cc['name']}: {len(exp_c)} expected values, export wrote {len(exp_f)}")
                else:
                    worst = max((abs(a - b) for a, b in zip(exp_c, exp_f)), default=0.0)
                    if worst > OUTPUT_ATOL:
                        problems.append(f"{name} case {cc['name']}: expected differs by {worst:.2e} > {OUTPUT_ATOL}")
            # golden.json 1.1: the case at every bucket it fits, each with its eager output.
            bc, bf = cc.get("buckets", []), fc.get("buckets", [])
            if [b["seq_len"] for b in bc] != [b["seq_len"] for b in bf]:
                problems.append(f"{name} case {cc['name']}: buckets {[b['seq_len'] for b in bc]} != export's "
                                f"{[b['seq_len'] for b in bf]}")
                continue
            for b_c, b_f in zip(bc, bf):
                e_c, e_f = b_c.get("expected") or [], b_f.get("expected") or []
                worst = max((abs(a - b) for a, b in zip(e_c, e_f)), default=0.0)
                if len(e_c) != len(e_f) or worst > OUTPUT_ATOL:
                    problems.append(f"{name} case {cc['name']}: expected at seq{b_c['seq_len']} differs from export's")
    return problems


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """The fixture as `pocketbert export` writes it now (about 25 s: the tiny model, student, ONNX export)."""
    return _load_maker().build(tmp_path_factory.mktemp("fresh") / "tiny_bundle")


def test_fixture_matches_what_export_writes(fresh):
    problems = fixture_differences(FIXTURE, fresh)
    assert not problems, "tests/fixtures/tiny_bundle drifted from `pocketbert export`; run " \
        "`python tests/fixtures/make_tiny_bundle.py` and commit:\n" + "\n".join(problems)


@pytest.mark.parametrize("change", ["id", "output", "bucket", "bucket_output", "tokenizer_case", "tolerance"])
def test_drift_check_catches_a_changed_fixture(fresh, tmp_path, change):
    copy = tmp_path / "tiny_bundle"
    shutil.copytree(FIXTURE, copy)
    if change == "tolerance":
        m = _json(copy / "manifest.json")
        m["tolerances"]["onnx/fp32"]["max_abs_diff"] *= 10
        (copy / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    else:
        name = "tokenizer_cases.json" if change == "tokenizer_case" else "golden.json"
        doc = _json(copy / name)
        case = doc["cases"][3]
        if change in ("id", "tokenizer_case"):
            case["ids"][1] += 1
        elif change == "output":
            case["expected"][0] += 1e-3
        elif change == "bucket_output":  # the larger bucket's output of a case that fits both
            case = next(c for c in doc["cases"] if len(c["buckets"]) > 1)
            case["buckets"][-1]["expected"][0] += 1e-3
        else:
            case["seq_len"] = 16 if case["seq_len"] == 32 else 32
        (copy / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    assert fixture_differences(copy, fresh), f"a changed {change} went unnoticed"


def test_fixture_is_small_and_holds_no_model_file():
    names = {p.name for p in FIXTURE.iterdir()}
    assert names == FILES
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 150_000  # golden.json 1.1 holds every bucket
    manifest = _json(FIXTURE / "manifest.json")
    assert manifest["artifacts"], "the manifest still lists the exported artifacts"
    for a in manifest["artifacts"]:
        assert not (FIXTURE / a["file"]).exists()  # stripped: apps see it as a missing artifact


def test_fixture_manifest_is_a_valid_bundle_manifest():
    from pocketbert.bundle.manifest import validate_manifest
    from pocketbert.files import path_sha256

    manifest = _json(FIXTURE / "manifest.json")
    validate_manifest(manifest, "tests/fixtures/tiny_bundle/manifest.json")
    assert manifest["golden"]["sha256"] == path_sha256(FIXTURE / "golden.json")
    assert manifest["model"]["task"] == "embedding"
    assert manifest["seq_lens"] == [16, 32]


def test_fixture_golden_cases_cover_the_edge_cases_the_apps_test():
    golden = {c["name"]: c for c in _json(FIXTURE / "golden.json")["cases"]}
    extra = {c["name"]: c for c in _json(FIXTURE / "tokenizer_cases.json")["cases"]}
    for name in ("accents", "cjk", "emoji", "control_chars", "long_word", "empty", "whitespace", "punctuation",
                 "very_long"):
        assert name in golden, name
    special = _json(FIXTURE / "manifest.json")["tokenizer"]["special_tokens"]
    cls, sep, unk = special["[CLS]"], special["[SEP]"], special["[UNK]"]
    assert golden["empty"]["ids"] == [cls, sep] and golden["whitespace"]["ids"] == [cls, sep]
    assert golden["very_long"]["ids"][-1] == sep and len(golden["very_long"]["ids"]) == 32
    assert golden["long_word"]["ids"][1] == unk  # 120 x "x": longer than max_input_chars_per_word
    # The intent of each extra case, so a regenerated fixture cannot silently lose it.
    assert extra["word_of_101_chars"]["ids"] == [cls, unk, sep]
    assert unk not in extra["word_of_100_chars"]["ids"]
    assert unk not in extra["100_chars_after_accent_strip"]["ids"]
    assert extra["exactly_16_ids"]["seq_len"] == 16 and len(extra["exactly_16_ids"]["ids"]) == 16
    assert extra["17_ids_next_bucket"]["seq_len"] == 32
    assert len(extra["exactly_32_ids"]["ids"]) == 32 and extra["exactly_32_ids"]["tokens"][-2] == "d"
    assert len(extra["33_ids_truncated"]["ids"]) == 32 and extra["33_ids_truncated"]["ids"][-1] == sep
    assert extra["33_ids_truncated"]["tokens"][-2] == "d"
    assert extra["special_tokens_in_text"]["tokens"][:3] == ["[CLS]", "the", "[MASK]"]
    assert extra["decomposed_accent"]["tokens"][1:5] == extra["decomposed_accent"]["tokens"][7:11]
    assert extra["unassigned_code_point"]["ids"] == [cls, unk, sep]  # U+0378 is kept, not cleaned
    for case in extra.values():
        assert len(case["tokens"]) == len(case["ids"])


def test_swift_tests_name_only_cases_the_fixture_has():
    """The XCTest files look cases up by name (no Swift toolchain here to run them): each name must exist."""
    import re

    names = {c["name"] for f in ("golden.json", "tokenizer_cases.json") for c in _json(FIXTURE / f)["cases"]}
    swift = Path(__file__).resolve().parents[2] / "ios_demo" / "PocketBertKit" / "Tests"
    if not swift.is_dir():
        pytest.skip("ios_demo/PocketBertKit is not in this checkout")
    pattern = re.compile(r'(?:findCase\(named: |assertMatchesGolden\(|goldenCase\()"([A-Za-z0-9_]+)"'
                         r'|\("([A-Za-z0-9_]+)", \d+, \d+\)')
    used = {m.group(1) or m.group(2) for p in swift.rglob("*.swift") for m in pattern.finditer(p.read_text(encoding="utf-8"))}
    assert used, "no case names found in the Swift tests"
    assert used <= names, f"Swift tests name cases the fixture lacks: {sorted(used - names)}"
