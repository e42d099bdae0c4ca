"""One simulated run: an ensemble of complete zabby members and clients, faults
drawn from one seed, guarantees checked as it goes and at the end.

    python -m zabby.sim --seed 7 [-v]          # one seed, its trace on failure
    python -m zabby.sim --seeds 0-499           # many; failures listed with their seeds

Continuously:
  * every member applies the same txn for a zxid, in increasing zxid order;
  * at most one member leads (establishing or established) in each epoch;
  * a client never reads a register at a version below one it saw in its session,
    never gets a watch event it did not ask for, never reads a watched node's change
    before that change's event, and gets one connection's events in zxid order.
At the end, once every fault is healed and a leader serves again (liveness):
  * the history of register reads/writes/CAS/sync+reads is linearizable and every
    session's plain reads a prefix of the committed order; no acknowledged write lost;
  * no armed watch whose node changed was left without its event;
  * every ephemeral node of a closed or expired session is gone;
  * multi is atomic: the counter's version equals the count of log children it
    created, and every acknowledged transaction's child is there;
  * every member holds the same tree (byte-for-byte the same snapshot).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import logging
import random
import sys
import time

from ..client import Client
from ..consensus.peer import LEADING
from ..server import connection
from ..testing.linearizability import HistoryRecorder, check_history
from .cluster import CLIENT_PORT, DATA_DIR, Member, member_host
from .loop import Deadlock, Process, SimLoop
from .net import Network
from .workload import (
    COUNTER,
    EPH,
    LOG,
    REGISTERS,
    SESSION_TIMEOUT,
    SimClient,
    ensure_nodes,
)

FAULTS = ("crash", "blackout", "pause", "partition", "oneway", "reset", "storm", "slowdisk",
          "ioerror", "corrupt", "clock", "client-kill")


class SimulationFailure(AssertionError):
    pass


class Simulation:
    def __init__(self, seed: int, *, members: int = 3, observers: int | None = None,
                 clients: int = 4, duration: float = 12.0,
                 faults: tuple[str, ...] = FAULTS, verbose: bool = False,
                 snap_count: int = 200, extra_config: tuple[str, ...] = ()) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        if observers is None:  # one seed in four adds an observer
            observers = 1 if seed % 4 == 3 else 0
        # connections hash by their serial number (server/connection.py): start from
        # 0 so that a seed runs the same in a process that ran others before it
        connection._SERIALS = itertools.count()
        self.duration = duration
        self.faults = faults
        self.verbose = verbose
        self.snap_count = snap_count
        self.trace: list[str] = []
        self.failure: str | None = None
        self.closing = False
        self.loop = SimLoop()
        self.loop.set_exception_handler(self._loop_error)
        self.net = Network(self.loop, seed)
        self.rec = HistoryRecorder(clock=self.loop.time)
        self.canonical: dict[int, bytes] = {}
        self.changes: dict[tuple[str, int], int] = {}
        self.epoch_leader: dict[int, int] = {}
        self.stats: dict[str, int] = {"faults": 0}
        text = "\n".join([
            "tickTime=100", "initLimit=10", "syncLimit=5", f"dataDir={DATA_DIR}",
            f"clientPort={CLIENT_PORT}", "maxSessionTimeout=20000", *extra_config,
            *(f"server.{i}={member_host(i)}:2888:3888" for i in range(1, members + 1)),
            *(f"server.{i}={member_host(i)}:2888:3888:observer"
              for i in range(members + 1, members + observers + 1)),
        ]) + "\n"
        self.members = {i: Member(self, i, text, random.Random(self.rng.random()))
                        for i in range(1, members + observers + 1)}
        self.hosts = ",".join(f"{member_host(i)}:{CLIENT_PORT}" for i in self.members)
        self.clients = [SimClient(self, i, self.hosts, self.rec) for i in range(clients)]
        self._down_until: dict[int, float] = {}
        self._heal_at: float | None = None
        self.nemesis = Process("nemesis")

    # ------------------------------------------------------------ reporting
    def log(self, what: str) -> None:
        line = f"{self.loop.time():9.3f} {what}"
        self.trace.append(line)
        if self.verbose:
            print(line, flush=True)

    def note_failure(self, what: str) -> None:
        if self.failure is None:
            self.failure = what
            self.log(f"FAIL: {what}")

    def fail(self, what: str) -> None:
        self.note_failure(what)
        raise SimulationFailure(what)

    def _loop_error(self, loop, context) -> None:
        if self.closing:
            return
        exc = context.get("exception")
        if isinstance(exc, SimulationFailure):
            return
        if isinstance(exc, asyncio.CancelledError):
            return
        msg = context.get("message", "")
        if exc is not None and self.failure is None:
            self.failure = f"unhandled exception ({msg}): {exc!r}"
            self.log(f"FAIL: {self.failure}")

    # ------------------------------------------------------------ oracles
    def check_applied(self, sid: int, zxid: int, prev: int, digest: bytes) -> None:
        """Every member applies one sequence: the same txn for a zxid, after the same
        predecessor (so none skips a committed txn, or applies one on a tree that
        lacks an earlier one)."""
        first = self.canonical.setdefault(zxid, (prev, digest, sid))
        if first[1] != digest:
            self.fail(f"member {sid} applied a different txn at zxid {zxid:#x} than "
                      f"member {first[2]}")
        if first[0] != prev:
            self.fail(f"member {sid} applied zxid {zxid:#x} on a tree at {prev:#x}; member "
                      f"{first[2]} applied it on one at {first[0]:#x}")

    def record_change(self, path: str, version: int, zxid: int) -> None:
        self.changes[(path, version)] = zxid

    def change_zxid(self, path: str, version: int) -> int | None:
        return self.changes.get((path, version))

    def _check_leaders(self) -> None:
        for sid, m in self.members.items():
            if not m.running or m.server is None:
                continue
            if m.damaged and m.server.serving:
                m.damaged = False  # in sync with a leader again
            peer = m.server.peer
            if peer.role == LEADING and peer.phase in ("sync", "broadcast"):
                other = self.epoch_leader.setdefault(peer.epoch, sid)
                if other != sid:
                    self.fail(f"two leaders in epoch {peer.epoch}: {other} and {sid}")

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            self._check_leaders()

    # ------------------------------------------------------------ faults
    def _alive(self) -> list[Member]:
        return [m for m in self.members.values() if m.running]

    def _restart(self, m: Member) -> None:
        if m.running:
            return
        started = m.start()
        if started is None:
            return  # its disk failed under the start: the supervisor tries again
        if not started:
            # the operator's answer to a refused data directory: wipe it, rejoin by SNAP
            self.log(f"member {m.sid}: wiping its data directory")
            m.wipe()
            if not m.start():
                self.fail(f"member {m.sid} refuses to start on an empty data directory: "
                          f"{m.start_failures[-1]}")
        self.log(f"member {m.sid} started (incarnation {m.incarnation})")

    async def _supervisor(self) -> None:
        """Restarts members that died (systemd's Restart=always), after a while."""
        while True:
            await asyncio.sleep(0.1)
            now = self.loop.time()
            for sid, m in self.members.items():
                if m.running:
                    continue
                due = self._down_until.setdefault(sid, now + self.rng.uniform(0.2, 2.0))
                if now >= due:
                    del self._down_until[sid]
                    self._restart(m)

    async def _nemesis(self, until: float) -> None:
        rng = random.Random(self.rng.random())
        loop = self.loop
        while loop.time() < until:
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            if loop.time() >= until:
                break
            if self._heal_at is not None and loop.time() >= self._heal_at:
                self._heal_network()
            kind = rng.choice(self.faults)
            self.stats["faults"] += 1
            self.stats[kind] = self.stats.get(kind, 0) + 1
            await self._fault(kind, rng)

    def _heal_network(self) -> None:
        if self.net.cuts():
            self.log("heal the network")
        self.net.heal()
        self.net.slow.clear()
        self._heal_at = None

    async def _fault(self, kind: str, rng: random.Random) -> None:
        loop = self.loop
        ms = list(self.members.values())
        m = rng.choice(ms)
        if kind == "crash" and m.running:
            power = rng.random() < 0.5
            self.log(f"member {m.sid}: {'power loss' if power else 'kill -9'}")
            m.crash(power_loss=power)
        elif kind == "blackout":
            # the whole ensemble loses power at once: only what each member fsynced
            # survives (the supervisor brings them back one by one)
            self.log("blackout: every member loses power")
            for x in ms:
                x.crash(power_loss=True)
        elif kind == "pause" and m.running and not m.paused:
            d = rng.choice([rng.uniform(0.05, 0.8), rng.uniform(1.0, 5.0)])
            self.log(f"member {m.sid}: paused for {d:.2f} s")
            m.pause()
            loop.call_later(d, self._resume, m, context=self.nemesis.context)
        elif kind == "partition":
            side = [x for x in ms if rng.random() < 0.5]
            if not side or len(side) == len(ms):
                side = [m]
            hosts_a = {x.host for x in side}
            hosts_b = {x.host for x in ms if x.host not in hosts_a}
            # each client ends up on one side or the other
            for c in self.clients:
                (hosts_a if rng.random() < 0.5 else hosts_b).add(c.proc.host)
            for a in hosts_a:
                for b in hosts_b:
                    self.net.cut(a, b)
                    self.net.cut(b, a)
            self._heal_at = loop.time() + rng.uniform(0.5, 5.0)
            self.log(f"partition {sorted(hosts_a)} | {sorted(hosts_b)}")
        elif kind == "oneway":
            other = rng.choice([x for x in ms if x is not m])
            self.net.cut(m.host, other.host)
            self._heal_at = loop.time() + rng.uniform(0.5, 4.0)
            self.log(f"one-way cut {m.host} -> {other.host}")
        elif kind == "reset":
            if self.net.reset_one(rng):
                self.log("reset a connection")
        elif kind == "storm":
            self.net.slow[m.host] = rng.uniform(0.01, 0.2)
            self._heal_at = loop.time() + rng.uniform(0.5, 3.0)
            self.log(f"latency storm at {m.host} (up to {self.net.slow[m.host] * 1000:.0f} ms)")
        elif kind == "slowdisk":
            d = rng.uniform(0.5, 4.0)
            m.disk.stall_until = loop.time() + d
            self.log(f"member {m.sid}: fsync stalls {d:.2f} s")
        elif kind == "ioerror" and m.running:
            m.inject_io_error(rng)
            self.log(f"member {m.sid}: the next log write or fsync fails")
        elif kind == "corrupt" and m.running and not any(x.damaged for x in ms):
            # one damaged member at a time (until it has synced with a leader again):
            # a second one before that is more than a 3-member ensemble survives (a
            # truncation looks like a torn write, so it loses acknowledged txns
            # silently; a wiped member waits for a quorum of trusted others)
            m.crash(power_loss=False)
            what = m.corrupt_at_rest(rng)
            m.damaged = what is not None
            self.log(f"member {m.sid}: stopped; {what or 'nothing to corrupt'}")
        elif kind == "clock":
            if rng.random() < 0.5:
                step = rng.choice([-1, 1]) * rng.choice([0.5, 30.0, 3600.0])
                m.clock.step_wall(step)
                self.log(f"member {m.sid}: wall clock stepped {step:+.1f} s")
            else:
                rate = rng.uniform(0.97, 1.03)
                m.clock.set_rate(rate)
                self.log(f"member {m.sid}: monotonic clock runs at {rate:.3f}")
        elif kind == "client-kill":
            c = rng.choice(self.clients)
            self.log(f"client {c.idx}: killed")
            c.kill()
            loop.call_later(rng.uniform(0.1, 2.0), self._start_client, c, c.proc,
                            context=self.nemesis.context)

    def _resume(self, m: Member) -> None:
        if m.paused:
            self.log(f"member {m.sid}: resumed")
            m.resume()

    def _start_client(self, c: SimClient, proc: Process | None = None) -> None:
        if proc is not None and proc is not c.proc:
            return  # killed again meanwhile: the later restart runs it
        c.task, c.task_proc = self.loop.spawn(c.proc, c.run(self.t_end)), c.proc

    # ------------------------------------------------------------ phases
    async def _wait_serving(self, within: float, why: str) -> None:
        loop = self.loop
        deadline = loop.time() + within
        while loop.time() < deadline:
            servers = [m.server for m in self.members.values() if m.running]
            if len(servers) == len(self.members) and all(s.serving for s in servers) and \
                    sum(s.role == "leading" for s in servers) == 1:
                return
            await asyncio.sleep(0.05)
        states = {m.sid: (m.server.role, m.server.serving) if m.server else "down"
                  for m in self.members.values()}
        self.fail(f"no leader serving every member {within:.0f} s after {why}: {states}")

    def _server_side(self, c: SimClient) -> str:
        """What the members hold for client `c`'s session (for a stuck request)."""
        if c.client is None:
            return ""
        sid = c.client.session_id
        out = []
        for m in self.members.values():
            if m.server is None:
                continue
            srv = m.server
            for conn in srv.connections:
                if conn.session is not None and conn.session.id == sid:
                    out.append(f"member {m.sid} ({srv.role}): conn inflight={conn.inflight} "
                               f"backlog={[(x, o) for x, o, _, _ in conn.backlog]} "
                               f"closed={conn.closed} read_paused={conn.read_paused} "
                               f"transport={_transport_state(conn.transport)}")
            z = srv.zab
            out.append(f"member {m.sid}: pending_writes={list(z.pending_writes.get(sid, ()))} "
                       f"pending_connect={sid in z.pending_connects} "
                       f"syncs={[k for k in z.pending_syncs if k[0] == sid]}")
        return "; " + "; ".join(out)

    async def _admin(self, fn):
        c = Client(self.hosts, timeout=SESSION_TIMEOUT, rng=random.Random(self.rng.random()))
        await c.start(timeout=30)
        try:
            return await fn(c)
        finally:
            await c.stop()

    async def _main(self) -> None:
        loop = self.loop
        for m in self.members.values():
            self._restart(m)
        await self._wait_serving(30, "the start")
        await self._admin(ensure_nodes)
        self.t_end = loop.time() + self.duration
        for c in self.clients:
            self._start_client(c)
        loop.spawn(self.nemesis, self._watchdog())
        loop.spawn(self.nemesis, self._supervisor())
        await self.nemesis_task(self.t_end)
        # the end of the faults
        self.log("faults over: healing everything")
        self._heal_network()
        for m in self.members.values():
            m.resume()
            m.disk.stall_until = 0.0
            m.fs.clear_faults()
        for m in self.members.values():
            self._restart(m)
        await self._wait_serving(60, "the faults ended")
        self.log("every member serves again")
        for c in self.clients:
            if c.task is None or c.task.done() or c.proc.dead:
                self._start_client(c)
        await asyncio.sleep(1.0)  # the clients run a little in calm weather
        for c in self.clients:
            c.stopping = True
        # (a killed client's task never finishes: its process is gone)
        deadline = loop.time() + 30
        while running := [c.idx for c in self.clients if c.task is not None
                          and not c.task.done() and not c.task_proc.dead]:
            if loop.time() > deadline:
                what = {c.idx: c.describe() + self._server_side(c) for c in self.clients
                        if c.idx in running}
                self.fail(f"clients did not stop within 30 s: {what}")
            await asyncio.sleep(0.05)
        self.log("clients stopped; final reads")
        done = [loop.spawn(c.proc, c.finish()) for c in self.clients]
        await asyncio.gather(*done)
        self.log("clients closed their sessions")
        # sessions of killed clients (and clients' abandoned sessions) expire
        await asyncio.sleep(SESSION_TIMEOUT * 2 + 1)

        async def final(c: Client):
            await c.sync(EPH)
            left = await c.get_children(EPH)
            await c.sync(LOG)
            _, counter = await c.get(COUNTER)
            return left, counter.version, await c.get_children(LOG)

        left, counter, logged = await self._admin(final)
        if left:
            self.fail(f"ephemeral nodes of closed or expired sessions remain: {sorted(left)}")
        if counter != len(logged):
            self.fail(f"multi not atomic: the counter is at version {counter} but "
                      f"{len(logged)} transactions created their log node")
        lost = sorted(set(x for c in self.clients for x in c.multis_acked) - set(logged))
        if lost:
            self.fail(f"acknowledged transactions lost: their log nodes {lost[:5]} are gone")
        self.stats["multis"] = counter
        await self._converged()

    async def nemesis_task(self, until: float) -> None:
        await self.loop.spawn(self.nemesis, self._nemesis(until))

    async def _converged(self) -> None:
        loop = self.loop
        deadline = loop.time() + 20
        while loop.time() < deadline:
            zs = {m.sid: m.server.tree.last_zxid for m in self.members.values()}
            if len(set(zs.values())) == 1:
                break
            await asyncio.sleep(0.1)
        else:
            self.fail(f"members did not converge on one zxid: {zs}")
        states = {m.sid: tree_state(m.server.tree) for m in self.members.values()}
        first_sid, first = next(iter(states.items()))
        for sid, st in states.items():
            if st != first:
                self.fail(f"member {sid}'s tree differs from member {first_sid}'s at the same "
                          f"zxid {zs[sid]:#x}: {_first_difference(first, st)}")
        self.stats["last_zxid"] = zs[1]

    def run(self) -> dict:
        loop = self.loop
        asyncio.set_event_loop(loop)
        t0 = time.perf_counter()
        main = loop.spawn(self.nemesis, self._main())
        try:
            while not main.done():
                loop.run_until(loop.time() + 0.5)
                if self.failure is not None:
                    break
                if loop.time() > self.duration + 400:
                    self.fail("the run did not finish in virtual time")
            if self.failure is None:
                main.result()
        except SimulationFailure:
            pass
        except Deadlock as e:
            self.failure = self.failure or f"deadlock: {e}"
        except Exception as e:  # noqa: BLE001 - e.g. the checker's client could not connect
            self.failure = self.failure or f"the run broke off: {e!r}"
        finally:
            self._close()
        if self.failure is not None:
            raise SimulationFailure(f"seed {self.seed}: {self.failure}")
        ops = self.rec.history()
        initial = {k: ("", 0) for k in REGISTERS}
        res = check_history(ops, initial)
        if res.problems:
            raise SimulationFailure(f"seed {self.seed}: register history: {res.problems[0]}")
        self.stats.update(
            seed=self.seed, virtual_s=round(loop.time(), 1),
            real_s=round(time.perf_counter() - t0, 2), ops=len(ops),
            ok=sum(o.outcome == "ok" for o in ops),
            unknown=sum(o.outcome == "unknown" for o in ops),
            events=sum(c.events for c in self.clients),
            sessions=sum(c.gen for c in self.clients),
            txns=len(self.canonical), undecided=len(res.undecided),
            elections=len(self.epoch_leader),
            # commits a follower took from the other followers' ACKs (PEER_ACK)
            peer_commits=sum(m.peer_commits + (m.server.peer.peer_commits if m.server else 0)
                             for m in self.members.values()),
            history=_digest(ops))
        return self.stats

    def _close(self) -> None:
        """Unwind every task (of live and dead processes alike) so that nothing is
        left half-run when the loop closes; what they do now is not checked."""
        loop = self.loop
        self.closing = True
        loop.draining = True
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            try:
                loop.run_until_complete(asyncio.wait(tasks, timeout=5))
            except BaseException:  # noqa: BLE001 - teardown only
                pass
        try:
            loop.close()
        except Exception:  # noqa: BLE001
            pass
        asyncio.set_event_loop(None)


def _transport_state(t) -> str:
    peer = getattr(t, "peer", None)
    pipe = getattr(peer, "out", None)
    return (f"reading_paused={getattr(t, 'reading_paused', '?')} lost={getattr(t, 'lost', '?')} "
            f"inbound queued={len(pipe.queue) if pipe else '?'} "
            f"timer={getattr(pipe, 'timer', '?') is not None}")


_NODE_FIELDS = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                "aversion", "ephemeral_owner", "pzxid")


