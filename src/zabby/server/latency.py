"""LatencyCounters: the base of both `ServerMetrics` and `ClientConnection`, which are
native classes when compiled (mypyc), so it is compiled with them: a native class has
one base, and that base must be native too for the fields to be slots."""

from __future__ import annotations

__all__ = ["LatencyCounters"]


class LatencyCounters:
    """min / max / total / count of request latency in ms, as ZooKeeper's
    AvgMinMaxCounter keeps them: for the server (ServerMetrics) and per connection."""

    __slots__ = ("min_latency", "max_latency", "total_latency", "latency_count")
    min_latency: int
    max_latency: int
    total_latency: int
    latency_count: int

    def record_latency(self, ms: int) -> None:
        if self.latency_count == 0 or ms < self.min_latency:
            self.min_latency = ms
        if ms > self.max_latency:
            self.max_latency = ms
        self.total_latency += ms
        self.latency_count += 1

    def reset_latency(self) -> None:
        self.min_latency = self.max_latency = self.total_latency = self.latency_count = 0
