"""One ``zabby verify`` run: ensemble (started here, or given), workloads, faults,
final state, checks, output files and the verdict line."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zabby.testing.diskfaults import (
    CLOCK_OFFSET_ENV,
    CORRUPTIONS,
    FSYNC_STALL_ENV,
    damage,
    wipe,
)
from zabby.testing.servers import ServerStartError, ZabbyEnsemble, ZooKeeperEnsemble
from zabby.wire import Err
from zabby.wire import Op as Opcode
from zabby.wire.records import CreateRequest, PathRequest, PathWatchRequest

from . import workloads as W
from .checks import Report, check_all
from .history import History
from .netlab import NetLab, NetnsEnsemble, NetnsServer, NetnsZooKeeperServer, netns_unavailable
from .plot import write_timeline
from .servers import HookedNetnsServer, HookedServer, process_env

FAULTS = ("kill", "pause", "leader-kill", "partition", "oneway", "bridge", "slow-disk",
          "clock-ahead", "corrupt", "wipe")
HOOKED = ("slow-disk", "clock-ahead")  # need zabby's test-only hooks (zabby members only)
# zabby members only: they rely on zabby's data directory layout and messages
AT_REST = ("corrupt", "wipe")
NETNS = ("partition", "oneway", "bridge")  # need network namespaces
# with corrupt or wipe, every member runs with db.autocreate=false (a wiped member takes
# no part in elections until a leader has synced it: it cannot elect a leader that
# lacks acknowledged writes), and snapshots and log segments come often enough for
# each kind of damage to find something to aim at
AT_REST_CONFIG = {"db.autocreate": "false", "snapCount": 400, "preAllocSize": 1024}
CLOCK_AHEAD_MS = (60_000, 3_600_000)  # a restarted member's clock: 1 min to 1 h ahead
TICK_MS = 200
RECOVER_BOUND = 30.0
EXIT = {"VALID": 0, "INVALID": 1, "UNKNOWN": 2, "ERROR": 3}


@dataclass
class Options:
    nodes: int = 3
    faults: list[str] = field(default_factory=list)
    duration: float = 60.0
    seed: int | None = None
    server: str = "zabby"
    hosts: list[tuple[str, int]] | None = None
    out: Path | None = None
    max_steps: int = 2_000_000
    # negative control: the watcher pretends to lose this many data-change events
    drop_watch_events: int = 0
    # extra zoo.cfg keys for the members it starts (e.g. test-only hooks)
    server_config: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float = 30.0  # for the first session (setup) and the final reads
    log: Any = print  # progress lines (stderr in the CLI)


@dataclass
class Outcome:
    verdict: str
    line: str
    report: Report | None = None
    out: Path | None = None

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]


def parse_hosts(text: str) -> list[tuple[str, int]]:
    out = []
    for part in text.split("/", 1)[0].split(","):
        part = part.strip()
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host:
            host, port = part, "2181"
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("no host:port in --hosts")
    return out


class Run:
    def __init__(self, opts: Options) -> None:
        self.o = opts
        self.seed = opts.seed if opts.seed is not None else random.randrange(1 << 31)
        self.rng = random.Random(self.seed)
        # absolute: the members run in their own directories and read their zoo.cfg by
        # this path (a relative --out made every member exit, "cannot read configuration")
        self.out = (Path(opts.out).resolve() if opts.out
                    else Path(tempfile.mkdtemp(prefix="zabby-verify-")))
        self.out.mkdir(parents=True, exist_ok=True)
        self.hist = History()
        self.root = f"/zabby-verify-{int(time.time())}-{self.seed}"
        self.ens = None
        self.lab: NetLab | None = None
        self.ns: str | None = None
        self.endpoints: list[tuple[str, int]] = []
        self.faults = list(opts.faults)
        self.notes: list[str] = []
        self.n_faults = 0
        self.fault_counts: dict[str, int] = {}
        # a member whose data was damaged or wiped and that has not been seen synced
        # again: no other member's data is touched meanwhile (one damaged at a time)
        self.unsynced: int | None = None
        self.reactions: list[dict[str, Any]] = []  # what each corrupt / wipe did
        self.unrecovered = 0
        self.workers: list[W.Worker] = []
        self.watchers: list[W.Worker] = []

    def log(self, msg: str) -> None:
        t = time.monotonic() - self.hist.t0
        self.o.log(f"[{t:7.2f}s] {msg}")

    # ------------------------------------------------------------ ensemble
    def start_ensemble(self) -> None:
        o = self.o
        if o.hosts:
            self.endpoints = list(o.hosts)
            return
        cfg = {"tickTime": TICK_MS, **o.server_config}
        data = self.out / "ensemble"
        if data.exists():
            shutil.rmtree(data)
        netf = [f for f in self.faults if f in NETNS]
        if netf:
            why = netns_unavailable()
            if why is None:
                lab = NetLab(o.nodes)
                try:
                    lab.setup()
                    self.lab = lab
                except Exception as e:  # noqa: BLE001 - reported, the fault skipped
                    why = f"{e}"
                    lab.cleanup()
            if why is not None:
                self.notes.append(f"{','.join(netf)} skipped: {why}")
                self.log(f"{','.join(netf)} fault skipped: cannot make network namespaces "
                         f"({why})")
                for f in netf:
                    self.faults.remove(f)
        hooked = [f for f in self.faults if f in HOOKED]
        if hooked and o.server != "zabby":
            for f in hooked:
                self.faults.remove(f)
            self.notes.append(f"{','.join(hooked)} skipped: they need zabby's test-only hooks")
            self.log(f"{','.join(hooked)} fault skipped: only zabby members have the hooks")
            hooked = []
        at_rest = [f for f in self.faults if f in AT_REST]
        if at_rest and o.server != "zabby":
            for f in at_rest:
                self.faults.remove(f)
            self.notes.append(f"{','.join(at_rest)} skipped: zabby members only")
            self.log(f"{','.join(at_rest)} fault skipped: only for zabby members (they know "
                     f"zabby's data directory and its messages)")
            at_rest = []
        if at_rest:
            cfg = {**AT_REST_CONFIG, **cfg}
        if self.lab is not None:
            if o.server == "zookeeper":
                cls = NetnsZooKeeperServer
            else:
                cls = HookedNetnsServer if hooked else NetnsServer
            self.ens = NetnsEnsemble(data, self.lab, member_cls=cls, **cfg)
            self.ns = self.lab.br
            self._trust_first_start()
            self.ens.start(timeout=90 if o.server == "zookeeper" else 30)
        elif o.server == "zookeeper":
            self.ens = ZooKeeperEnsemble(data, o.nodes, **cfg)
        else:
            self.ens = ZabbyEnsemble(data, o.nodes, member_cls=HookedServer if hooked else None,
                                     start=False, **cfg)
            self._trust_first_start()
            self.ens.start_or_stop()
        self.endpoints = [(m.host, m.port) for m in self.ens.members.values()]

    def _trust_first_start(self) -> None:
        """With db.autocreate=false a member trusts an empty data directory only if it
        holds an ``initialize`` file (zkServer-initialize.sh's): a new ensemble's members
        get one each; a member wiped later does not, so it waits to be synced."""
        for m in self.ens.members.values():
            if str(m.cfg.get("db.autocreate", "true")).lower() == "false":
                log_dir = Path(m.cfg.get("dataLogDir", m.data_dir))
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / "initialize").touch()

    def stop_ensemble(self) -> None:
        if self.ens is not None:
            for m in self.ens.members.values():
                try:
                    m.stop()
                except Exception:  # noqa: BLE001 - best effort, keep cleaning up
                    pass
        if self.lab is not None:
            errs = self.lab.cleanup()
            if errs:
                self.log(f"could not delete namespaces: {errs}")

    # ------------------------------------------------------------ setup
    def _session(self, endpoint=None, timeout: float = 30.0) -> W.Conn:
        eps = [endpoint] if endpoint else self.endpoints
        c = W.Conn("setup", eps, self.ns, random.Random(0), threading.Event())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stop = threading.Event()
            timer = threading.Timer(max(0.1, deadline - time.monotonic()), stop.set)
            c.stop = stop
            timer.start()
            try:
                if c.ensure():
                    return c
            finally:
                timer.cancel()
        raise ServerStartError(f"no session on {eps} within {timeout}s")

    def _retry(self, fn, what: str, timeout: float = RECOVER_BOUND):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                c = self._session(timeout=max(1.0, deadline - time.monotonic()))
                try:
                    return fn(c)
                finally:
                    c.lose()
            except (W.Lost, ServerStartError, *W.LOST) as e:
                last = e
                time.sleep(0.2)
        raise ServerStartError(f"{what}: no answer within {timeout}s ({last!r})")

    def setup_tree(self) -> dict[str, tuple[Any, int]]:
        r = self.root
        nodes = [(r, b""), *((f"{r}/{k}", b"init") for k in W.REGISTER_KEYS),
                 (f"{r}/seq", b""), (f"{r}/ctr", b"0"), (f"{r}/ctrlog", b""), (f"{r}/q", b""),
                 (f"{r}/lock", b""), (f"{r}/lockreg", b""), (f"{r}/eph", b""),
                 (f"{r}/w", b""), *((f"{r}/w/{k}", b"") for k in W.WATCH_KEYS),
                 (f"{r}/wr", b""), (f"{r}/wp", b"")]

        def make(c: W.Conn):
            for path, data in nodes:
                res = c.call(Opcode.CREATE, CreateRequest(path, data, W.OPEN_ACL_UNSAFE, 0))
                if res.err not in (Err.OK, Err.NODEEXISTS):
                    raise ServerStartError(f"create {path}: err {res.err}")

        self._retry(make, "creating the workload's znodes", timeout=self.o.connect_timeout)
        return {f"{r}/{k}": ("init", 0) for k in W.REGISTER_KEYS}

    # ------------------------------------------------------------ workloads
    def start_workloads(self) -> None:
        stop, wstop = threading.Event(), threading.Event()
        self.stop_main, self.stop_watch = stop, wstop
        s = self.seed * 1000
        args = (self.root, self.endpoints, self.ns, self.hist)
        ws: list[W.Worker] = []
        ws += [W.RegisterWorker(i, *args, stop, s + i) for i in range(4)]
        ws += [W.SeqWorker(i, *args, stop, s + 10 + i, pace=0.05) for i in range(1)]
        ws += [W.CounterWorker(i, *args, stop, s + 20 + i) for i in range(2)]
        ws += [W.QueueWorker(i, *args, stop, s + 30 + i) for i in range(2)]
        ws += [W.LockWorker(i, *args, stop, s + 40 + i) for i in range(3)]
        registry: list[str] = []
        ws += [W.EphemeralWorker(i, *args, stop, s + 50 + i, registry=registry, pace=0.1)
               for i in range(2)]
        ws.append(W.EphemeralWorker(9, *args, stop, s + 59, observer=True, registry=registry,
                                    pace=0.1))
        ws += [W.WatchWriter(i, *args, stop, s + 60 + i, pace=0.05) for i in range(1)]
        self.workers = ws
        self.watchers = [W.Watcher(i, *args, wstop, s + 70 + i,
                                   drop_events=self.o.drop_watch_events if i == 0 else 0)
                         for i in range(2)]
        for w in self.watchers + ws:
            w.start()

    def stop_workloads(self) -> list[str]:
        errors = []
        for group, ev in ((self.workers, self.stop_main), (self.watchers, self.stop_watch)):
            ev.set()
            deadline = time.monotonic() + W.IO_TIMEOUT * 3 + 25
            for w in group:
                w.thread.join(max(0.0, deadline - time.monotonic()))
                if w.thread.is_alive():
                    errors.append(f"{w.conn.name} still running")
                if w.error is not None:
                    errors.append(f"{w.conn.name}: {''.join(traceback.format_exception(w.error))}")
        return errors

    # ------------------------------------------------------------ faults
    def nemesis(self, until: float) -> None:
        ens, rng = self.ens, self.rng
        while True:
            time.sleep(rng.uniform(1.0, 2.5))
            if time.monotonic() >= until:
                return
            if not self.faults or ens is None:
                continue
            kind = rng.choice(self.faults)
            if kind in AT_REST and self.unsynced is not None:
                # still damaged (it did not come back within the recovery bound): one
                # damaged member at a time
                kind = "kill"
            ev = self.hist.begin("fault", "nemesis", kind)
            hold = rng.uniform(1.5, 3.5)
            ids = list(ens.members)
            extra: dict[str, Any] = {}
            if kind in ("kill", "leader-kill"):
                i = self._leader() if kind == "leader-kill" else rng.choice(ids)
                if i is None:
                    i = rng.choice(ids)
                ens.members[i].kill()
                what = f"kill -9 member {i}"
                time.sleep(hold)
                ens.members[i].start(wait=False)
            elif kind == "pause":
                i = self._leader() if rng.random() < 0.5 else None
                i = i if i is not None else rng.choice(ids)
                what = f"SIGSTOP member {i} for {hold:.1f}s"
                ens.members[i].pause()
                time.sleep(hold)
                ens.members[i].resume()
            elif kind == "slow-disk":
                i = self._leader() if rng.random() < 0.5 else None
                i = i if i is not None else rng.choice(ids)
                stall = rng.uniform(1.0, 5.0)
                what = f"every fsync of member {i} stalls {stall:.1f}s, for {hold:.1f}s"
                m = ens.members[i]
                armed = process_env(m.pid).get(FSYNC_STALL_ENV) if m.pid else None
                if m.pid and armed != str(m.stall.path):  # (a dead member: nothing to slow)
                    raise RuntimeError(f"slow-disk: member {i} (pid {m.pid}) runs without "
                                       f"the fsync hook ({FSYNC_STALL_ENV}={armed})")
                m.stall.set(stall)
                time.sleep(hold)
                ens.members[i].stall.clear()  # an fsync already asleep finishes its stall
            elif kind == "clock-ahead":
                i = self._leader() if rng.random() < 0.5 else rng.choice(ids)
                i = i if i is not None else rng.choice(ids)
                ahead = rng.randint(*CLOCK_AHEAD_MS)
                what = f"restart member {i} with its clock {ahead / 1000:.0f}s ahead"
                m = ens.members[i]
                m.kill()
                m.clock_offset_ms = ahead
                try:
                    m.start(wait=False)
                finally:
                    m.clock_offset_ms = 0  # its next restart (if any) has the true clock
                # right after the fork the child's /proc environ is still ours (and
                # `ip netns exec` execs once more): read it until the server's shows
                deadline = time.monotonic() + 10.0
                while True:
                    got = process_env(m.pid).get(CLOCK_OFFSET_ENV)
                    if got == str(ahead) or time.monotonic() > deadline or not m.running:
                        break
                    time.sleep(0.05)
                if got != str(ahead):  # the fault did not bite: the run tests nothing
                    raise RuntimeError(f"clock-ahead: member {i} (pid {m.pid}) was started "
                                       f"with {CLOCK_OFFSET_ENV}={got}, not {ahead}")
                time.sleep(hold)
            elif kind == "partition":
                assert self.lab is not None
                i = self._leader() if rng.random() < 0.5 else None
                i = i if i is not None else rng.choice(ids)
                others = [j for j in ids if j != i]
                what = f"isolate member {i} from {others} for {hold:.1f}s"
                cut_at = time.monotonic()
                self.lab.partition([i], others)
                # the fault must really be in place (and gone after the heal), or the
                # run tests nothing: a datagram across a cut link is an ERROR verdict
                self.lab.prove_cut()
                time.sleep(max(0.0, cut_at + hold - time.monotonic()))
                self.lab.prove_linked(self.lab.heal())
            elif kind == "oneway":
                what = self._oneway(ids, hold)
            elif kind == "bridge":
                what = self._bridge(ids, hold)
            elif kind == "corrupt":
                what, extra = self._corrupt(ids, hold)
            else:
                assert kind == "wipe", kind
                what, extra = self._wipe(ids, hold)
            self.n_faults += 1
            self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
            self.hist.done(ev, "info", what=what, end=self.hist.clock(), **extra)
            if kind in AT_REST:
                self.reactions[-1]["_ev"] = ev  # the sync, once seen, goes into it too
            self.log(f"fault {kind}: {what}")
            self.recover()
            self._check_synced()

    # ------------------------------------------------------------ network faults
    def _oneway(self, ids: list[int], hold: float) -> str:
        """One direction of the leader's links lost: leader-mute (what it sends to the
        other members is lost, theirs reaches it) or leader-deaf (the reverse). Clients
        keep both directions. Proved with datagrams (lost one way, delivered the other),
        and after the heal (delivered both ways)."""
        assert self.lab is not None
        rng = self.rng
        i = self._leader()
        i = i if i is not None else rng.choice(ids)
        others = [j for j in ids if j != i]
        variant = rng.choice(("leader-mute", "leader-deaf"))
        pairs = [(i, j) for j in others] if variant == "leader-mute" else [(j, i) for j in
                                                                            others]
        cut_at = time.monotonic()
        for a, b in pairs:
            self.lab.cut_one_way(a, b)
        self.lab.prove_one_way()
        time.sleep(max(0.0, cut_at + hold - time.monotonic()))
        modes = self._modes()
        self.lab.prove_linked(self.lab.heal())
        lost = ", ".join(f"{a} -> {b}" for a, b in pairs)
        return (f"{variant} (member {i}): {lost} lost, the other way delivered, for "
                f"{hold:.1f}s; modes before the heal {modes}")

    def _bridge(self, ids: list[int], hold: float) -> str:
        """A bridge partition: the members but one split in two halves that cannot
        reach each other; the one left (the bridge) reaches both. Half the time the
        leader is in a half, else the bridge. Proved with datagrams: lost across the
        halves, delivered between the bridge and every other member."""
        assert self.lab is not None
        rng = self.rng
        if len(ids) < 3:
            raise RuntimeError("bridge: needs at least 3 members")
        lead = self._leader()
        if lead is not None and rng.random() < 0.5:
            bridge = lead
        else:
            bridge = rng.choice([j for j in ids if j != lead] or ids)
        rest = [j for j in ids if j != bridge]
        rng.shuffle(rest)
        k = rng.randint(1, len(rest) - 1)
        a, b = sorted(rest[:k]), sorted(rest[k:])
        cut_at = time.monotonic()
        self.lab.partition(a, b)
        self.lab.prove_cut()
        linked = [(bridge, j) for j in rest]
        self.lab.prove_linked(linked, timeout=0.5)
        time.sleep(max(0.0, cut_at + hold - time.monotonic()))
        modes = self._modes()
        self.lab.prove_linked(self.lab.heal())
        return (f"split {a} | {b}, member {bridge} reaches both (leader was {lead}), "
                f"for {hold:.1f}s; modes before the heal {modes}")

    def _modes(self) -> dict[int, str]:
        """Each member's mode as it reports it now ("-": not serving), for the record."""
        return {j: self.ens.mode(j) or "-" for j in self.ens.members}

    # ------------------------------------------------------------ data at rest
    def _log_marks(self) -> dict[int, int]:
        out = {}
        for i, m in self.ens.members.items():
            try:
                out[i] = m.log_path.stat().st_size
            except OSError:
                out[i] = 0
        return out

    def _log_since(self, i: int, marks: dict[int, int]) -> str:
        try:
            with open(self.ens.members[i].log_path, "rb") as f:
                f.seek(marks.get(i, 0))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _await_start(self, m, timeout: float = RECOVER_BOUND) -> str:
        """After a start: "exited" (it refused), "serving", or "neither"."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not m.running:
                return "exited"
            try:
                if m.serving():
                    return "serving"
            except OSError:
                pass
            time.sleep(0.1)
        return "neither"

    def _restart_wiped(self, i: int, why: str) -> dict[str, Any]:
        """The operator's answer to a damaged or lost data directory: delete it (myid
        kept) and start the member. db.autocreate=false: it takes no part in elections
        until a leader has synced it. Proof: the directory empty before the start, the
        member's "taking no part" line, then "synced with the leader" and a leader's
        "sync <i>: SNAP" line (or the sync it got) in the logs."""
        m = self.ens.members[i]
        left = wipe(m.data_dir)
        marks = self._log_marks()
        m.start(wait=False)
        self.unsynced = i
        got = self._await_start(m)
        text = self._log_since(i, marks)
        if got == "exited":
            raise RuntimeError(f"{why}: member {i} did not start on an empty data directory"
                               f"\n{m.log_tail()}")
        if "taking no part in leader election" not in text:
            raise RuntimeError(f"{why}: member {i} started on an empty data directory without "
                               f"db.autocreate=false's 'taking no part' line\n{m.log_tail()}")
        out: dict[str, Any] = {"wiped": True, "left": left, "rejoin": got}
        sync = self._sync_seen(i, marks) if got == "serving" else None
        if sync is not None:
            out["sync"] = sync
        return out

    def _sync_seen(self, i: int, marks: dict[int, int]) -> str | None:
        """The sync a leader sent member i since ``marks`` ("SNAP", "DIFF", "TRUNC") once
        member i logged that it synced, or None."""
        if "synced with the leader" not in self._log_since(i, marks):
            return None
        kinds = []
        for j in self.ens.members:
            for line in self._log_since(j, marks).splitlines():
                k = line.find(f"zab: sync {i}: ")
                if k >= 0:
                    kinds.append(line[k + len(f"zab: sync {i}: "):].split(" ", 1)[0])
        return kinds[-1] if kinds else "?"

    def _check_synced(self) -> None:
        """After a fault's recovery: is the damaged member (if any) synced now? A member
        started on a wiped directory says so in its log ("synced with the leader") when
        its first sync is done; the reaction record gets the sync kind."""
        i = self.unsynced
        if i is None or not self.reactions:
            return
        r = self.reactions[-1]
        m = self.ens.members[i]
        if not m.running:
            return
        sync = self._sync_seen(i, r["_marks"]) if r.get("wiped") else None
        if r.get("wiped"):
            if sync is None:
                return
            r["sync"] = sync
        else:
            try:
                if not m.serving():
                    return
            except OSError:
                return
        self.unsynced = None
        r.pop("_marks", None)
        ev = r.pop("_ev", None)
        if ev is not None and sync:
            ev.data["sync"] = sync
        self.log(f"member {i} in sync again" + (f" (by {sync})" if sync else ""))

    def _pick_member(self, ids: list[int]) -> int:
        i = self._leader() if self.rng.random() < 0.5 else None
        return i if i is not None else self.rng.choice(ids)

    def _corrupt(self, ids: list[int], hold: float) -> tuple[str, dict[str, Any]]:
        """kill -9 a member, damage its data at rest (a kind of CORRUPTIONS), start it:
        either it refuses to start, the message in its log (then the operator's answer:
        wipe and restart, see _restart_wiped), or it starts and serves (what it serves is
        checked with everything else)."""
        rng = self.rng
        i = self._pick_member(ids)
        m = self.ens.members[i]
        m.kill()
        kinds = list(CORRUPTIONS)
        rng.shuffle(kinds)
        dmg, missed = None, []
        for k in kinds:
            try:
                dmg = damage(m.data_dir, k, rng)
                break
            except (LookupError, FileNotFoundError) as e:
                missed.append(f"{k}: {e}")
        if dmg is None:
            raise RuntimeError(f"corrupt: nothing to damage in member {i}'s data: {missed}")
        self.log(f"corrupt: member {i}: {dmg}")
        time.sleep(max(0.0, hold - 1.0))  # the others go on without it meanwhile
        marks = self._log_marks()
        m.start(wait=False)
        self.unsynced = i
        got = self._await_start(m)
        text = self._log_since(i, marks)
        extra: dict[str, Any] = {"member": i, "damage": dmg.kind, "file": dmg.path,
                                 "offset": dmg.offset, "before": dmg.before,
                                 "after": dmg.after}
        if got == "exited":
            msg = next((ln.strip() for ln in text.splitlines() if "refusing to start" in ln),
                       None)
            if msg is None:
                raise RuntimeError(f"corrupt: member {i} exited after {dmg} without a "
                                   f"'refusing to start' message\n{m.log_tail()}")
            extra.update(reaction="refused", message=msg[:400])
            self.log(f"corrupt: member {i} refused to start: {msg[:300]}")
            marks = self._log_marks()
            extra.update(self._restart_wiped(i, "corrupt"))
            extra["_marks"] = marks
            what = f"member {i}: {dmg}; refused to start; wiped and restarted"
        else:
            notes = [ln.strip() for ln in text.splitlines()
                     if any(w in ln for w in ("unusable", "torn write", "WARNING",
                                              "refusing"))]
            extra.update(reaction="started" if got == "serving" else "started, not serving",
                         message=" | ".join(notes)[:400])
            extra["_marks"] = marks
            what = f"member {i}: {dmg}; started ({'; '.join(notes)[:200] or 'no warning'})"
        self.reactions.append(extra)
        return what, {k: v for k, v in extra.items() if not k.startswith("_")}

    def _wipe(self, ids: list[int], hold: float) -> tuple[str, dict[str, Any]]:
        """kill -9 a member, delete its data directory (myid kept), start it: with
        db.autocreate=false it must wait to be synced by a leader (SNAP) before it votes."""
        i = self._pick_member(ids)
        m = self.ens.members[i]
        m.kill()
        time.sleep(max(0.0, hold - 1.0))
        marks = self._log_marks()
        extra: dict[str, Any] = {"member": i, "reaction": "wiped"}
        extra.update(self._restart_wiped(i, "wipe"))
        extra["_marks"] = marks
        self.reactions.append(extra)
        return (f"member {i}: data directory deleted (left: {extra['left']}), restarted",
                {k: v for k, v in extra.items() if not k.startswith("_")})

    def _leader(self) -> int | None:
        try:
            return self.ens.leader(timeout=10)
        except ServerStartError:
            return None

    def recover(self) -> None:
        t = time.monotonic()
        try:
            self.ens.wait_serving(timeout=RECOVER_BOUND)
            self.ens.leader(timeout=RECOVER_BOUND)
        except ServerStartError as e:
            self.unrecovered += 1
            first = str(e).splitlines()[0]
            self.notes.append(f"not serving {RECOVER_BOUND}s after a fault: {first}")
            self.log(f"ensemble did not recover within {RECOVER_BOUND}s: {first}")
            return
        self.log(f"serving again after {time.monotonic() - t:.1f}s")

    def restart_all(self) -> None:
        """kill -9 every member and start them again: acknowledged data must survive."""
        ev = self.hist.begin("fault", "nemesis", "restart-all")
        for m in self.ens.members.values():
            m.kill()
        for m in self.ens.members.values():
            m.start(wait=False)
        self.hist.done(ev, "info", what="kill -9 every member, start them again",
                       end=self.hist.clock())
        self.n_faults += 1
        self.fault_counts["restart-all"] = self.fault_counts.get("restart-all", 0) + 1
        self.log("fault restart-all: kill -9 every member, start them again")
        self.recover()

    # ------------------------------------------------------------ final state
    def collect_final(self) -> None:
        rec, r = self.hist.registers, self.root
        keys = [f"{r}/{k}" for k in W.REGISTER_KEYS]
        for i, ep in enumerate(self.endpoints, 1):
            def reads(c: W.Conn, i=i):
                got = []
                for k in keys:
                    res = c.call(Opcode.SYNC, PathRequest(k))
                    res = c.call(Opcode.GET_DATA, PathWatchRequest(k, False))
                    if res.err != Err.OK:
                        raise W.Lost(f"final read {k}: err {res.err}")
                    got.append((k, res))
                return got

            try:
                c = self._session(ep, timeout=RECOVER_BOUND)
                try:
                    got = reads(c)
                finally:
                    c.lose()
            except (W.Lost, ServerStartError) as e:
                self.notes.append(f"final reads on member {i} failed: {e}")
                continue
            for k, res in got:
                h = rec.invoke(f"final-m{i}", "sread", k)
                h.ok((res.body.data.decode(), res.body.stat.version), zxid=res.body.stat.mzxid)

        def children(c: W.Conn, path: str) -> list[str]:
            c.call(Opcode.SYNC, PathRequest(path))
            res = c.call(Opcode.GET_CHILDREN, PathWatchRequest(path, False))
            if res.err != Err.OK:
                raise W.Lost(f"getChildren {path}: err {res.err}")
            return list(res.body.children)

        def others(c: W.Conn) -> None:
            seq = {}
            for name in children(c, f"{r}/seq"):
                res = c.call(Opcode.GET_DATA, PathWatchRequest(f"{r}/seq/{name}", False))
                if res.err == Err.OK:
                    seq[name] = res.body.data.decode()
            res = c.call(Opcode.GET_DATA, PathWatchRequest(f"{r}/ctr", False))
            ctr = int(res.body.data)
            log = children(c, f"{r}/ctrlog")
            q = children(c, f"{r}/q")
            wr = {}
            for name in children(c, f"{r}/wr"):
                res = c.call(Opcode.EXISTS, PathWatchRequest(f"{r}/wr/{name}", False))
                if res.err == Err.OK:
                    wr[f"{r}/wr/{name}"] = res.body.stat.czxid
            self.hist.note("final", "collector", "seq", children=seq)
            self.hist.note("final", "collector", "counter", value=ctr, log=log)
            self.hist.note("final", "collector", "queue", children=q)
            self.hist.note("final", "collector", "watch", children=wr)

        self._retry(others, "reading the final state", timeout=RECOVER_BOUND * 2)
        if self.ens is not None:
            self.collect_trees()

    def _tree_of(self, i: int, ep) -> dict[str, list[int]]:
        """Member i's persistent znodes under the run's root, after a sync through it:
        path -> [czxid, mzxid, version, crc32 of the data]. Ephemerals are left out
        (sessions of the run may still be expiring, member by member)."""
        import zlib

        c = self._session(ep, timeout=RECOVER_BOUND)
        try:
            res = c.call(Opcode.SYNC, PathRequest(self.root))
            if res.err != Err.OK:
                raise W.Lost(f"sync on member {i}: err {res.err}")
            out: dict[str, list[int]] = {}
            todo = [self.root]
            while todo:
                path = todo.pop()
                res = c.call(Opcode.GET_DATA, PathWatchRequest(path, False))
                if res.err == Err.NONODE:
                    continue
                if res.err != Err.OK:
                    raise W.Lost(f"getData {path} on member {i}: err {res.err}")
                st = res.body.stat
                if st.ephemeralOwner == 0:
                    out[path] = [st.czxid, st.mzxid, st.version,
                                 zlib.crc32(bytes(res.body.data))]
                res = c.call(Opcode.GET_CHILDREN, PathWatchRequest(path, False))
                if res.err == Err.OK:
                    todo += [f"{path}/{name}" for name in res.body.children]
            return out
        finally:
            c.lose()

    def collect_trees(self) -> None:
        """Every member's copy of the run's znodes, for the check that members agree
        (a member rebuilt after damage at rest must hold exactly what the others do).
        Read again (up to 3 times, 1 s apart) while they differ: a write still in
        flight when the workloads stopped may commit between two members' reads."""
        trees: dict[int, dict[str, list[int]]] = {}
        for attempt in range(3):
            trees = {}
            for i, ep in enumerate(self.endpoints, 1):
                try:
                    trees[i] = self._tree_of(i, ep)
                except (W.Lost, ServerStartError, *W.LOST) as e:
                    self.notes.append(f"could not read member {i}'s tree: {e}")
            if len({json.dumps(t, sort_keys=True) for t in trees.values()}) <= 1:
                break
            if attempt < 2:
                time.sleep(1.0)
        for i, t in trees.items():
            self.hist.note("final", f"collector-m{i}", "tree", member=i, nodes=t)

    def delete_tree(self) -> None:
        """Remove the run's znodes (against an ensemble it does not manage). Ephemerals
        of abandoned sessions go when those expire, so it retries for a while."""
        from zabby.wire.records import DeleteRequest

        def walk(c: W.Conn, path: str) -> None:
            res = c.call(Opcode.GET_CHILDREN, PathWatchRequest(path, False))
            if res.err == Err.OK:
                for name in res.body.children:
                    walk(c, f"{path}/{name}")
            res = c.call(Opcode.DELETE, DeleteRequest(path, -1))
            if res.err not in (Err.OK, Err.NONODE):
                raise W.Lost(f"delete {path}: err {res.err}")

        try:
            self._retry(lambda c: walk(c, self.root), f"deleting {self.root}",
                        timeout=W.SESSION_TIMEOUT_MS / 1000 * 4)
        except ServerStartError as e:
            self.notes.append(f"left {self.root} behind: {e}")

    # ------------------------------------------------------------ the run
    def execute(self) -> Outcome:
        o = self.o
        self.log(f"seed {self.seed}; output in {self.out}")
        try:
            self.start_ensemble()
            where = (f"{len(self.endpoints)} {o.server} members it started"
                     if self.ens else f"hosts {o.hosts}")
            self.log(f"ensemble: {where}; faults: {','.join(self.faults) or 'none'}")
            initial = self.setup_tree()
            self.start_workloads()
            self.nemesis(time.monotonic() + o.duration)
            errors = self.stop_workloads()
            if errors:
                raise RuntimeError("workload failed: " + "; ".join(errors))
            if self.unsynced is not None:
                self._check_synced()
            if self.unsynced is not None:
                self.notes.append(f"member {self.unsynced}, damaged or wiped, was not seen "
                                  f"in sync again before the end")
            if self.ens is not None and "kill" in self.faults:
                self.restart_all()
            self.collect_final()
            if self.ens is None:
                self.delete_tree()
        except BaseException as e:  # noqa: BLE001 - the verdict is ERROR
            self.log(traceback.format_exc())
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            self._stop_all_threads()
            self.stop_ensemble()
            line = f"verify: ERROR {reason} seed={self.seed} out={self.out}"
            if not isinstance(e, Exception):
                raise
            return Outcome("ERROR", line, out=self.out)
        self.stop_ensemble()
        self.log("checking the history")
        report = check_all(self.hist, initial, max_steps=o.max_steps)
        if report.verdict == "VALID" and self.ens is not None:
            # the members' data (preallocated logs: tens of MB each) is only worth
            # keeping to look into a failure; their zoo.cfg and server.log stay
            for m in self.ens.members.values():
                shutil.rmtree(m.data_dir, ignore_errors=True)
        return self.finish(report)

    def _stop_all_threads(self) -> None:
        for ev in (getattr(self, "stop_main", None), getattr(self, "stop_watch", None)):
            if ev is not None:
                ev.set()
        for w in self.workers + self.watchers:
            if w.thread is not None:
                w.thread.join(W.IO_TIMEOUT + 2)

    def finish(self, report: Report) -> Outcome:
        ops = self.hist.ops()
        evs = [e for e in self.hist.events() if e.outcome != "info"]
        n = len(ops) + len(evs)
        ok = sum(1 for x in ops if x.outcome == "ok") + sum(1 for e in evs if e.outcome == "ok")
        unknown = sum(1 for x in ops if x.outcome == "unknown") + sum(
            1 for e in evs if e.outcome == "unknown")
        verdict = report.verdict
        self.hist.dump(self.out / "history.jsonl")
        title = f"zabby verify seed {self.seed}: {verdict}"
        write_timeline(self.hist, report, self.out / "timeline.html", title)
        names = sorted({f"{a.workload}/{a.name}" for a in report.anomalies})
        summary = {"verdict": verdict, "seed": self.seed, "server": self.o.server,
                   "nodes": len(self.endpoints), "faults": self.n_faults,
                   "fault_kinds": self.faults, "ops": n, "ok": ok, "unknown": unknown,
                   "anomaly_counts": {k: sum(1 for a in report.anomalies
                                             if f"{a.workload}/{a.name}" == k) for k in names},
                   "anomalies": [str(a) for a in report.anomalies[:100]],
                   "undecided": report.undecided, "notes": self.notes,
                   "stats": report.stats, "unrecovered": self.unrecovered,
                   "fault_counts": dict(sorted(self.fault_counts.items())),
                   "at_rest": [{k: v for k, v in r.items() if not k.startswith("_")}
                               for r in self.reactions]}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        for a in report.anomalies[:20]:
            self.log(f"ANOMALY {a}")
        for u in report.undecided:
            self.log(f"UNDECIDED {u}")
        for note in self.notes:
            self.log(f"note: {note}")
        line = (f"verify: {verdict} ops={n} ok={ok} unknown={unknown} faults={self.n_faults} "
                f"watch-events={report.stats.get('watch_events', 0)} "
                f"lock-tenures={report.stats.get('lock_tenures', 0)} "
                f"anomalies={len(report.anomalies)}")
        if names:
            line += f" anomaly={','.join(names)}"
        if report.undecided:
            line += f" undecided={len(report.undecided)}"
        if self.unrecovered:
            line += f" unrecovered={self.unrecovered}"
        line += f" seed={self.seed} out={self.out}"
        return Outcome(verdict, line, report, self.out)


def run(opts: Options) -> Outcome:
    return Run(opts).execute()


def recheck(path: Path, max_steps: int = 2_000_000) -> Outcome:
    """Check a history.jsonl again (a run's, or one written by hand): the verdict line,
    without faults or figures of the run."""
    from .history import load

    try:
        hist = load(path)
    except (OSError, ValueError, TypeError, KeyError) as e:
        return Outcome("ERROR", f"verify: ERROR cannot read {path}: {e}")
    initial = {o.key: ("init", 0) for o in hist.ops()}
    report = check_all(hist, initial, max_steps=max_steps)
    names = sorted({f"{a.workload}/{a.name}" for a in report.anomalies})
    ops = hist.ops()
    evs = [e for e in hist.events() if e.outcome != "info"]
    ok = sum(1 for x in ops if x.outcome == "ok") + sum(1 for e in evs if e.outcome == "ok")
    line = (f"verify: {report.verdict} ops={len(ops) + len(evs)} ok={ok} "
            f"anomalies={len(report.anomalies)}")
    if names:
        line += f" anomaly={','.join(names)}"
    if report.undecided:
        line += f" undecided={len(report.undecided)}"
    return Outcome(report.verdict, line + f" history={path}", report)
