"""The request pipeline's commit stage and final stage: the one seam between a
standalone server and an ensemble member.

A client write, in ZooKeeper's processor-chain terms (docs/ARCHITECTURE.md,
"One request path"):

1. front (``ZabbyServer.handle_request`` / ``pump``, core.py): FIFO backlog per
   connection; a read waits until the connection's writes are applied.
2. prep (``ZabbyServer._write``, core.py): the session check every server makes.
3. commit (``server.commit_stage``, this module): the stage queues the write in
   ``pending_writes[session]``, then
   - ``LocalCommit`` (standalone) prepares the txn here and group-commits it to
     the local log (PrepRequestProcessor + SyncRequestProcessor);
   - ``ZabCommit`` (ensemble member) sends it through Zab: the leader fences the
     session (SESSIONMOVED), prepares and proposes it; a learner forwards it to
     the leader (ProposalRequestProcessor / FollowerRequestProcessor).
4. apply (``CommitStage.apply``, here, on every server): the committed txn is
   applied to the tree, watches fire, and if it heads its session's queue of
   outstanding writes it is this server's client's (CommitProcessor) ...
5. reply (``CommitStage.write_done``, here): ... answered in the op's shape,
   then the connection's backlog goes on (FinalRequestProcessor).

A stage's entry points: ``write``, ``start_session`` (createSession of a new
session), ``internal`` (a write the server makes itself: expiry, container
cleanup), ``sync``; its hooks on the session path: ``admit`` (connect),
``reopen`` (a session re-attached), ``close_session`` (expiry), ``housekeeping``
(its part of a tick), ``touched`` (touches to relay), ``connection_closed``.
Read-only mode (readonly.ReadOnlyStage) and local sessions
(local_sessions.LocalSessionsStage) are stages too.
"""

from __future__ import annotations

import hmac
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

from ..consensus import NotLeader, make_zxid, zxid_counter, zxid_epoch
from ..consensus.message_records import Forwarded  # (generated: a native record)
from ..tree import ApplyResult, ErrorTxn, RequestContext, Txn, TxnHeader
from ..wire import Err, Id, Op
from ..wire.constants import (
    ERR_SESSIONMOVED,
    OP_CLOSE_SESSION,
    OP_CREATE_SESSION,
    OP_DELETE_CONTAINER,
    OP_ERROR,
    OP_MULTI,
    OP_RECONFIG,
    OP_SYNC,
)
from ..wire.jute import ProtocolError, Record, vector
from ..wire.keeper import KEEPER_OPS
from ..wire.protocol import REQUEST_BODY
from ..wire.records import ConnectResponse, GetDataResponse, PathResponse
from .connection import MALFORMED, ClientConnection
from .keeper import keeper_reply
from .session import Session, session_password

if TYPE_CHECKING:  # (core and ensemble import this module)
    from .core import ZabbyServer
    from .ensemble import EnsembleServer

log = logging.getLogger("zabby.server.ensemble")

_KEEPER_MIN: Final = min(KEEPER_OPS)  # ClickHouse Keeper's opcodes are 500 and up
# the writes a stage may start while reads of their connection before them wait
# (ZabbyServer._run_ahead), and the requests such a write may be started past: plain
# reads, answered locally in between (a sync, a closeSession, anything else stops it)
RUN_AHEAD_OPS: Final = frozenset({
    int(Op.CREATE), int(Op.CREATE2), int(Op.CREATE_CONTAINER), int(Op.CREATE_TTL),
    int(Op.DELETE), int(Op.SET_DATA), int(Op.SET_ACL), int(Op.CHECK), int(Op.MULTI)})
RUN_AHEAD_PAST: Final = frozenset({
    int(Op.EXISTS), int(Op.GET_DATA), int(Op.GET_ACL), int(Op.GET_CHILDREN),
    int(Op.GET_CHILDREN2), int(Op.GET_EPHEMERALS), int(Op.GET_ALL_CHILDREN_NUMBER)})


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


