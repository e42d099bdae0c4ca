"""A restart changes nothing: SIGTERM + start, and kill -9 + start, give the same tree.

A tree with every node kind (persistent, ephemeral and ephemeral-sequential of
live sessions, persistent-sequential, container, TTL, TTL-sequential, null and
empty data, ACLs with world/digest/ip ids, a node only a digest user can read)
is recorded -- data, ACL and the full Stat of every node -- and compared after
each restart. The next sequential create under a parent must get the number
its cversion promised before the restart. The ephemerals' sessions are
restored: one client comes back with its session id and password within the
timeout and keeps its session and ephemeral past that timeout; the other does
not come back, and its ephemerals live until its timeout, then go.
"""

from __future__ import annotations

import time

from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.testing.servers import ZabbyServer
from zabby.tree import digest_id
from zabby.wire import ACL, XID_AUTH, Err, Id, Op
from zabby.wire.records import (
    AuthPacket,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
)

TICK_MS = 500
SESSION_MS = 3000  # the ephemerals' sessions
ALICE = Id("digest", digest_id("alice:secret"))
DIGEST_ONLY = [ACL(31, ALICE)]
MIXED = [ACL(31, ALICE), ACL(1, Id("world", "anyone")), ACL(3, Id("ip", "10.0.0.0/8"))]


def _client(srv: ZabbyServer, **kw) -> RawClient:
    c = RawClient(srv.host, srv.port, io_timeout=10.0, **kw)
    c.connect()
    return c


def _auth(c: RawClient) -> None:
    c.send_request(Op.AUTH, AuthPacket(0, "digest", b"alice:secret"), xid=XID_AUTH)
    r = c.wait_reply(XID_AUTH, Op.AUTH)
    assert r.err == Err.OK, r


def _ok(r, what: str):
    assert r.err == Err.OK, f"{what}: err {r.err}"
    return r.body


def _create(c: RawClient, path: str, data: bytes | None = b"", acl=OPEN_ACL_UNSAFE, flags: int = 0,
            op: int = Op.CREATE2) -> str:
    return _ok(c.request(op, CreateRequest(path, data, acl, flags)), f"create {path}").path


def _create_ttl(c: RawClient, path: str, data: bytes, flags: int, ttl: int) -> str:
    r = c.request(Op.CREATE_TTL, CreateTTLRequest(path, data, OPEN_ACL_UNSAFE, flags, ttl))
    return _ok(r, f"createTTL {path}").path


def snapshot(srv: ZabbyServer) -> dict[str, tuple]:
    """path -> (data, Stat, ACL, sorted children), read by a digest-authenticated client."""
    c = _client(srv, timeout_ms=SESSION_MS)
    try:
        _auth(c)
        out = {}
        stack = ["/"]
        while stack:
            path = stack.pop()
            d = _ok(c.request(Op.GET_DATA, PathWatchRequest(path, False)), f"getData {path}")
            a = _ok(c.request(Op.GET_ACL, PathRequest(path)), f"getACL {path}")
            ch = _ok(c.request(Op.GET_CHILDREN, PathWatchRequest(path, False)), f"getChildren {path}")
            assert a.stat == d.stat, f"{path}: getACL and getData disagree on the Stat"
            children = sorted(ch.children)
            out[path] = (d.data, d.stat, list(a.acl), children)
            base = "" if path == "/" else path
            stack += [f"{base}/{x}" for x in children if not (path == "/" and x == "zookeeper")]
        return out
    finally:
        c.close()


def diff(before: dict, after: dict) -> list[str]:
    out = []
    for p in sorted(before.keys() | after.keys()):
        if p not in after:
            out.append(f"{p}: missing after the restart")
        elif p not in before:
            out.append(f"{p}: appeared after the restart")
        elif before[p] != after[p]:
            for name, x, y in zip(("data", "stat", "acl", "children"), before[p], after[p], strict=True):
                if x != y:
                    out.append(f"{p}: {name} {x!r} -> {y!r}")
    return out


def build_tree(srv: ZabbyServer) -> tuple[RawClient, RawClient]:
    """Every node kind; returns the two ephemeral owners' clients (still connected)."""
    c = _client(srv, timeout_ms=SESSION_MS)
    _auth(c)
    _create(c, "/app", b"app")
    _create(c, "/app/cfg", b"v0", acl=MIXED)
    for i in range(1, 4):
        _ok(c.request(Op.SET_DATA, SetDataRequest("/app/cfg", b"v%d" % i, i - 1)), "setData")
    _ok(c.request(Op.SET_ACL, SetACLRequest("/app/cfg", OPEN_ACL_UNSAFE, 0)), "setACL")
    _create(c, "/app/secret", b"only alice", acl=DIGEST_ONLY)
    _create(c, "/app/null", None)
    _create(c, "/app/empty", b"")
    _create(c, "/app/\u00fc-\u2603", "unicode \u00fc".encode())
    _create(c, "/app/gone", b"x")
    _ok(c.request(Op.DELETE, DeleteRequest("/app/gone", 0)), "delete")
    _create(c, "/app/again", b"1")
    _ok(c.request(Op.DELETE, DeleteRequest("/app/again", -1)), "delete")
    _create(c, "/app/again", b"2")  # a new czxid
    _create(c, "/app/seq")
    for i in range(3):
        _create(c, "/app/seq/n-", b"%d" % i, flags=2)
    _ok(c.request(Op.DELETE, DeleteRequest("/app/seq/n-0000000001", -1)), "delete seq")
    _create_ttl(c, "/app/seq/t-", b"ttl-seq", flags=6, ttl=3_600_000)
    _create(c, "/cont", b"container", flags=4, op=Op.CREATE_CONTAINER)
    _create(c, "/cont/child", b"keeps it")
    _create_ttl(c, "/ttl", b"ttl", flags=5, ttl=3_600_000)
    _create_ttl(c, "/ttlp", b"short ttl", flags=5, ttl=1000)
    _create(c, "/ttlp/child", b"keeps it")
    _create(c, "/big", bytes(range(256)) * 200)
    a = _client(srv, timeout_ms=SESSION_MS)
    b = _client(srv, timeout_ms=SESSION_MS)
    _create(a, "/app/eph-a", b"a", flags=1)
    _create(b, "/app/eph-b", b"b", flags=1)
    _create(b, "/app/seq/e-", b"b-seq", flags=3)
    c.close()
    return a, b


