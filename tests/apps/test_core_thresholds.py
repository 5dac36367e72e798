"""The Kotlin and Swift cores take every threshold from the bundle's manifest (`tolerances`), never from a table
of their own: no core source maps a quantization name to a number. tests/apps/test_conformance.py proves the
reading itself: a bundle whose manifest holds a tighter threshold fails both cores on the same outputs."""

from __future__ import annotations

import re
from pathlib import Path

from pocketbert.bundle.naming import QUANTS

REPO = Path(__file__).resolve().parents[2]
CORES = [REPO / "android_demo/core/src/main/kotlin", REPO / "ios_demo/PocketBertKit/Sources"]
# `"int8" to 0.8` (Kotlin mapOf) or `"int8": 0.8` (Swift dictionary literal)
ENTRY = re.compile(r'"(' + "|".join(map(re.escape, QUANTS)) + r')"\s*(?:to|:)\s*[0-9.]')


def test_no_core_source_holds_a_threshold_table():
    sources = [p for root in CORES for p in sorted(root.rglob("*")) if p.suffix in (".kt", ".swift")]
    assert len(sources) >= 10, sources
    tables = [f"{p.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
              for p in sources for text in [p.read_text(encoding="utf-8")] for m in ENTRY.finditer(text)]
    assert not tables, "thresholds come from the manifest's tolerances, not a table in the core:\n" + "\n".join(tables)


def test_the_cores_read_both_manifest_thresholds():
    for source, keys in ((CORES[0] / "io/pocketbert/core/Bundle.kt", ('"min_argmax_agreement"', '"min_invariance_cosine"')),
                         (CORES[1] / "PocketBertKit/Manifest.swift", ('"min_argmax_agreement"', '"min_invariance_cosine"'))):
        text = source.read_text(encoding="utf-8")
        assert all(k in text for k in keys), source.name