@mypyc_attr(allow_interpreted_subclasses=True)  # read-only and local-session stages
class CommitStage:
    """What both commit stages share: the per-session queue of outstanding writes
    and the final stage, ``apply``, that every committed txn goes through on every
    server (ZooKeeper's CommitProcessor matching a committed request to the
    session's oldest outstanding one, then FinalRequestProcessor).

    A client write is queued in ``pending_writes[session]`` as (cxid, conn, client
    xid, op, t0) when the stage takes it; a new session's connection waits in
    ``pending_connects[session]``. Txns of one session commit in the order the
    session sent them, so the committed txn, if it is this server's client's at
    all, is the one at the head of its session's queue."""

    __slots__ = ("server", "pending_writes", "pending_connects", "sync_barriers")

    # ``pending_writes[session]`` may be an empty deque: it is dropped when the
    # session's closeSession is applied (or it ends locally, or the member stops
    # serving)

    def __init__(self, server: ZabbyServer) -> None:
        self.server = server
        # session id -> outstanding writes (cxid, conn, client xid, op, t0), oldest first
        self.pending_writes: dict[int, deque] = {}
        # session id -> connection waiting for its createSession (or owner change)
        self.pending_connects: dict = {}
        # zxid of a no-op txn -> callbacks once it is applied (an ensemble leader's sync)
        self.sync_barriers: dict[int, list] = {}

    def runs_ahead(self, op: int) -> bool:
        """May `write` take this op while reads of its connection before it wait
        (``ZabbyServer._run_ahead``)? Only where it surely queues the write in
        ``pending_writes`` rather than answering at once: an answer now would
        overtake the waiting reads' answers."""
        return False

    def apply(self, txn: Txn) -> None:
        """The txn is committed (durable here / at a quorum): apply it, fire
        watches, and answer the client of this server that sent it, if any."""
        srv = self.server
        hdr = txn.header
        if srv.ahead_started:
            q0 = self.pending_writes.get(hdr.clientId)
            if q0:
                e = q0[0]
                if e[0] == hdr.cxid and e[1].placed:
                    # a write started ahead of its connection's reads: they are
                    # answered before the tree has it (as they would have been)
                    srv.answer_held(e[1], e)
        res = srv.tree.apply(txn)
        if self.quorum:
            self.account(hdr.time)
        else:  # inline: the standalone write path saves a call
            srv.metrics.propagation_latency.add(srv.wall_ms() - hdr.time)
        srv._fire(res.events)
        if self.sync_barriers:
            for done in self.sync_barriers.pop(hdr.zxid, ()):
                done(hdr.zxid)
        sid = hdr.clientId
        htype = hdr.type
        if htype == OP_CREATE_SESSION:
            if self.tracks_sessions and srv.sessions.get(sid) is None:
                srv.sessions.add(sid, txn.body.timeOut, srv.monotonic_ms())
            conn = self.pending_connects.pop(sid, None)
            if conn is not None and not conn.closed and conn.session is not None:
                srv._session_ready(conn, conn.session)
            return
        closed: ClientConnection | None = None
        if htype == OP_CLOSE_SESSION:
            ended = srv.sessions.remove(sid)
            self.session_closed(sid)
            if ended is not None:
                closed = ended.conn
        q = self.pending_writes.get(sid)
        if not q or q[0][0] != hdr.cxid:
            if htype == OP_CLOSE_SESSION:
                if closed is not None:
                    closed.abort()  # the session expired, or closed through another member
                if q is not None and not q:
                    del self.pending_writes[sid]
            return
        if htype == OP_ERROR and txn.body.err == ERR_SESSIONMOVED:
            self.moved_away(q, sid)
            return
        _, conn, xid, op, t0 = q.popleft()
        # an emptied queue stays until the session closes: a session with one write
        # outstanding at a time would otherwise make and drop a deque per write
        if htype == OP_CLOSE_SESSION:
            if not q:
                del self.pending_writes[sid]
            if closed is not None and closed is not conn:
                closed.abort()
        self.write_done(conn, xid, op, res, txn, t0)

    def write_done(self, conn: ClientConnection, xid: int, op: int, res: ApplyResult,
                   txn: Txn, t0: int) -> None:
        """The reply to a client write, once its txn is applied here: answer it
        in the op's shape, then go on with the connection's backlog."""
        srv = self.server
        srv.outstanding -= 1
        conn.inflight -= 1
        if conn.closed:
            return
        err, resp = res.err, res.response
        if op >= _KEEPER_MIN:  # ClickHouse Keeper's writes answer in their own shape
            err, resp = keeper_reply(op, res)
        elif op == OP_RECONFIG and err == 0 and resp is not None:
            resp = GetDataResponse(txn.body.data, resp.stat)  # the new configuration
        srv._reply(conn, xid, op, err, resp, t0)
        if op == OP_CLOSE_SESSION:
            conn.close_after_flush()
            return
        srv.pump(conn)

    def sync(self, conn, s, xid: int, path: str, t0: int) -> None:
        """``sync``: answer once every write committed before it is applied here.
        On a standalone server every committed write already is."""
        self.server._reply(conn, xid, OP_SYNC, Err.OK, PathResponse(path), t0)

    def connection_closed(self, conn, s) -> None:
        """``conn`` (of session ``s``, or None) closed. The client learns nothing more
        on it; should the session come back here, its new writes must not queue
        behind these."""
        if s is None or not self.pending_writes:
            return
        q = self.pending_writes.get(s.id)
        if q:
            kept = deque(e for e in q if e[1] is not conn)
            self.server.outstanding -= len(q) - len(kept)
            if kept:
                self.pending_writes[s.id] = kept
            else:
                del self.pending_writes[s.id]

    # ------------------------------------------------------------ hooks
    tracks_sessions = True  # this server expires sessions (an ensemble: the leader)
    quorum = False  # txns commit at a quorum: `account` counts them as Zab does
    # session id -> timeout of the sessions touched here since the last relay to
    # whoever expires them (core.handle_request records into it); None: this server
    touched: dict[int, int] | None = None

    def housekeeping(self) -> bool:
        """The stage's part of a tick: True if this server expires sessions and
        removes containers / TTL nodes now (core.tick)."""
        return True

    def admit(self, conn, req, read_only: bool) -> bool:
        """May this server take a client's ConnectRequest now? (else it answered;
        ``read_only``: the client can live with a read-only server)"""
        return True

    def reopen(self, conn, s) -> None:
        """A client re-attached session ``s`` on ``conn``: answer it."""
        self.server._reopened(conn, s)

    def close_session(self, s) -> None:
        """End session ``s`` (it expired): close its connection, write its closeSession."""
        srv = self.server
        s.closing = True
        conn = s.conn
        if conn is not None:
            s.conn = None
            conn.session = None
            conn.abort()
        if srv.committer.failure is not None:
            # no txn while the log is broken: a durable session's ephemerals stay
            # until it expires again after the restart
            srv.sessions.remove(s.id)
            return
        self.internal(OP_CLOSE_SESSION, None, s.id)

    def internal(self, op: int, body, session_id: int) -> None:
        """A write the server makes itself (session expiry, container cleanup)."""
        raise NotImplementedError

    def write(self, conn: ClientConnection, s: Session, xid: int, op: int, body,
              t0: int) -> None:
        """A client's write (``conn``'s session ``s``), after core's prep stage."""
        raise NotImplementedError

    def start_session(self, conn: ClientConnection, s: Session, timeout: int) -> None:
        """A new session ``s`` on ``conn``: commit its createSession, then answer."""
        raise NotImplementedError

    def account(self, created_ms: int) -> None:
        """Metrics of a committed txn (made at ``created_ms``, wall clock), when
        ``quorum`` (else ``apply`` counts its propagation latency itself)."""
        self.server.metrics.propagation_latency.add(self.server.wall_ms() - created_ms)

    def session_closed(self, session_id: int) -> None:
        """A closeSession was applied here."""

    def moved_away(self, q: deque, session_id: int) -> None:
        """A write of ours was refused SESSIONMOVED (the ensemble's fencing)."""
        raise NotImplementedError


