"""Export: one tiny bundle (all four formats, fp32 + int8) shared by the tests, verified in real runtimes."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketbert.cli import main

pytestmark = pytest.mark.integration

FORMATS = ("executorch", "tflite", "coreml", "onnx")
SEQ = 32


def for_tokens(bundle, fmt: str, quant: str, n_tokens: int) -> dict:
    """The artifact of (format, quant) whose bucket is the smallest that fits `n_tokens` tokens (as the apps pick)."""
    from pocketbert.bundle.manifest import bucket_for

    buckets = sorted({a["seq_len"] for a in bundle.artifacts if a["format"] == fmt and a["quant"] == quant})
    return bundle.find(fmt, quant, bucket_for(buckets, n_tokens))



@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_student) -> Path:
    """The tiny student exported to every format in fp32 and int8 at one bucket (about a minute on 2 cores)."""
    out = tmp_path_factory.mktemp("bundles") / "tiny_bundle"
    assert main(["export", str(tiny_student), "--out", str(out), "--seq-len", str(SEQ), "--name", "tiny"]) == 0
    return out


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# The bundle


def test_bundle_matches_schema_and_contract(tiny_bundle, tiny_student):
    import jsonschema

    from pocketbert.bundle.manifest import load_bundle, load_schema
    from pocketbert.bundle.naming import artifact_name
    from pocketbert.bundle.parity import TOLERANCES

    m = _manifest(tiny_bundle)
    jsonschema.validate(m, load_schema())
    assert m["schema_version"] == "1.3"
    assert m["model"]["task"] == "embedding" and m["model"]["num_parameters"] > 0
    assert m["model"]["parent"]["path"] == str(tiny_student.resolve())
    assert m["seq_lens"] == [SEQ]
    assert {i["name"]: i["shape"] for i in m["inputs"]} == {"input_ids": {"32": [1, 32]}, "attention_mask": {"32": [1, 32]}}
    assert all(i["dtype"] == "int32" for i in m["inputs"])
    assert m["outputs"][0]["name"] == "embedding" and m["outputs"][0]["shape"] == [1, 32]
    assert m["tokenizer"]["special_tokens"] == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert m["tokenizer"]["max_length"] == SEQ
    for name in ("manifest.json", "vocab.txt", "tokenizer.json", "golden.json"):
        assert (tiny_bundle / name).is_file()
    assert (tiny_bundle / "vocab.txt").read_bytes() == (tiny_student / "vocab.txt").read_bytes()

    arts = {(a["format"], a["quant"]): a for a in m["artifacts"]}
    assert set(arts) == {(f, q) for f in FORMATS for q in ("fp32", "int8")}
    for (fmt, quant), a in arts.items():
        assert a["file"] == artifact_name("tiny", fmt, quant, SEQ)
        assert (tiny_bundle / a["file"]).exists()
        assert a["size_bytes"] > 0 and a["export_seconds"] > 0 and a["tool_versions"]
        assert m["tolerances"][f"{fmt}/{quant}"] == TOLERANCES[quant].to_dict()  # every threshold a reader applies
        if fmt == "coreml" and platform.system() != "Darwin":
            assert a["parity"]["status"] == "skipped" and "macOS" in a["parity"]["reason"]
            assert a["parity"]["spec_check"]["status"] == "passed"
        else:
            tol = m["tolerances"][f"{fmt}/{quant}"]
            assert a["parity"]["status"] == "passed", a
            assert a["parity"]["min_cosine"] >= tol["min_cosine"]
            assert a["parity"]["max_abs_diff"] <= tol["max_abs_diff"]
            if quant == "fp32":
                assert a["parity"]["max_abs_diff"] < 1e-4
    # int8 is really smaller (tiny models are dominated by graph overhead, so only "smaller" here).
    for fmt in FORMATS:
        assert arts[(fmt, "int8")]["size_bytes"] < arts[(fmt, "fp32")]["size_bytes"], fmt
    assert "compute precision" in arts[("coreml", "fp32")]["notes"]["compute_precision"].replace("_", " ")
    assert arts[("coreml", "int8")]["notes"]["weight_dtypes"].get("int8", 0) > 0
    # XNNPACK takes most of the graph, and the share is recorded.
    for q in ("fp32", "int8"):
        notes = arts[("executorch", q)]["notes"]
        assert 0.5 < notes["xnnpack_share"] <= 1.0
        assert notes["xnnpack_delegated_nodes"] <= notes["total_op_nodes"]
    load_bundle(tiny_bundle).check_all_sha256()


def test_golden_cases_are_varied_and_exact(tiny_bundle, tiny_student):
    from pocketbert.pipeline.tokenizer import Tokenizer

    golden = json.loads((tiny_bundle / "golden.json").read_text())
    cases = {c["name"]: c for c in golden["cases"]}
    assert len(cases) >= 20
    for name in ("punctuation", "accents", "cjk", "emoji", "very_long", "empty", "whitespace", "control_chars",
                 "long_word", "url_email", "numbers", "mixed_case"):
        assert name in cases
    tok = Tokenizer(tiny_student)
    for c in golden["cases"]:
        ids, mask = tok([c["text"]], max_length=SEQ, pad_to=SEQ)
        assert c["ids"] == ids[0][: int(mask.sum())].tolist()
        assert c["input_ids"] == ids[0].tolist() and c["attention_mask"] == mask[0].tolist()
        assert len(c["expected"]) == 32 and c["seq_len"] == SEQ
    assert len(cases["very_long"]["ids"]) == SEQ and cases["very_long"]["ids"][-1] == 3  # truncated, [SEP] kept
    assert cases["empty"]["ids"] == [2, 3]


def test_every_artifact_matches_eager_in_its_runtime(tiny_bundle, tiny_student):
    """Independent of the export's own check: run each artifact on a fresh input and compare with eager."""
    from pocketbert.bundle.manifest import load_bundle
    from pocketbert.bundle.parity import cosine
    from pocketbert.export import formats
    from pocketbert.export.wrapper import TaskModule
    from pocketbert.pipeline.checkpoint import load_checkpoint
    from pocketbert.pipeline.tokenizer import Tokenizer

    bundle = load_bundle(tiny_bundle)
    module = TaskModule(load_checkpoint(tiny_student).model)
    ids, mask = Tokenizer(tiny_student)(["the quick brown fox jumps over the lazy dog"], max_length=SEQ, pad_to=SEQ)
    ids, mask = ids.astype(np.int32), mask.astype(np.int32)
    with torch.inference_mode():
        ref = module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    ran = 0
    for a in bundle.artifacts:
        mod = formats.module(a["format"])
        if hasattr(mod, "unavailable_reason") and mod.unavailable_reason():
            continue
        out = mod.load(bundle.artifact_path(a))(ids, mask)
        assert out.shape == ref.shape
        assert cosine(out, ref) >= (0.9999 if a["quant"] == "fp32" else 0.99), a["file"]
        ran += 1
    assert ran >= 6


