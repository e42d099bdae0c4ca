"""Durable commit: group commit of txns to the log, snapshots in a forked child.

`GroupCommitter.submit(txn, done, failed)` queues a txn; the event loop keeps
accepting requests while the previous batch is fsynced. Every txn that
arrived during that fsync goes into the next batch, so one fsync covers many
txns and throughput grows with concurrency. Callbacks run on the event loop,
in zxid order, only after the batch is durable.

Where the batch is written: usually the loop writes it into the segment's
preallocated room (a pwrite into the page cache) and a syncer -- in the
server, `fsync_helper.FsyncHelper`, a child process -- fdatasyncs it, so the
fsync overlaps the loop's work instead of waiting for the GIL. A batch that
starts a segment, needs more room, or follows a failed write goes to one
worker thread that runs the whole `TxnLog.write_batch` (fsync included).

If a write or fsync fails, the batch's txns were never acknowledged: the
committer tries to cut the log back to its last good entry, fails the waiting
requests, and from then on refuses writes (the server turns read-only and
says why) until an operator frees space and restarts it.

Snapshots: after about `snapCount` txns (randomised per server, as ZooKeeper
does) the log rolls to a new segment and a forked child writes the tree as it
is at that instant, so the server pauses only for the fork.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..storage import StorageError, TxnLog, write_snapshot

log = logging.getLogger("zabby.server.storage")


class GroupCommitter:
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
    ) -> None:
        self.log = txn_log
        self.snap_dir = snap_dir
        self.compress = compress
        self.snap_count = max(2, snap_count)
        self._rng = rng or random.Random()
        self._tree = tree_getter
        self._pending: list[tuple[int, bytes, Callable[[], None], Callable[[str], None]]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zabby-log")
        self._running = False
        self.failure: str | None = None  # why writes are refused, once a write failed
        self._since_snap = 0
        self._snap_threshold = self._next_threshold()
        self._roll_requested = False
        self._snap_child: int | None = None
        # `syncer(loop)` makes the object that fsyncs a written batch off this
        # process's GIL (fsync_helper.FsyncHelper); made with the first batch
        self._syncer_factory = syncer
        self._syncer = None
        # figures for mntr / the benchmark
        self.batches = 0
        self.txns = 0
        self.last_fsync_ms = 0.0
        self.max_batch = 0
        self.last_snapshot_pause_ms = 0.0
        self.last_snapshot_ms = 0.0
        self.snapshots_taken = 0

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

    def _kick(self) -> None:
        if not self._running:
            self._running = True
            asyncio.get_running_loop().call_soon(self._start_batch)

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

    def _start_batch(self) -> None:
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending and self.failure is None:
                batch = self._take()
                if batch[0][0] is None:
                    _, fn, done, _ = batch[0]
                    try:
                        await loop.run_in_executor(self._executor, fn)
                    except (StorageError, OSError) as e:
                        self._fail(str(e), batch)
                        break
                    done()
                    continue
                entries = [(z, b) for z, b, _, _ in batch]
                roll = self._roll_requested
                self._roll_requested = False
                t0 = time.perf_counter()
                try:
                    if roll or not await self._write_fast(entries):
                        await loop.run_in_executor(self._executor, self._write, entries, roll)
                except StorageError as e:
                    self._fail(str(e), batch)
                    break
                except Exception as e:  # a bug in the log is a failed write too
                    log.exception("unexpected error writing the transaction log")
                    self._fail(f"unexpected error writing the transaction log: {e}", batch)
                    break
                self.last_fsync_ms = (time.perf_counter() - t0) * 1000
                self.batches += 1
                self.txns += len(batch)
                if len(batch) > self.max_batch:
                    self.max_batch = len(batch)
                for _, _, done, _ in batch:
                    done()
                self._since_snap += len(batch)
                if self._since_snap >= self._snap_threshold:
                    self._maybe_snapshot()
        finally:
            self._running = False
            if self._pending and self.failure is None:
                self._running = True
                loop.call_soon(self._start_batch)

    async def _write_fast(self, entries) -> bool:
        """Write on the loop, fsync by the syncer; False (nothing written) when
        the batch needs the worker thread's full `write_batch` instead."""
        if self._syncer_factory is None:
            return False
        loop = asyncio.get_running_loop()
        if self._syncer is None:
            try:
                self._syncer = self._syncer_factory(loop)
            except OSError as e:
                log.warning("cannot start the fsync helper process (%s): fsync on a thread", e)
                self._syncer_factory = None
                return False
        h = self.log.append_unsynced(entries)
        if h is None:
            return False
        fut = loop.create_future()
        self._syncer.sync(h, True, fut.set_result)
        err = await fut
        if err is None:
            log.warning("the fsync helper process exited: fsync on a thread from now on")
            self._syncer_factory = None
            try:
                await loop.run_in_executor(self._executor, self.log.fs.fsync, h, True)
            except OSError as e:
                err = e.errno or errno.EIO
            else:
                err = 0
        if err:
            raise StorageError(f"txn log {self.log.current_path}: fdatasync of zxids "
                               f"{entries[0][0]:#x}..{entries[-1][0]:#x} failed: "
                               f"{os.strerror(err)}")
        self.log.appended_synced()
        return True

    def _write(self, entries, roll: bool) -> None:
        if roll:
            self.log.roll()
        self.log.write_batch(entries)

    def _fail(self, why: str, batch) -> None:
        self.failure = f"transaction log write failed, refusing writes until restart: {why}"
        log.error("%s", self.failure)
        rest, self._pending = self._pending, []
        for _, _, _, failed in batch + rest:
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
            return
        pid = os.fork()
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
            target=self._reap, args=(pid, zxid, t0), name="zabby-snap-reaper", daemon=True
        ).start()

    def _reap(self, pid: int, zxid: int, t0: float) -> None:
        _, status = os.waitpid(pid, 0)
        self.last_snapshot_ms = (time.perf_counter() - t0) * 1000
        self._snap_child = None
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            self.snapshots_taken += 1
            log.info("snapshot at zxid 0x%x written in %.0f ms (server paused %.1f ms)",
                     zxid, self.last_snapshot_ms, self.last_snapshot_pause_ms)
        else:
            log.error("snapshot at zxid 0x%x failed (exit code %d); the log still holds everything",
                      zxid, code)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._syncer is not None:
            self._syncer.close()
            self._syncer = None
        if self._snap_child is not None:
            try:
                os.waitpid(self._snap_child, 0)
            except ChildProcessError:
                pass
        self.log.close()
