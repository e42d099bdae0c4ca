"""Durable commit: group commit of txns to the log, snapshots in a forked child.

`GroupCommitter.submit(txn, done, failed)` queues a txn; the event loop keeps
accepting requests while the previous batch is fsynced. Every txn that
arrived during that fsync goes into the next batch, so one fsync covers many
txns and throughput grows with concurrency. Callbacks run on the event loop,
in zxid order, only after the batch is durable.

Where the batch is written: usually into the segment's preallocated room, off
the loop. With a writer syncer (`fsync_helper.LogWriter`, the server's
default) the loop only encodes the batch (`TxnLog.stage_unsynced`; with the
writer's `seal` it leaves the checksums to the writer) and hands it over; the writer process pwrites it, in
order, and fdatasyncs. With a plain syncer (`fsync_helper.FsyncPool`) the loop
pwrites the batch itself (`TxnLog.append_unsynced`) and the syncer's child
processes fdatasync it. Either way the fsync overlaps the loop's work instead
of waiting for the GIL. Up to `max_inflight` such batches sync at once; any
fdatasync covers everything written before it, and batches are acknowledged
strictly in zxid order. A
batch that starts a segment, needs more room, or follows a failed write goes
to one worker thread that runs the whole `TxnLog.write_batch` (fsync
included), once nothing is syncing; so do control ops (log truncation,
snapshot install).

If a write or fsync fails, the batch's txns were never acknowledged: the
committer tries to cut the log back to its last good entry, fails the waiting
requests, and from then on refuses writes (the server turns read-only and
says why) until an operator frees space and restarts it.

Snapshots: after about `snapCount` txns (randomised per server, as ZooKeeper
does) the log rolls to a new segment and a forked child writes the tree as it
is at that instant, so the server pauses only for the fork (10-30 ms at 1M
znodes). While the child lives, every page the server writes is copied (copy
on write); the cyclic GC would write to every object's header, so the server's
objects are frozen (`gc.freeze()`) just before the fork: a full collection then
skips them (at 1M znodes it took 415-421 ms and copied 281 MiB with a child alive,
against 0 ms frozen), until the child is reaped -- or for good, in a server's own
process (`keep_frozen`): then its full collections walk only what is newer than
the last snapshot, not the whole tree. The child fdatasyncs
the file as it writes (storage.snapshot.SYNC_EVERY), so its last fsync does
not hold the log's fdatasyncs back behind one big flush.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import logging
import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from ..storage import StorageError, TxnLog, write_snapshot
from ..storage.txnlog import seal_entries
from .metrics import Summary

log = logging.getLogger("zabby.server.storage")

FSYNC_WARNING_MS = 1000  # a durable batch slower than this is logged (a slow disk)


def _errno_of(fut) -> int:
    e = fut.exception()
    if e is None:
        return 0
    return getattr(e, "errno", None) or errno.EIO


@mypyc_attr(allow_interpreted_subclasses=True)  # the simulation's SimCommitter
class CommitQueue:
    """What a committer offers the server (the submit side); a subclass keeps
    `_pending`, `failure`, `snap_count` and `_rng`, and runs the queue (`_kick`).
    `GroupCommitter` on the real disk; the simulation's `SimCommitter` (zabby.sim)."""

    # declared for mypyc (a native class's attributes are its slots); Any: the
    # simulation's committer keeps a deque where GroupCommitter keeps a list
    _pending: Any
    failure: str | None
    snap_count: int
    _rng: random.Random
    # runs after the `done` callbacks of each durable batch (the ensemble's consensus step)
    after_batch: Callable[[], None] | None
    # a message the log writer sends once a batch is durable (GroupCommitter's)
    send_when_durable: Callable[[int], Any] | None

    def poll_writer(self) -> None:
        """Take the log writer's answers for quiet batches now (see native_log)."""

    def _next_threshold(self) -> int:
        # ZooKeeper: snapCount/2 + rand(snapCount/2), so ensemble members do not snapshot together
        half = self.snap_count // 2
        return half + self._rng.randrange(max(1, half))

    # ------------------------------------------------------------ commit
    def submit(self, txn, done: Callable[[], None], failed: Callable[[str], None]) -> None:
        self.submit_entry(txn.zxid, txn.encode(), done, failed)

    def submit_entry(self, zxid: int, payload: bytes, done: Callable[[], None],
                     failed: Callable[[str], None]) -> None:
        """Log (zxid, payload); `done` runs once it is durable, `failed` if never."""
        if self.failure is not None:
            failed(self.failure)
            return
        self._pending.append((zxid, payload, done, failed))
        self._kick()

    def submit_control(self, fn: Callable[[], None], done: Callable[[], None],
                       failed: Callable[[str], None]) -> None:
        """Run `fn` on the log thread after everything submitted before it (log
        truncation, snapshot install), then `done` on the loop."""
        if self.failure is not None:
            failed(self.failure)
            return
        self._pending.append((None, fn, done, failed))
        self._kick()

    def _kick(self) -> None:  # pragma: no cover - a subclass runs the queue
        raise NotImplementedError


