"""Local sessions (``localSessionsEnabled``, ``localSessionsUpgradingEnabled``), as
Apache ZooKeeper 3.5+ keeps them on an ensemble member.

With ``localSessionsEnabled=true`` every new session is local to the member the client
connected to: its id comes from that member's range, no createSession txn is made
(the ensemble's zxid does not move), and only that member tracks it -- pings touch it
there, that member expires it, and closing it makes no txn either. The leader never
hears of it. Such a session reads, watches and writes like any other (its writes go
to the leader as usual), with two limits:

* it cannot move: reconnecting to another member is answered "session expired"
  (that member does not know it); reconnecting to the same member works. It ends
  when the member stops serving (an election), as ZooKeeper's server is rebuilt then.
* it cannot own an ephemeral. Without ``localSessionsUpgradingEnabled`` a create of
  an ephemeral is refused: EPHEMERALONLOCALSESSION (-120); inside a multi the op fails
  with the leader's answer (SESSIONEXPIRED on a learner, EPHEMERALONLOCALSESSION on
  the leader), exactly as ZooKeeper 3.8. With upgrading on, the first create or
  create2 of an ephemeral (alone or in a multi) first sends a createSession for the
  same id and timeout through the leader, then the create: the session is global
  from then on (the leader expires it, it may move, its ephemerals live with it),
  without the client noticing.

The leader checks an ephemeral create against its global sessions
(``DataTree.ephemeral_session_check``, where ZooKeeper's validateCreateRequest does),
and lets through writes of sessions it does not know when their id is another
member's (a local session there), as LeaderSessionTracker.checkSession.

mntr reports ``local_sessions`` (this member's). Without the setting nothing here is
used (server.app builds a plain EnsembleServer).
"""

from __future__ import annotations

import logging
from collections import deque

from ..tree import DataTree
from ..wire import CreateMode, Err, Op
from ..wire.records import ConnectResponse
from .connection import MALFORMED, ClientConnection
from .ensemble import EnsembleServer

log = logging.getLogger("zabby.server.local_sessions")

_EPHEMERAL_FLAGS = frozenset({int(CreateMode.EPHEMERAL), int(CreateMode.EPHEMERAL_SEQUENTIAL)})
# the ops ZooKeeper's checkUpgradeSession looks at (not createTTL / createContainer)
_CREATES = frozenset({int(Op.CREATE), int(Op.CREATE2)})
# a pending_writes entry for a local closeSession waiting for the writes before it
_LOCAL_CLOSE = object()


def _creates_ephemeral(op: int, body) -> bool:
    if body is None or body is MALFORMED:
        return False
    if op in _CREATES:
        return getattr(body, "flags", None) in _EPHEMERAL_FLAGS
    if op == Op.MULTI:
        return any(o in _CREATES and getattr(r, "flags", None) in _EPHEMERAL_FLAGS
                   for o, r in (getattr(body, "ops", None) or ()))
    return False


