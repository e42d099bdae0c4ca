"""Read-only mode (``readonlymode.enabled``): a member cut off from its quorum keeps
serving reads, as Apache ZooKeeper's ReadOnlyZooKeeperServer does.

A member that has been looking for a leader for max(2 s, tickTime) starts serving
read-only; it stops (and closes every connection) the moment the election ends, when
it follows or leads again, so its clients reconnect read-write. While read-only:

* only a client whose ConnectRequest says canBeReadOnly is accepted; the connect
  response says readOnly=true. Any other client is disconnected, as ZooKeeper does.
* a new session is local to this member: no txn, no zxid, never known to the
  quorum (ZooKeeper makes one only with localSessionsEnabled and refuses the connect
  otherwise; zabby always makes it, a read-only server is of no use without). It
  lives until its timeout passes or the member leaves read-only mode. A reconnect
  with a global session is refused by closing the connection (ZOOKEEPER-3863: the
  quorum may expire it meanwhile), one with an unknown session is told it expired.
* reads, pings, watches and setWatches are served from this member's copy of the
  tree; every write, ``check``, ``multi``, ``reconfig`` and ``sync`` is answered
  NOTREADONLY; closeSession of a local session closes it.
* ``isro`` answers ``ro``; srvr / stat / mntr report the mode ``read-only``.

Without the setting nothing here is used (server.app builds a plain EnsembleServer).
"""

from __future__ import annotations

import asyncio
import logging

from ..wire import Err, Op
from ..wire.records import ConnectRequest, ConnectResponse
from .connection import ClientConnection
from .core import ZabbyServer
from .ensemble import MODES, EnsembleServer

log = logging.getLogger("zabby.server.readonly")

# ZooKeeper starts its read-only server this long after it began looking (or tickTime
# when longer), so that an ordinary election does not flap clients into read-only mode
READ_ONLY_DELAY_MS = 2000


class ReadOnlyEnsembleServer(EnsembleServer):
    """An ensemble member with ``readonlymode.enabled=true``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_only = False
        self._ro_timer: asyncio.TimerHandle | None = None
        self._ro_sessions: set[int] = set()  # local sessions made while read-only
        self.read_only_delay_ms = max(READ_ONLY_DELAY_MS, self.config.tick_time)

    @property
    def mode(self) -> str:
        return "read-only" if self.read_only else super().mode

    # ------------------------------------------------------------ entering / leaving
    async def start(self) -> None:
        await super().start()
        if self.role == "looking":
            self._arm()

    async def stop(self) -> None:
        self._disarm()
        await super().stop()

    def _arm(self) -> None:
        if self._ro_timer is None and not self.read_only:
            self._ro_timer = asyncio.get_running_loop().call_later(
                self.read_only_delay_ms / 1000.0, self._enter_read_only)

    def _disarm(self) -> None:
        if self._ro_timer is not None:
            self._ro_timer.cancel()
            self._ro_timer = None

    def _role_change(self, role: str, leader_id: int | None, serving: bool) -> None:
        if role != "looking":
            self._disarm()
            if self.read_only:
                self._leave_read_only(role)
        super()._role_change(role, leader_id, serving)
        if self.role == "looking":
            self._arm()

    def _enter_read_only(self) -> None:
        self._ro_timer = None
        if self.role != "looking" or self.read_only:
            return
        self.read_only = True
        log.info("no quorum for %d ms: serving read-only clients", self.read_only_delay_ms)

    def _leave_read_only(self, role: str) -> None:
        """The election is over: ZooKeeper shuts its read-only server down, closing
        every client connection; the local sessions end with it."""
        self.read_only = False
        log.info("leaving read-only mode (%s now); closing its client connections",
                 MODES.get(role, role))
        for conn in list(self.connections):
            conn.abort()
        for sid in self._ro_sessions:
            self.sessions.remove(sid)
            self.touched.pop(sid, None)
        self._ro_sessions.clear()

    # ------------------------------------------------------------ clients
    def handle_connect(self, conn: ClientConnection, req: ConnectRequest, read_only: bool) -> None:
        if not self.read_only:
            super().handle_connect(conn, req, read_only)
            return
        if not read_only:
            self._handshakes.pop(conn, None)
            log.info("Refusing session request for not-read-only client %s:%d", *conn.peer)
            conn.abort()
            return
        sid = req.sessionId
        if sid != 0 and sid not in self._ro_sessions and (
                sid in self.tree.sessions or self.sessions.get(sid) is not None):
            self._handshakes.pop(conn, None)
            log.info("Refusing global session reconnection in read-only mode from %s:%d",
                     *conn.peer)
            conn.abort()
            return
        # the standalone handshake: password check, expired answer, new session
        ZabbyServer.handle_connect(self, conn, req, read_only)

    def _start_session(self, conn: ClientConnection, s, timeout: int) -> None:
        if not self.read_only:
            super()._start_session(conn, s, timeout)
            return
        self._ro_sessions.add(s.id)
        conn.inflight -= 1
        conn.send(self.connect_response(conn, ConnectResponse(0, s.timeout, s.id, s.passwd)))

    def _write(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        if not self.read_only:
            super()._write(conn, xid, op, body, t0)
            return
        s = conn.session
        if op == Op.CLOSE_SESSION and s is not None and s.id in self._ro_sessions:
            self._ro_sessions.discard(s.id)
            self.sessions.remove(s.id)
            s.closing = True
            self._reply(conn, xid, op, Err.OK, None, t0)
            conn.close_after_flush()
            return
        self._reply(conn, xid, op, Err.NOTREADONLY, None, t0)

    def _read(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        if self.read_only and op == Op.SYNC:
            self._reply(conn, xid, op, Err.NOTREADONLY, None, t0)
            return
        super()._read(conn, xid, op, body, t0)

    # ------------------------------------------------------------ sessions
    def tick(self) -> None:
        if not self.read_only:
            super().tick()
            return
        # local sessions only: the global ones are the quorum's to expire
        now = self.monotonic_ms()
        for s in self.throttled_sessions():
            if s.id in self._ro_sessions:
                self.sessions.touch(s, now)
        for sid in [sid for sid in self._ro_sessions
                    if (s := self.sessions.get(sid)) is None or s.expire_at <= now]:
            self._ro_sessions.discard(sid)
            s = self.sessions.remove(sid)
            if s is not None:
                log.info("expiring local session 0x%x, timeout of %dms exceeded",
                         sid & (2**64 - 1), s.timeout)
                s.closing = True
                if s.conn is not None:
                    s.conn.abort()

