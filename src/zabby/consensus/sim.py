"""Deterministic simulation of a whole Zab ensemble (FoundationDB style).

Everything - network drop / delay / duplication / reordering / partitions /
garbage, crashes that lose unsynced log writes, restarts, pauses, tick skew,
client writes - is drawn from one seed, so any failure replays exactly:

    python -m zabby.consensus.sim --seed 1234 [-v]

Invariants are checked continuously (SimulationFailure on violation):
  * at most one leader per epoch (proposing and established);
  * a newly established leader's history starts with every txn committed so far;
  * every server applies the same sequence (prefix of one canonical sequence),
    in increasing zxid order, snapshots included;
  * no acknowledged write is lost: after faults heal, every server converges on
    the canonical sequence, which holds every acknowledged write;
  * liveness: after faults heal a leader is established and a write commits on
    every server within a bounded number of ticks.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import random
import sys
from collections.abc import Iterator

from . import messages as m
from .peer import LEADING, Config, Limits, NotLeader, Peer

_EVENT_KINDS = (
    ": DIFF", ": TRUNC", ": SNAP", "stepped down", "malformed", "unknown server", "old-epoch",
    "stale session", "resyncing", "refusing", "accepted epoch", "is ahead",
)


class SimulationFailure(AssertionError):
    pass


# reconfiguration (Simulation(reconfig=True)): a config txn is b"cfg:<voters>:<observers>"
# (comma-separated ids); its version is its zxid, which the payload cannot know, so the
# log reader passes it in and a notification carries it beside the description
def _ids(s: str) -> frozenset[int]:
    return frozenset(int(x) for x in s.split(",") if x)


def _cfg_payload(voters, observers, groups=(), weights=()) -> bytes:
    """b"cfg:<voters>:<observers>:<groups>:<weights>": groups ';'-separated id lists,
    weights sid=w pairs (hierarchical quorums when groups are given)."""
    g = ";".join(",".join(map(str, sorted(ids))) for _, ids in groups)
    w = ",".join(f"{sid}={x}" for sid, x in weights)
    return b"cfg:%s:%s:%s:%s" % (",".join(map(str, sorted(voters))).encode(),
                                 ",".join(map(str, sorted(observers))).encode(),
                                 g.encode(), w.encode())


def _cfg_of(version: int, data: bytes) -> Config | None:
    if not data.startswith(b"cfg:"):
        return None
    _, vs, os_, gs, ws = data.decode().split(":")
    groups = tuple((i, _ids(g)) for i, g in enumerate(gs.split(";"), 1) if g)
    weights = tuple((int(a), int(b)) for a, b in (x.split("=") for x in ws.split(",") if x))
    return Config(version, _ids(vs), _ids(os_), data, groups, weights)


def encode_state(entries: list[tuple[int, bytes]]) -> bytes:
    if not entries:
        return b""
    return m.Entries([m.Entry(z, p) for z, p in entries]).to_bytes()


def decode_state(data: bytes) -> list[tuple[int, bytes]]:
    if not data:
        return []
    return [(e.zxid, e.payload) for e in m.Entries.decode(data).entries]


class MemStorage:
    """In-memory durable state of one server: a log whose unsynced tail is lost on
    crash, a snapshot (always durable), the epoch file. Also the server's state
    machine (the applied sequence), which is volatile."""

    def __init__(self) -> None:
        self.zxids: list[int] = []
        self.payloads: list[bytes] = []
        self.n_durable = 0
        self.snap_zxid = 0
        self.snap_state: list[tuple[int, bytes]] = []
        self.accepted_epoch = 0
        self.current_epoch = 0
        self.accepted_leader = -1
        self.applied: list[tuple[int, bytes]] = []
        self.inflight: tuple[int, int] | None = None

    # LogReader
    @property
    def last_zxid(self) -> int:
        return self.zxids[-1] if self.zxids else self.snap_zxid

    def entries_after(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        if zxid < self.snap_zxid:
            raise SimulationFailure(f"entries_after({zxid:x}) below snapshot {self.snap_zxid:x}")
        i = bisect.bisect_right(self.zxids, zxid)
        zs, ps = self.zxids, self.payloads
        while i < len(zs):
            yield zs[i], ps[i]
            i += 1

    def has_entry(self, zxid: int) -> bool:
        i = bisect.bisect_left(self.zxids, zxid)
        return i < len(self.zxids) and self.zxids[i] == zxid

    def snapshot(self) -> tuple[int, bytes]:
        z = self.applied[-1][0] if self.applied else self.snap_zxid
        return z, encode_state(self.applied)

    # caller side
    def append(self, entries) -> None:
        for z, p in entries:
            if self.zxids and z <= self.zxids[-1] or z <= self.snap_zxid:
                raise SimulationFailure(f"append out of order {z:x}")
            self.zxids.append(z)
            self.payloads.append(p)

    def truncate(self, zxid: int) -> None:
        i = bisect.bisect_right(self.zxids, zxid)
        del self.zxids[i:]
        del self.payloads[i:]
        self.n_durable = min(self.n_durable, i)
        if self.inflight is not None:
            self.inflight = (min(self.inflight[0], i), self.inflight[1])

    def install(self, zxid: int, state: list[tuple[int, bytes]]) -> None:
        self.zxids, self.payloads, self.n_durable = [], [], 0
        if self.inflight is not None:
            self.inflight = (0, self.inflight[1])
        self.snap_zxid = zxid
        self.snap_state = list(state)
        self.applied = list(state)

    # asynchronous fsync (group commit): covers what was appended when it started
    def fsync_start(self) -> None:
        self.inflight = (len(self.zxids), self.zxids[-1])

    def fsync_done(self) -> int:
        k, target = self.inflight
        self.inflight = None
        self.n_durable = max(self.n_durable, min(k, len(self.zxids)))
        return target

    def fsync(self) -> int | None:
        if self.n_durable == len(self.zxids):
            return None
        self.n_durable = len(self.zxids)
        return self.zxids[-1]

    def take_snapshot(self, purge: bool) -> None:
        """Snapshot the applied state (durably); optionally purge the log below it."""
        if not self.applied:
            return
        z = self.applied[-1][0]
        if z <= self.snap_zxid:
            return
        if self.n_durable == 0 or self.zxids[self.n_durable - 1] < z:
            raise SimulationFailure("applied an entry that is not durable")
        self.snap_zxid = z
        self.snap_state = list(self.applied)
        if purge:
            i = bisect.bisect_right(self.zxids, z)
            del self.zxids[:i]
            del self.payloads[:i]
            self.n_durable -= i
            if self.inflight is not None:
                self.inflight = (max(0, self.inflight[0] - i), self.inflight[1])

    def crash(self) -> None:
        self.inflight = None
        del self.zxids[self.n_durable:]
        del self.payloads[self.n_durable:]
        self.applied = list(self.snap_state)

    def history(self) -> list[tuple[int, bytes]]:
        tail = [(z, p) for z, p in zip(self.zxids, self.payloads, strict=True)
                if z > self.snap_zxid]
        return list(self.snap_state) + tail


class Node:
    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.store = MemStorage()
        self.peer: Peer | None = None
        self.up = False
        self.paused_until = 0
        self.tick_period = 10
        self.next_tick = 0
        self.proposed: dict[int, tuple[int, bytes]] = {}   # zxid -> (epoch, payload)
        self.fsync_done_at = 0
        self.was_established = False
        self.config: Config | None = None  # reconfig: the newest in force (its "file")


class Simulation:
    def __init__(self, seed: int, *, verbose: bool = False, n_voters: int | None = None,
                 observer: bool | None = None, reconfig: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        r = self.rng
        self.verbose = verbose
        nv = n_voters if n_voters is not None else r.choice((3, 3, 5))
        obs = observer if observer is not None else r.random() < 0.3
        self.voters = frozenset(range(1, nv + 1))
        self.observers = frozenset({nv + 1}) if obs else frozenset()
        self.ids = sorted(self.voters | self.observers)
        # reconfig: two more servers start outside the configuration; client writes are
        # now and then membership changes among them all
        self.reconfig = reconfig
        if reconfig:
            self.ids += [max(self.ids) + 1, max(self.ids) + 2]
        self.p_reconfig = r.choice((0.05, 0.2, 0.4)) if reconfig else 0.0
        self.reconfigs = 0
        self.limits = Limits(init_limit=10, sync_limit=5, election_timeout=2)
        self.nodes = {i: Node(i) for i in self.ids}
        self.now = 0
        self.net: list = []          # heap of (time, seq, to, frm, data)
        self.net_seq = 0
        # fault parameters (chaos phase)
        self.p_drop = r.choice((0.0, 0.01, 0.05, 0.15))
        self.p_dup = r.choice((0.0, 0.02, 0.1))
        self.p_reorder = r.choice((0.0, 0.0, 0.02, 0.2))   # else FIFO per link, like TCP
        self.link_time: dict[tuple[int, int], int] = {}
        self.max_delay = r.choice((2, 5, 15, 40))
        self.p_long_delay = r.choice((0.0, 0.01, 0.05))
        self.p_garbage = r.choice((0.0, 0.005))
        self.p_crash = r.choice((0.0, 0.0005, 0.002, 0.005))
        self.p_power_loss = r.choice((0.0, 0.0, 0.0005))   # every server at once
        self.p_partition = r.choice((0.0, 0.002, 0.005))
        self.p_pause = r.choice((0.0, 0.001))
        self.p_fsync = r.choice((0.05, 0.2, 0.5, 0.9))
        self.p_snapshot = r.choice((0.0, 0.002, 0.01))
        self.p_write = r.choice((0.02, 0.1, 0.3))
        self.chaos_steps = r.choice((1500, 3000))
        self.blocked: set[tuple[int, int]] = set()
        self.healed = False
        # invariants
        self.canonical: list[tuple[int, bytes]] = []
        self.epoch_leader: dict[int, int] = {}
        self.acked: dict[int, bytes] = {}
        self.writes = 0
        self.trace: list[str] = []
        self.kinds: dict[str, int] = {}
        self.stats = {"elections": 0, "crashes": 0, "acked": 0, "events": 0}
        for n in self.nodes.values():
            n.tick_period = r.randint(8, 12)
            n.next_tick = r.randint(1, n.tick_period)
            self._start(n)

    # ------------------------------------------------------------ plumbing
    def log(self, s: str) -> None:
        if self.verbose:
            print(f"[{self.now:6d}] {s}")
        self.trace.append(f"[{self.now}] {s}")
        if len(self.trace) > 400:
            del self.trace[:200]

    def fail(self, what: str) -> None:
        raise SimulationFailure(f"seed {self.seed} step {self.now}: {what}")

    def _start(self, n: Node) -> None:
        n.store.crash()  # state machine from snapshot, unsynced tail gone
        if self.reconfig:
            # like the server's dynamic config file: the newest configuration in force
            # here before the crash
            cfg = n.config or Config(0, self.voters, self.observers,
                                     _cfg_payload(self.voters, self.observers))
            n.peer = Peer(n.sid, cfg.voters, cfg.observers, n.store,
                          rng=random.Random(self.rng.getrandbits(64)), tick_limits=self.limits,
                          config_version=cfg.version, config_data=cfg.data,
                          config_of_entry=lambda p: _cfg_of(0, p), config_of_data=_cfg_of,
                          observer_type=False, config_groups=cfg.groups,
                          config_weights=cfg.weights)
        else:
            n.peer = Peer(n.sid, self.voters, self.observers, n.store,
                          rng=random.Random(self.rng.getrandbits(64)), tick_limits=self.limits)
        n.up = True
        n.proposed = {}
        n.was_established = False
        self._drain(n)

    def _crash(self, n: Node) -> None:
        self.log(f"CRASH {n.sid}")
        self.stats["crashes"] += 1
        n.up = False
        n.peer = None
        n.store.crash()

    def _send(self, frm: int, to: int, data: bytes) -> None:
        r = self.rng
        if not self.healed:
            if (frm, to) in self.blocked or r.random() < self.p_drop:
                return
            copies = 2 if r.random() < self.p_dup else 1
        else:
            copies = 1
        for _ in range(copies):
            if not self.healed and r.random() < self.p_long_delay:
                delay = r.randint(self.max_delay, self.max_delay * 10)
            else:
                delay = r.randint(1, self.max_delay if not self.healed else 3)
            at = self.now + delay
            if self.healed or r.random() >= self.p_reorder:
                at = max(at, self.link_time.get((frm, to), 0))
                self.link_time[(frm, to)] = at
            self.net_seq += 1
            heapq.heappush(self.net, (at, self.net_seq, to, frm, data))

    def _drain(self, n: Node) -> None:
        peer, st = n.peer, n.store
        while True:
            rd = peer.ready()
            if not rd:
                return
            after = []
            if rd.persist_epochs is not None:
                e = rd.persist_epochs
                st.accepted_epoch = e.accepted_epoch
                st.current_epoch = e.current_epoch
                st.accepted_leader = e.accepted_leader
            if rd.install_snapshot is not None:
                z, data = rd.install_snapshot
                state = decode_state(data)
                self._check_prefix(n, state, 0, snapshot=True)
                st.install(z, state)
                after.append(z)
            if rd.truncate_to is not None:
                if st.applied and st.applied[-1][0] > rd.truncate_to:
                    self.fail(f"{n.sid} truncates to {rd.truncate_to:x} below applied "
                              f"{st.applied[-1][0]:x}")
                st.truncate(rd.truncate_to)
            if rd.persist:
                st.append(rd.persist)
            for to, data in rd.messages:
                self._send(n.sid, to, data)
            if rd.commit:
                base = len(st.applied)
                for z, p in rd.commit:
                    if st.applied and z <= st.applied[-1][0]:
                        self.fail(f"{n.sid} applies {z:x} out of order")
                    st.applied.append((z, p))
                self._check_prefix(n, rd.commit, base)
                for z, p in rd.commit:
                    prop = n.proposed.pop(z, None)
                    if prop is not None and prop[1] == p and peer.role == LEADING \
                            and peer.epoch == prop[0]:
                        self.acked[z] = p
                        self.stats["acked"] += 1
            if rd.config is not None:
                n.config = rd.config
            for ev in rd.events:
                self.stats["events"] += 1
                for key in _EVENT_KINDS:
                    if key in ev:
                        self.kinds[key] = self.kinds.get(key, 0) + 1
                self.log(f"{n.sid}: {ev}")
            self._check_leader(n)
            for z in after:
                peer.snapshot_installed(z)

    def _check_prefix(self, n: Node, entries, base: int, snapshot: bool = False) -> None:
        can = self.canonical
        for i, e in enumerate(entries, base):
            if i < len(can):
                if can[i] != e:
                    self.fail(f"server {n.sid} {'snapshot' if snapshot else 'applies'} "
                              f"{e[0]:x} at position {i}, but {can[i][0]:x} was applied there "
                              f"elsewhere (prefix property violated)")
            elif snapshot:
                self.fail(f"snapshot on {n.sid} holds uncommitted {e[0]:x}")
            else:
                if can and e[0] <= can[-1][0]:
                    self.fail(f"canonical sequence not increasing at {e[0]:x}")
                can.append(e)

    def _check_leader(self, n: Node) -> None:
        peer = n.peer
        # several servers may propose the same epoch; only one may get it acknowledged
        if peer.role == LEADING and peer.phase in ("sync", "broadcast"):
            other = self.epoch_leader.setdefault(peer.epoch, n.sid)
            if other != n.sid:
                self.fail(f"two leaders in epoch {peer.epoch}: {other} and {n.sid}")
        est = peer.established
        if est and not n.was_established:
            self.stats["elections"] += 1
            # every txn committed in an earlier epoch is in its history (a leader
            # may establish late, e.g. after a pause, when a later epoch committed
            # more: its followers have moved on, so it can commit nothing new)
            hist = n.store.history()
            bound = peer.epoch << 32
            can = self.canonical[:bisect.bisect_left(self.canonical, (bound, b""))]
            if hist[:len(can)] != can:
                missing = next((e for i, e in enumerate(can)
                                if i >= len(hist) or hist[i] != e), None)
                self.fail(f"leader {n.sid} of epoch {peer.epoch} lacks committed "
                          f"txn {missing[0]:x}")
        n.was_established = est

    # ------------------------------------------------------------ main loop
    def step(self) -> None:
        self.now += 1
        r = self.rng
        # deliver
        while self.net and self.net[0][0] <= self.now:
            _, _, to, frm, data = heapq.heappop(self.net)
            n = self.nodes.get(to)
            if n is None or not n.up:
                continue
            if n.paused_until > self.now:
                self.net_seq += 1
                heapq.heappush(self.net, (n.paused_until, self.net_seq, to, frm, data))
                continue
            n.peer.receive(frm, data)
            self._drain(n)
        if not self.healed:
            self._faults()
        for sid in self.ids:
            n = self.nodes[sid]
            if not n.up or n.paused_until > self.now:
                continue
            if self.now >= n.next_tick:
                n.next_tick = self.now + n.tick_period + (r.randint(-2, 2) if not self.healed else 0)
                n.peer.tick()
                self._drain(n)
            st = n.store
            if st.inflight is not None:
                if self.now >= n.fsync_done_at:
                    n.peer.persisted(st.fsync_done())
                    self._drain(n)
            elif st.n_durable < len(st.zxids) and r.random() < self.p_fsync:
                st.fsync_start()
                n.fsync_done_at = self.now + r.choice((0, 0, 1, 3, 10))
            if not self.healed and r.random() < self.p_snapshot:
                n.store.take_snapshot(purge=r.random() < 0.7)
        if r.random() < self.p_write:
            self._client_write()

    def _faults(self) -> None:
        r = self.rng
        if r.random() < self.p_power_loss:
            self.log("POWER LOSS")
            for n in self.nodes.values():
                if n.up:
                    self._crash(n)
        for sid in self.ids:
            n = self.nodes[sid]
            if n.up and r.random() < self.p_crash:
                self._crash(n)
            elif not n.up and r.random() < 0.01:
                self.log(f"RESTART {sid}")
                self._start(n)
            elif n.up and r.random() < self.p_pause:
                n.paused_until = self.now + r.randint(10, 120)
                self.log(f"PAUSE {sid} until {n.paused_until}")
        if r.random() < self.p_partition:
            self.blocked.clear()
            kind = r.random()
            if kind < 0.3:
                pass  # heal
            elif kind < 0.8:
                side = set(r.sample(self.ids, r.randint(1, len(self.ids) // 2)))
                for a in self.ids:
                    for b in self.ids:
                        if (a in side) != (b in side):
                            self.blocked.add((a, b))
            else:  # asymmetric / partial links
                for a in self.ids:
                    for b in self.ids:
                        if a != b and r.random() < 0.3:
                            self.blocked.add((a, b))
            self.log(f"PARTITION {sorted(self.blocked)}")
        if r.random() < self.p_garbage and self.net:
            # garbage that the transport's checksum would not have caught is not
            # simulated; these are truncated frames and frames from strangers
            _, _, to, frm, data = self.net[r.randrange(len(self.net))]
            self.net_seq += 1
            # (an earlier truncation may have left an empty frame: resend it as is)
            bad = data[: r.randrange(len(data))] if data and r.random() < 0.7 else data
            src = frm if bad is not data else max(self.ids) + 7
            heapq.heappush(self.net, (self.now + 1, self.net_seq, to, src, bad))

    def _client_write(self) -> None:
        leaders = [n for n in self.nodes.values()
                   if n.up and n.paused_until <= self.now and n.peer.established]
        if not leaders:
            return
        n = self.rng.choice(leaders)
        self.writes += 1
        payload = b"w%d" % self.writes
        if self.reconfig and self.rng.random() < self.p_reconfig:
            # a membership change, checked as the server checks one: none in progress,
            # and the new configuration has a quorum in sync (NEWCONFIGNOQUORUM)
            r = self.rng
            pool = list(self.ids)
            voters = frozenset(r.sample(pool, r.randint(1, min(5, len(pool)))))
            observers = frozenset(i for i in pool if i not in voters and r.random() < 0.3)
            groups: tuple = ()
            weights: tuple = ()
            if len(voters) >= 2 and r.random() < 0.3:
                # hierarchical quorums: the voters split into groups, random weights
                k = r.randint(2, min(3, len(voters)))
                order = r.sample(sorted(voters), len(voters))
                groups = tuple((i + 1, frozenset(order[i::k])) for i in range(k))
                weights = tuple((sid, r.choice((0, 1, 1, 2))) for sid in sorted(voters))
            cfg = Config(0, voters, observers, b"", groups, weights)
            if n.peer.reconfig_pending or not n.peer.synced_quorum(cfg):
                return
            payload = _cfg_payload(voters, observers, groups, weights)
            self.reconfigs += 1
            self.log(f"RECONFIG by {n.sid}: voters {sorted(voters)} observers {sorted(observers)}"
                     f" groups {[sorted(g) for _, g in groups]} weights {weights}")
        try:
            z = n.peer.propose(payload)
        except NotLeader:
            return
        n.proposed[z] = (n.peer.epoch, payload)
        self._drain(n)

    def heal(self, keep_down: set[int] = frozenset()) -> None:
        self.healed = True
        self.blocked.clear()
        self.log("HEAL")
        for n in self.nodes.values():
            n.paused_until = 0
            if n.sid in keep_down:
                if n.up:
                    self._crash(n)
            elif not n.up:
                self.log(f"RESTART {n.sid}")
                self._start(n)

    def run(self) -> dict:
        for _ in range(self.chaos_steps):
            self.step()
        if not self.reconfig and self.rng.random() < 0.5:
            # the network heals but a minority of voters (maybe the leader) stays
            # down: writes must go on after at most one election
            f = (len(self.voters) - 1) // 2
            lost = set(self.rng.sample(sorted(self.voters), f))
            if self.observers and self.rng.random() < 0.5:
                lost |= self.observers
            self.heal(keep_down=lost)
            self.log(f"MINORITY DOWN {sorted(lost)}")
            self._await_probe(f"with {sorted(lost)} down")
        self.heal()
        self.p_write = 0.0
        self._await_probe("after healing")
        return self._final_checks()

    def _await_probe(self, when: str) -> None:
        """Liveness: within a bounded number of ticks a leader is established and a
        write commits on every live server."""
        budget_ticks = 2 * self.limits.init_limit + 4 * self.limits.sync_limit + 30
        deadline = self.now + budget_ticks * 12
        probe: tuple[int, bytes] | None = None
        probe_at: tuple[Node, int] = (self.nodes[self.ids[0]], 0)
        while True:
            if self.now > deadline:
                states = {s: (n.peer.role, n.peer.epoch, n.peer.serving, f"{n.peer.last_zxid:x}")
                          for s, n in self.nodes.items() if n.up}
                self.fail(f"no progress {budget_ticks} ticks {when}: probe={probe} "
                          f"states={states}")
            self.step()
            if probe is not None and probe not in self.canonical:
                pn, pe = probe_at
                if not (pn.up and pn.peer.established and pn.peer.epoch == pe):
                    probe = None  # its leader was deposed before committing it: retry
            if probe is None:
                leaders = [n for n in self.nodes.values() if n.up and n.peer.established]
                if leaders:
                    n = leaders[0]
                    self.writes += 1
                    payload = b"probe%d" % self.writes
                    try:
                        z = n.peer.propose(payload)
                    except NotLeader:
                        continue
                    n.proposed[z] = (n.peer.epoch, payload)
                    probe = (z, payload)
                    probe_at = (n, n.peer.epoch)
                    self._drain(n)
            elif all(probe in n.store.applied for n in self.nodes.values()
                     if n.up and not n.peer.removed and self._in_final_config(n)):
                return

    def _in_final_config(self, n: Node) -> bool:
        """Reconfig: servers outside the configuration the leader runs are not part of
        the ensemble (removed, or stale and never told): they need not converge; nor
        need a removed server that a later change named again (it waits to be told)."""
        if not self.reconfig:
            return True
        leaders = [x for x in self.nodes.values() if x.up and x.peer.established]
        return not leaders or n.sid in leaders[0].peer.config.members

    def _final_checks(self) -> dict:
        # convergence: everyone holds the canonical sequence up to the probe
        for n in self.nodes.values():
            if n.store.applied != self.canonical[:len(n.store.applied)]:
                self.fail(f"server {n.sid} diverged")
        members = [n for n in self.nodes.values() if self._in_final_config(n)
                   and not (n.peer is not None and n.peer.removed)]
        for z, p in self.acked.items():
            if (z, p) not in set(self.canonical):
                self.fail(f"acknowledged write {p!r} at {z:x} lost")
        applied_sets = [set(n.store.applied) for n in members]
        for z, p in self.acked.items():
            for s in applied_sets:
                if (z, p) not in s:
                    self.fail(f"acknowledged write {p!r} at {z:x} missing after heal")
        self.stats.update(steps=self.now, committed=len(self.canonical), writes=self.writes,
                          n=len(self.voters), observers=len(self.observers))
        if self.reconfig:
            self.stats["reconfigs"] = self.reconfigs
        return self.stats


def run_seed(seed: int, verbose: bool = False, reconfig: bool = False) -> dict:
    sim = Simulation(seed, verbose=verbose, reconfig=reconfig)
    try:
        return sim.run()
    except SimulationFailure:
        if not verbose:
            sys.stderr.write("\n".join(sim.trace[-60:]) + "\n")
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="replay zabby consensus simulation seeds")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=100, help="run seeds START..START+N-1")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--reconfig", action="store_true", help="with membership changes")
    a = ap.parse_args(argv)
    seeds = [a.seed] if a.seed is not None else range(a.start, a.start + a.seeds)
    for s in seeds:
        try:
            st = run_seed(s, verbose=a.verbose, reconfig=a.reconfig)
        except SimulationFailure as e:
            print(f"FAIL {e}")
            print(f"replay: python -m zabby.consensus.sim --seed {s} -v"
                  + (" --reconfig" if a.reconfig else ""))
            return 1
        if a.seed is not None or a.verbose:
            print(f"seed {s}: ok {st}")
    print(f"{len(seeds)} seeds ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