class _DirectWriter:
    """A thread of the server's own process that pwrites and fdatasyncs one small
    batch at a time, for a committer with nothing else in flight (`GroupCommitter.
    direct_max`). At one write at a time this answers in ~130 us p50 where the writer
    child's round trip takes ~220 (two process wake-ups and a thread hand-off in the
    child), and unlike a write on the loop it leaves the loop serving while the disk
    is slow. `fs` is the log's file system (a fault-injecting one in tests)."""

    def __init__(self, loop, fs) -> None:
        self._loop = loop
        self._fs = fs
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._writer_thread = threading.Thread(target=self._run, name="zabby-log-direct", daemon=True)
        self._writer_thread.start()

    def write_sync(self, h, offset: int, data, callback: Callable[[int, float], None]) -> None:
        """pwrite `data` at `offset` of `h`, fdatasync, then callback(errno or 0, the
        seconds the two took) on the loop."""
        self._q.put((h, offset, data, callback))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            h, offset, data, callback = item
            err = 0
            t0 = time.perf_counter()
            try:
                self._fs.write(h, data, offset)
                self._fs.fsync(h, True)
            except OSError as e:
                err = e.errno or errno.EIO
            except Exception:  # a bug in the file system layer is a failed write too
                log.exception("unexpected error writing the transaction log")
                err = errno.EIO
            try:
                self._loop.call_soon_threadsafe(callback, err, time.perf_counter() - t0)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def close(self) -> None:
        self._q.put(None)
        self._writer_thread.join()


