"""SESSIONMOVED fencing: a session that moves leaves its old connection unable to write.

The same steps run on a 3-member Apache ZooKeeper 3.8 and on zabby. A session is made
on follower A (it creates an ephemeral); a second connection takes the session over
on member B (the other follower, then the leader) while A's connection stays open.

What ZooKeeper 3.8 does, and zabby with it: the leader tracks which member last
(re)validated each session; a write forwarded by any other member becomes an error
txn (SESSIONMOVED), and the member that forwarded it answers nothing -- it closes the
client's connection (FinalRequestProcessor's ``sendCloseSession``), so the client
reconnects. The write is not applied; the session keeps working where it moved to and
its ephemeral lives on. On one member, re-opening a session closes its older connection
at once.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from zabby.testing.pytest_plugin import started_ensemble
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from zabby.wire import Err, Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import CreateRequest, PathRequest, PathWatchRequest, SetDataRequest


@pytest.fixture(params=["zabby", pytest.param("zookeeper", marks=pytest.mark.differential)])
def ensemble(request, tmp_path):
    with started_ensemble(request.param, tmp_path, tickTime=500) as ens:
        yield ens


def _client(ens, i: int, **kw) -> RawClient:
    m = ens.members[i]
    deadline = time.monotonic() + 10.0
    while True:
        c = RawClient("127.0.0.1", m.port, timeout_ms=10000, io_timeout=10.0, **kw)
        try:
            c.connect()
            return c
        except ConnectionClosed:
            # a member that has not applied the client's last zxid yet refuses it (the
            # client is to try again); the leader may lag a follower by a txn or two
            c.drop()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _take_over(ens, i: int, old: RawClient) -> RawClient:
    c = _client(ens, i, session_id=old.session_id, passwd=old.passwd, last_zxid=old.last_zxid)
    assert c.connect_response.sessionId == old.session_id, "the session did not move"
    return c


def _write_is_fenced(old: RawClient, path: str, *, multi: bool = False) -> None:
    """A write on the connection the session left: no reply, the connection closes."""
    if multi:
        xid = old.send_request(Op.MULTI, MultiRequest(
            [(Op.SET_DATA, SetDataRequest(path, b"stale", -1)),
             (Op.CREATE, CreateRequest(path + "/stale", b"", OPEN_ACL_UNSAFE, 0))]))
    else:
        xid = old.send_request(Op.SET_DATA, SetDataRequest(path, b"stale", -1))
    assert old.wait_closed(8.0), "the old connection stayed open after a write"
    for f in old.frames:  # anything the server sent before closing
        assert int.from_bytes(f[:4], "big", signed=True) != xid, "the fenced write was answered"


def test_write_from_a_connection_the_session_left_is_fenced(ensemble):
    leader = ensemble.leader()
    a, b = [i for i in ensemble.members if i != leader]
    clients: list[RawClient] = []
    try:
        on_a = _client(ensemble, a)
        clients.append(on_a)
        assert on_a.request(Op.CREATE, CreateRequest("/moved", b"v0", OPEN_ACL_UNSAFE, 0)).err == 0
        assert on_a.request(Op.CREATE, CreateRequest("/moved/eph", b"", OPEN_ACL_UNSAFE, 1)).err == 0

        # the session moves to the other follower; A's connection is still open
        on_b = _take_over(ensemble, b, on_a)
        clients.append(on_b)
        assert on_b.request(Op.SET_DATA, SetDataRequest("/moved", b"v1", -1)).err == 0
        # reads on A are answered from A's copy of the tree (ZooKeeper checks no owner)
        assert on_a.request(Op.EXISTS, PathWatchRequest("/moved", False)).err == 0
        _write_is_fenced(on_a, "/moved")

        # the session works where it moved to; the stale write was not applied
        got = on_b.request(Op.GET_DATA, PathWatchRequest("/moved", False))
        assert got.err == 0 and got.body.data == b"v1"
        assert on_b.request(Op.SET_DATA, SetDataRequest("/moved", b"v2", -1)).err == 0

        # and on to the leader: B's connection is fenced in its turn
        on_l = _take_over(ensemble, leader, on_b)
        clients.append(on_l)
        _write_is_fenced(on_b, "/moved", multi=True)
        assert on_l.request(Op.SET_DATA, SetDataRequest("/moved", b"v3", -1)).err == 0

        # back to B from the leader: the leader's own old connection is fenced too
        back = _take_over(ensemble, b, on_l)
        clients.append(back)
        _write_is_fenced(on_l, "/moved")

        # a second connection on the same member closes the first at once
        again = _take_over(ensemble, b, back)
        clients.append(again)
        assert back.wait_closed(5.0), "re-opening a session on a member kept its old connection"

        # the ephemeral lived through every move; another session sees it and the data
        other = _client(ensemble, a)
        clients.append(other)
        assert other.request(Op.EXISTS, PathWatchRequest("/moved/eph", False)).err == 0
        got = again.request(Op.GET_DATA, PathWatchRequest("/moved", False))
        assert got.err == 0 and got.body.data == b"v3"
        assert got.body.stat.version == 3
        again.close()
        assert other.request(Op.SYNC, PathRequest("/")).err == 0
        gone = other.request(Op.EXISTS, PathWatchRequest("/moved/eph", False))
        assert gone.err == Err.NONODE
        stale = other.request(Op.EXISTS, PathWatchRequest("/moved/stale", False))
        assert stale.err == Err.NONODE, "a fenced multi was applied"
    finally:
        for c in clients:
            with contextlib.suppress(ConnectionClosed, OSError):
                c.drop()
