"""Latency at real lengths: texts read and tokenized as the apps do, each format/quant called through the
bundle's bucket choice (padded) or at the text's own length (dynamic-length artifacts), on a tiny bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pocketbert.bundle.manifest import Bundle, bucket_for, input_length, load_bundle
from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.runtime_bench import lengths
from pocketbert.runtime_bench.report import real_length_table, verdict, verdict_table
from pocketbert.runtime_bench.schema import read_results

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tiny_bundle"


# ---------------------------------------------------------------- reading and tokenizing (unit)

def test_sentences_of_every_dev_suite_layout(tmp_path):
    stsb = tmp_path / "dev.tsv"  # GLUE STS-B: no header, the pair in columns 7 and 8
    stsb.write_text("0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA man plays.\tA man is playing.\t5.0\n")
    sick = tmp_path / "test.tsv"
    sick.write_text("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n1\tA dog runs.\tA cat sits.\t3\tN\n")
    sst2 = tmp_path / "sst2.tsv"
    sst2.write_text("sentence\tlabel\nthe movie \t1\n")
    agnews = tmp_path / "agnews.csv"
    agnews.write_text('text,label\n"Stocks fell, again.",Business\n')
    plain = tmp_path / "texts.txt"
    plain.write_text("one line\n\n  another line  \n")
    got = lengths.read_sentences([stsb, sick, sst2, agnews, plain])
    assert got == ["A man plays.", "A man is playing.", "A dog runs.", "A cat sits.", "the movie", "Stocks fell, again.",
                   "one line", "another line"]


def test_unreadable_text_files_are_one_line_errors(tmp_path):
    with pytest.raises(PocketBertError, match="no such file"):
        lengths.read_sentences([tmp_path / "missing.txt"])
    table = tmp_path / "t.tsv"
    table.write_text("id\tscore\n1\t2\n")
    with pytest.raises(PocketBertError, match="no sentence column"):
        lengths.read_sentences([table])
    empty = tmp_path / "e.txt"
    empty.write_text("\n \n")
    with pytest.raises(PocketBertError, match="no text"):
        lengths.read_sentences([empty])


def test_tokenizer_gives_the_golden_ids():
    """The bench tokenizes as the exporter (and both app cores) do: the fixture bundle's golden cases."""
    bundle = Bundle(FIXTURE, json.loads((FIXTURE / "manifest.json").read_text()))  # its artifacts are made on demand
    cases = bundle.golden()["cases"]
    limit = max(bundle.seq_lens)
    for case, ids in zip(cases, lengths.encode(bundle, [c["text"] for c in cases])):
        assert (ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]) == case["ids"], case["name"]


def _fake_bundle(dynamic: bool) -> Bundle:
    arts = [{"file": f"m_seq{n}.onnx", "format": "onnx", "quant": "fp32", "seq_len": n,
             **({"min_seq_len": 2} if dynamic else {})} for n in (8, 16)]
    manifest = {"seq_lens": [8, 16], "artifacts": arts,
                "tokenizer": {"special_tokens": {"[PAD]": 0, "[CLS]": 2, "[SEP]": 3}}}
    return Bundle(Path("."), manifest)


@pytest.mark.parametrize("dynamic", [False, True])
def test_calls_pick_the_smallest_bucket_and_pad_or_not(dynamic):
    bundle = _fake_bundle(dynamic)
    texts = [[2, 3], [2] + [7] * 5 + [3], [2] + [7] * 6 + [3], [2] + [7] * 7 + [3], [2] + [7] * 30 + [3]]
    got = lengths.calls(bundle, bundle.artifacts, texts)
    assert [c.artifact["seq_len"] for c in got] == [8, 8, 8, 16, 16]
    assert [c.n_tokens for c in got] == [2, 7, 8, 9, 16]
    assert [len(c.ids) for c in got] == ([2, 7, 8, 9, 16] if dynamic else [8, 8, 8, 16, 16])
    assert got[-1].ids[:16][-1] == 3  # truncated as the apps truncate: [SEP] stays last
    for c in got:
        assert c.ids[c.n_tokens:] == [0] * (len(c.ids) - c.n_tokens)


def test_input_length_is_the_contract_function():
    """The bench's lengths come from the typed Artifact's rule (the cores' conformance case holds them to it)."""
    static, dynamic = {"seq_len": 32}, {"seq_len": 32, "min_seq_len": 2}
    assert [input_length(static, n) for n in (1, 2, 20, 32, 40)] == [32] * 5
    assert [input_length(dynamic, n) for n in (1, 2, 20, 32, 40)] == [2, 2, 20, 32, 32]
    assert [bucket_for([16, 32], n) for n in (2, 16, 17, 40)] == [16, 16, 32, 32]


def test_distribution_shares_and_truncation():
    bundle = _fake_bundle(False)
    dist = lengths.distribution(bundle, [[0] * 5, [0] * 8, [0] * 9, [0] * 20])
    assert dist["share_by_bucket"] == {"8": 0.5, "16": 0.5}
    assert dist["truncated_share"] == 0.25 and dist["tokens_max"] == 20 and dist["texts"] == 4


