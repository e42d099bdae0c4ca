"""Txn serialization round-trips, and container / TTL housekeeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from treeutil import OPEN, Driver, cr

from zabby.tree import Txn, TxnHeader
from zabby.tree.txn import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
)
from zabby.wire.constants import Err, Op
from zabby.wire.jute import ProtocolError
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import ACL, CreateRequest, DeleteRequest, Id, SetDataRequest

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=20)
data = st.one_of(st.none(), st.binary(max_size=40))
acls = st.lists(st.builds(ACL, i32, st.builds(Id, text, text)), max_size=3)

bodies = st.one_of(
    st.tuples(st.just(Op.CREATE), st.builds(CreateTxn, text, data, acls, st.booleans(), i32)),
    st.tuples(st.just(Op.CREATE2), st.builds(CreateTxn, text, data, acls, st.booleans(), i32)),
    st.tuples(st.just(Op.CREATE_TTL), st.builds(CreateTTLTxn, text, data, acls, i32, i64)),
    st.tuples(st.just(Op.CREATE_CONTAINER), st.builds(CreateContainerTxn, text, data, acls, i32)),
    st.tuples(st.just(Op.DELETE), st.builds(DeleteTxn, text)),
    st.tuples(st.just(Op.SET_DATA), st.builds(SetDataTxn, text, data, i32)),
    st.tuples(st.just(Op.SET_ACL), st.builds(SetACLTxn, text, acls, i32)),
    st.tuples(st.just(Op.CHECK), st.builds(CheckVersionTxn, text, i32)),
    st.tuples(st.just(Op.ERROR), st.builds(ErrorTxn, i32)),
    st.tuples(st.just(Op.CREATE_SESSION), st.builds(CreateSessionTxn, i32)),
    st.tuples(st.just(Op.CLOSE_SESSION), st.builds(CloseSessionTxn, st.lists(text, max_size=3))),
)
sub_bodies = bodies.filter(lambda tb: tb[0] not in (Op.CREATE_SESSION, Op.CLOSE_SESSION, Op.SET_ACL))


@st.composite
def txns(draw):
    hdr = TxnHeader(draw(i64), draw(i32), draw(i64), draw(i64), 0)
    if draw(st.booleans()):
        t, body = draw(bodies)
    else:
        t, body = Op.MULTI, MultiTxn.of(draw(st.lists(sub_bodies, max_size=4)))
    hdr.type = int(t)
    return Txn(hdr, body)


@settings(max_examples=200, deadline=None)
@given(txns())
def test_txn_roundtrip(txn):
    raw = txn.encode()
    back = Txn.decode(raw)
    assert back == txn
    assert back.encode() == raw
    if txn.type == Op.MULTI:
        assert [t for t, _ in back.body.ops()] == [s.type for s in txn.body.txns]


def test_txn_header_layout():
    t = Txn(TxnHeader(0x1122, 7, 0x100000001, 99, Op.DELETE), DeleteTxn("/a"))
    raw = t.encode()
    # long clientId, int cxid, long zxid, long time, int type, then the body
    assert raw[:8] == (0x1122).to_bytes(8, "big")
    assert raw[8:12] == (7).to_bytes(4, "big")
    assert raw[12:20] == (0x100000001).to_bytes(8, "big")
    assert raw[28:32] == (2).to_bytes(4, "big")
    assert raw[32:] == b"\x00\x00\x00\x02/a"


def test_close_session_without_body_decodes():
    raw = TxnHeader(5, 0, 9, 0, Op.CLOSE_SESSION).to_bytes()
    t = Txn.decode(raw)
    assert t.body is None
    d = Driver()
    d.open_session(5)
    assert d.tree.apply(t).err == 0
    assert d.tree.sessions == {}


def test_bad_txns_raise_protocol_error():
    with pytest.raises(ProtocolError):
        Txn.decode(TxnHeader(1, 1, 1, 1, 77).to_bytes())
    with pytest.raises(ProtocolError):
        Txn.decode(TxnHeader(1, 1, 1, 1, Op.DELETE).to_bytes() + b"\x00\x00")


def test_prepared_txns_survive_serialization():
    # what a follower gets from the leader's log applies like the original
    a, b = Driver(), Driver()
    for op, body in [
        (Op.CREATE, CreateRequest("/a", b"x", OPEN, 0)),
        (Op.MULTI, MultiRequest([cr("/a/b"), (Op.SET_DATA, SetDataRequest("/a", b"y", 0))])),
        (Op.MULTI, MultiRequest([cr("/a/c"), (Op.DELETE, DeleteRequest("/zz", 0))])),
    ]:
        t = a.prepare(op, body)
        ra = a.tree.apply(t)
        rb = b.tree.apply(Txn.decode(t.encode()))
        assert ra.err == rb.err and ra.response == rb.response and ra.events == rb.events
    assert [(p, n.stat()) for p, n in a.tree.iter_nodes()] == [(p, n.stat()) for p, n in b.tree.iter_nodes()]


# ------------------------------------------------------------ containers
def test_container_expiry():
    d = Driver()
    d.create("/c", flags=4, op=Op.CREATE_CONTAINER)
    d.create("/fresh", flags=4, op=Op.CREATE_CONTAINER)
    d.create("/plain")
    # never had children: kept
    assert d.tree.expired_containers(10**12) == []
    d.create("/c/x")
    assert d.tree.expired_containers(10**12) == []  # not empty
    d.delete("/c/x")
    assert d.tree.expired_containers(0) == ["/c"]
    r = d.write(Op.DELETE_CONTAINER, "/c")
    assert r.err == 0
    assert d.tree.expired_containers(10**12) == []


def test_container_max_never_used():
    d = Driver(max_never_used_ms=100)
    d.create("/c", flags=4, op=Op.CREATE_CONTAINER)
    mtime = d.stat("/c").mtime
    assert d.tree.expired_containers(mtime + 100) == []
    assert d.tree.expired_containers(mtime + 101) == ["/c"]


def test_ttl_expiry():
    d = Driver(extended_types=True)
    d.create_ttl("/t", 500)
    d.create_ttl("/u", 10_000)
    mtime = d.stat("/t").mtime
    assert d.tree.expired_containers(mtime + 500) == []
    assert d.tree.expired_containers(mtime + 501) == ["/t"]
    # a write moves mtime
    d.set_data("/t", b"x")
    assert d.tree.expired_containers(mtime + 501) == []
    # children keep it alive
    d.create("/u/k")
    assert d.tree.expired_containers(10**13) == ["/t"]
    r = d.write(Op.DELETE_CONTAINER, "/t")
    assert r.err == 0 and d.tree.ttls == {"/u"}


def test_delete_container_on_plain_node_is_allowed():
    # ZooKeeper only refuses session ephemerals (BADVERSION) and non-empty nodes
    d = Driver()
    d.create("/p")
    assert d.write(Op.DELETE_CONTAINER, "/p").err == Err.OK
