"""The AdminServer on a real `zabby serve`: command URL, aliases, errors, status codes,
snapshot/restore authentication and rate limits, a port already taken."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from zabby.ops.admin.commands import COMMANDS, PRIMARY_NAMES
from zabby.ops.admin.jsonout import encode
from zabby.server.config import parse_config
from zabby.testing.servers import ZabbyServer, free_port

ZK38 = {
    "configuration": ("conf", "config"), "connection_stat_reset": ("crst",),
    "connections": ("cons",), "dirs": (), "dump": (), "environment": ("env", "envi"),
    "get_trace_mask": ("gtmk",), "hash": (), "initial_configuration": ("icfg",),
    "is_read_only": ("isro",), "last_snapshot": ("lsnp",), "leader": ("lead",),
    "monitor": ("mntr",), "observer_connection_stat_reset": ("orst",),
    "observers": ("obsr",), "ruok": (), "server_stats": ("srvr",),
    "set_trace_mask": ("stmk",), "stat_reset": ("srst",), "stats": ("stat",),
    "system_properties": ("sysp",), "voting_view": (), "watch_summary": ("wchs",),
    "watches": ("wchc",), "watches_by_path": ("wchp",), "zabstate": (),
}


@contextlib.contextmanager
def client(hosts: str):
    c = KazooClient(hosts, timeout=10)
    c.start(10)
    try:
        yield c
    finally:
        c.stop()
        c.close()


def get(url: str, headers: dict | None = None, method: str = "GET", data: bytes | None = None):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str, **kw):
    status, headers, body = get(url, **kw)
    return status, json.loads(body)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ZabbyServer(tmp_path_factory.mktemp("admin"), **{
        "admin.enableServer": True, "admin.rateLimiterIntervalInMS": 600000})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def zk(srv):
    c = KazooClient(srv.hosts, timeout=10)
    c.start(10)
    try:
        yield c
    finally:
        c.stop()
        c.close()


def test_every_zookeeper_38_command_and_alias_is_known():
    for primary, aliases in ZK38.items():
        assert COMMANDS[primary].primary == primary
        for a in aliases:
            assert COMMANDS[a].primary == primary, a
    # 3.9's additions; "voting" is no alias in 3.8
    assert set(PRIMARY_NAMES) == set(ZK38) | {"snapshot", "restore"}
    assert "voting" not in COMMANDS


def test_command_list_is_html_links(srv):
    status, headers, body = get(srv.admin_url)
    assert status == 200
    text = body.decode()
    names = sorted(ZK38) + ["restore", "snapshot"]
    assert text == "".join(f'<a href="/commands/{n}">{n}</a>\n<br/>\n' for n in sorted(names))
    assert get(srv.admin_url + "/")[2] == body


def test_every_alias_answers_with_its_primary_name(srv, zk):
    for primary, aliases in ZK38.items():
        for name in (primary, *aliases):
            status, doc = get_json(f"{srv.admin_url}/{name}")
            assert status == 200, name
            assert doc["command"] == primary, name
            if primary not in ("leader", "set_trace_mask"):
                assert doc["error"] is None, (name, doc)


def test_unknown_command_is_200_with_an_error(srv):
    for name in ("nosuch", "RUOK", "ruok/x", "voting"):
        status, doc = get_json(f"{srv.admin_url}/{name}")
        assert status == 200
        assert doc == {"command": name, "error": f"Unknown command: {name}"}


def test_standalone_answers_for_ensemble_commands(srv):
    assert get_json(f"{srv.admin_url}/leader")[1] == {
        "error": "server is not initialized", "command": "leader"}
    assert get_json(f"{srv.admin_url}/voting_view")[1]["current_config"] == {}
    doc = get_json(f"{srv.admin_url}/zabstate")[1]
    assert (doc["voting"], doc["zabstate"]) == (False, "")
    doc = get_json(f"{srv.admin_url}/observers")[1]
    assert (doc["synced_observers"], doc["observers"]) == (0, [])


def test_trace_mask(srv):
    u = srv.admin_url
    assert get_json(f"{u}/stmk")[1]["error"] == "setTraceMask requires long traceMask argument"
    assert get_json(f"{u}/stmk?traceMask=abc")[1]["error"] == (
        "setTraceMask requires long traceMask argument, got abc")
    assert get_json(f"{u}/set_trace_mask?traceMask=5")[1]["tracemask"] == 5
    assert get_json(f"{u}/gtmk")[1]["tracemask"] == 5
    # the four-letter word sees the same mask
    assert srv.four_letter_word("gtmk") == "5"
    get_json(f"{u}/stmk?traceMask=306")


def test_json_layout_is_jacksons():
    assert encode({"a": 1, "b": [1, 2], "c": [], "d": {}, "e": 0.0, "f": None,
                   "g": [{"x": True}]}).decode() == (
        '{\n  "a" : 1,\n  "b" : [ 1, 2 ],\n  "c" : [ ],\n  "d" : { },\n  "e" : 0.0,\n'
        '  "f" : null,\n  "g" : [ {\n    "x" : true\n  } ]\n}')


def test_data_commands_see_the_server(srv, zk):
    zk.create("/adm-e", b"", ephemeral=True)
    zk.ensure_path("/adm-w")
    zk.get("/adm-w", watch=lambda e: None)
    sid = zk.client_id[0]
    u = srv.admin_url
    dump = get_json(f"{u}/dump")[1]
    assert "/adm-e" in dump["session_id_to_ephemeral_paths"][str(sid)]
    assert any(sid in v for v in dump["expiry_time_to_session_ids"].values())
    assert "/adm-w" in get_json(f"{u}/watches")[1]["session_id_to_watched_paths"][str(sid)]
    assert sid in get_json(f"{u}/watches_by_path")[1]["path_to_session_ids"]["/adm-w"]
    cons = get_json(f"{u}/cons")[1]["connections"]
    assert sid in [c["session_id"] for c in cons]
    stat = get_json(f"{u}/stat")[1]
    assert stat["server_stats"]["server_state"] == "standalone"
    assert stat["node_count"] == get_json(f"{u}/mntr")[1]["znode_count"]
    icfg = get_json(f"{u}/icfg")[1]["initial_configuration"]
    assert f"clientPort={srv.port}" in icfg
    assert get_json(f"{u}/sysp")[1]["zookeeper.admin.enableServer"] == "true"
    assert srv.four_letter_word("ruok") == "imok"


def test_post_is_refused_on_get_commands(srv):
    status, _, _ = get(f"{srv.admin_url}/ruok", method="POST", data=b"{}")
    assert status == 405
    status, _, _ = get(f"{srv.admin_url}/restore")
    assert status == 405


def test_snapshot_needs_an_identity_with_all_on_root(tmp_path, zk):
    s = ZabbyServer(tmp_path, **{"admin.enableServer": True,
                                  "admin.rateLimiterIntervalInMS": 600000})
    c = KazooClient(s.hosts, timeout=10)
    try:
        c.start(10)
        c.create("/snap-a", b"x" * 100)
        u = f"{s.admin_url}/snapshot"
        status, doc = get_json(u)
        assert (status, doc["error"]) == (401, "Auth info is missing for the command")
        status, doc = get_json(u, headers={"Authorization": "nosuch x"})
        assert (status, doc["error"]) == (401, "Not authenticated")
        # only "admin" may do everything on "/"
        c.add_auth("digest", "admin:pw")
        c.set_acls("/", [make_digest_acl("admin", "pw", all=True)])
        status, doc = get_json(u, headers={"Authorization": "digest someone:else"})
        assert (status, doc["error"]) == (403, "Not authorized")
        status, headers, body = get(u, headers={"Authorization": "digest admin:pw"})
        assert status == 200, body
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["last_zxid"].startswith("0x")
        assert int(headers["snapshot_size"]) == len(body) > 0
        assert body[:8] == b"ZABBYSNP"
        # one per admin.rateLimiterIntervalInMS
        status, doc = get_json(u, headers={"Authorization": "digest admin:pw"})
        assert (status, doc["command"]) == (429, "snapshot")
        # the snapshot is one the server can start from
        lsnp = get_json(f"{s.admin_url}/lsnp")[1]
        assert "0x" + lsnp["zxid"] == headers["last_zxid"]

        # restore: authenticated, validated fully, then refused (501)
        r = f"{s.admin_url}/restore"
        status, doc = get_json(r, method="POST", data=body)
        assert status == 401
        auth = {"Authorization": "digest admin:pw"}
        status, doc = get_json(r, method="POST", data=body[:-20] + b"\0" * 20, headers=auth)
        assert status == 400 and "not valid" in doc["error"], doc
        status, doc = get_json(r, method="POST", data=body, headers=auth)
        assert status == 429  # the bad stream used this interval's restore
    finally:
        c.stop()
        c.close()
        s.stop()


def test_restore_replaces_the_data_and_survives_a_restart(tmp_path):
    s = ZabbyServer(tmp_path, **{"admin.enableServer": True,
                                  "admin.rateLimiterIntervalInMS": 0})
    c = KazooClient(s.hosts, timeout=10)
    try:
        c.start(10)
        c.create("/keep", b"before")
        c.create("/keep/child", b"c")
        auth = {"Authorization": "digest any:one"}  # "/" is open to anyone
        status, doc = get_json(f"{s.admin_url}/snapshot?streaming=false", headers=auth)
        assert status == 200 and doc == {"command": "snapshot", "error": None}
        status, headers, snap = get(f"{s.admin_url}/snapshot", headers=auth)
        assert status == 200
        # later changes, which the restore must undo
        c.set("/keep", b"after")
        c.delete("/keep/child")
        c.create("/later", b"x")
        for i in range(50):
            c.create(f"/later/n{i}", b"y")
        before_zxid = int(get_json(f"{s.admin_url}/srvr")[1]["server_stats"]["last_processed_zxid"])
        c.stop()

        status, doc = get_json(f"{s.admin_url}/restore", method="POST", data=snap, headers=auth)
        assert status == 200, doc
        assert doc["command"] == "restore" and doc["error"] is None
        assert doc["last_zxid"] >= before_zxid  # zxids go on past the log's end

        def check(client):
            assert client.get("/keep")[0] == b"before"
            assert client.get("/keep/child")[0] == b"c"
            assert client.exists("/later") is None

        c = KazooClient(s.hosts, timeout=10)
        c.start(10)
        check(c)
        c.create("/after-restore", b"z")  # logged after the restored snapshot
        c.stop()
        c.close()

        s.stop()
        s.start()
        c = KazooClient(s.hosts, timeout=10)
        c.start(10)
        check(c)
        assert c.get("/after-restore")[0] == b"z"
    finally:
        c.stop()
        c.close()
        s.stop()


def test_server_keeps_serving_when_the_admin_port_is_taken(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = ZabbyServer(tmp_path, **{"admin.enableServer": True, "admin.serverPort": port})
        try:
            assert s.ruok()
            assert "Problem starting AdminServer" in s.log_path.read_text()
        finally:
            s.stop()


def test_command_url_and_idle_timeout_keys():
    c = parse_config("dataDir=/tmp/x\nadmin.commandURL=/zk/\nadmin.idleTimeout=5000\n")
    assert (c.admin_command_url, c.admin_idle_timeout) == ("/zk", 5000)
    assert "admin.commandURL" not in c.unknown


def test_custom_command_url(tmp_path):
    port = free_port()
    s = ZabbyServer(tmp_path, **{"admin.enableServer": True, "admin.serverPort": port,
                                  "admin.commandURL": "/zk"})
    try:
        assert s.admin_url.endswith("/zk")
        assert get_json(f"{s.admin_url}/ruok")[1] == {"command": "ruok", "error": None}
        assert get(f"http://127.0.0.1:{port}/commands/ruok")[0] == 404
    finally:
        s.stop()


def test_restore_onto_a_fresh_server_with_a_shorter_log(tmp_path):
    """The snapshot's zxid is past everything the target logged: the log goes on from
    the snapshot's zxid, and a restart finds the restored data."""
    auth = {"Authorization": "digest any:one"}
    a = ZabbyServer(tmp_path / "a", **{"admin.enableServer": True})
    try:
        with client(a.hosts) as ca:
            for i in range(30):
                ca.create(f"/a{i}", b"from-a")
            ca.create("/eph", b"", ephemeral=True)
            status, _, snap = get(f"{a.admin_url}/snapshot", headers=auth)
            assert status == 200
    finally:
        a.stop()
    b = ZabbyServer(tmp_path / "b", **{"admin.enableServer": True})
    try:
        with client(b.hosts) as cb:
            cb.create("/only-b", b"")
        status, doc = get_json(f"{b.admin_url}/restore", method="POST", data=snap, headers=auth)
        assert status == 200, doc
        # the snapshot's session came along, with its ephemeral node
        dump = get_json(f"{b.admin_url}/dump")[1]
        assert ["/eph"] in dump["session_id_to_ephemeral_paths"].values()
        with client(b.hosts) as cb:
            cb.create("/after", b"")
        b.stop()
        b.start()
        with client(b.hosts) as cb:
            assert cb.get("/a29")[0] == b"from-a"
            assert cb.exists("/only-b") is None
            assert cb.exists("/after") is not None
    finally:
        b.stop()