@mypyc_attr(allow_interpreted_subclasses=True)  # read-only and local-session stages
class LocalCommit(CommitStage):
    """Standalone: prepare here, group-commit to the local log, then ``apply``.

    Reads ``server.tree``, ``server.committer`` and ``server.next_zxid`` on every
    call (a restore replaces the tree and renumbers)."""

    __slots__ = ()

    def runs_ahead(self, op: int) -> bool:
        return op in RUN_AHEAD_OPS and self.server.committer.failure is None

    def write(self, conn: ClientConnection, s: Session, xid: int, op: int, body,
              t0: int) -> None:
        srv = self.server
        committer = srv.committer
        if committer.failure is not None:
            if op == OP_CLOSE_SESSION:
                # see ZabbyServer.close_session: no txn while the log is broken
                srv.sessions.remove(s.id)
                s.closing = True
                srv._reply(conn, xid, op, Err.OK, None, t0)
                conn.close_after_flush()
                return
            srv._reply(conn, xid, op, Err.NOTREADONLY, None, t0)
            return
        if op == OP_RECONFIG:
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
                                   RequestContext(s.id, xid, zxid, srv.wall_ms(), conn.auth))
        conn.inflight += 1
        srv.outstanding += 1
        if op == OP_CLOSE_SESSION:
            s.closing = True
        q = self.pending_writes.get(s.id)
        if q is None:
            q = self.pending_writes[s.id] = deque()
        q.append((xid, conn, xid, op, t0))
        committer.submit(txn, partial(self.apply, txn), self.failed)

    def start_session(self, conn, s, timeout: int) -> None:
        srv = self.server
        if srv.committer.failure is not None:
            # The log is broken: a session local to this server, with no txn and so
            # no zxid a client could see and then miss after a restart. Reads work;
            # writes (ephemerals included) are refused.
            srv._session_ready(conn, s, pump=False)
            return
        txn = self.prepare(Op.CREATE_SESSION, timeout, s.id, 0, conn.auth)
        self.pending_connects[s.id] = conn
        srv.committer.submit(txn, partial(self.apply, txn), self.failed)

    def internal(self, op: int, body, session_id: int) -> None:
        txn = self.prepare(op, body, session_id, 0, [Id("super", "")])
        self.server.committer.submit(txn, partial(self.apply, txn), self.failed)

    # ------------------------------------------------------------ helpers
    def prepare(self, op: int, body, session_id: int, cxid: int, auth):
        srv = self.server
        zxid = srv.next_zxid
        srv.next_zxid = zxid + 1
        return srv.tree.prepare(op, body, RequestContext(session_id, cxid, zxid, srv.wall_ms(), auth))

    def error_txn(self, err: int, session_id: int, cxid: int) -> Txn:
        srv = self.server
        zxid = srv.next_zxid
        srv.next_zxid = zxid + 1
        return Txn(TxnHeader(session_id, cxid, zxid, srv.wall_ms(), Op.ERROR), ErrorTxn(err))

    def failed(self, why: str) -> None:
        """The log failed: this txn, and every one submitted after it, will never
        be applied (the committer fails them all, in order)."""
        srv = self.server
        # nothing prepared after the failure point will be applied
        srv.tree.discard_pending()
        srv.next_zxid = srv.tree.last_zxid + 1
        # the outcome of an in-flight write is unknown to its client, exactly as
        # when a connection breaks: it reconnects and finds writes refused
        conns = list(self.pending_connects.values())
        self.pending_connects.clear()
        for q in self.pending_writes.values():
            conns.extend(e[1] for e in q)
            srv.outstanding -= len(q)
        self.pending_writes.clear()
        for conn in conns:
            if not conn.closed:
                conn.abort()


