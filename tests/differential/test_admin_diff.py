"""The AdminServer against Apache ZooKeeper 3.8's: every command, same state on both
servers, the JSON compared by shape -- key sets (and order), value types, recursively.
Values that must differ (ids, times, paths, counters, versions) are not compared.

One test per command, so a regression names the command.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient

from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import require_zookeeper

from .conftest import candidate_kind

ZK38_COMMANDS = [
    "configuration", "connection_stat_reset", "connections", "dirs", "dump", "environment",
    "get_trace_mask", "hash", "initial_configuration", "is_read_only", "last_snapshot",
    "leader", "monitor", "observer_connection_stat_reset", "observers", "ruok",
    "server_stats", "set_trace_mask", "stat_reset", "stats", "system_properties",
    "voting_view", "watch_summary", "watches", "watches_by_path", "zabstate",
]

# objects whose keys are data (session ids, times, paths, server ids), not field names
MAPS = {"expiry_time_to_session_ids", "session_id_to_ephemeral_paths",
        "session_id_to_watched_paths", "path_to_session_ids", "current_config"}
# objects Jackson writes from Java beans, whose property order is the JVM's
ORDER_FREE = {"server_stats"}
ADMIN_CFG = {"tickTime": 500, "admin.enableServer": True}


def fetch(srv, name: str, query: str = ""):
    url = f"{srv.admin_url}/{name}{query}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "object"


def shape_diff(ref, cand, where: str = "$", *, order: bool = True) -> list[str]:
    """Differences of shape between two JSON values (empty: same shape)."""
    out: list[str] = []
    if kind(ref) != kind(cand):
        return [f"{where}: {kind(ref)} in ZooKeeper, {kind(cand)} in zabby ({ref!r} / {cand!r})"]
    if isinstance(ref, dict):
        if where.rsplit(".", 1)[-1] in MAPS:
            # compare every entry's shape with ZooKeeper's first entry's
            if ref and cand:
                proto = next(iter(ref.values()))
                for k, v in cand.items():
                    out += shape_diff(proto, v, f"{where}[{k}]", order=order)
            return out
        if set(ref) != set(cand):
            missing, extra = sorted(set(ref) - set(cand)), sorted(set(cand) - set(ref))
            out.append(f"{where}: keys missing in zabby {missing}, extra in zabby {extra}")
        elif order and list(ref) != list(cand):
            out.append(f"{where}: key order {list(ref)} in ZooKeeper, {list(cand)} in zabby")
        for k in ref:
            if k in cand:
                out += shape_diff(ref[k], cand[k], f"{where}.{k}",
                                  order=order and k not in ORDER_FREE)
    elif isinstance(ref, list) and ref and cand:
        for i, v in enumerate(cand):
            out += shape_diff(ref[0], v, f"{where}[{i}]", order=order)
    return out


def _same_state(srv) -> KazooClient:
    c = KazooClient(srv.hosts, timeout=10)
    c.start(15)
    c.create("/adm", b"x")
    c.create("/adm/e", b"", ephemeral=True)
    c.get("/adm", watch=lambda e: None)
    c.exists("/adm-none", watch=lambda e: None)
    return c


@pytest.fixture(scope="module")
def admin_pair(tmp_path_factory):
    require_zookeeper()
    ref = ZooKeeperServer(tmp_path_factory.mktemp("admin-zookeeper"), **ADMIN_CFG)
    cand = None
    clients = []
    try:
        if candidate_kind() == "zookeeper":
            cand = ZooKeeperServer(tmp_path_factory.mktemp("admin-candidate"), **ADMIN_CFG)
        else:
            cand = ZabbyServer(tmp_path_factory.mktemp("admin-zabby"), **ADMIN_CFG)
        clients = [_same_state(ref), _same_state(cand)]
        yield ref, cand
    finally:
        for c in clients:
            c.stop()
            c.close()
        if cand is not None:
            cand.stop()
        ref.stop()


@pytest.mark.parametrize("name", ZK38_COMMANDS)
def test_admin_command_matches_zookeeper(admin_pair, name):
    ref, cand = admin_pair
    query = "?traceMask=306" if name == "set_trace_mask" else ""
    r_status, r_type, r_body = fetch(ref, name, query)
    c_status, c_type, c_body = fetch(cand, name, query)
    assert (c_status, c_type) == (r_status, r_type)
    r_doc, c_doc = json.loads(r_body), json.loads(c_body)
    assert c_doc["command"] == r_doc["command"] == name
    assert (c_doc["error"] is None) == (r_doc["error"] is None), (r_doc, c_doc)
    if name == "environment":
        # the JVM's facts (java.*) are Python's here (python.*): compare the rest
        r_doc, c_doc = ({k: v for k, v in d.items() if not k.startswith(("java.", "python."))}
                        for d in (r_doc, c_doc))
    if name == "system_properties":
        # the JVM's properties are not ours: both flat string maps, same zookeeper.* keys
        assert all(isinstance(v, str) for k, v in c_doc.items() if k not in ("command", "error"))
        zk_keys = {k for k in r_doc if k.startswith("zookeeper.") and "jmx" not in k}
        assert zk_keys <= set(c_doc)
        return
    if name == "monitor":
        # zabby reports what it measures: every key it has must have ZooKeeper's type
        common = {k: r_doc[k] for k in r_doc if k in c_doc}
        assert shape_diff(common, {k: c_doc[k] for k in common}, order=False) == []
        core = {"version", "server_state", "avg_latency", "max_latency", "min_latency",
                "packets_received", "packets_sent", "num_alive_connections",
                "outstanding_requests", "znode_count", "watch_count", "ephemerals_count",
                "approximate_data_size", "open_file_descriptor_count",
                "max_file_descriptor_count", "uptime", "global_sessions"}
        assert core <= set(c_doc), sorted(core - set(c_doc))
        return
    assert shape_diff(r_doc, c_doc) == []


def test_command_list_matches_zookeeper(admin_pair):
    ref, cand = admin_pair
    r_status, _, r_body = fetch(ref, "")
    c_status, _, c_body = fetch(cand, "")
    assert c_status == r_status == 200
    # ours lists 3.9's snapshot and restore too
    extra = {'<a href="/commands/restore">restore</a>', '<a href="/commands/snapshot">snapshot</a>'}
    c_lines = [ln for ln in c_body.decode().splitlines() if ln not in extra]
    # drop the <br/> that followed each removed link
    c_text = "\n".join(c_lines).replace("<br/>\n<br/>", "<br/>")
    assert c_text.split("\n") == r_body.decode().splitlines()


@pytest.mark.parametrize("name", ["nosuch", "RUOK", "ruok/x", "voting"])
def test_unknown_command_matches_zookeeper(admin_pair, name):
    ref, cand = admin_pair
    r = fetch(ref, name)
    c = fetch(cand, name)
    assert (c[0], c[1]) == (r[0], r[1])
    assert json.loads(c[2]) == json.loads(r[2])


def test_bad_trace_mask_matches_zookeeper(admin_pair):
    ref, cand = admin_pair
    for q in ("", "?traceMask=abc"):
        assert json.loads(fetch(cand, "stmk", q)[2]) == json.loads(fetch(ref, "stmk", q)[2])


def test_post_to_a_get_command_is_405_as_in_zookeeper(admin_pair):
    ref, cand = admin_pair
    codes = []
    for srv in (ref, cand):
        req = urllib.request.Request(f"{srv.admin_url}/ruok", data=b"{}", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            codes.append(200)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    assert codes == [405, 405]


# ---------------------------------------------------------------- ensembles
ENSEMBLE_COMMANDS = ["leader", "voting_view", "zabstate", "observers",
                     "observer_connection_stat_reset", "server_stats", "is_read_only"]


@pytest.fixture(scope="module")
def ensemble_pair(tmp_path_factory):
    require_zookeeper()
    from zabby.testing.servers import ZabbyEnsemble, ZooKeeperEnsemble

    cfg = {"admin.enableServer": True}
    ref = ZooKeeperEnsemble(tmp_path_factory.mktemp("admin-zk-ensemble"), 3, **cfg)
    cand = None
    try:
        ref.wait_serving()
        cand = ZabbyEnsemble(tmp_path_factory.mktemp("admin-zabby-ensemble"), 3, **cfg)
        cand.wait_serving()
        yield ref, cand
    finally:
        if cand is not None:
            cand.stop()
        ref.stop()


def _member(ensemble, role: str):
    lead = ensemble.leader()
    i = lead if role == "leader" else next(i for i in ensemble.members if i != lead)
    return ensemble.members[i]


@pytest.mark.parametrize("role", ["leader", "follower"])
@pytest.mark.parametrize("name", ENSEMBLE_COMMANDS)
def test_ensemble_admin_command_matches_zookeeper(ensemble_pair, name, role):
    ref, cand = (_member(e, role) for e in ensemble_pair)
    r_status, r_type, r_body = fetch(ref, name)
    c_status, c_type, c_body = fetch(cand, name)
    assert (c_status, c_type) == (r_status, r_type)
    r_doc, c_doc = json.loads(r_body), json.loads(c_body)
    if name == "server_stats":
        # a ZooKeeper leader adds its proposal statistics; zabby keeps none yet
        r_doc.pop("proposal_stats", None)
    assert shape_diff(r_doc, c_doc) == []


def test_restore_is_refused_on_an_ensemble_member(ensemble_pair):
    """Not a comparison: zabby cannot make a whole ensemble adopt a snapshot, so a
    member refuses restore (and changes nothing) rather than diverge from the quorum."""
    _, cand = ensemble_pair
    m = _member(cand, "follower")
    req = urllib.request.Request(f"{m.admin_url}/restore", data=b"not a snapshot",
                                 method="POST", headers={"Authorization": "digest a:b"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 501
    doc = json.loads(e.value.read())
    assert doc["command"] == "restore" and "ensemble" in doc["error"]
