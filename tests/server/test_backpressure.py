"""In-process checks of the connection's back-pressure and the session clock."""

from __future__ import annotations

import asyncio

from zabby.server import connection as cnxn
from zabby.server.config import ServerConfig
from zabby.server.connection import ClientConnection
from zabby.server.core import ZabbyServer, _add_auth
from zabby.wire import (
    ACL,
    ConnectRequest,
    CreateRequest,
    Id,
    Op,
    PathWatchRequest,
    encode_connect_request,
    encode_request,
)


class FakeTransport:
    def __init__(self, high: int = cnxn.OUTPUT_HIGH) -> None:
        self.buffered = 0
        self.high = high
        self.reading = True
        self.closed = False
        self.protocol: ClientConnection | None = None

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5555) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self.high = high

    def write(self, data) -> None:
        was = self.buffered > self.high
        self.buffered += len(data)
        if not was and self.buffered > self.high:
            self.protocol.pause_writing()

    def drain(self) -> None:
        self.buffered = 0
        self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def abort(self) -> None:
        self.closed = True

    close = abort


def _connect(server: ZabbyServer) -> tuple[ClientConnection, FakeTransport]:
    return connect_with(server, FakeTransport())


def connect_with(server: ZabbyServer, t):
    """A ClientConnection of `server` on the in-process transport `t`, its session
    asked for (the connect response goes to `t`)."""
    conn = ClientConnection(server)
    t.protocol = conn
    conn.connection_made(t)
    conn.data_received(encode_connect_request(ConnectRequest(0, 0, 30000, 0, b"\0" * 16)))
    return conn, t


def test_pump_stops_for_a_client_that_does_not_read_and_resumes():
    async def main():
        server = ZabbyServer(ServerConfig(max_client_cnxns=0))
        conn, t = _connect(server)
        acl = [ACL(31, Id("world", "anyone"))]
        conn.data_received(encode_request(1, Op.CREATE, CreateRequest("/big", b"x" * 200_000,
                                                                      acl, 0)))
        await asyncio.sleep(0)
        t.drain()
        n = 200
        conn.data_received(b"".join(encode_request(i + 2, Op.GET_DATA,
                                                   PathWatchRequest("/big", False))
                                    for i in range(n)))
        await asyncio.sleep(0)
        # a few replies at most went out; the rest wait, and the socket is not read
        assert t.buffered < 4 * cnxn.OUTPUT_HIGH
        assert len(conn.backlog) > n - 10
        assert not t.reading
        sent = 0
        for _ in range(10 * n):
            if not conn.backlog:
                break
            sent += t.buffered
            t.drain()
            for _ in range(3):
                await asyncio.sleep(0)
        assert not conn.backlog
        t.drain()
        await asyncio.sleep(0)
        assert t.reading

    asyncio.run(main())


def test_add_auth_keeps_order_and_is_idempotent():
    class C:
        auth = [Id("ip", "1.2.3.4")]
        auth_set = {Id("ip", "1.2.3.4")}

    c = C()
    for i in [3, 1, 3, 2, 1]:
        _add_auth(c, Id("digest", f"u{i}"))
    assert c.auth == [Id("ip", "1.2.3.4"), Id("digest", "u3"), Id("digest", "u1"),
                      Id("digest", "u2")]
    c.auth.append(Id("x509", "cn"))  # appended directly elsewhere: the set catches up
    _add_auth(c, Id("x509", "cn"))
    assert c.auth.count(Id("x509", "cn")) == 1


def test_session_clock_does_not_count_a_stall():
    server = ZabbyServer(ServerConfig())
    before = server.monotonic_ms()
    server._stalled_ns += 5_000_000_000
    assert server.monotonic_ms() <= before


def test_a_handshake_that_never_comes_is_closed():
    async def main():
        server = ZabbyServer(ServerConfig(max_client_cnxns=0, sessionless_cnxn_timeout=1))
        conn = ClientConnection(server)
        t = FakeTransport()
        t.protocol = conn
        conn.connection_made(t)
        await asyncio.sleep(0.01)
        server._expire_handshakes()
        assert t.closed and conn not in server.connections

    asyncio.run(main())


def test_max_cnxns_counts_every_connection():
    async def main():
        server = ZabbyServer(ServerConfig(max_client_cnxns=0, max_cnxns=3))
        ts = []
        for _ in range(5):
            conn = ClientConnection(server)
            t = FakeTransport()
            t.protocol = conn
            conn.connection_made(t)
            ts.append(t)
        assert [t.closed for t in ts] == [False, False, False, True, True]

    asyncio.run(main())


def test_a_big_read_is_handled_in_slices_in_order():
    async def main():
        server = ZabbyServer(ServerConfig(max_client_cnxns=0))
        conn, t = _connect(server)
        await asyncio.sleep(0)
        replies = []
        t.write = lambda data: replies.append(bytes(data))
        n = 3 * cnxn.FRAMES_PER_TURN + 10
        frames = [encode_request(i + 1, Op.EXISTS, PathWatchRequest("/", False))
                  for i in range(n)]
        conn.data_received(b"".join(frames[: n - 5]))
        assert conn.packets_received - 1 == cnxn.FRAMES_PER_TURN
        assert not t.reading
        conn.data_received(b"".join(frames[n - 5:]))  # arrives mid-slice: queued behind
        for _ in range(10):
            await asyncio.sleep(0)
        assert conn.packets_received - 1 == n
        assert t.reading
        import struct

        blob = b"".join(replies)
        xids, pos = [], 0
        while pos < len(blob):
            (length,) = struct.unpack_from(">i", blob, pos)
            xids.append(struct.unpack_from(">i", blob, pos + 4)[0])
            pos += 4 + length
        assert xids == list(range(1, n + 1))

    asyncio.run(main())
