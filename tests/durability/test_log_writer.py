"""The log writer process (zabby.server.fsync_helper.LogWriter) on a real filesystem.

The loop only encodes a batch (TxnLog.stage_unsynced) and hands it to the
writer, which pwrites and fdatasyncs it. What must hold: the loop itself never
writes the batch, and a txn is acknowledged only after the writer wrote *and*
synced it; a control op (truncation, snapshot install) and a reader of the
log see every batch handed over before it; a write error in the writer fails
the writes cleanly (never acknowledged, later writes refused, the log still
holds exactly the acknowledged prefix); a writer that dies is replaced by
write + fsync on the worker thread with nothing lost.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal

import pytest

from zabby.server.durability import GroupCommitter
from zabby.server.fsync_helper import LogWriter
from zabby.storage import TxnLog
from zabby.storage.fs import RealFS


def _payload(z: int) -> bytes:
    return b"txn-%d" % z


def _submit(gc: GroupCommitter, zxids) -> list[asyncio.Future]:
    loop = asyncio.get_running_loop()
    futs = []
    for z in zxids:
        f = loop.create_future()
        gc.submit_entry(z, _payload(z), lambda f=f: f.set_result(True),
                        lambda why, f=f: f.done() or f.set_exception(OSError(why)))
        futs.append(f)
    return futs


async def _commit(gc: GroupCommitter, zxids, timeout: float = 10.0) -> None:
    await asyncio.wait_for(asyncio.gather(*_submit(gc, zxids)), timeout)


def _logged(log_dir) -> list[tuple[int, bytes]]:
    log = TxnLog(str(log_dir))
    try:
        return list(log.iter_entries())
    finally:
        log.close()


def _committer(tmp_path, fs=None) -> GroupCommitter:
    txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 20, fs=fs)
    txn_log.open_for_append(0)
    return GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                          tree_getter=None, syncer=LogWriter, max_inflight=2)


def _file_bytes(gc: GroupCommitter) -> bytes:
    with open(gc.log.current_path, "rb") as f:
        return f.read()


def test_the_loop_does_not_write_and_acks_only_after_the_writer_synced(tmp_path):
    async def main() -> None:
        gc = _committer(tmp_path)
        try:
            await _commit(gc, [1])  # starts the segment (worker thread)
            await _commit(gc, [2, 3])  # the writer process
            writer = gc._syncer
            assert isinstance(writer, LogWriter) and writer.alive
            before = _file_bytes(gc)
            assert _payload(3) in before
            os.kill(writer.proc.pid, signal.SIGSTOP)
            try:
                futs = _submit(gc, [4, 5, 6])
                await asyncio.sleep(0.5)
                assert not any(f.done() for f in futs), "acknowledged before the writer ran"
                assert gc.log.unsynced and gc.log.last_zxid == 3
                assert _file_bytes(gc) == before, "the event loop wrote the batch itself"
                assert [z for z, _ in gc.log.iter_entries()] == [1, 2, 3]
            finally:
                os.kill(writer.proc.pid, signal.SIGCONT)
            await asyncio.wait_for(asyncio.gather(*futs), 10)
            assert gc.log.last_zxid == 6 and not gc.log.unsynced
            assert [z for z, _ in gc.log.iter_entries()] == list(range(1, 7))
        finally:
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 7)]


def test_a_control_op_sees_every_batch_handed_over_before_it(tmp_path):
    # log truncation and snapshot install read the log back on the worker thread:
    # they must not run while a batch handed to the writer is still on its way
    async def main() -> list[int]:
        gc = _committer(tmp_path)
        loop = asyncio.get_running_loop()
        try:
            await _commit(gc, [1])
            await _commit(gc, [2])
            writer = gc._syncer
            os.kill(writer.proc.pid, signal.SIGSTOP)
            try:
                futs = _submit(gc, [3, 4])
                await asyncio.sleep(0.05)  # handed over, not written
                seen: list[int] = []
                ran = loop.create_future()
                gc.submit_control(lambda: seen.extend(z for z, _ in gc.log.iter_entries()),
                                  lambda: ran.set_result(True), ran.set_exception)
                await asyncio.sleep(0.3)
                assert not ran.done(), "a control op ran before the writer's batch was durable"
            finally:
                os.kill(writer.proc.pid, signal.SIGCONT)
            await asyncio.wait_for(asyncio.gather(ran, *futs), 10)
            return seen
        finally:
            gc.close()

    assert asyncio.run(main()) == [1, 2, 3, 4]


class _ReadOnlyForTheWriter(RealFS):
    """The handle the log gives out (so the one the writer process receives) is
    read-only; the worker thread's own writes go through a
    read-write twin. So the writer's pwrite fails with EBADF, as a device
    failing with EIO would, while everything else works."""

    def __init__(self) -> None:
        self.twin: dict[int, int] = {}

    def open(self, path, *, create=False, exclusive=False):
        h = super().open(path, create=create, exclusive=exclusive)
        ro = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.twin[ro] = h
        return ro

    def _rw(self, h):
        return self.twin.get(h, h)

    def write(self, h, data, offset=None):
        super().write(self._rw(h), data, offset)

    def allocate(self, h, offset, length):
        super().allocate(self._rw(h), offset, length)

    def truncate(self, h, size):
        super().truncate(self._rw(h), size)

    def close(self, h):
        super().close(self.twin.pop(h, h))
        super().close(h)


def test_a_write_error_in_the_writer_fails_the_writes_instead_of_acking(tmp_path):
    fs = _ReadOnlyForTheWriter()

    async def main() -> None:
        gc = _committer(tmp_path, fs)
        try:
            await _commit(gc, [1])  # worker thread: through the read-write twin
            futs = _submit(gc, [2, 3])  # to the writer, whose pwrite fails
            done = await asyncio.wait_for(
                asyncio.gather(*futs, return_exceptions=True), 10)
            assert all(isinstance(r, OSError) for r in done), done
            assert "write or fdatasync of zxids 0x2..0x3 failed" in str(done[0])
            assert os.strerror(errno.EBADF) in str(done[0])
            assert gc.failure is not None and gc.log.last_zxid == 1
            later = _submit(gc, [4])  # refused at once, never acknowledged
            with pytest.raises(OSError, match="refusing writes"):
                await asyncio.wait_for(later[0], 5)
        finally:
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(1, _payload(1))]


def test_a_dead_writer_is_replaced_by_write_and_fsync_on_the_thread(tmp_path):
    async def main() -> None:
        gc = _committer(tmp_path)
        try:
            await _commit(gc, [1])
            await _commit(gc, [2])
            writer = gc._syncer
            os.kill(writer.proc.pid, signal.SIGSTOP)
            futs = _submit(gc, [3, 4, 5])  # handed over, never written by the writer
            await asyncio.sleep(0.05)
            os.kill(writer.proc.pid, signal.SIGKILL)
            writer.proc.wait(5)
            await asyncio.wait_for(asyncio.gather(*futs), 10)
            for z in range(6, 20):
                await _commit(gc, [z])
            assert not writer.alive and gc.failure is None
        finally:
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 20)]


def test_the_writer_reports_a_write_error_as_its_errno(tmp_path):
    async def main() -> list:
        writer = LogWriter(asyncio.get_running_loop(), slots=2, slot_bytes=4096, seal=False)
        path = tmp_path / "f"
        path.write_bytes(b"")
        ro = os.open(path, os.O_RDONLY)
        rw = os.open(path, os.O_RDWR)
        try:
            got = []
            for fd, key in ((ro, 1), (rw, 2), (rw, 2)):
                fut = asyncio.get_running_loop().create_future()
                writer.write_sync(fd, len(got) * 3, b"abc", fut.set_result, key)
                got.append(await asyncio.wait_for(fut, 5))
            with pytest.raises(ValueError):
                writer.write_sync(rw, 0, b"x" * 4097, lambda e: None, 2)
            assert os.pread(rw, 16, 0) == b"\0\0\0abcabc"
            writer.seal = True  # "abc" is no framed batch: refused, nothing written
            fut = asyncio.get_running_loop().create_future()
            writer.write_sync(rw, 9, b"abc", fut.set_result, 2)
            got.append(await asyncio.wait_for(fut, 5))
            assert os.pread(rw, 16, 0) == b"\0\0\0abcabc" and writer.alive
            return got
        finally:
            writer.close()
            os.close(ro)
            os.close(rw)

    assert asyncio.run(main()) == [errno.EBADF, 0, 0, errno.EINVAL]


def test_the_writer_fills_in_the_checksums_exactly_as_the_log_encodes():
    from zabby.server.fsync_helper import _seal
    from zabby.storage.txnlog import encode_entries, frame_entries, seal_entries

    batch = [(z, bytes(range(z % 251)) * (z % 7 + 1) or b"\0") for z in range(1, 300, 7)]
    want = bytearray()
    encode_entries(batch, want)
    framed = bytearray()
    frame_entries(batch, framed)
    assert framed != want and len(framed) == len(want)
    a, b = bytearray(framed), bytearray(framed)
    _seal(memoryview(a))
    seal_entries(b)
    assert a == want and b == want
    seal_entries(b)  # sealing twice (the thread's fallback) changes nothing
    assert b == want


def test_sealing_mode_writes_what_the_loop_would_have_encoded(tmp_path):
    # ZABBY_LOG_WRITER=seal: the loop leaves the checksums to the writer
    async def main() -> None:
        txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 20)
        txn_log.open_for_append(0)
        gc = GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                            syncer=lambda loop: LogWriter(loop, seal=True), max_inflight=2)
        try:
            await _commit(gc, [1])
            for z in range(2, 12, 2):
                await _commit(gc, [z, z + 1])
            writer = gc._syncer
            assert writer.alive and writer.seal
            os.kill(writer.proc.pid, signal.SIGSTOP)  # a sealed batch rewritten on the thread
            futs = _submit(gc, [12, 13])
            await asyncio.sleep(0.05)
            os.kill(writer.proc.pid, signal.SIGKILL)
            writer.proc.wait(5)
            await asyncio.wait_for(asyncio.gather(*futs), 10)
        finally:
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 14)]


def test_after_a_failed_write_the_writer_writes_nothing_more_through_that_descriptor(tmp_path):
    # batches already handed over behind a failed one must not reach the file: a
    # crash would leave them after a hole, which recovery must call corruption
    async def main() -> list:
        loop = asyncio.get_running_loop()
        writer = LogWriter(loop, slots=2, slot_bytes=4096, seal=False)
        path = tmp_path / "f"
        path.write_bytes(b"")
        fd = os.open(path, os.O_RDWR)
        fd2 = os.open(path, os.O_RDWR)
        try:
            bad, after = loop.create_future(), loop.create_future()
            writer.write_sync(fd, 1 << 62, b"abc", bad.set_result, 1)  # past any file size
            writer.write_sync(fd, 0, b"abc", after.set_result, 1)  # already on its way
            got = [await asyncio.wait_for(bad, 5), await asyncio.wait_for(after, 5)]
            assert os.pread(fd, 16, 0) == b"", "written after a failed write"
            again = loop.create_future()  # a new descriptor (the log reopened): writes resume
            writer.write_sync(fd2, 0, b"xyz", again.set_result, 2)
            got.append(await asyncio.wait_for(again, 5))
            assert os.pread(fd, 16, 0) == b"xyz"
            return got
        finally:
            writer.close()
            os.close(fd)
            os.close(fd2)

    bad, after, again = asyncio.run(main())
    assert bad in (errno.EFBIG, errno.EINVAL) and after == bad and again == 0
