"""Single operations: create, delete, setData, setACL, check, and their errors.

Expected values were checked against Apache ZooKeeper 3.8.0.
"""

from __future__ import annotations

import pytest
from treeutil import OPEN, Driver

from zabby.tree import DataTree
from zabby.wire.constants import CreateMode, Err, EventType, Op
from zabby.wire.records import (
    ACL,
    CheckVersionRequest,
    Create2Response,
    CreateRequest,
    DeleteRequest,
    Id,
    PathRequest,
    PathResponse,
    StatResponse,
)


@pytest.fixture
def d():
    return Driver()


# ----------------------------------------------------------- initial tree
def test_initial_tree_matches_fresh_zookeeper(d):
    t = d.tree
    assert t.node_count == 4
    assert t.last_zxid == 0
    root = t.stat("/")
    assert (root.cversion, root.numChildren, root.aversion, root.pzxid, root.czxid) == (-1, 1, 0, 0, 0)
    zk = t.stat("/zookeeper")
    assert (zk.cversion, zk.numChildren) == (-2, 2)
    cfg = t.stat("/zookeeper/config")
    assert (cfg.cversion, cfg.aversion, cfg.numChildren, cfg.dataLength) == (0, -1, 0, 0)
    assert t.stat("/zookeeper/quota").aversion == 0
    err, resp = d.acl("/zookeeper/config")
    assert err == 0 and resp.acl == [ACL(1, Id("world", "anyone"))]
    err, resp = d.acl("/")
    assert resp.acl == OPEN
    assert d.get("/")[1].data == b""
    # "" is ZooKeeper's alias of the root
    assert d.get("")[1].stat == root
    assert d.children("/") == (0, ["zookeeper"])
    assert sorted(d.children("/zookeeper")[1]) == ["config", "quota"]


# ----------------------------------------------------------------- create
def test_create_sets_stats_and_parent(d):
    r = d.create("/a", b"hello")
    assert r.err == Err.OK
    assert r.response == PathResponse("/a")
    assert r.path == "/a"
    assert r.events == [(EventType.NODE_CREATED, "/a"), (EventType.NODE_CHILDREN_CHANGED, "/")]
    s = d.stat("/a")
    assert (s.czxid, s.mzxid, s.pzxid) == (1, 1, 1)
    assert s.ctime == s.mtime == 1001
    assert (s.version, s.cversion, s.aversion, s.ephemeralOwner, s.dataLength, s.numChildren) == (
        0, 0, 0, 0, 5, 0)
    root = d.stat("/")
    assert root.numChildren == 2 and root.pzxid == 1
    assert root.cversion == 0  # persisted 1 creation -> 2*1 - 2 children
    assert d.tree.last_zxid == 1


def test_create2_returns_stat(d):
    r = d.create("/b", b"xy", op=Op.CREATE2)
    assert isinstance(r.response, Create2Response)
    assert r.response.path == "/b"
    assert r.response.stat == d.stat("/b")


def test_reported_cversion_counts_creates_and_deletes(d):
    d.create("/p")
    for i in range(3):
        d.create(f"/p/c{i}")
    d.delete("/p/c1")
    s = d.stat("/p")
    assert s.numChildren == 2
    assert s.cversion == 4  # 3 creates + 1 delete
    assert s.pzxid == d.zxid


