"""The server's monitoring model: one set of counters and gauges that every operator
view reads (the four-letter words in ``zabby.ops`` today; the AdminServer and Prometheus
later).  The server updates the counters on the request path; gauges are read live
from the server's state when asked, so no figure is kept or computed in two places.

Nothing here imports ``zabby.ops``: the request path knows nothing of how the figures
are shown.
"""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import ZabbyServer

__all__ = ["LatencyCounters", "ServerMetrics", "avg_latency"]


def avg_latency(total: int, count: int) -> float:
    """ZooKeeper's AvgMinMaxCounter.getAvg: total/count rounded half-up to 4 decimals,
    0 if nothing was counted."""
    if count <= 0:
        return 0.0
    return float(Decimal(total / count).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


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


class ServerMetrics(LatencyCounters):
    """ZooKeeper's ServerStats for one server, plus the gauges its views print.

    Counters (updated by ``server``; ``reset()`` is ``srst``, ServerStats.reset):

    * ``packets_received`` -- client packets read: requests, pings, handshakes' first
      request and four-letter words.
    * ``packets_sent`` -- replies and four-letter answers written.
    * ``min_latency`` / ``max_latency`` / ``total_latency`` / ``latency_count`` --
      request latency in ms (received to replied), over every timed reply.

    Gauges (read live from the server, never stored here):

    * ``avg_latency`` -- ``total_latency / latency_count``, 4 decimals, half-up.
    * ``connections`` -- open client connections (handshakes included).
    * ``outstanding`` -- writes handed to the commit pipeline, not yet answered.
    * ``last_zxid`` -- the last zxid applied to the tree.
    * ``node_count`` -- ZKDatabase.getNodeCount (counts the root twice, as ZooKeeper).
    * ``watch_count`` -- data plus child watches, counted per path.
    * ``ephemerals_count`` -- ephemeral znodes of all sessions.
    * ``approximate_data_size`` -- the length of every path plus its data.
    * ``global_sessions`` -- live sessions.
    * ``uptime_ms`` -- wall-clock ms since the server was made.
    """

    __slots__ = (
        "_server",
        "packets_received",
        "packets_sent",
        "min_latency",
        "max_latency",
        "total_latency",
        "latency_count",
    )

    def __init__(self, server: ZabbyServer) -> None:
        self._server = server
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.latency_count = 0

    # ------------------------------------------------------------ counters
    def reset(self) -> None:
        """ServerStats.reset: latency and the packet counters."""
        self.reset_latency()
        self.packets_received = self.packets_sent = 0

    # ------------------------------------------------------------ gauges
    @property
    def avg_latency(self) -> float:
        return avg_latency(self.total_latency, self.latency_count)

    @property
    def connections(self) -> int:
        return len(self._server.connections)

    @property
    def outstanding(self) -> int:
        return self._server.outstanding

    @property
    def last_zxid(self) -> int:
        return self._server.last_zxid

    @property
    def node_count(self) -> int:
        # ZooKeeper's node map holds the root twice ("" and "/"), so an empty tree
        # counts 5 there; we report the same number
        return self._server.tree.node_count + 1

    @property
    def watch_count(self) -> int:
        return self._server.watches.watch_count

    @property
    def ephemerals_count(self) -> int:
        return sum(len(p) for p in self._server.tree.ephemerals().values())

    @property
    def approximate_data_size(self) -> int:
        return self._server.tree.approximate_data_size()

    @property
    def global_sessions(self) -> int:
        tracker = self._server.sessions
        return len(getattr(tracker, "sessions", None) or {})

    @property
    def uptime_ms(self) -> int:
        return int((time.time() - self._server.start_time) * 1000)
