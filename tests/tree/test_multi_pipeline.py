"""Multi (all-or-nothing, result shapes) and pipelined prepares (pending overlay)."""

from __future__ import annotations

import pytest
from treeutil import OPEN, Driver, cr

from zabby.tree import RequestContext
from zabby.wire.constants import Err, EventType, Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import (
    CheckVersionRequest,
    Create2Response,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    PathResponse,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
    StatResponse,
)


@pytest.fixture
def d():
    return Driver()


# ------------------------------------------------------------------ multi
def test_multi_success_shapes_and_visibility(d):
    r = d.multi([
        cr("/m"),
        cr("/m/x", b"1"),
        (Op.SET_DATA, SetDataRequest("/m/x", b"22", 0)),
        (Op.CHECK, CheckVersionRequest("/m/x", 1)),
        cr("/m/s-", flags=2),
        (Op.DELETE, DeleteRequest("/m/x", 1)),
        (Op.CREATE_CONTAINER, CreateRequest("/m/c", b"", OPEN, 4)),
    ])
    assert r.err == 0 and r.multi_err == 0
    res = r.response.results
    assert res[0] == (Op.CREATE, 0, PathResponse("/m"))
    assert res[1] == (Op.CREATE, 0, PathResponse("/m/x"))
    assert res[2][0] == Op.SET_DATA and isinstance(res[2][2], StatResponse)
    assert res[2][2].stat.version == 1
    assert res[3] == (Op.CHECK, 0, None)
    assert res[4] == (Op.CREATE, 0, PathResponse("/m/s-0000000001"))
    assert res[5] == (Op.DELETE, 0, None)
    assert res[6][0] == Op.CREATE2 and isinstance(res[6][2], Create2Response)
    # every op of a multi carries the multi's zxid
    zx = d.zxid
    assert d.stat("/m").czxid == zx and d.stat("/m/c").czxid == zx
    assert d.tree.get_node("/m/x") is None
    assert (EventType.NODE_DATA_CHANGED, "/m/x") in r.events
    assert r.events[0] == (EventType.NODE_CREATED, "/m")


def test_multi_failure_is_all_or_nothing(d):
    d.create("/a", b"orig")
    count = d.tree.node_count
    r = d.multi([
        cr("/b"),
        (Op.SET_DATA, SetDataRequest("/a", b"new", -1)),
        (Op.CHECK, CheckVersionRequest("/a", 5)),
        cr("/c"),
        (Op.DELETE, DeleteRequest("/nope", -1)),
    ])
    # the reply header carries 0; the codes are per op
    assert r.err == 0 and r.multi_err == Err.BADVERSION
    assert r.response.results == [
        (Op.ERROR, 0, ErrorResponse(0)),
        (Op.ERROR, 0, ErrorResponse(0)),
        (Op.ERROR, Err.BADVERSION, ErrorResponse(Err.BADVERSION)),
        (Op.ERROR, Err.RUNTIMEINCONSISTENCY, ErrorResponse(Err.RUNTIMEINCONSISTENCY)),
        (Op.ERROR, Err.RUNTIMEINCONSISTENCY, ErrorResponse(Err.RUNTIMEINCONSISTENCY)),
    ]
    assert r.events == []
    assert d.tree.node_count == count
    assert d.get("/a")[1].data == b"orig"
    assert d.tree.last_zxid == d.zxid  # the failed multi still used its zxid
    # nothing of the failed multi stays pending
    assert d.create("/b").err == 0


def test_multi_failure_first_op(d):
    r = d.multi([cr("/x/y"), cr("/z")])
    assert [x[1] for x in r.response.results] == [Err.NONODE, Err.RUNTIMEINCONSISTENCY]


def test_empty_multi(d):
    r = d.multi([])
    assert r.err == 0 and r.response.results == []


def test_multi_create_opcodes_follow_flags(d):
    # MultiOperationRecord rebuilds create ops from their flags
    r = d.multi([
        (Op.CREATE2, CreateRequest("/k2", b"", OPEN, 0)),
        (Op.CREATE, CreateRequest("/k4", b"", OPEN, 4)),
        (Op.CREATE_CONTAINER, CreateRequest("/k5", b"", OPEN, 0)),
        (Op.CREATE_TTL, CreateTTLRequest("/k6", b"", OPEN, 0, 50)),
    ])
    res = r.response.results
    assert res[0] == (Op.CREATE, 0, PathResponse("/k2"))
    assert res[1][0] == Op.CREATE2 and res[1][2].path == "/k4"
    assert d.tree.containers == {"/k4"}
    assert res[2] == (Op.CREATE, 0, PathResponse("/k5"))
    assert res[3] == (Op.CREATE, 0, PathResponse("/k6"))