def tree_state(tree) -> dict:
    """What every member must agree on: each znode's data, ACL, stat and children
    (as a set: their order in memory depends on how the tree was built), and the
    sessions."""
    nodes = {}
    for path, node in tree.iter_nodes():
        stat = tuple(getattr(node, f) for f in _NODE_FIELDS)
        if path == "/zookeeper/config":
            # each member writes its view of the configuration into its own tree at
            # its own time, as ZooKeeper does (its mtime is local)
            stat = stat[:5] + stat[6:]
        nodes[path] = (stat, frozenset(node.children or ()))
    return {"nodes": nodes, "sessions": dict(tree.sessions), "zxid": tree.last_zxid}


def _digest(ops) -> str:
    """A short digest of the recorded history: two runs of a seed must agree on it."""
    h = hashlib.sha256()
    for o in ops:
        h.update(repr((o.process, o.kind, o.key, o.invoke, o.complete, o.outcome, o.value,
                       o.result, o.zxid)).encode())
    return h.hexdigest()[:16]


def _first_difference(a: dict, b: dict) -> str:
    if a["sessions"] != b["sessions"]:
        return f"sessions {a['sessions']} vs {b['sessions']}"
    for path in sorted(set(a["nodes"]) | set(b["nodes"])):
        x, y = a["nodes"].get(path), b["nodes"].get(path)
        if x != y:
            return f"{path}: {x} vs {y}"
    return "?"


