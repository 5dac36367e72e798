"""`pocketbert report`: a self-contained HTML page whose plots decode, and Markdown for a README."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from pocketbert.cli import main
from pocketbert.runtime_bench import flops, mobile
from pocketbert.runtime_bench.schema import validate_results
from pocketbert.runtime_bench.stats import summarize

CFG = {"hidden_size": 384, "num_hidden_layers": 3, "intermediate_size": 1536, "num_attention_heads": 12,
       "vocab_size": 30522, "task": "embedding"}


def _row(name, fmt, quant, seq, threads, p50, size, role="artifact", quality=None):
    samples = [p50 * f for f in (0.95, 0.98, 1.0, 1.02, 1.3)]
    row = {"name": name, "format": fmt, "backend": {"onnx": "onnxruntime", "pytorch": "eager"}.get(fmt, "litert"),
           "quant": quant, "seq_len": seq, "threads": threads, "role": role, "status": "ok", "size_bytes": size,
           "load_ms": 20.0, "first_inference_ms": 2 * p50, "peak_rss_delta_mb": size / 1e6 * 1.2, **summarize(samples),
           "gflops_per_inference": flops.encoder_work(CFG, seq).flops / 1e9, "peak_fraction": 0.2}
    if quality is not None:
        row["quality"] = {"sts_spearman": quality}
    return row


@pytest.fixture()
def results_file(tmp_path) -> Path:
    rows = []
    for seq in (32, 128):
        for t in (1, 2):
            s = seq / 128 / t ** 0.8
            rows += [_row(f"s3_litert_int8_seq{seq}.tflite", "tflite", "int8", seq, t, 3.0 * s, 17_000_000, quality=0.808),
                     _row(f"s3_onnxruntime_fp32_seq{seq}.onnx", "onnx", "fp32", seq, t, 7.0 * s, 69_000_000, quality=0.81),
                     _row("teacher_pytorch_fp32", "pytorch", "fp32", seq, t, 22.0 * s, 90_000_000, "baseline", 0.82),
                     _row("teacher_onnx_int8", "onnx", "int8", seq, t, 9.3 * s, 23_000_000, "baseline", 0.815)]
    rows.append({"name": "s3_xnnpack_int8_seq128.pte", "format": "executorch", "backend": "xnnpack", "quant": "int8",
                 "seq_len": 128, "threads": 1, "role": "artifact", "status": "failed", "error": "failed to load: bad file"})
    rows[0]["ops_top"] = [{"op": "FULLY_CONNECTED", "time_ms": 2.0, "share": 0.7, "count": 18}]
    rows[0]["ops_profile_note"] = "test profile"
    for r in rows:
        if r["role"] == "artifact" and r["status"] == "ok":
            r["speedup_vs"] = {"teacher_pytorch_fp32": 3.0, "teacher_onnx_int8": 1.3}
    est = mobile.estimate_rows("s3_litert_int8_seq128.tflite", "int8", 128, flops.encoder_work(CFG, 128))
    doc = {"schema_version": "1.0", "kind": "pocketbert-bench-results", "complete": True,
           "bundle": {"model_name": "s3 <student>"},
           "device": {"environment": "host", "cpu_model": "Test CPU", "isa": ["avx2"], "cores": 2, "pinning": "none"},
           "config": {"threads": [1, 2], "runs": 5, "warmup": 1, "seq_lens": [32, 128], "rounds": 5},
           "rows": rows, "peak": {"fp32_gflops": 100.0, "int8_gops": 400.0, "threads": 2, "method": "test",
                                  "per_thread": {"1": {"fp32_gflops": 60.0, "int8_gops": 250.0}}},
           "estimates": est, "notes": ["a note with <b>markup</b>"]}
    validate_results(doc)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    return path


def test_html_report_is_self_contained_and_its_plots_decode(results_file, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(results_file), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    titles = re.findall(r"<h3>([^<]+)</h3><img", page)
    assert titles == ["Latency against size", "Quality against latency", "Thread scaling"]
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 3
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        assert img.format == "PNG" and img.width > 300 and img.height > 200
    # nothing loaded from elsewhere
    assert not re.search(r"<(script|link)\b", page) and not re.search(r"src=['\"](?!data:)", page)
    # the page says where the numbers come from, escapes text, shows failures, estimates and sources
    assert "host CPU (not a phone)" in page and "Test CPU" in page
    assert "&lt;b&gt;markup&lt;/b&gt;" in page and "s3 &lt;student&gt;" in page
    assert "failed: failed to load: bad file" in page
    assert "estimate" in page and "Cortex-A55" in page and "Software Optimization Guide" in page
    assert "FULLY_CONNECTED 70%" in page


def test_markdown_report_with_plot_files(results_file, tmp_path):
    out = tmp_path / "BENCH.md"
    assert main(["report", str(results_file), "--format", "md", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# pocketbert benchmark report")
    assert "| s3_litert_int8_seq128.tflite | artifact | tflite | int8 | 128 | 1 | ok |" in text
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert len(links) == 3
    for link in links:
        Image.open(out.parent / link).load()


def test_report_missing_results_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "nope.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    assert not out.exists()


def test_report_refuses_a_file_that_is_not_results(tmp_path, capsys):
    bad = tmp_path / "manifest.json"
    bad.write_text('{"schema_version": "1.0", "artifacts": []}')
    out = tmp_path / "r.html"
    assert main(["report", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a pocketbert results file" in err
    assert not out.exists()


@pytest.mark.parametrize(("environment", "header", "where"), [
    ("emulation", "emulated mean ms", "EMULATED Arm core"),
    ("ios", "p50 ms", "iOS demo app"),
])
def test_emulated_and_ios_results_are_labelled(results_file, tmp_path, environment, header, where):
    doc = json.loads(results_file.read_text())
    doc["device"]["environment"] = environment
    validate_results(doc)
    path = tmp_path / f"{environment}.json"
    path.write_text(json.dumps(doc))
    assert main(["report", str(path), "--format", "md", "--out", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert f"| {header} |" in text and where in text


def _with_peer(results_file: Path, peer_quality: float) -> Path:
    """The fixture's run with a peer measured beside the teacher (quality on its fp32 row, as eval gives it)."""
    doc = json.loads(results_file.read_text())
    for seq in (32, 128):
        for t in (1, 2):
            s = seq / 128 / t ** 0.8
            doc["rows"] += [_row("peer_l3_pytorch_fp32", "pytorch", "fp32", seq, t, 12.0 * s, 69_000_000, "baseline",
                                 peer_quality),
                            _row("peer_l3_onnx_int8", "onnx", "int8", seq, t, 4.5 * s, 17_500_000, "baseline")]
    validate_results(doc)
    out = results_file.with_name(f"results_peer_{peer_quality}.json")
    out.write_text(json.dumps(doc))
    return out


