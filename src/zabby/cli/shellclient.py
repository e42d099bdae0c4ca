"""A small synchronous ZooKeeper client for `zabby shell`.

One socket (plain or TLS), one reader thread (replies, watch notifications, ping
replies) and one pinger thread. Requests are sent one at a time; ``call`` returns the
decoded body or raises :class:`KeeperError`. A lost connection is made again at the
next call with the same session: SASL DIGEST-MD5 login again, then SetWatches2 for
the watches it held. A chroot (``host:port/app``) is added to every path sent and
taken off every path received. Kept small and separate from the shell so the real
client (issue 12, ``zabby.client``) can replace it.
"""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

from zabby.testing.rawclient import RESPONSE_BODY
from zabby.wire import (
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    AddWatchMode,
    ConnectRequest,
    Empty,
    Err,
    EventType,
    FrameDecoder,
    KeeperState,
    Op,
    ReplyHeader,
    SaslToken,
    SetWatches2,
    WatcherEvent,
    WatcherType,
    decode_connect_response,
    encode_connect_request,
    encode_request,
)

__all__ = ["KeeperError", "ShellClient", "parse_hosts", "split_chroot"]


class KeeperError(Exception):
    """A request failed: ``code`` is a ``zabby.wire.Err`` value (CONNECTIONLOSS for I/O)."""

    def __init__(self, code: int, path: str = "") -> None:
        super().__init__(code, path)
        self.code = code
        self.path = path


def split_chroot(spec: str) -> tuple[str, str]:
    """``host:port,host2:port2/app/x`` -> (``host:port,host2:port2``, ``/app/x``).

    The chroot is "" when absent or "/"; a malformed one raises ValueError, as
    ZooKeeper's ConnectStringParser does."""
    hosts, slash, root = spec.partition("/")
    if not slash:
        return spec, ""
    root = "/" + root
    if root == "/":
        return hosts, ""
    if root.endswith("/") or "//" in root or any(
            part in (".", "..") for part in root.split("/")):
        raise ValueError(f"invalid chroot path {root!r}")
    return hosts, root


def parse_hosts(spec: str) -> list[tuple[str, int]]:
    """``host:port,host2:port2`` (a ``/chroot`` suffix is left to split_chroot)."""
    spec = spec.split("/", 1)[0]
    hosts = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [ipv6]:port
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        hosts.append((host, int(port) if port else 2181))
    if not hosts:
        raise ValueError(f"no host in {spec!r}")
    return hosts