def test_artifacts_carry_the_manifest_io_names(tiny_bundle):
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from pocketbert.bundle.manifest import load_bundle

    bundle = load_bundle(tiny_bundle)
    for q in ("fp32", "int8"):
        sess = ort.InferenceSession(str(bundle.artifact_path(bundle.find("onnx", q))))
        assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
        assert [o.name for o in sess.get_outputs()] == ["embedding"]
        assert {i.type for i in sess.get_inputs()} == {"tensor(int32)"}
        sig = Interpreter(model_path=str(bundle.artifact_path(bundle.find("tflite", q)))).get_signature_list()
        assert sorted(sig["serving_default"]["inputs"]) == ["attention_mask", "input_ids"]
        assert sig["serving_default"]["outputs"] == ["embedding"]


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts only on macOS; Linux checks the spec")
def test_coreml_predicts_on_macos(tiny_bundle):
    from pocketbert.bundle.manifest import load_bundle
    from pocketbert.bundle.parity import case_inputs, cosine
    from pocketbert.export import coreml

    bundle = load_bundle(tiny_bundle)
    case = bundle.golden()["cases"][0]
    for q in ("fp32", "int8"):
        out = coreml.load(bundle.artifact_path(bundle.find("coreml", q)))(*case_inputs(case, SEQ))
        assert cosine(out, np.asarray(case["expected"])) >= 0.99


