"""A small asyncio ZooKeeper client for the web console's backend.

The console acts on the tree *as a client*: it opens a session to the server's own
client port, adds the browser user's digest identity, and sends ordinary requests, so
ACLs, quotas and validation apply exactly as for any other client.  This runs on the
AdminServer's loop (never the server's).

Deliberately small: one connection, pipelined requests (xid -> future), a pinger, no
reconnect and no watches -- a lost connection fails the pending calls with
CONNECTIONLOSS and the caller opens a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from zabby.wire import (
    ACL,
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    AuthPacket,
    ConnectRequest,
    Create2Response,
    CreateRequest,
    DeleteRequest,
    Empty,
    Err,
    FrameDecoder,
    GetACLResponse,
    GetChildren2Response,
    GetDataResponse,
    Id,
    Op,
    PathRequest,
    PathWatchRequest,
    ReplyHeader,
    SetDataRequest,
    Stat,
    StatResponse,
    decode_connect_response,
    encode_connect_request,
    encode_request,
)

__all__ = ["OPEN_ACL", "ConsoleClient", "KeeperError"]

OPEN_ACL = [ACL(31, Id("world", "anyone"))]

_BODY: dict[int, Any] = {
    Op.CREATE2: Create2Response,
    Op.DELETE: Empty,
    Op.EXISTS: StatResponse,
    Op.GET_DATA: GetDataResponse,
    Op.SET_DATA: StatResponse,
    Op.GET_ACL: GetACLResponse,
    Op.GET_CHILDREN2: GetChildren2Response,
    Op.PING: Empty,
    Op.CLOSE_SESSION: Empty,
    Op.AUTH: Empty,
}


class KeeperError(Exception):
    """A request failed with ``code`` (a ``zabby.wire.Err``; CONNECTIONLOSS for I/O)."""

    def __init__(self, code: int, path: str = "") -> None:
        super().__init__(code, path)
        self.code = code
        self.path = path

    @property
    def name(self) -> str:
        try:
            return Err(self.code).name
        except ValueError:
            return str(self.code)


class ConsoleClient(asyncio.Protocol):
    """One session. ``await ConsoleClient.connect(host, port)``; then the request
    methods; ``await close()``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(max_frame=64 * 1024 * 1024)
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self.xid = 0
        self.session_id = 0
        self.closed = False
        self._pinger: asyncio.Task[None] | None = None

    # ----------------------------------------------------------- connection
    @classmethod
    async def connect(cls, host: str, port: int, *, session_timeout_ms: int = 30000,
                      timeout: float = 10.0) -> ConsoleClient:
        loop = asyncio.get_running_loop()
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(lambda: cls(timeout), host, port), timeout)
        except (OSError, TimeoutError) as e:
            raise KeeperError(Err.CONNECTIONLOSS, f"{host}:{port}: {e}") from e
        assert client.transport is not None
        client.transport.write(encode_connect_request(
            ConnectRequest(0, 0, session_timeout_ms, 0, b"\x00" * 16)))
        try:
            first = await asyncio.wait_for(client.handshake, timeout)
            resp, _ro = decode_connect_response(first)
        except (TimeoutError, ConnectionError, ValueError) as e:
            client.transport.close()
            raise KeeperError(Err.CONNECTIONLOSS, f"{host}:{port}: no session") from e
        if resp.timeOut <= 0:
            client.transport.close()
            raise KeeperError(Err.SESSIONEXPIRED)
        client.session_id = resp.sessionId
        interval = max(resp.timeOut / 3000.0, 0.5)
        client._pinger = loop.create_task(client._ping_loop(interval))
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except Exception:  # noqa: BLE001 - a bad frame: drop the connection
            self._fail()
            return
        for f in frames:
            if not self.handshake.done():
                self.handshake.set_result(f)
                continue
            hdr, pos = ReplyHeader.decode_from(f, 0)
            if hdr.xid in (XID_NOTIFICATION, XID_PING):
                continue
            entry = self.pending.pop(hdr.xid, None)
            if entry is None:
                continue
            op, fut = entry
            if fut.done():
                continue
            if hdr.err:
                fut.set_exception(KeeperError(hdr.err))
            else:
                body = _BODY.get(op)
                fut.set_result(body.decode_from(f, pos)[0] if body else None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail()

    def _fail(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection lost"))
        for _op, fut in self.pending.values():
            if not fut.done():
                fut.set_exception(KeeperError(Err.CONNECTIONLOSS))
        self.pending.clear()
        if self._pinger is not None:
            self._pinger.cancel()

    async def _ping_loop(self, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            if self.transport is not None and not self.closed:
                self.transport.write(encode_request(XID_PING, Op.PING))

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(KeeperError, TimeoutError):
                await asyncio.wait_for(self.call(Op.CLOSE_SESSION, Empty()), 2.0)
        self._fail()

    # -------------------------------------------------------------- requests
    async def call(self, op: int, body: Any, path: str = "", xid: int | None = None) -> Any:
        if self.closed or self.transport is None:
            raise KeeperError(Err.CONNECTIONLOSS, path)
        if xid is None:
            self.xid += 1
            xid = self.xid
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[xid] = (op, fut)
        self.transport.write(encode_request(xid, op, body))
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            self.pending.pop(xid, None)
            raise KeeperError(Err.OPERATIONTIMEOUT, path) from None
        except KeeperError as e:
            raise KeeperError(e.code, path) from None

    async def add_auth(self, scheme: str, auth: bytes) -> None:
        await self.call(Op.AUTH, AuthPacket(0, scheme, auth), xid=XID_AUTH)

    async def exists(self, path: str) -> Stat | None:
        try:
            return (await self.call(Op.EXISTS, PathWatchRequest(path, False), path)).stat
        except KeeperError as e:
            if e.code == Err.NONODE:
                return None
            raise

    async def get_data(self, path: str) -> tuple[bytes, Stat]:
        r = await self.call(Op.GET_DATA, PathWatchRequest(path, False), path)
        return r.data or b"", r.stat

    async def get_children(self, path: str) -> tuple[list[str], Stat]:
        r = await self.call(Op.GET_CHILDREN2, PathWatchRequest(path, False), path)
        return list(r.children), r.stat

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        r = await self.call(Op.GET_ACL, PathRequest(path), path)
        return list(r.acl), r.stat

    async def create(self, path: str, data: bytes, acl: list[ACL], flags: int = 0,
                     ) -> tuple[str, Stat]:
        r = await self.call(Op.CREATE2, CreateRequest(path, data, acl, flags), path)
        return r.path, r.stat

    async def set_data(self, path: str, data: bytes, version: int = -1) -> Stat:
        return (await self.call(Op.SET_DATA, SetDataRequest(path, data, version), path)).stat

    async def delete(self, path: str, version: int = -1) -> None:
        await self.call(Op.DELETE, DeleteRequest(path, version), path)
