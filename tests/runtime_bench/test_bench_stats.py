"""Percentile, trimmed-mean and paired-ratio math, FLOPs, and the results schema itself."""

from __future__ import annotations

import numpy as np
import pytest

from pocketbert.errors import PocketBertError
from pocketbert.runtime_bench import flops, mobile
from pocketbert.runtime_bench.schema import load_schema, validate_results
from pocketbert.runtime_bench.stats import paired_speedup, percentile, summarize, trimmed_mean


@pytest.mark.parametrize("q", [0, 10, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(q):
    xs = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.5]
    assert percentile(xs, q) == pytest.approx(np.percentile(xs, q))


def test_percentile_small_cases():
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_trimmed_mean_drops_the_tails():
    xs = list(range(1, 11)) + [1000.0]  # one outlier
    # p10 = 2, p90 = 10: keeps 2..10
    assert trimmed_mean(xs) == pytest.approx(sum(range(2, 11)) / 9)
    assert trimmed_mean([4.0, 4.0, 4.0]) == 4.0
    assert trimmed_mean([1.0, 100.0]) == 50.5  # the 10-90% band [10.9, 90.1] holds no sample: the median


def test_summarize_names_carry_units():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["runs"] == 5 and s["latency_ms_p50"] == 3.0 and s["latency_ms_max"] == 100.0
    assert all(k == "runs" or k.startswith("latency_ms_") for k in s)


def test_paired_speedup_is_immune_to_drift():
    # The machine slows down 3x between rounds; B is always 2x faster than A in the same round.
    a_rounds = [[10.0, 10.0], [30.0, 30.0], [20.0, 20.0]]
    b_rounds = [[5.0, 5.0], [15.0, 15.0], [10.0, 10.0]]
    assert paired_speedup(a_rounds, b_rounds) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        paired_speedup([], [])


def test_flops_of_minilm_config():
    cfg = {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536, "num_attention_heads": 12,
           "vocab_size": 30522, "task": "embedding"}
    w = flops.encoder_work(cfg, 128)
    # 6 layers x (4*384^2 + 2*384*1536) weights = 10.6 M; 2 FLOPs per weight per token
    assert w.linear_params == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert w.linear_flops == 2 * 128 * w.linear_params
    assert w.attention_flops == 6 * 4 * 128 * 128 * 384
    assert 2.8e9 < w.flops < 3.0e9
    assert w.weight_bytes("int8") * 4 == w.weight_bytes("fp32")
    (a55,) = [e for e in mobile.estimate_rows("m", "fp32", 128, w) if e["core"] == "Cortex-A55"]
    assert a55["label"] == "estimate" and a55["bound"] == "compute"
    assert a55["lower_bound_ms"] == pytest.approx(w.flops / 14.4e9 * 1e3)


def _doc(**row_overrides):
    row = {"name": "a.onnx", "format": "onnx", "backend": "onnxruntime", "quant": "int8", "seq_len": 32, "threads": 1,
           "role": "artifact", "status": "ok", "latency_ms_p50": 1.0, "latency_ms_p90": 1.1, "latency_ms_p99": 1.2,
           "latency_ms_trimmed_mean": 1.0}
    row.update(row_overrides)
    return {"schema_version": "1.0", "kind": "pocketbert-bench-results", "device": {"environment": "host"},
            "config": {"threads": [1], "runs": 5, "warmup": 1, "seq_lens": [32]}, "rows": [row]}


def test_schema_accepts_a_minimal_document():
    validate_results(_doc())
    validate_results(_doc(status="failed", error="could not load"))


@pytest.mark.parametrize("bad, needle", [
    ({"latency": 3.0}, "Additional properties"),  # a metric without its unit is refused
    ({"status": "failed"}, "'error' is a required property"),
    ({"role": "teacher"}, "is not one of"),
])
def test_schema_refuses_bad_rows(bad, needle):
    doc = _doc(**bad)
    if "latency" in bad:
        doc["rows"][0]["latency"] = 3.0
    with pytest.raises(PocketBertError, match=needle):
        validate_results(doc)


def test_schema_ok_row_needs_latency():
    doc = _doc()
    del doc["rows"][0]["latency_ms_p50"]
    with pytest.raises(PocketBertError):
        validate_results(doc)
    assert load_schema()["properties"]["kind"]["const"] == "pocketbert-bench-results"


def test_schema_refuses_unknown_major_version():
    with pytest.raises(PocketBertError, match="not supported"):
        validate_results({**_doc(), "schema_version": "2.0"})
