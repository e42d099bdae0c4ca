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

In the pipeline (docs/ARCHITECTURE.md, "One request path") local sessions are a variant
of the Zab commit stage, ``LocalSessionsStage``: it makes, re-attaches, closes and
expires local sessions itself and passes everything else to ``ZabCommit``.
"""

from __future__ import annotations

import logging
from collections import deque

from ..tree import ApplyResult, DataTree
from ..tree.datatree import EventList
from ..wire import CreateMode, Err, Op
from .connection import MALFORMED, ClientConnection
from .ensemble import EnsembleServer
from .pipeline import ZabCommit

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


def _refused() -> ApplyResult:
    """The answer a learner gives an ephemeral create of a local session."""
    return ApplyResult(int(Err.EPHEMERALONLOCALSESSION), None, EventList())


class LocalSessionsStage(ZabCommit):
    """The Zab commit stage of a member with local sessions (see the module doc)."""

    __slots__ = ("local_ids", "refused", "local_closes", "upgrading")

    def __init__(self, server) -> None:
        super().__init__(server)
        self.local_ids: set[int] = set()  # this member's local sessions
        # connection -> xids of ephemeral creates refused here (answered -120)
        self.refused: dict[ClientConnection, set[int]] = {}
        self.local_closes: set[int] = set()  # sessions with a _LOCAL_CLOSE queued
        self.upgrading: set[int] = set()  # createSession sent, not yet applied here

    # ------------------------------------------------------------ sessions
    def start_session(self, conn, s, timeout: int) -> None:
        self.local_ids.add(s.id)
        log.info("Creating local session 0x%x", s.id & (2**64 - 1))
        self.server._session_ready(conn, s, pump=False)

    def reopen(self, conn, s) -> None:
        if s.id in self.local_ids:  # the leader does not know it: nothing to ask
            self.server._reopened(conn, s)
        else:
            super().reopen(conn, s)

    def housekeeping(self) -> bool:
        local = self.local_ids
        if local:
            srv = self.server
            now = srv.monotonic_ms()
            for s in srv.throttled_sessions():
                if s.id in local:
                    srv.sessions.touch(s, now)
            # O(local sessions) a tick: the global tracker's buckets hold the learner's
            # global sessions too, which only the leader may expire
            for sid in [sid for sid in local
                        if (s := srv.sessions.get(sid)) is None or s.expire_at <= now]:
                s = srv.sessions.get(sid)
                if s is not None:
                    log.info("expiring local session 0x%x, timeout of %dms exceeded",
                             sid & (2**64 - 1), s.timeout)
                    srv.metrics.stale_sessions_expired += 1
                self.end_local(sid)
        return super().housekeeping()

    def close_session(self, s) -> None:
        if s.id in self.local_ids:
            self.end_local(s.id)
            return
        super().close_session(s)

    def end_local(self, sid: int) -> None:
        """A local session ends here: nothing to tell anyone, no txn."""
        srv = self.server
        self.local_ids.discard(sid)
        self.session_owner.pop(sid, None)
        self.touched.pop(sid, None)
        if not self.pending_writes.get(sid, True):
            del self.pending_writes[sid]  # its emptied queue (see CommitStage.apply)
        s = srv.sessions.remove(sid)
        if s is not None:
            s.closing = True
            if s.conn is not None:
                s.conn.abort()

    def stopped_serving(self) -> None:
        """ZooKeeper rebuilds its server after an election: local sessions end, and
        so does one whose upgrade never committed (its client reconnects and is
        told it expired)."""
        for sid in list(self.local_ids):
            self.end_local(sid)
        for sid in self.upgrading:
            if sid not in self.server.tree.sessions:
                self.end_local(sid)
        self.upgrading.clear()

    # ------------------------------------------------------------ writes
    def runs_ahead(self, op: int) -> bool:
        return False  # a write of a local session may be answered here at once

    def write(self, conn, s, xid: int, op: int, body, t0: int) -> None:
        if s.id not in self.local_ids:
            super().write(conn, s, xid, op, body, t0)
            return
        if op == Op.CLOSE_SESSION:
            self._close_local(conn, s, xid, op, t0)
            return
        if _creates_ephemeral(op, body):
            if self.server.config.local_sessions_upgrading:
                # the createSession goes first on the same path, so the leader
                # knows the session global before it prepares the create
                log.info("Upgrading session 0x%x", s.id & (2**64 - 1))
                self.local_ids.discard(s.id)
                self.upgrading.add(s.id)
                self.route(s.id, 0, Op.CREATE_SESSION, s.timeout, conn.auth)
            elif op != Op.MULTI:
                # ZooKeeper's learner answers its own EPHEMERALONLOCALSESSION whatever
                # error txn the leader makes of it; a multi gets the leader's results
                self.refused.setdefault(conn, set()).add(xid)
        super().write(conn, s, xid, op, body, t0)

    def _close_local(self, conn, s, xid: int, op: int, t0: int) -> None:
        srv = self.server
        s.closing = True
        if conn.inflight:
            # answered after the writes before it (FIFO): see apply
            conn.inflight += 1
            srv.outstanding += 1
            self.pending_writes.setdefault(s.id, deque()).append(
                (_LOCAL_CLOSE, conn, xid, op, t0))
            self.local_closes.add(s.id)
            return
        s.conn = None  # this connection answers, then closes: end_local must not abort it
        self.end_local(s.id)
        srv._reply(conn, xid, op, Err.OK, None, t0)
        conn.close_after_flush()

    def apply(self, txn) -> None:
        refused = None
        if self.refused:
            # the committed txn answers a refused create: with -120, whatever it says
            hdr = txn.header
            q = self.pending_writes.get(hdr.clientId)
            if q and q[0][0] == hdr.cxid:
                xids = self.refused.get(q[0][1])
                if xids is not None and q[0][2] in xids and not (
                        hdr.type == Op.ERROR and txn.body.err == Err.SESSIONMOVED):
                    xids.discard(q[0][2])
                    if not xids:
                        del self.refused[q[0][1]]
                    refused = q.popleft()
                    if not q:
                        del self.pending_writes[hdr.clientId]
        super().apply(txn)
        if refused is not None:
            _, conn, xid, op, t0 = refused
            self.write_done(conn, xid, op, _refused(), txn, t0)
        if self.upgrading:
            self.upgrading.difference_update(
                [sid for sid in self.upgrading if sid in self.server.tree.sessions])
        if self.local_closes:
            self._answer_local_closes()

    def _answer_local_closes(self) -> None:
        srv = self.server
        for sid in list(self.local_closes):
            q = self.pending_writes.get(sid)
            if q and q[0][0] is not _LOCAL_CLOSE:
                continue
            self.local_closes.discard(sid)
            if not q:
                continue  # its connection closed meanwhile
            _, conn, xid, op, t0 = q.popleft()
            if not q:
                del self.pending_writes[sid]
            srv.outstanding -= 1
            conn.inflight -= 1
            if conn.session is not None:
                conn.session.conn = None
            self.end_local(sid)
            if not conn.closed:
                srv._reply(conn, xid, op, Err.OK, None, t0)
                conn.close_after_flush()

    def connection_closed(self, conn, s) -> None:
        super().connection_closed(conn, s)
        if self.refused:
            self.refused.pop(conn, None)


class LocalSessionsEnsembleServer(EnsembleServer):
    """An ensemble member with ``localSessionsEnabled=true``."""

    commit_stage_class = LocalSessionsStage

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.upgrading = self.config.local_sessions_upgrading
        self._hook(self.tree)

    @property
    def local_ids(self) -> set[int]:
        """This member's local sessions."""
        return self.zab.local_ids

    @property
    def local_session_count(self) -> int:
        return len(self.zab.local_ids)

    def _hook(self, tree: DataTree) -> None:
        tree.ephemeral_session_check = self._ephemeral_check

    def _replace_tree(self, tree: DataTree) -> None:
        super()._replace_tree(tree)
        self._hook(tree)

    # ------------------------------------------------------------ leader's checks
    def _ephemeral_check(self, session_id: int) -> int:
        """Leader: may this session own an ephemeral? (checkGlobalSession)"""
        if session_id in self.zab.local_ids:
            return Err.EPHEMERALONLOCALSESSION
        s = self.sessions.get(session_id)
        return Err.SESSIONEXPIRED if s is None or s.closing else 0

    def _foreign_local_session(self, session_id: int) -> bool:
        return (session_id >> 56) & 0xFF != self.my_id & 0xFF

    # ------------------------------------------------------------ consensus side
    def _relay_touches(self) -> None:
        local = self.zab.local_ids
        if local and self.touched:
            for sid in local.intersection(self.touched):
                del self.touched[sid]
        super()._relay_touches()

    def _role_change(self, role: str, leader_id: int | None, serving: bool) -> None:
        was_serving = self.serving
        super()._role_change(role, leader_id, serving)
        if was_serving and not self.serving:
            self.zab.stopped_serving()


def server_class(config) -> type[EnsembleServer]:
    """The ensemble member class for this configuration."""
    if config.readonly_mode:
        from .readonly import ReadOnlyEnsembleServer

        if not config.local_sessions:
            return ReadOnlyEnsembleServer
        return type("LocalSessionsReadOnlyServer",
                    (LocalSessionsEnsembleServer, ReadOnlyEnsembleServer), {})
    return LocalSessionsEnsembleServer if config.local_sessions else EnsembleServer
