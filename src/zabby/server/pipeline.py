"""The commit stage of the request pipeline: the one seam between a standalone
server and an ensemble member.

The request path, in ZooKeeper's processor-chain terms (docs/ARCHITECTURE.md,
"One request path"):

- front (``ZabbyServer.handle_request`` / ``pump``): FIFO backlog per connection,
  reads answered in order once the connection's writes are applied -- shared.
- prep (``ZabbyServer._write``, ``_start_session``, ``_submit_internal``): the
  session checks every server makes, then hand-off to ``server.commit_stage`` --
  shared.
- commit (this module, the seam): ``LocalCommit`` prepares the txn here and
  group-commits it to the local log (PrepRequestProcessor + SyncRequestProcessor);
  ``ZabCommit`` sends it through Zab: the leader prepares and proposes, a learner
  forwards it (ProposalRequestProcessor / FollowerRequestProcessor).
- final (``ZabbyServer._write_done``, ``_session_ready``): account, answer in the
  shape of the op, go on with the connection's backlog -- shared. An ensemble
  member reaches it from ``EnsembleServer._apply_committed`` when the committed
  txn heads its session's queue of outstanding writes.

A stage has three entry points: ``write`` (a client write that passed the prep
checks), ``start_session`` (a new session's createSession) and ``internal`` (a
write the server makes itself: expiry, container cleanup).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..tree import ErrorTxn, RequestContext, Txn, TxnHeader
from ..wire import Err, Id, Op
from .connection import MALFORMED

# plain ints: an IntEnum attribute costs ~60 ns a lookup on the hot path
_CLOSE_SESSION = int(Op.CLOSE_SESSION)
_RECONFIG = int(Op.RECONFIG)


def now_ms() -> int:
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


class LocalCommit:
    """Standalone: prepare here, group-commit to the local log, apply, answer.

    Reads ``server.tree``, ``server.committer`` and ``server.next_zxid`` on every
    call (a restore replaces the tree and renumbers)."""

    __slots__ = ("server",)

    def __init__(self, server) -> None:
        self.server = server

    def write(self, conn, s, xid: int, op: int, body, t0: int) -> None:
        srv = self.server
        committer = srv.committer
        if committer.failure is not None:
            if op == _CLOSE_SESSION:
                # see ZabbyServer.close_session: no txn while the log is broken
                srv.sessions.remove(s.id)
                s.closing = True
                srv._reply(conn, xid, op, Err.OK, None, t0)
                conn.close_after_flush()
                return
            srv._reply(conn, xid, op, Err.NOTREADONLY, None, t0)
            return
        if op == _RECONFIG:
            if body is MALFORMED:
                # ZooKeeper decodes reconfig before taking a zxid
                srv._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
                return
            # a standalone server: ZooKeeper answers with an error txn, RECONFIGDISABLED
            # or (reconfigEnabled) UNIMPLEMENTED
            txn = self.error_txn(Err.UNIMPLEMENTED if srv.config.reconfig_enabled
                                 else Err.RECONFIGDISABLED, s.id, xid)
        else:
            # an undecodable write body still takes a zxid (MARSHALLINGERROR txn)
            zxid = srv.next_zxid
            srv.next_zxid = zxid + 1
            txn = srv.tree.prepare(op, None if body is MALFORMED else body,
                                   RequestContext(s.id, xid, zxid, now_ms(), conn.auth))
        conn.inflight += 1
        srv.outstanding += 1
        if op == _CLOSE_SESSION:
            s.closing = True
        committer.submit(txn, lambda: self.applied(conn, xid, op, txn, t0),
                         lambda why: self.failed(conn, why))

    def start_session(self, conn, s, timeout: int) -> None:
        srv = self.server
        if srv.committer.failure is not None:
            # The log is broken: a session local to this server, with no txn and so
            # no zxid a client could see and then miss after a restart. Reads work;
            # writes (ephemerals included) are refused.
            srv._session_ready(conn, s, pump=False)
            return
        txn = self.prepare(Op.CREATE_SESSION, timeout, s.id, 0, conn.auth)

        def created() -> None:
            srv.tree.apply(txn)
            srv._session_ready(conn, s)

        srv.committer.submit(txn, created, lambda why: self.failed(conn, why))

    def internal(self, op: int, body, session_id: int) -> None:
        txn = self.prepare(op, body, session_id, 0, [Id("super", "")])
        self.server.committer.submit(txn, lambda: self.applied(None, 0, op, txn, 0),
                                     lambda why: self.failed(None, why))

    # ------------------------------------------------------------ helpers
    def prepare(self, op: int, body, session_id: int, cxid: int, auth):
        srv = self.server
        zxid = srv.next_zxid
        srv.next_zxid = zxid + 1
        return srv.tree.prepare(op, body, RequestContext(session_id, cxid, zxid, now_ms(), auth))

    def error_txn(self, err: int, session_id: int, cxid: int) -> Txn:
        srv = self.server
        zxid = srv.next_zxid
        srv.next_zxid = zxid + 1
        return Txn(TxnHeader(session_id, cxid, zxid, now_ms(), Op.ERROR), ErrorTxn(err))

    def applied(self, conn, xid: int, op: int, txn, t0: int) -> None:
        """The txn is durable: apply it, fire watches, answer (the final stage)."""
        srv = self.server
        res = srv.tree.apply(txn)
        srv.metrics.propagation_latency.add(now_ms() - txn.header.time)
        srv._fire(res.events)
        if op == _CLOSE_SESSION:
            s = srv.sessions.remove(txn.header.clientId)
            if s is not None and s.conn is not None and s.conn is not conn:
                s.conn.abort()
        if conn is not None:
            srv._write_done(conn, xid, op, res, txn, t0)

    def failed(self, conn, why: str) -> None:
        srv = self.server
        # nothing prepared after the failure point will be applied
        srv.tree.discard_pending()
        srv.next_zxid = srv.tree.last_zxid + 1
        if conn is not None and not conn.closed:
            # the outcome of an in-flight write is unknown to the client, exactly
            # as when a connection breaks: it reconnects and finds writes refused
            conn.abort()


class ZabCommit:
    """Ensemble member: a write goes through Zab. The leader prepares and proposes;
    a learner forwards it. The answer comes from ``EnsembleServer._apply_committed``
    once the txn commits, matched by (session, cxid) against ``pending_writes``."""

    __slots__ = ("server",)

    def __init__(self, server) -> None:
        self.server = server

    def write(self, conn, s, xid: int, op: int, body, t0: int) -> None:
        srv = self.server
        if op == _RECONFIG and body is MALFORMED:
            srv._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
            return
        if op == _CLOSE_SESSION:
            s.closing = True
        conn.inflight += 1
        srv.outstanding += 1
        q = srv.pending_writes.get(s.id)
        if q is None:
            q = srv.pending_writes[s.id] = deque()
        q.append((xid, conn, xid, op, t0))
        srv._route(s.id, xid, op, None if body is MALFORMED else body, conn.auth)

    def start_session(self, conn, s, timeout: int) -> None:
        srv = self.server
        srv.pending_connects[s.id] = conn
        srv._route(s.id, 0, Op.CREATE_SESSION, timeout, conn.auth)

    def internal(self, op: int, body, session_id: int) -> None:
        srv = self.server
        if srv.role == "leading":
            srv._lead_write(session_id, 0, op, body, [Id("super", "")])
