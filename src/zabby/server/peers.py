"""Peer transport: one TCP connection per pair of ensemble members.

Frames are ``length (u32) | crc32 (u32) | payload``; a connection opens with
a hello frame naming the sender (``ZBPR`` magic, version, server id). The
member with the larger id dials, as ZooKeeper's QuorumCnxManager keeps only
the connection from the larger id to the smaller, so a pair never holds two.
A broken link is redialled with capped exponential backoff; messages to a
peer that is down are dropped (the consensus layer retransmits what matters).

Security (`quorum_auth`): with ``sslQuorum`` both sides of a link speak TLS and verify
each other's certificate; with quorum SASL the hello is version 2 and carries a flag,
and when both hellos have it the dialler authenticates (DIGEST-MD5) before the link is
used.  A link is "up" -- attached to the mesh, its frames delivered, messages sent on it
-- only once its hello (and SASL exchange) succeeded, and it must get there within the
handshake timeout; until then a frame may be at most 64 KiB.  A member without quorum
SASL sends the version 1 hello of earlier zabby releases, so they still link; an
earlier release refuses a version 2 hello (its size differs), so it never mistakes the
handshake for Zab traffic.  The dialler says hello first; the accepting member answers
with its hello only once it accepted the dialler's (id, certificate's host name, SASL
policy), so a refused dialler is told nothing and the dialler takes the link as up only
when the other side did.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .listen import accept_forever, first_byte_is_tls, listen_socket
from .quorum_auth import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    HandshakeRefused,
    LearnerHandshake,
    ServerHandshake,
    certificate_matches,
    refusal_reply,
    resolve_hosts,
    sasl_negotiation,
)

if TYPE_CHECKING:
    from .quorum_auth import QuorumSecurity

log = logging.getLogger("zabby.server.peers")

_HDR: Final = struct.Struct(">II")
_crc32: Final = zlib.crc32
_HELLO: Final = struct.Struct(">4sHq")  # version 1
_HELLO2: Final = struct.Struct(">4sHqB")  # version 2: + flags
_MAGIC: Final = b"ZBPR"
VERSION = 2
FLAG_SASL: Final = 0x01  # the sender does quorum SASL
MAX_FRAME: Final = 1 << 30  # a SNAP sync carries the whole tree in one frame
PRE_AUTH_MAX_FRAME = 64 << 10  # before a link is up: hello and handshake only
MAX_PENDING = 64  # accepted connections that may be in their handshake at once
REFUSAL_LOG_BURST = 20  # refusals logged per window; the rest are counted
REFUSAL_LOG_WINDOW = 10.0


class PeerProtocolError(Exception):
    pass


def encode_frame(payload: bytes) -> bytes:
    """`payload` as one frame (length, CRC-32, payload)."""
    return _HDR.pack(len(payload), _crc32(payload)) + payload


def encode_hello(sid: int, sasl: bool) -> bytes:
    """Version 1 without quorum SASL (what earlier members send), else version 2."""
    if not sasl:
        return _HELLO.pack(_MAGIC, 1, sid)
    return _HELLO2.pack(_MAGIC, 2, sid, FLAG_SASL)


def decode_hello(f: bytes) -> tuple[int, int, int]:
    """(version, server id, flags); HandshakeRefused when not a hello we speak."""
    if len(f) == _HELLO.size:
        magic, version, sid = _HELLO.unpack(f)
        flags = 0
        if magic == _MAGIC and version == 1:
            return version, sid, flags
    elif len(f) == _HELLO2.size:
        magic, version, sid, flags = _HELLO2.unpack(f)
        if magic == _MAGIC and version == 2:
            return version, sid, flags
    raise HandshakeRefused("bad hello (not a zabby peer, or a peer protocol version "
                           f"other than 1 and {VERSION})")


class FrameReader:
    """Sans-IO splitter of checksummed frames."""

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        # Frames are cut straight from `data` (what the transport read, usually whole
        # frames): one copy per payload. Only a frame split across reads goes through
        # the buffer, which is copied out once, when its first frame is complete (not at
        # every read of a big frame: that would be quadratic in the frame's size). The
        # header's ints are read byte by byte, which the compiled build does natively.
        buf = self._buf
        if buf:
            buf += data
            have = len(buf)
            if have < 8:
                return []
            n = (buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if n > self.max_frame:
                raise PeerProtocolError(f"frame of {n} bytes exceeds {self.max_frame}")
            if 8 + n > have:
                return []
            data = bytes(buf)
            buf.clear()
        out: list[bytes] = []
        pos = 0
        size = len(data)
        limit = self.max_frame
        while size - pos >= 8:
            n = (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
            if n > limit:
                raise PeerProtocolError(f"frame of {n} bytes exceeds {limit}")
            end = pos + 8 + n
            if end > size:
                break
            crc = ((data[pos + 4] << 24) | (data[pos + 5] << 16) | (data[pos + 6] << 8)
                   | data[pos + 7])
            payload = data[pos + 8 : end]
            if _crc32(payload) != crc:
                raise PeerProtocolError("frame checksum mismatch")
            out.append(payload)
            pos = end
        if pos < size:
            buf += data[pos:] if pos else data
        return out


def _fmt_addr(peername) -> str:
    try:
        host, port = peername[:2]
    except (TypeError, ValueError):
        return "?"
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS (a plaintext member or intruder?)",
    "HTTP_REQUEST": "the peer does not speak TLS",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the peer presented no certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not trust our certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer rejected our certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the peer requires a certificate",
}


def _peer_of(conn: socket.socket) -> str:
    try:
        return _fmt_addr(conn.getpeername())
    except OSError:
        return "?"


def _tls_reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        reason = e.reason or ""
        why = _TLS_REASONS.get(reason)
        return f"{why} ({reason})" if why else (reason or str(e))
    if isinstance(e, TimeoutError):
        return "TLS handshake timed out"
    return str(e) or type(e).__name__


class _Link(asyncio.Protocol):
    """One connection: hello, then (maybe) the SASL exchange, then up."""

    def __init__(self, mesh: PeerMesh, peer_id: int | None) -> None:
        self.mesh = mesh
        self.peer_id = peer_id  # None until the hello of an accepted connection
        self.dialler = peer_id is not None
        self.reader = FrameReader(PRE_AUTH_MAX_FRAME)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.state = "hello"  # -> "auth" -> "up"
        self.out: list[bytes] = []  # frames queued in this loop turn
        self.addr = "?"
        self.handshake: LearnerHandshake | ServerHandshake | None = None
        self._established: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False  # in mesh.pending (an accepted link not yet up)
        self.tls = False
        # lent to a writer thread for one frame (PeerMesh.lend): the loop's frames wait
        # in `out` unless the lease can be revoked
        self.lease: Lease | None = None

    @property
    def established(self) -> asyncio.Future[bool]:
        """Resolves True when the link is up, False when it closed before."""
        if self._established is None:
            self._established = asyncio.get_running_loop().create_future()
            if self.state == "up" or self.closed:
                self._established.set_result(self.state == "up")
        return self._established

    @property
    def hello_seen(self) -> bool:
        return self.state != "hello"

    @hello_seen.setter
    def hello_seen(self, value: bool) -> None:  # tests: a link taken as up
        self.state = "up" if value else "hello"

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.addr = _fmt_addr(transport.get_extra_info("peername"))
        self.tls = (transport.get_extra_info("sslcontext") is not None
                    or transport.get_extra_info("ssl_object") is not None)
        if not self.dialler:
            if self.mesh.pending >= MAX_PENDING:
                self.mesh._refusal("refused peer connection from %s: %d connections are "
                                   "already in their handshake", self.addr, self.mesh.pending)
                self.closed = True
                transport.close()
                return
            self.mesh.pending += 1
            self._counted = True
        if self.dialler:
            # the accepting side answers with its own hello once it accepted ours, so a
            # refused (or unknown) dialler learns nothing, not even the server id
            self._send_hello()
        self._timer = asyncio.get_running_loop().call_later(
            self.mesh.handshake_timeout, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except PeerProtocolError as e:
            if self.state == "up":
                log.warning("dropping peer link %s: %s", self._who(), e)
                self.close()
            else:
                self._refuse(str(e))
            return
        delivered = False
        for f in frames:
            if self.closed:
                break
            if self.state == "up":
                self.mesh._deliver(self.peer_id, f)  # type: ignore[arg-type]
                delivered = True
                continue
            try:
                if self.state == "hello":
                    self._hello(f)
                else:
                    self._auth(f)
            # (not `as e`: mypyc gives a name one type per function, the first handler's)
            except HandshakeRefused as refused:
                reply = refusal_reply(refused)
                if reply is not None and self.transport is not None:
                    self.transport.write(encode_frame(reply))
                self._refuse(refused.args[0])
                return
        if delivered:
            self.mesh._read_done()

    def _hello(self, f: bytes) -> None:
        mesh = self.mesh
        _version, sid, flags = decode_hello(f)
        known = sid in mesh.addresses
        if sid == mesh.my_id or not (known or (mesh.accept_unknown and not self.dialler)):
            raise HandshakeRefused(f"unknown server id {sid}")
        if self.dialler and sid != self.peer_id:
            raise HandshakeRefused(f"dialled server {self.peer_id}, answered by {sid}")
        if not self.dialler:
            if sid < mesh.my_id and known:
                # a smaller id dialled us: drop it and make sure we dial instead
                log.debug("closing inbound link from smaller id %d; dialling it", sid)
                self.close()
                mesh._ensure_dialer(sid)
                return
            self.peer_id = sid
            self._check_client_host(sid)
        run_sasl = sasl_negotiation(mesh.sasl, bool(flags & FLAG_SASL), self.dialler)
        if not self.dialler:
            self._send_hello()
        if run_sasl:
            assert mesh.sasl is not None
            self.state = "auth"
            if self.dialler:
                self.handshake = LearnerHandshake(mesh.sasl)
                self._write(self.handshake.start())
            else:
                self.handshake = ServerHandshake(mesh.sasl)
        else:
            self._up()

    def _auth(self, f: bytes) -> None:
        hs = self.handshake
        assert hs is not None
        for m in hs.receive(f):
            self._write(m)
        if hs.done:
            self._up()
            if hs.authenticated:
                user = f" as {hs.user!r}" if isinstance(hs, ServerHandshake) else ""
                log.info("%s port: %s authenticated (quorum SASL)%s", self.mesh.name,
                         self._who(), user)
            else:
                req = ("learnerRequireSasl" if self.dialler else "serverRequireSasl")
                log.warning("%s port: accepting %s without quorum SASL authentication (%s); "
                            "quorum.auth.%s=false", self.mesh.name, self._who(), hs.failure, req)

    def _check_client_host(self, sid: int) -> None:
        """ssl.quorum.hostnameVerification on the accepting side: the dialler's
        certificate must name the address it connects from, or the host of the
        server.N line it claims when that host resolves to that address."""
        sec = self.mesh.security
        if sec is None or sec.server_tls is None or not sec.server_tls.verify_client_hostname:
            return
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return  # plaintext peer on a unified port
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return  # ssl.quorum.clientAuth want/none, no certificate
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        peer = self.transport.get_extra_info("peername")
        ip = peer[0] if peer else ""
        if ip and certificate_matches(cert, ip):
            return
        host = self.mesh.addresses[sid][0] if sid in self.mesh.addresses else ""
        if host and ip in self.mesh.resolved.get(host, ()) and certificate_matches(cert, host):
            return
        raise HandshakeRefused(
            f"its certificate ({cert.subject.rfc4514_string()}) names neither {ip} nor "
            f"{host} (ssl.quorum.hostnameVerification=true)")

    def _send_hello(self) -> None:
        self._write(encode_hello(self.mesh.my_id, self.mesh.sasl is not None))

    def _write(self, payload: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(encode_frame(payload))

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.mesh.pending -= 1

    def _up(self) -> None:
        self._uncount()
        self.state = "up"
        self.reader.max_frame = MAX_FRAME
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self.peer_id is not None
        self.mesh._attach(self.peer_id, self)
        if self._established is not None and not self._established.done():
            self._established.set_result(True)

    def _refuse(self, why: str) -> None:
        self.mesh._refusal("refused peer link %s: %s", self._who(), why)
        self.close()

    def _handshake_timeout(self) -> None:
        self._timer = None
        if not self.closed and self.state != "up":
            what = "hello" if self.state == "hello" else "SASL authentication"
            self._refuse(f"no {what} within {self.mesh.handshake_timeout:g} s")

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        self._finish()
        if self.peer_id is not None:
            self.mesh._detach(self.peer_id, self)

    def _finish(self) -> None:
        self._uncount()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._established is not None and not self._established.done():
            self._established.set_result(False)

    def send(self, payload: bytes) -> None:
        """Queue a frame; the mesh writes each link's queue once per loop turn
        (one syscall for the many small messages a turn of Zab produces)."""
        if not self.closed and self.transport is not None:
            out = self.out
            if not out:
                self.mesh._schedule_flush(self)
            out.append(_HDR.pack(len(payload), _crc32(payload)))
            out.append(payload)

    def flush(self) -> None:
        out = self.out
        if out and self.lease is not None:
            if not self.lease.revoke():
                return  # the writer is sending: `returned` flushes
            self.lease = None
        if out:
            if not self.closed and self.transport is not None:
                self.transport.write(b"".join(out))
            out.clear()

    def returned(self, lease: Lease, sent: int) -> None:
        """The writer thread is done with `lease` and sent `sent` bytes of its frame
        (negative: none). The rest of a partial frame goes first, then the frames
        held meanwhile."""
        if self.lease is lease:
            self.lease = None
        frame = lease.message
        if 0 < sent < len(frame) and not self.closed and self.transport is not None:
            self.transport.write(frame[sent:])
        self.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._finish()
            if self.transport is not None:
                self.transport.close()
            if self.peer_id is not None:
                self.mesh._detach(self.peer_id, self)

    def _who(self) -> str:
        if self.peer_id is None:
            return f"from {self.addr}"
        if self.dialler:
            return f"to server {self.peer_id} at {self.addr}"
        claim = "server" if self.state == "up" else "claiming to be server"
        return f"from {self.addr} ({claim} {self.peer_id})"


class Lease:
    """A link lent to a writer thread for one frame (`PeerMesh.lend`), in the shape
    `native_log.NativeLogWriter.write_sync(send=...)` takes."""

    def __init__(self, link: _Link, fd: int, message: bytes,
                 done: Callable[[bool], None]) -> None:
        self.link = link
        self.fd = fd  # the writer's to close
        self.message = message
        self.done = done
        self._cancel: Callable[[], bool] | None = None
        self.also: list[Lease] = []  # leases on other links, sent after this one
        # the writer need not wake the loop once this went (NativeLogWriter's Send)
        self.quiet = False

    def more(self) -> list[Lease]:
        return self.also

    def bind(self, cancel: Callable[[], bool]) -> None:
        self._cancel = cancel

    def revoke(self) -> bool:
        """True when the writer will not send the frame (the link is ours again)."""
        cancel = self._cancel
        return cancel is not None and cancel()

    def sent(self, n: int) -> None:
        self.link.returned(self, n)
        self.done(n > 0)


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
        security: QuorumSecurity | None = None,
        name: str = "peer",
    ) -> None:
        self.my_id = my_id
        self.name = name
        self.security = security
        self.sasl = security.sasl if security is not None else None
        self.handshake_timeout = (security.handshake_timeout if security is not None
                                  else DEFAULT_HANDSHAKE_TIMEOUT)
        self.resolved: dict[str, set[str]] = {}  # member host -> addresses
        self.refused = 0  # links refused before they were up
        self.pending = 0  # accepted connections not yet up (TLS, hello, SASL)
        self._log_window = 0.0
        self._logged_in_window = 0
        self._suppressed = 0
        self._listen_sock: socket.socket | None = None
        self._accept_task: asyncio.Task | None = None
        self._admitting: set[asyncio.Task] = set()
        self._dial_errors: dict[int, str] = {}
        self.after_read = after_read
        self.addresses = addresses
        self.on_message = on_message
        self.on_link_change = on_link_change
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.links: dict[int, _Link] = {}
        # dynamic reconfiguration: links from servers not in `addresses` are accepted
        # (a joiner), and every member is dialled, not only smaller ids (a member that
        # does not know us yet never dials us; one that does closes our link and dials)
        self.accept_unknown = False
        self.dial_all = False
        # further addresses of a member (multi-address server lines): we also listen on
        # ours, and a dial that fails moves on to the next address
        self.alternates: dict[int, list[tuple[str, int]]] = {}
        self._extra_servers: list[asyncio.base_events.Server] = []
        self._to_flush: list[_Link] = []
        self._dialers: dict[int, asyncio.Task] = {}
        self._server: asyncio.base_events.Server | None = None
        self._stopped = False
        self.dropped = 0

    async def start(self) -> None:
        host, port = self.addresses[self.my_id]
        loop = asyncio.get_running_loop()
        sec = self.security
        if sec is not None and sec.server_tls is not None:
            if sec.server_tls.verify_client_hostname:
                self.resolved = await resolve_hosts({h for h, _ in self.addresses.values()})
            sock = listen_socket(host, port, 128)
            self._listen_sock = sock
            self._accept_task = loop.create_task(
                accept_forever(sock, self._accepted, f"{self.name} port"))
        else:
            self._server = await loop.create_server(
                lambda: _Link(self, None), host=host, port=port, reuse_address=True
            )
            for h, p in self.alternates.get(self.my_id, ()):
                self._extra_servers.append(await loop.create_server(
                    lambda: _Link(self, None), host=h, port=p, reuse_address=True))
        for sid in self.addresses:
            if sid < self.my_id or (self.dial_all and sid != self.my_id):
                self._ensure_dialer(sid)

    def update_addresses(self, addresses: dict[int, tuple[str, int]],
                         alternates: dict[int, list[tuple[str, int]]] | None = None) -> None:
        """A new configuration: dial the members we should and did not know; links to
        servers that left stay until they close (a removed server stops by itself)."""
        if alternates is not None:
            mine_more = self.alternates.get(self.my_id)
            self.alternates = dict(alternates)
            if mine_more is not None:
                self.alternates[self.my_id] = mine_more
        mine = self.addresses.get(self.my_id)
        new = dict(addresses)
        if mine is not None:
            new[self.my_id] = mine  # we keep listening where we are
        old, self.addresses = self.addresses, new
        if self._stopped:
            return
        for sid, addr in new.items():
            if sid == self.my_id or (old.get(sid) == addr and self.connected(sid)):
                continue
            if sid < self.my_id or self.dial_all:
                self._ensure_dialer(sid)

    async def stop(self) -> None:
        self._stopped = True
        for t in self._dialers.values():
            t.cancel()
        for link in list(self.links.values()):
            link.close()
        if self._accept_task is not None:
            self._accept_task.cancel()
        for t in list(self._admitting):
            t.cancel()
        if self._listen_sock is not None:
            self._listen_sock.close()
            self._listen_sock = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for srv in self._extra_servers:
            srv.close()
            await srv.wait_closed()

    def _refusal(self, fmt: str, *args) -> None:
        """Count and log a refusal; at most REFUSAL_LOG_BURST lines per
        REFUSAL_LOG_WINDOW seconds, so a flood of intruders cannot fill the log."""
        self.refused += 1
        now = time.monotonic()
        if now - self._log_window >= REFUSAL_LOG_WINDOW:
            if self._suppressed:
                log.warning("%s port: %d more peer connections refused (not logged)",
                            self.name, self._suppressed)
            self._log_window, self._logged_in_window, self._suppressed = now, 0, 0
        if self._logged_in_window < REFUSAL_LOG_BURST:
            self._logged_in_window += 1
            log.warning("%s port: " + fmt, self.name, *args)
        else:
            self._suppressed += 1

    # ------------------------------------------------------------ TLS listener
    def _accepted(self, conn: socket.socket, _addr) -> None:
        """TLS (or, with portUnification, TLS or plaintext by the first byte) off the
        accept loop, each connection in a task of its own."""
        if self.pending >= MAX_PENDING:
            self._refusal("refused peer connection from %s: %d connections are already "
                          "in their handshake", _peer_of(conn), self.pending)
            conn.close()
            return
        t = asyncio.get_running_loop().create_task(self._admit(conn))
        self._admitting.add(t)
        t.add_done_callback(self._admitting.discard)

    async def _admit(self, conn: socket.socket) -> None:
        self.pending += 1
        try:
            await self._admit_tls(conn)
        finally:
            self.pending -= 1

    async def _admit_tls(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sec = self.security
        assert sec is not None and sec.server_tls is not None
        tls = sec.server_tls  # read per connection: sslQuorumReloadCertFiles swaps it
        try:
            addr = _fmt_addr(conn.getpeername())
        except OSError:
            conn.close()
            return
        handed = False
        try:
            use_tls = sec.accept_tls
            if sec.accept_tls and sec.accept_plain:
                first = await first_byte_is_tls(conn, self.handshake_timeout)
                if first is None:
                    self._refusal("refused peer connection from %s: nothing sent within %g s "
                                  "(or closed)", addr, self.handshake_timeout)
                    return
                use_tls = first
            handed = True
            if use_tls:
                await loop.connect_accepted_socket(
                    lambda: _Link(self, None), conn, ssl=tls.context,
                    ssl_handshake_timeout=tls.handshake_timeout)
            else:
                await loop.connect_accepted_socket(lambda: _Link(self, None), conn)
        except asyncio.CancelledError:
            raise
        except (OSError, ssl.SSLError) as e:
            self._refusal("refused peer connection from %s: TLS handshake failed: %s",
                          addr, _tls_reason(e))
        except Exception:
            log.exception("%s port: error accepting a connection from %s", self.name, addr)
        finally:
            if not handed:
                conn.close()

    def send(self, to: int, payload: bytes) -> bool:
        link = self.links.get(to)
        if link is None or link.closed:
            self.dropped += 1
            return False
        link.send(payload)
        return True

    def lend(self, sid: int, payload: bytes, done: Callable[[bool], None]) -> Lease | None:
        """A lease on the plain TCP link to `sid` for a writer thread to send
        `payload` (framed) on, through a descriptor of its own (a dup), with
        done(whether it went) once it is back; None when the link is down, TLS,
        already lent, or has bytes waiting (the lent frame must follow everything
        written before). Until then the link holds its frames, unless it can
        revoke the lease (the writer has not begun to send): then its frames go and
        the payload does not."""
        link = self.links.get(sid)
        if (link is None or link.closed or link.lease is not None or link.tls
                or link.state != "up"):
            return None
        t = link.transport
        if t is None:
            return None
        link.flush()
        if t.get_write_buffer_size():
            return None
        sock = t.get_extra_info("socket")
        if sock is None:
            return None
        try:
            fd = os.dup(sock.fileno())
        except OSError:
            return None
        lease = Lease(link, fd, encode_frame(payload), done)
        link.lease = lease
        return lease

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
            if (sid < self.my_id or self.dial_all) and sid in self.addresses \
                    and not self._stopped:
                self._ensure_dialer(sid)

    def _ensure_dialer(self, sid: int) -> None:
        t = self._dialers.get(sid)
        if self._stopped or (t is not None and not t.done()):
            return
        addr = self.addresses.get(sid)
        if addr is not None and any(a == addr for s, a in self.addresses.items() if s != sid):
            # a configuration may name one address twice (ZooKeeper accepts it in a
            # reconfig): dialling it would reach the other member and replace our link
            log.warning("%s port: server %d shares %s:%d with another member; not dialling "
                        "it", self.name, sid, *addr)
            return
        self._dialers[sid] = asyncio.get_running_loop().create_task(self._dial(sid))

    async def _dial(self, sid: int) -> None:
        delay = self.min_backoff
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopped:
            if self.connected(sid) or sid not in self.addresses:
                return
            candidates = [self.addresses[sid], *self.alternates.get(sid, ())]
            host, port = candidates[attempt % len(candidates)]
            attempt += 1
            sec = self.security
            kw: dict = {}
            if sec is not None and sec.dial_tls:
                assert sec.client_tls is not None
                kw = {"ssl": sec.client_tls.context, "server_hostname": host,
                      "ssl_handshake_timeout": sec.client_tls.handshake_timeout}
            try:
                _, link = await loop.create_connection(lambda: _Link(self, sid), host, port, **kw)
            except ssl.SSLError as e:
                self._dial_failed(sid, host, port, f"TLS handshake failed: {_tls_reason(e)}")
            except TimeoutError as timeout:
                if kw:
                    self._dial_failed(sid, host, port, _tls_reason(timeout))
            except OSError:
                pass
            else:
                # Wait for the hello (and SASL): the link bounds that time itself.
                # It may also be gone already (a peer still dying accepted, then reset):
                # its _detach found this task still running and started no other
                # dialer, so only this loop can dial again.
                if await asyncio.shield(link.established) and self.connected(sid):
                    self._dial_errors.pop(sid, None)
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def _dial_failed(self, sid: int, host: str, port: int, why: str) -> None:
        """Log a refused dial once per reason (the dialler retries every few seconds)."""
        if self._dial_errors.get(sid) != why:
            self._dial_errors[sid] = why
            self._refusal("refused server %d at %s:%d: %s", sid, host, port, why)
        else:
            self.refused += 1
