"""`pocketbert bench` on the host: real runtimes on a tiny bundle, schema-valid results, failures recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pocketbert.cli import main
from pocketbert.runtime_bench.schema import read_results, validate_results

from helpers import default_sigint
from helpers.bundles import SEQ_LENS, make_tiny_bundle
from helpers.checkpoints import make_hf_checkpoint

pytestmark = pytest.mark.integration

@pytest.fixture(scope="session")
def bench_teacher(tmp_path_factory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("bench_teacher"), "bert")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, bench_teacher) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bench") / "bundle", bench_teacher)


@pytest.fixture(scope="session")
def host_results(tmp_path_factory, tiny_bundle, bench_teacher) -> Path:
    """One real bench run shared by the tests below: 1 thread, both buckets, teacher baselines."""
    out = tmp_path_factory.mktemp("results") / "results.json"
    cache = tmp_path_factory.mktemp("cache")
    # what `pocketbert eval BUNDLE --json` and `pocketbert eval TEACHER --json` print (numbers made up)
    bundle_eval = out.with_name("eval_bundle.json")
    bundle_eval.write_text(json.dumps({"bundle": str(tiny_bundle), "pairs": 10, "rows": [
        {"format": "pytorch", "quant": "fp32", "spearman": 80.0}, {"format": "onnx", "quant": "fp32", "spearman": 80.0},
        {"format": "onnx", "quant": "int8", "spearman": 79.5}]}))
    teacher_eval = out.with_name("eval_teacher.json")
    teacher_eval.write_text(json.dumps({"spearman": 82.0, "pairs": 10, "checkpoint": str(bench_teacher)}))
    code = main(["bench", str(tiny_bundle), "--threads", "1", "--runs", "5", "--warmup", "1", "--rounds", "5",
                 "--baseline", "teacher", "--teacher", str(bench_teacher), "--cache", str(cache),
                 "--quality", str(bundle_eval), str(teacher_eval), "--out", str(out)])
    assert code == 0
    return out


def _rows(doc, **match):
    return [r for r in doc["rows"] if all(r.get(k) == v for k, v in match.items())]


def test_host_bench_measures_every_artifact_and_baseline(host_results, tiny_bundle):
    doc = read_results(host_results)  # schema-validated
    assert doc["complete"] is True
    assert doc["device"]["environment"] == "host" and doc["device"]["cpu_model"]
    assert doc["config"] == {**doc["config"], "threads": [1], "runs": 5, "warmup": 1, "seq_lens": SEQ_LENS}
    names = {r["name"] for r in doc["rows"]}
    for n in SEQ_LENS:
        assert {f"tiny_onnxruntime_fp32_seq{n}.onnx", f"tiny_onnxruntime_int8_seq{n}.onnx"} <= names
        for base in ("teacher_pytorch_fp32", "teacher_onnx_fp32", "teacher_onnx_int8"):
            (row,) = _rows(doc, name=base, seq_len=n)
            assert row["role"] == "baseline" and row["status"] == "ok"
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    sizes = {a["file"]: a["size_bytes"] for a in manifest["artifacts"]}
    for row in _rows(doc, status="ok"):
        assert row["runs"] == 5
        assert row["latency_ms_min"] <= row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["latency_ms_min"] <= row["latency_ms_trimmed_mean"] <= row["latency_ms_max"]
        assert row["load_ms"] > 0 and row["first_inference_ms"] > 0 and row["peak_rss_delta_mb"] >= 0
        assert row["gflops_per_inference"] > 0 and row["achieved_gflops"] > 0 and row["peak_fraction"] > 0
        if row["role"] == "artifact":
            assert row["size_bytes"] == sizes[row["file"]]
            # pairwise speedups against every baseline of the same group
            assert set(row["speedup_vs"]) >= {"teacher_pytorch_fp32", "teacher_onnx_fp32", "teacher_onnx_int8"}
            assert all(v > 0 for v in row["speedup_vs"].values())


def test_artifact_that_fails_to_load_is_a_failed_row_and_the_others_run(host_results):
    doc = read_results(host_results)
    for n in SEQ_LENS:
        (bad,) = _rows(doc, name=f"tiny_litert_int8_seq{n}.tflite")
        assert bad["status"] == "failed" and "failed to load" in bad["error"] and "\n" not in bad["error"]
        assert "latency_ms_p50" not in bad
        assert all(r["status"] == "ok" for r in _rows(doc, seq_len=n) if r is not bad)


def test_peak_estimates_and_profiles(host_results):
    doc = read_results(host_results)
    assert doc["peak"]["fp32_gflops"] > 0 and doc["peak"]["per_thread"]["1"]["fp32_gflops"] > 0
    cores = {e["core"] for e in doc["estimates"]}
    assert {"Cortex-A55", "Cortex-A78", "Cortex-X3"} <= cores and any("Apple" in c for c in cores)
    for e in doc["estimates"]:
        assert e["label"] == "estimate" and e["sources"] and e["lower_bound_ms"] > 0
    # int8 weights are a quarter of the fp32 bytes, so the memory-bound estimate can only go down
    by = {(e["name"], e["core"]): e for e in doc["estimates"]}
    fp32 = by[("tiny_onnxruntime_fp32_seq32.onnx", "Cortex-A55")]
    int8 = by[("tiny_onnxruntime_int8_seq32.onnx", "Cortex-A55")]
    assert int8["weight_bytes"] * 4 == fp32["weight_bytes"] and int8["lower_bound_ms"] <= fp32["lower_bound_ms"]
    (onnx_row,) = _rows(doc, name="tiny_onnxruntime_fp32_seq32.onnx")
    ops = onnx_row["ops_top"]
    assert ops and ops[0]["share"] >= ops[-1]["share"] and sum(o["share"] for o in ops) <= 1.0 + 1e-9
    assert "ONNX Runtime profiler" in onnx_row["ops_profile_note"]


def _assert_fails(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    return err


def test_missing_bundle_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "r.json"
    _assert_fails(capsys, ["bench", str(tmp_path / "nope"), "--out", str(out)], "does not exist")
    assert not out.exists()


def test_bad_threads_is_one_line_exit_2(tmp_path, capsys, tiny_bundle):
    out = tmp_path / "r.json"
    _assert_fails(capsys, ["bench", str(tiny_bundle), "--threads", "0", "--out", str(out)], "--threads")
    assert not out.exists()


def test_seq_len_not_in_bundle_is_one_line_exit_2(tmp_path, capsys, tiny_bundle):
    out = tmp_path / "r.json"
    _assert_fails(capsys, ["bench", str(tiny_bundle), "--seq-len", "64", "--out", str(out)], "not in the bundle")
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--rounds", "0"], "--rounds 0: give a number from 1 to --runs (50)"),
    (["--runs", "3", "--rounds", "5"], "--rounds 5: give a number from 1 to --runs (3)"),
    (["--timeout", "0"], "--timeout 0.0: give the seconds to wait for the phone"),
    (["--binary", "benchmark_model"], "--binary runs on a phone: add --device adb"),
    (["--device", "qemu", "--baseline", "teacher"], "--baseline and --peer are measured on this host"),
    (["--device", "adb", "--peer", "paraphrase-minilm-l3"], "--baseline and --peer are measured on this host"),
    (["--runs", "0", "--peer", "paraphrase-minilm-l3"], "--runs 0: give at least 1"),
    (["--text-sample", "-1"], "--text-sample -1: give 0 (no real-length latency) or more"),
    (["--texts", "/nonexistent/texts.txt"], "--texts /nonexistent/texts.txt: no such file"),
    (["--compare", "old=/nonexistent/bundle"], "--compare old=/nonexistent/bundle: no such bundle folder"),
    (["--compare", "a=x", "--compare", "a=y"], "--compare labels ['a', 'a'] repeat"),
    (["--device", "qemu", "--compare", "/tmp"], "--compare and --texts are measured on this host"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, capsys, tiny_bundle, monkeypatch, args, needle):
    """One line naming the option, before a peer or teacher is resolved (a named peer is imported the first time)."""
    import pocketbert.build

    def refuse(*a, **k):
        raise AssertionError("bench resolved its references before it checked every option")

    monkeypatch.setattr(pocketbert.build, "references", refuse)
    out = tmp_path / "r.json"
    _assert_fails(capsys, ["bench", str(tiny_bundle), *args, "--out", str(out)], needle)
    assert not out.exists()


def test_out_that_is_not_a_results_file_is_refused(tmp_path, capsys, tiny_bundle):
    out = tmp_path / "notes.json"
    out.write_text('{"mine": true}')
    _assert_fails(capsys, ["bench", str(tiny_bundle), "--out", str(out)], "not a pocketbert results file")
    assert out.read_text() == '{"mine": true}'


def test_every_written_results_file_is_schema_valid(host_results):
    validate_results(json.loads(host_results.read_text()))


def test_quality_is_attached_and_the_report_plots_it(host_results, tmp_path):
    from PIL import Image

    doc = read_results(host_results)
    (int8,) = _rows(doc, name="tiny_onnxruntime_int8_seq32.onnx")
    assert int8["quality"]["sts_spearman_x100"] == 79.5
    (eager,) = _rows(doc, name="teacher_pytorch_fp32", seq_len=32)
    assert eager["quality"]["sts_spearman_x100"] == 82.0
    (teacher_int8,) = _rows(doc, name="teacher_onnx_int8", seq_len=32)
    assert "quality" not in teacher_int8  # not measured: not made up
    out = tmp_path / "report.html"
    assert main(["report", str(host_results), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Quality against latency" in page and "Latency against size" in page
    import base64
    import io
    import re

    for b64 in re.findall(r"base64,([A-Za-z0-9+/=]+)", page):
        Image.open(io.BytesIO(base64.b64decode(b64))).load()


def test_interrupted_run_keeps_what_it_measured(tiny_bundle, tmp_path):
    """Ctrl-C after the first group: the results file is valid, marked incomplete, and holds that group."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "pocketbert", "bench", str(tiny_bundle), "--threads", "1,2",
                             "--runs", "5", "--warmup", "1", "--no-profile", "--formats", "onnx", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONWARNINGS="ignore"),
                            preexec_fn=default_sigint)
    doc = None
    while proc.poll() is None:
        if out.is_file():
            doc = json.loads(out.read_text())
            if doc["rows"]:
                break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-500:]
    doc = read_results(out)  # still schema-valid
    assert doc["complete"] is False
    assert doc["rows"] and all(r["status"] == "ok" for r in doc["rows"])
    assert len(doc["rows"]) < 2 * 2 * len(SEQ_LENS)  # not everything was measured