class TlsSocket:
    """TLS over a connected socket, safe for one reading and one writing thread.

    An SSL object must not be used by two threads at once, and TLS 1.3 may write
    while reading, so the SSL object works on memory buffers under a lock and the
    socket I/O happens here: the reader waits on the socket without the lock."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, host: str) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_hostname=host)
        self._lock = threading.Lock()
        while True:  # the handshake (the socket's timeout bounds it)
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the TLS handshake") from None
                self._in.write(data)
        self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._tls.write(data)
            self._flush()

    def recv(self, n: int) -> bytes:
        while True:
            with self._lock:
                try:
                    data = self._tls.read(n)
                    self._flush()
                    return data  # b"": the server closed the TLS session
                except ssl.SSLWantReadError:
                    self._flush()
            raw = self.sock.recv(max(n, 65536))
            if not raw:
                return b""
            with self._lock:
                self._in.write(raw)

    def settimeout(self, t: float | None) -> None:
        self.sock.settimeout(t)

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


class ShellClient:
    def __init__(self, hosts: str, timeout_ms: int = 30000,
                 on_event: Callable[[WatcherEvent], None] | None = None,
                 connect_timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None,
                 sasl: tuple[str, str] | None = None) -> None:
        self.hosts = parse_hosts(hosts)
        self.ssl_context = ssl_context  # TLS to every host (zookeeper.client.secure)
        self.sasl = sasl  # (user, password): DIGEST-MD5 on every connection
        # every path we send is below it and every path we get back is made relative
        # to it, as ZooKeeper's client does with host:port/chroot
        self.chroot = split_chroot(hosts)[1]
        self.timeout_ms = timeout_ms
        self.on_event = on_event
        self.connect_timeout = connect_timeout
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        self.session_id = 0
        self.last_zxid = 0
        self._xid = 0
        self._send_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: dict[int, tuple[int, Any]] = {}  # xid -> (err, frame/pos)
        self._waiting: dict[int, int] = {}  # xid -> op
        self._closed = threading.Event()
        self._closed.set()
        # watches the server holds for us, set again on a resumed session (SetWatches2)
        self.watches: dict[str, set[str]] = {
            k: set() for k in ("data", "exist", "child", "persistent", "recursive")}
        self._passwd = b"\x00" * 16
        self._user_closed = False

    # ------------------------------------------------------------ connection
    def connect(self, resume: bool = False) -> None:
        """Try the hosts in random order; raise KeeperError(CONNECTIONLOSS) if none answer.

        ``resume`` asks for the current session again (after a lost connection); if it
        has expired, a new session is made and SESSIONEXPIRED is reported as an event.
        """
        order = list(self.hosts)
        random.shuffle(order)
        last: Exception | None = None
        sid, passwd = (self.session_id, self._passwd) if resume else (0, b"\x00" * 16)
        for host, port in order:
            try:
                sock = socket.create_connection((host, port), timeout=self.connect_timeout)
            except OSError as e:
                last = e
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.ssl_context is not None:
                    sock = TlsSocket(sock, self.ssl_context, host)  # type: ignore[assignment]
                req = ConnectRequest(0, self.last_zxid, self.timeout_ms, sid, passwd)
                sock.sendall(encode_connect_request(req))
                decoder = FrameDecoder(max_frame=64 * 1024 * 1024)
                frames: list[bytes] = []
                while not frames:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed during handshake")
                    frames.extend(decoder.feed(data))
                resp, _ro = decode_connect_response(frames.pop(0))
            except (OSError, ConnectionError, ValueError) as e:  # ssl.SSLError is an OSError
                sock.close()
                last = e
                continue
            if resp.timeOut <= 0:  # the session we asked for has expired
                sock.close()
                self._event(WatcherEvent(-1, -112, None))
                return self.connect(resume=False)
            sock.settimeout(None)
            closed = threading.Event()
            self.sock, self.address, self._closed = sock, (host, port), closed
            if not resume:  # a new session holds no watches
                for kind in self.watches.values():
                    kind.clear()
            self.session_id, self._passwd = resp.sessionId, resp.passwd
            self.timeout_ms = resp.timeOut
            self._user_closed = False
            threading.Thread(target=self._reader, args=(sock, closed, decoder, frames),
                             name="zabby-shell-reader", daemon=True).start()
            threading.Thread(target=self._pinger, args=(sock, closed),
                             name="zabby-shell-pinger", daemon=True).start()
            if self.sasl is not None:
                try:
                    self._sasl_login()
                except KeeperError:
                    self._event(WatcherEvent(-1, KeeperState.AUTH_FAILED, None))
                    self._lost(self.sock, closed)
                    raise
            if resume and any(self.watches.values()):
                # before any request of ours, as ZooKeeper's client does; the reply is
                # dropped (_dispatch) and requests after it are served after it
                w = {k: sorted(map(self._in, v)) for k, v in self.watches.items()}
                with self._send_lock:
                    sock.sendall(encode_request(XID_SET_WATCHES, Op.SET_WATCHES2, SetWatches2(
                        self.last_zxid, w["data"], w["exist"], w["child"],
                        w["persistent"], w["recursive"])))
            if resume:
                self._event(WatcherEvent(-1, 3, None))  # SyncConnected again
            return
        raise KeeperError(Err.CONNECTIONLOSS, str(last) if last else "")

    @property
    def connected(self) -> bool:
        return self.sock is not None and not self._closed.is_set()

    @property
    def closed(self) -> bool:
        """True after ``close()``: no reconnecting until ``connect()``."""
        return self._user_closed

    def close(self) -> None:
        self._user_closed = True
        if self.connected:
            try:
                self.call(Op.CLOSE_SESSION, Empty(), timeout=2.0)
            except KeeperError:
                pass
        self._lost(self.sock, self._closed)

    def _event(self, ev: WatcherEvent) -> None:
        if self.on_event is not None:
            self.on_event(ev)

    def _lost(self, sock: socket.socket | None, closed: threading.Event) -> None:
        first = not closed.is_set()
        closed.set()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self.sock is sock:
            self.sock = None
        with self._cond:
            self._cond.notify_all()
        if first and not self._user_closed:
            self._event(WatcherEvent(-1, 0, None))  # Disconnected

    # --------------------------------------------------------------- threads
    def _reader(self, sock: socket.socket, closed: threading.Event,
                decoder: FrameDecoder, frames: list[bytes]) -> None:
        try:
            while not closed.is_set():
                for f in frames:
                    self._dispatch(f)
                data = sock.recv(1 << 20)
                if not data:
                    break
                frames = decoder.feed(data)
        except Exception:  # noqa: BLE001 - any failure is a lost connection
            pass
        self._lost(sock, closed)

    def _dispatch(self, f: bytes) -> None:
        hdr, pos = ReplyHeader.decode_from(f, 0)
        if hdr.xid == XID_NOTIFICATION:
            ev, _ = WatcherEvent.decode_from(f, pos)
            if ev.path is not None:
                ev.path = self._out(ev.path)
            self._fired(ev)
            if self.on_event is not None:
                self.on_event(ev)
            return
        if hdr.xid in (XID_PING, XID_SET_WATCHES):
            return
        if hdr.zxid > 0:
            self.last_zxid = max(self.last_zxid, hdr.zxid)
        with self._cond:
            self._pending[hdr.xid] = (hdr.err, (f, pos))
            self._cond.notify_all()

    def _track(self, op: int, body: Any, err: int) -> None:
        """Remember the watches a successful request left on the server."""
        w = self.watches
        if op in (Op.GET_DATA, Op.EXISTS) and getattr(body, "watch", False):
            if err == 0:
                w["data"].add(body.path)
            elif op == Op.EXISTS and err == Err.NONODE:
                w["exist"].add(body.path)
        elif op in (Op.GET_CHILDREN, Op.GET_CHILDREN2) and getattr(body, "watch", False):
            if err == 0:
                w["child"].add(body.path)
        elif op == Op.ADD_WATCH and err == 0:
            w["recursive" if body.mode == AddWatchMode.PERSISTENT_RECURSIVE
              else "persistent"].add(body.path)
        elif op == Op.REMOVE_WATCHES and err == 0:
            self.forget_watches(body.path, body.type)

    def forget_watches(self, path: str, watcher_type: int) -> bool:
        """Drop our record of the watches of one type on `path` (the server removed
        them, or ``removewatches -l`` without a server); False if there were none."""
        w = self.watches
        kinds = {WatcherType.DATA: ("data", "exist"), WatcherType.CHILDREN: ("child",)}.get(
            watcher_type, ("data", "exist", "child", "persistent", "recursive"))
        removed = {k for k in kinds if path in w[k]}
        for k in kinds:
            w[k].discard(path)
        # ZooKeeper's client tells the watcher its watch is gone, one event a kind
        for ev_type, ks in ((EventType.DATA_WATCH_REMOVED, {"data", "exist"}),
                            (EventType.CHILD_WATCH_REMOVED, {"child"}),
                            (EventType.PERSISTENT_WATCH_REMOVED, {"persistent", "recursive"})):
            if removed & ks:
                self._event(WatcherEvent(ev_type, KeeperState.SYNC_CONNECTED, path))
        return bool(removed)

    def _fired(self, ev: WatcherEvent) -> None:
        """One-shot watches are gone once they fire."""
        if ev.type in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED,
                       EventType.NODE_DELETED):
            self.watches["data"].discard(ev.path)
            self.watches["exist"].discard(ev.path)
        if ev.type in (EventType.NODE_CHILDREN_CHANGED, EventType.NODE_DELETED):
            self.watches["child"].discard(ev.path)

    def _pinger(self, sock: socket.socket, closed: threading.Event) -> None:
        interval = max(self.timeout_ms / 3000.0, 0.5)
        while not closed.wait(interval):
            try:
                with self._send_lock:
                    sock.sendall(encode_request(XID_PING, Op.PING))
            except OSError:
                self._lost(sock, closed)
                return

    # ---------------------------------------------------------------- chroot
    def _in(self, path: str) -> str:
        """A path of ours -> the server's."""
        if not self.chroot:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def _out(self, path: str) -> str:
        """A path from the server -> ours."""
        root = self.chroot
        if not root or not path.startswith(root):
            return path
        if len(path) == len(root):
            return "/"
        return path[len(root):] if path[len(root)] == "/" else path

    def _rooted(self, body: Any) -> Any:
        names = [n for n, _ in getattr(body, "FIELDS", ())]
        for name in ("path", "prefixPath"):
            if name in names:
                copy = type(body)(*(getattr(body, n) for n in names))
                setattr(copy, name, self._in(getattr(body, name)))
                return copy
        return body

    def _unrooted(self, resp: Any) -> Any:
        if hasattr(resp, "ephemerals"):
            resp.ephemerals = [self._out(p) for p in resp.ephemerals]
        elif isinstance(getattr(resp, "path", None), str):
            resp.path = self._out(resp.path)
        return resp

    # -------------------------------------------------------------- requests
    def _exchange(self, op: int, body: Any, path: str, timeout: float,
                  xid: int | None = None) -> tuple[int, bytes, int]:
        """One request on the current connection: (error code, reply frame, body offset).
        The caller holds _call_lock, or is connect() making the connection usable."""
        if xid is None:
            self._xid += 1
            xid = self._xid
        sock, closed = self.sock, self._closed
        try:
            with self._send_lock:
                sock.sendall(encode_request(xid, op, body))  # type: ignore[union-attr]
        except (OSError, AttributeError) as e:
            self._lost(sock, closed)
            raise KeeperError(Err.CONNECTIONLOSS, path) from e
        with self._cond:
            ok = self._cond.wait_for(lambda: xid in self._pending or closed.is_set(), timeout)
            if xid not in self._pending:
                if ok:  # closed
                    raise KeeperError(Err.CONNECTIONLOSS, path)
                raise KeeperError(Err.OPERATIONTIMEOUT, path)
            err, (f, pos) = self._pending.pop(xid)
        return err, f, pos

    def _sasl_login(self) -> None:
        """SASL DIGEST-MD5 on a new connection, before any request of ours (ZooKeeper's
        client does it on every connection). AUTHFAILED when the server refuses."""
        from zabby.server.digest_md5 import DigestMD5Client, SaslError

        assert self.sasl is not None
        user, password = self.sasl
        cli = DigestMD5Client(user, password)
        token = cli.initial()
        for _ in range(3):
            err, f, pos = self._exchange(Op.SASL, SaslToken(token), "", 15.0)
            if err:
                raise KeeperError(err, "SASL login")
            n = struct.unpack_from(">i", f, pos)[0] if len(f) >= pos + 4 else -1
            if n < 0:  # the server has no SASL: nothing to do
                return
            try:
                token = cli.step(bytes(f[pos + 4:pos + 4 + n]))
            except SaslError as e:
                raise KeeperError(Err.AUTHFAILED, str(e)) from None
            if cli.complete:
                return
        raise KeeperError(Err.AUTHFAILED, "SASL login did not complete")

    def call(self, op: int, body: Any = None, path: str = "", timeout: float = 15.0,
             xid: int | None = None, rooted: bool = True) -> Any:
        """Send one request and wait for its reply; raise KeeperError on an error code.

        Paths in ``body`` and in the reply are relative to the chroot unless
        ``rooted`` is false (``/zookeeper/config`` is read past the chroot)."""
        sent = self._rooted(body) if rooted and self.chroot else body
        with self._call_lock:
            if not self.connected:
                if self._user_closed or op == Op.CLOSE_SESSION:
                    raise KeeperError(Err.CONNECTIONLOSS, path)
                try:
                    self.connect(resume=True)  # the connection was lost: try again
                except KeeperError as e:
                    raise KeeperError(e.code, path) from None
            err, f, pos = self._exchange(op, sent, path, timeout, xid)
        self._track(op, body, err)
        if err:
            raise KeeperError(err, path)
        body_type = RESPONSE_BODY.get(op)
        if body_type is None:
            return None
        resp = body_type.decode_from(f, pos)[0]
        return self._unrooted(resp) if rooted and self.chroot else resp
