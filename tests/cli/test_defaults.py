"""Defaults live once, on the typed configs' fields: the commands' options and the build's recipe sections read
them from there (`gate_sample`, `max_sts_drop`, `runs`, `warmup`, ...)."""

from __future__ import annotations

import dataclasses

from pocketbert.build import BenchSection, ExportSection
from pocketbert.cli import build_parser
from pocketbert.commands import default
from pocketbert.export.bundle import ExportConfig
from pocketbert.runtime_bench.bench import BenchOptions

# build section key -> the stage config's field of the same meaning
EXPORT_KEYS = {"formats": "formats", "quant": "quants", "seq_len": "seq_lens", "gate": "gate",
               "gate_sample": "gate_sample", "max_sts_drop": "max_sts_drop", "max_mb": "max_mb"}


def test_build_sections_take_the_stage_configs_defaults():
    section = ExportSection()
    assert {f.name for f in dataclasses.fields(ExportSection)} == set(EXPORT_KEYS)
    for key, field in EXPORT_KEYS.items():
        assert getattr(section, key) == default(ExportConfig, field), key
    bench = BenchSection()
    for key in ("runs", "warmup"):
        assert getattr(bench, key) == default(BenchOptions, key), key
    assert bench.seq_len == default(ExportConfig, "seq_lens")  # the bench measures the exported buckets


def test_command_options_take_the_stage_configs_defaults():
    export = build_parser().parse_args(["export", "ckpt", "--out", "b"])
    assert export.formats == ",".join(default(ExportConfig, "formats"))
    assert export.quant == ",".join(default(ExportConfig, "quants"))
    assert export.seq_len == ",".join(map(str, default(ExportConfig, "seq_lens")))
    for key in ("gate_sample", "max_sts_drop", "max_mb"):
        assert getattr(export, key) == default(ExportConfig, key), key
    assert export.no_gate is not default(ExportConfig, "gate")
    bench = build_parser().parse_args(["bench", "b", "--out", "r.json"])
    assert bench.threads == ",".join(map(str, default(BenchOptions, "threads")))
    for key in ("runs", "warmup", "device", "package", "timeout", "rounds"):
        assert getattr(bench, key) == default(BenchOptions, key), key
