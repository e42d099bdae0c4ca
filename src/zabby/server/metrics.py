"""The server's monitoring model: one set of counters and gauges that every operator
view reads (the four-letter words in ``zabby.ops`` today; the AdminServer and Prometheus
later).  The server updates the counters on the request path; gauges are read live
from the server's state when asked, so no figure is kept or computed in two places.

Nothing here imports ``zabby.ops``: the request path knows nothing of how the figures
are shown.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Final

from .latency import LatencyCounters

if TYPE_CHECKING:
    from .core import ZabbyServer

__all__ = ["SUMMARY_BOUNDS", "LatencyCounters", "ServerMetrics", "Summary", "avg_latency"]

# Upper bounds (inclusive, ms or a count) of a Summary's buckets: exact up to 10, then
# steps of about 25%, up to 30 minutes; the last bucket holds everything larger.
SUMMARY_BOUNDS: Final[tuple[int, ...]] = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 18, 22, 27, 33, 40, 50, 60, 75, 90, 110, 135,
    165, 200, 250, 300, 375, 450, 550, 675, 825, 1000, 1250, 1500, 1850, 2250, 2750, 3350,
    4100, 5000, 6100, 7500, 9100, 11000, 13500, 16500, 20000, 25000, 30000, 37500, 45000,
    55000, 67500, 82500, 100000, 125000, 150000, 185000, 225000, 275000, 335000, 410000,
    500000, 610000, 750000, 910000, 1100000, 1350000, 1650000, 1800000,
)
_NBUCKETS: Final = len(SUMMARY_BOUNDS) + 1
_EXACT: Final = 10  # SUMMARY_BOUNDS[i] == i up to here
assert SUMMARY_BOUNDS[: _EXACT + 1] == tuple(range(_EXACT + 1))


def avg_latency(total: int, count: int) -> float:
    """ZooKeeper's AvgMinMaxCounter.getAvg: total/count rounded half-up to 4 decimals,
    0 if nothing was counted."""
    if count <= 0:
        return 0.0
    return float(Decimal(total / count).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


class Summary:
    """count / sum / min / max of integer observations (ms, or sizes), plus a fixed-bucket
    histogram for quantiles: ZooKeeper's AvgMinMaxCounter, and with ``percentiles`` its
    AvgMinMaxPercentileCounter (mntr's ``p50_``..``p999_``, Prometheus' 0.5/0.9/0.99).

    Recording costs a few attribute updates and one ``bisect`` over SUMMARY_BOUNDS: no
    allocation, no sorting, bounded memory.  Quantiles are exact for values up to 10 and
    within one bucket (about 25%) above, never outside [min, max] (ZooKeeper samples a
    reservoir of 1028 values instead, which is exact for what it keeps and forgets the
    rest).  Values are ints; negative ones (a clock stepping back) are dropped, as
    ZooKeeper drops negative latencies.
    """

    __slots__ = ("count", "total", "min", "max", "buckets", "percentiles")

    def __init__(self, percentiles: bool = False) -> None:
        self.percentiles = percentiles
        self.count = self.total = self.min = self.max = 0
        self.buckets = [0] * _NBUCKETS

    def add(self, v: int) -> None:
        if v <= _EXACT:  # the common case: bucket i holds exactly i
            if v < 0:
                return
            self.buckets[v] += 1
        else:
            self.buckets[bisect_left(SUMMARY_BOUNDS, v)] += 1
        n = self.count
        self.count = n + 1
        self.total += v
        if v > self.max:
            self.max = v
        if v < self.min or n == 0:
            self.min = v

    def reset(self) -> None:
        self.count = self.total = self.min = self.max = 0
        self.buckets = [0] * _NBUCKETS

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantile(self, q: float) -> int:
        """The q-quantile (0 < q <= 1): the upper bound of the bucket holding the
        observation of rank ceil(q * count), clamped to [min, max]; 0 when empty."""
        n = self.count
        if n == 0:
            return 0
        rank = max(1, -int(-q * n // 1))
        seen = 0
        for i, c in enumerate(self.buckets):
            seen += c
            if seen >= rank:
                bound = SUMMARY_BOUNDS[i] if i < len(SUMMARY_BOUNDS) else self.max
                return min(max(bound, self.min), self.max)
        return self.max  # pragma: no cover - the buckets hold `count` observations


class ServerMetrics(LatencyCounters):
    """ZooKeeper's ServerStats for one server, plus the gauges its views print.

    Counters (updated by ``server``; ``reset()`` is ``srst``, ServerStats.reset):

    * ``packets_received`` -- client packets read: requests, pings, handshakes' first
      request and four-letter words.
    * ``packets_sent`` -- replies and four-letter answers written.
    * ``min_latency`` / ``max_latency`` / ``total_latency`` / ``latency_count`` --
      request latency in ms (received to replied), over every timed reply.
    * ``readlatency`` / ``updatelatency`` -- the same latencies as Summaries, split
      into reads and writes (txns), as ZooKeeper's ServerStats.updateLatency splits them.
    * ``op_counts`` -- requests read, per opcode (pings, auth and sasl included).
    * ``stale_sessions_expired`` -- sessions the server expired for silence.
    * ``bytes_received_count`` -- bytes read from client connections.
    * ``dbinittime`` / ``startup_txns_loaded`` -- start-up recovery: ms, and txns
      replayed from the log (one observation each).
    * ``propagation_latency`` -- per applied txn: wall-clock ms from the txn's creation
      (its header time, set where it was proposed) to its application here.
    * ensemble only (updated by ``server.ensemble``): ``election_time`` (ms from
      leaving a role to deciding the next), ``proposal_latency`` (follower: txn
      creation to its arrival here), ``quorum_ack_latency`` (leader: txn creation to
      its commit), ``commit_count`` (leader: txns committed), ``proposal_count``
      (leader: txns proposed), ``learner_proposal_received_count`` /
      ``learner_commit_received_count`` (learner: txns received / committed), and the
      proposal sizes (leader: ``last/min/max_proposal_size``, bytes).

    Figures kept elsewhere and read here: ``fsynctime`` / ``snapshottime`` (Summaries
    of the durable committer, ``server.durability``; empty without a data directory),
    ``connection_rejected`` (connections refused by maxCnxns / maxClientCnxns plus
    failed accepts), ``sessionless_connections_expired`` (handshake timeouts).

    Gauges (read live from the server, never stored here):

    * ``avg_latency`` -- ``total_latency / latency_count``, 4 decimals, half-up.
    * ``connections`` -- open client connections (handshakes included).
    * ``outstanding`` -- writes handed to the commit pipeline, not yet answered.
    * ``last_zxid`` -- the last zxid applied to the tree.
    * ``node_count`` -- ZKDatabase.getNodeCount (counts the root twice, as ZooKeeper).
    * ``watch_count`` -- data plus child watches, counted per path.
    * ``ephemerals_count`` -- ephemeral znodes of all sessions.
    * ``approximate_data_size`` -- the length of every path plus its data.
    * ``global_sessions`` -- sessions in the database (every global session).
    * ``local_sessions`` -- this member's local sessions (localSessionsEnabled).
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
        "readlatency",
        "updatelatency",
        "propagation_latency",
        "proposal_latency",
        "quorum_ack_latency",
        "election_time",
        "op_counts",
        "stale_sessions_expired",
        "commit_count",
        "proposal_count",
        "learner_proposal_received_count",
        "learner_commit_received_count",
        "last_proposal_size",
        "min_proposal_size",
        "max_proposal_size",
        "bytes_received_count",
        "dbinittime",
        "startup_txns_loaded",
    )

    def __init__(self, server: ZabbyServer) -> None:
        self._server = server
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.latency_count = 0
        self.readlatency = Summary(percentiles=True)
        self.updatelatency = Summary(percentiles=True)
        self.propagation_latency = Summary(percentiles=True)
        self.proposal_latency = Summary(percentiles=True)
        self.quorum_ack_latency = Summary(percentiles=True)
        self.election_time = Summary()
        self.op_counts: defaultdict[int, int] = defaultdict(int)
        self.stale_sessions_expired = 0
        self.commit_count = 0
        self.proposal_count = 0
        self.learner_proposal_received_count = 0
        self.learner_commit_received_count = 0
        self.bytes_received_count = 0  # bytes read from client connections
        # start-up: ms to recover the data directory, txns replayed from the log (one
        # observation each, recorded by whoever recovered it: server.app.build_server)
        self.dbinittime = Summary()
        self.startup_txns_loaded = Summary()
        # ZooKeeper's BufferStats: -1 until a proposal was made
        self.last_proposal_size = self.min_proposal_size = self.max_proposal_size = -1

    # ------------------------------------------------------------ counters
    def reset(self) -> None:
        """srst: ServerStats.reset (latency and the packet counters) and, as on a
        ZooKeeper leader, the proposal sizes. Summaries and counters count on."""
        self.reset_latency()
        self.packets_received = self.packets_sent = 0
        self.last_proposal_size = self.min_proposal_size = self.max_proposal_size = -1

    def record_proposal_size(self, n: int) -> None:
        self.last_proposal_size = n
        if self.min_proposal_size < 0 or n < self.min_proposal_size:
            self.min_proposal_size = n
        if n > self.max_proposal_size:
            self.max_proposal_size = n

    @property
    def fsynctime(self) -> Summary | None:
        return getattr(self._server.committer, "fsync_time", None)

    @property
    def snapshottime(self) -> Summary | None:
        return getattr(self._server.committer, "snapshot_time", None)

    @property
    def connection_rejected(self) -> int:
        s = self._server
        return s.cnxns_refused + s.accept_errors

    @property
    def sessionless_connections_expired(self) -> int:
        return self._server.handshakes_timed_out

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
        return self._server.tree.ephemerals_count()

    @property
    def approximate_data_size(self) -> int:
        return self._server.tree.approximate_data_size()

    @property
    def global_sessions(self) -> int:
        # ZooKeeper's figure is its database's session count: on an ensemble member every
        # global session, not only those connected here
        return len(self._server.tree.sessions)

    @property
    def local_sessions(self) -> int:
        """This member's local sessions (localSessionsEnabled: server.local_sessions)."""
        return getattr(self._server, "local_session_count", 0)

    @property
    def uptime_ms(self) -> int:
        return int((self._server.clock.time_ns() / 1e9 - self._server.start_time) * 1000)
