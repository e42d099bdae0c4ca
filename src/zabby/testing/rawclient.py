"""A tiny synchronous ZooKeeper client that speaks raw frames through ``zabby.wire``.

It reaches what kazoo hides: every opcode (TTL and container creates, multiRead,
addWatch, removeWatches, getEphemerals, whoAmI, ...), the reply header's zxid and
error code, the bytes after an error reply, and malformed or oversized frames.

There is no background thread: the caller drives the socket. Watch notifications
that arrive while waiting for a reply are kept in ``events`` in arrival order; call
``ping()`` to flush anything the server queued before its answer.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zabby.wire import (
    ACL,
    XID_NOTIFICATION,
    XID_PING,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    Empty,
    ErrorResponse,
    FrameDecoder,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    Id,
    MultiResponse,
    Op,
    PathResponse,
    ReplyHeader,
    StatResponse,
    WatcherEvent,
    WhoAmIResponse,
    decode_connect_response,
    encode_connect_request,
    encode_request,
)

__all__ = [
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "ConnectionClosed",
    "RawClient",
    "Reply",
    "RESPONSE_BODY",
]

OPEN_ACL_UNSAFE = [ACL(31, Id("world", "anyone"))]
READ_ACL_UNSAFE = [ACL(1, Id("world", "anyone"))]

# Body of a successful reply, per request opcode.
RESPONSE_BODY: dict[int, Any] = {
    Op.CREATE: PathResponse,
    Op.CREATE2: Create2Response,
    Op.CREATE_CONTAINER: Create2Response,
    Op.CREATE_TTL: Create2Response,
    Op.DELETE: Empty,
    Op.DELETE_CONTAINER: Empty,
    Op.EXISTS: StatResponse,
    Op.GET_DATA: GetDataResponse,
    Op.SET_DATA: StatResponse,
    Op.GET_ACL: GetACLResponse,
    Op.SET_ACL: StatResponse,
    Op.GET_CHILDREN: GetChildrenResponse,
    Op.GET_CHILDREN2: GetChildren2Response,
    Op.SYNC: PathResponse,
    Op.PING: Empty,
    Op.CHECK: Empty,
    Op.MULTI: MultiResponse,
    Op.MULTI_READ: MultiResponse,
    Op.CHECK_WATCHES: Empty,
    Op.REMOVE_WATCHES: Empty,
    Op.AUTH: Empty,
    Op.SET_WATCHES: Empty,
    Op.SET_WATCHES2: Empty,
    Op.GET_EPHEMERALS: GetEphemeralsResponse,
    Op.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberResponse,
    Op.ADD_WATCH: ErrorResponse,  # ZooKeeper answers addWatch with ErrorResponse(0)
    Op.WHO_AM_I: WhoAmIResponse,
    Op.CLOSE_SESSION: Empty,
}

_HDR = struct.Struct(">iqi")


class ConnectionClosed(ConnectionError):
    """The server closed the connection (or it broke) before the expected frame."""


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: Any = None  # decoded record when err == 0 and the opcode is known
    raw: bytes = b""  # bytes after the reply header
    decode_error: str | None = None
    # bytes after the decoded body (the opcode's response type must consume them all:
    # a GetChildren2 body sent for getChildren, or Create2 for create, leaves some)
    trailing: bytes = b""
    # notifications that arrived on this connection between the request and its reply
    events_before: int = 0


@dataclass
class RawClient:
    host: str
    port: int
    timeout_ms: int = 30000
    session_id: int = 0
    passwd: bytes = b"\x00" * 16
    last_zxid: int = 0
    read_only: bool = False
    io_timeout: float = 10.0
    events: list[WatcherEvent] = field(default_factory=list)
    connect_response: ConnectResponse | None = None
    # TLS (a secure client port): the context to wrap the socket with, or None
    ssl_context: ssl.SSLContext | None = None
    # called once when a reply is `nudge_after` seconds late, then the wait goes on
    # (the differential Runner's work-around for a ZooKeeper follower that holds a
    # write until its next request: differential.Runner)
    nudge: Callable[[], None] | None = None
    nudge_after: float = 2.0

    def __post_init__(self) -> None:
        self.sock: socket.socket | None = None
        self.decoder = FrameDecoder(max_frame=64 * 1024 * 1024)
        self.frames: list[bytes] = []
        self.xid = 0
        # requests whose wait timed out: their late replies are dropped, not taken
        # for the reply of the next request
        self.abandoned: set[int] = set()

    # ----------------------------------------------------------- connection
    def open(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                self.sock = self.ssl_context.wrap_socket(self.sock, server_hostname=self.host)
            except BaseException:
                self.sock.close()
                self.sock = None
                raise
        self.decoder = FrameDecoder(max_frame=64 * 1024 * 1024)
        self.frames = []

    def connect(self) -> ConnectResponse:
        """Open a socket and run the handshake (new session, or resume session_id)."""
        self.open()
        req = ConnectRequest(0, self.last_zxid, self.timeout_ms, self.session_id, self.passwd)
        self.send_bytes(encode_connect_request(req, self.read_only))
        resp, _ro = decode_connect_response(self.read_frame())
        self.connect_response = resp
        if resp.sessionId:
            self.session_id = resp.sessionId
            self.passwd = resp.passwd
        return resp

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def drop(self) -> None:
        """Close the socket without closeSession: the session lives on until it expires."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def close(self) -> Reply | None:
        """closeSession, then close the socket."""
        reply = None
        if self.sock is not None:
            try:
                reply = self.request(Op.CLOSE_SESSION, Empty())
            except (ConnectionClosed, OSError):
                pass
            self.drop()
        return reply

    def __enter__(self) -> RawClient:
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- frames
    def send_bytes(self, data: bytes) -> None:
        if self.sock is None:
            raise ConnectionClosed("not connected")
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.drop()
            raise ConnectionClosed(f"send failed: {e!r}") from e

    def read_frame(self, timeout: float | None = None) -> bytes:
        if self.frames:
            return self.frames.pop(0)
        if self.sock is None:
            raise ConnectionClosed("not connected")
        now = time.monotonic()
        deadline = now + (self.io_timeout if timeout is None else timeout)
        nudge_at = now + self.nudge_after if self.nudge is not None else deadline
        while not self.frames:
            now = time.monotonic()
            if now >= nudge_at < deadline and self.nudge is not None:
                nudge_at = deadline
                self.nudge()
            remaining = min(deadline, nudge_at) - now
            if deadline - now <= 0:
                raise TimeoutError("no frame from server")
            self.sock.settimeout(max(remaining, 0.001))
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError as e:
                self.drop()
                raise ConnectionClosed(f"recv failed: {e!r}") from e
            if not data:
                self.drop()
                raise ConnectionClosed("server closed the connection")
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    # ----------------------------------------------------------- requests
    def send_request(self, op: int, body: Any = None, xid: int | None = None) -> int:
        xid = self.next_xid() if xid is None else xid
        self.send_bytes(encode_request(xid, op, body))
        return xid

    def wait_reply(self, xid: int, op: int, timeout: float | None = None) -> Reply:
        """Read frames until the reply for xid; notifications go to ``events``."""
        before = 0
        while True:
            try:
                f = self.read_frame(timeout)
            except TimeoutError:
                self.abandoned.add(xid)
                raise
            hdr, pos = ReplyHeader.decode_from(f, 0)
            if hdr.xid == XID_NOTIFICATION:
                ev, _ = WatcherEvent.decode_from(f, pos)
                self.events.append(ev)
                before += 1
                continue
            if hdr.zxid > 0:
                self.last_zxid = max(self.last_zxid, hdr.zxid)
            if hdr.xid != xid and hdr.xid in self.abandoned:
                self.abandoned.discard(hdr.xid)  # the late reply of a timed-out request
                continue
            if hdr.xid != xid:
                raise AssertionError(f"reply for xid {hdr.xid} while waiting for {xid} (op {op})")
            reply = Reply(hdr.xid, hdr.zxid, hdr.err, raw=bytes(f[pos:]), events_before=before)
            if hdr.err == 0:
                body_type = RESPONSE_BODY.get(op)
                if body_type is not None:
                    try:
                        reply.body, end = body_type.decode_from(f, pos)
                        reply.trailing = bytes(f[end:])
                    except Exception as e:  # noqa: BLE001 - reported, compared
                        reply.decode_error = f"{type(e).__name__}: {e}"
            return reply

    def request(self, op: int, body: Any = None, timeout: float | None = None) -> Reply:
        xid = self.send_request(op, body)
        return self.wait_reply(xid, op, timeout)

    def ping(self) -> Reply:
        self.send_request(Op.PING, None, xid=XID_PING)
        return self.wait_reply(XID_PING, Op.PING)

    def take_events(self) -> list[WatcherEvent]:
        evs, self.events = self.events, []
        return evs

    def wait_closed(self, timeout: float = 5.0, after_frame: float | None = None) -> bool:
        """True when the server closes the connection within timeout.

        Frames that arrive meanwhile are kept for ``read_frame``. With `after_frame`,
        a server that answered is given only that much longer to close after its
        first frame (an error reply to a bad request usually leaves it open).
        """
        deadline = time.monotonic() + timeout
        seen = len(self.frames)
        while self.sock is not None:
            if after_frame is not None and len(self.frames) > seen:
                deadline = min(deadline, time.monotonic() + after_frame)
                after_frame = None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return False
            except OSError:
                self.drop()
                return True
            if not data:
                self.drop()
                return True
            try:
                self.frames.extend(self.decoder.feed(data))
            except Exception:  # noqa: BLE001 - garbage then close is still "closed"
                pass
        return True
