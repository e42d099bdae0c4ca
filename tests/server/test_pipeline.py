"""The one request path (server/pipeline.py): in-process checks of the standalone
server's commit stage with a committer the test holds and releases, and of the
shape of the ensemble member classes (the commit stage is the one seam)."""

from __future__ import annotations

import asyncio

from test_backpressure import FakeTransport, connect_with

from zabby.server.config import ServerConfig
from zabby.server.connection import ClientConnection
from zabby.server.core import ZabbyServer
from zabby.server.ensemble import EnsembleServer
from zabby.server.local_sessions import LocalSessionsEnsembleServer
from zabby.server.readonly import ReadOnlyEnsembleServer
from zabby.wire import (
    ACL,
    CreateRequest,
    Id,
    Op,
    PathWatchRequest,
    encode_request,
)
from zabby.wire.protocol import FrameDecoder, decode_reply_header
from zabby.wire.records import GetDataResponse, PathRequest, SetDataRequest

_ACL = [ACL(31, Id("world", "anyone"))]


class HeldCommitter:
    """Holds every txn until the test releases (or fails) them, in order."""

    failure: str | None = None

    def __init__(self) -> None:
        self.held: list = []

    def submit(self, txn, done, failed) -> None:
        if self.failure is not None:
            failed(self.failure)
            return
        self.held.append((done, failed))

    def release(self) -> None:
        held, self.held = self.held, []
        for done, _ in held:
            done()

    def fail(self, why: str) -> None:
        self.failure = why
        held, self.held = self.held, []
        for _, failed in held:
            failed(why)

    def close(self) -> None:
        pass


