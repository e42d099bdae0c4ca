"""Prometheus /metrics from a running `zabby serve` (ops.prometheus), its configuration,
and mntr's key set against Apache ZooKeeper 3.8's."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from zabby.ops.monitor import NOT_REPORTED
from zabby.server.config import PROMETHEUS_PROVIDER, ConfigError, parse_config
from zabby.testing import ZabbyServer
from zabby.testing.servers import ZabbyEnsemble, free_port

PROM = {"metricsProvider.className": PROMETHEUS_PROVIDER,
        "metricsProvider.httpHost": "127.0.0.1"}


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    out: dict[tuple[str, tuple], float] = {}
    types: dict[str, str] = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    out[("__types__", ())] = types  # type: ignore[assignment]
    return out


def v(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def wait_for(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = fn()
            if got:
                return got
        except (AssertionError, KeyError, OSError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_one_monitoring_model() -> None:
    """mntr, the AdminServer's monitor and /metrics share ops.monitor; the older import
    path (ops.fourletter.monitor_values) still works."""
    from zabby.ops import fourletter, monitor

    assert fourletter.monitor_values is monitor.monitor_values


# ---------------------------------------------------------------- configuration
BASE = "tickTime=2000\ndataDir=/tmp/zabby-metrics-cfg\nclientPort=2181\n"


def test_config_keys_and_defaults() -> None:
    c = parse_config(BASE, source="zoo.cfg")
    assert c.metrics_provider is None
    c = parse_config(BASE + f"metricsProvider.className={PROMETHEUS_PROVIDER}\n",
                     source="zoo.cfg")
    assert c.metrics_provider == PROMETHEUS_PROVIDER
    assert (c.metrics_http_host, c.metrics_http_port, c.metrics_export_jvm_info) == (
        "0.0.0.0", 7000, True)
    c = parse_config(BASE + f"metricsProvider.className={PROMETHEUS_PROVIDER}\n"
                     "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=9141\n"
                     "metricsProvider.exportJvmInfo=false\nmetricsProvider.numWorkerThreads=4\n",
                     source="zoo.cfg")
    assert (c.metrics_http_host, c.metrics_http_port, c.metrics_export_jvm_info) == (
        "127.0.0.1", 9141, False)
    assert "metricsProvider.numWorkerThreads" not in c.unknown
    # ZooKeeper's own default provider: mntr only, nothing served
    c = parse_config(BASE + "metricsProvider.className="
                     "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider\n", source="zoo.cfg")
    assert c.metrics_provider is None


@pytest.mark.parametrize("line, words", [
    ("metricsProvider.className=com.example.StatsdProvider", "not a metrics provider"),
    ("metricsProvider.httpPort=70000", "port"),
    ("metricsProvider.httpPort=seven", "integer"),
    ("metricsProvider.exportJvmInfo=yes", "boolean"),
])
def test_bad_metrics_config_refused(line: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + line + "\n", source="zoo.cfg")
    assert words in str(info.value)
    assert line.split("=")[0] in str(info.value)


def test_serve_refuses_unknown_provider(tmp_path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort={free_port()}\n"
                   "metricsProvider.className=org.example.NoSuchProvider\n")
    p = subprocess.run([sys.executable, "-m", "zabby.cli.main", "serve", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "metricsProvider.className" in p.stderr
    assert "Traceback" not in p.stderr


def test_serve_refuses_taken_metrics_port(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort={free_port()}\n"
                       f"clientPortAddress=127.0.0.1\nmetricsProvider.className={PROMETHEUS_PROVIDER}\n"
                       f"metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={port}\n")
        p = subprocess.run([sys.executable, "-m", "zabby.cli.main", "serve", "--config",
                            str(cfg)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "cannot start" in p.stderr and "Traceback" not in p.stderr


# ---------------------------------------------------------------- standalone
@pytest.fixture
def served(tmp_path):
    port = free_port()
    srv = ZabbyServer(tmp_path, **PROM, **{"metricsProvider.httpPort": port})
    try:
        yield srv, port
    finally:
        srv.stop()


def test_metrics_move_with_operations(served) -> None:
    srv, port = served
    before = scrape(port)
    types = before[("__types__", ())]
    for g in ("znode_count", "watch_count", "ephemerals_count", "approximate_data_size",
              "outstanding_requests", "num_alive_connections", "global_sessions",
              "packets_received", "packets_sent", "uptime", "open_file_descriptor_count",
              "max_file_descriptor_count"):
        assert types[g] == "gauge", g
    for s in ("readlatency", "updatelatency", "fsynctime", "snapshottime",
              "propagation_latency", "proposal_latency", "quorum_ack_latency", "election_time"):
        assert types[s] == "summary", s
    for c in ("commit_count", "diff_count", "snap_count", "connection_rejected",
              "stale_sessions_expired", "op_count"):
        assert types[c] == "counter", c
    # process info (metricsProvider.exportJvmInfo defaults to true)
    assert v(before, "process_resident_memory_bytes") > 0
    assert ("python_info" in types)
    # ZooKeeper's quantiles for an ADVANCED summary
    for q in ("0.5", "0.9", "0.99"):
        v(before, "readlatency", quantile=q)

    zk = KazooClient(hosts=srv.hosts)
    zk.start(timeout=15)
    try:
        for i in range(5):
            zk.create(f"/m{i}", b"x" * 10)
        for _ in range(7):
            zk.get("/m0")
        zk.exists("/m1")
        zk.get_children("/", watch=lambda e: None)
        after = scrape(port)
        assert v(after, "znode_count") - v(before, "znode_count") == 5
        assert v(after, "num_alive_connections") >= 1
        assert v(after, "global_sessions") >= 1
        assert v(after, "watch_count") >= 1
        assert v(after, "readlatency_count") - v(before, "readlatency_count") >= 9
        assert v(after, "updatelatency_count") - v(before, "updatelatency_count") >= 5
        assert v(after, "fsynctime_count") > v(before, "fsynctime_count")
        assert v(after, "propagation_latency_count") >= 5
        assert v(after, "op_count_total", key="create") == 5
        assert v(after, "op_count_total", key="getData") == 7
        assert v(after, "op_count_total", key="exists") == 1
        assert v(after, "op_count_total", key="createSession") >= 1
        assert v(after, "packets_received") > v(before, "packets_received")
        assert v(after, "bytes_received_count_total") > v(before, "bytes_received_count_total")
        assert v(after, "dbinittime_count") == 1  # once, at start-up
    finally:
        zk.stop()
        zk.close()
    # the same figures as mntr (one model): the op counts agree
    mntr = dict(line.split("\t", 1) for line in srv.four_letter_word("mntr").splitlines())
    again = scrape(port)
    assert int(mntr["zk_getData_op_count"]) == v(again, "op_count_total", key="getData")
    assert int(mntr["zk_create_op_count"]) == 5
    assert int(mntr["zk_cnt_readlatency"]) <= v(again, "readlatency_count")


def test_connection_rejected_counts(tmp_path) -> None:
    port = free_port()
    srv = ZabbyServer(tmp_path, maxClientCnxns=1, **PROM, **{"metricsProvider.httpPort": port,
                                                             "metricsProvider.exportJvmInfo": False})
    try:
        assert ("process_resident_memory_bytes", ()) not in scrape(port)
        import socket

        a = socket.create_connection((srv.host, srv.port))
        b = socket.create_connection((srv.host, srv.port))
        try:
            wait_for(lambda: v(scrape(port), "connection_rejected_total") >= 1)
        finally:
            a.close()
            b.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------- ensemble
def test_ensemble_metrics(tmp_path) -> None:
    ens = ZabbyEnsemble(tmp_path, 3, start=False, tickTime=200)
    ports = {}
    for i, m in ens.members.items():
        ports[i] = free_port()
        m.cfg.update(PROM)
        m.cfg["metricsProvider.httpPort"] = ports[i]
        m.cfg["metricsProvider.exportJvmInfo"] = False
    try:
        ens.start()
        leader = ens.leader()
        followers = [i for i in ens.members if i != leader]
        lead = wait_for(lambda: (s := scrape(ports[leader]))
                        and v(s, "synced_followers") == 2 and s)
        assert v(lead, "quorum_size") == 3
        assert v(lead, "learners") == 2
        assert v(lead, "synced_observers") == 0
        assert v(lead, "pending_syncs") == 0
        assert v(lead, "leader_uptime") >= 0
        assert v(lead, "election_time_count") >= 1
        assert v(lead, "diff_count_total") + v(lead, "snap_count_total") >= 2
        before = v(lead, "commit_count_total")
        zk = KazooClient(hosts=ens.members[followers[0]].hosts)
        zk.start(timeout=15)
        try:
            for i in range(4):
                zk.create(f"/e{i}", b"y")
        finally:
            zk.stop()
            zk.close()
        # the follower answers once it has committed; the leader may count its own commit
        # a moment later (a quorum of followers can ack before the leader's own fsync)
        lead = wait_for(lambda: (s := scrape(ports[leader]))
                        and v(s, "commit_count_total") - before >= 4 and s)
        assert v(lead, "quorum_ack_latency_count") >= 4
        fol = wait_for(lambda: (s := scrape(ports[followers[0]]))
                       and v(s, "proposal_latency_count") >= 4 and s)
        assert v(fol, "quorum_size") == 3
        assert ("synced_followers", ()) not in fol  # a leader's gauge
        assert v(fol, "updatelatency_count") >= 4
        assert v(fol, "learner_commit_received_count_total") >= 4
    finally:
        ens.stop()


# ---------------------------------------------------------------- mntr vs ZooKeeper
_STAT_PREFIXES = ("avg_", "min_", "max_", "cnt_", "sum_", "p50_", "p95_", "p99_", "p999_")


def _omitted(key: str) -> bool:
    """Is ZooKeeper's mntr key (without zk_) one ops.monitor documents as not reported?"""
    names = [key] + [key[len(p):] for p in _STAT_PREFIXES if key.startswith(p)]
    # sets put their key first: <ns>_read_per_namespace, <sid>_learner_handler_qp_size
    return any(n == r or n.endswith("_" + r) for n in names for r in NOT_REPORTED)


