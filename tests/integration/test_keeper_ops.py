"""ClickHouse Keeper's extension opcodes on a running zabby (zabby.keeperExtensions=true),
byte for byte: request layouts, reply bodies, error codes, ACL refusals, watches, and
Keeper's feature discovery (/keeper/api_version, /keeper/feature_flags, apiv, ftfl)."""

from __future__ import annotations

import contextlib
import random
import socket
import struct

import pytest

from zabby.client import NodeExistsError, NotEmptyError, SyncClient
from zabby.testing import ZabbyServer
from zabby.testing.hostile import handshake
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, RawClient
from zabby.wire import ACL, Err, EventType, Id, MultiRequest, MultiResponse, Op
from zabby.wire.keeper import (
    CHECK_NOT_EXISTS,
    CREATE_IF_NOT_EXISTS,
    FILTERED_LIST,
    LIST_RECURSIVE,
    REMOVE_RECURSIVE,
    FilteredListRequest,
    ListRecursiveRequest,
    RemoveRecursiveRequest,
)
from zabby.wire.protocol import encode_request
from zabby.wire.records import (
    CheckVersionRequest,
    CreateRequest,
    GetChildren2Response,
    PathWatchRequest,
    SetDataRequest,
)

# every permission but DELETE / but CREATE, for anyone
NO_DELETE = [ACL(31 & ~8, Id("world", "anyone"))]


@pytest.fixture(scope="module")
def keeper_server(tmp_path_factory):
    srv = ZabbyServer(tmp_path_factory.mktemp("keeper"), tickTime=500,
                      **{"zabby.keeperExtensions": "true", "4lw.commands.whitelist": "*"})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def raw(keeper_server):
    clients = []

    def make() -> RawClient:
        c = RawClient(keeper_server.host, keeper_server.port, io_timeout=10)
        c.open()
        c.connect()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.drop()


def _create(c, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0):
    r = c.request(Op.CREATE, CreateRequest(path, data, acl, flags))
    assert r.err == 0, (path, r)