def run_seed(seed: int, **kw) -> dict:
    return Simulation(seed, **kw).run()


def _seeds(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        elif part:
            out.append(int(part))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zabby.sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help="a range and/or list: 0-99,200")
    ap.add_argument("--members", type=int, default=3, help="voting members")
    ap.add_argument("--observers", type=int, default=None,
                    help="observers (default: 1 for seeds = 3 mod 4, else none)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=12.0, help="virtual seconds of faults")
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("-v", "--verbose", action="store_true", help="print the trace as it goes")
    ap.add_argument("--log", action="store_true", help="the servers' own log lines too")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.log else logging.CRITICAL,
                        format="%(name)s %(levelname)s %(message)s")
    seeds = _seeds(a.seeds) if a.seeds else [a.seed if a.seed is not None else 0]
    faults = tuple(f for f in a.faults.split(",") if f)
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        ap.error(f"unknown faults {bad}; known: {','.join(FAULTS)}")
    failed = []
    for seed in seeds:
        sim = Simulation(seed, members=a.members, observers=a.observers, clients=a.clients,
                         duration=a.duration,
                         faults=faults, verbose=a.verbose)
        try:
            st = sim.run()
        except SimulationFailure as e:
            failed.append(seed)
            print(f"seed {seed}: FAIL {e}", flush=True)
            if len(seeds) == 1 and not a.verbose:
                print("\n".join(sim.trace[-60:]))
            continue
        print(" ".join(f"{k}={v}" for k, v in st.items()), flush=True)
    print(f"sim: {len(seeds) - len(failed)}/{len(seeds)} seeds passed"
          + (f"; failed: {','.join(map(str, failed))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