@pytest.mark.parametrize(
    "path,err",
    [
        ("/a", Err.NODEEXISTS),
        ("/zookeeper", Err.NODEEXISTS),
        ("/", Err.NODEEXISTS),
        ("", Err.BADARGUMENTS),
        ("a", Err.BADARGUMENTS),
        ("/a\x00b", Err.BADARGUMENTS),
        ("/x/y", Err.NONODE),
        ("/a/", Err.BADARGUMENTS),
        ("/a//b", Err.NONODE),  # parent "/a/" is looked up before the path is validated
        ("/a/./b", Err.NONODE),
        ("/a/.", Err.BADARGUMENTS),
        ("/a/..", Err.BADARGUMENTS),
        ("/a/.b", Err.OK),
        ("/a/..b", Err.OK),
        ("/a/...", Err.OK),
        ("/a/b\x01", Err.BADARGUMENTS),
        ("/a/\u0080", Err.BADARGUMENTS),
        ("/a/\u009f", Err.BADARGUMENTS),
        ("/a/\ud7ff", Err.OK),
        ("/a/\ue000", Err.BADARGUMENTS),
        ("/a/\ufff0", Err.BADARGUMENTS),
        ("/a/\U0001F600", Err.BADARGUMENTS),
        ("/a/ü", Err.OK),
    ],
)
def test_create_path_errors(d, path, err):
    d.create("/a")
    assert d.create(path).err == err


def test_create_check_order_acl_before_parent(d):
    # fixupACL runs before the parent lookup
    assert d.create("/nope/x", acl=[]).err == Err.INVALIDACL
    # the parent lookup and its CREATE permission come before path validation
    d.create("/ro", acl=[ACL(1, Id("world", "anyone"))])
    assert d.create("/ro/x\x01").err == Err.NOAUTH
    assert d.create("/ro/./x").err == Err.NONODE  # parent "/ro/." does not exist


@pytest.mark.parametrize("flags", [7, -1, 100])
def test_create_invalid_flags(d, flags):
    assert d.create("/x", flags=flags).err == Err.BADARGUMENTS


def test_failed_write_consumes_zxid_and_time(d):
    t = d.prepare(Op.CREATE, CreateRequest("/x/y", b"", OPEN, 0))
    assert t.type == Op.ERROR and t.body.err == Err.NONODE and t.zxid == 1
    r = d.tree.apply(t)
    assert r.err == Err.NONODE and r.response is None and r.events == []
    assert d.tree.last_zxid == 1


def test_sequential_names(d):
    d.create("/s")
    names = [d.create("/s/n-", flags=2).path for _ in range(3)]
    assert names == ["/s/n-0000000000", "/s/n-0000000001", "/s/n-0000000002"]
    d.delete("/s/n-0000000001")
    # the counter is the parent's persisted cversion: creations only
    assert d.create("/s/n-", flags=2).path == "/s/n-0000000003"
    assert d.create("/s/", flags=2).path == "/s/0000000004"
    # sequential under the root
    assert d.create("/", flags=2).path == "/0000000001"


def test_sequential_counter_overflow(d):
    d.create("/s")
    d.tree.get_node("/s").cversion = 2**31 - 1
    assert d.create("/s/x", flags=2).path == "/s/x2147483647"
    # Java int overflow: the txn carries parentCVersion -2^31, which is not
    # greater than the current cversion, so DataTree.createNode keeps MAX_VALUE
    # and every later sequential create computes the same name.
    assert d.tree.get_node("/s").cversion == 2**31 - 1
    assert d.stat("/s").cversion == -3  # 2 * MAX_VALUE - 1, as a Java int
    assert d.create("/s/x", flags=2).err == Err.NODEEXISTS


def test_ephemeral_owner_and_no_children(d):
    d.open_session(0x55)
    r = d.create("/e", flags=1, sid=0x55)
    assert d.stat("/e").ephemeralOwner == 0x55
    assert d.tree.ephemerals_of(0x55) == {"/e"}
    assert d.create("/e/c", sid=0x55).err == Err.NOCHILDRENFOREPHEMERALS
    assert d.create("/e/c", flags=3, sid=0x55).err == Err.NOCHILDRENFOREPHEMERALS
    assert r.err == 0
    d.create("/es-", flags=3, sid=0x55)
    assert d.tree.ephemerals_of(0x55) == {"/e", "/es-0000000001"}