def test_verify_passes_on_a_good_bundle(tiny_bundle, capsys):
    assert main(["verify", str(tiny_bundle), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 8
    assert {r["status"] for r in rows if r["format"] != "coreml"} == {"passed"}


def test_verify_catches_a_flipped_byte(tiny_bundle, tmp_path, capsys):
    bundle = _copy(tiny_bundle, tmp_path)
    target = bundle / _manifest(bundle)["artifacts"][0]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert main(["verify", str(bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sha256" in err[0] and target.name in err[0]


def test_manifest_reader_does_not_import_torch():
    code = ("import sys; import pocketbert.bundle.manifest as m; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(m.bucket_for([32, 128], 40))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "128"


def test_bucket_lookup(tiny_bundle):
    from pocketbert.bundle.manifest import bucket_for, load_bundle
    from pocketbert.errors import PocketBertError

    assert bucket_for([32, 128], 1) == 32 and bucket_for([32, 128], 32) == 32
    assert bucket_for([32, 128], 33) == 128 and bucket_for([128, 32], 500) == 128
    bundle = load_bundle(tiny_bundle)
    assert for_tokens(bundle, "onnx", "int8", 5)["seq_len"] == SEQ
    with pytest.raises(PocketBertError, match="no artifact tflite/fp16"):
        bundle.find("tflite", "fp16")


# ---------------------------------------------------------------------------------------------
# Buckets, other tasks, fp16


def test_bucketed_export(tiny_student, tmp_path, capsys):
    from pocketbert.bundle.manifest import load_bundle

    out = tmp_path / "b"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "onnx", "--quant", "fp32,int8",
                 "--seq-len", "32,16", "--name", "tiny"]) == 0
    # the terminal's header line is short; the full configuration is in the DEBUG log
    err = capsys.readouterr().err.splitlines()
    assert "export: 1 format x 2 quants x 2 lengths -> b" in err and not any("formats=" in line for line in err)
    bundle = load_bundle(out)
    m = bundle.manifest
    assert m["seq_lens"] == [16, 32]
    assert m["inputs"][0]["shape"] == {"16": [1, 16], "32": [1, 32]}
    assert sorted((a["quant"], a["seq_len"]) for a in m["artifacts"]) == [("fp32", 16), ("fp32", 32), ("int8", 16), ("int8", 32)]
    golden = bundle.golden()
    assert golden["seq_lens"] == [16, 32]
    for c in golden["cases"]:
        assert c["seq_len"] == (16 if len(c["ids"]) <= 16 else 32)
        assert len(c["input_ids"]) == c["seq_len"]
    assert {c["seq_len"] for c in golden["cases"]} == {16, 32}
    assert for_tokens(bundle, "onnx", "fp32", 10)["file"] == "tiny_onnxruntime_fp32_seq16.onnx"
    assert for_tokens(bundle, "onnx", "fp32", 17)["file"] == "tiny_onnxruntime_fp32_seq32.onnx"
    assert all(a["parity"]["status"] == "passed" for a in m["artifacts"])


def test_tflite_fp16_mode(tiny_student, tmp_path):
    out = tmp_path / "b"
    assert main(["export", str(tiny_student), "--out", str(out), "--formats", "tflite", "--quant", "fp16",
                 "--seq-len", "16"]) == 0
    (a,) = _manifest(out)["artifacts"]
    assert a["quant"] == "fp16" and a["parity"]["status"] == "passed"
    assert a["notes"]["ops"].get("DEQUANTIZE", 0) > 0  # fp16 weights, dequantized to fp32 compute


def test_mlm_export_and_verify(tiny_bert_mlm, tmp_path, capsys):
    out = tmp_path / "mlm"
    assert main(["export", str(tiny_bert_mlm), "--out", str(out), "--formats", "onnx", "--quant", "fp32",
                 "--seq-len", "16"]) == 0
    m = _manifest(out)
    assert m["model"]["task"] == "mlm"
    assert m["outputs"][0]["name"] == "logits" and m["outputs"][0]["shape"] == {"16": [1, 16, m["model"]["config"]["vocab_size"]]}
    golden = json.loads((out / "golden.json").read_text())
    assert "expected_argmax" in golden["cases"][0] and "expected" not in golden["cases"][0]
    capsys.readouterr()
    assert main(["verify", str(out), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["status"] == "passed" and row["argmax_agreement"] >= 0.99


def test_mlm_checkpoint_exports_as_embedding(tiny_bert_mlm, tmp_path):
    out = tmp_path / "emb"
    assert main(["export", str(tiny_bert_mlm), "--out", str(out), "--formats", "onnx", "--quant", "fp32",
                 "--seq-len", "16", "--task", "embedding"]) == 0
    assert _manifest(out)["outputs"][0]["name"] == "embedding"


def test_classification_export_lists_labels(tmp_path):
    from helpers.checkpoints import make_hf_checkpoint

    ckpt = make_hf_checkpoint(tmp_path / "cls", "bert", head="classification", num_labels=3,
                              id2label={0: "neg", 1: "neu", 2: "pos"})
    out = tmp_path / "b"
    assert main(["export", str(ckpt), "--out", str(out), "--formats", "onnx,tflite", "--quant", "fp32,int8",
                 "--seq-len", "16"]) == 0
    m = _manifest(out)
    assert m["model"]["task"] == "classification" and m["labels"] == ["neg", "neu", "pos"]
    assert m["outputs"][0]["name"] == "logits" and m["outputs"][0]["shape"] == [1, 3]
    assert all(a["parity"]["status"] == "passed" for a in m["artifacts"])
    assert len(json.loads((out / "golden.json").read_text())["cases"][0]["expected"]) == 3


# ---------------------------------------------------------------------------------------------
# Task parity across formats


def test_eval_bundle_rows_per_artifact(tiny_bundle, data_dir, tmp_path, capsys):
    sts = tmp_path / "sts.tsv"
    sts.write_text("".join((data_dir / "stsb" / "dev.tsv").read_text(encoding="utf-8").splitlines(True)[:60]),
                   encoding="utf-8")
    assert main(["eval", str(tiny_bundle), "--sts", str(sts), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {(r["format"], r["quant"]): r for r in result["rows"]}
    assert result["pairs"] == 60
    assert rows[("pytorch", "fp32")]["status"] == "ok"
    ref = rows[("pytorch", "fp32")]["spearman"]
    for fmt in ("executorch", "tflite", "onnx"):
        assert abs(rows[(fmt, "fp32")]["spearman"] - ref) < 0.05, fmt
        assert rows[(fmt, "int8")]["status"] == "ok"
    if platform.system() != "Darwin":
        assert rows[("coreml", "fp32")]["status"] == "skipped"