class Transport(FakeTransport):
    """test_backpressure's transport, keeping what the server wrote."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, data) -> None:
        self.data += data
        super().write(data)


def _connect(server: ZabbyServer) -> tuple[ClientConnection, Transport]:
    return connect_with(server, Transport())


def _replies(t: Transport) -> list[tuple[int, int]]:
    """(xid, err) of every reply in what the transport got, after the connect response."""
    frames = FrameDecoder().feed(bytes(t.data))
    return [(h.xid, h.err) for h, _ in map(decode_reply_header, frames[1:])]


async def _session_on_held_log():
    """A standalone server whose log commits only when told, and a connection with
    its session open: (committer, server, conn, transport)."""
    committer = HeldCommitter()
    server = ZabbyServer(ServerConfig(max_client_cnxns=0), committer=committer)
    conn, t = _connect(server)
    committer.release()  # the createSession
    await asyncio.sleep(0)
    return committer, server, conn, t


def test_pipelined_writes_are_answered_in_order_once_committed():
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        conn.data_received(
            encode_request(2, Op.CREATE, CreateRequest("/a", b"1", _ACL, 0))
            + encode_request(3, Op.SET_DATA, SetDataRequest("/a", b"2", -1))
            + encode_request(4, Op.SET_DATA, SetDataRequest("/a", b"3", 7)))  # bad version
        await asyncio.sleep(0)
        sid = conn.session.id
        assert _replies(t) == []  # nothing answered before it is durable
        assert len(server.commit_stage.pending_writes[sid]) == 3
        assert server.outstanding == 3
        committer.release()
        await asyncio.sleep(0)
        assert _replies(t) == [(2, 0), (3, 0), (4, -103)]
        assert not any(server.commit_stage.pending_writes.values())
        assert server.outstanding == 0 and conn.inflight == 0
        assert server.tree.get_node("/a").data == b"2"

    asyncio.run(main())


def test_a_read_is_answered_at_once_only_with_nothing_before_it():
    # core.handle_request answers a read straight away when the connection's backlog
    # is empty and no write is in flight; behind a write it waits, in order
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        conn.data_received(encode_request(2, Op.GET_DATA, PathWatchRequest("/", False)))
        assert _replies(t) == [(2, 0)]  # nothing before it: answered in the same read
        conn.data_received(
            encode_request(3, Op.CREATE, CreateRequest("/a", b"1", _ACL, 0))
            + encode_request(4, Op.GET_DATA, PathWatchRequest("/a", False)))
        conn.data_received(encode_request(5, Op.EXISTS, PathWatchRequest("/b", False)))
        await asyncio.sleep(0)
        assert _replies(t) == [(2, 0)]  # both reads wait for the write before them
        assert len(conn.backlog) == 2 and conn.inflight == 1
        committer.release()
        await asyncio.sleep(0)
        assert _replies(t) == [(2, 0), (3, 0), (4, 0), (5, -101)]
        assert not conn.backlog and conn.inflight == 0
        conn.data_received(encode_request(6, Op.EXISTS, PathWatchRequest("/a", False)))
        assert _replies(t)[-1] == (6, 0)

    asyncio.run(main())


def test_a_write_whose_connection_closed_is_applied_but_not_awaited():
    async def main():
        committer = HeldCommitter()
        server = ZabbyServer(ServerConfig(max_client_cnxns=0), committer=committer)
        conn, t = _connect(server)
        other, t2 = _connect(server)
        committer.release()
        await asyncio.sleep(0)
        conn.data_received(encode_request(2, Op.CREATE, CreateRequest("/gone", b"", _ACL, 0)))
        other.data_received(encode_request(2, Op.CREATE, CreateRequest("/kept", b"", _ACL, 0)))
        await asyncio.sleep(0)
        conn.abort()
        # its queue entry went with it: no global back-pressure left behind
        assert conn.session.id not in server.commit_stage.pending_writes
        assert server.outstanding == 1
        committer.release()
        await asyncio.sleep(0)
        assert server.tree.get_node("/gone") is not None  # committed: applied all the same
        assert _replies(t2) == [(2, 0)]
        assert server.outstanding == 0
        assert not any(server.commit_stage.pending_writes.values())

    asyncio.run(main())


def test_a_log_failure_drops_every_pending_request_and_refuses_writes():
    async def main():
        committer = HeldCommitter()
        server = ZabbyServer(ServerConfig(max_client_cnxns=0), committer=committer)
        conn, t = _connect(server)
        committer.release()
        await asyncio.sleep(0)
        conn.data_received(encode_request(2, Op.CREATE, CreateRequest("/x", b"", _ACL, 0)))
        connecting, t2 = _connect(server)  # its createSession is held too
        await asyncio.sleep(0)
        committer.fail("disk on fire")
        # outcome unknown to both clients: their connections are dropped, unanswered
        assert t.closed and t2.closed
        assert _replies(t) == []
        assert server.tree.get_node("/x") is None
        assert server.commit_stage.pending_writes == {}
        assert server.commit_stage.pending_connects == {}
        assert server.outstanding == 0
        # a new session still connects (no txn) and its writes are refused
        fresh, t3 = _connect(server)
        await asyncio.sleep(0)
        fresh.data_received(encode_request(2, Op.CREATE, CreateRequest("/y", b"", _ACL, 0)))
        await asyncio.sleep(0)
        assert _replies(t3) == [(2, -119)]  # NOTREADONLY

    asyncio.run(main())


# the request path: one implementation, in core.py and the commit stage
_REQUEST_PATH = (
    "handle_connect", "handle_request", "pump", "_read", "_write", "_reply",
    "_start_session", "_reopen", "_reopened", "_session_ready", "_submit_internal",
    "close_session", "tick", "connection_closed", "_fire",
)


def test_ensemble_members_share_the_request_path():
    for cls in (EnsembleServer, ReadOnlyEnsembleServer, LocalSessionsEnsembleServer):
        for name in _REQUEST_PATH:
            assert getattr(cls, name) is getattr(ZabbyServer, name), (cls.__name__, name)


# ------------------------------------------------------------ writes run ahead
# A write behind a read that waits (for the write before it) is started at once, as
# ZooKeeper's PrepRequestProcessor takes it; the read is answered after the write
# before it is applied and before the write after it is (core._run_ahead).

def _frames(t: Transport) -> list[tuple[int, int, bytes]]:
    """(xid, err, body) of every frame after the connect response."""
    out = []
    for f in FrameDecoder().feed(bytes(t.data))[1:]:
        h, pos = decode_reply_header(f)
        out.append((h.xid, h.err, bytes(f[pos:])))
    return out


def _data(body: bytes) -> bytes:
    return GetDataResponse.decode_from(body, 0)[0].data


def _write_read_write(conn, watch: bool = False) -> None:
    conn.data_received(
        encode_request(2, Op.CREATE, CreateRequest("/a", b"1", _ACL, 0))
        + encode_request(3, Op.GET_DATA, PathWatchRequest("/a", watch))
        + encode_request(4, Op.SET_DATA, SetDataRequest("/a", b"2", -1))
        + encode_request(5, Op.GET_DATA, PathWatchRequest("/a", False)))


def test_a_write_behind_a_waiting_read_is_started_at_once():
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        _write_read_write(conn)
        await asyncio.sleep(0)
        sid = conn.session.id
        # both writes handed to the log; each read waits for the write before it
        assert [e[2] for e in server.commit_stage.pending_writes[sid]] == [2, 4]
        assert len(committer.held) == 2 and _frames(t) == []
        assert conn.inflight == 2 and conn.placed == 1
        committer.release()
        await asyncio.sleep(0)
        got = _frames(t)
        assert [(x, e) for x, e, _ in got] == [(2, 0), (3, 0), (4, 0), (5, 0)]
        assert _data(got[1][2]) == b"1"  # the read saw the write before it, not after
        assert _data(got[3][2]) == b"2"
        assert not conn.backlog and conn.inflight == 0 and conn.placed == 0

    asyncio.run(main())


def test_reads_before_a_write_started_ahead_are_answered_before_it_even_when_stalled():
    # the client stopped reading: pump answers nothing more, but the held read must
    # not see the write after it, so it is answered as that write is applied
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        _write_read_write(conn)
        await asyncio.sleep(0)
        conn.write_paused = True
        committer.release()
        await asyncio.sleep(0)
        got = _frames(t)
        assert [(x, e) for x, e, _ in got] == [(2, 0), (3, 0), (4, 0)]
        assert _data(got[1][2]) == b"1"
        # the last read waits (behind the applied write's placeholder) for the client
        assert [op for _, op, _, _ in conn.backlog][-1] == Op.GET_DATA
        conn.write_paused = False
        server.pump(conn)
        await asyncio.sleep(0)  # (answers are flushed at the end of the turn)
        got = _frames(t)
        assert got[-1][0] == 5 and _data(got[-1][2]) == b"2"

    asyncio.run(main())


def test_a_watch_set_by_a_held_read_fires_for_the_write_after_it():
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        _write_read_write(conn, watch=True)
        await asyncio.sleep(0)
        committer.release()
        await asyncio.sleep(0)
        # the read's answer, then the event of the write after it, then that write's
        assert [(x, e) for x, e, _ in _frames(t)] == [(2, 0), (3, 0), (-1, 0), (4, 0), (5, 0)]

    asyncio.run(main())


def test_writes_are_not_started_past_a_sync():
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        conn.data_received(
            encode_request(2, Op.CREATE, CreateRequest("/a", b"1", _ACL, 0))
            + encode_request(3, Op.GET_DATA, PathWatchRequest("/a", False))
            + encode_request(4, Op.SYNC, PathRequest("/a"))
            + encode_request(5, Op.SET_DATA, SetDataRequest("/a", b"2", -1)))
        await asyncio.sleep(0)
        assert len(committer.held) == 1  # the write past the sync waits its turn
        committer.release()
        await asyncio.sleep(0)
        committer.release()
        await asyncio.sleep(0)
        assert [(x, e) for x, e, _ in _frames(t)] == [(2, 0), (3, 0), (4, 0), (5, 0)]

    asyncio.run(main())


def test_a_failed_write_started_ahead_keeps_the_order():
    # a write that fails (bad version) is an error txn in the log's order: its answer
    # still comes after the read before it
    async def main():
        committer, server, conn, t = await _session_on_held_log()
        conn.data_received(
            encode_request(2, Op.CREATE, CreateRequest("/a", b"1", _ACL, 0))
            + encode_request(3, Op.GET_DATA, PathWatchRequest("/a", False))
            + encode_request(4, Op.SET_DATA, SetDataRequest("/a", b"2", 9))
            + encode_request(5, Op.CREATE, CreateRequest("/a", b"", _ACL, 0))
            + encode_request(6, Op.EXISTS, PathWatchRequest("/a", False)))
        await asyncio.sleep(0)
        assert len(committer.held) == 3
        committer.release()
        await asyncio.sleep(0)
        assert [(x, e) for x, e, _ in _frames(t)] == [
            (2, 0), (3, 0), (4, -103), (5, -110), (6, 0)]
        assert conn.inflight == 0 and conn.placed == 0

    asyncio.run(main())