def test_container_create(d):
    r = d.create("/c", flags=4, op=Op.CREATE_CONTAINER)
    assert r.err == 0 and isinstance(r.response, Create2Response)
    # clients see ephemeralOwner 0 for containers
    assert r.response.stat.ephemeralOwner == 0
    assert d.tree.get_node("/c").ephemeral_owner == -0x8000000000000000
    assert d.tree.containers == {"/c"}
    # children are allowed under a container
    assert d.create("/c/x").err == 0


def test_create_op_with_container_flag_makes_plain_node(d):
    # opcode create + container flag: ZooKeeper writes a CreateTxn, i.e. a persistent node
    d.create("/c", flags=4)
    assert d.tree.containers == set()
    assert d.tree.get_node("/c").ephemeral_owner == 0


def test_ttl_disabled_is_unimplemented(d):
    assert d.create_ttl("/t", 1000).err == Err.UNIMPLEMENTED
    assert d.create("/t", flags=5).err == Err.UNIMPLEMENTED


@pytest.mark.parametrize(
    "flags,ttl,err",
    [
        (5, 1000, Err.OK),
        (6, 1000, Err.OK),
        (5, 0, Err.BADARGUMENTS),
        (5, -5, Err.BADARGUMENTS),
        (5, 2**40 - 1, Err.OK),
        (5, 2**40, Err.BADARGUMENTS),
        (0, 10, Err.BADARGUMENTS),  # a ttl with a non-TTL mode
        (1, 10, Err.BADARGUMENTS),
        (7, 10, Err.BADARGUMENTS),
    ],
)
def test_ttl_create(flags, ttl, err):
    d = Driver(extended_types=True)
    r = d.create_ttl("/t", ttl, flags=flags)
    assert r.err == err
    if err == Err.OK:
        node = d.tree.get_node(r.path)
        assert node.ephemeral_owner == (-0x100000000000000 | ttl)
        assert r.response.stat.ephemeralOwner == 0
        assert d.tree.ttls == {r.path}


def test_ttl_flag_on_plain_create_is_badarguments():
    d = Driver(extended_types=True)
    assert d.create("/t", flags=5).err == Err.BADARGUMENTS


def test_data_none_and_max_buffer():
    d = Driver(max_buffer=10)
    assert d.create("/n", None).err == 0
    err, resp = d.get("/n")
    assert resp.data is None and resp.stat.dataLength == 0
    assert d.create("/big", b"x" * 11).err == Err.MARSHALLINGERROR
    assert d.create("/ok", b"x" * 10).err == 0
    assert d.set_data("/ok", b"y" * 11).err == Err.MARSHALLINGERROR


def test_undecodable_body_is_marshalling_error(d):
    t = d.prepare(Op.CREATE, None)
    assert t.type == Op.ERROR and t.body.err == Err.MARSHALLINGERROR
    t = d.prepare(Op.MULTI, None)
    assert t.type == Op.ERROR and t.body.err == Err.MARSHALLINGERROR


def test_null_path_create_is_marshalling_error(d):
    assert d.create(None).err == Err.MARSHALLINGERROR


# ----------------------------------------------------------------- delete
def test_delete(d):
    d.create("/a")
    d.create("/a/b")
    assert d.delete("/a").err == Err.NOTEMPTY
    assert d.delete("/a/b", version=3).err == Err.BADVERSION
    r = d.delete("/a/b", version=0)
    assert r.err == 0 and r.response is None
    assert r.events == [(EventType.NODE_DELETED, "/a/b"), (EventType.NODE_CHILDREN_CHANGED, "/a")]
    s = d.stat("/a")
    assert s.numChildren == 0 and s.pzxid == d.zxid and s.cversion == 2
    assert d.delete("/a/b").err == Err.NONODE
    assert d.delete("/a").err == 0
    assert d.tree.get_node("/a") is None


