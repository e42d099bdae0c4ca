"""Complete ensemble members on the simulated loop, network, clock and disk.

A `Member` is one server machine: a `SimulatedFS` that outlives the processes
(what was fsynced survives a power loss, what was only written survives a kill),
a clock of its own (`SimClock`: wall-clock jumps, a monotonic clock running a
little fast or slow), and, while it runs, one incarnation of the real server --
`EnsembleServer` with its request pipeline, session tracker, data tree, watches,
Zab peer, peer meshes and `TxnLog`/snapshots -- built the way `server.app` builds
one, except that the log's group commit is `SimCommitter` (fsync latency and
stalls drawn from the seed, no threads, no helper processes) and the client port
is registered with the simulated network.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from ..server.clock import Clock
from ..server.config import ServerConfig, parse_config
from ..server.connection import ClientConnection
from ..server.durability import CommitQueue
from ..server.local_sessions import server_class
from ..storage import CorruptDataError, SimulatedFS, StorageError, TxnLog, recover, write_snapshot
from .loop import Process, SimLoop

log = logging.getLogger("zabby.sim")

DATA_DIR = "/var/lib/zabby"
CLIENT_PORT = 2181
EPOCH_S = 1_780_000_000.0  # the wall clock at virtual time 0 (2026)


def member_host(sid: int) -> str:
    return f"10.0.0.{sid}"


class SimClock(Clock):
    """A member's clocks, read from the loop's virtual time. The monotonic clock may
    run at a rate a little off 1 (as a real oscillator does); the wall clock may
    also be stepped (NTP, an operator), forwards or back."""

    def __init__(self, loop: SimLoop) -> None:
        self.loop = loop
        self.rate = 1.0
        self._mono_base = 0.0  # monotonic seconds at virtual time _since
        self._since = 0.0
        self.wall_offset = 0.0

    def _mono(self) -> float:
        return self._mono_base + (self.loop.time() - self._since) * self.rate

    def monotonic_ns(self) -> int:
        return int(self._mono() * 1e9)

    def time_ns(self) -> int:
        return int((EPOCH_S + self._mono() + self.wall_offset) * 1e9)

    def set_rate(self, rate: float) -> None:
        self._mono_base = self._mono()
        self._since = self.loop.time()
        self.rate = rate

    def step_wall(self, seconds: float) -> None:
        self.wall_offset += seconds


class Disk:
    """fsync latency of one machine: usually a millisecond or two; a stall (a slow
    disk) makes every fsync started before `stall_until` wait until then."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.stall_until = 0.0

    def fsync_delay(self, now: float) -> float:
        d = self.rng.uniform(0.0002, 0.002)
        if self.rng.random() < 0.01:
            d += self.rng.uniform(0.01, 0.1)
        return max(d, self.stall_until - now)


class SimCommitter(CommitQueue):
    """The committer interface of `server.durability.GroupCommitter` (submit_entry,
    submit_control, after_batch, failure, take_snapshot), on the simulated disk.

    One batch at a time: everything submitted while a batch's fsync is pending goes
    into the next batch. A batch is written (not yet durable) at once; its callbacks
    run when the fsync completes, after a delay from `Disk`; a crash in between
    loses it as a power loss would. About every `snap_count` txns the tree is
    written to a snapshot and the log rolls, as on a real server."""

    # a negative control only (tests/sim): acknowledge a batch as soon as it is
    # written, before its fsync -- the bug a durable store must not have
    ack_before_fsync = False

    def __init__(self, loop: SimLoop, txn_log: TxnLog, fs: SimulatedFS, disk: Disk,
                 snap_dir: str, tree_getter: Callable, rng: random.Random,
                 snap_count: int) -> None:
        self.loop = loop
        self.log = txn_log
        self.fs = fs
        self.disk = disk
        self.snap_dir = snap_dir
        self._tree = tree_getter
        self._rng = rng
        self.snap_count = snap_count
        self._pending: deque = deque()
        self._busy = False
        self._scheduled = False
        self.failure: str | None = None
        self.after_batch: Callable[[], None] | None = None
        self.send_when_durable: Callable[[int], Any] | None = None  # the real writer's only
        self._since_snap = 0
        self._threshold = self._next_threshold()
        self.snapshots_taken = 0
        self._snap_child = None
        self.batches = 0
        self.txns = 0

    def _kick(self) -> None:
        if not self._busy and not self._scheduled and self._pending:
            self._scheduled = True
            self.loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending or self.failure is not None:
            return
        q = self._pending
        if q[0][0] is None:
            _, fn, done, failed = q.popleft()
            try:
                fn()
            except (OSError, StorageError, ValueError) as e:
                self._fail(f"txn log control operation failed: {e}", [(None, fn, done, failed)])
                return
            done()
            self._kick()
            return
        batch = []
        while q and q[0][0] is not None:
            batch.append(q.popleft())
        entries = [(z, p) for z, p, _, _ in batch]
        try:
            res = self.log.append_unsynced(entries)
            if res is None:
                self.log.write_batch(entries)  # a new segment or more room: synced here
        except StorageError as e:
            self._fail(str(e), batch)
            return
        self._busy = True
        if self.ack_before_fsync and res is not None:
            self.log.appended_synced(res[1])
            self._acknowledge(batch)
            batch = None
        self.loop.call_later(self.disk.fsync_delay(self.loop.time()), self._synced, batch, res)

    def _synced(self, batch, res) -> None:
        self._busy = False
        if res is not None:
            h, token = res
            try:
                self.fs.fsync(h, data_only=True)
            except OSError as e:
                self.log.unsynced_failed()
                self._fail(f"txn log fsync failed: {e}", batch or [])
                return
            if batch is None:  # acknowledged already (ack_before_fsync)
                self._kick()
                return
            self.log.appended_synced(token)
        self._acknowledge(batch)

    def _acknowledge(self, batch) -> None:
        """The batch is durable: its callbacks, one consensus step, a snapshot now and then."""
        self.batches += 1
        self.txns += len(batch)
        for _, _, done, _ in batch:
            done()
        if self.after_batch is not None:
            self.after_batch()
        self._since_snap += len(batch)
        if self._since_snap >= self._threshold:
            self._since_snap = 0
            self._threshold = self._next_threshold()
            self.take_snapshot()
        self._kick()

    def _fail(self, why: str, batch) -> None:
        self.failure = why
        failed = [f for _, _, _, f in batch] + [f for _, _, _, f in self._pending]
        self._pending.clear()
        for f in failed:
            f(why)

    def take_snapshot(self) -> None:
        tree = self._tree()
        try:
            write_snapshot(tree, self.snap_dir, fs=self.fs)
        except OSError as e:
            log.warning("snapshot failed: %s", e)
            return
        self.log.roll()
        self.snapshots_taken += 1

    def close(self) -> None:
        pass


