"""A log-linear latency histogram (HDR-style) over nanoseconds.

Values below 128 ns get their own bucket; above that, each power of two is split
into 64 buckets, so any recorded value is known to within 1/64 (1.6 %). The
bucket index is ``(s << 6) + (v >> s)`` with ``s = v.bit_length() - 7``: a couple
of integer operations, cheap enough to inline on a load generator's hot path
(see ``record``, which the workloads copy by hand).

Counts live in a preallocated list, so recording never allocates and histograms
from several sessions or processes merge by adding lists.
"""

from __future__ import annotations

SUB_BITS = 6
SIZE = 64 * 64  # covers every value below 2**63 ns


def bucket_of(v: int) -> int:
    if v < 128:
        return v if v > 0 else 0
    s = v.bit_length() - 7
    return (s << SUB_BITS) + (v >> s)


def value_of(idx: int) -> float:
    """The middle of bucket ``idx`` (ns)."""
    if idx < 128:
        return float(idx)
    s = (idx >> SUB_BITS) - 1
    m = idx - (s << SUB_BITS)
    return (m + 0.5) * (1 << s)


class Histogram:
    __slots__ = ("counts", "total", "sum", "max", "min")

    def __init__(self) -> None:
        self.counts = [0] * SIZE
        self.total = 0
        self.sum = 0
        self.max = 0
        self.min = 0

    def record(self, v: int) -> None:
        if v < 128:
            self.counts[v if v > 0 else 0] += 1
        else:
            s = v.bit_length() - 7
            self.counts[(s << SUB_BITS) + (v >> s)] += 1

    def merge_counts(self, counts: list[int]) -> None:
        mine = self.counts
        for i, c in enumerate(counts):
            if c:
                mine[i] += c

    def count(self) -> int:
        return sum(self.counts)

    def percentile(self, p: float) -> float:
        """Value (ns) at percentile ``p`` (0-100); 0.0 when empty."""
        total = self.count()
        if total == 0:
            return 0.0
        rank = max(1, -(-total * p // 100))  # ceil, at least the first value
        seen = 0
        for i, c in enumerate(self.counts):
            if c:
                seen += c
                if seen >= rank:
                    return value_of(i)
        return value_of(SIZE - 1)  # pragma: no cover

    def mean(self) -> float:
        total = 0
        acc = 0.0
        for i, c in enumerate(self.counts):
            if c:
                total += c
                acc += c * value_of(i)
        return acc / total if total else 0.0

    def max_value(self) -> float:
        for i in range(SIZE - 1, -1, -1):
            if self.counts[i]:
                return value_of(i)
        return 0.0

    def summary_ms(self) -> dict[str, float]:
        ms = 1e-6
        return {
            "p50": round(self.percentile(50) * ms, 3),
            "p90": round(self.percentile(90) * ms, 3),
            "p99": round(self.percentile(99) * ms, 3),
            "p99.9": round(self.percentile(99.9) * ms, 3),
            "max": round(self.max_value() * ms, 3),
            "mean": round(self.mean() * ms, 3),
        }
