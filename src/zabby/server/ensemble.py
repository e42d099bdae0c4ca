"""The ensemble runtime: drives `consensus.Peer` with the network, the log and the tree.

Every member keeps the whole tree and answers reads from it. Writes (and
session creation/closing) go to the leader: a follower or observer forwards
the request; the leader prepares it against its tree plus pending changes and
proposes the txn; once a quorum has it on disk it is committed, and every
member applies committed txns in zxid order. The member holding the client's
session answers when it applies the txn (matching the session's oldest
outstanding write by cxid), so replies keep the session's FIFO order and a
client always reads its own writes.

Sessions are global: the leader tracks expiry from the touches each member
relays every tick and proposes closeSession when one lapses. A client may
reconnect to any member that has applied its session; a member refuses a
client whose last seen zxid is ahead of its own, and otherwise asks the leader,
which records it as the session's owner: a write forwarded for the session by
any other member is refused SESSIONMOVED (see "session owners" in pipeline.py:
routing, fencing and the queue of outstanding writes are the commit stage's,
`pipeline.ZabCommit`). With
localSessionsEnabled new sessions are local to their member (local_sessions.py).

`sync` (pipeline.ZabCommit.sync) from a follower asks the leader, which answers on the same link after
every commit it has sent so far; when the answer arrives those commits are
applied, so a read after sync sees every write acknowledged before the sync.

Messages between members ride the peer mesh (peers.py): Zab votes on the
election ports, everything else on the quorum ports, with a one-byte kind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct
from bisect import bisect_right
from collections.abc import Callable
from functools import partial
from typing import Final

from mypy_extensions import mypyc_attr

from ..consensus import Config, Limits, Peer
from ..consensus import messages as zmsg
from ..storage import TxnLog
from ..storage.fs import default_fs
from ..storage.snapshot import snapshot_bytes, snapshot_from_bytes, write_snapshot
from ..tree import DataTree, ErrorTxn, RequestContext, Txn, TxnHeader
from ..tree.acl import check_perm
from ..tree.txn import SetDataTxn
from ..wire import Err, Op, Perm
from ..wire.jute import ProtocolError, Record
from .clock import Clock
from .config import ServerConfig
from .core import FourLetterHandler, ZabbyServer
from .durability import CommitQueue
from .dynconfig import (
    Membership,
    ParseCrash,
    ReconfigError,
    dynamic_file_lines,
    parse_membership,
    parse_server_entries,
    quorum_system,
    write_dynamic_config,
)
from .peers import Lease, PeerMesh
from .pipeline import (
    K_DROPPED,
    K_FORWARD,
    K_OWNER,
    K_OWNER_OK,
    K_SYNC,
    K_SYNC_OK,
    K_TOUCH,
    K_ZAB,
    Forwarded,
    SyncMsg,
    Touches,
    ZabCommit,
)
from .quorum_auth import watch_cert_files
from .security import Security

log = logging.getLogger("zabby.server.ensemble")

_KIND: Final = struct.Struct(">B")
_INT: Final = struct.Struct(">i")
# a txn payload starts with its TxnHeader: clientId (8), cxid (4), zxid (8), time (8)...
_TIME = struct.Struct(">q")
_HDR_TIME_AT = 20
_HDR_TIME_END = _HDR_TIME_AT + 8
_HDR_TYPE_AT: Final = _HDR_TIME_END
_CONFIG_NODE: Final = "/zookeeper/config"


def _config_of(m: Membership) -> Config:
    groups = tuple((g, frozenset(ids)) for g, ids in sorted(m.groups.items()))
    return Config(m.version, m.voters, m.observers, dynamic_file_lines(m).encode(), groups,
                  tuple(sorted(m.weights.items())))


def config_of_entry(payload: bytes) -> Config | None:
    """The configuration a log entry installs: a reconfig txn's, else None."""
    if len(payload) < _HDR_TYPE_AT + 4 or _INT.unpack_from(payload, _HDR_TYPE_AT)[0] != Op.RECONFIG:
        return None
    try:
        txn = Txn.decode(payload)
    except (ProtocolError, ValueError):
        return None
    m = parse_membership(txn.body.data or b"")
    return None if m is None else _config_of(m.with_version(txn.header.zxid))


def config_of_data(version: int, data: bytes) -> Config | None:
    m = parse_membership(data)
    return None if m is None else _config_of(m.with_version(version))
