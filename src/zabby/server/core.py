"""The standalone server: sessions, the request pipeline, watches.

Request path (see DESIGN.md): a connection decodes frames and hands each
request to `handle_request`, which appends it to the connection's backlog.
`pump` drains the backlog in order: a write passes the session checks in
`_write` and goes to the commit stage (`self.commit_stage`, see pipeline.py:
`LocalCommit` here, `ZabCommit` in an ensemble member); a read waits until
every earlier write of the same connection has been applied, so a session
always reads its own writes and gets its replies in request order. When a
txn commits, `CommitStage.apply` applies it to the tree, fires watches
(notifications are queued before any later reply on every connection) and,
for this server's client, `CommitStage.write_done` replies. The session path (connect,
re-attach, expiry, the tick) calls the stage's hooks; an ensemble member
overrides none of this module's request-path methods.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from ..tree import DataTree
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
from ..wire.constants import ERR_NONODE, OP_AUTH, OP_SASL, OP_SYNC, PERM_READ
from ..wire.keeper import KEEPER_OPS
from ..wire.protocol import WRITE_OPS, encode_connect_response, encode_notification, encode_reply
from ..wire.records import (
    ClientInfo,
    ConnectRequest,
    ConnectResponse,
    ErrorResponse,
    WhoAmIResponse,
)
from .clock import SYSTEM_CLOCK, Clock
from .config import ServerConfig
from .connection import (
    MALFORMED,
    MAX_INFLIGHT_WRITES,
    MAX_OUTSTANDING,
    OUTPUT_HIGH,
    PAUSE_BACKLOG,
    PAUSE_GLOBAL,
    PAUSE_OUTPUT,
    ClientConnection,
)
from .keeper import KeeperExtensions
from .metrics import ServerMetrics
from .pipeline import RUN_AHEAD_PAST, CommitStage, InMemoryCommitter, LocalCommit
from .sasl import SaslService, SaslSettings
from .secure_client import SecureListener, UnifiedListener
from .security import Security, load_security
from .session import Session, SessionTracker

log = logging.getLogger("zabby.server")

# (server, new connection, its first four bytes) -> answered as a four-letter word?
FourLetterHandler = Callable[["ZabbyServer", ClientConnection, bytes], bool]

_TREE_READS = frozenset(
    {
        Op.EXISTS, Op.GET_DATA, Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.GET_ACL,
        Op.GET_ALL_CHILDREN_NUMBER, Op.GET_EPHEMERALS, Op.MULTI_READ,
    }
)
_CONNECTED: Final = KeeperState.SYNC_CONNECTED
# A backlog entry standing for a write started ahead of reads before it (its body is
# the write's entry in the commit stage's pending_writes): `_run_ahead`
OP_AHEAD: Final = -1000
# how far past the head `_run_ahead` looks for writes, per call
RUN_AHEAD_SCAN: Final = 64
# ZABBY_RUN_AHEAD=0: a write behind a waiting read waits too (each session has one
# log round trip at a time while its reads and writes alternate)
_RUN_AHEAD: Final = os.environ.get("ZABBY_RUN_AHEAD", "1").strip() != "0"
_WATCHER_TYPES = frozenset(int(t) for t in WatcherType)


__all__ = ["FourLetterHandler", "InMemoryCommitter", "ZabbyServer"]


@mypyc_attr(allow_interpreted_subclasses=True)  # EnsembleServer, test servers
class ZabbyServer:
    """A standalone zabby server. I/O-facing pieces call into it; it owns the state."""

    # serving read-only clients only (readonlymode.enabled: server.readonly)
    read_only = False
    # the commit stage, the one seam of the request path (pipeline.py)
    commit_stage_class: ClassVar[type[CommitStage]] = LocalCommit  # (a subclass's own, compiled too)

    def __init__(
        self, config: ServerConfig, *, server_id: int = 1, committer=None,
        tree: DataTree | None = None, security: Security | None = None,
        four_letter_handler: FourLetterHandler | None = None, clock: Clock | None = None,
    ) -> None:
        self.config = config
        # every clock reading goes through here (server/clock.py; the simulation's own)
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        # its two readings, held as callables: calling an attribute costs the compiled
        # request path less than a method lookup on the (interpreted) Clock
        self._monotonic_ns: Callable[[], int] = self.clock.monotonic_ns
        self._time_ns: Callable[[], int] = self.clock.time_ns
        # test-only (zabby verify's negative control): zabby.test.dropWatchEvent=N loses
        # the Nth watch event this server would send (the watch is consumed all the same)
        self._test_drop_event = int(config.unknown.get("zabby.test.dropWatchEvent", 0) or 0)
        # refuses (ConfigError) any security setting that would not be honoured
        self.security = security if security is not None else load_security(config)
        if tree is None:
            tree = DataTree(max_buffer=config.max_buffer, extended_types=config.extended_types_enabled)
        # client SASL and enforce.auth (server.sasl); "sasl" ACLs need the provider
        self.sasl = SaslService(self.security.sasl or SaslSettings())
        self._enforce_auth = self.sasl.settings.enforce
        self.adopt_tree(tree)
        # ClickHouse Keeper's extension opcodes (zabby.keeperExtensions), None when off
        self.keeper = KeeperExtensions(self) if config.keeper_extensions else None
        # time the loop was too busy to run (see _ticker): never counted against sessions
        self._stalled_ns = 0
        self.stalled_ms_total = 0
        self.sessions = SessionTracker(config.tick_time, server_id, self.monotonic_ms())
        # sessions recovered from disk live until they time out, as in ZooKeeper
        now = self.monotonic_ms()
        for sid, timeout in tree.sessions.items():
            self.sessions.add(sid, timeout, now)
        # duck-typed: InMemoryCommitter, durability.GroupCommitter, the simulation's
        self.committer: Any = committer or InMemoryCommitter()
        self.commit_stage: CommitStage = self.commit_stage_class(self)
        self.connections: set[ClientConnection] = set()
        self.connections_by_ip: dict[str, int] = {}
        self.next_zxid = self.tree.last_zxid + 1
        self.start_time = self.clock.time_ns() / 1e9
        self.super_digest_id = None
        self.trace_mask: int | None = None  # stmk's; None: ZooKeeper's default (ops.fourletter)
        self._restoring = False  # an admin restore is running (ops.admin.snapshot)
        if config.super_digest:
            self.super_digest_id = config.super_digest
        # counters and gauges for srvr/stat/mntr (zabby.ops reads them)
        self.metrics = ServerMetrics(self)
        # answers a four-letter word on a new connection (see four_letter_word)
        self.four_letter_handler = four_letter_handler
        self.outstanding = 0  # writes handed to the commit pipeline, not yet answered
        # some connection has started a write ahead of its reads (`_run_ahead`): the
        # commit stage then looks whether a write it applies has reads to answer first
        self.ahead_started = False
        self._global_limit = config.global_outstanding_limit
        # connections not read because globalOutstandingLimit writes are in flight
        self._throttled: set[ClientConnection] = set()
        # connections not read for any reason (their sessions: see tick)
        self._not_read: set[ClientConnection] = set()
        # connections with no ConnectRequest yet -> deadline (ns), oldest first
        self._handshakes: dict[ClientConnection, int] = {}
        self.handshakes_timed_out = 0
        self.cnxns_refused = 0
        self._to_flush: list[ClientConnection] = []
        self._containers_proposed: set[str] = set()
        self._tick_task: asyncio.Task | None = None
        self._listeners: list[tuple[socket.socket, object]] = []
        self._accepting = False
        self._reserve_fd: int | None = None
        self._accept_error_logged = 0.0
        self.accept_errors = 0
        self._server: UnifiedListener | None = None  # client.portUnification
        self._secure: SecureListener | None = None  # secureClientPort
        self.secure_port: int | None = None

    def adopt_tree(self, tree: DataTree) -> None:
        """Serve ``tree``, with this server's settings (also a tree that came from
        a leader's snapshot or a restore: settings live here, not in the data)."""
        config = self.config
        tree.enforce_quota = config.enforce_quota
        tree.digest_enabled = config.digest_enabled
        tree.keeper_extensions = config.keeper_extensions
        if "sasl" in self.security.providers.values():
            tree.acl_providers["sasl"] = True
        if self.security.client_tls is not None:  # TLS for clients registers x509
            tree.acl_providers["x509"] = True
        self.tree = tree
        self.watches = tree.watches

    # ------------------------------------------------------------ clocks
    def monotonic_ms(self) -> int:
        """The session clock: monotonic time minus the time the loop was stalled.

        Session deadlines are on this clock, so a session never expires because the
        server was too busy (or stopped) to read the pings waiting in its socket.
        """
        return (self._monotonic_ns() - self._stalled_ns) // 1_000_000

    def wall_ms(self) -> int:
        """Wall-clock milliseconds: txn header times (znode ctime/mtime), TTLs."""
        return self._time_ns() // 1_000_000

    @property
    def last_zxid(self) -> int:
        return self.tree.last_zxid

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._open_client_ports()
        self._tick_task = asyncio.get_running_loop().create_task(self._ticker())
        cfg = self.config
        where = f"{cfg.client_port_address}:{self.port}" if self.port != -1 else "TLS only"
        log.info(
            "zabby serving on %s (tickTime=%d, sessions %d..%d ms)",
            where, cfg.tick_time, self.min_session_timeout, self.max_session_timeout,
        )

    async def _open_client_ports(self) -> None:
        """Listen for clients (sets `port`); the simulation registers with its
        network instead."""
        cfg = self.config
        ctls = self.security.client_tls
        if ctls is not None and ctls.secure_port is not None and not cfg.client_port_given:
            self.port = -1  # secureClientPort without clientPort: TLS only, as in ZooKeeper
        elif ctls is not None and ctls.port_unification:  # plaintext and TLS on one port
            self._server = UnifiedListener(self, ctls, cfg.client_port_address, cfg.client_port)
            await self._server.start(lambda: ClientConnection(self))
            self.port = self._server.port
        else:
            sock = _listen_socket(cfg.client_port_address, cfg.client_port)
            self.port = sock.getsockname()[1]
            self._reserve_fd = _reserve_fd()
            self.add_listener(sock)
            self._start_accepting()
        if ctls is not None and ctls.secure_port is not None:
            self._secure = SecureListener(self, ctls)
            await self._secure.start(lambda: ClientConnection(self))
            self.secure_port = self._secure.port

    async def stop(self) -> None:
        if self._tick_task:
            self._tick_task.cancel()
        self._stop_accepting()
        for sock, _ssl in self._listeners:
            sock.close()
        self._listeners.clear()
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
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
        period_ns = self.config.tick_time * 1_000_000 // 2
        # lateness below this is the loop's ordinary jitter, not a stall
        slack_ns = min(period_ns // 10, 20_000_000)
        clock = self.clock
        last = clock.monotonic_ns()
        while True:
            await asyncio.sleep(period_ns / 1e9)
            now = clock.monotonic_ns()
            late = now - last - period_ns
            last = now
            if late > slack_ns:
                # The loop could not run this task for `late` ns: busy with other
                # work, or the process was stopped. Pings may be waiting unread in
                # the sockets, so that time does not count toward any session's
                # timeout (the session clock moves back by it).
                self._stalled_ns += late
                self.stalled_ms_total += late // 1_000_000
                if late > period_ns:
                    log.warning("event loop stalled for %d ms; session deadlines extended",
                                late // 1_000_000)
            try:
                self._expire_handshakes()  # on every server, leader or not
                self.tick()
            except Exception:
                log.exception("error in session/container housekeeping")

    def tick(self) -> None:
        """Expire sessions whose deadline passed; remove empty containers and expired TTL nodes."""
        if not self.commit_stage.housekeeping():  # an ensemble: the serving leader does
            return
        now = self.monotonic_ms()
        for s in self.throttled_sessions():
            self.sessions.touch(s, now)
        for s in list(self.sessions.expired(now)):
            log.info("expiring session 0x%x, timeout of %dms exceeded", s.id & (2**64 - 1), s.timeout)
            self.metrics.stale_sessions_expired += 1
            self.close_session(s)
        expired = self.tree.expired_containers(self.wall_ms())
        for path in expired:
            if path not in self._containers_proposed:  # proposed last tick, not yet applied
                self._submit_internal(Op.DELETE_CONTAINER, _PathBody(path), 0)
        self._containers_proposed = set(expired) - self._containers_proposed

    # ------------------------------------------------------------ accepting
    # Our own accept loop rather than loop.create_server: uvloop closes a listening
    # server for good on an accept error such as EMFILE, so one moment at the
    # file-descriptor limit would lock every new client out until a restart.
    # A listener is (socket, ssl context or None); a TLS port adds one with
    # add_listener(sock, ssl_context).
    def add_listener(self, sock: socket.socket, ssl=None) -> None:
        self._listeners.append((sock, ssl))
        if self._accepting:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept_ready, sock, ssl)

    def _start_accepting(self) -> None:
        if not self._accepting and self._listeners:
            self._accepting = True
            loop = asyncio.get_running_loop()
            for sock, ssl in self._listeners:
                loop.add_reader(sock.fileno(), self._accept_ready, sock, ssl)

    def _stop_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            loop = asyncio.get_running_loop()
            for sock, _ssl in self._listeners:
                loop.remove_reader(sock.fileno())

    def _accept_ready(self, lsock: socket.socket, ssl) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(64):  # then let the loop serve the clients it already has
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                self._accept_failed(lsock, e)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            loop.create_task(self._adopt(sock, ssl))

    async def _adopt(self, sock: socket.socket, ssl) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(  # type: ignore[type-var]
                lambda: ClientConnection(self), sock, ssl=ssl)
        except (TimeoutError, OSError) as e:
            log.warning("could not set up an accepted connection: %s", e)
            sock.close()

    def _accept_failed(self, lsock: socket.socket, e: OSError) -> None:
        """Out of file descriptors (or buffers): neither spin nor stop listening.

        The connection at the head of the queue is accepted with the reserved
        descriptor and closed at once, so its client is told rather than left
        waiting, and accepting pauses briefly (ZooKeeper pauses 10 ms) while
        handshake timeouts and closing clients free descriptors.
        """
        self.accept_errors += 1
        now = time.monotonic()
        if now - self._accept_error_logged > 5.0:
            self._accept_error_logged = now
            log.warning("error accepting a client connection: %s (%d open); pausing accepts",
                        e, len(self.connections))
        if e.errno in (errno.EMFILE, errno.ENFILE) and self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
            try:
                shed, _ = lsock.accept()
                shed.close()
            except OSError:
                pass
            self._reserve_fd = _reserve_fd()
        self._stop_accepting()
        asyncio.get_running_loop().call_later(0.1, self._start_accepting)

    # ------------------------------------------------------------ connections
    def accept_connection(self, conn: ClientConnection) -> bool:
        ip = conn.peer[0]
        total = self.config.max_cnxns
        if total and len(self.connections) >= total:
            # maxCnxns counts every open client connection, handshakes included
            self.cnxns_refused += 1
            log.warning("Too many connections - max is %d", total)
            return False
        limit = self.config.max_client_cnxns
        n = self.connections_by_ip.get(ip, 0)
        if limit and n >= limit:
            self.cnxns_refused += 1
            log.warning("Too many connections from %s - max is %d", ip, limit)
            return False
        self.connections_by_ip[ip] = n + 1
        self.connections.add(conn)
        conn.auth = [Id("ip", ip)]
        if self.security.client_tls is not None:  # a verified client certificate: x509
            self.security.client_tls.authenticate(conn)
        self._handshakes[conn] = (
            self.clock.monotonic_ns() + self.config.sessionless_cnxn_timeout * 1_000_000)
        return True

    def throttled_sessions(self) -> list[Session]:
        """Sessions of connections the server chose not to read (back-pressure): what
        waits in their sockets may be pings, so they count as alive -- unless their
        client itself stopped reading its replies."""
        return [c.session for c in self._not_read
                if c.session is not None and not c.read_paused & PAUSE_OUTPUT]

    def _expire_handshakes(self) -> None:
        """Close connections that sent no ConnectRequest within sessionlessCnxnTimeout
        (ZooKeeper 3.8 closes them after 10-20 s; we after 10 s and one tick)."""
        hs = self._handshakes
        if not hs:
            return
        now = self.clock.monotonic_ns()
        late = []
        for conn, deadline in hs.items():  # insertion order: oldest first
            if deadline > now:
                break
            late.append(conn)
        for conn in late:
            hs.pop(conn, None)
            self.handshakes_timed_out += 1
            log.info("closing connection from %s:%d: no session established within %d ms",
                     *conn.peer, self.config.sessionless_cnxn_timeout)
            conn.abort()

    def connection_closed(self, conn: ClientConnection) -> None:
        self._handshakes.pop(conn, None)
        self._throttled.discard(conn)
        self._not_read.discard(conn)
        s = conn.session
        self.commit_stage.connection_closed(conn, s)
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

    def read_paused(self, conn: ClientConnection, paused: bool) -> None:
        """A connection stopped (or resumed) being read."""
        if paused:
            self._not_read.add(conn)
        else:
            self._not_read.discard(conn)

    def resume_pump(self, conn: ClientConnection) -> None:
        """Its output drained: answer the backlog again, then read again."""
        if conn.closed:
            return
        self.pump(conn)
        if not conn.stalled:
            conn.resume(PAUSE_OUTPUT)

    def _release_throttled(self) -> None:
        conns, self._throttled = self._throttled, set()
        for c in conns:
            c.resume(PAUSE_GLOBAL)

    def four_letter_word(self, conn: ClientConnection, head: bytes) -> bool:
        """The first four bytes of a new connection: True if the handler answered them
        as a four-letter word (``zabby.ops.fourletter.handle_four_letter_word``, passed
        in by whoever builds the server), False if they are the first frame's length."""
        handler = self.four_letter_handler
        return handler is not None and handler(self, conn, head)

    # ------------------------------------------------------------ handshake
    def handle_connect(self, conn: ClientConnection, req: ConnectRequest, read_only: bool) -> None:
        stage = self.commit_stage
        if not stage.admit(conn, req, read_only):  # e.g. an ensemble member not serving
            return
        self._handshakes.pop(conn, None)
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
            self.metrics.op_counts[Op.CREATE_SESSION] += 1
            sid = self.sessions.new_id()
            new = self.sessions.add(sid, timeout, self.monotonic_ms())
            new.conn = conn
            conn.session = new
            new.auth = conn.auth
            if stage.touched is not None:
                stage.touched[sid] = new.timeout
            # the session exists once its createSession txn is applied
            conn.inflight += 1
            self._start_session(conn, new, timeout)
            return
        s = self.sessions.get(req.sessionId)
        # constant time: the comparison must not tell an attacker how much was right
        good = s is not None and hmac.compare_digest(bytes(req.passwd or b""), s.passwd)
        if s is None or s.closing or not good:
            if s is not None and not good:
                log.warning("Incorrect password from %s:%d for session 0x%x", *conn.peer,
                            req.sessionId & (2**64 - 1))
            else:
                log.info("Invalid session 0x%x for client %s:%d, probably expired",
                         req.sessionId & (2**64 - 1), *conn.peer)
            conn.send(self.connect_response(conn, ConnectResponse(0, 0, 0, bytes(16))))
            conn.close_after_flush()
            return
        old = s.conn
        if old is not None and old is not conn:
            old.abort()
        self.sessions.touch(s, self.monotonic_ms(), timeout)
        s.conn = conn
        conn.session = s
        s.auth = conn.auth
        if stage.touched is not None:
            stage.touched[s.id] = s.timeout
        self._reopen(conn, s)

    def _reopen(self, conn: ClientConnection, s: Session) -> None:
        """A connect resumed session `s`: the commit stage answers it (an ensemble
        member first asks the leader, which records the session's new owner)."""
        self.commit_stage.reopen(conn, s)

    def _reopened(self, conn: ClientConnection, s: Session) -> None:
        """Final stage of a connect that resumed session `s`: answer it."""
        conn.send(self.connect_response(conn, ConnectResponse(0, s.timeout, s.id, s.passwd)))

    def connect_response(self, conn: ClientConnection, resp: ConnectResponse) -> bytes:
        """The connect response frame; its readOnly byte only for a client that sent
        one (as ZooKeeper 3.8 does; ZOOKEEPER-4814)."""
        return encode_connect_response(resp, self.read_only if conn.sent_read_only else None)

    def _start_session(self, conn: ClientConnection, s: Session, timeout: int) -> None:
        """A new session: its createSession goes to the commit stage; the client
        hears it is connected once that is applied (`_session_ready`)."""
        self.commit_stage.start_session(conn, s, timeout)

    def _session_ready(self, conn: ClientConnection, s: Session, pump: bool = True) -> None:
        """Final stage of a connect: answer it, then the requests that waited for it."""
        conn.inflight -= 1
        conn.send(self.connect_response(conn, ConnectResponse(0, s.timeout, s.id, s.passwd)))
        if pump:
            self.pump(conn)

    # ------------------------------------------------------------ requests
    def handle_request(self, conn: ClientConnection, xid: int, op: int, body) -> None:
        s = conn.session
        if s is not None:
            touched = self.commit_stage.touched
            if touched is not None:  # relayed to whoever expires sessions
                touched[s.id] = s.timeout
        ex = conn.sasl
        if ex is not None and ex.held is not None:
            # a GSSAPI step is running on a worker thread: later packets wait for it
            ex.held.append((xid, op, body))
            return
        m = self.metrics
        m.packets_received += 1
        m.op_counts[op] += 1
        now = self._monotonic_ns()  # one reading: the session clock and the latency's start
        if s is not None:
            self.sessions.touch(s, (now - self._stalled_ns) // 1_000_000)  # monotonic_ms()
        if op == OP_AUTH:
            if body is MALFORMED:
                # ZooKeeper cannot decode the auth packet and drops the connection
                log.warning("closing connection from %s:%d: undecodable auth packet", *conn.peer)
                conn.abort()
                return
            self._auth(conn, xid, body)
            return
        if op == OP_SASL:
            self._sasl(conn, xid, body)
            return
        if self._enforce_auth and not self.sasl.enforce(conn, xid):
            return
        q = conn.backlog
        if (not q and not conn.inflight and op not in WRITE_OPS and not conn.pumping
                and not conn.write_paused and conn._out_bytes < OUTPUT_HIGH
                and not conn.closed):
            # what pump would do with a read that finds nothing before it (most
            # reads): answer it now, without the backlog round trip (then pump's
            # own last steps, and the checks below: a sync stays in flight)
            self._read(conn, xid, op, body, now)
            if (conn.read_paused & PAUSE_BACKLOG
                    and len(conn.backlog) + conn.inflight < MAX_OUTSTANDING // 2):
                conn.resume(PAUSE_BACKLOG)
            if self._throttled and self.outstanding < self._global_limit:
                self._release_throttled()
        else:
            q.append((xid, op, body, now))
            self.pump(conn)
        # back-pressure by not reading, never by dropping (as ZooKeeper throttles
        # a connection with requests outstanding); nothing to check when all answered
        if q or conn.inflight:
            if len(q) + conn.inflight >= MAX_OUTSTANDING:
                conn.pause(PAUSE_BACKLOG)
            if self.outstanding >= self._global_limit and not conn.closed:
                self._throttled.add(conn)
                conn.pause(PAUSE_GLOBAL)

    def pump(self, conn: ClientConnection) -> None:
        """Process the connection's backlog in order (see module docstring)."""
        if conn.pumping:
            return
        conn.pumping = True
        try:
            q = conn.backlog
            held = False
            while q and not conn.closed:
                if conn.write_paused or conn._out_bytes >= OUTPUT_HIGH:
                    # its client is not reading: answer nothing more until the
                    # replies drain (resume_pump), and read nothing more meanwhile
                    conn.stalled = True
                    conn.pause(PAUSE_OUTPUT)
                    break
                xid, op, body, t0 = q[0]
                if op == OP_AHEAD:
                    # a write started ahead: what follows waits until it is applied
                    if self._ahead_pending(conn, body):
                        held = True
                        break
                    q.popleft()
                    conn.placed -= 1
                elif op in WRITE_OPS:
                    if conn.inflight >= MAX_INFLIGHT_WRITES:
                        # the rest is prepared as these commit (_applied pumps):
                        # one client's pipeline is taken in slices, not in one go
                        break
                    q.popleft()
                    self._write(conn, xid, op, body, t0)
                elif conn.inflight != conn.placed:
                    # something before this request is in flight (the writes
                    # started ahead are all behind it)
                    held = True
                    break
                else:
                    q.popleft()
                    self._read(conn, xid, op, body, t0)
            if held and _RUN_AHEAD:
                self._run_ahead(conn)
        finally:
            conn.pumping = False
        if (conn.read_paused & PAUSE_BACKLOG
                and len(conn.backlog) + conn.inflight < MAX_OUTSTANDING // 2):
            conn.resume(PAUSE_BACKLOG)
        if self._throttled and self.outstanding < self._global_limit:
            self._release_throttled()

    def _ahead_pending(self, conn: ClientConnection, entry) -> bool:
        """Is the write of this OP_AHEAD placeholder still to be applied (its entry
        still in its session's pending_writes)?"""
        s = conn.session
        if s is None:
            return False
        pq = self.commit_stage.pending_writes.get(s.id)
        if not pq:
            return False
        for e in pq:
            if e is entry:
                return True
        return False

    def _run_ahead(self, conn: ClientConnection) -> None:
        """The head of the backlog waits for writes in flight: start the writes
        behind it now, past plain reads, as ZooKeeper's PrepRequestProcessor takes a
        session's next write while its reads wait; each leaves a placeholder where it
        was, so the session's answers keep their order. The reads between are
        answered once the writes before them are applied and before any write after
        them is (`answer_held`). Without this, a session whose reads and writes
        alternate has one log round trip in flight at a time."""
        s = conn.session
        if (s is None or s.closing or conn.closed or conn.inflight >= MAX_INFLIGHT_WRITES
                or conn.write_paused or conn._out_bytes >= OUTPUT_HIGH // 2):
            # (a client slow to read its answers: answer_held could have to buffer
            # the reads before these writes past the output limit; keep it rare)
            return
        stage = self.commit_stage
        pq = stage.pending_writes.get(s.id)
        mine = 0
        if pq:
            for e in pq:
                if e[1] is conn:
                    mine += 1
        if conn.inflight != mine:
            return  # a sync or a connect is in flight: its answer comes first
        q = conn.backlog
        n = min(len(q), RUN_AHEAD_SCAN)
        for i in range(n):
            xid, op, body, t0 = q[i]
            if op == OP_AHEAD:
                continue
            if op in WRITE_OPS:
                if not stage.runs_ahead(op) or conn.inflight >= MAX_INFLIGHT_WRITES:
                    return
                last = pq[-1] if pq else None
                self._write(conn, xid, op, body, t0)
                pq = stage.pending_writes.get(s.id)
                entry = pq[-1] if pq else None
                if entry is None or entry is last or entry[1] is not conn:
                    # (cannot happen for a stage that runs ahead) it was answered
                    # at once: take it out, and start nothing more past it
                    del q[i]
                    return
                q[i] = (xid, OP_AHEAD, entry, t0)
                conn.placed += 1
                self.ahead_started = True
            elif op not in RUN_AHEAD_PAST:
                return

    def answer_held(self, conn: ClientConnection, entry) -> None:
        """The write of `entry`, started ahead of reads of its connection, is being
        applied: answer the reads before its placeholder now, even if the client is
        not reading its answers (they are few: those between two of its writes), so
        none of them sees this write."""
        q = conn.backlog
        while q and not conn.closed:
            xid, op, body, t0 = q[0]
            if op == OP_AHEAD:
                if body is entry or self._ahead_pending(conn, body):
                    return
                q.popleft()
                conn.placed -= 1
            elif op in WRITE_OPS or conn.inflight != conn.placed:
                return  # (cannot happen: nothing but reads is before it)
            else:
                q.popleft()
                self._read(conn, xid, op, body, t0)

    # ------------------------------------------------------------ writes
    def _write(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        """Prep stage of a client write, the same on every server: then the commit
        stage (the seam: local log or Zab) takes it."""
        s = conn.session
        if s is None or s.closing:
            # (read-only mode answers every write first: ReadOnlyRequestProcessor)
            if not self.read_only:
                self._reply(conn, xid, op, Err.SESSIONEXPIRED, None, t0)
                return
            if s is None:  # what the read-only stage answers
                self._reply(conn, xid, op, Err.NOTREADONLY, None, t0)
                return
        self.commit_stage.write(conn, s, xid, op, body, t0)

    def _submit_internal(self, op: int, body, session_id: int) -> None:
        """A write the server makes itself (session expiry, container cleanup)."""
        self.commit_stage.internal(op, body, session_id)

    def close_session(self, s: Session) -> None:
        """Session `s` expired: the commit stage ends it."""
        self.commit_stage.close_session(s)

    def _fire(self, events) -> None:
        trigger = self.watches.trigger
        acls = events.acls
        for i, (etype, path) in enumerate(events):
            acl = acls[i]
            for watcher, wtype, wpath in trigger(etype, path):
                # ZooKeeper sends an event only to a connection that may READ the
                # node it is about (the watch is consumed either way)
                if acl and not check_perm(acl, PERM_READ, watcher.auth):
                    continue
                if self._test_drop_event:
                    self._test_drop_event -= 1
                    if not self._test_drop_event:
                        continue
                watcher.send(encode_notification(wtype, _CONNECTED, wpath))

    def _read(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        s = conn.session
        if s is None:
            return
        if body is None:
            self._unknown_op(conn, xid, op)
            return
        if body is MALFORMED:
            if op == OP_SYNC and self.read_only:  # answered before it is decoded
                self.commit_stage.sync(conn, s, xid, "", t0)
                return
            if op in KEEPER_OPS and self.keeper is None:
                self._unknown_op(conn, xid, op)
                return
            log.warning("Failed to decode request of type %d from %s:%d", op, *conn.peer)
            self._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
            return
        if op in _TREE_READS:
            # the tree registers the watch exactly when ZooKeeper would
            err, resp = self.tree.read(op, body, conn.auth, s.id, conn)
            if err == ERR_NONODE and self.keeper is not None:  # Keeper's /keeper nodes
                err, resp = self.keeper.system_read(op, body)
            self._reply(conn, xid, op, err, resp, t0)
            return
        if op == Op.PING:
            conn.send(encode_reply(XID_PING, self.last_zxid, 0))
            return
        if op == Op.SYNC:  # the commit stage knows when every earlier write is applied
            self.commit_stage.sync(conn, s, xid, body.path, t0)
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
        if op in KEEPER_OPS:
            if self.keeper is not None:
                self.keeper.handle(conn, xid, op, body, t0)
            else:  # not enabled: unknown to us, as to ZooKeeper
                self._unknown_op(conn, xid, op)
            return
        conn.send(encode_reply(xid, -1, Err.UNIMPLEMENTED))

    def _unknown_op(self, conn: ClientConnection, xid: int, op: int) -> None:
        # unknown opcode: ZooKeeper answers UNIMPLEMENTED (zxid -1) and hangs up
        log.warning("Received packet at server of unknown type %d", op)
        conn.send(encode_reply(xid, -1, Err.UNIMPLEMENTED))
        conn.close_after_flush()

    def _reply(self, conn: ClientConnection, xid: int, op: int, err: int, resp, t0: int) -> None:
        zxid = self.last_zxid
        conn.send(encode_reply(xid, zxid, err, resp))
        now = self._monotonic_ns()
        m = self.metrics
        if t0:
            ms = (now - t0) // 1_000_000
            conn.last_latency = ms
            if ms == 0:
                # most replies (LatencyCounters.record_latency of 0, without two
                # calls per reply: min becomes 0, max and total stay)
                conn.min_latency = m.min_latency = 0
                conn.latency_count += 1
                m.latency_count += 1
            else:
                conn.record_latency(ms)
                m.record_latency(ms)
            (m.updatelatency if op in WRITE_OPS else m.readlatency).add(ms)
        conn.last_cxid = xid
        conn.last_zxid = zxid
        # `cons` turns these into a name and a time of day (not done per reply)
        conn.last_opcode = op
        conn.last_response_ns = now
        m.packets_sent += 1

    def _auth(self, conn: ClientConnection, xid: int, body) -> None:
        """addauth: the digest and ip schemes, as ZooKeeper's built-in providers."""
        ident = None
        if body.scheme == "digest":
            # any bytes are accepted: the id is user + ":" + base64(sha1(whole credential))
            ident = Id("digest", digest_id((body.auth or b"").decode("utf-8", "replace")))
            if self.super_digest_id is not None and hmac.compare_digest(
                    ident.id.encode(), self.super_digest_id.encode()):
                _add_auth(conn, Id("super", ""))
        elif body.scheme == "ip":
            ident = Id("ip", conn.peer[0])
        if ident is None:
            # %r: the scheme is the client's string (no forged log lines); the
            # credential itself is never logged
            log.warning("No authentication provider for scheme: %r has [ip, digest]",
                        body.scheme)
            conn.send(encode_reply(xid, 0, Err.AUTHFAILED))
            conn.close_after_flush()
            return
        _add_auth(conn, ident)
        log.info("Session 0x%x: auth success for scheme %r and address %s:%d",
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


def _listen_socket(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, stype, proto, _, addr = infos[0]
    sock = socket.socket(family, stype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _reserve_fd() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


class _PathBody:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def _add_auth(conn, ident: Id) -> None:
    """Add an id once, keeping the order ids were added in: O(1) per addauth (a set
    beside the list; a list scan made a flood of addauth quadratic)."""
    seen = conn.auth_set
    if len(seen) != len(conn.auth):  # ids added to the list directly elsewhere
        seen = conn.auth_set = set(conn.auth)
    if ident not in seen:
        seen.add(ident)
        conn.auth.append(ident)


def _user_of(ident: Id) -> str:
    if ident.scheme == "digest":
        return ident.id.split(":")[0]
    if ident.scheme in ("ip", "world", "x509", "sasl"):
        return ident.id
    return ""
