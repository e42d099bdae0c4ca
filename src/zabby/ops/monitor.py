"""The one monitoring model operators see: every figure of ``mntr``, the AdminServer's
``monitor`` command and Prometheus' ``/metrics`` comes from :func:`figures`.

:func:`figures` reads the server's counters (``server.metrics``, updated on the request
path: ``zabby.server.metrics``), the consensus peer's counters and the server's live
state, once, into a plain :class:`Figures` value.  It runs on the server's loop (an
operator thread calls it through ``ops.bridge.LoopBridge``) and is quick: it copies
numbers and counts a few dicts.  :func:`mntr_pairs` turns one ``Figures`` into mntr's
``(key, value)`` pairs; ``ops.prometheus`` turns the same ``Figures`` into metric
families.  No figure is computed in two places.

Key names are Apache ZooKeeper 3.8's, taken from running its ``mntr`` (standalone,
leader, follower) and from its sources (ServerMetrics, ZooKeeperServer.registerMetrics,
LeaderZooKeeperServer / QuorumZooKeeperServer gauges, the default metrics provider's
``avg_/min_/max_/cnt_/sum_`` and ``p50_/p95_/p99_/p999_`` spelling of summaries).

Which of ZooKeeper 3.8's mntr keys zabby reports, and why the others are left out
---------------------------------------------------------------------------------
Reported with a measured value:

* ``version``, ``server_state``, ``peer_state`` (ensemble), ``avg/min/max_latency``,
  ``packets_received/sent``, ``num_alive_connections``, ``outstanding_requests``,
  ``znode_count``, ``watch_count``, ``ephemerals_count``, ``approximate_data_size``,
  ``open/max_file_descriptor_count`` (where /proc and RLIMIT_NOFILE tell), ``uptime``,
  ``global_sessions`` (the sessions in the database, as ZooKeeper: every global
  session of the ensemble), ``local_sessions`` (this member's, localSessionsEnabled).
* Summaries: ``readlatency``, ``updatelatency`` (request latency split as ZooKeeper's
  ServerStats splits it: txns vs the rest), ``propagation_latency`` (txn creation to
  application here, while serving), ``fsynctime`` (ms per durable log batch: zabby
  group-commits, so one figure covers a batch where ZooKeeper's covers one flush),
  ``snapshottime`` (ms to write a snapshot, measured in the forked writer's parent),
  and in an ensemble ``election_time``, ``proposal_latency`` (followers),
  ``quorum_ack_latency`` (leader: creation to commit, which zabby decides and applies
  in one step).  A summary is a ``zabby.server.metrics.Summary``: count, sum, min, max
  and a fixed-bucket histogram whose quantiles are exact to 10 and within ~25% above.
* Counters: ``commit_count``, ``proposal_count`` (leader; both include the no-op txn
  each ``sync`` commits on zabby -- see docs/COMPATIBILITY.md), ``diff_count`` (DIFF and
  TRUNC syncs sent to learners, as ZooKeeper counts every non-snapshot sync),
  ``snap_count``, ``looking_count``, ``learner_proposal_received_count``,
  ``learner_commit_received_count`` (one per txn committed, as ZooKeeper sends one
  COMMIT per txn; zabby's COMMITs are cumulative), ``connection_rejected``
  (maxCnxns / maxClientCnxns refusals and failed accepts),
  ``sessionless_connections_expired``, ``stale_sessions_expired``,
  ``bytes_received_count`` (bytes read from client connections).
* Start-up summaries (one observation each): ``dbinittime`` (ms to recover the data
  directory) and ``startup_txns_loaded`` (txns replayed from the log).
* Leader gauges: ``learners``, ``synced_followers``, ``synced_observers``,
  ``synced_non_voting_followers`` (participants syncing before a reconfig adds them),
  ``pending_syncs`` (sync barriers in flight), ``leader_uptime``,
  ``last/min/max_proposal_size``; every member: ``quorum_size`` (voting members).

Reported as a constant because it is the true value here: ``connection_drop_probability`` (no connection throttling),
``outstanding_tls_handshake`` (TLS handshakes are not counted separately; 0 while none
is tracked).

zabby's own additions (not in ZooKeeper; extra keys break no mntr parser):
``epoch``, ``last_proposed_zxid``, ``committed_zxid``, ``peer_ack_commits`` (a
follower's commits taken from the other followers' ACKs), ``quiet_log_acks`` (a
follower's log batches whose ACK its log thread sent without waking the loop: nothing
waited on that member's log), ``followers`` (as ZooKeeper
3.4 had it: learners connected to the leader, synced or not),
``learner_<id>_lag``, and ``<op>_op_count`` per opcode (ZooKeeper's spelling of a
counter set: ``<key>_<name>``; the op names are ZooKeeper's ``Request.op2String``).
ZooKeeper's quota gauge and counter sets go with them (mntr only, not Prometheus):
``<namespace>_quota_{count,bytes}_{limit,usage}_per_namespace`` for every top-level
namespace holding a quota, ``<namespace>_quota_exceeded_error_per_namespace`` once a
write there was refused.

Left out, because zabby lacks the machinery (a 0 would claim a measurement):
JVM pauses (``jvm_pause_time_ms``); the request throttler and connection token bucket
(``throttled_ops``, ``request_throttle_*``, ``connection_token_deficit``,
``connection_request_count``, ``connection_drop_count``, ``large_requests_rejected``);
ZooKeeper's processor pipeline queues and timings (``prep_processor_*``,
``sync_processor_*``, ``*_commit_proc_*``, ``*commitproc_time_ms``,
``*_final_proc_time_ms``, ``om_*``, ``proposal_process_time``, ``commit_process_time``,
``sync_process_time``, ``prep_process_time``, ``close_session_prep_time``,
``write_batch_time_in_commit_processor``, ``concurrent_request_processing_*``,
``time_waiting_empty_pool_*``, ``session_queues_drained``, ``requests_in_session_queue``,
``pending_session_queue_size``, ``reads_*_session_queue``, ``request_commit_queued``,
``outstanding_changes_*``, ``requests_not_forwarded_to_commit_processor``,
``skip_learner_request_to_next_processor_count``, ``learner_request_processor_queue_size``,
``learner_handler_qp_*``, ``commit_propagation_latency``,
``proposal_ack_creation_latency``, ``local/server_write_committed_time_ms``); the
response cache (``response_packet_*``); the dead-watcher cleaner (``dead_watchers_*``,
``add_dead_watcher_stall_time``); sync throttling (``inflight_diff/snap_count``,
``follower/observer_sync_time``); Netty buffers (``netty_queued_buffer_capacity``);
ZooKeeper's availability tracker (``unavailable_time``, ``leader_unavailable_time``);
quorum SASL bookkeeping (``ensemble_auth_*``), admin/TLS counters
(``insecure_admin_count``, ``tls_handshake_exceeded``, ``unsuccessful_handshake``,
``non_mtls_*_conn_count``, ``auth_failed_count``), digests (``digest_mismatches_count``),
``stale_requests*``, ``stale_replies``, ``revalidate_count``,
``connection_revalidate_count``, ``cnxn_closed_without_zk_server_running``,
``unrecoverable_error_count``, ``quit_leading_due_to_disloyal_voter``,
per-namespace read/write sizes (``read/write_per_namespace``), byte counters (``response_bytes``,
``watch_bytes``) and client response sizes
(``last/min/max_client_response_size``), watch fan-out summaries
(``node_*_watch_count``), the split of start-up time into snapshot and log
(``startup_snap_load_time``, ``startup_txns_load_time``: recovery times both as one), and
``socket_closing_time`` (an asyncio transport closes in the background; there is no
blocking close to time): not measured on zabby's request path yet.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..server.metrics import Summary, avg_latency
from ..wire import Op

if TYPE_CHECKING:
    from ..server.core import ZabbyServer

__all__ = [
    "NOT_REPORTED", "OP_NAMES", "Figures", "SummaryFigures", "fd_counts", "figures", "mntr_pairs",
    "monitor_values",
]

# ZooKeeper 3.8 mntr figures zabby does not report (see the module docstring: machinery
# zabby lacks, or figures not measured yet), by base name: a summary's avg_/min_/max_/
# cnt_/sum_/pNN_ keys and a set's <key>_<name> keys share it.  tests/ops compare
# ZooKeeper's live mntr with zabby's through this list.
NOT_REPORTED: frozenset[str] = frozenset(
    {
        "jvm_pause_time_ms", "throttled_ops", "request_throttle_queue_time_ms",
        "request_throttle_wait_count", "connection_token_deficit", "connection_request_count",
        "connection_drop_count", "large_requests_rejected", "prep_processor_queue_time_ms",
        "prep_processor_queue_size", "prep_processor_request_queued", "prep_process_time",
        "sync_processor_queue_and_flush_time_ms", "sync_processor_queue_size",
        "sync_processor_request_queued", "sync_processor_queue_time_ms",
        "sync_processor_queue_flush_time_ms", "sync_process_time", "sync_processor_batch_size",
        "read_commit_proc_req_queued", "write_commit_proc_req_queued",
        "commit_commit_proc_req_queued", "read_commit_proc_issued", "write_commit_proc_issued",
        "read_commitproc_time_ms", "write_commitproc_time_ms", "read_final_proc_time_ms",
        "write_final_proc_time_ms", "om_proposal_process_time_ms", "om_commit_process_time_ms",
        "proposal_process_time", "commit_process_time", "close_session_prep_time",
        "write_batch_time_in_commit_processor",
        "concurrent_request_processing_in_commit_processor",
        "time_waiting_empty_pool_in_commit_processor_read_ms", "session_queues_drained",
        "requests_in_session_queue", "pending_session_queue_size",
        "reads_after_write_in_session_queue", "reads_issued_from_session_queue",
        "request_commit_queued", "outstanding_changes_queued", "outstanding_changes_removed",
        "requests_not_forwarded_to_commit_processor",
        "skip_learner_request_to_next_processor_count", "learner_request_processor_queue_size",
        "learner_handler_qp_size", "learner_handler_qp_time_ms", "commit_propagation_latency",
        "proposal_ack_creation_latency", "local_write_committed_time_ms",
        "server_write_committed_time_ms", "response_packet_cache_hits",
        "response_packet_cache_misses", "response_packet_get_children_cache_hits",
        "response_packet_get_children_cache_misses", "dead_watchers_queued",
        "dead_watchers_cleared", "dead_watchers_cleaner_latency", "add_dead_watcher_stall_time",
        "inflight_diff_count", "inflight_snap_count", "follower_sync_time",
        "observer_sync_time", "netty_queued_buffer_capacity", "unavailable_time",
        "leader_unavailable_time", "ensemble_auth_success", "ensemble_auth_fail",
        "ensemble_auth_skip", "insecure_admin_count", "tls_handshake_exceeded",
        "unsuccessful_handshake", "non_mtls_remote_conn_count", "non_mtls_local_conn_count",
        "auth_failed_count", "digest_mismatches_count", "stale_requests",
        "stale_requests_dropped", "stale_replies", "revalidate_count",
        "connection_revalidate_count", "cnxn_closed_without_zk_server_running",
        "unrecoverable_error_count", "quit_leading_due_to_disloyal_voter",
        "read_per_namespace", "write_per_namespace", "response_bytes",
        "watch_bytes", "last_client_response_size", "min_client_response_size",
        "max_client_response_size", "node_created_watch_count", "node_deleted_watch_count",
        "node_changed_watch_count", "node_children_watch_count",
        "startup_txns_load_time", "startup_snap_load_time",
        "socket_closing_time",
    }
)

# ZooKeeper's Request.op2String names: mntr's `<op>_op_count`, Prometheus' op_count{key=}
OP_NAMES: dict[int, str] = {
    Op.CREATE: "create", Op.DELETE: "delete", Op.EXISTS: "exists", Op.GET_DATA: "getData",
    Op.SET_DATA: "setData", Op.GET_ACL: "getACL", Op.SET_ACL: "setACL",
    Op.GET_CHILDREN: "getChildren", Op.SYNC: "sync", Op.PING: "ping",
    Op.GET_CHILDREN2: "getChildren2", Op.CHECK: "check", Op.MULTI: "multi",
    Op.CREATE2: "create2", Op.RECONFIG: "reconfig", Op.CHECK_WATCHES: "checkWatches",
    Op.REMOVE_WATCHES: "removeWatches", Op.CREATE_CONTAINER: "createContainer",
    Op.DELETE_CONTAINER: "deleteContainer", Op.CREATE_TTL: "createTtl",
    Op.MULTI_READ: "multiRead", Op.AUTH: "auth", Op.SET_WATCHES: "setWatches",
    Op.SET_WATCHES2: "setWatches2", Op.SASL: "sasl", Op.GET_EPHEMERALS: "getEphemerals",
    Op.GET_ALL_CHILDREN_NUMBER: "getAllChildrenNumber", Op.CREATE_SESSION: "createSession",
    Op.CLOSE_SESSION: "closeSession", Op.ERROR: "error", Op.WHO_AM_I: "whoAmI",
    Op.ADD_WATCH: "addWatch",
}

# mntr's quantiles of a percentile summary (AvgMinMaxPercentileCounter) and
# Prometheus' (PrometheusMetricsProvider: 0.5, 0.9, 0.99 for ADVANCED, 0.5 for BASIC)
MNTR_QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (0.999, "p999"))
PROMETHEUS_QUANTILES = (0.5, 0.9, 0.99)
PROMETHEUS_BASIC_QUANTILES = (0.5,)


@dataclass(frozen=True)
class SummaryFigures:
    """One summary as read: count, sum, min, max, avg and the quantiles both views use."""

    name: str
    count: int
    total: int
    min: int
    max: int
    avg: float
    percentiles: bool
    quantiles: dict[float, int]

    @classmethod
    def of(cls, name: str, s: Summary | None, percentiles: bool) -> SummaryFigures:
        if s is None:
            s = Summary(percentiles)
        qs = {q for q, _ in MNTR_QUANTILES} | set(PROMETHEUS_QUANTILES) if percentiles \
            else set(PROMETHEUS_BASIC_QUANTILES)
        return cls(name, s.count, s.total, s.min, s.max, avg_latency(s.total, s.count),
                   percentiles, {q: s.quantile(q) for q in sorted(qs)})


@dataclass
class Figures:
    """Everything the operator views show, read at one moment on the server's loop."""

    info: list[tuple[str, str]] = field(default_factory=list)        # version, states
    gauges: list[tuple[str, int | float]] = field(default_factory=list)
    counters: list[tuple[str, int]] = field(default_factory=list)
    summaries: list[SummaryFigures] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)         # op name -> requests
    extra: list[tuple[str, Any]] = field(default_factory=list)      # zabby's own mntr keys
    serving: bool = True