MODES = {"leading": "leader", "following": "follower", "observing": "observer",
         "looking": "looking"}


# ------------------------------------------------------------------ durable view
class EpochFile:
    """acceptedEpoch / currentEpoch (and the leader that set acceptedEpoch), fsynced."""

    def __init__(self, data_dir: str, fs=None) -> None:
        self.fs = default_fs(fs)
        self.path = os.path.join(data_dir, "epochs")
        self.accepted = self.current = 0
        self.leader = -1
        try:
            a, c, leader = self.fs.read_file(self.path).decode().split()
            self.accepted, self.current, self.leader = int(a), int(c), int(leader)
        except FileNotFoundError:
            pass

    def save(self, accepted: int, current: int, leader: int) -> None:
        fs = self.fs
        tmp = self.path + ".tmp"
        data = f"{accepted} {current} {leader}\n".encode()
        h = fs.open(tmp, create=True)
        try:
            fs.write(h, data, 0)
            fs.truncate(h, len(data))
            fs.fsync(h)
        finally:
            fs.close(h)
        fs.rename(tmp, self.path)
        fs.fsync_dir(os.path.dirname(self.path) or ".")
        self.accepted, self.current, self.leader = accepted, current, leader


class LogView:
    """consensus.LogReader over this member's log, tree and epoch file.

    Every entry appended since start (or since the last truncation or snapshot
    install) is also kept in memory, up to a bound: commits, DIFF syncs and
    `has_entry` are served from there, written or not, and only older entries
    are read back from the log files."""

    MAX_ENTRIES = 200_000
    MAX_BYTES = 256 << 20

    def __init__(self, txn_log: TxnLog, epochs: EpochFile, server: EnsembleServer,
                 log_last_zxid: int) -> None:
        self.log = txn_log
        self.epochs = epochs
        self.server = server
        self._zxids: list[int] = []
        self._payloads: list[bytes] = []
        self._bytes = 0
        # the tree holds only committed state (the snapshot); the log may go further
        self.snap_zxid = server.tree.last_zxid
        self.last_zxid = max(log_last_zxid, self.snap_zxid)

    @property
    def accepted_epoch(self) -> int:
        return self.epochs.accepted

    @property
    def current_epoch(self) -> int:
        return self.epochs.current

    @property
    def accepted_leader(self) -> int:
        return self.epochs.leader

    def append(self, zxid: int, payload: bytes) -> None:
        self._zxids.append(zxid)
        self._payloads.append(payload)
        self._bytes += len(payload)
        self.last_zxid = zxid
        if len(self._zxids) > self.MAX_ENTRIES or self._bytes > self.MAX_BYTES:
            half = len(self._zxids) // 2
            self._bytes -= sum(len(p) for p in self._payloads[:half])
            del self._zxids[:half], self._payloads[:half]

    def truncate_after(self, zxid: int) -> None:
        i = bisect_right(self._zxids, zxid)
        self._bytes -= sum(len(p) for p in self._payloads[i:])
        del self._zxids[i:], self._payloads[i:]
        self.last_zxid = zxid

    def reset(self, zxid: int) -> None:
        self._zxids, self._payloads, self._bytes = [], [], 0
        self.snap_zxid = self.last_zxid = zxid

    def entries_after(self, zxid: int):
        zx, pl = self._zxids, self._payloads
        first = zx[0] if zx else self.last_zxid + 1
        if zxid < first - 1:
            # older than the cache: from the files, up to where the cache starts
            for z, payload in self.log.iter_entries(zxid):
                if z >= first:
                    break
                yield z, payload
        i = bisect_right(zx, zxid)
        yield from zip(zx[i:], pl[i:], strict=True)  # slices: appends may follow

    def has_entry(self, zxid: int) -> bool:
        if zxid == self.snap_zxid:
            return True
        zx = self._zxids
        if zx and zxid >= zx[0]:
            i = bisect_right(zx, zxid)
            return i > 0 and zx[i - 1] == zxid
        for z, _ in self.log.iter_entries(zxid - 1):
            return z == zxid
        return False

    def snapshot(self) -> tuple[int, bytes]:
        tree = self.server.tree
        return tree.last_zxid, snapshot_bytes(tree)


# ------------------------------------------------------------------ the server
_EAGER_COMMITS = 2  # see _drain
# ZABBY_QUIET_ACKS=0: a follower's loop always wakes when its log batch is durable
_QUIET_ACKS: Final = os.environ.get("ZABBY_QUIET_ACKS", "1").strip() != "0"