def test_restore_under_writes_keeps_memory_and_disk_the_same(tmp_path):
    """Writes race the restore; whatever the server shows afterwards is what a restart
    brings back (no write lands on the old state after the snapshot, none is lost)."""
    import threading

    auth = {"Authorization": "digest any:one"}
    s = ZabbyServer(tmp_path, **{"admin.enableServer": True})
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                c = KazooClient(s.hosts, timeout=5)
                c.start(5)
                while not stop.is_set():
                    c.create("/w/n", b"", sequence=True, makepath=True)
                    n += 1
            except Exception:
                time.sleep(0.05)
            finally:
                try:
                    c.stop()
                    c.close()
                except Exception:
                    pass

    try:
        with client(s.hosts) as c:
            c.create("/w", b"")
            c.create("/w/base", b"")
        status, _, snap = get(f"{s.admin_url}/snapshot", headers=auth)
        assert status == 200
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(1.0)
        status, doc = get_json(f"{s.admin_url}/restore", method="POST", data=snap, headers=auth)
        assert status == 200, doc
        time.sleep(1.0)
        stop.set()
        t.join(30)
        with client(s.hosts) as c:
            before = sorted(c.get_children("/w"))
        assert "base" in before
        assert len(before) > 1  # the snapshot held only "base": these came after restore
        s.stop()
        s.start()
        with client(s.hosts) as c:
            assert sorted(c.get_children("/w")) == before
    finally:
        stop.set()
        s.stop()


def test_idle_connections_close_after_idle_timeout(tmp_path):
    s = ZabbyServer(tmp_path, **{"admin.enableServer": True, "admin.idleTimeout": 300})
    try:
        host, port = s.cfg["admin.serverAddress"], s.cfg["admin.serverPort"]
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b'"error" : null' not in got:
                got += sock.recv(65536)
            assert got.startswith(b"HTTP/1.1 200")
            t0 = time.monotonic()
            assert sock.recv(65536) == b""  # closed by the server once idle
            assert time.monotonic() - t0 < 5
    finally:
        s.stop()


def test_zabby_serve_serves_the_web_console_beside_the_commands(srv, zk):
    """`zabby serve` hangs the console on the AdminServer: the page at /, its API answering
    through the protocol (a znode made by kazoo is listed)."""
    zk.ensure_path("/console-probe/child")
    root = srv.admin_url.removesuffix("/commands")
    status, _, body = get(root + "/")
    assert status == 200 and b"<html" in body.lower()
    status, _, body = get(root + "/api/console/children?path=/console-probe",
                          headers={"X-Zabby-Console": "1"})
    assert status == 200, body
    assert '"child"' in body.decode(), body