def _mntr_keys(text: str) -> set[str]:
    return {line.split("\t", 1)[0].removeprefix("zk_") for line in text.splitlines() if line}


@pytest.mark.differential
def test_mntr_keys_cover_zookeeper(tmp_path) -> None:
    from zabby.testing import ZooKeeperServer
    from zabby.testing.pytest_plugin import require_zookeeper
    from zabby.testing.servers import ZooKeeperEnsemble

    require_zookeeper()

    def load(hosts: str) -> None:
        zk = KazooClient(hosts=hosts)
        zk.start(timeout=30)
        try:
            zk.create("/k", b"v")
            zk.get("/k")
        finally:
            zk.stop()
            zk.close()

    with ZooKeeperServer(tmp_path / "zk") as ref, ZabbyServer(tmp_path / "zabby") as cand:
        load(ref.hosts)
        load(cand.hosts)
        theirs = _mntr_keys(ref.four_letter_word("mntr"))
        ours = _mntr_keys(cand.four_letter_word("mntr"))
    assert len(theirs) > 400
    missing = sorted(k for k in theirs - ours if not _omitted(k))
    assert not missing, f"ZooKeeper standalone mntr keys zabby lacks: {missing}"

    # leader and follower keys
    roles: dict[str, dict[str, set[str]]] = {"zk": {}, "zabby": {}}
    for kind, cls in (("zk", ZooKeeperEnsemble), ("zabby", ZabbyEnsemble)):
        with cls(tmp_path / f"ens-{kind}", 3) as ens:
            load(ens.hosts)
            leader = ens.leader()
            follower = next(i for i in ens.members if i != leader)
            roles[kind]["leader"] = _mntr_keys(ens.members[leader].four_letter_word("mntr"))
            roles[kind]["follower"] = _mntr_keys(
                ens.members[follower].four_letter_word("mntr"))
    for role in ("leader", "follower"):
        theirs, ours = roles["zk"][role], roles["zabby"][role]
        missing = sorted(k for k in theirs - ours if not _omitted(k))
        assert not missing, f"ZooKeeper {role} mntr keys zabby lacks: {missing}"
    assert {"quorum_size", "synced_followers", "learners", "leader_uptime",
            "pending_syncs"} <= roles["zabby"]["leader"]
