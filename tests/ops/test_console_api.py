"""The console's JSON API over plain HTTP: tree operations through a real session with
the caller's identity, error codes as plain messages, and the cross-origin guard."""

from __future__ import annotations

import urllib.request

import pytest
from console_support import ConsoleEnsemble, ConsoleServer, api
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from zabby.testing.pytest_plugin import kazoo_client

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ConsoleServer(tmp_path_factory.mktemp("console-api"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def zk(server):
    client = kazoo_client(server.hosts)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def _fresh(zk, path):
    if zk.exists(path):
        zk.delete(path, recursive=True)


def test_page_and_static_files_are_served(server):
    with urllib.request.urlopen(server.url + "/", timeout=10) as r:
        page = r.read().decode()
        assert r.status == 200 and "zabby console" in page
        assert "Content-Security-Policy" in r.headers
    for name in ("console.js", "console.css"):
        with urllib.request.urlopen(f"{server.url}/console/static/{name}", timeout=10) as r:
            assert r.status == 200 and len(r.read()) > 500


def test_browse_read_and_search(server, zk):
    _fresh(zk, "/api-t")
    zk.create("/api-t/svc/conf", b'{"a": [1, 2]}', makepath=True)
    zk.create("/api-t/svc/bin", b"\x00\xff\x10")
    zk.create("/api-t/other", b"")
    st, r = api(server.url, "GET", "/api/console/children?path=/api-t")
    assert st == 200
    assert [(c["name"], c["numChildren"]) for c in r["children"]] == [("other", 0), ("svc", 2)]
    st, r = api(server.url, "GET", "/api/console/node?path=/api-t/svc/conf")
    assert st == 200
    assert r["data"]["text"] == '{"a": [1, 2]}'
    assert r["data"]["json"] == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert r["stat"]["version"] == 0 and r["stat"]["dataLength"] == 13
    assert r["acl"] == [{"scheme": "world", "id": "anyone", "perms": 31, "permsText": "cdrwa"}]
    st, r = api(server.url, "GET", "/api/console/node?path=/api-t/svc/bin")
    assert r["data"]["text"] is None and r["data"]["base64"] == "AP8Q"
    st, r = api(server.url, "GET", "/api/console/search?prefix=/api-t/s")
    assert r["paths"] == ["/api-t/svc", "/api-t/svc/bin", "/api-t/svc/conf"]
    st, r = api(server.url, "GET", "/api/console/search?prefix=/api-t/")
    assert r["paths"][:2] == ["/api-t/other", "/api-t/svc"] and len(r["paths"]) == 4


def test_error_codes_become_plain_messages(server, zk):
    _fresh(zk, "/api-e")
    zk.create("/api-e/child", b"x", makepath=True)
    st, r = api(server.url, "GET", "/api/console/node?path=/api-e/nope")
    assert (st, r["error"]) == (404, "NONODE") and "no such node: /api-e/nope" in r["message"]
    st, r = api(server.url, "POST", "/api/console/node", {"path": "/api-e/child", "data": ""})
    assert (st, r["error"]) == (409, "NODEEXISTS")
    st, r = api(server.url, "PUT", "/api/console/node",
                {"path": "/api-e/child", "data": "y", "version": 7})
    assert (st, r["error"]) == (409, "BADVERSION") and "version" in r["message"]
    assert zk.get("/api-e/child")[0] == b"x"
    st, r = api(server.url, "DELETE", "/api/console/node?path=/api-e")
    assert (st, r["error"]) == (409, "NOTEMPTY") and "recursively" in r["message"]
    st, r = api(server.url, "POST", "/api/console/node", {"path": "no-slash"})
    assert st == 400
    st, r = api(server.url, "PUT", "/api/console/node", {"path": "/api-e/child", "version": "x"})
    assert st == 400
    st, r = api(server.url, "POST", "/api/console/node", {"path": "/api-e/bad//path"})
    assert (st, r["error"]) == (400, "BADREQUEST") and "invalid path" in r["message"]


def test_acls_apply_to_the_identity_the_browser_gives(server, zk):
    _fresh(zk, "/api-acl")
    acl = [make_digest_acl("alice", "secret", all=True), make_digest_acl("bob", "pw", read=True)]
    zk.create("/api-acl", b"v1", acl=acl)
    zk.add_auth("digest", "alice:secret")  # the test's own client checks as alice
    # anonymous: may not even read
    st, r = api(server.url, "GET", "/api/console/node?path=/api-acl")
    assert (st, r["error"]) == (403, "NOAUTH")
    assert r["message"].startswith("not allowed: anonymous")
    # bob may read but not write
    st, r = api(server.url, "GET", "/api/console/node?path=/api-acl", auth="bob:pw")
    assert st == 200 and r["data"]["text"] == "v1"
    st, r = api(server.url, "PUT", "/api/console/node", {"path": "/api-acl", "data": "bob"},
                auth="bob:pw")
    assert (st, r["error"]) == (403, "NOAUTH")
    assert "not allowed: digest user 'bob' may not write /api-acl" in r["message"]
    # a wrong password is just another identity: refused the same way
    st, r = api(server.url, "PUT", "/api/console/node", {"path": "/api-acl", "data": "eve"},
                auth="alice:wrong")
    assert (st, r["error"]) == (403, "NOAUTH")
    assert zk.get("/api-acl")[0] == b"v1"
    # alice may
    st, r = api(server.url, "PUT", "/api/console/node",
                {"path": "/api-acl", "data": "v2", "version": 0}, auth="alice:secret")
    assert st == 200 and r["stat"]["version"] == 1
    assert zk.get("/api-acl")[0] == b"v2"
    st, r = api(server.url, "DELETE", "/api/console/node?path=/api-acl", auth="bob:pw")
    assert st == 200  # delete needs DELETE on the parent (/), which is open
    assert zk.exists("/api-acl") is None


def test_private_create_uses_the_creators_identity(server, zk):
    _fresh(zk, "/api-priv")
    st, r = api(server.url, "POST", "/api/console/node",
                {"path": "/api-priv", "data": "s", "acl": [{"scheme": "auth", "id": "",
                                                             "perms": "cdrwa"}]},
                auth="carol:pw")
    assert st == 201, r
    st, r = api(server.url, "GET", "/api/console/node?path=/api-priv")
    assert st == 403
    st, r = api(server.url, "GET", "/api/console/node?path=/api-priv", auth="carol:pw")
    assert st == 200 and r["acl"][0]["scheme"] == "digest"
    zk.add_auth("digest", "carol:pw")
    zk.delete("/api-priv")


def test_recursive_delete_counts_first_and_checks_the_count(server, zk):
    _fresh(zk, "/api-rm")
    for p in ("/api-rm/a/x", "/api-rm/a/y", "/api-rm/b"):
        zk.create(p, b"", makepath=True)
    st, r = api(server.url, "GET", "/api/console/count?path=/api-rm")
    assert r == {"path": "/api-rm", "count": 5, "descendants": 4}
    zk.create("/api-rm/c")
    st, r = api(server.url, "DELETE", "/api/console/node?path=/api-rm&recursive=1&expect=5")
    assert (st, r["error"]) == (409, "CHANGED")
    assert zk.exists("/api-rm/c")
    st, r = api(server.url, "DELETE", "/api/console/node?path=/api-rm&recursive=1&expect=6")
    assert (st, r["deleted"]) == (200, 6)
    assert zk.exists("/api-rm") is None


def test_recursive_delete_stops_at_a_node_the_user_may_not_delete(server, zk):
    _fresh(zk, "/api-rmacl")
    zk.create("/api-rmacl", b"")
    zk.create("/api-rmacl/locked", b"", acl=[
        make_digest_acl("alice", "secret", all=True),
        ACL(Permissions.READ | Permissions.CREATE, Id("world", "anyone"))])
    zk.create("/api-rmacl/locked/k", b"")
    st, r = api(server.url, "DELETE", "/api/console/node?path=/api-rmacl&recursive=1")
    assert (st, r["error"]) == (403, "NOAUTH")
    assert "/api-rmacl/locked/k" in r["message"]
    assert zk.exists("/api-rmacl/locked/k")
    zk.add_auth("digest", "alice:secret")
    zk.delete("/api-rmacl", recursive=True)


def test_the_api_refuses_other_origins_and_plain_form_posts(server, zk):
    body = {"path": "/api-csrf", "data": "x"}
    st, r = api(server.url, "POST", "/api/console/node", body, console_header=False)
    assert st == 403 and "X-Zabby-Console" in r["message"]
    st, r = api(server.url, "POST", "/api/console/node", body,
                headers={"Origin": "http://evil.example"})
    assert st == 403 and "cross-origin" in r["message"]
    st, r = api(server.url, "POST", "/api/console/node", body, headers={"Origin": "null"})
    assert st == 403
    assert zk.exists("/api-csrf") is None
    st, r = api(server.url, "POST", "/api/console/node", body,
                headers={"Origin": server.url})
    assert st == 201
    zk.delete("/api-csrf")


def test_overview_and_standalone_ensemble(server, zk):
    st, r = api(server.url, "GET", "/api/console/overview")
    assert st == 200
    before = r["values"]["packets_received"]
    for _ in range(5):
        zk.exists("/")
    st, r = api(server.url, "GET", "/api/console/overview")
    assert r["values"]["packets_received"] >= before + 5
    assert r["values"]["server_state"] == "standalone"
    assert "avg_latency" in r["values"] and "global_sessions" in r["values"]
    st, r = api(server.url, "GET", "/api/console/ensemble")
    assert st == 200 and r["standalone"]
    [m] = r["members"]
    assert m["mode"] == "standalone" and m["port"] == server.port and m["lag"] == 0


def test_ensemble_view_through_every_member_and_with_one_down(tmp_path):
    ens = ConsoleEnsemble(tmp_path, 3)
    try:
        leader = ens.leader()
        client = kazoo_client(ens.hosts)
        try:
            for i in range(5):
                client.create(f"/ens-{i}", b"")
        finally:
            client.stop()
            client.close()
        for i, member in ens.members.items():
            st, r = api(member.url, "GET", "/api/console/ensemble")
            assert st == 200 and not r["standalone"]
            assert r["leader"] == leader and r["leaders"] == [leader]
            modes = {m["id"]: m["mode"] for m in r["members"]}
            assert modes == {j: ("leader" if j == leader else "follower") for j in (1, 2, 3)}
            assert [m["id"] for m in r["members"] if m["self"]] == [i]
            for m in r["members"]:
                assert m["epoch"] == r["members"][leader - 1]["epoch"]
                assert isinstance(m["lag"], int) and m["lag"] >= 0
            # the tree through this member's console
            st, r = api(member.url, "GET", "/api/console/search?prefix=/ens-")
            assert r["paths"] == [f"/ens-{j}" for j in range(5)]
        down = next(i for i in ens.members if i != leader)
        other = next(i for i in ens.members if i not in (leader, down))
        ens.kill(down)
        st, r = api(ens.members[other].url, "GET", "/api/console/ensemble")
        by_id = {m["id"]: m for m in r["members"]}
        assert r["leader"] == leader
        assert "no answer" in by_id[down]["error"] and by_id[down]["lag"] is None
        assert by_id[other]["mode"] == "follower"
    finally:
        ens.stop()


def test_the_static_files_are_package_data():
    """A non-editable install ships the page: pyproject's package-data covers static/."""
    import tomllib
    from pathlib import Path

    import zabby.ops.console as console

    root = Path(__file__).resolve().parents[2]
    cfg = tomllib.loads((root / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["zabby.ops.console"]
    static = Path(console.__file__).parent
    shipped = {p for g in globs for p in static.glob(g) if p.is_file()}
    assert {p for p in (static / "static").rglob("*") if p.is_file()} <= shipped
    assert (static / "static" / "index.html") in shipped


def test_sessions_are_reused_per_identity_and_closed_when_idle(server):
    import asyncio

    from zabby.ops.console import Sessions

    async def main():
        async def address():
            return ("127.0.0.1", server.port)

        sessions = Sessions(address)
        sessions.IDLE = 0.4
        a = await sessions.get("alice:x")
        assert await sessions.get("alice:x") is a
        b = await sessions.get(None)
        assert b is not a and b.session_id != a.session_id
        await asyncio.sleep(1.0)  # idle: the reaper closes both sessions
        assert a.closed and b.closed and not sessions.clients
        c = await sessions.get("alice:x")
        assert c is not a and not c.closed
        assert (await c.get_data("/"))[0] == b""
        await sessions.close()
        assert c.closed

    asyncio.run(main())