def test_multi_create_with_ttl_flags_is_marshalling_error():
    d = Driver(extended_types=True)
    t = d.prepare(Op.MULTI, MultiRequest([cr("/a"), (Op.CREATE, CreateRequest("/b", b"", OPEN, 5))]))
    assert t.type == Op.ERROR and t.body.err == Err.MARSHALLINGERROR
    assert d.tree.pending_count == 0
    # ... unless an earlier op already failed
    t = d.prepare(Op.MULTI, MultiRequest([cr("/x/y"), (Op.CREATE, CreateRequest("/b", b"", OPEN, 5))]))
    assert t.type == Op.MULTI
    r = d.multi([cr("/t1"), (Op.CREATE_TTL, CreateTTLRequest("/t2", b"", OPEN, 5, 100))])
    assert r.response.results[1][0] == Op.CREATE2 and d.tree.ttls == {"/t2"}


@pytest.mark.parametrize(
    "op,body",
    [
        (Op.SET_ACL, SetACLRequest("/a", OPEN, -1)),
        (Op.GET_DATA, PathWatchRequest("/", False)),
        (Op.CREATE_SESSION, 5),
    ],
)
def test_multi_with_foreign_op_fails_whole(d, op, body):
    r = d.write(Op.MULTI, MultiRequest([cr("/a"), (op, body)]))
    assert r.err == Err.MARSHALLINGERROR and r.response is None
    assert d.tree.get_node("/a") is None


def test_multi_txn_replays_old_create2_subtxn_as_zookeeper(d):
    # A MultiTxn holding a create2 sub-txn (not produced by prepare) stops at it.
    from zabby.tree import MultiTxn, Txn, TxnHeader
    from zabby.tree.txn import CreateTxn

    body = MultiTxn.of([
        (Op.CREATE, CreateTxn("/p", b"", OPEN, False, 1)),
        (Op.CREATE2, CreateTxn("/q", b"", OPEN, False, 2)),
        (Op.CREATE, CreateTxn("/r", b"", OPEN, False, 3)),
    ])
    r = d.tree.apply(Txn(TxnHeader(1, 1, 1, 5, Op.MULTI), body))
    assert [x[0] for x in r.response.results] == [Op.CREATE]
    assert d.tree.get_node("/p") is not None and d.tree.get_node("/q") is None


# -------------------------------------------------------------- pipelining
def ctx(z, sid=1):
    return RequestContext(sid, z, z, 5000 + z, [])


def test_pipelined_create_parent_then_child(d):
    t = d.tree
    t1 = t.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0), ctx(1))
    t2 = t.prepare(Op.CREATE, CreateRequest("/a/b", b"", OPEN, 0), ctx(2))
    t3 = t.prepare(Op.CREATE, CreateRequest("/a/s", b"", OPEN, 2), ctx(3))
    t4 = t.prepare(Op.CREATE, CreateRequest("/a/s", b"", OPEN, 2), ctx(4))
    assert [x.type for x in (t1, t2, t3, t4)] == [Op.CREATE] * 4
    assert t3.body.path == "/a/s0000000001" and t4.body.path == "/a/s0000000002"
    assert t.pending_count > 0
    for x in (t1, t2, t3, t4):
        assert t.apply(x).err == 0
    assert t.pending_count == 0
    assert t.stat("/a").numChildren == 3


def test_pipelined_duplicate_create_and_delete_recreate(d):
    t = d.tree
    d.create("/x")
    z = d.zxid
    a = t.prepare(Op.CREATE, CreateRequest("/n", b"", OPEN, 0), ctx(z + 1))
    b = t.prepare(Op.CREATE, CreateRequest("/n", b"", OPEN, 0), ctx(z + 2))
    c = t.prepare(Op.DELETE, DeleteRequest("/x", -1), ctx(z + 3))
    e = t.prepare(Op.CREATE, CreateRequest("/x", b"2", OPEN, 0), ctx(z + 4))
    f = t.prepare(Op.DELETE, DeleteRequest("/x", 5), ctx(z + 5))
    g = t.prepare(Op.SET_DATA, SetDataRequest("/x", b"3", 0), ctx(z + 6))
    h = t.prepare(Op.SET_DATA, SetDataRequest("/x", b"4", 1), ctx(z + 7))
    assert a.type == Op.CREATE
    assert b.type == Op.ERROR and b.body.err == Err.NODEEXISTS
    assert c.type == Op.DELETE and e.type == Op.CREATE
    assert f.type == Op.ERROR and f.body.err == Err.BADVERSION
    assert g.type == Op.SET_DATA and g.body.version == 1
    assert h.type == Op.SET_DATA and h.body.version == 2
    for x in (a, b, c, e, f, g, h):
        t.apply(x)
    assert d.get("/x")[1].data == b"4" and d.get("/x")[1].stat.version == 2
    assert t.pending_count == 0


def test_pipelined_delete_of_pending_child_parent(d):
    t = d.tree
    d.create("/p")
    z = d.zxid
    a = t.prepare(Op.CREATE, CreateRequest("/p/c", b"", OPEN, 0), ctx(z + 1))
    b = t.prepare(Op.DELETE, DeleteRequest("/p", -1), ctx(z + 2))
    assert b.type == Op.ERROR and b.body.err == Err.NOTEMPTY
    c = t.prepare(Op.DELETE, DeleteRequest("/p/c", -1), ctx(z + 3))
    e = t.prepare(Op.DELETE, DeleteRequest("/p", -1), ctx(z + 4))
    assert c.type == Op.DELETE and e.type == Op.DELETE
    for x in (a, b, c, e):
        t.apply(x)
    assert t.get_node("/p") is None


