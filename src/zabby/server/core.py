"""The standalone server: sessions, the request pipeline, watches.

Request path (see DESIGN.md): a connection decodes frames and hands each
request to `handle_request`, which appends it to the connection's backlog.
`pump` drains the backlog in order: a write is prepared against the tree
(plus pending changes) and handed to the commit pipeline; a read waits until
every earlier write of the same connection has been applied, so a session
always reads its own writes and gets its replies in request order. When a
txn commits, `_applied` applies it to the tree, fires watches (notifications
are queued before any later reply on every connection) and replies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..tree import DataTree, ErrorTxn, RequestContext, Txn, TxnHeader
from ..tree.acl import check_perm, digest_id
from ..wire import (
    XID_PING,
    AddWatchMode,
    Err,
    Id,
    KeeperState,
    Op,
    WatcherType,
)
from ..wire.protocol import WRITE_OPS, encode_connect_response, encode_notification, encode_reply
from ..wire.records import (
    ClientInfo,
    ConnectRequest,
    ConnectResponse,
    ErrorResponse,
    PathResponse,
    WhoAmIResponse,
)
from .config import ServerConfig
from .connection import MALFORMED, ClientConnection
from .sasl import SaslService, SaslSettings
from .secure_client import SecureListener, UnifiedListener
from .security import Security, load_security
from .session import Session, SessionTracker

log = logging.getLogger("zabby.server")

_TREE_READS = frozenset(
    {
        Op.EXISTS, Op.GET_DATA, Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.GET_ACL,
        Op.GET_ALL_CHILDREN_NUMBER, Op.GET_EPHEMERALS, Op.MULTI_READ,
    }
)
_CONNECTED = KeeperState.SYNC_CONNECTED
_READ = 1  # Perm.READ as a plain int
_WATCHER_TYPES = frozenset(int(t) for t in WatcherType)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class InMemoryCommitter:
    """Commits every txn at once (a server without a data directory).

    `durability.GroupCommitter` has the same interface and calls `done` once
    the txn is on disk, or `failed(reason)` if it never will be.
    """

    failure: str | None = None

    def submit(self, txn, done: Callable[[], None], failed: Callable[[str], None]) -> None:
        done()

    def close(self) -> None:
        pass


class ZabbyServer:
    """A standalone zabby server. I/O-facing pieces call into it; it owns the state."""

    def __init__(
        self, config: ServerConfig, *, server_id: int = 1, committer=None,
        tree: DataTree | None = None, security: Security | None = None,
    ) -> None:
        self.config = config
        # refuses (ConfigError) any security setting that would not be honoured
        self.security = security if security is not None else load_security(config)
        if tree is None:
            tree = DataTree(max_buffer=config.max_buffer, extended_types=config.extended_types_enabled)
        self.tree = tree
        # client SASL and enforce.auth (server.sasl); "sasl" ACLs need the provider
        self.sasl = SaslService(self.security.sasl or SaslSettings())
        self._enforce_auth = self.sasl.settings.enforce
        if "sasl" in self.security.providers.values():
            tree.acl_providers["sasl"] = True
        if self.security.client_tls is not None:  # TLS for clients registers x509
            tree.acl_providers["x509"] = True
        self.watches = tree.watches
        self.sessions = SessionTracker(config.tick_time, server_id, self.monotonic_ms())
        # sessions recovered from disk live until they time out, as in ZooKeeper
        now = self.monotonic_ms()
        for sid, timeout in tree.sessions.items():
            self.sessions.add(sid, timeout, now)
        self.committer = committer or InMemoryCommitter()
        self.connections: set[ClientConnection] = set()
        self.connections_by_ip: dict[str, int] = {}
        self.next_zxid = self.tree.last_zxid + 1
        self.start_time = time.time()
        self.super_digest_id = None
        if config.super_digest:
            self.super_digest_id = config.super_digest
        # counters for srvr/stat/mntr
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.latency_count = 0
        self.outstanding = 0
        self._to_flush: list[ClientConnection] = []
        self._containers_proposed: set[str] = set()
        self._tick_task: asyncio.Task | None = None
        self._server: asyncio.base_events.Server | UnifiedListener | None = None
        self._secure: SecureListener | None = None  # secureClientPort
        self.secure_port: int | None = None

    # ------------------------------------------------------------ clocks
    @staticmethod
    def monotonic_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    @property
    def last_zxid(self) -> int:
        return self.tree.last_zxid

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        ctls = self.security.client_tls
        if ctls is not None and ctls.secure_port is not None and not cfg.client_port_given:
            self.port = -1  # secureClientPort without clientPort: TLS only, as in ZooKeeper
        elif ctls is not None and ctls.port_unification:  # plaintext and TLS on one port
            self._server = UnifiedListener(self, ctls, cfg.client_port_address, cfg.client_port)
            await self._server.start(lambda: ClientConnection(self))
            self.port = self._server.port
        else:
            self._server = await loop.create_server(
                lambda: ClientConnection(self),
                host=cfg.client_port_address,
                port=cfg.client_port,
                reuse_address=True,
                backlog=1024,
            )
            sock = self._server.sockets[0]
            self.port = sock.getsockname()[1]
        if ctls is not None and ctls.secure_port is not None:
            self._secure = SecureListener(self, ctls)
            await self._secure.start(lambda: ClientConnection(self))
            self.secure_port = self._secure.port
        self._tick_task = loop.create_task(self._ticker())
        where = f"{cfg.client_port_address}:{self.port}" if self.port != -1 else "TLS only"
        log.info(
            "zabby serving on %s (tickTime=%d, sessions %d..%d ms)",
            where, cfg.tick_time, self.min_session_timeout, self.max_session_timeout,
        )

    async def stop(self) -> None:
        if self._tick_task:
            self._tick_task.cancel()
        if self._server:
            self._server.close()
        if self._secure:
            self._secure.close()
        for c in list(self.connections):
            c.abort()
        if self._server:
            await self._server.wait_closed()
        if self._secure:
            await self._secure.wait_closed()
        self.committer.close()

    @property
    def min_session_timeout(self) -> int:
        return self.config.effective_min_session_timeout

    @property
    def max_session_timeout(self) -> int:
        return self.config.effective_max_session_timeout

    async def _ticker(self) -> None:
        tick = self.config.tick_time / 1000.0
        while True:
            await asyncio.sleep(tick / 2)
            try:
                self.tick()
            except Exception:
                log.exception("error in session/container housekeeping")

    def tick(self) -> None:
        """Expire sessions whose deadline passed; remove empty containers and expired TTL nodes."""
        for s in list(self.sessions.expired(self.monotonic_ms())):
            log.info("expiring session 0x%x, timeout of %dms exceeded", s.id & (2**64 - 1), s.timeout)
            self.close_session(s)
        expired = self.tree.expired_containers(_now_ms())
        for path in expired:
            if path not in self._containers_proposed:  # proposed last tick, not yet applied
                self._submit_internal(Op.DELETE_CONTAINER, _PathBody(path), 0)
        self._containers_proposed = set(expired) - self._containers_proposed

    # ------------------------------------------------------------ connections
    def accept_connection(self, conn: ClientConnection) -> bool:
        ip = conn.peer[0]
        limit = self.config.max_client_cnxns
        n = self.connections_by_ip.get(ip, 0)
        if limit and n >= limit:
            log.warning("Too many connections from %s - max is %d", ip, limit)
            return False
        self.connections_by_ip[ip] = n + 1
        self.connections.add(conn)
        conn.auth = [Id("ip", ip)]
        if self.security.client_tls is not None:  # a verified client certificate: x509
            self.security.client_tls.authenticate(conn)
        return True

    def connection_closed(self, conn: ClientConnection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        ip = conn.peer[0]
        n = self.connections_by_ip.get(ip, 1) - 1
        if n <= 0:
            self.connections_by_ip.pop(ip, None)
        else:
            self.connections_by_ip[ip] = n
        self.watches.remove_watcher(conn)
        s = conn.session
        if s is not None and s.conn is conn:
            s.conn = None

    def schedule_flush(self, conn: ClientConnection) -> None:
        """Flush `conn` at the end of this loop turn, with every other connection
        that got output in it: one callback per turn, not one per connection."""
        if not self._to_flush:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._to_flush.append(conn)

    def _flush_all(self) -> None:
        conns, self._to_flush = self._to_flush, []
        for c in conns:
            if c._flush_scheduled:
                c.flush()

    def four_letter_word(self, conn: ClientConnection, head: bytes) -> bool:
        from .fourletter import handle_four_letter_word

        return handle_four_letter_word(self, conn, head)

    # ------------------------------------------------------------ handshake
    def handle_connect(self, conn: ClientConnection, req: ConnectRequest, read_only: bool) -> None:
        if req.lastZxidSeen > self.last_zxid:
            log.info(
                "Refusing session request for client %s:%d as it has seen zxid 0x%x our last "
                "zxid is 0x%x client must try another server",
                *conn.peer, req.lastZxidSeen, self.last_zxid,
            )
            conn.abort()
            return
        timeout = min(max(req.timeOut, self.min_session_timeout), self.max_session_timeout)
        if req.sessionId == 0:
            sid = self.sessions.new_id()
            s = self.sessions.add(sid, timeout, self.monotonic_ms())
            s.conn = conn
            conn.session = s
            s.auth = conn.auth
            # the session exists once its createSession txn is applied
            conn.inflight += 1
            self._start_session(conn, s, timeout)
            return
        s = self.sessions.get(req.sessionId)
        if s is None or s.closing or req.passwd != s.passwd:
            if s is not None and req.passwd != s.passwd:
                log.warning("Incorrect password from %s:%d for session 0x%x", *conn.peer,
                            req.sessionId & (2**64 - 1))
            else:
                log.info("Invalid session 0x%x for client %s:%d, probably expired",
                         req.sessionId & (2**64 - 1), *conn.peer)
            conn.send(encode_connect_response(ConnectResponse(0, 0, 0, bytes(16))))
            conn.close_after_flush()
            return
        old = s.conn
        if old is not None and old is not conn:
            old.abort()
        self.sessions.touch(s, self.monotonic_ms(), timeout)
        s.conn = conn
        conn.session = s
        s.auth = conn.auth
        conn.send(encode_connect_response(ConnectResponse(0, timeout, s.id, s.passwd)))

    def _start_session(self, conn: ClientConnection, s: Session, timeout: int) -> None:
        if self.committer.failure is not None:
            # The log is broken: a session local to this server, with no txn and so
            # no zxid a client could see and then miss after a restart. Reads work;
            # writes (ephemerals included) are refused.
            conn.inflight -= 1
            conn.send(encode_connect_response(ConnectResponse(0, s.timeout, s.id, s.passwd)))
            return
        txn = self._prepare(Op.CREATE_SESSION, timeout, s.id, 0, conn.auth)
        self._commit(txn, lambda: self._session_created(conn, s, txn), conn)

    def _session_created(self, conn: ClientConnection, s: Session, txn) -> None:
        self.tree.apply(txn)
        conn.inflight -= 1
        conn.send(encode_connect_response(ConnectResponse(0, s.timeout, s.id, s.passwd)))
        self.pump(conn)

    # ------------------------------------------------------------ requests
    def handle_request(self, conn: ClientConnection, xid: int, op: int, body) -> None:
        ex = conn.sasl
        if ex is not None and ex.held is not None:
            # a GSSAPI step is running on a worker thread: later packets wait for it
            ex.held.append((xid, op, body))
            return
        s = conn.session
        self.packets_received += 1
        if s is not None:
            self.sessions.touch(s, self.monotonic_ms())
        if op == Op.AUTH:
            if body is MALFORMED:
                # ZooKeeper cannot decode the auth packet and drops the connection
                log.warning("closing connection from %s:%d: undecodable auth packet", *conn.peer)
                conn.abort()
                return
            self._auth(conn, xid, body)
            return
        if op == Op.SASL:
            self._sasl(conn, xid, body)
            return
        if self._enforce_auth and not self.sasl.enforce(conn, xid):
            return
        conn.backlog.append((xid, op, body, time.monotonic_ns()))
        self.pump(conn)

    def pump(self, conn: ClientConnection) -> None:
        """Process the connection's backlog in order (see module docstring)."""
        if conn.pumping:
            return
        conn.pumping = True
        try:
            q = conn.backlog
            while q and not conn.closed:
                xid, op, body, t0 = q[0]
                if op in WRITE_OPS:
                    q.popleft()
                    self._write(conn, xid, op, body, t0)
                elif conn.inflight:
                    break
                else:
                    q.popleft()
                    self._read(conn, xid, op, body, t0)
        finally:
            conn.pumping = False

    def _prepare(self, op: int, body, session_id: int, cxid: int, auth):
        zxid = self.next_zxid
        self.next_zxid += 1
        ctx = RequestContext(session_id, cxid, zxid, _now_ms(), auth)
        return self.tree.prepare(op, body, ctx)

    def _commit(self, txn, done: Callable[[], None], conn: ClientConnection | None) -> None:
        """Hand a prepared txn to the committer; `done` applies it once durable."""
        committer = self.committer
        committer.submit(txn, done, lambda why: self._commit_failed(conn, why))

    def _commit_failed(self, conn: ClientConnection | None, why: str) -> None:
        # nothing prepared after the failure point will be applied
        self.tree.discard_pending()
        self.next_zxid = self.tree.last_zxid + 1
        if conn is not None and not conn.closed:
            # the outcome of an in-flight write is unknown to the client, exactly
            # as when a connection breaks: it reconnects and finds writes refused
            conn.abort()

    def _error_txn(self, err: int, session_id: int, cxid: int) -> Txn:
        zxid = self.next_zxid
        self.next_zxid += 1
        return Txn(TxnHeader(session_id, cxid, zxid, _now_ms(), Op.ERROR), ErrorTxn(err))

    def _write(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        s = conn.session
        if s is None or s.closing:
            self._reply(conn, xid, op, Err.SESSIONEXPIRED, None, t0)
            return
        if self.committer.failure is not None:
            if op == Op.CLOSE_SESSION:
                # see close_session: no txn while the log is broken
                self.sessions.remove(s.id)
                s.closing = True
                self._reply(conn, xid, op, Err.OK, None, t0)
                conn.close_after_flush()
                return
            self._reply(conn, xid, op, Err.NOTREADONLY, None, t0)
            return
        if op == Op.RECONFIG:
            if body is MALFORMED:
                # ZooKeeper decodes reconfig before taking a zxid
                self._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
                return
            # reconfig is disabled on a standalone server: an error txn, as ZooKeeper
            txn = self._error_txn(Err.RECONFIGDISABLED, s.id, xid)
        else:
            # an undecodable write body still takes a zxid (MARSHALLINGERROR txn)
            txn = self._prepare(op, None if body is MALFORMED else body, s.id, xid, conn.auth)
        conn.inflight += 1
        self.outstanding += 1
        if op == Op.CLOSE_SESSION:
            s.closing = True
        self._commit(txn, lambda: self._applied(conn, xid, op, txn, t0), conn)

    def _applied(self, conn: ClientConnection | None, xid: int, op: int, txn, t0: int) -> None:
        res = self.tree.apply(txn)
        self._fire(res.events)
        if op == Op.CLOSE_SESSION:
            sid = txn.header.clientId
            s = self.sessions.remove(sid)
            if s is not None and s.conn is not None and s.conn is not conn:
                s.conn.abort()
        if conn is None:
            return
        self.outstanding -= 1
        conn.inflight -= 1
        self._reply(conn, xid, op, res.err, res.response, t0)
        if op == Op.CLOSE_SESSION:
            conn.close_after_flush()
            return
        self.pump(conn)

    def _submit_internal(self, op: int, body, session_id: int) -> None:
        """A write the server makes itself (session expiry, container cleanup)."""
        txn = self._prepare(op, body, session_id, 0, [Id("super", "")])
        self._commit(txn, lambda: self._applied(None, 0, op, txn, 0), None)

    def close_session(self, s: Session) -> None:
        s.closing = True
        conn = s.conn
        if conn is not None:
            s.conn = None
            conn.session = None
            conn.abort()
        if self.committer.failure is not None:
            # no txn while the log is broken: a durable session's ephemerals stay
            # until it expires again after the restart
            self.sessions.remove(s.id)
            return
        self._submit_internal(Op.CLOSE_SESSION, None, s.id)

    def _fire(self, events) -> None:
        trigger = self.watches.trigger
        acls = events.acls
        for i, (etype, path) in enumerate(events):
            acl = acls[i]
            for watcher, wtype, wpath in trigger(etype, path):
                # ZooKeeper sends an event only to a connection that may READ the
                # node it is about (the watch is consumed either way)
                if acl and not check_perm(acl, _READ, watcher.auth):
                    continue
                watcher.send(encode_notification(wtype, _CONNECTED, wpath))

    def _read(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        s = conn.session
        if s is None:
            return
        if body is None:
            # unknown opcode: ZooKeeper answers UNIMPLEMENTED (zxid -1) and hangs up
            log.warning("Received packet at server of unknown type %d", op)
            conn.send(encode_reply(xid, -1, Err.UNIMPLEMENTED))
            conn.close_after_flush()
            return
        if body is MALFORMED:
            log.warning("Failed to decode request of type %d from %s:%d", op, *conn.peer)
            self._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
            return
        if op in _TREE_READS:
            # the tree registers the watch exactly when ZooKeeper would
            err, resp = self.tree.read(op, body, conn.auth, s.id, conn)
            self._reply(conn, xid, op, err, resp, t0)
            return
        if op == Op.PING:
            conn.send(encode_reply(XID_PING, self.last_zxid, 0))
            return
        if op == Op.SYNC:
            self._reply(conn, xid, op, Err.OK, PathResponse(body.path), t0)
            return
        if op in (Op.SET_WATCHES, Op.SET_WATCHES2):
            self._set_watches(conn, body, op == Op.SET_WATCHES2)
            conn.send(encode_reply(xid, self.last_zxid, 0))
            return
        if op == Op.ADD_WATCH:
            if body.mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
                # ZooKeeper fails on the unknown mode with a runtime exception
                self._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
                return
            self.watches.add_persistent(body.path, conn, recursive=body.mode == 1)
            self._reply(conn, xid, op, Err.OK, ErrorResponse(0), t0)
            return
        if op in (Op.CHECK_WATCHES, Op.REMOVE_WATCHES) and body.type not in _WATCHER_TYPES:
            self._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
            return
        if op == Op.CHECK_WATCHES:
            ok = self.watches.has(body.path, conn, body.type)
            self._reply(conn, xid, op, Err.OK if ok else Err.NOWATCHER, None, t0)
            return
        if op == Op.REMOVE_WATCHES:
            ok = self.watches.remove(body.path, conn, body.type)
            self._reply(conn, xid, op, Err.OK if ok else Err.NOWATCHER, None, t0)
            return
        if op == Op.WHO_AM_I:
            # a scheme without a registered provider shows no user name (sasl without
            # SASLAuthenticationProvider), as in ZooKeeper
            providers = self.tree.acl_providers
            infos = [ClientInfo(i.scheme, _user_of(i) if i.scheme != "sasl" or "sasl" in
                                providers else "") for i in conn.auth]
            self._reply(conn, xid, op, Err.OK, WhoAmIResponse(infos), t0)
            return
        conn.send(encode_reply(xid, -1, Err.UNIMPLEMENTED))

    def _reply(self, conn: ClientConnection, xid: int, op: int, err: int, resp, t0: int) -> None:
        zxid = self.last_zxid
        conn.send(encode_reply(xid, zxid, err, resp))
        if t0:
            ms = (time.monotonic_ns() - t0) // 1_000_000
            conn.record_latency(ms)
            if self.latency_count == 0 or ms < self.min_latency:
                self.min_latency = ms
            if ms > self.max_latency:
                self.max_latency = ms
            self.total_latency += ms
            self.latency_count += 1
        conn.last_cxid = xid
        conn.last_zxid = zxid
        conn.last_op = _OP_NAMES.get(op, "NA")
        conn.last_response = time.time()
        self.packets_sent += 1

    def _auth(self, conn: ClientConnection, xid: int, body) -> None:
        """addauth: the digest and ip schemes, as ZooKeeper's built-in providers."""
        ident = None
        if body.scheme == "digest":
            # any bytes are accepted: the id is user + ":" + base64(sha1(whole credential))
            ident = Id("digest", digest_id((body.auth or b"").decode("utf-8", "replace")))
            if self.super_digest_id is not None and ident.id == self.super_digest_id:
                _add_auth(conn, Id("super", ""))
        elif body.scheme == "ip":
            ident = Id("ip", conn.peer[0])
        if ident is None:
            log.warning("No authentication provider for scheme: %s has [ip, digest]", body.scheme)
            conn.send(encode_reply(xid, 0, Err.AUTHFAILED))
            conn.close_after_flush()
            return
        _add_auth(conn, ident)
        log.info("Session 0x%x: auth success for scheme %s and address %s:%d",
                 (conn.session.id if conn.session else 0) & (2**64 - 1), body.scheme, *conn.peer)
        conn.send(encode_reply(xid, 0, Err.OK))

    def _sasl(self, conn: ClientConnection, xid: int, body) -> None:
        """Opcode 102, answered at once as ZooKeeper does (not in request order)."""
        if body is MALFORMED:
            log.warning("closing connection from %s:%d: undecodable SASL packet", *conn.peer)
            conn.abort()
            return
        sid = conn.session.id if conn.session is not None else 0
        self.sasl.handle(conn, xid, body.token, sid, lambda ident: _add_auth(conn, ident),
                         self._resume_after_sasl)

    def _resume_after_sasl(self, conn: ClientConnection, held) -> None:
        """The packets that waited for a GSSAPI step, in order (one may start another
        step; handle_request then holds the rest again)."""
        while held and not (conn.closed or conn.closing):
            self.handle_request(conn, *held.popleft())

    def _set_watches(self, conn: ClientConnection, body, v2: bool) -> None:
        """Re-register a reconnecting client's watches, firing those it missed."""
        events = self.tree.set_watches(
            body.relativeZxid, body.dataWatches, body.existWatches, body.childWatches,
            body.persistentWatches if v2 else (), body.persistentRecursiveWatches if v2 else (),
            watcher=conn,
        )
        for etype, path in events:
            conn.send(encode_notification(etype, _CONNECTED, path))


class _PathBody:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def _add_auth(conn: ClientConnection, ident: Id) -> None:
    if ident not in conn.auth:
        conn.auth.append(ident)


def _user_of(ident: Id) -> str:
    if ident.scheme == "digest":
        return ident.id.split(":")[0]
    if ident.scheme in ("ip", "world", "x509", "sasl"):
        return ident.id
    return ""


_OP_NAMES = {
    Op.PING: "PING", Op.CREATE_SESSION: "SESS", Op.MULTI: "MULT", Op.MULTI_READ: "MLTR",
    Op.CREATE: "CREA", Op.CREATE2: "CREA", Op.CREATE_TTL: "CREA", Op.CREATE_CONTAINER: "CREA",
    Op.DELETE: "DELE", Op.DELETE_CONTAINER: "DELE", Op.SET_DATA: "SETD", Op.RECONFIG: "RECO",
    Op.SET_ACL: "SETA", Op.CLOSE_SESSION: "CLOS", Op.SYNC: "SYNC", Op.CHECK: "CHEC",
    Op.EXISTS: "EXIS", Op.GET_DATA: "GETD", Op.SET_WATCHES: "SETW", Op.SET_WATCHES2: "STW2",
    Op.ADD_WATCH: "ADDW", Op.GET_ACL: "GETA", Op.GET_CHILDREN: "GETC", Op.GET_CHILDREN2: "GETC",
    Op.GET_ALL_CHILDREN_NUMBER: "GETACN", Op.CHECK_WATCHES: "CHKW", Op.REMOVE_WATCHES: "REMW",
    Op.WHO_AM_I: "HOMI", Op.GET_EPHEMERALS: "GETE",
}