def test_peers_are_measured_in_the_same_run(tmp_path, tiny_bundle, bench_teacher, capsys):
    """`--peer MODEL` (repeatable) runs a public model the same way as the teacher, interleaved, and the
    artifacts get speed-ups against it; the rows validate in the results schema."""
    peer = make_hf_checkpoint(tmp_path / "peer", "bert")
    out = tmp_path / "results.json"
    assert main(["bench", str(tiny_bundle), "--threads", "1", "--seq-len", "16", "--runs", "3", "--warmup", "1",
                 "--formats", "onnx", "--no-profile", "--peer", str(peer), "--cache", str(tmp_path / "cache"),
                 "--out", str(out)]) == 0
    doc = read_results(out)  # schema-validated
    prefix = f"peer_{peer.name}"
    for tail in ("pytorch_fp32", "onnx_fp32", "onnx_int8"):
        (row,) = _rows(doc, name=f"{prefix}_{tail}")
        assert row["role"] == "baseline" and row["status"] == "ok"
    assert not _rows(doc, name="teacher_onnx_int8")  # only what was asked for
    for row in _rows(doc, role="artifact", status="ok"):
        assert row["speedup_vs"][f"{prefix}_onnx_int8"] > 0
    assert f"vs {prefix}_onnx_int8" in capsys.readouterr().out


@pytest.mark.parametrize("peer, words", [("/nope/peer", "does not exist"), ("NOT_A_MODEL", "neither a folder nor an ONNX")])
def test_bad_peer_is_one_line(tmp_path, tiny_bundle, capsys, peer, words):
    if peer == "NOT_A_MODEL":  # a file that is neither a model folder nor an .onnx encoder
        peer = str(tmp_path / "notes.txt")
        Path(peer).write_text("not a model\n")
    assert main(["bench", str(tiny_bundle), "--peer", peer, "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "r.json").exists()