def _peer_acked_if_sent(peer: Peer, sid: int, zxid: int, went: bool) -> None:
    if went:
        peer.writer_peer_acked(sid, zxid)


@mypyc_attr(allow_interpreted_subclasses=True)  # the read-only and local-session members
class EnsembleServer(ZabbyServer):
    # writes go through Zab: the leader prepares and proposes, a learner forwards
    commit_stage_class = ZabCommit

    def __init__(self, config: ServerConfig, *, tree: DataTree, txn_log: TxnLog,
                 committer: CommitQueue, my_id: int, log_last_zxid: int,
                 security: Security | None = None,
                 four_letter_handler: FourLetterHandler | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(config, server_id=my_id, committer=committer, tree=tree,
                         security=security, four_letter_handler=four_letter_handler,
                         clock=clock)
        # the Zab commit stage; `commit_stage` is it too, except in read-only mode
        # (readonly.py puts its own stage in front while the member has no quorum)
        zab = self.commit_stage
        assert isinstance(zab, ZabCommit)
        self.zab: ZabCommit = zab
        self.my_id = my_id
        self.txn_log = txn_log
        self.epochs = EpochFile(config.data_dir, txn_log.fs)
        self.view = LogView(txn_log, self.epochs, self, log_last_zxid)
        self.membership = Membership(dict(config.servers), config.config_version,
                                     config.static_client_ids, dict(config.groups),
                                     dict(config.weights))
        initial = _config_of(self.membership)
        voters, observers = self.membership.voters, self.membership.observers
        me = config.servers.get(my_id)
        # the peer ticks ten times per tickTime, so elections take a fraction of a tick
        self.subticks = max(1, config.tick_time // 100)
        k = self.subticks
        limits = Limits(init_limit=config.init_limit * k, sync_limit=config.sync_limit * k,
                        election_timeout=2)
        self.peer = Peer(my_id, voters, observers, self.view,
                         rng=random.Random(my_id * 7919 + self.clock.time_ns()), tick_limits=limits,
                         config_version=self.membership.version,
                         config_data=dynamic_file_lines(self.membership).encode(),
                         config_of_entry=config_of_entry, config_of_data=config_of_data,
                         observer_type=me is not None and me.is_observer,
                         config_groups=initial.groups, config_weights=initial.weights,
                         # ZooKeeper versions the initial configuration only when
                         # reconfig is enabled (version=0 otherwise)
                         version_initial_config=config.reconfig_enabled)
        self._show_config()
        self.role = "looking"
        self.leader_id: int | None = None
        self.serving = False
        self.on_serving: Callable[[], None] | None = None  # called when this member starts serving
        # TLS / SASL between members (quorum_auth); None: plaintext, anyone may dial
        self.quorum_security = security.quorum if security is not None else None
        # the members whose quorum link closed and has not come back (Peer.unreachable)
        self._links_lost: set[int] = set()
        self.quorum_mesh = PeerMesh(
            my_id, {s: (spec.host, spec.quorum_port) for s, spec in config.servers.items()},
            self._on_quorum_message, on_link_change=self._on_link_change,
            after_read=self._after_peer_read, security=self.quorum_security, name="quorum")
        self.election_mesh = PeerMesh(
            my_id, {s: (spec.host, spec.election_port) for s, spec in config.servers.items()},
            self._on_zab_message, security=self.quorum_security, name="election")
        self.quorum_mesh.alternates = {s: [(h, q) for h, q, _ in spec.more]
                                       for s, spec in config.servers.items() if spec.more}
        self.election_mesh.alternates = {s: [(h, e) for h, _, e in spec.more]
                                         for s, spec in config.servers.items() if spec.more}
        if config.reconfig_enabled:
            # servers outside the configuration may link (a joiner, before the reconfig
            # that adds it), and we dial every member (one that does not know us yet
            # would never dial us)
            for mesh in (self.quorum_mesh, self.election_mesh):
                mesh.accept_unknown = True
                mesh.dial_all = True
        self._cert_watch: asyncio.Task | None = None
        # session id -> timeout, touched here since the last relay to the leader
        # (recorded by core.handle_request / handle_connect: the stage's `touched`)
        touched = self.zab.touched
        assert touched is not None  # (a Zab stage always relays touches)
        self.touched: dict[int, int] = touched
        self._subtick_task: asyncio.Task | None = None
        self._draining = False
        self._drain_scheduled = False
        self._durable_upto: int | None = None  # see _written
        # log batches whose ACK the log thread was to send with no wake-up of this loop
        # wanted (_writer_ack: quiet ACKs; mntr's zk_quiet_log_acks)
        self.quiet_acks = 0
        # for election_time and leader_uptime (monotonic seconds)
        self.looking_since: float | None = self.clock.monotonic_ns() / 1e9
        self.leading_since: float | None = None
        committer.after_batch = self._log_batch_durable
        if os.environ.get("ZABBY_WRITER_ACK", "1") != "0":
            committer.send_when_durable = self._writer_ack

    @property
    def sync_barriers(self) -> dict[int, list]:
        """Leader: no-op zxid -> callbacks once it is applied (ZabCommit.barrier)."""
        return self.zab.sync_barriers

    @property
    def mode(self) -> str:
        return MODES.get(self.role, self.role)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await super().start()
        await self.election_mesh.start()
        await self.quorum_mesh.start()
        qs = self.quorum_security
        if qs is not None and qs.reload_cert_files and qs.server_tls is not None:
            self._cert_watch = asyncio.get_running_loop().create_task(watch_cert_files(qs))
        self._subtick_task = asyncio.get_running_loop().create_task(self._subticker())
        self._drain()

    async def stop(self) -> None:
        if self._subtick_task:
            self._subtick_task.cancel()
        if self._cert_watch is not None:
            self._cert_watch.cancel()
        await self.quorum_mesh.stop()
        await self.election_mesh.stop()
        await super().stop()

    async def _subticker(self) -> None:
        period = self.config.tick_time / 1000.0 / self.subticks
        n = 0
        while True:
            await asyncio.sleep(period)
            try:
                self.peer.tick()
                self._drain()
                n += 1
                if n % self.subticks == 0:
                    self._relay_touches()
            except Exception:
                log.exception("error in the ensemble ticker")

    # ------------------------------------------------------------ consensus I/O
    def _on_link_change(self, sid: int, up: bool) -> None:
        lost = self._links_lost
        if up:
            lost.discard(sid)
        else:
            lost.add(sid)
        if not up and (self.role == "leading" or sid == self.leader_id):
            # like ZooKeeper when a quorum socket closes: a learner elects at once, a
            # leader drops that learner and steps down if it no longer has a quorum
            self.peer.disconnected(sid, lost)
            self._drain()

    def _on_zab_message(self, frm: int, payload: bytes) -> None:
        self.peer.receive(frm, payload)
        self._drain()

    def _on_quorum_message(self, frm: int, payload: bytes) -> None:
        if not payload:
            return
        kind, body = payload[0], payload[1:]
        try:
            if kind == K_ZAB:
                self.peer.receive(frm, body)
            elif kind == K_FORWARD:
                self.zab.on_forward(frm, Forwarded.decode(body))
            elif kind == K_TOUCH:
                self._on_touches(Touches.decode(body))
            elif kind == K_SYNC:
                self.zab.on_sync_request(frm, SyncMsg.decode(body))
            elif kind == K_SYNC_OK:
                self.zab.on_sync_ok(SyncMsg.decode(body))
            elif kind == K_OWNER:
                self.zab.on_owner(frm, Touches.decode(body))
            elif kind == K_OWNER_OK:
                self.zab.on_owner_ok(Touches.decode(body))
            elif kind == K_DROPPED:
                m = SyncMsg.decode(body)
                log.info("the leader dropped a request of session 0x%x; closing its connection",
                         m.session & (2**64 - 1))
                self.zab.sync_failed((m.session, m.xid))
                self.zab.abandon(m.session)
            else:
                log.warning("dropped message of unknown kind %d from server %d", kind, frm)
        except ProtocolError as e:
            log.warning("dropped malformed message from server %d: %s", frm, e)
        # no drain here: the mesh calls `_drain` once after all messages of a read,
        # so a read holding N proposals is persisted as one batch and acked once

    def _send_zab(self, to: int, msg: bytes) -> None:
        if len(msg) >= 4 and _INT.unpack_from(msg, 0)[0] in (zmsg.NOTIFICATION,
                                                           zmsg.NOTIFICATION_CFG):
            self.election_mesh.send(to, msg)
        else:
            self.quorum_mesh.send(to, _KIND.pack(K_ZAB) + msg)

    def _send(self, to: int, kind: int, rec: Record | Forwarded) -> bool:
        return self.quorum_mesh.send(to, _KIND.pack(kind) + rec.to_bytes())

    def _drain_soon(self) -> None:
        """Drain once at the end of this loop turn, for everything the turn brought.

        Client writes call this instead of `_drain`: under load one turn carries a
        request from each of many connections, and one Ready for all of them means
        one ENTRIES message per follower holding every proposal of the turn (and one
        log batch here) instead of a message and a consensus step per txn. It costs
        no latency: the proposals would only leave at the end of the turn anyway."""
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_deferred)

    def _drain_deferred(self) -> None:
        self._drain_scheduled = False
        self._drain()
        # the turn's consensus output is complete: send it now rather than a turn later
        self.quorum_mesh.flush()

    def _drain(self) -> None:
        """Carry out what the peer asks for (see consensus.Ready), until it asks nothing."""
        if self._draining:
            return
        self._draining = True
        try:
            while True:
                r = self.peer.ready()
                if r.persist_epochs is not None:
                    e = r.persist_epochs
                    self.epochs.save(e.accepted_epoch, e.current_epoch, e.accepted_leader)
                if r.install_snapshot is not None:
                    self._install_snapshot(*r.install_snapshot)
                if r.truncate_to is not None:
                    self._truncate(r.truncate_to)
                # messages first: a leader's proposals leave before its own log write
                # is even started (followers' fsync + ack is the longer path), and
                # nothing sent here depends on this Ready's entries being durable
                # (acks come from `_written`)
                for to, msg in r.messages:
                    self._send_zab(to, msg)
                if r.persist:
                    if r.role == "following" and self.serving:  # as Follower only
                        self._proposals_received(r.persist)
                    self._persist(r.persist)
                if r.commit and len(r.commit) <= _EAGER_COMMITS:
                    # few commits: little load, so send the COMMITs now rather than
                    # after applying them here (under load frames go once per turn)
                    self.quorum_mesh.flush()
                for zxid, payload in r.commit:
                    self._apply_committed(zxid, payload)
                if r.commit and self.zab.pending_syncs:
                    self.zab.answer_syncs()
                if r.config is not None:
                    self._config_changed(r.config)
                for ev in r.events:
                    log.info("zab: %s", ev)
                # a removed member still learns (it may be named again) but serves
                # no client
                self._role_change(r.role, r.leader_id, r.serving and not self.peer.removed)
                if not r:
                    break
        finally:
            self._draining = False

    def _proposals_received(self, entries: list[tuple[int, bytes]]) -> None:
        """A serving learner got proposals: ZooKeeper's proposal_latency (txn creation
        on the leader to arrival here, wall clock) and learner_proposal_received_count."""
        m = self.metrics
        m.learner_proposal_received_count += len(entries)
        now = self.wall_ms()
        add = m.proposal_latency.add
        for _, payload in entries:
            if len(payload) >= _HDR_TIME_END:
                add(now - _TIME.unpack_from(payload, _HDR_TIME_AT)[0])

    def _persist(self, entries: list[tuple[int, bytes]]) -> None:
        view = self.view
        for zxid, payload in entries:
            view.append(zxid, payload)
            self.committer.submit_entry(zxid, payload, lambda z=zxid: self._written(z),
                                        self._log_failed)

    def _written(self, zxid: int) -> None:
        # entries become durable in order: the batch's last one says it all
        self._durable_upto = zxid

    def _log_batch_durable(self) -> None:
        """Once per durable log batch (not per txn): one consensus step, one ACK."""
        z, self._durable_upto = self._durable_upto, None
        if z is not None:
            self.peer.persisted(z)
            self._drain()

    def _after_peer_read(self) -> None:
        # the log writer's answers for quiet batches first (the COMMIT or proposal
        # this read brought may need the log durable here), then one Zab step for all
        self.committer.poll_writer()
        self._drain()

    def _writer_ack(self, zxid: int) -> Lease | None:
        """A follower's ACK of a log batch ending at `zxid`, for the log writer to send
        the moment the batch is durable (GroupCommitter.send_when_durable), as
        ZooKeeper's SyncRequestProcessor thread does: the ACK leaves then rather than
        after the loop wakes, takes the answer and steps Zab. Only a plain
        broadcast-phase ACK on a plain TCP link with nothing waiting to go before it;
        anything else goes the loop's way (persisted -> ready), and so does this one
        if the loop must write to the leader before the writer has begun to send it
        (a ping, a forwarded request: `PeerMesh.lend`)."""
        msg = self.peer.writer_ack(zxid)
        lid = self.peer.leader_id
        if msg is None or lid is None:
            return None
        peer = self.peer
        mesh = self.quorum_mesh
        lease = mesh.lend(lid, _KIND.pack(K_ZAB) + msg,
                          lambda went: peer.writer_acked(zxid) if went else None)
        if lease is None:
            return None
        for sid, pmsg in peer.writer_peer_acks(zxid):
            more = mesh.lend(sid, _KIND.pack(K_ZAB) + pmsg,
                             partial(_peer_acked_if_sent, peer, sid, zxid))
            if more is not None:
                lease.also.append(more)
        if _QUIET_ACKS and self._nothing_waits_on_the_log():
            self.quiet_acks += 1
            lease.quiet = True
            for more in lease.also:
                more.quiet = True
        return lease

    def _nothing_waits_on_the_log(self) -> bool:
        """No client request here waits for a commit (so none for this member's log to
        be durable): a follower's loop need not wake when its log batch is durable and
        its log thread sent the ACK (and PEER_ACKs); it learns at its next peer read."""
        zab = self.zab
        return (self.outstanding == 0 and not zab.pending_syncs
                and not zab.pending_connects and not zab.sync_barriers)

    def _log_failed(self, why: str) -> None:
        log.error("stopping: %s", why)
        # a member whose log is broken must not vote or serve: leave the ensemble
        asyncio.get_running_loop().call_soon(self._shutdown_after_failure)

    def _shutdown_after_failure(self) -> None:
        os._exit(3)

    def _truncate(self, zxid: int) -> None:
        self.view.truncate_after(zxid)
        self.committer.submit_control(lambda: self.txn_log.truncate_after(zxid),
                                      lambda: None, self._log_failed)
        if self.tree.last_zxid > zxid:  # pragma: no cover - the peer refuses such a TRUNC
            log.error("log truncated to zxid 0x%x below the applied 0x%x", zxid,
                      self.tree.last_zxid)

    def _install_snapshot(self, zxid: int, data: bytes) -> None:
        cfg = self.config
        tree = snapshot_from_bytes(data, "<snapshot from the leader>", max_buffer=cfg.max_buffer,
                                   extended_types=cfg.extended_types_enabled)
        self._replace_tree(tree)
        self.view.reset(zxid)

        def install() -> None:
            write_snapshot(tree, cfg.data_dir, fs=self.txn_log.fs)
            self.txn_log.truncate_after(-1)
            self.txn_log.open_for_append(zxid)

        self.committer.submit_control(install, lambda: self._snapshot_installed(zxid),
                                      self._log_failed)

    def _snapshot_installed(self, zxid: int) -> None:
        self.peer.snapshot_installed(zxid)
        node = self.tree.get_node(_CONFIG_NODE)
        m = parse_membership(node.data or b"") if node is not None else None
        version = (m.version or node.mzxid) if m is not None and node is not None else 0
        if m is not None and version > self.peer.config.version:
            self.peer.adopt_config(_config_of(m.with_version(version)))
        self._drain()

    def _replace_tree(self, tree: DataTree) -> None:
        for conn in list(self.connections):
            conn.abort()  # watches and reads of the old state end here
        self.adopt_tree(tree)

    # ------------------------------------------------------------ membership
    def _show_config(self) -> None:
        """/zookeeper/config shows this server's configuration (unless a txn wrote it)."""
        data = self.membership.text()
        node = self.tree.get_node(_CONFIG_NODE)
        if node is not None and node.data != data:
            self.tree.set_config_data(data, self.membership.version, self.wall_ms())

    def conf_extra(self) -> str:
        """What ZooKeeper's `conf` adds on an ensemble member, membership included."""
        me = self.membership.servers.get(self.my_id)
        cfg = self.config
        spec = me or cfg.servers.get(self.my_id)
        addrs = [(spec.host, spec.quorum_port, spec.election_port), *spec.more] if spec else []
        return (f"initLimit={cfg.init_limit}\nsyncLimit={cfg.sync_limit}\nelectionAlg=3\n"
                f"electionPort={'|'.join(str(a[2]) for a in addrs)}\n"
                f"quorumPort={'|'.join(str(a[1]) for a in addrs)}\n"
                f"peerType={1 if self.peer.is_observer else 0}\nmembership: \n"
                + self.membership.text().decode())

    def _config_changed(self, cfg: Config) -> None:
        """A configuration came into force here (committed, adopted or versioned)."""
        m = parse_membership(cfg.data)
        if m is None:  # pragma: no cover - we wrote it
            log.error("unreadable configuration 0x%x", cfg.version)
            return
        static = self.membership.static_client & frozenset(
            s for s, spec in m.servers.items() if spec.client_port is None)
        self.membership = Membership(m.servers, cfg.version, static, m.groups, m.weights)
        log.info("configuration 0x%x: %s", cfg.version, "; ".join(self.membership.lines()))
        self._show_config()
        for mesh, port, k in ((self.quorum_mesh, "quorum_port", 1),
                              (self.election_mesh, "election_port", 2)):
            addrs = {sid: (spec.host, getattr(spec, port)) for sid, spec in m.servers.items()}
            more = {sid: [(a[0], int(a[k])) for a in spec.more]
                    for sid, spec in m.servers.items() if spec.more}
            mesh.update_addresses(addrs, more)
        cfg_file = self.config.source
        if self.config.reconfig_enabled and cfg_file and os.path.isfile(cfg_file):
            try:
                path = write_dynamic_config(cfg_file, self.membership)
                self.config.dynamic_config_file = path
            except OSError as e:
                log.error("could not write the dynamic configuration file: %s", e)
        if self.peer.removed:
            log.warning("this server is not in configuration 0x%x: it serves no more",
                        cfg.version)

    def _prepare_reconfig(self, body, ctx: RequestContext) -> Txn:
        """The leader's checks of a reconfig, in ZooKeeper's order; an error txn or the
        SetData of /zookeeper/config that carries the new configuration."""
        hdr = TxnHeader(ctx.session_id, ctx.cxid, ctx.zxid, ctx.time, Op.ERROR)

        def fail(err: int, why: str = "") -> Txn:
            if why:
                log.info("reconfig refused (%s): %s", Err(err).name, why)
            return Txn(hdr, ErrorTxn(err))

        if not self.config.reconfig_enabled:
            return fail(Err.RECONFIGDISABLED)
        if body is None:
            return fail(Err.MARSHALLINGERROR)
        peer = self.peer
        if peer.reconfig_pending:
            return fail(Err.RECONFIGINPROGRESS)
        cur = self.membership
        if body.curConfigId != -1 and body.curConfigId != cur.version:
            return fail(Err.BADVERSION, f"from version {body.curConfigId:x}, last seen is "
                        f"{cur.version:x}")
        groups: dict[int, tuple[int, ...]] = {}
        weights: dict[int, int] = {}
        try:
            if body.newMembers is not None:
                quorum: dict[str, str] = {}
                servers = parse_server_entries(body.newMembers, need_client=False,
                                               quorum=quorum)
                groups, weights = quorum_system(servers, quorum)
                if not any(not spec.is_observer for spec in servers.values()):
                    raise ParseCrash("observers without participants")
            elif cur.groups:
                raise ReconfigError("Incremental reconfiguration requested but last "
                                    "configuration seen has a non-majority quorum system")
            else:
                servers = dict(cur.servers)
                for item in (body.leavingServers or "").split(","):
                    item = item.strip()
                    if item:
                        try:
                            servers.pop(int(item), None)
                        except ValueError:
                            raise ParseCrash(f"{item!r} is not a server id") from None
                if body.joiningServers is not None:
                    joining = parse_server_entries(body.joiningServers, need_client=True)
                    for sid, spec in joining.items():
                        servers[sid] = spec
        except ParseCrash as e:
            return fail(Err.MARSHALLINGERROR, str(e))
        except ReconfigError as bad:
            return fail(Err.BADARGUMENTS, str(bad))
        new = Membership(servers, ctx.zxid, cur.static_client & frozenset(
            s for s, spec in servers.items() if spec.client_port is None), groups, weights)
        n_voters = len(new.voters)
        if self.config.standalone_enabled and n_voters < 2:
            return fail(Err.BADARGUMENTS, "the new configuration must include at least 2 "
                        "participants (standaloneEnabled=true)")
        if n_voters < 1:
            return fail(Err.BADARGUMENTS, "the new configuration must include a participant")
        if not peer.synced_quorum(_config_of(new)):
            return fail(Err.NEWCONFIGNOQUORUM, "no quorum of the new configuration is "
                        "connected and in sync")
        node = self.tree.get_node(_CONFIG_NODE)
        if node is not None and not check_perm(node.acl, Perm.WRITE, ctx.auth):
            return fail(Err.NOAUTH)
        hdr.type = Op.RECONFIG
        return Txn(hdr, SetDataTxn(_CONFIG_NODE, new.text(), -1))

    # ------------------------------------------------------------ roles
    def _role_change(self, role: str, leader_id: int | None, serving: bool) -> None:
        if role == self.role and leader_id == self.leader_id and serving == self.serving:
            return
        if role != self.role:
            now = self.clock.monotonic_ns() / 1e9
            if role == "looking":
                self.looking_since = now
            elif self.looking_since is not None:
                # ZooKeeper's election_time: from looking to knowing whom to follow or lead
                self.metrics.election_time.add(int((now - self.looking_since) * 1000))
                self.looking_since = None
            self.leading_since = now if role == "leading" else None
        was_serving, was_leading = self.serving, self.role == "leading"
        self.role, self.leader_id, self.serving = role, leader_id, serving
        if role == "leading" and not was_leading and self._links_lost:
            # elected on the last votes of members whose links have closed since:
            # the peer steps down at once (its next Ready) if no quorum is left
            self.peer.unreachable(self._links_lost)
        log.info("now %s (leader %s, epoch %d, %s)", self.mode, leader_id, self.peer.epoch,
                 "serving" if serving else "not serving")
        if serving and not was_serving and self.on_serving is not None:
            self.on_serving()  # (app.py: the first sync of an untrusted empty data dir)
        if was_leading and role != "leading":
            self.tree.discard_pending()
            self.zab.session_owner.clear()
        if was_serving and not serving or role != "leading" and was_leading:
            # in-flight writes have an unknown outcome: their clients reconnect (after
            # the replies already queued, e.g. that of the reconfig which made this
            # member change role, as ZooKeeper answers it before it restarts)
            for conn in list(self.connections):
                if conn.inflight:
                    conn.close_after_flush()
            self.zab.drop_pending()
            self.zab.pending_syncs.clear()
            self.zab.sync_barriers.clear()
        if not serving:
            for conn in list(self.connections):
                conn.close_after_flush()
        if role == "leading" and serving:
            self._track_sessions_as_leader()

    def _track_sessions_as_leader(self) -> None:
        """The leader expires sessions: it tracks every session of the tree, each with
        a fresh timeout, none of them marked closing. A session this member marked
        closing when it led before (it proposed the closeSession, then lost the lead
        before that committed) is open again: the tree says so, and this member has
        applied its whole history before serving. Left marked, it was never expired
        again, and its ephemerals stayed for good (found by the whole-server
        simulation, seed 119); ZooKeeper's new leader builds its tracker afresh from
        the database, which comes to the same."""
        now = self.monotonic_ms()
        tracker = self.sessions
        for sid, timeout in self.tree.sessions.items():
            s = tracker.get(sid)
            if s is None:
                tracker.add(sid, timeout, now)
            else:
                s.closing = False
                tracker.touch(s, now)

    def _apply_committed(self, zxid: int, payload: bytes) -> None:
        # the final stage, shared with the standalone server (pipeline.CommitStage)
        self.zab.apply(Txn.decode(payload))

    # ------------------------------------------------------------ sessions
    def _relay_touches(self) -> None:
        for sess in self.throttled_sessions():  # as the standalone tick does
            self.touched[sess.id] = sess.timeout
        if not self.touched or self.role == "leading" or self.leader_id is None:
            if self.role == "leading":
                self.touched.clear()
            return
        t = self.touched
        sessions, timeouts = list(t), list(t.values())
        t.clear()  # the same dict: the stage records into it
        self._send(self.leader_id, K_TOUCH, Touches(sessions, timeouts))

    def _on_touches(self, t: Touches) -> None:
        if self.role != "leading":
            return
        now = self.monotonic_ms()
        for sid, timeout in zip(t.sessions or (), t.timeouts or (), strict=False):
            s = self.sessions.get(sid)
            if s is None:
                if sid in self.tree.sessions:
                    self.sessions.add(sid, timeout, now)
            else:
                self.sessions.touch(s, now)

    def _foreign_local_session(self, session_id: int) -> bool:
        """Might an unknown session be another member's local session? (local_sessions)"""
        return False