def _ustring(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def test_request_layouts_are_keepers():
    """Keeper's serialisation: path, watch, a one-byte list type; path, uint32 limit."""
    assert encode_request(7, FILTERED_LIST, FilteredListRequest("/a", True, 2)) == (
        struct.pack(">iii", 4 + 4 + 4 + 2 + 2, 7, 500) + _ustring("/a") + b"\x01\x02")
    assert RemoveRecursiveRequest("/a", 0xFFFFFFFF).to_bytes() == _ustring("/a") + b"\xff" * 4
    # older ClickHouse clients sent the list type as a 4-byte int
    old_layout = _ustring("/a") + b"\x00" + struct.pack(">i", 2)
    assert FilteredListRequest.decode(old_layout) == FilteredListRequest("/a", False, 2)
    assert ListRecursiveRequest.decode(_ustring("/x") + b"\x00\x00\x00\x05").limit == 5
    assert RemoveRecursiveRequest.decode(RemoveRecursiveRequest("/a", 3).to_bytes()).limit == 3


def test_create_if_not_exists(raw):
    c = raw()
    r = c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/cine", b"v1", OPEN_ACL_UNSAFE, 0))
    assert (r.err, r.raw) == (0, _ustring("/cine"))  # a create's reply: the path
    data, stat = c.request(Op.GET_DATA, PathWatchRequest("/cine", False)).body.data, None
    assert data == b"v1"
    stat = c.request(Op.EXISTS, PathWatchRequest("/cine", True)).body.stat
    # there already: the same reply, nothing changed, no watch fired
    r = c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/cine", b"v2", OPEN_ACL_UNSAFE, 0))
    assert (r.err, r.raw) == (0, _ustring("/cine"))
    got = c.request(Op.GET_DATA, PathWatchRequest("/cine", False)).body
    assert got.data == b"v1" and got.stat == stat
    # errors: sequential refused, missing parent, no CREATE on the parent
    r = c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/cine/s-", b"", OPEN_ACL_UNSAFE, 2))
    assert (r.err, r.raw) == (Err.BADARGUMENTS, b"")
    r = c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/nope/x", b"", OPEN_ACL_UNSAFE, 0))
    assert r.err == Err.NONODE
    r = c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/nope/x", b"", OPEN_ACL_UNSAFE, 2))
    assert r.err == Err.NONODE  # Keeper looks at the parent before the flags
    _create(c, "/cine-ro", acl=READ_ACL_UNSAFE)
    r = c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/cine-ro/x", b"", OPEN_ACL_UNSAFE, 0))
    assert r.err == Err.NOAUTH
    c.ping()
    assert c.events == []


def test_remove_recursive_is_atomic_fires_watches_and_checks_acls(raw):
    c, w = raw(), raw()
    for p in ("/rr", "/rr/a", "/rr/a/x", "/rr/b"):
        _create(c, p)
    c.request(Op.CREATE, CreateRequest("/rr/e", b"", OPEN_ACL_UNSAFE, 1))  # ephemeral
    # watches of another session: data on a leaf, children on the root's parent
    assert w.request(Op.GET_DATA, PathWatchRequest("/rr/a/x", True)).err == 0
    assert w.request(Op.EXISTS, PathWatchRequest("/rr", True)).err == 0
    assert w.request(Op.GET_CHILDREN, PathWatchRequest("/", True)).err == 0
    # the limit: 5 nodes do not fit in 4 -> NOTEMPTY, nothing removed
    r = c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/rr", 4))
    assert (r.err, r.raw) == (Err.NOTEMPTY, b"")
    assert c.request(Op.EXISTS, PathWatchRequest("/rr/a/x", False)).err == 0
    # one node without DELETE for anyone: NOAUTH, nothing removed
    c.request(Op.SET_ACL, _set_acl("/rr/b", NO_DELETE))
    assert c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/rr", 100)).err == Err.NOAUTH
    assert c.request(Op.EXISTS, PathWatchRequest("/rr/b", False)).err == 0
    c.request(Op.SET_ACL, _set_acl("/rr/b", OPEN_ACL_UNSAFE))
    before = c.request(Op.EXISTS, PathWatchRequest("/", False)).body.stat
    r = c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/rr", 5))
    assert (r.err, r.raw) == (0, b"")  # no body
    for p in ("/rr", "/rr/a", "/rr/a/x", "/rr/b", "/rr/e"):
        assert c.request(Op.EXISTS, PathWatchRequest(p, False)).err == Err.NONODE
    after = c.request(Op.EXISTS, PathWatchRequest("/", False)).body.stat
    assert after.numChildren == before.numChildren - 1 and after.pzxid == r.zxid
    w.ping()
    got = {(e.type, e.path) for e in w.events}
    assert got == {(EventType.NODE_DELETED, "/rr/a/x"), (EventType.NODE_DELETED, "/rr"),
                   (EventType.NODE_CHILDREN_CHANGED, "/")}
    # nothing there: OK, no zxid spent on a change; the root and /zookeeper refused
    assert c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/rr", 5)).err == 0
    assert c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/", 5)).err == Err.BADARGUMENTS
    r = c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/zookeeper", 9))
    assert r.err == Err.BADARGUMENTS


def _set_acl(path, acl):
    from zabby.wire.records import SetACLRequest
    return SetACLRequest(path, acl, -1)


def test_check_not_exists_alone_and_in_multi(raw):
    c = raw()
    _create(c, "/cne", b"x")
    c.request(Op.SET_DATA, SetDataRequest("/cne", b"y", -1))  # version 1
    assert c.request(CHECK_NOT_EXISTS, CheckVersionRequest("/cne-none", -1)).err == 0
    r = c.request(CHECK_NOT_EXISTS, CheckVersionRequest("/cne", -1))
    assert (r.err, r.raw) == (Err.NODEEXISTS, b"")
    assert c.request(CHECK_NOT_EXISTS, CheckVersionRequest("/cne", 1)).err == Err.NODEEXISTS
    assert c.request(CHECK_NOT_EXISTS, CheckVersionRequest("/cne", 7)).err == 0
    _create(c, "/cne-secret", acl=[ACL(31 & ~1, Id("world", "anyone"))])
    assert c.request(CHECK_NOT_EXISTS, CheckVersionRequest("/cne-secret", -1)).err == Err.NOAUTH
    # in a multi: the result header says 501, no body; a failure fails the whole multi
    ok = MultiRequest([(CHECK_NOT_EXISTS, CheckVersionRequest("/cne-lock", -1)),
                       (Op.CREATE, CreateRequest("/cne-lock", b"", OPEN_ACL_UNSAFE, 0))])
    r = c.request(Op.MULTI, ok)
    assert r.err == 0
    assert r.raw[:9] == struct.pack(">iBi", 501, 0, 0)
    assert MultiResponse.decode_from(r.raw, 0)[0].results[0] == (501, 0, None)
    r = c.request(Op.MULTI, MultiRequest(
        [(CHECK_NOT_EXISTS, CheckVersionRequest("/cne-lock", -1)),
         (Op.CREATE, CreateRequest("/cne-other", b"", OPEN_ACL_UNSAFE, 0))]))
    assert r.err == 0
    assert [(op, err) for op, err, _ in r.body.results] == [
        (Op.ERROR, Err.NODEEXISTS), (Op.ERROR, Err.RUNTIMEINCONSISTENCY)]
    assert c.request(Op.EXISTS, PathWatchRequest("/cne-other", False)).err == Err.NONODE


def test_create_if_not_exists_and_remove_recursive_in_a_multi(raw):
    c, w = raw(), raw()
    for p in ("/mm", "/mm/a", "/mm/a/b"):
        _create(c, p)
    assert w.request(Op.EXISTS, PathWatchRequest("/mm/a/b", True)).err == 0
    r = c.request(Op.MULTI, MultiRequest([
        (CREATE_IF_NOT_EXISTS, CreateRequest("/mm2", b"", OPEN_ACL_UNSAFE, 0)),
        (CREATE_IF_NOT_EXISTS, CreateRequest("/mm", b"", OPEN_ACL_UNSAFE, 0)),
        (REMOVE_RECURSIVE, RemoveRecursiveRequest("/mm", 3))]))
    assert r.err == 0
    # Keeper's result headers: 502 with the path, 503 without a body
    assert r.raw == (struct.pack(">iBi", 502, 0, 0) + _ustring("/mm2")
                     + struct.pack(">iBi", 502, 0, 0) + _ustring("/mm")
                     + struct.pack(">iBi", 503, 0, 0) + struct.pack(">iBi", -1, 1, -1))
    assert c.request(Op.EXISTS, PathWatchRequest("/mm", False)).err == Err.NONODE
    w.ping()
    assert [(e.type, e.path) for e in w.events] == [(EventType.NODE_DELETED, "/mm/a/b")]
    # over its limit the RemoveRecursive fails the whole multi
    _create(c, "/mm3")
    _create(c, "/mm3/x")
    r = c.request(Op.MULTI, MultiRequest([
        (CREATE_IF_NOT_EXISTS, CreateRequest("/mm4", b"", OPEN_ACL_UNSAFE, 0)),
        (REMOVE_RECURSIVE, RemoveRecursiveRequest("/mm3", 1))]))
    assert [(op, err) for op, err, _ in r.body.results] == [
        (Op.ERROR, 0), (Op.ERROR, Err.NOTEMPTY)]
    assert c.request(Op.EXISTS, PathWatchRequest("/mm4", False)).err == Err.NONODE


def test_filtered_list(raw):
    c, other = raw(), raw()
    _create(c, "/fl")
    _create(c, "/fl/p1")
    _create(c, "/fl/p2")
    other.request(Op.CREATE, CreateRequest("/fl/e1", b"", OPEN_ACL_UNSAFE, 1))
    r = c.request(FILTERED_LIST, FilteredListRequest("/fl", False, 2))
    body = GetChildren2Response.decode(r.raw)  # getChildren2's layout: names, Stat
    assert r.err == 0 and body.children == ["e1"] and body.stat.numChildren == 3
    r = c.request(FILTERED_LIST, FilteredListRequest("/fl", True, 1))
    assert sorted(GetChildren2Response.decode(r.raw).children) == ["p1", "p2"]
    r = c.request(FILTERED_LIST, FilteredListRequest("/fl", False, 0))
    assert sorted(GetChildren2Response.decode(r.raw).children) == ["e1", "p1", "p2"]
    _create(c, "/fl/p3")  # the watch set by the filtered list fires
    c.ping()
    assert [(e.type, e.path) for e in c.events] == [(EventType.NODE_CHILDREN_CHANGED, "/fl")]
    assert c.request(FILTERED_LIST, FilteredListRequest("/nope", False, 0)).err == Err.NONODE
    # filtering shows a child's ephemeral flag: it needs READ on every child
    _create(c, "/fl/hidden", acl=[ACL(31 & ~1, Id("world", "anyone"))])
    assert c.request(FILTERED_LIST, FilteredListRequest("/fl", False, 1)).err == Err.NOAUTH
    assert c.request(FILTERED_LIST, FilteredListRequest("/fl", False, 0)).err == 0


def test_list_recursive(raw):
    c = raw()
    for p in ("/lr", "/lr/a", "/lr/a/b", "/lr/c"):
        _create(c, p)
    _create(c, "/lr/c/hidden", acl=[ACL(31 & ~1, Id("world", "anyone"))])
    r = c.request(LIST_RECURSIVE, ListRecursiveRequest("/lr", 100))
    n = struct.unpack_from(">i", r.raw)[0]
    paths, pos = [], 4
    for _ in range(n):
        (ln,) = struct.unpack_from(">i", r.raw, pos)
        paths.append(r.raw[pos + 4:pos + 4 + ln].decode())
        pos += 4 + ln
    assert pos == len(r.raw)
    # breadth first, full paths, unreadable nodes skipped
    assert sorted(paths[:2]) == ["/lr/a", "/lr/c"] and paths[2:] == ["/lr/a/b"]
    r = c.request(LIST_RECURSIVE, ListRecursiveRequest("/lr", 2))
    assert r.err == 0 and struct.unpack_from(">i", r.raw)[0] == 2
    assert c.request(LIST_RECURSIVE, ListRecursiveRequest("/none", 2)).err == Err.NONODE


def _word(srv, word: bytes) -> bytes:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(word)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out


def test_feature_discovery(keeper_server, raw):
    c = raw()
    r = c.request(Op.GET_DATA, PathWatchRequest("/keeper/api_version", False))
    assert r.err == 0 and r.body.data == b"2"
    r = c.request(Op.GET_DATA, PathWatchRequest("/keeper/feature_flags", False))
    # filtered_list, multi_read, check_not_exists, create_if_not_exists, remove_recursive
    assert r.err == 0 and r.body.data == bytes([0b11111000])
    r = c.request(Op.GET_CHILDREN, PathWatchRequest("/keeper", False))
    assert r.body.children == ["api_version", "feature_flags"]
    assert _word(keeper_server, b"apiv") == b"2"
    assert _word(keeper_server, b"ftfl") == (
        b"filtered_list\t1\nmulti_read\t1\ncheck_not_exists\t1\n"
        b"create_if_not_exists\t1\nremove_recursive\t1\n")


def test_client_methods(keeper_server):
    with SyncClient(keeper_server.hosts, timeout=10) as zk:
        assert zk.create_if_not_exists("/cm", b"a") == "/cm"
        assert zk.create_if_not_exists("/cm", b"b") == "/cm"
        assert zk.get("/cm")[0] == b"a"
        zk.create("/cm/x/y", makepath=True)
        zk.create("/cm/e", ephemeral=True)
        assert zk.filtered_list("/cm", "ephemeral") == ["e"]
        assert zk.filtered_list("/cm", "persistent") == ["x"]
        assert sorted(zk.list_recursive("/cm")) == ["/cm/e", "/cm/x", "/cm/x/y"]
        with pytest.raises(NodeExistsError):
            zk.check_not_exists("/cm")
        assert zk.check_not_exists("/cm/none")
        t = zk.transaction()
        t.check_not_exists("/cm/flag")
        t.create("/cm/flag")
        t.create_if_not_exists("/cm/flag2")
        t.create_if_not_exists("/cm")
        assert t.commit() == [True, "/cm/flag", "/cm/flag2", "/cm"]
        t = zk.transaction()
        t.remove_recursive("/cm/x")
        t.check_not_exists("/cm/x/y")
        assert t.commit() == [True, True]
        with pytest.raises(NotEmptyError):
            zk.remove_recursive("/cm", limit=2)
        assert zk.remove_recursive("/cm")
        assert zk.exists("/cm") is None


def test_filtered_list_in_a_multi_read(raw):
    c, other = raw(), raw()
    _create(c, "/mr")
    _create(c, "/mr/p")
    other.request(Op.CREATE, CreateRequest("/mr/e", b"", OPEN_ACL_UNSAFE, 1))
    r = c.request(Op.MULTI_READ, MultiRequest([
        (FILTERED_LIST, FilteredListRequest("/mr", False, 2)),
        (Op.GET_DATA, PathWatchRequest("/mr/p", False)),
        (FILTERED_LIST, FilteredListRequest("/mr-none", False, 0))]))
    assert r.err == 0
    res = r.body.results
    # Keeper answers a filtered list in a multiRead as a List (12): names and Stat
    assert res[0][:2] == (Op.GET_CHILDREN2, 0) and res[0][2].children == ["e"]
    assert res[1][:2] == (Op.GET_DATA, 0)
    assert res[2][:2] == (Op.ERROR, Err.NONODE)


def test_garbage_keeper_requests_never_hurt_the_server(keeper_server, raw):
    """Well-framed random bodies for Keeper's opcodes (alone and in multis)."""
    rng = random.Random(507)
    ops = [FILTERED_LIST, CHECK_NOT_EXISTS, CREATE_IF_NOT_EXISTS, REMOVE_RECURSIVE,
           LIST_RECURSIVE, Op.MULTI, Op.MULTI_READ]
    for _ in range(20):
        s = handshake(keeper_server.host, keeper_server.port)
        out = bytearray()
        for _ in range(100):
            op = rng.choice(ops)
            body = rng.randbytes(rng.randrange(0, 40))
            if op in (Op.MULTI, Op.MULTI_READ):  # a Keeper op header, then garbage
                body = struct.pack(">iBi", rng.choice(ops[:5]), 0, -1) + body
            hdr = struct.pack(">ii", rng.randrange(1, 1 << 20), op)
            out += struct.pack(">i", len(hdr) + len(body)) + hdr + body
        with contextlib.suppress(OSError):
            s.sendall(out)
        s.close()
    assert keeper_server.ruok()
    assert "Traceback" not in keeper_server.log_path.read_text()
    c = raw()
    assert c.request(CREATE_IF_NOT_EXISTS, CreateRequest("/fine", b"", OPEN_ACL_UNSAFE, 0)).err == 0
    assert c.request(REMOVE_RECURSIVE, RemoveRecursiveRequest("/fine", 9)).err == 0
