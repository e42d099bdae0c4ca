"""Minimal asyncio client sessions for the load generator (not a general client).

``Session`` is an ``asyncio.Protocol``: ``request(op, body)`` returns a future of
``(err, body_bytes)``; replies are matched FIFO, as the protocol guarantees.
It is what setup, cleanup and the slower workloads (watch, session) use; the hot
workloads have hand-inlined protocols in ``zabby.bench.workloads``.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable

from ..wire import (
    ACL,
    ConnectRequest,
    Id,
    decode_connect_response,
    encode_connect_request,
    encode_request,
)

__all__ = [
    "OPEN_ACL",
    "BenchError",
    "Session",
    "connect",
    "connect_frame",
    "parse_hosts",
    "request_tail",
]

OPEN_ACL = [ACL(31, Id("world", "anyone"))]

LEN = struct.Struct(">i")
XID = struct.Struct(">i")
REPLY = struct.Struct(">iqi")  # xid, zxid, err (after the 4-byte length)


class BenchError(Exception):
    """A failure the user must see as one line: unreachable server, refused session, ..."""


def parse_hosts(hosts: str) -> list[tuple[str, int]]:
    out = []
    for part in hosts.split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep:
            host, port = part, "2181"
        try:
            out.append((host.strip("[]") or "127.0.0.1", int(port)))
        except ValueError:
            raise BenchError(f"bad host:port {part!r}") from None
    if not out:
        raise BenchError("no hosts given")
    return out


def connect_frame(timeout_ms: int) -> bytes:
    return encode_connect_request(ConnectRequest(0, 0, timeout_ms, 0, b"\0" * 16))


def request_tail(op: int, body) -> tuple[bytes, bytes]:
    """(length prefix, opcode + body) of a request; the 4-byte xid goes between."""
    full = encode_request(0, op, body)
    return full[:4], full[8:]


class Session(asyncio.Protocol):
    """One ZooKeeper session on one connection; futures answered in FIFO order."""

    def __init__(self, timeout_ms: int = 30000,
                 on_event: Callable[[int, bytes], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        self.timeout_ms = timeout_ms
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.session_id = 0
        self._pending: deque[asyncio.Future] = deque()
        self._buf = bytearray()
        self._xid = 0

    # -------------------------------------------------------- protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(connect_frame(self.timeout_ms))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (ln,) = LEN.unpack_from(buf, pos)
            end = pos + 4 + ln
            if end > n:
                break
            if not self.ready.done():
                resp, _ = decode_connect_response(bytes(buf[pos + 4 : end]))
                if resp.timeOut <= 0:
                    self.ready.set_exception(BenchError("the server refused the session"))
                else:
                    self.session_id = resp.sessionId
                    self.ready.set_result(self)
            else:
                xid, _zxid, err = REPLY.unpack_from(buf, pos + 4)
                body = bytes(buf[pos + 20 : end])
                if xid == -1:
                    if self.on_event is not None:
                        self.on_event(err, body)
                elif xid != -2 and self._pending:
                    fut = self._pending.popleft()
                    if not fut.done():
                        fut.set_result((err, body))
            pos = end
        if pos:
            del buf[:pos]

    def connection_lost(self, exc) -> None:
        err = ConnectionError(f"connection lost: {exc}" if exc else "connection closed")
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"the server closed the connection ({err})"))
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(err)
        if not self.closed.done():
            self.closed.set_result(None)

    # -------------------------------------------------------- requests
    def request(self, op: int, body=None) -> asyncio.Future:
        lenb, tail = request_tail(op, body)
        return self.send(lenb, tail)

    def send(self, lenb: bytes, tail: bytes) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            fut.set_exception(ConnectionError("connection closed"))
            return fut
        self._xid += 1
        self._pending.append(fut)
        self.transport.write(b"".join((lenb, XID.pack(self._xid), tail)))
        return fut

    async def close(self, timeout: float = 5.0) -> None:
        """closeSession, then close the connection."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            await asyncio.wait_for(self.request(-11), timeout)
        except (TimeoutError, ConnectionError):
            pass
        self.transport.close()


async def connect(host: str, port: int, factory: Callable[[], asyncio.Protocol],
                  timeout: float = 5.0):
    """Connect and wait for the session handshake; unreachable -> BenchError."""
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await asyncio.wait_for(
            loop.create_connection(factory, host, port), timeout)
    except TimeoutError:
        raise BenchError(f"cannot connect to {host}:{port}: timed out after {timeout:g} s") from None
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise BenchError(f"cannot connect to {host}:{port}: {why}") from None
    try:
        await asyncio.wait_for(asyncio.shield(proto.ready), timeout)
    except BenchError as e:
        transport.close()
        raise BenchError(f"{host}:{port}: {e}") from None
    except TimeoutError:
        # closing fails `ready` later ("closed the connection"): nobody awaits it now
        proto.ready.add_done_callback(_retrieve)
        transport.close()
        raise BenchError(
            f"{host}:{port} accepted the connection but started no session within {timeout:g} s"
        ) from None
    return transport, proto


def _retrieve(f: asyncio.Future) -> None:
    if not f.cancelled():
        f.exception()  # mark it seen: no "Future exception was never retrieved" noise
