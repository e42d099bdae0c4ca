"""Peer transport: one TCP connection per pair of ensemble members.

Frames are ``length (u32) | crc32 (u32) | payload``; a connection opens with
a hello frame naming the sender (``ZBPR`` magic, version, server id). The
member with the larger id dials, as ZooKeeper's QuorumCnxManager keeps only
the connection from the larger id to the smaller, so a pair never holds two.
A broken link is redialled with capped exponential backoff; messages to a
peer that is down are dropped (the consensus layer retransmits what matters).

TLS is a later issue: the seam is `PeerMesh._open_connection` /
`loop.create_server`, which would take an `ssl` context.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import Callable

log = logging.getLogger("zabby.server.peers")

_HDR = struct.Struct(">II")
_HELLO = struct.Struct(">4sHq")
_MAGIC = b"ZBPR"
VERSION = 1
MAX_FRAME = 1 << 30  # a SNAP sync carries the whole tree in one frame


class PeerProtocolError(Exception):
    pass


def encode_frame(payload: bytes) -> bytes:
    return _HDR.pack(len(payload), zlib.crc32(payload)) + payload


class FrameReader:
    """Sans-IO splitter of checksummed frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 8:
            n, crc = _HDR.unpack_from(buf, pos)
            if n > MAX_FRAME:
                raise PeerProtocolError(f"frame of {n} bytes exceeds {MAX_FRAME}")
            end = pos + 8 + n
            if end > len(buf):
                break
            payload = bytes(buf[pos + 8 : end])
            if zlib.crc32(payload) != crc:
                raise PeerProtocolError("frame checksum mismatch")
            out.append(payload)
            pos = end
        if pos:
            del buf[:pos]
        return out