class LocalSessionsEnsembleServer(EnsembleServer):
    """An ensemble member with ``localSessionsEnabled=true``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.upgrading = self.config.local_sessions_upgrading
        self.local_ids: set[int] = set()  # this member's local sessions
        # connection -> xids of ephemeral creates refused here (answered -120)
        self._refused: dict[ClientConnection, set[int]] = {}
        self._local_closes: set[int] = set()  # sessions with a _LOCAL_CLOSE queued
        self._upgrading: set[int] = set()  # createSession sent, not yet applied here
        self._hook(self.tree)

    @property
    def local_session_count(self) -> int:
        return len(self.local_ids)

    def _hook(self, tree: DataTree) -> None:
        tree.ephemeral_session_check = self._ephemeral_check

    def _replace_tree(self, tree: DataTree) -> None:
        super()._replace_tree(tree)
        self._hook(tree)

    # ------------------------------------------------------------ leader's checks
    def _ephemeral_check(self, session_id: int) -> int:
        """Leader: may this session own an ephemeral? (checkGlobalSession)"""
        if session_id in self.local_ids:
            return Err.EPHEMERALONLOCALSESSION
        s = self.sessions.get(session_id)
        return Err.SESSIONEXPIRED if s is None or s.closing else 0

    def _foreign_local_session(self, session_id: int) -> bool:
        return (session_id >> 56) & 0xFF != self.my_id & 0xFF

    # ------------------------------------------------------------ sessions
    def _start_session(self, conn: ClientConnection, s, timeout: int) -> None:
        if self.read_only:
            super()._start_session(conn, s, timeout)
            return
        self.local_ids.add(s.id)
        log.info("Creating local session 0x%x", s.id & (2**64 - 1))
        conn.inflight -= 1
        conn.send(self.connect_response(conn, ConnectResponse(0, s.timeout, s.id, s.passwd)))

    def _reopen(self, conn: ClientConnection, s) -> None:
        if s.id in self.local_ids:  # the leader does not know it: nothing to ask
            self._reopened(conn, s)
        else:
            super()._reopen(conn, s)

    def _relay_touches(self) -> None:
        if self.local_ids and self.touched:
            for sid in self.local_ids.intersection(self.touched):
                del self.touched[sid]
        super()._relay_touches()

    def tick(self) -> None:
        if not self.read_only and self.local_ids:
            now = self.monotonic_ms()
            local = self.local_ids
            for s in self.throttled_sessions():
                if s.id in local:
                    self.sessions.touch(s, now)
            # O(local sessions) a tick: the global tracker's buckets hold the learner's
            # global sessions too, which only the leader may expire
            for sid in [sid for sid in local
                        if (s := self.sessions.get(sid)) is None or s.expire_at <= now]:
                s = self.sessions.get(sid)
                if s is not None:
                    log.info("expiring local session 0x%x, timeout of %dms exceeded",
                             sid & (2**64 - 1), s.timeout)
                    self.metrics.stale_sessions_expired += 1
                self._end_local(sid)
        super().tick()

    def close_session(self, s) -> None:
        if s.id in self.local_ids:
            self._end_local(s.id)
            return
        super().close_session(s)

    def _end_local(self, sid: int) -> None:
        """A local session ends here: nothing to tell anyone, no txn."""
        self.local_ids.discard(sid)
        self.zab.session_owner.pop(sid, None)
        self.touched.pop(sid, None)
        s = self.sessions.remove(sid)
        if s is not None:
            s.closing = True
            if s.conn is not None:
                s.conn.abort()

    def _role_change(self, role: str, leader_id: int | None, serving: bool) -> None:
        was_serving = self.serving
        super()._role_change(role, leader_id, serving)
        if was_serving and not self.serving:
            # ZooKeeper rebuilds its server after an election: local sessions end, and
            # so does one whose upgrade never committed (its client reconnects and is
            # told it expired)
            for sid in list(self.local_ids):
                self._end_local(sid)
            for sid in self._upgrading:
                if sid not in self.tree.sessions:
                    self._end_local(sid)
            self._upgrading.clear()

    # ------------------------------------------------------------ writes
    def _write(self, conn: ClientConnection, xid: int, op: int, body, t0: int) -> None:
        s = conn.session
        if self.read_only or s is None or s.id not in self.local_ids or s.closing:
            super()._write(conn, xid, op, body, t0)
            return
        if op == Op.CLOSE_SESSION:
            self._close_local(conn, s, xid, op, t0)
            return
        if _creates_ephemeral(op, body):
            if self.upgrading:
                # the createSession goes first on the same path, so the leader
                # knows the session global before it prepares the create
                log.info("Upgrading session 0x%x", s.id & (2**64 - 1))
                self.local_ids.discard(s.id)
                self._upgrading.add(s.id)
                self.zab.route(s.id, 0, Op.CREATE_SESSION, s.timeout, conn.auth)
            elif op != Op.MULTI:
                # ZooKeeper's learner answers its own EPHEMERALONLOCALSESSION whatever
                # error txn the leader makes of it; a multi gets the leader's results
                self._refused.setdefault(conn, set()).add(xid)
        super()._write(conn, xid, op, body, t0)

    def _close_local(self, conn: ClientConnection, s, xid: int, op: int, t0: int) -> None:
        s.closing = True
        if conn.inflight:
            # answered after the writes before it (FIFO): see _apply_committed
            conn.inflight += 1
            self.outstanding += 1
            self.zab.pending_writes.setdefault(s.id, deque()).append(
                (_LOCAL_CLOSE, conn, xid, op, t0))
            self._local_closes.add(s.id)
            return
        s.conn = None  # this connection answers, then closes: _end_local must not abort it
        self._end_local(s.id)
        self._reply(conn, xid, op, Err.OK, None, t0)
        conn.close_after_flush()

    def _apply_committed(self, zxid: int, payload: bytes) -> None:
        super()._apply_committed(zxid, payload)
        if self._upgrading:
            self._upgrading.difference_update(
                [sid for sid in self._upgrading if sid in self.tree.sessions])
        if self._local_closes:
            for sid in list(self._local_closes):
                q = self.zab.pending_writes.get(sid)
                if q and q[0][0] is not _LOCAL_CLOSE:
                    continue
                self._local_closes.discard(sid)
                if not q:
                    continue  # its connection closed meanwhile
                _, conn, xid, op, t0 = q.popleft()
                if not q:
                    del self.zab.pending_writes[sid]
                self.outstanding -= 1
                conn.inflight -= 1
                if conn.session is not None:
                    conn.session.conn = None
                self._end_local(sid)
                if not conn.closed:
                    self._reply(conn, xid, op, Err.OK, None, t0)
                    conn.close_after_flush()

    def _reply(self, conn: ClientConnection, xid: int, op: int, err: int, resp, t0: int) -> None:
        if self._refused:
            xids = self._refused.get(conn)
            if xids is not None and xid in xids:
                xids.discard(xid)
                if not xids:
                    del self._refused[conn]
                err, resp = Err.EPHEMERALONLOCALSESSION, None
        super()._reply(conn, xid, op, err, resp, t0)

    def connection_closed(self, conn: ClientConnection) -> None:
        super().connection_closed(conn)
        self._refused.pop(conn, None)


def server_class(config) -> type[EnsembleServer]:
    """The ensemble member class for this configuration."""
    if config.readonly_mode:
        from .readonly import ReadOnlyEnsembleServer

        if not config.local_sessions:
            return ReadOnlyEnsembleServer
        return type("LocalSessionsReadOnlyServer",
                    (LocalSessionsEnsembleServer, ReadOnlyEnsembleServer), {})
    return LocalSessionsEnsembleServer if config.local_sessions else EnsembleServer
