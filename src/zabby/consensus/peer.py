"""Zab as a pure, deterministic state machine (see the package docstring for the contract)."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from typing import Final, Protocol

from . import messages as m

__all__ = [
    "FOLLOWING", "LEADING", "LOOKING", "OBSERVING", "Config", "EpochState", "Limits", "LogReader",
    "NotLeader", "Peer", "Ready", "make_zxid", "zxid_counter", "zxid_epoch",
]

LOOKING: Final = "looking"
FOLLOWING: Final = "following"
LEADING: Final = "leading"
OBSERVING: Final = "observing"
_STATE_CODE: Final = {LOOKING: 0, FOLLOWING: 1, LEADING: 2, OBSERVING: 3}

_COUNTER_MASK: Final = 0xFFFFFFFF
_MAX_BATCH: Final = 512          # entries per ENTRIES message
_ENTRIES: Final = m.ENTRIES
_GETS_PROPOSALS = frozenset(("syncing", "synced"))  # learner stages that are sent proposals
_RETRY_TICKS = 3          # a learner re-handshakes if LEADERINFO does not come this soon
_WANT_TICKS: Final = 10          # a follower asks for PEER_ACKs at most this often (Peer.want_peer_acks)


def zxid_epoch(zxid: int) -> int:
    return zxid >> 32


def zxid_counter(zxid: int) -> int:
    return zxid & _COUNTER_MASK


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def fmt_zxid(zxid: int) -> str:
    return f"0x{zxid:x}"


@dataclass(frozen=True)
class Limits:
    """Timeouts in ticks (one tick = tickTime)."""

    init_limit: int = 10        # a leader must be established / a learner synced within this
    sync_limit: int = 5         # a synced learner or leader silent this long is gone
    election_timeout: int = 2   # a LOOKING peer re-sends its vote this often


@dataclass(frozen=True)
class Config:
    """A membership: voters, observers and the version that names it (0: the initial
    configuration, never established; else the zxid of the txn that made it, or of
    the first leader's NEWLEADER). `data` is the caller's description of it (server
    addresses), opaque here: carried in notifications and handed back in Ready."""

    version: int
    voters: frozenset[int]
    observers: frozenset[int]
    data: bytes = b""
    # hierarchical quorums (ZooKeeper's group.N / weight.N): ((group id, its voters),
    # ...) and ((server id, weight), ...); empty: a plain majority of the voters
    groups: tuple[tuple[int, frozenset[int]], ...] = ()
    weights: tuple[tuple[int, int], ...] = ()

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.observers

    def has_quorum(self, ids) -> bool:
        if not self.groups:
            return len(self.voters.intersection(ids)) * 2 > len(self.voters)
        # more than half the weight of a group, in more than half of the groups whose
        # weight is not zero (QuorumHierarchical.containsQuorum)
        w = dict(self.weights)
        ids = set(ids)
        if not ids:
            return False
        counted = won = 0
        for _, members in self.groups:
            total = sum(w.get(s, 1) for s in members)
            if total == 0:
                continue
            counted += 1
            if sum(w.get(s, 1) for s in members if s in ids) > total // 2:
                won += 1
        return won > counted // 2

    def agreed(self, acked: dict[int, int]) -> int:
        """The highest value a quorum has reached in `acked` (server -> value); -1: none."""
        if not self.groups:
            acks = sorted((acked[s] for s in self.voters if s in acked), reverse=True)
            q = len(self.voters) // 2 + 1
            return acks[q - 1] if len(acks) >= q else -1
        for z in sorted(set(acked.values()), reverse=True):
            if self.has_quorum([s for s, a in acked.items() if a >= z]):
                return z
        return -1


@dataclass(frozen=True)
class EpochState:
    """What must be durable before any message of the same Ready is sent.

    `accepted_leader` is the server whose LEADERINFO set `accepted_epoch` (this
    server's own id when it proposed the epoch). ZooKeeper keeps only the number;
    we also keep the proposer so that no server can acknowledge the same epoch
    for two different leaders (see Peer docstring)."""

    accepted_epoch: int
    current_epoch: int
    accepted_leader: int


class LogReader(Protocol):
    """Read-only view of this server's durable state (log + newest snapshot).

    The view must include every entry the caller has appended (from drained
    Readies), fsynced or not, and reflect every truncation/snapshot install."""

    last_zxid: int        # newest entry in the log, or snap_zxid when the log is empty beyond it
    snap_zxid: int        # zxid of the snapshot the log is based on (0 = empty state)

    # (properties: the peer only reads them; a view may keep them in an epoch file)
    @property
    def accepted_epoch(self) -> int: ...

    @property
    def current_epoch(self) -> int: ...

    @property
    def accepted_leader(self) -> int:
        """-1 when unknown (fresh server)."""
        ...

    def entries_after(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Entries with zxid > `zxid`, ascending. Only called with zxid >= snap_zxid."""
        ...

    def has_entry(self, zxid: int) -> bool: ...

    def snapshot(self) -> tuple[int, bytes]:
        """The caller's current applied state (zxid, serialized) to send as SNAP."""
        ...


class NotLeader(Exception):
    def __init__(self, leader_id: int | None):
        super().__init__(f"not the leader (leader is {leader_id})")
        self.leader_id = leader_id


_READY_FIELDS = ("messages", "persist_epochs", "install_snapshot", "truncate_to", "persist",
                 "commit", "role", "leader_id", "epoch", "serving", "events", "config")


class Ready:
    """Everything the caller must do, in this order:

    1. persist_epochs: write and fsync (before sending any message of this Ready);
    2. install_snapshot (zxid, data): replace state and log, then call
       Peer.snapshot_installed(zxid) once it is durable;
    3. truncate_to: drop every log entry with zxid > it, durably;
    4. persist: append to the log (fsync at leisure, then Peer.persisted(last zxid));
    5. messages: send;
    6. commit: apply to the state machine, in this order;
    7. events: log them.
    Steps 1-4 must have taken effect in what the LogReader shows before the next
    input is given to the Peer (fsync of step 4 excepted)."""

    # A plain class, not a @dataclass: the dataclass decorator's __init__ is made at
    # import time and stays interpreted in this compiled module, and the member builds
    # a Ready for every message it takes in (docs/ARCHITECTURE.md, "Compiled modules").
    def __init__(self, messages: list[tuple[int, bytes]] | None = None,
                 persist_epochs: EpochState | None = None,
                 install_snapshot: tuple[int, bytes] | None = None,
                 truncate_to: int | None = None,
                 persist: list[tuple[int, bytes]] | None = None,
                 commit: list[tuple[int, bytes]] | None = None,
                 role: str = LOOKING, leader_id: int | None = None, epoch: int = 0,
                 serving: bool = False, events: list[str] | None = None,
                 config: Config | None = None) -> None:
        self.messages: list[tuple[int, bytes]] = [] if messages is None else messages
        self.persist_epochs = persist_epochs
        self.install_snapshot = install_snapshot
        self.truncate_to = truncate_to
        self.persist: list[tuple[int, bytes]] = [] if persist is None else persist
        self.commit: list[tuple[int, bytes]] = [] if commit is None else commit
        self.role = role
        self.leader_id = leader_id
        self.epoch = epoch
        self.serving = serving
        self.events: list[str] = [] if events is None else events
        # the configuration now in force, when it changed in this step (after `commit`:
        # a reconfig txn committed, or a newer one adopted from a notification)
        self.config = config

    def __bool__(self) -> bool:
        return bool(
            self.messages or self.persist_epochs or self.install_snapshot
            or self.truncate_to is not None or self.persist or self.commit or self.events
            or self.config is not None
        )

    def __repr__(self) -> str:
        return "Ready(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in _READY_FIELDS) + ")"


class _Handler:
    """The leader's view of one learner connection (ZooKeeper's LearnerHandler)."""

    __slots__ = (
        "sid", "session", "observer", "stage", "seq_next", "outbox", "accepted_epoch",
        "peer_last", "acked", "last_heard", "since", "nl_zxid", "sent_upto",
    )

    # stages: info (FOLLOWERINFO seen) -> epoch (LEADERINFO sent) -> acked (ACKEPOCH seen)
    #         -> syncing (sync + NEWLEADER sent) -> synced (NEWLEADER acked)

    def __init__(self, sid: int, session: int, observer: bool, accepted: int, now: int):
        self.sid = sid
        self.session = session
        self.observer = observer
        self.stage = "info"
        self.seq_next = 0
        self.outbox: list[list] = []
        self.accepted_epoch = accepted
        self.peer_last = 0
        self.acked = 0
        self.last_heard = now
        self.since = now
        self.nl_zxid = 0
        self.sent_upto = 0


class Peer:
    """One ensemble member running Zab. Pure: inputs are method calls, outputs are
    drained with ready(); no I/O, no clock, no randomness but `rng`."""

    def __init__(
        self,
        my_id: int,
        voters: frozenset[int],
        observers: frozenset[int],
        storage: LogReader,
        *,
        rng: random.Random,
        tick_limits: Limits | None = None,
        config_version: int = 0,
        config_data: bytes = b"",
        config_of_entry: Callable[[bytes], Config | None] | None = None,
        config_of_data: Callable[[int, bytes], Config | None] | None = None,
        observer_type: bool | None = None,
        config_groups: tuple[tuple[int, frozenset[int]], ...] | None = None,
        config_weights: tuple[tuple[int, int], ...] = (),
        version_initial_config: bool = True,
    ):
        """`config_of_entry(payload)`: the Config a log entry installs (a reconfig txn;
        its version is the entry's zxid, whatever the function says), else None; `config_of_data(version, data)`: a Config from a notification's
        description. Without them the membership never changes. `observer_type`:
        whether this server learns as an observer when it is not a member (a joiner)."""
        voters = frozenset(voters)
        observers = frozenset(observers)
        if not voters or voters & observers:
            raise ValueError("voters must be non-empty and disjoint from observers")
        if config_groups is None:
            config_groups, config_weights = (), ()
        if my_id not in voters and my_id not in observers and observer_type is None:
            raise ValueError(f"server {my_id} is not a member")
        self.id = my_id
        self._observer_type = bool(observer_type)
        self._version_initial = version_initial_config
        self._config_of_entry = config_of_entry
        self._config_of_data = config_of_data
        self._set_config(Config(config_version, voters, observers, config_data,
                                config_groups, tuple(config_weights)))
        # config entries in the log beyond the commit point (zxid, config), ascending
        self._cfg_pending: list[tuple[int, Config]] = []
        self._p_config: Config | None = None
        # a committed configuration dropped this server: it goes on learning as a
        # non-voter (so that a later reconfig can name it again, and a change proposed
        # while it was still a member can count its ack), but the caller must not let
        # it serve clients; cleared when a configuration names it again
        self.removed = False
        if config_of_entry is not None:
            for z, p in storage.entries_after(storage.snap_zxid):
                cfg = config_of_entry(p)
                if cfg is not None and z > config_version:
                    self._cfg_pending.append((z, replace(cfg, version=z)))
        self.limits = tick_limits or Limits()
        self._rng = rng
        self._store = storage
        self._now = 0

        # durable state as we know it
        self._accepted = storage.accepted_epoch
        self._current = storage.current_epoch
        self._accepted_leader = getattr(storage, "accepted_leader", -1)
        self._last = storage.last_zxid
        self._durable = storage.last_zxid
        self._applied = storage.snap_zxid
        self._commit = self._applied
        self._snap_wait: int | None = None
        self._persist_hold = -1

        # pending Ready
        self._out: list[tuple[int, bytes]] = []
        # (index in _out, leader, session, epoch) of an ACK not yet taken by `ready`
        self._ack_slot: tuple[int, int | None, int, int] | None = None
        # the highest zxid whose broadcast ACK the log writer sent itself, the moment
        # its batch was durable (`writer_ack`, `writer_acked`): no second ACK for it
        self._writer_acked = -1
        # follower: the broadcast ACKs other voting followers sent us (PEER_ACK,
        # sender -> zxid, this epoch and leader), and the highest zxid we sent each of
        # them ours for
        self._peer_acks: dict[int, int] = {}
        self._peer_acked: dict[int, int] = {}
        self.peer_commits = 0  # commits learned from PEER_ACKs ahead of the leader's
        # follower: who asked us for PEER_ACKs (sender -> tick), and when we last asked
        self._peer_ack_wanted: dict[int, int] = {}
        self._want_sent = -_WANT_TICKS
        # FOLLOWERINFO that came while we were still looking (sender -> raw message)
        self._early_infos: dict[int, bytes] = {}
        self._told_deposed: dict[int, int] = {}  # sender -> tick we told it (_tell_deposed)
        self._p_epochs = False
        self._p_snapshot: tuple[int, bytes] | None = None
        self._p_trunc: int | None = None
        self._p_entries: list[tuple[int, bytes]] = []
        self._p_commit: list[tuple[int, bytes]] = []
        self._events: list[str] = []

        # role state
        self.role = LOOKING
        self.leader_id: int | None = None
        self.serving = False
        self._clock = 0                          # election round (logicalclock)
        self._vote = (0, 0, -1)
        self._recv: dict[int, tuple[int, int, int]] = {}
        self._ooe: dict[int, tuple[int, int, int, int]] = {}
        self._leader_round = 0
        self._finalize = False
        self._last_sent_votes = 0
        # leader
        self._epoch = 0                          # the epoch we lead / follow
        self._phase = ""
        self._handlers: dict[int, _Handler] = {}
        self._seen_sessions: dict[int, list[int]] = {}
        self._connected: dict[int, int] = {}
        self._epoch_acks: set[int] = set()
        self._initial = 0
        self._establish_waited = False  # established, waiting to apply its history
        self._lead_since = 0
        self._epoch_floor = 0     # an accepted epoch seen that our next epoch must exceed
        # learner
        self._session = 0
        self._fstage = ""
        self._expect_seq = 0
        self._heard = 0
        self._stage_since = 0
        self._budget_since = 0
        self._nl_zxid: int | None = None

        # figures for operators (plain counters; the server reads them)
        self.looking_count = 0                   # times this peer started looking
        self.syncs_sent = {"DIFF": 0, "TRUNC": 0, "SNAP": 0}  # leader: learner syncs by kind
        # an empty database we may not trust (distrust_empty_db): no part in elections
        self.untrusted_empty = False

        self._become_looking("starting")

    def distrust_empty_db(self) -> None:
        """ZooKeeper's zookeeper.db.autocreate=false: this server started with an
        empty data directory that may have been wiped (it may once have acknowledged
        txns it no longer has). Until a leader has synced it, it takes no part in
        elections: its vote carries zxid -1, which every peer ignores, and it ignores
        the votes of looking peers; it joins a leader that a quorum already follows.
        Call it right after construction, before the first `ready()`."""
        self.untrusted_empty = True
        if self.role == LOOKING:
            self._out.clear()  # the starting votes, not yet sent
            self._vote = self._self_vote()
            self._send_votes()

    # ------------------------------------------------------------ membership
    def _set_config(self, cfg: Config) -> None:
        self.config = cfg
        self.voters = cfg.voters
        self.observers = cfg.observers
        self.members = cfg.members
        self.is_voter = self.id in cfg.voters
        self.is_observer = self.id in cfg.observers or (
            self.id not in cfg.members and self._observer_type)
        self.quorum = len(cfg.voters) // 2 + 1

    @property
    def reconfig_pending(self) -> bool:
        """A configuration is proposed (in the log) but not yet committed."""
        return bool(self._cfg_pending)

    def _joint_ok(self, ids) -> bool:
        """`ids` hold a quorum of the configuration in force and of every one pending."""
        if not self.config.has_quorum(ids):
            return False
        return all(c.has_quorum(ids) for _, c in self._cfg_pending)

    def synced_quorum(self, cfg: Config) -> bool:
        """Leader: this server and the learners in sync hold a quorum of `cfg`
        (ZooKeeper's isQuorumSynced, checked before proposing a reconfig)."""
        if self.role != LEADING or self._phase != "broadcast":
            return False
        ids = {self.id} | {h.sid for h in self._handlers.values()
                           if h.stage == "synced" and not h.observer
                           and self._now - h.last_heard <= self.limits.sync_limit}
        return cfg.has_quorum(ids)

    def adopt_config(self, cfg: Config) -> None:
        """The caller installed state holding a newer configuration (a snapshot)."""
        if cfg.version > self.config.version:
            self._activate(cfg, committed=True)

    def _note_entry(self, zxid: int, payload: bytes) -> None:
        if self._config_of_entry is None:
            return
        cfg = self._config_of_entry(payload)
        if cfg is not None:
            # a configuration made by a txn is named by the txn's zxid
            self._cfg_pending.append((zxid, replace(cfg, version=zxid)))

    def _activate(self, cfg: Config, committed: bool) -> None:
        """Put `cfg` in force. `committed`: through the log (a member it drops is
        removed); else adopted from a notification while looking."""
        was_member = self.id in self.members
        old = self.config
        self._set_config(cfg)
        self._p_config = cfg
        self._events.append(
            f"configuration 0x{cfg.version:x} in force: voters {sorted(cfg.voters)}, "
            f"observers {sorted(cfg.observers)}")
        if committed and was_member and self.id not in cfg.members:
            self.removed = True
            self._events.append("this server was removed from the configuration")
        elif self.id in cfg.members:
            self.removed = False
        if self.role == LEADING:
            if not self.is_voter:
                self._flush_outboxes()  # the COMMIT of this configuration goes out
                self._step_down("no longer a voter in the configuration in force")
                return
            for sid in list(self._handlers):
                h = self._handlers[sid]
                kind_changed = sid in cfg.members and h.observer != (sid in cfg.observers)
                if kind_changed or (sid in old.members and sid not in cfg.members):
                    # a learner that changed role (or left) reconnects as what it is now
                    self._flush_outboxes()
                    del self._handlers[sid]
        elif self.role in (FOLLOWING, OBSERVING):
            want = OBSERVING if self.is_observer else FOLLOWING
            if self.removed:
                self._become_looking("removed from the configuration")
            elif want != self.role:
                self._become_looking(f"now an {'observer' if self.is_observer else 'participant'}")
            elif self.leader_id not in cfg.voters:
                self._become_looking(f"leader {self.leader_id} is no longer a voter")

    def _version_initial_config(self) -> None:
        """The initial configuration (version 0) takes the version of the first
        leader's NEWLEADER once established, as ZooKeeper does (ZOOKEEPER-1783), so
        that it wins over the partial view of a server trying to join."""
        if self.config.version == 0 and self._version_initial:
            c = self.config
            self.config = Config(make_zxid(self._epoch, 0), c.voters, c.observers, c.data,
                                 c.groups, c.weights)
            self._p_config = self.config

    def _flush_outboxes(self) -> None:
        for h in self._handlers.values():
            if h.outbox:
                for t, body in h.outbox:
                    self._out.append((h.sid, m.encode(
                        t, body, epoch=self._epoch, session=h.session, seq=h.seq_next)))
                    h.seq_next += 1
                h.outbox = []

    # ------------------------------------------------------------ introspection
    @property
    def epoch(self) -> int:
        return self._epoch if self.role != LOOKING else self._current

    @property
    def last_zxid(self) -> int:
        return self._last

    @property
    def committed_zxid(self) -> int:
        return self._commit

    @property
    def applied_zxid(self) -> int:
        return self._applied

    @property
    def durable_zxid(self) -> int:
        return self._durable

    @property
    def accepted_epoch(self) -> int:
        return self._accepted

    @property
    def current_epoch(self) -> int:
        return self._current

    @property
    def phase(self) -> str:
        """Leader: discovery | epoch | sync | broadcast; learner: connect | epoch | sync |
        broadcast; "" when looking."""
        return self._phase if self.role == LEADING else self._fstage

    @property
    def established(self) -> bool:
        return self.role == LEADING and self._phase == "broadcast"

    def learner_acks(self) -> dict[int, int]:
        """Leader only: synced learners -> highest zxid they acknowledged (lag for mntr)."""
        return {h.sid: h.acked for h in self._handlers.values() if h.stage == "synced"}

    def synced_learner_kinds(self) -> tuple[int, int, int]:
        """Leader only: synced (voting followers, non-voting followers, observers);
        a non-voting follower is a participant outside the configuration (a joiner)."""
        hs = [h for h in self._handlers.values() if h.stage == "synced"]
        voting = sum(1 for h in hs if h.sid in self.voters)
        observers = sum(1 for h in hs if h.observer)
        return voting, len(hs) - voting - observers, observers

    def learner_count(self) -> int:
        """Leader only: learners connected, synced or not (ZooKeeper's `learners`)."""
        return len(self._handlers)

    # ------------------------------------------------------------ inputs
    def tick(self) -> None:
        self._now += 1
        if self.role == LOOKING:
            self._tick_looking()
        elif self.role == LEADING:
            self._tick_leading()
        else:
            self._tick_learner()

    def receive(self, frm: int, msg: bytes) -> None:
        # servers outside the configuration are heard too: a joiner syncs as a
        # non-voting learner before the reconfig that adds it commits
        if frm == self.id or (frm not in self.members and self._config_of_entry is None):
            self._events.append(f"dropped message from unknown server {frm}")
            return
        try:
            head, body = m.decode(msg)
        except m.MalformedMessage as e:
            self._events.append(f"dropped malformed message from {frm}: {e}")
            return
        t = head.type
        if t == m.NOTIFICATION:
            self._on_notification(frm, body)
        elif t == m.PEER_ACK:
            self._on_peer_ack(frm, head, body)
        elif t == m.PEER_ACK_WANT:
            if self.role == FOLLOWING and head.epoch == self._epoch and frm in self.voters:
                self._peer_ack_wanted[frm] = self._now
        elif t in (m.FOLLOWERINFO, m.ACKEPOCH, m.ACK):
            if self.role != LEADING:
                self._events.append(
                    f"dropped {m.NAMES[t]} from {frm}: not leading ({self.role})")
                if t == m.FOLLOWERINFO:
                    # it believes we lead: our vote tells it whom we follow instead
                    self._out.append((frm, self._notification()))
                    if self.role == LOOKING:
                        # it may have decided for us before we did (our finalize wait):
                        # kept, and handled if we do lead, so that it need not wait
                        # _RETRY_TICKS to send it again (a failover took ~300 ms more)
                        self._early_infos[frm] = msg
            elif t == m.FOLLOWERINFO:
                self._on_followerinfo(frm, head, body)
            elif t == m.ACKEPOCH:
                self._on_ackepoch(frm, head, body)
            else:
                self._on_ack(frm, head, body)
        else:
            self._on_leader_message(frm, head, body)

    def propose(self, payload: bytes) -> int:
        if self.role != LEADING or self._phase != "broadcast" or not self.serving:
            # (established but not serving: its own history is not applied yet)
            raise NotLeader(self.leader_id if self.role != LEADING else None)
        if zxid_epoch(self._last) == self._epoch:
            counter = zxid_counter(self._last)
        else:
            counter = 0
        if counter >= _COUNTER_MASK - 1:
            self._become_looking("zxid counter exhausted; a new epoch is needed")
            raise NotLeader(None)
        zxid = make_zxid(self._epoch, counter + 1)
        self._append(zxid, payload)
        entry = None  # one record for every follower's outbox (records are not mutated)
        for h in self._handlers.values():
            if not h.observer and h.stage in _GETS_PROPOSALS:
                if entry is None:
                    entry = m.Entry(zxid, payload)
                self._send_entry(h, entry)
        return zxid

    def disconnected(self, sid: int, lost: Collection[int] | None = None) -> None:
        """The transport lost its connection to `sid`; neither side waits out syncLimit.
        A learner whose leader it was starts an election at once (as ZooKeeper's learner
        does when its socket closes). A leader drops that learner (as ZooKeeper's
        LearnerHandler ends with its socket; the learner elects anew and comes back with
        a new session anyway) and steps down if the learners left in sync are no longer
        a quorum: with two of three members stopped, the survivor is looking -- and after
        the read-only delay serving read-only clients -- ~4 s sooner at kazoo's
        tickTime 2000 and syncLimit 2.

        `lost`, when the transport knows it: see `unreachable`."""
        if self.role in (FOLLOWING, OBSERVING) and self.leader_id == sid:
            self._become_looking(f"lost the connection to leader {sid}")
        elif self.role == LEADING:
            if self._handlers.pop(sid, None) is not None:
                self._events.append(f"learner {sid}'s connection closed; dropped")
                self._check_quorum()
            if lost is not None:
                self.unreachable(lost)

    def unreachable(self, lost: Collection[int]) -> None:
        """`lost`: the members whose link to us closed and has not come back (a member
        never connected is not in it: at start the links come up while the election
        runs). A leader not yet established steps down when the voters left, itself
        included, are no quorum: they stopped around its election (kazoo's read-only
        test stops two of three members at once, and the survivor can be elected on
        their last votes a moment after their links closed), and waiting out initLimit
        (kazoo's: 20 s) would only delay the next election and read-only mode. The
        transport calls this when a link closes and when this member becomes leader."""
        if (self.role == LEADING and self._phase != "broadcast"
                and not self.config.has_quorum(
                    {s for s in self.voters if s == self.id or s not in lost})):
            self._step_down("not established, and the links to a quorum of voters are gone")

    def persisted(self, zxid: int) -> None:
        if self._snap_wait is not None:
            self._persist_hold = max(self._persist_hold, zxid)
            return
        nd = min(zxid, self._last)
        if nd > self._durable:
            self._durable = nd
            self._on_durable()

    def writer_ack(self, zxid: int) -> bytes | None:
        """The ACK that `persisted(zxid)` would send the leader, for the log writer to
        send itself once the log is durable up to `zxid` (it then gets there one loop
        wake-up sooner); None when that ACK is not a plain broadcast-phase one."""
        if (self.role != FOLLOWING or self._fstage != "broadcast" or self._nl_zxid is None
                or zxid <= self._nl_zxid or zxid > self._last or self._snap_wait is not None
                or zxid <= max(self._durable, self._writer_acked)):
            return None
        return m.encode(m.ACK, m.Ack(zxid, False), epoch=self._epoch, session=self._session)

    def writer_acked(self, zxid: int) -> None:
        """The log writer sent `writer_ack(zxid)` whole: persisted() sends no ACK
        that this one covers."""
        if zxid > self._writer_acked:
            self._writer_acked = zxid

    def writer_peer_acks(self, zxid: int) -> list[tuple[int, bytes]]:
        """The PEER_ACKs (to each other voting follower) that `persisted(zxid)` would
        send, for the log writer to send with `writer_ack(zxid)`."""
        if self.writer_ack(zxid) is None:
            return []
        return self._peer_acks_due(zxid)

    def writer_peer_acked(self, sid: int, zxid: int) -> None:
        if zxid > self._peer_acked.get(sid, -1):
            self._peer_acked[sid] = zxid

    def want_peer_acks(self) -> None:
        """This follower holds a client write it forwarded: the other voting followers
        should send it their ACKs (asked at most once per _WANT_TICKS; an ask holds for
        twice that), so it can commit the write a hop before the leader's COMMIT."""
        if (self.role != FOLLOWING or self._fstage != "broadcast" or not self.is_voter
                or self.config.groups or self._now - self._want_sent < _WANT_TICKS):
            return
        self._want_sent = self._now
        msg = m.encode(m.PEER_ACK_WANT, m.Zxid(0), epoch=self._epoch)
        for s in self.voters:
            if s != self.id and s != self.leader_id:
                self._out.append((s, msg))

    def _peer_acks_due(self, zxid: int) -> list[tuple[int, bytes]]:
        """(follower, PEER_ACK of `zxid`) for each follower that asked lately and has
        not had an ACK this high from us."""
        if not self.is_voter or self.config.groups or not self._peer_ack_wanted:
            return []
        now = self._now
        due = [s for s, t in self._peer_ack_wanted.items()
               if now - t <= 2 * _WANT_TICKS and s != self.leader_id
               and zxid > self._peer_acked.get(s, -1)]
        if not due:
            return []
        msg = m.encode(m.PEER_ACK, m.Ack(zxid, False), epoch=self._epoch)
        return [(s, msg) for s in due]

    def _on_peer_ack(self, frm: int, head, body) -> None:
        """Another voting follower of our leader has its log durable up to body.zxid.
        Both our logs hold the leader's history (synced from it, then its proposals
        in order, within one epoch that only this leader proposes in), so when those
        ACKs and our own durable log make a quorum, everything up to that zxid is
        acknowledged by a quorum -- committed, exactly as the leader would decide it
        -- and we apply it without waiting a hop for the leader's COMMIT. Only a
        plain majority with no reconfiguration in our log past the commit point
        (the leader's joint-quorum rule stays the leader's)."""
        if (self.role != FOLLOWING or head.epoch != self._epoch or frm == self.leader_id
                or frm not in self.voters):
            return
        if body.zxid > self._peer_acks.get(frm, -1):
            self._peer_acks[frm] = body.zxid
            self._peer_commit()

    def _peer_commit(self) -> None:
        if (not self._peer_acks or self.role != FOLLOWING or self._fstage != "broadcast"
                or not self.serving or not self.is_voter or self._cfg_pending
                or self.config.groups):
            return
        acked = {s: z for s, z in self._peer_acks.items()
                 if s in self.voters and s != self.leader_id}
        acked[self.id] = self._eff_durable()
        c = min(self.config.agreed(acked), self._last)
        if c > self._commit:
            self._commit = c
            self.peer_commits += 1
            self._emit_commits()

    def snapshot_installed(self, zxid: int) -> None:
        if self._snap_wait is None or zxid != self._snap_wait:
            return
        self._snap_wait = None
        self._durable = max(zxid, min(self._persist_hold, self._last))
        self._persist_hold = -1
        self._on_durable()

    # ------------------------------------------------------------ output
    def ready(self) -> Ready:
        self._flush_outboxes()
        r = Ready(
            messages=self._out,
            persist_epochs=(EpochState(self._accepted, self._current, self._accepted_leader)
                            if self._p_epochs else None),
            install_snapshot=self._p_snapshot,
            truncate_to=self._p_trunc,
            persist=self._p_entries,
            commit=self._p_commit,
            role=self.role,
            leader_id=self.leader_id,
            epoch=self.epoch,
            serving=self.serving,
            events=self._events,
            config=self._p_config,
        )
        self._p_config = None
        self._out = []
        self._ack_slot = None
        self._p_epochs = False
        self._p_snapshot = None
        self._p_trunc = None
        self._p_entries = []
        self._p_commit = []
        self._events = []
        return r

    # ------------------------------------------------------------ log helpers
    def _append(self, zxid: int, payload: bytes) -> None:
        self._p_entries.append((zxid, payload))
        self._last = zxid
        if self._config_of_entry is not None:
            self._note_entry(zxid, payload)

    def _truncate(self, zxid: int) -> None:
        self._cfg_pending = [c for c in self._cfg_pending if c[0] <= zxid]
        self._p_entries = [e for e in self._p_entries if e[0] <= zxid]
        if self._p_snapshot is None:
            self._p_trunc = zxid if self._p_trunc is None else min(self._p_trunc, zxid)
        self._last = zxid
        self._durable = min(self._durable, zxid)
        self._commit = min(self._commit, zxid)

    def _install(self, zxid: int, data: bytes) -> None:
        self._cfg_pending = []  # the caller adopts the snapshot's configuration
        self._p_snapshot = (zxid, data)
        self._p_trunc = None
        self._p_entries = []
        self._p_commit = [c for c in self._p_commit if c[0] > zxid]
        self._last = zxid
        self._applied = zxid
        self._commit = zxid
        self._durable = zxid
        self._snap_wait = zxid
        self._persist_hold = -1

    def _read_after(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """The log as it will be once the pending Ready is applied."""
        if self._p_snapshot is None:
            limit = self._p_trunc
            for z, p in self._store.entries_after(zxid):
                if limit is not None and z > limit:
                    break
                yield z, p
        for z, p in self._p_entries:
            if z > zxid:
                yield z, p

    def _has_entry(self, zxid: int) -> bool:
        if zxid == self._store.snap_zxid:
            return True
        if any(z == zxid for z, _ in self._p_entries):
            return True
        return self._store.has_entry(zxid)

    def _floor(self, zxid: int) -> int:
        """Largest zxid <= `zxid` in our log (or the snapshot's zxid)."""
        best = self._store.snap_zxid
        for z, _ in self._read_after(best):
            if z > zxid:
                break
            best = z
        return best

    def _eff_durable(self) -> int:
        return -1 if self._snap_wait is not None else self._durable

    def _persist_epochs(self) -> None:
        self._p_epochs = True

    def _emit_commits(self) -> None:
        self._emit_commits_upto()
        if (not self.serving and self.role == LEADING and self._phase == "broadcast"
                and self._applied >= self._initial):
            # A leader serves once its host has applied its whole initial history:
            # the commits of it go out before this flag in the same Ready. A quorum of
            # followers can establish the epoch while our own log is not yet durable
            # (a slow disk); a write prepared against the tree before then would be
            # prepared against state that lacks committed txns (found by the
            # whole-server simulation, seed 75: versions went back).
            self.serving = True
            if self._establish_waited:
                self._establish_waited = False
                self._events.append(f"leading epoch {self._epoch}: history applied to "
                                    f"{fmt_zxid(self._initial)}; serving")

    def _emit_commits_upto(self) -> None:
        while True:
            target = min(self._commit, self._eff_durable(), self._last)
            if target <= self._applied:
                return
            activate: Config | None = None
            for z, p in self._read_after(self._applied):
                if z > target:
                    break
                self._p_commit.append((z, p))
                self._applied = z
                if self._cfg_pending and self._cfg_pending[0][0] <= z:
                    while self._cfg_pending and self._cfg_pending[0][0] < z:
                        self._cfg_pending.pop(0)  # not in the log any more
                    if self._cfg_pending and self._cfg_pending[0][0] == z:
                        activate = self._cfg_pending.pop(0)[1]
                        break
            if activate is None:
                return
            # outside the loop: the activation may change our role (and emit commits
            # itself, e.g. as a new leader); then go on from wherever that left us.
            # A leader that steps down here still applies what is committed.
            self._activate(activate, committed=True)

    def _leader_current_epoch(self) -> None:
        """Leader: take the new epoch as current (persisted, and in our votes) only once
        our own log holds the epoch's initial history durably -- as a follower does on
        NEWLEADER. Taken earlier, a leader whose unsynced tail was then lost (a failed
        write, a power loss) came back claiming the new epoch with a shorter history,
        won the next election and truncated committed txns away on the members that
        had them (found by the whole-server simulation, seed 1341)."""
        if (self.role == LEADING and self._phase in ("sync", "broadcast")
                and self._current != self._epoch and self._eff_durable() >= self._initial):
            self._current = self._epoch
            self._persist_epochs()

    def _on_durable(self) -> None:
        if self.role == LEADING:
            self._leader_current_epoch()
            if self._phase == "sync":
                self._maybe_establish()
            elif self._phase == "broadcast":
                self._advance_commit()
        elif self.role in (FOLLOWING, OBSERVING):
            self._learner_durable()
        self._emit_commits()

    # ------------------------------------------------------------ election
    def _self_vote(self) -> tuple[int, int, int]:
        if not self.is_voter:
            return (0, 0, -1)
        return (self._current, -1 if self.untrusted_empty else self._last, self.id)

    def _notification(self) -> bytes:
        pe, z, leader = self._vote
        if self.role != LOOKING:
            # out of election we report whom we follow and in which Zab epoch (0 while
            # it is still being discovered): a LOOKING server joins when these agree
            pe = self._epoch
            leader = self.leader_id if self.leader_id is not None else leader
        cfg = self.config
        return m.encode(m.NOTIFICATION, m.Notification(
            leader, z, pe, self._clock, _STATE_CODE[self.role], cfg.version, cfg.data))

    def _send_votes(self) -> None:
        msg = self._notification()
        for v in sorted(self.voters):
            if v != self.id:
                self._out.append((v, msg))
        self._last_sent_votes = self._now

    def _reset_role_state(self) -> None:
        self._handlers = {}
        self._seen_sessions = {}
        self._connected = {}
        self._epoch_acks = set()
        self._phase = ""
        self._fstage = ""
        self._nl_zxid = None
        self._writer_acked = -1
        self._peer_acks = {}
        self._peer_acked = {}
        self._peer_ack_wanted = {}
        self._want_sent = -_WANT_TICKS
        self.serving = False
        self._establish_waited = False

    def _become_looking(self, why: str, vote: tuple[int, int, int] | None = None) -> None:
        if self.role != LOOKING or why == "starting":
            self._events.append(f"looking: {why}")
            self.looking_count += 1
        self._reset_role_state()
        self.role = LOOKING
        self.leader_id = None
        self._epoch = 0
        self._clock += 1
        self._vote = self._self_vote()
        if vote is not None and self.is_voter:
            # we know a better candidate (a follower that was ahead of us): vote for it
            self._vote = max(self._vote, vote)
        self._recv = {}
        self._ooe = {}
        self._early_infos = {}
        self._finalize = False
        self._send_votes()
        if self.is_voter:
            self._check_votes()

    def _tick_looking(self) -> None:
        if self._finalize:
            self._finalize = False
            if self.config.has_quorum(self._vote_ids()):
                self._decide(self._vote[2])
                return
        if self._now - self._last_sent_votes >= self.limits.election_timeout:
            self._send_votes()

    def _vote_ids(self) -> set[int]:
        v = self._vote
        return {self.id} | {s for s, w in self._recv.items() if w == v and s in self.voters}

    def _check_votes(self) -> None:
        ids = self._vote_ids()
        if ids >= self.voters:
            self._decide(self._vote[2])
        elif self.config.has_quorum(ids):
            # like FLE's finalizeWait: give better votes one tick to arrive
            self._finalize = True

    def _on_notification(self, frm: int, n) -> None:
        looking_sender = n.state == 0
        if (n.config_version > self.config.version and self.role == LOOKING
                and self._config_of_data is not None and n.config is not None):
            cfg = self._config_of_data(n.config_version, n.config)
            if cfg is not None:
                cfg = replace(cfg, version=n.config_version)
                # a newer configuration than ours is in force: ours is out of date
                # (we were down during a reconfig, or we are joining)
                self._events.append(f"adopting configuration 0x{cfg.version:x} from {frm}")
                self._activate(cfg, committed=False)
                self._become_looking("adopted a newer configuration")
        if self.role != LOOKING:
            if (self.role in (FOLLOWING, OBSERVING) and frm == self.leader_id
                    and n.state == _STATE_CODE[LEADING] and self._fstage == "broadcast"
                    and n.peer_epoch == self._epoch):
                # our leader dropped our session (see _tick_leading): start a new one.
                # Only in broadcast: votes ride another link than Zab's, so the reply
                # to a vote we sent while looking can arrive after our LEADERINFO, and
                # must not restart the sync it belongs to
                self._resync(f"leader {frm} dropped our session")
                return
            if (self.role == LEADING and self._phase == "broadcast" and frm in self.voters
                    and n.state in (_STATE_CODE[FOLLOWING], _STATE_CODE[LEADING])
                    and n.peer_epoch > self._epoch):
                # a voter follows (or leads) a newer epoch: a quorum chose a new leader
                # while we were paused or cut off (see _tell_deposed). Stepping down
                # now, rather than after syncLimit, frees our clients at once.
                self._step_down(f"server {frm} is in a newer epoch ({n.peer_epoch})")
                return
            if (looking_sender and frm == self.leader_id and self.role != LEADING
                    and n.election_epoch > self._leader_round):
                # our leader is electing again (ZooKeeper's learner sees the connection
                # close): join the election at once rather than after a timeout
                self._become_looking(f"leader {frm} is looking")
            elif (frm == self.leader_id and self.role != LEADING and self._fstage != "broadcast"
                  and (looking_sender and n.leader != frm or n.state == _STATE_CODE[FOLLOWING])):
                # we decided for `frm` on a quorum of votes, but it went on to vote for
                # (or follow) a better candidate that turned up late: it will never lead
                # us. ZooKeeper's learner finds out when the connection to a server that
                # is not leading fails; without this we would wait out initLimit.
                self._become_looking(f"server {frm} is not leading (it votes for {n.leader})")
            else:
                if looking_sender:
                    self._out.append((frm, self._notification()))
                return
        if frm not in self.voters:
            if n.config_version < self.config.version:
                # it knows an older configuration (it was away, or it is outside
                # ours): our reply carries the newer one, as ZooKeeper's does
                self._out.append((frm, self._notification()))
            return  # a looking observer: its vote never counts
        nvote = (n.peer_epoch, n.zxid, n.leader)
        if looking_sender:
            if not self.is_voter or self.removed:
                return
            if self.untrusted_empty or n.zxid == -1:
                return  # an empty database that may have been wiped (distrust_empty_db)
            if n.election_epoch > self._clock:
                self._clock = n.election_epoch
                self._recv = {}
                self._finalize = False
                self._vote = max(self._self_vote(), nvote) if n.leader in self.voters \
                    else self._self_vote()
                self._send_votes()
            elif n.election_epoch < self._clock:
                self._out.append((frm, self._notification()))
                return
            elif n.leader in self.voters and nvote > self._vote:
                self._vote = nvote
                self._finalize = False
                self._send_votes()
            self._recv[frm] = nvote
            self._check_votes()
            return
        # a voter that is following or leading: join its leader once a quorum of
        # voters report following it in the same epoch and it reports leading that
        # epoch (FLE's out-of-election path; we compare Zab epochs rather than election
        # rounds because learners may re-attach to a leader re-elected in a later round)
        self._ooe[frm] = (n.leader, n.peer_epoch, n.state, n.election_epoch)
        leader = n.leader
        if leader == self.id or leader not in self.voters:
            return
        lv = self._ooe.get(leader)
        if lv is None or lv[2] != _STATE_CODE[LEADING] or lv[1] != n.peer_epoch \
                or lv[0] != leader:
            return
        agree = {s for s, (ld, pe, _, _) in self._ooe.items()
                 if ld == leader and pe == n.peer_epoch and s in self.voters}
        if self.config.has_quorum(agree):
            self._clock = max(self._clock, n.election_epoch)
            self._vote = (n.peer_epoch, n.zxid, leader)
            self._decide(leader, lv[3])

    def _decide(self, leader: int, leader_round: int | None = None) -> None:
        self._leader_round = self._clock if leader_round is None else leader_round
        self._finalize = False
        self._reset_role_state()
        early, self._early_infos = self._early_infos, {}
        if leader == self.id:
            self._become_leading()
            for frm, msg in early.items():
                self.receive(frm, msg)  # as if they had arrived just now
        else:
            self._become_learner(leader)

    # ------------------------------------------------------------ leader
    def _become_leading(self) -> None:
        self.role = LEADING
        self.leader_id = self.id
        self._phase = "discovery"
        self._epoch = 0
        self._lead_since = self._now
        self._connected = {self.id: self._accepted}
        self._events.append(f"elected leader (round {self._clock}); discovering a new epoch")
        self._maybe_fix_epoch()

    def _step_down(self, why: str, vote: tuple[int, int, int] | None = None) -> None:
        self._events.append(f"stepped down as leader of epoch {self._epoch}: {why}")
        self._become_looking(why, vote)

    def _tick_leading(self) -> None:
        lim = self.limits
        if self._phase != "broadcast" and self._now - self._lead_since > lim.init_limit:
            self._step_down(f"no quorum established within initLimit ({lim.init_limit} ticks)")
            return
        for sid in list(self._handlers):
            h = self._handlers[sid]
            if h.stage != "synced":
                if self._now - h.since > lim.init_limit:
                    del self._handlers[sid]
                    self._events.append(f"learner {sid} did not sync within initLimit")
                    continue
            elif self._now - h.last_heard > lim.sync_limit:
                del self._handlers[sid]
                self._events.append(f"learner {sid} silent for syncLimit; dropped")
                # tell it (our vote: leading this epoch), as ZooKeeper's leader closes
                # the learner's socket: a learner that was paused reads this first when
                # it resumes and resyncs at once, rather than serving stale reads and
                # holding its clients' writes until it notices our silence (syncLimit)
                self._out.append((sid, self._notification()))
                continue
            if h.stage != "info":
                self._send(h, m.PING, m.Zxid(self._commit))
        self._check_quorum()

    def _check_quorum(self) -> None:
        """Leading in broadcast: step down once the voters in sync are no quorum."""
        if self._phase == "broadcast":
            alive = {self.id} | {h.sid for h in self._handlers.values()
                                 if h.stage == "synced" and h.sid in self.voters}
            if not self.config.has_quorum(alive):
                self._step_down(
                    f"lost quorum ({len(alive)} of {len(self.voters)} voters in sync)")

    def _send(self, h: _Handler, t: int, body) -> None:
        h.outbox.append([t, body])

    def _send_entry(self, h: _Handler, entry) -> None:
        """`_send_entries` of one proposal (the broadcast's hot path, ~5 % of a
        leader's CPU under setData): it joins the ENTRIES message at the tail of
        the outbox while that has room."""
        ob = h.outbox
        if ob:
            last = ob[-1]
            if last[0] == _ENTRIES:
                batch = last[1].entries
                if len(batch) < _MAX_BATCH:
                    batch.append(entry)
                    return
        ob.append([_ENTRIES, m.Entries([entry])])

    def _send_entries(self, h: _Handler, entries) -> None:
        ob = h.outbox
        recs = [m.Entry(z, p) for z, p in entries]
        while recs:
            if ob and ob[-1][0] == m.ENTRIES and len(ob[-1][1].entries) < _MAX_BATCH:
                room = _MAX_BATCH - len(ob[-1][1].entries)
                ob[-1][1].entries.extend(recs[:room])
                recs = recs[room:]
            else:
                ob.append([m.ENTRIES, m.Entries(recs[:_MAX_BATCH])])
                recs = recs[_MAX_BATCH:]

    def _on_followerinfo(self, frm: int, head, body) -> None:
        # a server outside the configuration learns as what it says it is, voting
        # nowhere until a reconfig adds it
        observer = frm in self.observers if frm in self.members else bool(body.observer)
        if body.observer != observer:
            self._events.append(f"dropped FOLLOWERINFO from {frm}: wrong learner type")
            return
        seen = self._seen_sessions.setdefault(frm, [])
        if head.session in seen:
            return  # duplicate or delayed copy of an earlier connection attempt
        seen.append(head.session)
        if len(seen) > 32:
            del seen[0]
        h = _Handler(frm, head.session, observer, body.accepted_epoch, self._now)
        self._handlers[frm] = h
        if self._phase == "discovery":
            if not observer:
                self._connected[frm] = body.accepted_epoch
                self._maybe_fix_epoch()
            return
        a = body.accepted_epoch
        if frm in self.voters and (a > self._epoch or (a == self._epoch and body.accepted_leader != self.id)):
            # this voter promised a newer epoch (to a leader that never got going) and
            # can never follow us; ZooKeeper leaves it out until the next election, we
            # start that election now so that no voter stays locked out
            self._epoch_floor = max(self._epoch_floor, a)
            self._step_down(f"voter {frm} accepted epoch {a} >= ours")
            return
        self._send_leaderinfo(h)

    def _maybe_fix_epoch(self) -> None:
        if not self._joint_ok(self._connected):
            return
        e = max(max(self._connected.values()), self._epoch_floor) + 1
        self._epoch = e
        self._accepted = e
        self._accepted_leader = self.id
        self._persist_epochs()
        self._phase = "epoch"
        self._epoch_acks = {self.id}
        self._events.append(f"proposing epoch {e}")
        for h in self._handlers.values():
            if h.stage == "info":
                self._send_leaderinfo(h)
        self._maybe_epoch_quorum()

    def _send_leaderinfo(self, h: _Handler) -> None:
        h.stage = "epoch"
        self._send(h, m.LEADERINFO, m.Empty())

    def _handler_for(self, frm: int, head, what: str) -> _Handler | None:
        h = self._handlers.get(frm)
        if head.epoch != self._epoch:
            if head.epoch < self._epoch:
                self._events.append(
                    f"dropped old-epoch {what} from {frm} (epoch {head.epoch} < {self._epoch})")
            else:
                self._events.append(f"dropped {what} from {frm} for epoch {head.epoch}")
            return None
        if h is None or h.session != head.session:
            self._events.append(f"dropped {what} from {frm}: stale session")
            return None
        h.last_heard = self._now
        return h

    def _on_ackepoch(self, frm: int, head, body) -> None:
        h = self._handler_for(frm, head, "ACKEPOCH")
        if h is None or h.stage != "epoch":
            return
        h.stage = "acked"
        h.peer_last = body.last_zxid
        if self._phase == "epoch":
            if h.observer:
                return
            if frm in self.voters and (
                    body.current_epoch, body.last_zxid) > (self._current, self._last):
                self._step_down(
                    f"follower {frm} is ahead (epoch {body.current_epoch}, zxid "
                    f"{fmt_zxid(body.last_zxid)} > {self._current}, {fmt_zxid(self._last)})",
                    vote=(body.current_epoch, body.last_zxid, frm))
                return
            self._epoch_acks.add(frm)
            self._maybe_epoch_quorum()
        elif self._phase == "sync":
            if not h.observer:
                self._start_sync(h)
        else:
            self._start_sync(h)

    def _maybe_epoch_quorum(self) -> None:
        if self._phase != "epoch" or not self._joint_ok(self._epoch_acks):
            return
        self._phase = "sync"
        self._initial = self._last
        self._leader_current_epoch()
        self._events.append(
            f"epoch {self._epoch} acknowledged by a quorum; syncing to {fmt_zxid(self._initial)}")
        for h in list(self._handlers.values()):
            if h.stage == "acked" and not h.observer:
                self._start_sync(h)
        self._maybe_establish()

    def _start_sync(self, h: _Handler) -> None:
        upto = self._commit if h.observer else self._last
        lz = h.peer_last
        snap = self._store.snap_zxid
        start = lz
        if lz == upto:
            mode, arg, data = m.SYNC_DIFF, lz, None
        elif lz <= upto and lz >= snap and self._has_entry(lz):
            mode, arg, data = m.SYNC_DIFF, lz, None
        else:
            t = self._floor(min(lz, upto)) if lz >= snap else snap
            if lz < snap or (t == snap and snap > 0):
                arg, data = self._store.snapshot()
                mode, start = m.SYNC_SNAP, arg
            else:
                mode, arg, data, start = m.SYNC_TRUNC, t, None, t
        self._send(h, m.SYNC, m.Sync(mode, arg, data))
        entries = []
        for z, p in self._read_after(start):
            if z > upto:
                break
            entries.append((z, p))
        if entries:
            self._send_entries(h, entries)
        self._send(h, m.NEWLEADER, m.Zxid(upto))
        h.stage = "syncing"
        h.nl_zxid = upto
        h.sent_upto = upto
        name = {m.SYNC_DIFF: "DIFF", m.SYNC_TRUNC: "TRUNC", m.SYNC_SNAP: "SNAP"}[mode]
        self.syncs_sent[name] += 1
        self._events.append(
            f"sync {h.sid}: {name} {fmt_zxid(arg)} (+{len(entries)} entries to {fmt_zxid(upto)})")

    def _on_ack(self, frm: int, head, body) -> None:
        h = self._handler_for(frm, head, "ACK")
        if h is None:
            return
        if body.zxid > self._last:
            self._events.append(f"dropped ACK from {frm} beyond our log")
            return
        if body.newleader:
            if h.stage == "syncing" and body.zxid >= h.nl_zxid:
                h.stage = "synced"
                h.acked = body.zxid
                if self._phase == "broadcast":
                    self._send(h, m.UPTODATE, m.Zxid(self._commit))
                else:
                    self._maybe_establish()
                    return
            else:
                return
        elif h.stage == "synced":
            if body.zxid <= h.acked:
                return
            h.acked = body.zxid
        else:
            return
        if self._phase == "broadcast" and not h.observer:
            self._advance_commit()

    def _maybe_establish(self) -> None:
        if self._phase != "sync":
            return
        ids = {h.sid for h in self._handlers.values() if h.stage == "synced" and not h.observer}
        if self._eff_durable() >= self._initial:
            ids.add(self.id)
        if not self._joint_ok(ids):
            return
        n = len(ids & self.voters)
        self._phase = "broadcast"
        self._version_initial_config()
        self._events.append(
            f"leading epoch {self._epoch}: established with {n} voters in sync")
        old = self._commit
        self._commit = max(self._commit, self._initial)
        for h in self._handlers.values():
            if h.stage == "synced":
                self._send(h, m.UPTODATE, m.Zxid(self._commit))
        self._commit_to_learners(old)
        self._activate_committed()
        if self.role != LEADING:
            self._emit_commits()
            return
        for h in list(self._handlers.values()):
            if h.observer and h.stage == "acked":
                self._start_sync(h)
        self._advance_commit()
        self._emit_commits()
        if not self.serving and self.role == LEADING:
            self._establish_waited = True
            self._events.append(f"leading epoch {self._epoch}: not serving until its own log "
                                f"is durable to {fmt_zxid(self._initial)} and applied")

    def _activate_committed(self) -> None:
        """Leader: a configuration is in force once committed (applied or not yet), as
        ZooKeeper's leader activates on commit, so the next reconfig builds on it."""
        while self.role == LEADING and self._cfg_pending and \
                self._cfg_pending[0][0] <= self._commit:
            _, cfg = self._cfg_pending.pop(0)
            self._activate(cfg, committed=True)

    def _advance_commit(self) -> None:
        if self.role != LEADING:
            return
        acked = {h.sid: h.acked for h in self._handlers.values()
                 if h.stage == "synced" and not h.observer}
        acked[self.id] = self._eff_durable()
        c = self.config.agreed(acked)
        for z, cfg in self._cfg_pending:
            # from a reconfig on, the new configuration must agree too (both quorums)
            if c < z:
                break
            c = max(z - 1, min(c, cfg.agreed(acked)))
            if c < z:
                break
        if c <= self._commit:
            return
        old = self._commit
        self._commit = c
        self._commit_to_learners(old)
        self._activate_committed()
        self._emit_commits()

    def _commit_to_learners(self, old: int) -> None:
        c = self._commit
        if c <= old:
            return
        for h in self._handlers.values():
            if h.stage not in ("syncing", "synced"):
                continue
            if h.observer:
                if c > h.sent_upto:
                    batch = [(z, p) for z, p in self._iter_range(h.sent_upto, c)]
                    if batch:
                        self._send_entries(h, batch)
                    h.sent_upto = c
                    self._send(h, m.COMMIT, m.Zxid(c))
            elif h.outbox and h.outbox[-1][0] == m.COMMIT:
                h.outbox[-1][1] = m.Zxid(c)  # cumulative: the later one says it all
            else:
                self._send(h, m.COMMIT, m.Zxid(c))

    def _iter_range(self, after: int, upto: int) -> Iterator[tuple[int, bytes]]:
        for z, p in self._read_after(after):
            if z > upto:
                break
            yield z, p

    # ------------------------------------------------------------ learner
    def _become_learner(self, leader: int) -> None:
        self.role = OBSERVING if self.is_observer else FOLLOWING
        self.leader_id = leader
        self._epoch = 0
        self._budget_since = self._now
        self._heard = self._now
        self._events.append(f"{self.role} leader {leader} (round {self._clock})")
        self._new_session()

    def _new_session(self) -> None:
        self._session = self._rng.getrandbits(62) + 1
        self._fstage = "connect"
        self._expect_seq = 0
        self._stage_since = self._now
        self._nl_zxid = None
        self.serving = False
        self._commit = self._applied
        self._out.append((self._leader_sid(), m.encode(
            m.FOLLOWERINFO, m.FollowerInfo(self._accepted, self.is_observer, self._accepted_leader),
            session=self._session)))

    def _resync(self, why: str) -> None:
        self._events.append(f"resyncing with leader {self.leader_id}: {why}")
        self._new_session()

    def _leader_sid(self) -> int:
        """The leader's id, for a learner's messages (-1, nobody, if it had none)."""
        lid = self.leader_id
        return -1 if lid is None else lid

    def _to_leader(self, t: int, body) -> None:
        self._out.append((self._leader_sid(), m.encode(
            t, body, epoch=self._epoch, session=self._session)))

    def _ack_to_leader(self, zxid: int) -> None:
        """A broadcast-phase ACK. ACKs are cumulative, so one still waiting in the
        output (not yet taken by `ready`) is raised to `zxid` instead of queueing
        another: a log batch of N txns acknowledged one by one sends one ACK."""
        key = (self.leader_id, self._session, self._epoch)
        slot = self._ack_slot
        if slot is not None and slot[1:] == key:
            self._out[slot[0]] = (self._leader_sid(), m.encode(
                m.ACK, m.Ack(zxid, False), epoch=self._epoch, session=self._session))
            return
        self._ack_slot = (len(self._out), *key)
        self._to_leader(m.ACK, m.Ack(zxid, False))

    def _tick_learner(self) -> None:
        lim = self.limits
        if self.serving:
            self._budget_since = self._now
        silence = lim.sync_limit if self._fstage == "broadcast" else lim.init_limit
        if self._now - self._heard > silence:
            self._become_looking(f"leader {self.leader_id} silent for {silence} ticks")
            return
        if self._now - self._budget_since > lim.init_limit:
            self._become_looking(f"not in sync with leader {self.leader_id} within initLimit")
            return
        if self._fstage == "connect" and self._now - self._stage_since >= _RETRY_TICKS:
            self._new_session()

    def _on_leader_message(self, frm: int, head, body) -> None:
        name = m.NAMES[head.type]
        if self.role not in (FOLLOWING, OBSERVING):
            self._events.append(f"dropped {name} from {frm}: not a learner ({self.role})")
            self._tell_deposed(frm, head.epoch)
            return
        if frm != self.leader_id:
            self._events.append(f"dropped {name} from {frm}: not our leader {self.leader_id}")
            self._tell_deposed(frm, head.epoch)
            return
        if head.session != self._session:
            self._events.append(f"dropped {name} from {frm}: stale session")
            return
        if head.seq < self._expect_seq:
            return  # duplicate
        if head.seq > self._expect_seq:
            self._resync(f"lost messages (seq {head.seq}, expected {self._expect_seq})")
            return
        self._expect_seq += 1
        self._heard = self._now
        t = head.type
        if self._fstage == "connect":
            if t != m.LEADERINFO:
                self._resync(f"expected LEADERINFO, got {name}")
                return
            self._on_leaderinfo(frm, head.epoch)
            return
        if head.epoch != self._epoch:
            self._events.append(f"dropped {name} from {frm}: epoch {head.epoch} != {self._epoch}")
            self._resync("epoch changed within a session")
            return
        if t == m.SYNC:
            if self._fstage != "epoch":
                self._resync("unexpected SYNC")
                return
            self._on_sync(body)
        elif t == m.ENTRIES:
            if self._fstage not in ("sync", "broadcast"):
                self._resync("unexpected ENTRIES")
                return
            for e in body.entries:
                if e.zxid <= self._last:
                    self._resync(f"entry {fmt_zxid(e.zxid)} not after our last")
                    return
                self._append(e.zxid, e.payload)
        elif t == m.NEWLEADER:
            if self._fstage != "sync" or body.zxid != self._last:
                self._resync("unexpected NEWLEADER")
                return
            self._nl_zxid = body.zxid
            self._learner_durable()
        elif t in (m.UPTODATE, m.COMMIT, m.PING):
            if self._fstage in ("sync", "broadcast"):
                if body.zxid > self._commit:
                    self._commit = body.zxid
                    self._emit_commits()
                    if self.role not in (FOLLOWING, OBSERVING) or self.leader_id != frm:
                        return  # a configuration it committed changed our role
            if t == m.UPTODATE:
                if self._fstage != "broadcast":
                    self._resync("unexpected UPTODATE")
                    return
                if not self.serving:
                    self.serving = True
                    self.untrusted_empty = False  # synced: it holds what the quorum holds
                    self._version_initial_config()
                    self._events.append(
                        f"in sync with leader {frm} in epoch {self._epoch}; serving")
            elif t == m.PING and self._fstage == "broadcast":
                self._ack_to_leader(self._eff_durable())
        else:
            self._resync(f"unexpected {name}")

    def _tell_deposed(self, frm: int, epoch: int) -> None:
        """A leader of an older epoch than ours is still broadcasting: it was paused
        or cut off while the rest of us elected anew, and it goes on taking clients
        and holding their writes until syncLimit passes without our ACKs. Our vote
        (following or leading the newer epoch) tells it at once that it is deposed,
        as ZooKeeper's old leader learns when its learners' sockets close. Once per
        tick per sender: a resumed leader sends a burst."""
        if self.role == LOOKING or not 0 < epoch < self._epoch:
            return
        if self._told_deposed.get(frm) == self._now:
            return
        self._told_deposed[frm] = self._now
        self._out.append((frm, self._notification()))

    def _on_leaderinfo(self, frm: int, e: int) -> None:
        # observers never count in a quorum, so their promise protects nothing
        if not self.is_voter or e > self._accepted or (
                e == self._accepted and self._accepted_leader == frm):
            if e != self._accepted or self._accepted_leader != frm:
                self._accepted = e
                self._accepted_leader = frm
                self._persist_epochs()
            self._epoch = e
            self._fstage = "epoch"
            self._to_leader(m.ACKEPOCH, m.AckEpoch(self._current, self._last))
        else:
            self._become_looking(
                f"leader {frm} proposed epoch {e}, but we accepted "
                f"{self._accepted} from {self._accepted_leader}")

    def _on_sync(self, body) -> None:
        if body.mode == m.SYNC_DIFF:
            if body.zxid != self._last:
                self._resync("DIFF from a zxid that is not our last")
                return
        elif body.mode == m.SYNC_TRUNC:
            t = body.zxid
            if t < self._applied:
                # would un-apply committed history: the leader lacks a committed txn
                self._become_looking(
                    f"refusing TRUNC to {fmt_zxid(t)} below applied {fmt_zxid(self._applied)}")
                return
            if t > self._last:
                self._resync("TRUNC beyond our log")
                return
            self._truncate(t)
            self._events.append(f"truncated log to {fmt_zxid(t)}")
        else:
            self._install(body.zxid, body.data)
            self._events.append(f"installing snapshot at {fmt_zxid(body.zxid)}")
        self._fstage = "sync"

    def _learner_durable(self) -> None:
        d = self._eff_durable()
        if self._fstage == "sync":
            if self._nl_zxid is not None and d >= self._nl_zxid:
                if self._current != self._epoch:
                    self._current = self._epoch
                    self._persist_epochs()
                self._fstage = "broadcast"
                self._to_leader(m.ACK, m.Ack(self._nl_zxid, True))
        elif self._fstage == "broadcast" and self._nl_zxid is not None and d > self._nl_zxid:
            if d > self._writer_acked:
                self._ack_to_leader(d)
            for sid, msg in self._peer_acks_due(d):
                self._out.append((sid, msg))
                self._peer_acked[sid] = d
            self._peer_commit()
