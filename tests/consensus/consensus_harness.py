"""A small synchronous, hand-driven cluster for unit tests of single phases."""

from __future__ import annotations

import random

from zabby.consensus import Limits, Peer
from zabby.consensus.sim import MemStorage, decode_state

LIMITS = Limits(init_limit=10, sync_limit=5, election_timeout=2)


def store_with(entries=(), *, accepted=0, current=0, snap=None):
    """MemStorage holding `entries` (all durable); `snap` = number of leading
    entries folded into a snapshot (and purged from the log)."""
    st = MemStorage()
    entries = list(entries)
    if snap:
        st.snap_zxid = entries[snap - 1][0]
        st.snap_state = entries[:snap]
        entries = entries[snap:]
    st.append(entries)
    st.n_durable = len(st.zxids)
    st.accepted_epoch = accepted
    st.current_epoch = current
    st.applied = list(st.snap_state)
    return st


class Cluster:
    """Peers wired by an explicit message queue. Nothing happens unless asked:
    `run()` delivers until quiet, `fsync(i)` makes i's log durable, `tick()`."""

    def __init__(self, voters, observers=(), stores=None, *, auto_fsync=True, seed=0):
        self.voters = frozenset(voters)
        self.observers = frozenset(observers)
        self.ids = sorted(self.voters | self.observers)
        self.stores = {i: (stores or {}).get(i) or MemStorage() for i in self.ids}
        self.auto_fsync = auto_fsync
        self.queue: list[tuple[int, int, bytes]] = []
        self.down: set[int] = set()
        self.paused: set[int] = set()  # SIGSTOP: no ticks, messages to it wait (held)
        self.held: list[tuple[int, int, bytes]] = []
        self.cut: set[tuple[int, int]] = set()
        self.events: dict[int, list[str]] = {i: [] for i in self.ids}
        self.commits: dict[int, list[tuple[int, bytes]]] = {i: [] for i in self.ids}
        self.readies: dict[int, list] = {i: [] for i in self.ids}
        self.peers: dict[int, Peer] = {}
        rng = random.Random(seed)
        for i in self.ids:
            self.peers[i] = Peer(i, self.voters, self.observers, self.stores[i],
                                 rng=random.Random(rng.getrandbits(32)), tick_limits=LIMITS)
        for i in self.ids:
            self.drain(i)

    def drain(self, i):
        p, st = self.peers[i], self.stores[i]
        while True:
            rd = p.ready()
            if not rd:
                return
            self.readies[i].append(rd)
            if rd.persist_epochs:
                st.accepted_epoch = rd.persist_epochs.accepted_epoch
                st.current_epoch = rd.persist_epochs.current_epoch
                st.accepted_leader = rd.persist_epochs.accepted_leader
            snap = None
            if rd.install_snapshot:
                z, data = rd.install_snapshot
                st.install(z, decode_state(data))
                snap = z
            if rd.truncate_to is not None:
                st.truncate(rd.truncate_to)
            st.append(rd.persist)
            for to, data in rd.messages:
                if i not in self.down and (i, to) not in self.cut:
                    self.queue.append((i, to, data))
            st.applied.extend(rd.commit)
            self.commits[i].extend(rd.commit)
            self.events[i].extend(rd.events)
            if snap is not None:
                p.snapshot_installed(snap)
            if self.auto_fsync and i not in self.down:
                z = st.fsync()
                if z is not None:
                    p.persisted(z)

    def fsync(self, i):
        z = self.stores[i].fsync()
        if z is not None:
            self.peers[i].persisted(z)
        self.drain(i)

    def run(self, limit=10000):
        n = 0
        while self.queue and n < limit:
            frm, to, data = self.queue.pop(0)
            n += 1
            if to in self.down or (frm, to) in self.cut:
                continue
            if to in self.paused:
                self.held.append((frm, to, data))
                continue
            self.peers[to].receive(frm, data)
            self.drain(to)
        return n

    def tick(self, times=1, only=None):
        for _ in range(times):
            for i in self.ids:
                if i in self.down or i in self.paused or (only is not None and i not in only):
                    continue
                self.peers[i].tick()
                self.drain(i)
            self.run()

    def settle(self, ticks=30):
        """Tick until a leader is established and every live member serves."""
        for _ in range(ticks):
            self.run()
            live = [i for i in self.ids if i not in self.down | self.paused]
            if any(self.peers[i].established for i in live) and all(
                    self.peers[i].serving for i in live):
                return self.leader()
            self.tick()
        raise AssertionError({i: (p.role, p.phase, p.serving) for i, p in self.peers.items()})

    def pause(self, i):
        self.paused.add(i)

    def resume(self, i):
        """SIGCONT: what was sent to it meanwhile is delivered first, in order."""
        self.paused.discard(i)
        mine = [q for q in self.held if q[1] == i]
        self.held = [q for q in self.held if q[1] != i]
        self.queue[:0] = mine

    def leader(self):
        ls = [i for i in self.ids if i not in self.down | self.paused and self.peers[i].established]
        assert len(ls) == 1, ls
        return ls[0]

    def isolate(self, i):
        for j in self.ids:
            if j != i:
                self.cut.add((i, j))
                self.cut.add((j, i))

    def all_events(self, i):
        return "\n".join(self.events[i])


def zx(epoch, counter):
    return (epoch << 32) | counter


def entries(*zxids):
    return [(z, b"p%x" % z) for z in zxids]