def _server_class(base: type) -> type:
    class SimMemberServer(base):  # type: ignore[misc, valid-type]
        sim_member: Member

        async def _open_client_ports(self) -> None:
            m = self.sim_member
            m.net.listen(lambda: ClientConnection(self), m.host, CLIENT_PORT)
            self.port = CLIENT_PORT

        def _shutdown_after_failure(self) -> None:
            self.sim_member.fatal("its log failed")

        def _apply_committed(self, zxid: int, payload: bytes) -> None:
            self.sim_member.applied(zxid, payload)
            super()._apply_committed(zxid, payload)

        def _replace_tree(self, tree) -> None:  # a SNAP from the leader
            super()._replace_tree(tree)
            self.sim_member.applied_zxid = tree.last_zxid

    return SimMemberServer


class Member:
    """One server machine of the simulated ensemble (see the module docstring)."""

    def __init__(self, sim, sid: int, config_text: str, rng: random.Random) -> None:
        self.sim = sim
        self.loop: SimLoop = sim.loop
        self.net = sim.net
        self.sid = sid
        self.host = member_host(sid)
        self.config_text = config_text
        self.rng = rng
        self.fs = SimulatedFS()
        self.clock = SimClock(self.loop)
        self.disk = Disk(random.Random(rng.random()))
        self.proc: Process | None = None
        self.server = None
        self.incarnation = 0
        self.wiped = False  # its data directory was wiped by the operator: distrust it
        self.damaged = False  # its data was damaged at rest, and it has not synced since
        self.applied_zxid = 0  # the last zxid this incarnation applied
        self.peer_commits = 0  # commits from PEER_ACKs, of the incarnations that ended
        self.start_failures: list[str] = []

    @property
    def running(self) -> bool:
        return self.proc is not None and not self.proc.dead

    def config(self) -> ServerConfig:
        cfg = parse_config(self.config_text, source=f"<sim member {self.sid}>")
        cfg.server_id = self.sid
        me = cfg.servers[self.sid]
        cfg.client_port, cfg.client_port_address = CLIENT_PORT, me.host
        return cfg

    # ------------------------------------------------------------ lifecycle
    def start(self) -> bool | None:
        """Start a new incarnation from what is on its disk; False if it refused
        (corrupt data directory: the error is kept in `start_failures`), None if its
        disk failed under the start (an I/O error: try again later)."""
        assert not self.running
        self.incarnation += 1
        proc = Process(f"m{self.sid}.{self.incarnation}", self.host)
        try:
            server = proc.context.run(self._build)
        except CorruptDataError as e:
            self.start_failures.append(str(e))
            self.sim.log(f"member {self.sid} refuses to start: {e}")
            return False
        except (StorageError, OSError) as e:
            self.sim.log(f"member {self.sid} fails to start: {e}")
            return None
        self.proc = proc
        self.server = server
        self.applied_zxid = server.tree.last_zxid
        self.loop.spawn(proc, server.start())
        return True

    def _build(self):
        cfg = self.config()
        fs = self.fs
        fs.makedirs(DATA_DIR)
        tree, report = recover(DATA_DIR, DATA_DIR, fs=fs, max_buffer=cfg.max_buffer,
                               extended_types=cfg.extended_types_enabled, replay=False)
        trusted = not self.wiped
        if report.snapshot is None and not report.log_last_zxid and trusted:
            write_snapshot(tree, DATA_DIR, fs=fs)  # as the server does on a new directory
        txn_log = TxnLog(DATA_DIR, fs=fs, prealloc_bytes=16 * 1024, force_sync=True)
        txn_log.open_for_append(report.log_last_zxid, report.newest_segment)
        server = None
        committer = SimCommitter(self.loop, txn_log, fs, self.disk, DATA_DIR,
                                 lambda: server.tree, random.Random(self.rng.random()),
                                 snap_count=self.sim.snap_count)
        cls = _server_class(server_class(cfg))
        server = cls(cfg, tree=tree, txn_log=txn_log, committer=committer, my_id=self.sid,
                     log_last_zxid=report.log_last_zxid, clock=self.clock)
        server.sim_member = self
        if not trusted:
            server.peer.distrust_empty_db()

            def synced() -> None:
                server.on_serving = None
                self.wiped = False
                committer.take_snapshot()

            server.on_serving = synced
        return server

    def crash(self, power_loss: bool) -> None:
        """kill -9 (what was written survives in the page cache) or a power loss
        (only what was fsynced survives; the last unsynced write may be torn)."""
        if not self.running:
            return
        proc = self.proc
        self.loop.kill(proc)
        self.net.crash(proc)
        if power_loss:
            last = self.fs.last_write()
            tear = None
            if last is not None and self.rng.random() < 0.5:
                tear = self.rng.randrange(0, last[2] + 1)
            self.fs.crash(tear_at=tear)
        self.peer_commits += self.server.peer.peer_commits
        self.server = None
        self.proc = None

    def pause(self) -> None:
        if self.running:
            self.loop.pause(self.proc)

    def resume(self) -> None:
        if self.proc is not None and self.proc.paused:
            self.loop.resume(self.proc)

    @property
    def paused(self) -> bool:
        return self.proc is not None and self.proc.paused

    def fatal(self, why: str) -> None:
        """The server gave up (its log failed): the process exits."""
        self.sim.log(f"member {self.sid} exits: {why}")
        self.loop.call_soon(self.crash, False)

    def wipe(self) -> None:
        """The operator's answer to a data directory that refuses to start."""
        assert not self.running
        self.fs = SimulatedFS()
        self.wiped = True

    # ------------------------------------------------------------ disk faults
    def corrupt_at_rest(self, rng: random.Random) -> str | None:
        """Flip a bit in (or truncate) one of its files while it is stopped."""
        assert not self.running
        self.fs.clear_faults()
        files = []
        v2 = DATA_DIR + "/version-2"
        if not self.fs.exists(v2):
            return None
        for name in self.fs.listdir(v2):
            if name.startswith(("log.", "snapshot.")):
                files.append(f"{v2}/{name}")
        if not files:
            return None
        path = rng.choice(sorted(files))
        data = bytearray(self.fs.durable_content(path) or b"")
        if not data:
            return None
        logs = sorted((f for f in files if "/log." in f),
                      key=lambda f: int(f.rsplit(".", 1)[1], 16))
        # Cutting the newest log segment short is not injected: it looks exactly like
        # a write torn by a power loss, which recovery must accept, so it silently loses
        # fsynced (acknowledged) txns -- storage that forgets what it fsynced is outside
        # what Zab (and ZooKeeper) can survive; a checksum cannot tell. Bit flips there,
        # and truncation of snapshots and older segments, are detected.
        newest_log = path == logs[-1] if logs else False
        h = self.fs.open(path)
        try:
            if newest_log or rng.random() < 0.7:
                # flip a bit among the file's non-zero bytes (preallocated zeros hold nothing)
                end = len(data.rstrip(b"\x00")) or len(data)
                off = rng.randrange(end)
                data[off] ^= 1 << rng.randrange(8)
                self.fs.write(h, bytes(data[off:off + 1]), off)
                what = f"bit flip at offset {off} of {path}"
            else:
                end = len(data.rstrip(b"\x00")) or len(data)
                cut = rng.randrange(end)
                self.fs.truncate(h, cut)
                what = f"truncated {path} to {cut} bytes (of {end})"
            self.fs.fsync(h)
        finally:
            self.fs.close(h)
        return what

    def inject_io_error(self, rng: random.Random) -> None:
        self.fs.inject(rng.choice(["fsync", "write"]), rng.choice([errno.EIO, errno.ENOSPC]),
                       path="log.")

    # ------------------------------------------------------------ invariants
    def applied(self, zxid: int, payload: bytes) -> None:
        prev, self.applied_zxid = self.applied_zxid, zxid
        if zxid <= prev:
            self.sim.fail(f"member {self.sid} applied zxid {zxid:#x} after {prev:#x}")
        self.sim.check_applied(self.sid, zxid, prev,
                               hashlib.blake2b(payload, digest_size=8).digest())