class _Link(asyncio.Protocol):
    def __init__(self, mesh: PeerMesh, peer_id: int | None) -> None:
        self.mesh = mesh
        self.peer_id = peer_id  # None until the hello of an accepted connection
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.hello_seen = False
        self.out: list[bytes] = []  # frames queued in this loop turn

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.write(encode_frame(_HELLO.pack(_MAGIC, VERSION, self.mesh.my_id)))
        if self.peer_id is not None:
            self.mesh._attach(self.peer_id, self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except PeerProtocolError as e:
            log.warning("dropping peer link %s: %s", self._who(), e)
            self.close()
            return
        delivered = False
        for f in frames:
            if self.closed:
                break
            if not self.hello_seen:
                if not self._hello(f):
                    return
                continue
            self.mesh._deliver(self.peer_id, f)
            delivered = True
        if delivered:
            self.mesh._read_done()

    def _hello(self, f: bytes) -> bool:
        try:
            magic, version, sid = _HELLO.unpack(f)
        except struct.error:
            magic, version, sid = b"", 0, -1
        if magic != _MAGIC or version != VERSION:
            log.warning("dropping peer link %s: bad hello", self._who())
            self.close()
            return False
        if sid not in self.mesh.addresses or sid == self.mesh.my_id:
            log.warning("dropping peer link from unknown server id %d", sid)
            self.close()
            return False
        if self.peer_id is not None and sid != self.peer_id:
            log.warning("dropping peer link: dialled %d, answered by %d", self.peer_id, sid)
            self.close()
            return False
        self.hello_seen = True
        if self.peer_id is None:
            if sid > self.mesh.my_id:
                # larger ids dial smaller ones; accept
                self.peer_id = sid
                self.mesh._attach(sid, self)
            else:
                # a smaller id dialled us: drop it and make sure we dial instead
                log.debug("closing inbound link from smaller id %d; dialling it", sid)
                self.close()
                self.mesh._ensure_dialer(sid)
                return False
        return True

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        if self.peer_id is not None:
            self.mesh._detach(self.peer_id, self)

    def send(self, payload: bytes) -> None:
        """Queue a frame; the mesh writes each link's queue once per loop turn
        (one syscall for the many small messages a turn of Zab produces)."""
        if not self.closed and self.transport is not None:
            out = self.out
            if not out:
                self.mesh._schedule_flush(self)
            out.append(_HDR.pack(len(payload), zlib.crc32(payload)))
            out.append(payload)

    def flush(self) -> None:
        out = self.out
        if out:
            if not self.closed and self.transport is not None:
                self.transport.write(b"".join(out))
            out.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            if self.peer_id is not None:
                self.mesh._detach(self.peer_id, self)

    def _who(self) -> str:
        return f"server {self.peer_id}" if self.peer_id is not None else "(unidentified)"


class PeerMesh:
    """Connections to every other member on one port of theirs.

    ``addresses`` maps server id -> (host, port) including our own (we listen
    on ours). ``on_message(from_id, payload)`` runs on the event loop;
    ``after_read()``, if given, runs after each socket read's messages were delivered
    (a natural batch boundary: react once to everything one read brought).
    """

    def __init__(
        self,
        my_id: int,
        addresses: dict[int, tuple[str, int]],
        on_message: Callable[[int, bytes], None],
        *,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        on_link_change: Callable[[int, bool], None] | None = None,
        after_read: Callable[[], None] | None = None,
    ) -> None:
        self.my_id = my_id
        self.after_read = after_read
        self.addresses = addresses
        self.on_message = on_message
        self.on_link_change = on_link_change
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.links: dict[int, _Link] = {}
        self._to_flush: list[_Link] = []
        self._dialers: dict[int, asyncio.Task] = {}
        self._server: asyncio.base_events.Server | None = None
        self._stopped = False
        self.dropped = 0

    async def start(self) -> None:
        host, port = self.addresses[self.my_id]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Link(self, None), host=host, port=port, reuse_address=True
        )
        for sid in self.addresses:
            if sid < self.my_id:
                self._ensure_dialer(sid)

    async def stop(self) -> None:
        self._stopped = True
        for t in self._dialers.values():
            t.cancel()
        for link in list(self.links.values()):
            link.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def send(self, to: int, payload: bytes) -> bool:
        link = self.links.get(to)
        if link is None or link.closed:
            self.dropped += 1
            return False
        link.send(payload)
        return True

    def connected(self, sid: int) -> bool:
        link = self.links.get(sid)
        return link is not None and not link.closed

    # ------------------------------------------------------------ internals
    def _schedule_flush(self, link: _Link) -> None:
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._to_flush.append(link)

    def _flush_all(self) -> None:
        links, self._to_flush = self._to_flush, []
        for link in links:
            link.flush()

    def flush(self) -> None:
        """Write every queued frame now instead of at the end of the loop turn."""
        self._flush_all()

    def _deliver(self, sid: int, payload: bytes) -> None:
        try:
            self.on_message(sid, payload)
        except Exception:
            log.exception("error handling a message from server %d", sid)

    def _read_done(self) -> None:
        if self.after_read is not None:
            try:
                self.after_read()
            except Exception:
                log.exception("error after delivering peer messages")

    def _attach(self, sid: int, link: _Link) -> None:
        old = self.links.get(sid)
        if old is not None and old is not link:
            old.close()
        self.links[sid] = link
        if self.on_link_change:
            self.on_link_change(sid, True)

    def _detach(self, sid: int, link: _Link) -> None:
        if self.links.get(sid) is link:
            del self.links[sid]
            if self.on_link_change:
                self.on_link_change(sid, False)
            if sid < self.my_id and not self._stopped:
                self._ensure_dialer(sid)

    def _ensure_dialer(self, sid: int) -> None:
        t = self._dialers.get(sid)
        if self._stopped or (t is not None and not t.done()):
            return
        self._dialers[sid] = asyncio.get_running_loop().create_task(self._dial(sid))

    async def _dial(self, sid: int) -> None:
        delay = self.min_backoff
        loop = asyncio.get_running_loop()
        while not self._stopped:
            if self.connected(sid):
                return
            host, port = self.addresses[sid]
            try:
                await loop.create_connection(lambda: _Link(self, sid), host, port)
            except OSError:
                pass
            else:
                # The link may already be gone (a peer still dying accepted, then
                # reset): its _detach found this task still running and started no
                # other dialer, so only this loop can dial again.
                if self.connected(sid):
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
