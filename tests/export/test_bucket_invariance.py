"""Bucket invariance: golden.json holds each case at every bucket, export records the minimum cosine between
one text's outputs at two buckets per artifact, and `pocketbert verify` fails when an output at one bucket
is altered (the golden output, or the artifact itself)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from pocketbert.bundle.parity import TOLERANCES, bucket_invariance
from pocketbert.cli import main

FP32 = TOLERANCES["fp32"].min_invariance_cosine


def test_invariance_is_the_worst_cosine_across_buckets():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    outs = {32: {"x": a, "y": b}, 128: {"x": a * 1.0000001, "y": b}}
    res = bucket_invariance(outs, {"x": 3, "y": 4}, FP32)
    assert res[32]["status"] == res[128]["status"] == "passed"
    assert res[32]["min_cosine"] == pytest.approx(1.0) and res[32]["other_seq_lens"] == [128]
    outs[128]["y"] = b + 0.05 * np.linalg.norm(b) * rng.standard_normal(8) / np.sqrt(8)
    res = bucket_invariance(outs, {"x": 3, "y": 4}, FP32)
    assert res[128]["status"] == "failed" and res[128]["worst_case"] == "y vs seq32"
    assert res[128]["min_cosine"] < FP32 and "bucket invariance" in res[128]["reason"]
    int8 = TOLERANCES["int8"].min_invariance_cosine
    assert bucket_invariance(outs, {"x": 3, "y": 4}, int8)[128]["status"] == "passed"  # 0.99 for int8
    assert bucket_invariance({32: {"x": a}}, {"x": 3}, FP32)[32]["status"] == "skipped"


def test_mlm_invariance_compares_real_positions_only():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((3, 5))
    at4 = np.concatenate([real, rng.standard_normal((1, 5))])  # padding rows differ freely
    at8 = np.concatenate([real, rng.standard_normal((5, 5))])
    res = bucket_invariance({4: {"x": at4}, 8: {"x": at8}}, {"x": 3}, FP32, per_position=True)
    assert res[4]["status"] == "passed" and res[4]["min_cosine"] == pytest.approx(1.0)


def _rehash(bundle: Path, name: str) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    sha = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    if name == "golden.json":
        manifest["golden"]["sha256"] = sha
    else:
        a = next(a for a in manifest["artifacts"] if a["file"] == name)
        a["sha256"], a["size_bytes"] = sha, (bundle / name).stat().st_size
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def bundle(tiny_student, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("invariance") / "bundle"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx", "--quant", "fp32,int8",
                 "--seq-len", "32,128"]) == 0
    return out


@pytest.mark.integration
def test_export_records_per_bucket_golden_and_invariance(bundle):
    golden = json.loads((bundle / "golden.json").read_text(encoding="utf-8"))
    for case in golden["cases"]:
        fits = [n for n in (32, 128) if n >= len(case["ids"])]
        assert [b["seq_len"] for b in case["buckets"]] == fits, case["name"]
        assert case["buckets"][0]["expected"] == case["expected"] and case["seq_len"] == fits[0]
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["schema_version"] == "1.3"
    for a in manifest["artifacts"]:
        inv = a["invariance"]
        assert inv["status"] == "passed" and inv["other_seq_lens"] == [128 if a["seq_len"] == 32 else 32]
        need = manifest["tolerances"][f"{a['format']}/{a['quant']}"]["min_invariance_cosine"]
        assert inv["min_cosine"] >= TOLERANCES[a["quant"]].min_invariance_cosine == inv["min_cosine_required"] == need
        assert inv["cases"] == sum(len(c["buckets"]) == 2 for c in golden["cases"])


@pytest.mark.integration
def test_verify_fails_on_a_golden_output_altered_at_one_bucket(bundle, tmp_path, capsys):
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(bundle, bad)
    golden = json.loads((bad / "golden.json").read_text(encoding="utf-8"))
    case = next(c for c in golden["cases"] if c["name"] == "plain")
    case["buckets"][1]["expected"][0] += 0.5  # seq128 only; seq32 keeps the true output
    (bad / "golden.json").write_text(json.dumps(golden), encoding="utf-8")
    _rehash(bad, "golden.json")
    assert main(["verify", str(bad), "--formats", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "fp32_seq128.onnx" in err and "fp32_seq32.onnx" not in err, err


@pytest.mark.integration
def test_verify_fails_when_one_buckets_artifact_drifts(bundle, tmp_path, capsys):
    """The seq128 fp32 ONNX artifact with one weight tensor nudged: its outputs no longer match seq32's."""
    import shutil

    import onnx
    from onnx import numpy_helper

    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    name = next(a["file"] for a in json.loads((bad / "manifest.json").read_text())["artifacts"]
                if a["quant"] == "fp32" and a["seq_len"] == 128)
    model = onnx.load(str(bad / name))
    init = max((i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2),
               key=lambda i: int(np.prod(i.dims)))
    w = numpy_helper.to_array(init)
    w = w + 0.2 * w.std() * np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype)
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(bad / name))
    _rehash(bad, name)
    assert main(["verify", str(bad), "--formats", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "bucket invariance" in err and name in err, err
