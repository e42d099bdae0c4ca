"""The committer's direct lane (`GroupCommitter(direct_max=N)`): a batch of at most N
txns with nothing in flight is written and fdatasynced by a thread of the server's own
process instead of the writer child, which saves the child's round trip at one write
at a time. What must hold: a txn is acknowledged only after its fdatasync returned,
the loop keeps running meanwhile, nothing else starts while a direct batch is in
flight (no fdatasync may make a later batch durable ahead of a hole), the lane steps
aside when txns queue up behind it, a failed write fails its txns and refuses later
ones, and the thread does not outlive the committer.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time

import pytest

from zabby.server.durability import GroupCommitter
from zabby.server.fsync_helper import LogWriter
from zabby.storage import TxnLog
from zabby.storage.fs import RealFS

from .test_log_writer import _commit, _logged, _payload, _submit


class _GatedFS(RealFS):
    """RealFS whose fsyncs wait while `gate` is clear (armed), and fail with EIO once
    `fail` is set; it records the thread of every write and fsync."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.calls: list[tuple[str, str]] = []

    def write(self, h, data, offset=None):
        self.calls.append(("write", threading.current_thread().name))
        super().write(h, data, offset)

    def fsync(self, h, data_only=False):
        self.calls.append(("fsync", threading.current_thread().name))
        if not self.gate.wait(10):
            raise AssertionError("the test never opened the gate")
        if self.fail:
            raise OSError(errno.EIO, "injected")
        super().fsync(h, data_only)


def _committer(tmp_path, fs=None, direct_max: int = 4) -> GroupCommitter:
    txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 20, fs=fs)
    txn_log.open_for_append(0)
    return GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                          tree_getter=None, syncer=LogWriter, max_inflight=2,
                          direct_max=direct_max)


async def _wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _direct_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zabby-log-direct"]


def test_a_small_batch_is_acked_only_after_the_direct_fsync_and_the_loop_runs_meanwhile(
        tmp_path):
    fs = _GatedFS()

    async def main() -> None:
        gc = _committer(tmp_path, fs)
        try:
            await _commit(gc, [1])  # a new segment: the worker thread's write_batch
            fs.calls.clear()
            fs.gate.clear()
            futs = _submit(gc, [2, 3])
            await _wait_for(lambda: ("fsync", "zabby-log-direct") in fs.calls)
            ticks = 0
            for _ in range(20):  # the loop is not blocked by the waiting fsync
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not any(f.done() for f in futs)
            assert gc.log.last_zxid == 1 and gc.log.unsynced
            fs.gate.set()
            await asyncio.wait_for(asyncio.gather(*futs), 5)
            assert fs.calls == [("write", "zabby-log-direct"), ("fsync", "zabby-log-direct")]
            assert gc.direct_batches == 1 and gc._syncer._seq == 0  # nothing for the child
            assert gc.log.last_zxid == 3 and not gc.log.unsynced
        finally:
            fs.gate.set()
            gc.close()
        assert not _direct_threads()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in (1, 2, 3)]


def test_nothing_else_starts_while_a_direct_batch_syncs_and_then_the_lane_steps_aside(
        tmp_path):
    fs = _GatedFS()

    async def main() -> None:
        gc = _committer(tmp_path, fs, direct_max=2)
        gc.direct_backoff = 30.0  # (so that a slow machine cannot outlast it)
        gc.direct_strikes = 1  # (the run of strikes has a test of its own)
        acked: list[int] = []
        try:
            await _commit(gc, [1])
            fs.gate.clear()
            first = _submit(gc, [2])
            await _wait_for(lambda: gc.direct_batches == 1)
            for f in first:
                f.add_done_callback(lambda f: acked.append(2))
            later = _submit(gc, [3, 4, 5])  # too big for the lane, and one is in flight
            for z, f in zip((3, 4, 5), later, strict=True):
                f.add_done_callback(lambda f, z=z: acked.append(z))
            await asyncio.sleep(0.2)
            assert len(gc._inflight) == 1 and gc._syncer._seq == 0, \
                "a batch started while the direct one was not durable"
            assert len(gc._pending) == 3 and not acked
            fs.gate.set()
            await asyncio.wait_for(asyncio.gather(*first, *later), 10)
            assert acked == [2, 3, 4, 5]
            # txns were waiting behind the direct batch: the lane is off for a while,
            # so the next small batch goes to the writer child
            assert gc._direct_off_until > time.monotonic()
            assert gc._syncer._seq == 1  # [3, 4, 5]
            await _commit(gc, [6])
            assert gc.direct_batches == 1 and gc._syncer._seq == 2
            gc._direct_off_until = 0.0  # the back-off is over: the lane again
            await _commit(gc, [7])
            assert gc.direct_batches == 2
        finally:
            fs.gate.set()
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 8)]