def fd_counts() -> tuple[int | None, int | None]:
    """Open file descriptors of this process and its soft limit (None if unknown)."""
    opened = None
    for d in ("/proc/self/fd", "/dev/fd"):
        try:
            opened = len(os.listdir(d))
            break
        except OSError:
            continue
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        maxfd = None if soft == resource.RLIM_INFINITY else soft
    except (OSError, ValueError):
        maxfd = None
    return opened, maxfd


def _lag(last: int, acked: int) -> int:
    """Txns between a learner's acknowledged zxid and the leader's last."""
    if last >> 32 == acked >> 32:
        return max(0, (last & 0xFFFFFFFF) - (acked & 0xFFFFFFFF))
    return last & 0xFFFFFFFF


def figures(server: ZabbyServer,
            fds: tuple[int | None, int | None] | None = None) -> Figures:
    """Read every figure once (call on the server's loop; see ops.bridge).  `fds` is
    ``fd_counts()`` if the caller took it off the loop (listing /proc/self/fd costs
    time with many connections, and needs no server state)."""
    from .fourletter import FULL_VERSION  # fourletter imports this module

    m = server.metrics
    peer = getattr(server, "peer", None)
    mode = getattr(server, "mode", None) or "standalone"
    f = Figures(serving=bool(getattr(server, "serving", True))
                or bool(getattr(server, "read_only", False)))
    f.info.append(("version", FULL_VERSION))
    f.info.append(("server_state", mode))
    role = getattr(server, "role", None)
    if peer is not None:
        f.info.append(("peer_state", f"{role} - {peer.phase or 'election'}"))

    opened, maxfd = fds if fds is not None else fd_counts()
    g = f.gauges
    g += [
        ("avg_latency", m.avg_latency),
        ("max_latency", m.max_latency),
        ("min_latency", m.min_latency),
        ("packets_received", m.packets_received),
        ("packets_sent", m.packets_sent),
        ("num_alive_connections", m.connections),
        ("outstanding_requests", m.outstanding),
        ("znode_count", m.node_count),
        ("watch_count", m.watch_count),
        ("ephemerals_count", m.ephemerals_count),
        ("approximate_data_size", m.approximate_data_size),
    ]
    if opened is not None:
        g.append(("open_file_descriptor_count", opened))
    if maxfd is not None:
        g.append(("max_file_descriptor_count", maxfd))
    g += [
        ("uptime", m.uptime_ms),
        ("global_sessions", m.global_sessions),
        ("local_sessions", m.local_sessions),
        ("connection_drop_probability", 0.0),  # no connection throttling
        ("outstanding_tls_handshake", 0),
    ]
    syncs = {"DIFF": 0, "TRUNC": 0, "SNAP": 0}
    looking = 0
    if peer is not None:
        syncs = peer.syncs_sent
        looking = peer.looking_count
        g.append(("quorum_size", len(peer.voters)))
        if role == "leading":
            voters, non_voting, observers = peer.synced_learner_kinds()
            since = getattr(server, "leading_since", None)
            barriers = getattr(server, "sync_barriers", {})
            g += [
                ("learners", peer.learner_count()),
                ("synced_followers", voters),
                ("synced_non_voting_followers", non_voting),
                ("synced_observers", observers),
                ("pending_syncs", sum(len(v) for v in barriers.values())),
                ("leader_uptime", int((time.monotonic() - since) * 1000) if since else 0),
                ("last_proposal_size", m.last_proposal_size),
                ("max_proposal_size", m.max_proposal_size),
                ("min_proposal_size", m.min_proposal_size),
            ]
            last = peer.last_zxid
            # ZooKeeper's zk_followers: learners connected (leader.getLearners()), synced
            # or not -- beside zk_synced_followers, the ones that finished syncing
            f.extra += [("followers", peer.learner_count())]
            f.extra += [(f"learner_{s}_lag", _lag(last, z))
                        for s, z in sorted(peer.learner_acks().items())]
        f.extra[:0] = [
            ("epoch", peer.epoch),
            ("last_proposed_zxid", peer.last_zxid),
            ("committed_zxid", peer.committed_zxid),
            # a follower's commits learned from the other followers' ACKs before the
            # leader's COMMIT came (zabby's own: ZooKeeper's followers wait for it)
            ("peer_ack_commits", peer.peer_commits),
            # log batches whose ACK the log thread sent with no wake-up of the loop
            # wanted (a follower on which nothing waited for its log)
            ("quiet_log_acks", getattr(server, "quiet_acks", 0)),
        ]

    f.counters += [
        ("commit_count", m.commit_count),
        ("proposal_count", m.proposal_count),
        ("diff_count", syncs["DIFF"] + syncs["TRUNC"]),
        ("snap_count", syncs["SNAP"]),
        ("looking_count", looking),
        ("learner_proposal_received_count", m.learner_proposal_received_count),
        ("learner_commit_received_count", m.learner_commit_received_count),
        ("connection_rejected", m.connection_rejected),
        ("sessionless_connections_expired", m.sessionless_connections_expired),
        ("stale_sessions_expired", m.stale_sessions_expired),
        ("bytes_received_count", m.bytes_received_count),
    ]
    f.summaries += [
        SummaryFigures.of("fsynctime", m.fsynctime, False),
        SummaryFigures.of("snapshottime", m.snapshottime, False),
        SummaryFigures.of("election_time", m.election_time, False),
        SummaryFigures.of("dbinittime", m.dbinittime, False),
        SummaryFigures.of("startup_txns_loaded", m.startup_txns_loaded, False),
        SummaryFigures.of("readlatency", m.readlatency, True),
        SummaryFigures.of("updatelatency", m.updatelatency, True),
        SummaryFigures.of("propagation_latency", m.propagation_latency, True),
        SummaryFigures.of("proposal_latency", m.proposal_latency, True),
        SummaryFigures.of("quorum_ack_latency", m.quorum_ack_latency, True),
    ]
    # QuotaMetricsUtils' gauge sets and the QUOTAEXCEEDED counter set, as
    # "<namespace>_<name>" (only namespaces that have a quota, or a refusal)
    tree = getattr(server, "tree", None)
    if tree is not None and hasattr(tree, "quota_metrics"):
        for name, values in tree.quota_metrics():
            f.extra += [(f"{ns}_{name}", v) for ns, v in values.items()]
        f.extra += [(f"{ns}_quota_exceeded_error_per_namespace", n)
                    for ns, n in tree.quota_exceeded.items()]
    ops: dict[str, int] = {}
    for op, n in m.op_counts.items():
        name = OP_NAMES.get(op, f"unknown_{op}")
        ops[name] = ops.get(name, 0) + n
    f.op_counts = dict(sorted(ops.items()))
    return f


def mntr_pairs(f: Figures) -> list[tuple[str, Any]]:
    """mntr's (key, value) pairs, without the ``zk_`` prefix, from one Figures."""
    out: list[tuple[str, Any]] = list(f.info)
    out += f.gauges
    out += f.counters
    for s in f.summaries:
        out += [(f"avg_{s.name}", s.avg), (f"min_{s.name}", s.min),
                (f"max_{s.name}", s.max), (f"cnt_{s.name}", s.count),
                (f"sum_{s.name}", s.total)]
        if s.percentiles:
            out += [(f"{p}_{s.name}", s.quantiles[q]) for q, p in MNTR_QUANTILES]
    out += [(f"{op}_op_count", n) for op, n in f.op_counts.items()]
    out += f.extra
    return out


def monitor_values(server: ZabbyServer) -> list[tuple[str, Any]]:
    """The (key, value) pairs of mntr, without the ``zk_`` prefix (on the server loop)."""
    return mntr_pairs(figures(server))
