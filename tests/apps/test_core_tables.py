"""The Kotlin and Swift cores carry the bundle contract's per-quantization thresholds as tables: they must
equal Python's (pocketbert/bundle/parity.py) for every quantization name export can write."""

from __future__ import annotations

import re
from pathlib import Path

from pocketbert.bundle.naming import QUANTS
from pocketbert.bundle.parity import INVARIANCE_MIN_COSINE, MLM_MIN_AGREEMENT

REPO = Path(__file__).resolve().parents[2]
KOTLIN = REPO / "android_demo/core/src/main/kotlin/io/pocketbert/core/SelfTest.kt"
SWIFT = REPO / "ios_demo/PocketBertKit/Sources/PocketBertKit/Golden.swift"


def _table(source: Path, name: str) -> dict[str, float]:
    text = source.read_text(encoding="utf-8")
    body = re.search(rf"{name}(?:: \[String: Double\])? = (?:mapOf\(|\[)(.*?)[\])]\n", text, re.S)
    assert body, f"{name} not found in {source.name}"
    pairs = re.findall(r'"([a-z0-9-]+)"\s*(?:to|:)\s*([0-9.]+)', body.group(1))
    return {k: float(v) for k, v in pairs}


def test_kotlin_and_swift_thresholds_match_python():
    for source, mlm, inv in ((KOTLIN, "MLM_MIN_AGREEMENT", "INVARIANCE_MIN_COSINE"),
                             (SWIFT, "mlmMinAgreement", "invarianceMinCosine")):
        assert _table(source, mlm) == MLM_MIN_AGREEMENT, source.name
        assert _table(source, inv) == INVARIANCE_MIN_COSINE, source.name
    assert set(MLM_MIN_AGREEMENT) == set(INVARIANCE_MIN_COSINE) == set(QUANTS)