def next_seq_check(srv: ZabbyServer, snap: dict) -> str:
    """The next sequential create under /app/seq gets the number its Stat promised.

    ZooKeeper numbers children by the parent's count of creates; a client's
    Stat.cversion counts changes (creates + deletes) = 2 * creates - children."""
    st = snap["/app/seq"][1]
    cversion = (st.cversion + st.numChildren) // 2
    c = _client(srv, timeout_ms=SESSION_MS)
    try:
        path = _create(c, "/app/seq/n-", b"after", flags=2)
    finally:
        c.close()
    assert path == f"/app/seq/n-{cversion:010d}", f"next sequential node {path}, expected number {cversion} from {st}"
    return path


def resume(srv: ZabbyServer, old: RawClient) -> RawClient:
    """Reconnect with the saved session id and password."""
    c = RawClient(srv.host, srv.port, timeout_ms=SESSION_MS, session_id=old.session_id,
                  passwd=old.passwd, io_timeout=10.0)
    resp = c.connect()
    assert resp.sessionId == old.session_id and resp.timeOut > 0, \
        f"session 0x{old.session_id:x} was not resumed: {resp}"
    return c


def exists(c: RawClient, path: str) -> bool:
    r = c.request(Op.EXISTS, PathWatchRequest(path, False))
    assert r.err in (Err.OK, Err.NONODE), r
    return r.err == Err.OK


def test_restart_equivalence_and_restored_sessions(tmp_path):
    srv = ZabbyServer(tmp_path, tickTime=TICK_MS, extendedTypesEnabled=True, snapCount=100000)
    a = b = None
    try:
        a, b = build_tree(srv)
        before = snapshot(srv)
        kinds = {p: v[1].ephemeralOwner for p, v in before.items()}
        assert kinds["/app/eph-a"] == a.session_id and kinds["/app/eph-b"] == b.session_id
        assert kinds["/app/seq/e-0000000004"] == b.session_id
        # (a container's and a TTL node's Stat.ephemeralOwner reads 0, as in ZooKeeper)

        # 1. clean stop (SIGTERM) and start
        srv.stop()
        a.drop()
        b.drop()
        srv.start()
        after = snapshot(srv)
        assert not diff(before, after), "after SIGTERM + restart:\n" + "\n".join(diff(before, after))
        a = resume(srv, a)
        next_seq_check(srv, after)
        before = snapshot(srv)

        # 2. kill -9 and start: everything above was acknowledged
        srv.kill()
        a.drop()
        srv.start()
        t_restart = time.monotonic()
        after = snapshot(srv)
        assert not diff(before, after), "after kill -9 + restart:\n" + "\n".join(diff(before, after))
        a = resume(srv, a)
        next_seq_check(srv, after)

        # 3. b never comes back: its ephemerals live until its timeout, then go;
        #    a came back within its timeout and keeps its session past it
        deadline = t_restart + SESSION_MS / 1000 + 3.0
        gone_at = None
        while time.monotonic() < deadline:
            a.ping()
            now = time.monotonic() - t_restart
            alive = exists(a, "/app/eph-b")
            if now < 0.5 * SESSION_MS / 1000:
                assert alive, f"/app/eph-b vanished {now:.2f}s after the restart (timeout {SESSION_MS} ms)"
            if not alive:
                gone_at = now
                break
            time.sleep(0.1)
        assert gone_at is not None, f"/app/eph-b still there {deadline - t_restart:.1f}s after the restart"
        assert gone_at >= 0.5 * SESSION_MS / 1000, f"/app/eph-b expired after {gone_at:.2f}s"
        assert not exists(a, "/app/seq/e-0000000004"), "b's ephemeral-sequential outlived its session"
        assert exists(a, "/app/eph-a"), "a resumed its session, yet its ephemeral is gone"
        a.ping()
        stale = RawClient(srv.host, srv.port, timeout_ms=SESSION_MS, session_id=b.session_id,
                          passwd=b.passwd, io_timeout=10.0)
        resp = stale.connect()
        stale.drop()
        assert resp.timeOut == 0 and resp.sessionId == 0, f"an expired session was resumed: {resp}"
        # the container and the short-TTL node are still what they were: once empty, they go
        for p in ("/cont/child", "/ttlp/child"):
            r = a.request(Op.DELETE, DeleteRequest(p, -1))
            assert r.err == Err.OK, (p, r)
        deadline = time.monotonic() + 5.0
        while (exists(a, "/cont") or exists(a, "/ttlp")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not exists(a, "/cont"), "/cont is no longer a container after the restarts"
        assert not exists(a, "/ttlp"), "/ttlp is no longer a TTL node after the restarts"
        assert exists(a, "/ttl") and exists(a, "/app/seq/t-0000000003")
        # a's session ends when it says so
        a.close()
        a = None
        c = _client(srv, timeout_ms=SESSION_MS)
        try:
            assert not exists(c, "/app/eph-a")
        finally:
            c.close()
    finally:
        for x in (a, b):
            if x is not None:
                x.drop()
        srv.stop()