def test_failed_multi_restores_earlier_pending_state(d):
    t = d.tree
    a = t.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0), ctx(1))
    m = t.prepare(Op.MULTI, MultiRequest([
        (Op.SET_DATA, SetDataRequest("/a", b"x", 0)),
        cr("/a/b"),
        cr("/nope/c"),
    ]), ctx(2))
    assert m.type == Op.MULTI
    # the failed multi's changes are gone, /a's pending create is still seen
    s = t.prepare(Op.SET_DATA, SetDataRequest("/a", b"y", 0), ctx(3))
    assert s.type == Op.SET_DATA and s.body.version == 1
    b = t.prepare(Op.CREATE, CreateRequest("/a/b", b"", OPEN, 0), ctx(4))
    assert b.type == Op.CREATE
    for x in (a, m, s, b):
        t.apply(x)
    assert t.stat("/a").version == 1 and t.stat("/a").numChildren == 1


def test_multi_sequential_rollback_keeps_counter(d):
    t = d.tree
    d.create("/q")
    z = d.zxid
    a = t.prepare(Op.CREATE, CreateRequest("/q/s", b"", OPEN, 2), ctx(z + 1))
    m = t.prepare(Op.MULTI, MultiRequest([cr("/q/s", flags=2), cr("/nope/x")]), ctx(z + 2))
    b = t.prepare(Op.CREATE, CreateRequest("/q/s", b"", OPEN, 2), ctx(z + 3))
    assert a.body.path == "/q/s0000000000"
    assert b.body.path == "/q/s0000000001"
    for x in (a, m, b):
        t.apply(x)


def test_discard_pending(d):
    t = d.tree
    t.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0), ctx(1))
    again = t.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0), ctx(2))
    assert again.type == Op.ERROR
    t.discard_pending()
    assert t.pending_count == 0
    assert t.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0), ctx(1)).type == Op.CREATE


def test_reads_do_not_see_pending(d):
    t = d.tree
    t.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0), ctx(1))
    assert d.get("/a") == (Err.NONODE, None)


def test_close_session_includes_pending_ephemerals(d):
    t = d.tree
    d.open_session(9)
    d.create("/e1", flags=1, sid=9)
    z = d.zxid
    a = t.prepare(Op.CREATE, CreateRequest("/e2", b"", OPEN, 1), ctx(z + 1, sid=9))
    b = t.prepare(Op.DELETE, DeleteRequest("/e1", -1), ctx(z + 2, sid=9))
    c = t.prepare(Op.CLOSE_SESSION, None, ctx(z + 3, sid=9))
    assert c.body.paths2Delete == ["/e2"]
    # the session's ephemerals are now pending deletes
    assert t.prepare(Op.SET_DATA, SetDataRequest("/e2", b"", -1), ctx(z + 4)).body.err == Err.NONODE
    for x in (a, b, c):
        t.apply(x)
    assert t.get_node("/e1") is None and t.get_node("/e2") is None
    assert t.sessions == {}


def test_apply_without_prepare_is_deterministic():
    # followers apply txns they never prepared: two trees fed the same txns agree
    leader = Driver()
    from zabby.tree import DataTree

    follower = DataTree()
    txns = []
    for op, body in [
        (Op.CREATE_SESSION, 3000),
        (Op.CREATE, CreateRequest("/a", b"1", OPEN, 0)),
        (Op.CREATE, CreateRequest("/a/e", b"", OPEN, 3)),
        (Op.SET_DATA, SetDataRequest("/a", b"2", -1)),
        (Op.CREATE, CreateRequest("/nope/x", b"", OPEN, 0)),
        (Op.MULTI, MultiRequest([cr("/b"), (Op.DELETE, DeleteRequest("/a/e0000000000", -1))])),
        (Op.CLOSE_SESSION, None),
    ]:
        t = leader.prepare(op, body, sid=4)
        txns.append(t)
        leader.tree.apply(t)
    for t in txns:
        follower.apply(t)
    snap = lambda tr: [(p, n.data, n.stat()) for p, n in tr.iter_nodes()]  # noqa: E731
    assert snap(follower) == snap(leader.tree)
    assert follower.last_zxid == leader.tree.last_zxid


def test_replayed_create_nodeexists_adjusts_parent():
    # DataTree.processTxn: a create that hits NODEEXISTS on replay still bumps the
    # parent's cversion/pzxid to the txn's values
    d = Driver()
    t = d.prepare(Op.CREATE, CreateRequest("/a", b"", OPEN, 0))
    d.tree.apply(t)
    from zabby.tree import Txn, TxnHeader
    from zabby.tree.txn import CreateTxn

    r = d.tree.apply(Txn(TxnHeader(1, 9, 50, 9, Op.CREATE), CreateTxn("/a", b"", OPEN, False, 7)))
    assert r.err == Err.NODEEXISTS
    n = d.tree.get_node("/")
    assert n.cversion == 7 and n.pzxid == 50