# ------------------------------------------------------------------ Zab
# Kinds of quorum-port messages (the first byte; ensemble.py carries them).
K_ZAB: Final = 0
K_FORWARD: Final = 1
K_TOUCH: Final = 2
K_SYNC: Final = 3
K_SYNC_OK: Final = 4
K_DROPPED: Final = 5
# a member re-attaches a client's session (reconnect): the leader makes it the owner
# and answers whether the session is still valid (ZooKeeper's REVALIDATE)
K_OWNER: Final = 16
K_OWNER_OK: Final = 17
_INT: Final = struct.Struct(">i")


class Touches(Record):
    FIELDS = (("sessions", vector("long")), ("timeouts", vector("int")))


class SyncMsg(Record):
    """sync: the request names the session and xid; the answer adds the leader's
    commit point, which the learner applies before it answers the client."""

    FIELDS = (("session", "long"), ("xid", "int"), ("zxid", "long"))


# writes the leader does not check the session of (see ZabCommit.fence)
_UNCHECKED = frozenset({OP_CLOSE_SESSION, OP_DELETE_CONTAINER, OP_RECONFIG})


def _encode_body(body) -> bytes:
    out = bytearray()
    body.encode(out)
    return bytes(out)


@mypyc_attr(allow_interpreted_subclasses=True)  # read-only and local-session stages
class ZabCommit(CommitStage):
    """Ensemble member: a write goes through Zab (ProposalRequestProcessor on the
    leader, FollowerRequestProcessor on a learner). The leader fences the session
    (SESSIONMOVED / SESSIONEXPIRED), prepares the txn against its tree plus pending
    changes and proposes it; a learner forwards the request to the leader. The
    answer comes once the txn commits and is applied here
    (``EnsembleServer._apply_committed``), matched by (session, cxid) against the
    head of ``pending_writes``, so a session's replies keep their order.

    Uses the server's ``peer`` (propose, numbering), ``role`` / ``leader_id``,
    ``_send`` (the quorum mesh) and ``_drain_soon`` (one consensus step per loop
    turn)."""

    __slots__ = ("ens", "session_owner", "pending_syncs", "touched")

    def __init__(self, server: EnsembleServer) -> None:
        super().__init__(server)
        self.ens = server  # ``server``, typed as what it is: the compiled calls are direct
        # touches of sessions here, relayed to the leader every tick (the leader
        # expires sessions: EnsembleServer._relay_touches)
        self.touched: dict[int, int] | None = {}
        # leader: session id -> the member that last (re)validated it (see fence)
        self.session_owner: dict[int, int] = {}
        # (session, xid) -> (conn, path, t0[, zxid to have applied before answering])
        self.pending_syncs: dict[tuple[int, int], tuple] = {}

    # ------------------------------------------------------------ apply hooks
    quorum = True

    @property
    def tracks_sessions(self) -> bool:  # type: ignore[override]
        return self.ens.role == "leading"

    def account(self, created_ms: int) -> None:
        srv = self.ens
        if srv.serving:  # not while catching up: those txns are old
            m = srv.metrics
            age = srv.wall_ms() - created_ms
            m.propagation_latency.add(age)
            if srv.role == "leading":
                # committed once a quorum acked: the leader applies it in the same step
                m.commit_count += 1
                m.quorum_ack_latency.add(age)
            else:
                m.learner_commit_received_count += 1

    def session_closed(self, session_id: int) -> None:
        if self.touched is not None:
            self.touched.pop(session_id, None)
        self.session_owner.pop(session_id, None)

    # ------------------------------------------------------------ session hooks
    def housekeeping(self) -> bool:
        srv = self.ens
        return srv.role == "leading" and srv.serving

    def admit(self, conn, req, read_only: bool) -> bool:
        srv = self.ens
        if not srv.serving:
            # "ZooKeeperServer not running": the client tries another member
            conn.abort()
            return False
        sid = req.sessionId
        if sid != 0 and srv.sessions.get(sid) is None:
            if sid in srv.tree.sessions:
                # a session created through another member: we know it from its txn
                srv.sessions.add(sid, srv.tree.sessions[sid], srv.monotonic_ms())
            elif srv.role != "leading" and hmac.compare_digest(
                    bytes(req.passwd or b""), session_password(sid)):
                # Not (yet) here: its createSession may be committed and still on its
                # way to us. As ZooKeeper's learner revalidates with the leader, take
                # it provisionally; `reopen` asks the leader (K_OWNER), which knows
                # every session, and only its "no" makes it expired (on_owner_ok).
                timeout = min(max(req.timeOut, srv.min_session_timeout),
                              srv.max_session_timeout)
                srv.sessions.add(sid, timeout, srv.monotonic_ms())
        return True

    def close_session(self, s) -> None:
        # the leader expires it; its connection (on whichever member) closes when
        # the closeSession is applied there
        s.closing = True
        self.internal(OP_CLOSE_SESSION, None, s.id)

    def reopen(self, conn, s) -> None:
        """A client re-attached session `s` here. The leader records us as its owner
        before the client hears it is connected (so nothing it sends afterwards on
        an older connection elsewhere can get in first); a learner waits for that."""
        srv = self.ens
        if srv.role == "leading":
            self.session_owner[s.id] = srv.my_id
            srv._reopened(conn, s)
        else:
            conn.inflight += 1
            self.pending_connects[s.id] = conn
            if srv.leader_id is None or not srv._send(
                    srv.leader_id, K_OWNER, Touches([s.id], [s.timeout])):
                self.abandon(s.id)

    def on_owner(self, frm: int, t: Touches) -> None:
        """Leader: member ``frm`` re-attached these sessions: it owns them now."""
        srv = self.ens
        if srv.role != "leading" or not srv.serving:  # not "expired": try elsewhere
            for sid in t.sessions or ():
                srv._send(frm, K_DROPPED, SyncMsg(sid, 0, 0))
            return
        now = srv.monotonic_ms()
        valid: list[int] = []
        for sid, timeout in zip(t.sessions or (), t.timeouts or (), strict=False):
            s = srv.sessions.get(sid)
            if s is None or s.closing:
                valid.append(0)
                continue
            srv.sessions.touch(s, now, timeout)  # the newly agreed timeout
            self.session_owner[sid] = frm
            valid.append(1)
        srv._send(frm, K_OWNER_OK, Touches(list(t.sessions or ()), valid))

    def on_owner_ok(self, t: Touches) -> None:
        """Learner: the leader's answer to ``reopen``."""
        srv = self.ens
        for sid, valid in zip(t.sessions or (), t.timeouts or (), strict=False):
            conn = self.pending_connects.pop(sid, None)
            if conn is None or conn.closed:
                continue
            s = conn.session
            if not valid or s is None:
                conn.inflight -= 1
                log.info("the leader says session 0x%x is no longer valid",
                         sid & (2**64 - 1))
                if sid not in srv.tree.sessions:  # taken provisionally (admit)
                    srv.sessions.remove(sid)
                conn.send(srv.connect_response(conn, ConnectResponse(0, 0, 0, bytes(16))))
                conn.close_after_flush()
                continue
            srv._session_ready(conn, s)

    def write_done(self, conn: ClientConnection, xid: int, op: int, res: ApplyResult,
                   txn: Txn, t0: int) -> None:
        """A write's reply keeps the session's order: a sync the client sent before
        it is answered first. Its no-op barrier was proposed before this write (the
        leader takes a member's K_SYNC and K_FORWARD in the order sent), so it is
        applied here already; but the leader's K_SYNC_OK leaves when it applies the
        barrier, which may be after it sent this write's COMMIT (both committed in
        one step), so it may not have come yet."""
        # (inflight counts this write and every sync of the connection still waiting:
        # a connection with nothing else in flight costs no scan)
        if self.pending_syncs and conn.inflight > 1:
            sid = txn.header.clientId
            earlier = [k for k, v in self.pending_syncs.items()
                       if k[0] == sid and v[0] is conn and k[1] < xid]
            srv = self.ens
            for key in sorted(earlier, key=lambda k: k[1]):
                _, path, t1, *_ = self.pending_syncs.pop(key)
                conn.inflight -= 1
                if not conn.closed:
                    srv._reply(conn, key[1], OP_SYNC, Err.OK, PathResponse(path), t1)
        super().write_done(conn, xid, op, res, txn, t0)

    # ------------------------------------------------------------ entry points
    def runs_ahead(self, op: int) -> bool:
        return op in RUN_AHEAD_OPS  # (a reconfig may be answered at once)

    def write(self, conn: ClientConnection, s: Session, xid: int, op: int, body,
              t0: int) -> None:
        srv = self.ens
        if op == OP_RECONFIG and body is MALFORMED:
            srv._reply(conn, xid, op, Err.MARSHALLINGERROR, None, t0)
            return
        if op == OP_CLOSE_SESSION:
            s.closing = True
        conn.inflight += 1
        srv.outstanding += 1
        q = self.pending_writes.get(s.id)
        if q is None:
            q = self.pending_writes[s.id] = deque()
        q.append((xid, conn, xid, op, t0))
        self.route(s.id, xid, op, None if body is MALFORMED else body, conn.auth)

    def start_session(self, conn, s, timeout: int) -> None:
        self.pending_connects[s.id] = conn
        self.route(s.id, 0, OP_CREATE_SESSION, timeout, conn.auth)

    def internal(self, op: int, body, session_id: int) -> None:
        if self.ens.role == "leading":
            self.lead_write(session_id, 0, op, body, [Id("super", "")])

    # ------------------------------------------------------------ routing
    def route(self, session_id: int, cxid: int, op: int, body, auth) -> None:
        """Leader: fence, prepare and propose. Learner: forward to the leader."""
        srv = self.ens
        if srv.role == "leading":
            if not self.fence(session_id, cxid, op, body, srv.my_id):
                self.lead_write(session_id, cxid, op, body, auth)
            return
        if op == OP_CREATE_SESSION:
            raw = _INT.pack(body)
        elif body is None:
            raw = None
        else:
            raw = body.to_bytes() if hasattr(body, "to_bytes") else _encode_body(body)
        if srv.leader_id is None or not srv._send(
                srv.leader_id, K_FORWARD, Forwarded(session_id, cxid, op, list(auth), raw)):
            log.info("no link to the leader; dropping the connection of session 0x%x",
                     session_id & (2**64 - 1))
            self.abandon(session_id)
            return
        srv.peer.want_peer_acks()

    def on_forward(self, frm: int, f: Forwarded) -> None:
        """Leader: a learner's client write (or createSession)."""
        srv = self.ens
        if srv.role != "leading" or not srv.serving:
            log.info("dropped a request forwarded by %d: not leading", frm)
            srv._send(frm, K_DROPPED, SyncMsg(f.session, f.cxid, 0))
            return
        if f.op == OP_CREATE_SESSION:
            body = _INT.unpack(f.body)[0] if f.body and len(f.body) == 4 else None
        elif f.body is None:
            body = None
        else:
            body_type = REQUEST_BODY.get(f.op)
            try:
                body = body_type.decode(f.body) if body_type is not None else None
            except ProtocolError:
                body = None
        try:
            ok = self.fence(f.session, f.cxid, f.op, body, frm) or self.lead_write(
                f.session, f.cxid, f.op, body, f.auth or [])
        except Exception:
            log.exception("failed to process a request forwarded by server %d", frm)
            ok = False
        if not ok:
            # the learner's client would otherwise wait forever: it reconnects instead
            srv._send(frm, K_DROPPED, SyncMsg(f.session, f.cxid, 0))

    def lead_write(self, session_id: int, cxid: int, op: int, body, auth) -> bool:
        """Leader: prepare against the tree plus pending changes, then propose."""
        srv = self.ens
        zxid = self.next_zxid()
        ctx = RequestContext(session_id, cxid, zxid, srv.wall_ms(), auth)
        if op == OP_RECONFIG:
            txn = srv._prepare_reconfig(body, ctx)
        elif op == OP_CREATE_SESSION:
            txn = srv.tree.prepare(op, body, ctx)
            if body is not None:
                srv.sessions.add(session_id, body, srv.monotonic_ms())
        else:
            txn = srv.tree.prepare(op, body, ctx)
        payload = txn.encode()
        try:
            got = srv.peer.propose(payload)
        except NotLeader:
            srv.tree.discard_pending()
            self.abandon(session_id)
            return False
        m = srv.metrics
        m.proposal_count += 1
        m.record_proposal_size(len(payload))
        if got != zxid:  # pragma: no cover - the peer and we agree on numbering
            raise AssertionError(f"proposed 0x{got:x}, prepared 0x{zxid:x}")
        srv._drain_soon()
        return True

    def next_zxid(self) -> int:
        """The zxid the peer's next proposal gets (as Peer.propose numbers them)."""
        peer = self.ens.peer
        last, epoch = peer.last_zxid, peer.epoch
        counter = zxid_counter(last) if zxid_epoch(last) == epoch else 0
        return make_zxid(epoch, counter + 1)

    def abandon(self, session_id: int) -> None:
        """A request of this session will never be answered (no leader, dropped):
        close the connection waiting for it; the client reconnects."""
        conn = self.pending_connects.pop(session_id, None)
        q = self.pending_writes.pop(session_id, None)
        if q:
            conn = q[0][1]
        if conn is not None:
            conn.abort()

    def drop_pending(self) -> None:
        """This member stopped serving or leading: outstanding requests have an
        unknown outcome (their connections are closed by the caller)."""
        self.pending_writes.clear()
        for conn in self.pending_connects.values():
            conn.abort()
        self.pending_connects.clear()

    # ------------------------------------------------------------ session owners
    # ZooKeeper's SESSIONMOVED fencing. The leader records, for each session, the member
    # that created it or last took it over (a client reconnecting there: K_OWNER; the
    # member answers the client once the leader has said K_OWNER_OK, as ZooKeeper's
    # REVALIDATE, so nothing sent afterwards elsewhere gets in first). A write
    # forwarded by any other member -- a connection the session has left and that its
    # member does not know to be stale -- becomes an error txn SESSIONMOVED; it closes the
    # connection without a reply (FinalRequestProcessor's sendCloseSession), so the
    # client reconnects and nothing is applied. As ZooKeeper's checkSession it also
    # answers SESSIONEXPIRED to writes of a session the leader no longer tracks or is
    # closing. createSession, closeSession and reconfig are not checked (nor are they in
    # ZooKeeper: an expiry's close has no owner; reconfig is checked after its own
    # checks). On one member a re-opened session's older connection is simply closed
    # (core.handle_connect).
    def session_error(self, session_id: int, origin: int) -> int:
        """ZooKeeper's checkSession on the leader: 0, SESSIONEXPIRED or SESSIONMOVED."""
        srv = self.ens
        s = srv.sessions.get(session_id)
        if s is None:
            return 0 if srv._foreign_local_session(session_id) else Err.SESSIONEXPIRED
        if s.closing:
            return Err.SESSIONEXPIRED
        owner = self.session_owner.setdefault(session_id, origin)
        return 0 if owner == origin else Err.SESSIONMOVED

    def fence(self, session_id: int, cxid: int, op: int, body, origin: int) -> bool:
        """Leader: check a client write's session; True if it was answered with an
        error txn instead of being prepared."""
        if op == OP_CREATE_SESSION:
            self.session_owner[session_id] = origin
            return False
        if (op in _UNCHECKED or body is None
                or op == OP_MULTI and not getattr(body, "ops", None)):
            return False
        err = self.session_error(session_id, origin)
        if not err:
            return False
        if err == Err.SESSIONMOVED:
            log.info("session 0x%x moved away from server %d: refusing its write",
                     session_id & (2**64 - 1), origin)
        srv = self.ens
        zxid = self.next_zxid()
        txn = Txn(TxnHeader(session_id, cxid, zxid, srv.wall_ms(), Op.ERROR), ErrorTxn(err))
        payload = txn.encode()
        try:
            srv.peer.propose(payload)
        except NotLeader:
            self.abandon(session_id)
            return True
        srv.metrics.proposal_count += 1
        srv.metrics.record_proposal_size(len(payload))
        srv._drain_soon()
        return True

    def moved_away(self, q: deque, session_id: int) -> None:
        """A write of ours was refused SESSIONMOVED: close its connection, no reply."""
        _, conn, _xid, _op, _t0 = q.popleft()
        if not q:
            del self.pending_writes[session_id]
        srv = self.ens
        srv.outstanding -= 1
        conn.inflight -= 1
        if not conn.closed:
            conn.close_after_flush()

    # ------------------------------------------------------------ sync
    # A member answers sync once it has applied everything the leader had committed
    # when the sync reached it. The leader commits a no-op txn first (barrier), so a
    # deposed leader that has not noticed yet answers nothing stale.
    def sync(self, conn, s, xid: int, path: str, t0: int) -> None:
        srv = self.ens
        conn.inflight += 1
        key = (s.id, xid)
        self.pending_syncs[key] = (conn, path, t0)
        if srv.role == "leading":
            self.barrier(lambda z: self.sync_point(key, z), lambda: self.sync_failed(key))
        elif srv.leader_id is None or not srv._send(
                srv.leader_id, K_SYNC, SyncMsg(s.id, xid, 0)):
            self.sync_failed(key)

    def barrier(self, done, failed) -> None:
        """Leader: commit a no-op txn, then call done(its zxid).

        A deposed leader that has not noticed yet cannot commit anything, so a
        sync answered through this barrier is never stale (ZooKeeper's sync on
        the leader skips the quorum round and can be)."""
        srv = self.ens
        zxid = self.next_zxid()
        txn = Txn(TxnHeader(0, 0, zxid, srv.wall_ms(), Op.ERROR), ErrorTxn(Err.OK))
        try:
            got = srv.peer.propose(txn.encode())
        except NotLeader:
            failed()
            return
        if got != zxid:  # pragma: no cover - the peer and we agree on numbering
            raise AssertionError(f"proposed 0x{got:x}, prepared 0x{zxid:x}")
        srv.metrics.proposal_count += 1  # committed (commit_count) like any txn
        self.sync_barriers.setdefault(zxid, []).append(done)
        srv._drain()

    def sync_point(self, key: tuple[int, int], zxid: int) -> None:
        """The leader's commit point for this sync: answer once it is applied here."""
        entry = self.pending_syncs.get(key)
        if entry is not None:
            self.pending_syncs[key] = (*entry[:3], zxid)
            self.answer_syncs()

    def sync_failed(self, key: tuple[int, int]) -> None:
        entry = self.pending_syncs.pop(key, None)
        if entry is not None:
            entry[0].abort()  # the client reconnects and syncs elsewhere

    def on_sync_request(self, frm: int, m: SyncMsg) -> None:
        """Leader: a learner's client synced."""
        srv = self.ens
        if srv.role != "leading":
            srv._send(frm, K_DROPPED, SyncMsg(m.session, m.xid, 0))
            return
        self.barrier(
            lambda z: srv._send(frm, K_SYNC_OK, SyncMsg(m.session, m.xid, z)),
            lambda: srv._send(frm, K_DROPPED, SyncMsg(m.session, m.xid, 0)))

    def on_sync_ok(self, m: SyncMsg) -> None:
        """Learner: the leader's answer, with its commit point."""
        if (m.session, m.xid) in self.pending_syncs:
            self.sync_point((m.session, m.xid), m.zxid)

    def answer_syncs(self) -> None:
        srv = self.ens
        applied = srv.tree.last_zxid
        done = [k for k, v in self.pending_syncs.items() if len(v) == 4 and v[3] <= applied]
        for key in done:
            conn, path, t0, _ = self.pending_syncs.pop(key)
            conn.inflight -= 1
            if not conn.closed:
                srv._reply(conn, key[1], OP_SYNC, Err.OK, PathResponse(path), t0)
                srv.pump(conn)