def test_sample_is_seeded_and_stable():
    assert lengths.sample(10, 20) == list(range(10))
    a, b = lengths.sample(1000, 50), lengths.sample(1000, 50)
    assert a == b and len(set(a)) == 50 and a == sorted(a)


# ---------------------------------------------------------------- the bench on a tiny bundle (integration)

@pytest.fixture(scope="module")
def two_exports(tiny_student, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny student exported twice, buckets 16 and 32: the default (ExecuTorch and ONNX with a dynamic
    length) and --static-shapes."""
    root = tmp_path_factory.mktemp("real_lengths")
    common = ["--formats", "executorch,onnx", "--quant", "fp32", "--seq-len", "16,32", "--no-gate"]
    assert main(["export", str(tiny_student), "--out", str(root / "dynamic"), *common]) == 0
    assert main(["export", str(tiny_student), "--out", str(root / "static"), *common, "--static-shapes"]) == 0
    return root / "dynamic", root / "static"


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory) -> Path:
    """Texts from 1 to ~40 tokens in the tiny vocabulary: both buckets and truncation."""
    words = "the man is playing a guitar while the dog runs over the lazy red car".split()
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(" ".join(words[i % len(words)] for i in range(n)) for n in range(1, 41)) + "\n")
    return path


@pytest.mark.integration
def test_exports_mark_dynamic_artifacts_and_their_parity_ran_unpadded(two_exports):
    dynamic, static = (load_bundle(p) for p in two_exports)
    for a in dynamic.artifacts:
        assert a["min_seq_len"] == 2 and a["parity"]["status"] == "passed", a["file"]
    assert all("min_seq_len" not in a for a in static.artifacts)


@pytest.mark.integration
def test_real_length_bench_on_a_tiny_bundle(two_exports, texts_file, tmp_path):
    dynamic, static = two_exports
    out = tmp_path / "results.json"
    assert main(["bench", str(dynamic), "--compare", f"static={static}", "--threads", "1", "--seq-len", "32",
                 "--runs", "3", "--warmup", "1", "--no-profile", "--texts", str(texts_file), "--text-sample", "30",
                 "--out", str(out)]) == 0
    doc = read_results(out)  # schema-validated
    section = doc["real_lengths"]
    assert section["source"] == {"files": [str(texts_file)], "texts": 40, "sample": 30, "seed": 0}
    dist = section["distribution"]
    assert dist["texts"] == 40 and abs(sum(dist["share_by_bucket"].values()) - 1) < 1e-9
    bundle = load_bundle(dynamic)
    token_ids = lengths.encode(bundle, lengths.read_sentences([texts_file]))
    want = {str(b): sum(bucket_for([16, 32], len(i)) == b for i in token_ids) / 40 for b in (16, 32)}
    assert dist["share_by_bucket"] == want and dist["truncated_share"] > 0
    rows = {r["name"]: r for r in section["rows"]}
    assert set(rows) == {"executorch/fp32", "onnx/fp32", "static:executorch/fp32", "static:onnx/fp32"}
    for name, r in rows.items():
        assert r["status"] == "ok" and r["texts"] == 30 and r["threads"] == 1, r
        assert r["shape"] == ("buckets" if name.startswith("static:") else "dynamic")
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"]
        assert sum(b["texts"] for b in r["per_bucket"].values()) == 30
        assert abs(sum(b["share"] for b in r["per_bucket"].values()) - 1) < 1e-9
    for fmt in ("executorch", "onnx"):  # the dynamic row's speed-up over the same format at fixed buckets
        assert set(rows[f"{fmt}/fp32"]["speedup_vs"]) == {f"static:{fmt}/fp32"}
        assert rows[f"{fmt}/fp32"]["cpu_speedup_vs"][f"static:{fmt}/fp32"] > 0
    # the fixed-length rows of the compared bundle ran in the same rounds, kept out of the verdict
    seq = {r["name"]: r for r in doc["rows"]}
    assert seq["static:" + next(a["file"] for a in bundle.artifacts if a["format"] == "onnx" and a["seq_len"] == 32)][
        "role"] == "compare"
    card = verdict(doc)
    assert card["rows"][0]["row"] in {a["file"] for a in bundle.artifacts}
    assert "p50 ms (real lengths)" in verdict_table(card)[0] and card["rows"][0]["real_p50_ms"] > 0
    assert "At real lengths" in card["sentence"]
    text, head, lines = real_length_table(doc)
    assert "40 texts" in text and len(lines) == 4 and "bucket 16: p50 ms (CPU)" in head


@pytest.mark.integration
def test_no_real_length_section_when_asked(two_exports, tmp_path):
    out = tmp_path / "results.json"
    assert main(["bench", str(two_exports[0]), "--threads", "1", "--seq-len", "16", "--runs", "2", "--warmup", "0",
                 "--no-profile", "--formats", "onnx", "--text-sample", "0", "--out", str(out)]) == 0
    assert "real_lengths" not in json.loads(out.read_text())