@pytest.mark.parametrize(
    "path,err",
    [
        ("/", Err.BADARGUMENTS),
        ("/zookeeper", Err.BADARGUMENTS),
        ("/zookeeper/quota", Err.BADARGUMENTS),
        ("/zookeeper/config", Err.BADARGUMENTS),
        ("", Err.BADARGUMENTS),
        ("a", Err.BADARGUMENTS),
        ("/a\x00", Err.BADARGUMENTS),
        ("/a/", Err.NONODE),  # delete does not validate the path
        ("/a/./x", Err.NONODE),
        ("/nope/x", Err.NONODE),
        ("a/b", Err.NONODE),
        (None, Err.MARSHALLINGERROR),
    ],
)
def test_delete_errors(d, path, err):
    d.create("/a")
    assert d.delete(path).err == err


def test_delete_needs_delete_on_parent(d):
    d.create("/p", acl=[ACL(31 & ~8, Id("world", "anyone"))])
    d.create("/p/c")
    assert d.delete("/p/c").err == Err.NOAUTH
    # NOAUTH on the parent is checked before the node exists
    assert d.delete("/p/nope").err == Err.NOAUTH
    d.create("/q", acl=[ACL(8, Id("world", "anyone"))])
    assert d.delete("/q").err == 0


# ---------------------------------------------------------------- setData
def test_set_data_versions(d):
    d.create("/a", b"1")
    r = d.set_data("/a", b"22")
    assert r.err == 0 and isinstance(r.response, StatResponse)
    assert r.response.stat.version == 1 and r.response.stat.dataLength == 2
    assert r.response.stat.mzxid == d.zxid and r.response.stat.czxid == 1
    assert r.events == [(EventType.NODE_DATA_CHANGED, "/a")]
    assert d.set_data("/a", b"", version=0).err == Err.BADVERSION
    assert d.set_data("/a", b"3", version=1).response.stat.version == 2
    assert d.set_data("/nope", b"").err == Err.NONODE
    assert d.set_data("/a/", b"").err == Err.BADARGUMENTS
    assert d.set_data(None, b"").err == Err.BADARGUMENTS
    assert d.get("/a")[1].data == b"3"


def test_set_data_version_overflow(d):
    d.create("/a")
    d.tree.get_node("/a").version = 2**31 - 1
    assert d.set_data("/a", b"x", version=2**31 - 1).response.stat.version == -(2**31)


def test_set_data_noauth(d):
    d.create("/ro", acl=[ACL(1, Id("world", "anyone"))])
    assert d.set_data("/ro", b"x").err == Err.NOAUTH


# ----------------------------------------------------------------- setACL
def test_set_acl(d):
    d.create("/a")
    new = [ACL(1, Id("world", "anyone"))]
    r = d.set_acl("/a", new, version=0)
    assert r.err == 0 and r.response.stat.aversion == 1
    assert r.events == []
    assert d.set_acl("/a", new, version=0).err == Err.NOAUTH  # ADMIN is gone
    assert d.acl("/a")[1].acl == new
    d.create("/b")
    assert d.set_acl("/b", OPEN, version=3).err == Err.BADVERSION
    # no ADMIN any more
    assert d.set_acl("/a", OPEN).err == Err.NOAUTH
    assert d.set_acl("/a", []).err == Err.INVALIDACL  # fixupACL before the node lookup
    assert d.set_acl("/nope", []).err == Err.INVALIDACL
    assert d.set_acl("/nope", OPEN).err == Err.NONODE
    assert d.set_acl("bad", OPEN).err == Err.BADARGUMENTS


# ------------------------------------------------------------------ check
def test_check_outside_multi(d):
    d.create("/a")
    t = d.prepare(Op.CHECK, CheckVersionRequest("/a", 0))
    assert t.type == Op.CHECK and t.body.version == 1  # ZooKeeper stores version + 1
    assert d.tree.apply(t).err == 0
    assert d.write(Op.CHECK, CheckVersionRequest("/a", 4)).err == Err.BADVERSION
    assert d.write(Op.CHECK, CheckVersionRequest("/b", 0)).err == Err.NONODE


