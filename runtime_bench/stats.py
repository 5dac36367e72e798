"""Latency statistics: percentiles, the 10-90% trimmed mean, and pairwise ratios of interleaved runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation between closest ranks.

    Same definition as numpy's default (`method="linear"`): rank = q/100 * (n - 1).
    Raises ValueError on an empty sequence or q outside [0, 100].
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    xs = sorted(samples)
    rank = q / 100 * (len(xs) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def trimmed_mean(samples: Sequence[float], lower: float = 10, upper: float = 90) -> float:
    """Mean of the samples between the `lower` and `upper` percentiles, inclusive.

    With few samples the band can be empty of interior points; the samples nearest the median are then used,
    so the result is always a value inside [min, max].
    """
    if not samples:
        raise ValueError("trimmed mean of no samples")
    lo, hi = percentile(samples, lower), percentile(samples, upper)
    kept = [x for x in samples if lo <= x <= hi]
    return statistics.fmean(kept) if kept else statistics.median(samples)


def summarize(samples_ms: Sequence[float]) -> dict:
    """The schema's latency metrics for one row."""
    return {
        "runs": len(samples_ms),
        "latency_ms_p50": percentile(samples_ms, 50),
        "latency_ms_p90": percentile(samples_ms, 90),
        "latency_ms_p99": percentile(samples_ms, 99),
        "latency_ms_trimmed_mean": trimmed_mean(samples_ms),
        "latency_ms_min": min(samples_ms),
        "latency_ms_max": max(samples_ms),
    }


def paired_speedup(other_rounds: Sequence[Sequence[float]], this_rounds: Sequence[Sequence[float]]) -> float:
    """Speedup of `this` over `other`: the median over rounds of median(other round) / median(this round).

    The two rows ran interleaved (round i of `other` right before or after round i of `this`), so each
    per-round ratio sees the same machine state; a machine that drifts between rounds does not bias the
    median of the ratios the way it biases a ratio of two overall medians.
    """
    ratios = [statistics.median(o) / statistics.median(t)
              for o, t in zip(other_rounds, this_rounds) if o and t and statistics.median(t) > 0]
    if not ratios:
        raise ValueError("no paired rounds to compare")
    return statistics.median(ratios)
