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

In the pipeline (docs/ARCHITECTURE.md, "One request path") read-only mode is a commit
stage, ``ReadOnlyStage``, that the member puts in front while it has no quorum and takes
away when the election ends: it answers writes and ``sync`` (as ZooKeeper's
ReadOnlyRequestProcessor, before any session check), makes local sessions and expires
them; reads are the shared path's.

Without the setting nothing here is used (server.app builds a plain EnsembleServer).
"""

from __future__ import annotations

import asyncio
import logging

from ..wire import Err, Op
from ..wire.constants import OP_CLOSE_SESSION
from .ensemble import MODES, EnsembleServer
from .pipeline import CommitStage

log = logging.getLogger("zabby.server.readonly")

# ZooKeeper starts its read-only server this long after it began looking (or tickTime
# when longer), so that an ordinary election does not flap clients into read-only mode
READ_ONLY_DELAY_MS = 2000


class ReadOnlyStage(CommitStage):
    """The commit stage while read-only: nothing is committed. Writes and sync are
    answered NOTREADONLY; new sessions are local to this member (``local``)."""

    __slots__ = ("local",)

    def __init__(self, server) -> None:
        super().__init__(server)
        self.local: set[int] = set()  # local sessions made while read-only

    def admit(self, conn, req, read_only: bool) -> bool:
        srv = self.server
        if not read_only:
            srv._handshakes.pop(conn, None)
            log.info("Refusing session request for not-read-only client %s:%d", *conn.peer)
            conn.abort()
            return False
        sid = req.sessionId
        if sid != 0 and sid not in self.local and (
                sid in srv.tree.sessions or srv.sessions.get(sid) is not None):
            srv._handshakes.pop(conn, None)
            log.info("Refusing global session reconnection in read-only mode from %s:%d",
                     *conn.peer)
            conn.abort()
            return False
        # then the standalone handshake: password check, expired answer, new session
        return True

    def start_session(self, conn, s, timeout: int) -> None:
        self.local.add(s.id)
        self.server._session_ready(conn, s, pump=False)

    def write(self, conn, s, xid: int, op: int, body, t0: int) -> None:
        srv = self.server
        if op == OP_CLOSE_SESSION and s is not None and s.id in self.local:
            self.local.discard(s.id)
            srv.sessions.remove(s.id)
            s.closing = True
            srv._reply(conn, xid, op, Err.OK, None, t0)
            conn.close_after_flush()
            return
        srv._reply(conn, xid, op, Err.NOTREADONLY, None, t0)

    def sync(self, conn, s, xid: int, path: str, t0: int) -> None:
        self.server._reply(conn, xid, Op.SYNC, Err.NOTREADONLY, None, t0)

    def internal(self, op: int, body, session_id: int) -> None:
        """Nothing is written while read-only (housekeeping does not run)."""

    def housekeeping(self) -> bool:
        # local sessions only: the global ones are the quorum's to expire
        srv = self.server
        now = srv.monotonic_ms()
        for s in srv.throttled_sessions():
            if s.id in self.local:
                srv.sessions.touch(s, now)
        for sid in [sid for sid in self.local
                    if (s := srv.sessions.get(sid)) is None or s.expire_at <= now]:
            self.local.discard(sid)
            s = srv.sessions.remove(sid)
            if s is not None:
                log.info("expiring local session 0x%x, timeout of %dms exceeded",
                         sid & (2**64 - 1), s.timeout)
                s.closing = True
                if s.conn is not None:
                    s.conn.abort()
        return False


class ReadOnlyEnsembleServer(EnsembleServer):
    """An ensemble member with ``readonlymode.enabled=true``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_only = False
        self._ro_timer: asyncio.TimerHandle | None = None
        self._ro = ReadOnlyStage(self)
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
        self.commit_stage = self._ro
        log.info("no quorum for %d ms: serving read-only clients", self.read_only_delay_ms)

    def _leave_read_only(self, role: str) -> None:
        """The election is over: ZooKeeper shuts its read-only server down, closing
        every client connection; the local sessions end with it."""
        self.read_only = False
        self.commit_stage = self.zab
        log.info("leaving read-only mode (%s now); closing its client connections",
                 MODES.get(role, role))
        for conn in list(self.connections):
            conn.abort()
        local = self._ro.local
        for sid in local:
            self.sessions.remove(sid)
            self.touched.pop(sid, None)
        local.clear()