class GroupCommitter(CommitQueue):
    # With `direct_max` (the constructor's), a batch of at most that many txns, with no
    # batch in flight, is written and fdatasynced by a thread of this process
    # (`_DirectWriter`) rather than by the syncer's child; nothing else starts until
    # it is durable, so every fdatasync still starts after every earlier write has
    # returned (no batch made durable after a hole). Bigger batches, and every batch
    # while others are in flight, go to the child, which overlaps writes and syncs.
    # The direct lane pays only when the loop is idle while the batch syncs: with
    # other requests arriving meanwhile they wait behind it (one batch in flight
    # instead of the child's several), and a busy loop keeps the GIL from the thread.
    # So `direct_strikes` direct batches in a row that each find txns queued behind
    # them when durable, or whose round trip took `direct_slack` s more than their
    # pwrite + fdatasync, turn the lane off for `direct_backoff` s (32 sessions of one
    # setData at a time: -8 to -12 % with the lane always on, docs/ARCHITECTURE.md).
    # One such batch alone is no sign of load: a scheduler hiccup, or a session's
    # txn arriving during the fsync; an ensemble member sees a few a second, and
    # with one strike the lane was off two thirds of the time at one session.
    direct_slack: float = 1e-3
    direct_backoff: float = 0.5
    direct_strikes: int = 3

    # gc.freeze() before the snapshot fork (class attributes:
    # benchmarks/snapshot_client_pause.py A/Bs them) ...
    freeze_gc: ClassVar[bool] = True
    # ... and, with keep_frozen, keep what was frozen out of the cyclic GC for good
    # (off: gc.unfreeze() once the child is reaped), as storage.snapshot.KEEP_FROZEN
    # does with a recovered tree. None: on in a server's own process (`zabby serve`:
    # server.app.run), off where the server shares its process (tests, tools).
    # Frozen objects are still freed by their refcounts; only cyclic garbage among
    # them would stay, and a server makes none (its full collections collect 0
    # objects; benchmarks/gc_full_collections.py --cycles).
    keep_frozen: ClassVar[bool | None] = None

    def __init__(
        self,
        txn_log: TxnLog,
        *,
        snap_dir: str,
        snap_count: int = 100_000,
        rng: random.Random | None = None,
        tree_getter: Callable | None = None,
        compress: bool = False,
        syncer: Callable | None = None,
        max_inflight: int = 2,
        direct_max: int = 0,
    ) -> None:
        self.log = txn_log
        self.snap_dir = snap_dir
        self.compress = compress
        self.snap_count = max(2, snap_count)
        self._rng = rng or random.Random()
        self._tree: Any = tree_getter
        self._pending = []  # (zxid, payload, done, failed); (None, fn, done, failed): control
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zabby-log")
        self._kicked = False  # a _pump is scheduled
        self._slow = False  # a unit runs on the worker thread (nothing else may start)
        self._force_slow = False  # the next batch must go to the thread
        # fast batches written and syncing: [batch, token, handle, errno or None, t0]
        self._inflight: deque[list] = deque()
        self.max_inflight = max_inflight
        self.failure: str | None = None  # why writes are refused, once a write failed
        self._since_snap = 0
        self._snap_threshold = self._next_threshold()
        self._roll_requested = False
        self._snap_child: int | None = None
        # `syncer(loop)` makes the object that fsyncs a written batch off this
        # process's GIL (fsync_helper.FsyncHelper); made with the first batch
        self._syncer_factory = syncer
        self._syncer: Any = None
        self.direct_max = direct_max  # 0: no direct lane
        self._direct: _DirectWriter | None = None  # made with the first direct batch
        self._direct_busy = False  # a direct batch is in flight: nothing else starts
        self._direct_off_until = 0.0  # time.monotonic() before which the lane is off
        self._direct_struck = 0  # direct batches in a row that found load
        self.direct_batches = 0
        # runs after the `done` callbacks of each durable batch: a caller that reacts
        # once per batch (the ensemble's consensus step) rather than once per txn
        self.after_batch: Callable[[], None] | None = None
        # send_when_durable(last zxid of a batch) -> a native_log.Send (peers.Lease) or
        # None: a message the log writer sends itself once that batch is durable (an
        # ensemble follower's ACK), where the writer can (`sends`: the C thread)
        self.send_when_durable: Callable[[int], Any] | None = None
        # figures for mntr / the benchmark
        self.batches = 0
        self.txns = 0
        self.last_fsync_ms = 0.0
        self.max_batch = 0
        self.last_snapshot_pause_ms = 0.0
        self.last_snapshot_ms = 0.0
        self.snapshots_taken = 0
        # ZooKeeper's fsynctime (ms per log batch write + fsync) and snapshottime (ms
        # per snapshot written), for mntr and /metrics (ServerMetrics reads them)
        self.fsync_time = Summary()
        self.snapshot_time = Summary()

    def poll_writer(self) -> None:
        syncer = self._syncer
        if syncer is not None and getattr(syncer, "sends", False):
            syncer.poll()

    def _kick(self) -> None:
        # once per loop turn: every txn submitted in this turn joins one batch
        if not self._kicked:
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _take(self) -> list:
        """The next unit of work: one control op, or the run of entries before the next."""
        p = self._pending
        if p[0][0] is None:
            unit, self._pending = p[:1], p[1:]
            return unit
        n = 0
        while n < len(p) and p[n][0] is not None:
            n += 1
        unit, self._pending = p[:n], p[n:]
        return unit

    def _pump(self) -> None:
        """Start what can start: fast batches while fewer than `max_inflight`
        are syncing, or -- once none is -- one unit on the worker thread."""
        self._kicked = False
        while self._pending and self.failure is None and not self._slow:
            if (self._pending[0][0] is None or self._roll_requested or self._force_slow
                    or not self._fast_ready()):
                if not self._inflight:
                    self._slow = True
                    asyncio.get_running_loop().create_task(self._slow_unit())
                return
            if self._direct_busy:
                return
            if (not self._inflight and self.direct_max
                    and self._direct_off_until <= time.monotonic() and self._pump_direct()):
                continue
            syncer = self._syncer
            write_sync = getattr(syncer, "write_sync", None)
            if len(self._inflight) >= self.max_inflight or (
                    write_sync is not None and len(self._inflight) >= syncer.slots):
                return
            batch = self._take()
            entries = [(z, b) for z, b, _, _ in batch]
            try:
                if write_sync is not None:
                    # the writer process writes and fdatasyncs: the loop only encodes
                    written = self.log.stage_unsynced(entries, syncer.max_batch,
                                                      sealed=not syncer.seal)
                else:
                    written = self.log.append_unsynced(entries)
            except StorageError as e:
                self._fail(str(e), batch)
                return
            if written is None:  # a new segment or more room: the thread's write_batch
                self._pending[:0] = batch
                self._force_slow = True
                continue
            if write_sync is not None:
                h, offset, data, token = written
                rec = [batch, token, h, None, time.perf_counter(), offset, data]
                self._inflight.append(rec)
                # only a batch with none before it in flight: under load the loop
                # writes to the leader (forwarded requests) during most fdatasyncs,
                # which revokes the lease, and the ACK goes the loop's way anyway
                hook = self.send_when_durable
                send = (hook(batch[-1][0]) if hook is not None and len(self._inflight) == 1
                        and getattr(syncer, "sends", False) else None)
                # (`send` only when there is one: the writer child takes no such argument)
                extra: dict[str, Any] = {"send": send} if send is not None else {}
                write_sync(h, offset, data, lambda err, rec=rec: self._synced(rec, err),
                           self.log.handle_generation, **extra)
                continue
            h, token = written
            rec = [batch, token, h, None, time.perf_counter(), None, None]
            self._inflight.append(rec)
            syncer.sync(h, True, lambda err, rec=rec: self._synced(rec, err),
                        self.log.handle_generation)

    def _pump_direct(self) -> bool:
        """Start the next batch on the direct thread if it is small enough; False
        when it is not (nothing taken)."""
        p = self._pending
        n = 0
        while n < len(p) and p[n][0] is not None:
            n += 1
            if n > self.direct_max:
                return False
        batch = self._take()
        try:
            written = self.log.stage_unsynced([(z, b) for z, b, _, _ in batch])
        except StorageError as e:
            self._fail(str(e), batch)
            return True
        if written is None:  # a new segment or more room: the thread's write_batch
            self._pending[:0] = batch
            self._force_slow = True
            return True
        h, offset, data, token = written
        if self._direct is None:
            self._direct = _DirectWriter(asyncio.get_running_loop(), self.log.fs)
        rec = [batch, token, h, None, time.perf_counter(), offset, data]
        self._inflight.append(rec)
        self._direct_busy = True
        self.direct_batches += 1
        self._direct.write_sync(h, offset, data, functools.partial(self._direct_synced, rec))
        return True

    def _direct_synced(self, rec: list, err: int, took: float) -> None:
        self._direct_busy = False
        if self._pending or time.perf_counter() - rec[4] - took > self.direct_slack:
            self._direct_struck += 1
            if self._direct_struck >= self.direct_strikes:
                self._direct_struck = 0
                self._direct_off_until = time.monotonic() + self.direct_backoff
        else:
            self._direct_struck = 0
        self._synced(rec, err)

    def _fast_ready(self) -> bool:
        if self._syncer is None:
            if self._syncer_factory is None:
                return False
            try:
                self._syncer = self._syncer_factory(asyncio.get_running_loop())
            except OSError as e:
                log.warning("cannot start the fsync helper process (%s): fsync on a thread", e)
                self._syncer_factory = None
                return False
        return True

    def _synced(self, rec: list, err: int | None) -> None:
        """The syncer answered for `rec`; acknowledge every finished batch in order."""
        if err is None:
            # the helper is gone: nothing is known about this fsync; redo it on the
            # thread, and from now on every batch goes through write_batch
            if self._syncer_factory is not None:
                log.warning("the fsync helper process exited: fsync on a thread from now on")
                self._syncer_factory = None
                self._force_slow = True
            # (a batch the helper was to write is written again first: whatever of it
            # reached the file is the same bytes at the same place)
            fut = asyncio.get_running_loop().run_in_executor(
                self._executor, self._rewrite_and_sync, rec[2], rec[5], rec[6])
            fut.add_done_callback(lambda f: self._synced(rec, _errno_of(f)))
            return
        rec[3] = err
        q = self._inflight
        while q and q[0][3] is not None and self.failure is None:
            batch, token, _, err, t0, _, data = q[0]
            if err:
                self.log.unsynced_failed()
                what = "fdatasync" if data is None else "write or fdatasync"
                self._fail(f"txn log {self.log.current_path}: {what} of zxids "
                           f"{batch[0][0]:#x}..{batch[-1][0]:#x} failed: {os.strerror(err)}")
                return
            q.popleft()
            self.log.appended_synced(token)
            self._acknowledge(batch, t0)
        if self._pending and not self._kicked:
            self._kick()

    def _rewrite_and_sync(self, h, offset: int | None, data) -> None:
        fs = self.log.fs
        if data is not None:
            seal_entries(data)  # whoever was to write it did not: checksums (again)
            fs.write(h, data, offset)
        fs.fsync(h, True)

    def _acknowledge(self, batch, t0: float) -> None:
        self.last_fsync_ms = ms = (time.perf_counter() - t0) * 1000
        self.fsync_time.add(int(ms))
        if ms >= FSYNC_WARNING_MS:  # ZooKeeper's fsync.warningthresholdms (1000)
            log.warning("fsync-ing the txn log took %d ms (zxids %#x..%#x), which delays "
                        "every write", ms, batch[0][0], batch[-1][0])
        self.batches += 1
        self.txns += len(batch)
        if len(batch) > self.max_batch:
            self.max_batch = len(batch)
        for _, _, done, _ in batch:
            done()
        if self.after_batch is not None:
            self.after_batch()
        self._since_snap += len(batch)
        if self._since_snap >= self._snap_threshold:
            self._maybe_snapshot()

    async def _slow_unit(self) -> None:
        """One control op, or one batch through `TxnLog.write_batch`, on the thread."""
        loop = asyncio.get_running_loop()
        try:
            if not self._pending or self.failure is not None:
                return
            batch = self._take()
            if batch[0][0] is None:
                _, fn, done, _ = batch[0]
                try:
                    await loop.run_in_executor(self._executor, fn)
                except (StorageError, OSError) as failed:
                    self._fail(str(failed), batch)
                    return
                done()
                return
            entries = [(z, b) for z, b, _, _ in batch]
            roll = self._roll_requested
            self._roll_requested = False
            t0 = time.perf_counter()
            try:
                await loop.run_in_executor(self._executor, self._write, entries, roll)
            except StorageError as e:
                self._fail(str(e), batch)
                return
            except Exception as bug:  # a bug in the log is a failed write too
                log.exception("unexpected error writing the transaction log")
                self._fail(f"unexpected error writing the transaction log: {bug}", batch)
                return
            self._force_slow = self._syncer_factory is None
            self._acknowledge(batch, t0)
        finally:
            self._slow = False
            if self._pending and self.failure is None:
                self._kick()

    def _write(self, entries, roll: bool) -> None:
        if roll:
            self.log.roll()
        self.log.write_batch(entries)

    def _fail(self, why: str, batch=()) -> None:
        """Refuse writes from now on; fail every txn not yet acknowledged, in order
        (the batches syncing, then `batch`, taken from the pending ones, then the rest)."""
        self.failure = f"transaction log write failed, refusing writes until restart: {why}"
        log.error("%s", self.failure)
        waiting = [r[0] for r in self._inflight]
        self._inflight.clear()
        rest, self._pending = self._pending, []
        for b in [*waiting, batch, rest]:
            for _, _, _, failed in b:
                failed(self.failure)

    # ------------------------------------------------------------ snapshots
    def _maybe_snapshot(self) -> None:
        if self._snap_child is not None or self._tree is None:
            return  # one snapshot at a time; the next batch will try again
        self._since_snap = 0
        self._snap_threshold = self._next_threshold()
        self._roll_requested = True  # the next batch starts a new segment
        self.take_snapshot()

    def take_snapshot(self) -> None:
        """Fork; the child writes the tree as of now and exits. Falls back to inline."""
        tree = self._tree()
        t0 = time.perf_counter()
        if not hasattr(os, "fork"):  # pragma: no cover - Linux has fork
            write_snapshot(tree, self.snap_dir, compress=self.compress)
            self.last_snapshot_pause_ms = (time.perf_counter() - t0) * 1000
            self.snapshot_time.add(int(self.last_snapshot_pause_ms))
            return
        # Frozen, the server's objects are left alone by its cyclic GC while the child
        # lives: a full collection would write to every object (and copy every page).
        # Whoever else froze objects keeps them frozen: unfreeze only what we froze.
        if self.freeze_gc and self.keep_frozen:
            gc.freeze()  # everything alive now joins what earlier snapshots froze
            freeze = False  # nothing to undo
        else:
            freeze = self.freeze_gc and gc.get_freeze_count() == 0
            if freeze:
                gc.freeze()
        try:
            pid = os.fork()
        except BaseException:
            if freeze:
                gc.unfreeze()
            raise
        if pid == 0:  # child: no logging, no event loop, just the file
            code = 0
            try:
                write_snapshot(tree, self.snap_dir, compress=self.compress)
            except BaseException:
                code = 1
            os._exit(code)
        self.last_snapshot_pause_ms = (time.perf_counter() - t0) * 1000
        self._snap_child = pid
        zxid = tree.last_zxid
        threading.Thread(
            target=self._reap, args=(pid, zxid, t0, freeze), name="zabby-snap-reaper",
            daemon=True,
        ).start()

    def _reap(self, pid: int, zxid: int, t0: float, frozen: bool = False) -> None:
        status = None
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # close() reaped it first
            pass
        finally:
            self.last_snapshot_ms = (time.perf_counter() - t0) * 1000
            if frozen:
                gc.unfreeze()  # before the next snapshot may start (it freezes again)
            self._snap_child = None
        if status is None:
            return
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            self.snapshots_taken += 1
            # on the reaper thread: a scrape racing this sees the figure a moment late
            self.snapshot_time.add(int(self.last_snapshot_ms))
            log.info("snapshot at zxid 0x%x written in %.0f ms (server paused %.1f ms)",
                     zxid, self.last_snapshot_ms, self.last_snapshot_pause_ms)
        else:
            log.error("snapshot at zxid 0x%x failed (exit code %d); the log still holds everything",
                      zxid, code)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if self._syncer is not None:
            self._syncer.close()
            self._syncer = None
        if self._snap_child is not None:
            try:
                os.waitpid(self._snap_child, 0)
            except ChildProcessError:
                pass
        self.log.close()