def test_verdict_card_leads_the_report_and_names_what_to_ship(results_file, tmp_path):
    from pocketbert.runtime_bench.report import verdict

    beaten = json.loads(_with_peer(results_file, 0.79).read_text())
    card = verdict(beaten)
    assert (card["seq_len"], card["threads"]) == (128, 1)
    student = card["rows"][0]
    # the fastest artifact whose quality is within noise of the best artifact's (0.005 on this 0-1 scale):
    # the int8 .tflite (0.808 vs 0.81)
    assert student["row"] == "s3_litert_int8_seq128.tflite" and student["quality"] == 0.808
    models = [r["model"] for r in card["rows"]]
    assert models == ["student", "teacher", "peer_l3"]
    peer = card["rows"][2]
    assert peer["row"] == "peer_l3_onnx_int8" and peer["quality"] == 0.79 and peer["p50_ms"] > student["p50_ms"]
    assert card["sentence"].startswith("Ship the student (s3_litert_int8_seq128.tflite)")
    stronger = verdict(json.loads(_with_peer(results_file, 0.85).read_text()))
    assert stronger["sentence"].startswith("Ship peer_l3 where quality matters most")

    out = tmp_path / "report.html"
    assert main(["report", str(_with_peer(results_file, 0.79)), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.index("Verdict") < page.index("Measured on") < page.index("<h3>Results</h3>")


def test_quality_axis_spans_at_least_five_points():
    """Artifacts 0.35 points apart must not fill the plot: the quality axis spans at least 5 points."""
    from pocketbert.runtime_bench.report import quality_limits

    lo, hi = quality_limits([78.62, 78.97])
    assert hi - lo >= 5.0 and lo < 78.62 - 1 and hi > 78.97 + 1
    lo, hi = quality_limits([72.9, 81.4, 82.5])  # a wide spread keeps a point of margin on each side
    assert (lo, hi) == (71.9, 83.5)


@pytest.mark.integration
def test_report_renders_in_headless_chromium(results_file, tmp_path):
    """A real browser loads the page and decodes every plot (naturalWidth > 0), read through an iframe
    harness so the report itself stays free of scripts."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (`apt-get install chromium`; make test installs it)")
    report = tmp_path / "report.html"
    assert main(["report", str(_with_peer(results_file, 0.79)), "--out", str(report)]) == 0
    harness = tmp_path / "harness.html"
    harness.write_text(
        "<!doctype html><html><body><iframe id='r' src='report.html' width='1400' height='900'></iframe><script>"
        "function check() { const d = document.getElementById('r').contentDocument;"
        " if (!d || !d.URL.endsWith('report.html') || d.readyState !== 'complete' || [...d.images].some(i => !i.complete)) { setTimeout(check, 50); return; }"
        " document.body.dataset.title = d.title;"
        " document.body.dataset.plots = [...d.images].map(i => i.naturalWidth + 'x' + i.naturalHeight).join(' ');"
        " document.body.dataset.verdict = d.querySelector('.verdict h3') ? 'yes' : 'no'; }"
        "check();"
        "</script></body></html>", encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=10000", "--dump-dom", harness.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    plots = re.search(r'data-plots="([^"]*)"', dom)
    assert plots, dom[-2000:]
    sizes = [tuple(map(int, s.split("x"))) for s in plots.group(1).split()]
    assert len(sizes) == 3 and all(w > 0 and h > 0 for w, h in sizes), sizes
    assert 'data-title="pocketbert benchmark report"' in dom and 'data-verdict="yes"' in dom
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1400,2000", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120)
    img = Image.open(shot)
    img.load()
    assert img.width == 1400 and len(set(img.convert("L").getdata())) > 10  # not a blank page


def test_verdict_carries_the_held_out_probe(results_file, tmp_path):
    """Where the eval ran a held-out probe, the card shows its accuracy per model and the sentence names the
    student's and the teacher's: a similarity score alone cannot show that a student specialised."""
    from pocketbert.runtime_bench.report import verdict, verdict_table

    doc = json.loads(_with_peer(results_file, 0.79).read_text())
    for r in doc["rows"]:
        if r.get("quality"):
            r["quality"]["probe_accuracy"] = 82.5 if r["role"] == "artifact" else 83.1
    validate_results(doc)
    card = verdict(doc)
    assert [r["probe"] for r in card["rows"]] == [82.5, 83.1, 83.1]
    assert card["sentence"].endswith("student 82.50, teacher 83.10.")
    head, lines = verdict_table(card)
    assert head[3] == "probe accuracy" and lines[0][3] == "82.50"
    # without a probe the table keeps its columns
    assert "probe accuracy" not in verdict_table(verdict(json.loads(_with_peer(results_file, 0.79).read_text())))[0]


def test_verdict_breaks_ties_by_size_and_calls_a_tie_with_a_peer_a_tie(results_file):
    """Within noise on quality and within 10% on p50, the smaller artifact is the student; a student within
    noise of the best peer and faster than it is the one to ship."""
    from pocketbert.runtime_bench.report import verdict

    doc = json.loads(_with_peer(results_file, 0.79).read_text())
    smaller = dict(next(r for r in doc["rows"] if r["name"] == "s3_litert_int8_seq128.tflite" and r["threads"] == 1),
                   name="s3_litert_int4-mixed_seq128.tflite", quant="int4-mixed", size_bytes=11_000_000)
    smaller["latency_ms_p50"] *= 1.08
    doc["rows"].append(smaller)
    card = verdict(doc)
    assert card["rows"][0]["row"] == "s3_litert_int4-mixed_seq128.tflite"
    smaller["latency_ms_p50"] *= 1.05  # now 13% slower than the int8 one: speed decides again
    assert verdict(doc)["rows"][0]["row"] == "s3_litert_int8_seq128.tflite"

    tie = verdict(json.loads(_with_peer(results_file, 0.811).read_text()))  # the student 0.808: 0.003 below
    assert tie["sentence"].startswith("Ship the student (s3_litert_int8_seq128.tflite): it ties peer_l3")
    assert "0.81 against 0.81" in tie["sentence"]


def test_verdict_picks_on_the_p50_at_real_lengths_when_measured(results_file):
    """An app waits for the real-length p50: a dynamic-length artifact slower at seq 128 but faster on real
    text is the student, and the sentence gives its real-length speed-up over each reference."""
    from pocketbert.runtime_bench.report import verdict

    doc = json.loads(_with_peer(results_file, 0.79).read_text())
    dynamic = dict(next(r for r in doc["rows"] if r["name"] == "s3_litert_int8_seq128.tflite" and r["threads"] == 1),
                   name="s3_xnnpack_int8_seq128.pte", format="executorch", backend="xnnpack", status="ok")
    dynamic["latency_ms_p50"] *= 1.2  # slower at seq 128
    doc["rows"] = [r for r in doc["rows"] if r["name"] != dynamic["name"]] + [dynamic]
    assert verdict(doc)["rows"][0]["row"] == "s3_litert_int8_seq128.tflite"  # no real-length section: seq 128

    def real(name, fmt, quant, role, p50):
        return {"name": name, "format": fmt, "quant": quant, "role": role, "threads": 1, "status": "ok",
                "latency_ms_p50": p50, "latency_ms_p90": 2 * p50}

    doc["real_lengths"] = {"distribution": {"texts": 100, "tokens_p50": 15}, "rows": [
        real("tflite/int8", "tflite", "int8", "artifact", 2.9), real("executorch/int8", "executorch", "int8", "artifact", 0.5),
        real("onnx/fp32", "onnx", "fp32", "artifact", 1.5), real("teacher_onnx_int8", "onnx", "int8", "baseline", 2.5)]}
    card = verdict(doc)
    assert card["rows"][0]["row"] == "s3_xnnpack_int8_seq128.pte" and card["rows"][0]["real_p50_ms"] == 0.5
    assert "there it runs 5.0x faster than teacher_onnx_int8" in card["sentence"]


def test_verdict_skips_gate_failures(results_file):
    """The card's student is never an artifact that failed the geometry gate."""
    from pocketbert.runtime_bench.report import verdict

    doc = json.loads(_with_peer(results_file, 0.79).read_text())
    arts = [r for r in doc["rows"] if r["role"] == "artifact" and r["threads"] == 1 and r["seq_len"] == 128]
    chosen = verdict(doc)["rows"][0]["row"]
    first = next(r for r in arts if r["name"] == chosen)
    first["gate"] = {"status": "failed", "reasons": ["top-10 overlap 0.88 < 0.9"]}
    assert verdict(doc)["rows"][0]["row"] != chosen


def test_verdict_shows_the_suite_and_the_real_length_p50_together(results_file):
    """The card decides on the dev suite's mean and shows its four numbers; beside its seq-128 p50 it quotes the
    p50 at real lengths of the same format/quant (and of each reference's measured row)."""
    from pocketbert.runtime_bench.report import SUITE_KEYS, verdict, verdict_table

    doc = json.loads(_with_peer(results_file, 0.79).read_text())
    for r in doc["rows"]:
        if r.get("quality"):
            base = 80.0 if r["role"] == "artifact" else 79.0
            r["quality"] = {**{f"suite_{k}_x100": base + i for i, k in enumerate(SUITE_KEYS)}, "suite_mean_x100": base + 1.5}

    def text_row(name, fmt, quant, role, p50):
        return {"name": name, "format": fmt, "quant": quant, "role": role, "threads": 1, "status": "ok",
                "shape": "buckets", "texts": 10, "latency_ms_p50": p50, "latency_ms_p90": 2 * p50,
                "cpu_ms_p50": p50, "cpu_ms_p90": 2 * p50,
                "per_bucket": {"32": {"texts": 10, "share": 1.0, "latency_ms_p50": p50, "latency_ms_p90": 2 * p50}}}

    doc["real_lengths"] = {"source": {"files": ["dev.tsv"], "texts": 10, "sample": 10, "seed": 0},
                           "distribution": {"texts": 10, "tokens_p50": 14, "tokens_p90": 30,
                                            "share_by_bucket": {"32": 0.8, "128": 0.2}},
                           "threads": 1, "rounds": 2,
                           "rows": [text_row("tflite/int8", "tflite", "int8", "artifact", 0.9),
                                    text_row("teacher_onnx_int8", "onnx", "int8", "baseline", 3.1)]}
    validate_results(doc)
    card = verdict(doc)
    assert card["metric"] == "suite_mean_x100" and card["rows"][0]["row"] == "s3_litert_int8_seq128.tflite"
    head, lines = verdict_table(card)
    assert head[2:7] == [*SUITE_KEYS, "suite_mean_x100"]
    assert head[-3:] == ["p50 ms (seq 128)", "p50 ms (real lengths)", "student x faster"]
    by_model = {line[0]: line for line in lines}
    assert by_model["student"][2:7] == ["80.00", "81.00", "82.00", "83.00", "81.50"]
    assert by_model["student"][-2] == "0.90" and by_model["teacher"][-2] == "3.10" and by_model["peer_l3"][-2] == "-"
    assert "At real lengths (10 texts, median 14 tokens" in card["sentence"] and "p50 is 0.90 ms (p90 1.80)" in card["sentence"]
