"""Latency as a histogram: 1-2-5 bounds in milliseconds up to an hour, then "longer"; a
percentile is the bound under which that share of the samples fall."""

from __future__ import annotations

from collections import Counter

LATENCY_BOUNDS_MS: tuple[int, ...] = (
    *(step * 10**power for power in range(6) for step in (1, 2, 5)),
    1_000_000,
    2_000_000,
    3_600_000,
)
LONGER = "longer"


def latency_bucket(milliseconds: float) -> str:
    for bound in LATENCY_BOUNDS_MS:
        if milliseconds <= bound:
            return str(bound)
    return LONGER


def percentile(histogram: Counter[str], fraction: float) -> int | None:
    """The bound in ms under which `fraction` of the samples fall (None: no sample;
    -1: beyond the last bound)."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for bound in LATENCY_BOUNDS_MS:
        seen += histogram[str(bound)]
        if seen >= fraction * total:
            return bound
    return -1