# -------------------------------------------------------- delete container
def test_delete_container_checks(d):
    d.create("/c", flags=4, op=Op.CREATE_CONTAINER)
    d.create("/c/x")
    d.open_session(9)
    d.create("/e", flags=1, sid=9)
    assert d.write(Op.DELETE_CONTAINER, PathRequest("/c")).err == Err.NOTEMPTY
    assert d.write(Op.DELETE_CONTAINER, PathRequest("/e")).err == Err.BADVERSION
    assert d.write(Op.DELETE_CONTAINER, PathRequest("/")).err == Err.BADARGUMENTS
    assert d.write(Op.DELETE_CONTAINER, PathRequest("/nope")).err == Err.NONODE
    d.delete("/c/x")
    r = d.write(Op.DELETE_CONTAINER, "/c")
    assert r.err == 0 and r.events[0] == (EventType.NODE_DELETED, "/c")
    assert d.tree.containers == set()


# ---------------------------------------------------------------- sessions
def test_sessions_and_close(d):
    d.open_session(7, 4000)
    assert d.tree.sessions == {7: 4000}
    d.create("/p")
    d.create("/p/e1", flags=1, sid=7)
    d.create("/p/e2", flags=3, sid=7)
    d.create("/p/keep")
    before = d.stat("/p")
    t = d.prepare(Op.CLOSE_SESSION, None, sid=7)
    assert t.type == Op.CLOSE_SESSION
    assert sorted(t.body.paths2Delete) == ["/p/e1", "/p/e20000000001"]
    r = d.tree.apply(t)
    assert r.err == 0 and r.response is None
    assert sorted(p for ev, p in r.events if ev == EventType.NODE_DELETED) == ["/p/e1", "/p/e20000000001"]
    assert d.tree.sessions == {}
    assert d.tree.ephemerals_of(7) == set()
    after = d.stat("/p")
    assert after.numChildren == 1
    assert after.pzxid == t.zxid
    assert after.cversion == before.cversion + 2


def test_node_count_and_iter_nodes(d):
    d.create("/a")
    d.create("/a/b")
    d.create("/c")
    paths = [p for p, _ in d.tree.iter_nodes()]
    assert paths[0] == "/"
    assert set(paths) == {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/a", "/a/b", "/c"}
    assert paths.index("/a") < paths.index("/a/b")
    assert d.tree.node_count == 7


def test_acl_objects_are_shared():
    t = DataTree()
    d = Driver(t)
    for i in range(50):
        d.create(f"/n{i}", acl=[ACL(31, Id("world", "anyone"))])
    acls = {id(t.get_node(f"/n{i}").acl) for i in range(50)}
    assert len(acls) == 1
    assert t.get_node("/n1").acl is t.get_node("/").acl


def test_delete_request_record_roundtrip_sanity():
    # the driver sends wire records; make sure the records used are those of the wire layer
    assert DeleteRequest("/a", 1).to_bytes() == DeleteRequest.decode(DeleteRequest("/a", 1).to_bytes()).to_bytes()
    assert CreateRequest("/a", b"", OPEN, 0).path == "/a"


def test_ephemeral_session_check_hook():
    """server/local_sessions.py sets DataTree.ephemeral_session_check on the instance
    (a leader with local sessions): an ephemeral create of a session it refuses fails
    with its error, other creates go on. (A compiled DataTree once accepted only None.)"""
    d = Driver()
    asked = []

    def check(sid: int) -> int:
        asked.append(sid)
        return Err.SESSIONEXPIRED if sid == 7 else 0

    d.tree.ephemeral_session_check = check
    assert d.create("/e7", flags=CreateMode.EPHEMERAL, sid=7).err == Err.SESSIONEXPIRED
    assert d.create("/p7", sid=7).err == Err.OK
    assert d.create("/e8", flags=CreateMode.EPHEMERAL, sid=8).err == Err.OK
    assert asked == [7, 8]
    d.tree.ephemeral_session_check = None
    assert d.create("/e7", flags=CreateMode.EPHEMERAL, sid=7).err == Err.OK
