"""zabby.server.metrics.Summary: the fixed-bucket summaries behind mntr and /metrics."""

from __future__ import annotations

import random

from zabby.server.metrics import SUMMARY_BOUNDS, Summary


def test_empty() -> None:
    s = Summary(percentiles=True)
    assert (s.count, s.total, s.min, s.max, s.avg) == (0, 0, 0, 0, 0.0)
    assert s.quantile(0.5) == 0


def test_counts_and_exact_small_quantiles() -> None:
    s = Summary()
    for v in [3, 0, 7, 1, 1, 2, -5]:  # a negative latency (clock step) is dropped
        s.add(v)
    assert (s.count, s.total, s.min, s.max) == (6, 14, 0, 7)
    assert s.quantile(0.5) == 1  # ranks: 0 1 1 2 3 7 -> the 3rd is 1
    assert s.quantile(1.0) == 7
    assert s.quantile(0.01) == 0


def test_quantiles_within_a_bucket() -> None:
    rng = random.Random(7)
    values = [int(rng.expovariate(1 / 300)) for _ in range(5000)]
    s = Summary(percentiles=True)
    for v in values:
        s.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = values[max(0, -int(-q * len(values) // 1) - 1)]
        got = s.quantile(q)
        assert s.min <= got <= s.max
        # the bucket's upper bound: at most ~25% (one bucket) above the exact value
        assert exact <= got <= max(exact * 1.3, exact + 1), (q, exact, got)


def test_huge_values_and_reset() -> None:
    s = Summary()
    s.add(SUMMARY_BOUNDS[-1] * 10)
    assert s.quantile(0.5) == SUMMARY_BOUNDS[-1] * 10  # last bucket: clamped to max
    s.reset()
    assert (s.count, s.max) == (0, 0)
    assert sum(s.buckets) == 0
