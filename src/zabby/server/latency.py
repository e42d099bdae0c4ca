"""LatencyCounters, in a module of its own so that it stays interpreted when
`server/metrics.py` is compiled (mypyc): ClientConnection mixes it into
asyncio.Protocol, and a compiled method of a Python class refuses such a subclass's
instances as `self` (TypeError: "LatencyCounters object expected")."""

from __future__ import annotations

__all__ = ["LatencyCounters"]


class LatencyCounters:
    """min / max / total / count of request latency in ms, as ZooKeeper's
    AvgMinMaxCounter keeps them: for the server (ServerMetrics) and per connection."""

    __slots__ = ()
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
