"""The typed manifest (pocketbert/bundle/manifest.py): `Manifest` and `Artifact` round-trip the JSON document,
`write` refuses what the schema or the cross-field checks refuse, and every threshold a reader applies comes
from the manifest's `tolerances` (format 1.2), a 1.0/1.1 entry completed from export's table."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from pocketbert.bundle.manifest import MANIFEST, SCHEMA_VERSION, Artifact, Bundle, Manifest, validate_manifest
from pocketbert.bundle.parity import TOLERANCES, Tolerance, golden_parity
from pocketbert.errors import PocketBertError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_bundle"


def _doc() -> dict:
    return json.loads((FIXTURE / MANIFEST).read_text(encoding="utf-8"))


def _legacy(doc: dict) -> dict:
    """The document as format 1.1 wrote it: tolerance entries with max_abs_diff and min_cosine only."""
    old = copy.deepcopy(doc)
    old["schema_version"] = "1.1"
    old["tolerances"] = {k: {"max_abs_diff": t["max_abs_diff"], "min_cosine": t["min_cosine"]}
                         for k, t in old["tolerances"].items()}
    return old


def test_read_and_to_dict_round_trip_the_fixture():
    doc = _doc()
    manifest = Manifest.read(FIXTURE)
    assert manifest.schema_version == SCHEMA_VERSION == doc["schema_version"]
    assert manifest.to_dict() == doc
    a = manifest.artifacts[0]
    assert isinstance(a, Artifact) and a.key == f"{a.format}/{a.quant}" and a.seq_len in manifest.seq_lens
    assert manifest.tolerances[a.key] == TOLERANCES[a.quant]


def test_min_seq_len_is_a_typed_field_checked_against_seq_len():
    """Format 1.3: a dynamic-length artifact (the fixture's ONNX artifacts) carries `min_seq_len`; an app feeds it
    a text at its own length within [min_seq_len, seq_len], a static one always at its bucket."""
    manifest = Manifest.read(FIXTURE)
    a = manifest.artifacts[0]
    assert a.min_seq_len == 2 and a.to_dict()["min_seq_len"] == 2
    assert [a.input_length(n) for n in (0, 2, 9, a.seq_len, a.seq_len + 5)] == [2, 2, 9, a.seq_len, a.seq_len]
    static = dataclasses.replace(a, min_seq_len=None)
    assert "min_seq_len" not in static.to_dict() and {static.input_length(n) for n in (2, 9, 40)} == {a.seq_len}
    doc = _doc()
    doc["artifacts"][0]["min_seq_len"] = doc["artifacts"][0]["seq_len"] + 1
    with pytest.raises(PocketBertError, match="has min_seq_len 17 > seq_len 16"):
        validate_manifest(doc)
    doc["artifacts"][0]["min_seq_len"] = 0
    with pytest.raises(PocketBertError, match="invalid at artifacts/0/min_seq_len"):
        validate_manifest(doc)


def test_write_validates_then_writes(tmp_path):
    manifest = Manifest.read(FIXTURE)
    path = manifest.write(tmp_path)
    assert json.loads(path.read_text(encoding="utf-8")) == _doc()
    manifest.tolerances = {}  # an artifact without its thresholds
    with pytest.raises(PocketBertError, match="no tolerance for onnx/fp32"):
        manifest.write(tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_a_format_1_2_entry_must_hold_every_threshold():
    doc = _doc()
    for entry in doc["tolerances"].values():
        del entry["min_invariance_cosine"]
    with pytest.raises(PocketBertError, match="invalid at tolerances/onnx/fp32: 'min_invariance_cosine' is a required"):
        validate_manifest(doc)


def test_a_format_1_1_manifest_reads_with_the_thresholds_of_its_time():
    old = _legacy(_doc())
    validate_manifest(old)
    manifest = Manifest.from_dict(old)
    assert manifest.tolerances["onnx/fp32"] == TOLERANCES["fp32"]
    bundle = Bundle(FIXTURE, old)
    assert bundle.tolerance(bundle.artifacts[0]) == TOLERANCES["fp32"]


def test_readers_apply_the_manifests_thresholds_not_a_table():
    """The same outputs pass or fail by the manifest's entry: parity, MLM agreement and bucket invariance."""
    import numpy as np

    from pocketbert.bundle.parity import bucket_invariance

    golden = {"task": "embedding", "cases": [{"name": "x", "ids": [2, 3], "expected": [1.0, 0.0]}]}
    artifact = {"format": "onnx", "quant": "fp32", "seq_len": 4}
    out = [np.asarray([1.0, 0.002])]
    loose = Tolerance(max_abs_diff=1e-2, min_cosine=0.99, min_argmax_agreement=0.9, min_invariance_cosine=0.99)
    tight = Tolerance(max_abs_diff=1e-3, min_cosine=0.99, min_argmax_agreement=0.9, min_invariance_cosine=0.99)
    assert golden_parity(golden, artifact, out, loose)["status"] == "passed"
    assert golden_parity(golden, artifact, out, tight)["status"] == "failed"

    mlm = {"task": "mlm", "cases": [{"name": "x", "ids": [2, 3], "expected_argmax": [1, 0]}]}
    logits = [np.asarray([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])]  # argmax 1, 1: one of two agrees
    assert golden_parity(mlm, artifact, logits, Tolerance(1e-3, 0.99, 0.5, 0.99))["status"] == "passed"
    assert golden_parity(mlm, artifact, logits, Tolerance(1e-3, 0.99, 0.6, 0.99))["status"] == "failed"

    outs = {4: {"x": np.asarray([1.0, 0.0])}, 8: {"x": np.asarray([1.0, 0.1])}}  # cosine 0.995
    assert bucket_invariance(outs, {"x": 2}, 0.99)[8]["status"] == "passed"
    assert bucket_invariance(outs, {"x": 2}, 0.999)[8]["status"] == "failed"