def test_a_direct_batch_answered_late_by_a_busy_loop_turns_the_lane_off(tmp_path):
    # the thread's answer waits for the loop (and for the GIL it holds): a round trip
    # much longer than the pwrite + fdatasync means the loop is busy, where the
    # writer child does better
    fs = _GatedFS()

    async def main() -> None:
        gc = _committer(tmp_path, fs)
        gc.direct_strikes = 1
        try:
            await _commit(gc, [1])
            await _commit(gc, [2])
            assert gc.direct_batches == 1
            gc._direct_off_until = 0.0  # (a cold thread's first answer may be late too)
            fs.gate.clear()
            n = len(fs.calls)
            futs = _submit(gc, [3])
            await _wait_for(lambda: ("fsync", "zabby-log-direct") in fs.calls[n:])
            fs.gate.set()
            time.sleep(0.05)  # the loop is busy while the thread answers
            await asyncio.wait_for(asyncio.gather(*futs), 5)
            assert gc.direct_batches == 2 and gc._direct_off_until > time.monotonic()
        finally:
            fs.gate.set()
            gc.close()

    asyncio.run(main())


class _PermitFS(RealFS):
    """RealFS whose every fsync takes a permit (`allow`) first; it counts the calls."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(1 << 20)
        self.fsyncs = 0

    def allow(self, n: int = 1) -> None:
        for _ in range(n):
            self.permits.release()

    def fsync(self, h, data_only=False):
        self.fsyncs += 1
        if not self.permits.acquire(timeout=10):
            raise AssertionError("the test never allowed this fsync")
        super().fsync(h, data_only)


def test_only_a_run_of_loaded_direct_batches_turns_the_lane_off(tmp_path):
    # one direct batch that finds a txn queued behind it is no sign of load (an
    # ensemble member sees a few a second); `direct_strikes` of them in a row are
    fs = _PermitFS()

    async def chain(gc, first: int, loaded: int) -> list[int]:
        """Direct batches of one txn, each of the first `loaded` with the next txn
        submitted while it syncs; the zxids after the chain."""
        futs = _submit(gc, [first])
        z = first
        for _ in range(loaded):
            n = fs.fsyncs
            await _wait_for(lambda n=n: fs.fsyncs > n)
            z += 1
            futs += _submit(gc, [z])  # queued behind the syncing batch
            fs.allow()
        fs.allow()  # the last one, with nothing behind it
        await asyncio.wait_for(asyncio.gather(*futs), 5)
        return z + 1

    async def main() -> None:
        gc = _committer(tmp_path, fs)
        gc.direct_backoff = 30.0
        # only the txns queued behind a batch count here: on a loaded machine the
        # loop's wake-up after a sync can exceed direct_slack (1 ms) and made the
        # batch with nothing behind it a strike too (a CI failure)
        gc.direct_slack = 60.0
        assert gc.direct_strikes == 3
        try:
            await _commit(gc, [1])  # the new segment: the worker thread
            while fs.permits.acquire(blocking=False):  # from now on, one by one
                pass
            z = await chain(gc, 2, 2)  # two strikes, then a batch with none behind it
            assert gc._direct_off_until == 0.0 and gc.direct_batches == 3
            z = await chain(gc, z, 2)  # the run starts again
            assert gc._direct_off_until == 0.0 and gc.direct_batches == 6
            sent = gc._syncer._seq
            z = await chain(gc, z, 3)  # three in a row: off, so the 4th goes to the child
            assert gc._direct_off_until > time.monotonic()
            assert gc.direct_batches == 9 and gc._syncer._seq == sent + 1
            fs.allow(100)
            await _commit(gc, [z])  # still off
            assert gc.direct_batches == 9 and gc._syncer._seq == sent + 2
        finally:
            fs.allow(100)
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 13)]


def test_a_failed_direct_fsync_fails_its_txns_and_refuses_later_writes(tmp_path):
    fs = _GatedFS()

    async def main() -> None:
        gc = _committer(tmp_path, fs)
        try:
            await _commit(gc, [1])
            fs.fail = True
            futs = _submit(gc, [2, 3])
            done = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 10)
            assert all(isinstance(r, OSError) for r in done), done
            assert "zxids 0x2..0x3 failed" in str(done[0])
            assert os.strerror(errno.EIO) in str(done[0])
            assert gc.direct_batches == 1 and gc.failure is not None
            assert gc.log.last_zxid == 1
            with pytest.raises(OSError, match="refusing writes"):
                await asyncio.wait_for(_submit(gc, [4])[0], 5)
        finally:
            gc.close()

    asyncio.run(main())
    # the failed batch's bytes may be in the file, but past the durable end: recovery
    # reads only what was acknowledged, and the next write_batch cuts the tail
    assert _logged(tmp_path / "log")[:1] == [(1, _payload(1))]


def test_off_by_default(tmp_path):
    async def main() -> None:
        gc = _committer(tmp_path, direct_max=0)
        try:
            for z in range(1, 6):
                await _commit(gc, [z])
            assert gc.direct_batches == 0 and gc._syncer._seq == 4
        finally:
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 6)]
