"""The fsync helper processes (zabby.server.fsync_helper) on a real filesystem.

The loop writes a batch into the log's preallocated room and a helper
fdatasyncs it; with a pool, the next batch's fsync may start before the
previous one's ends. What must hold: a txn is acknowledged only after its
fsync was reported, and in zxid order even when a later batch's fsync ends
first; a helper that dies is replaced by fsync on the worker thread with
nothing lost; an fsync error reaches the caller as its errno; the helpers
never outlive their server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import time

import pytest

from zabby.server.durability import GroupCommitter
from zabby.server.fsync_helper import FsyncHelper, FsyncPool
from zabby.storage import TxnLog
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.testing.servers import ZabbyServer
from zabby.wire import Err, Op
from zabby.wire.records import CreateRequest


def _payload(z: int) -> bytes:
    return b"txn-%d" % z


async def _commit(gc: GroupCommitter, zxids, timeout: float = 10.0) -> None:
    """Submit one entry per zxid; wait until every one is acknowledged."""
    loop = asyncio.get_running_loop()
    futs = []
    for z in zxids:
        f = loop.create_future()
        gc.submit_entry(z, _payload(z), lambda f=f: f.set_result(True),
                        lambda why, f=f: f.set_exception(AssertionError(why)))
        futs.append(f)
    await asyncio.wait_for(asyncio.gather(*futs), timeout)


def _logged(log_dir) -> list[tuple[int, bytes]]:
    log = TxnLog(str(log_dir))
    try:
        return list(log.iter_entries())
    finally:
        log.close()


def _committer(tmp_path, syncer=FsyncHelper, max_inflight: int = 2) -> GroupCommitter:
    txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 20)
    txn_log.open_for_append(0)
    return GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                          tree_getter=None, syncer=syncer, max_inflight=max_inflight)


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_acknowledged_only_after_the_helper_fsynced(tmp_path):
    async def main() -> None:
        gc = _committer(tmp_path)
        try:
            await _commit(gc, [1])  # starts the segment (worker thread) and the helper
            await _commit(gc, [2, 3])  # the fast path
            helper = gc._syncer
            assert isinstance(helper, FsyncHelper) and helper.alive
            os.kill(helper.proc.pid, signal.SIGSTOP)
            try:
                acked = asyncio.ensure_future(_commit(gc, [4, 5, 6]))
                await asyncio.sleep(0.5)
                assert not acked.done(), "acknowledged while the helper could not fsync"
            finally:
                os.kill(helper.proc.pid, signal.SIGCONT)
            await asyncio.wait_for(acked, 10)
            assert gc.log.last_zxid == 6
        finally:
            gc.close()

    asyncio.run(main())
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 7)]


def test_after_batch_runs_once_per_durable_batch_after_its_txns(tmp_path):
    # the ensemble takes one consensus step per log batch from this hook
    async def main() -> list:
        gc = _committer(tmp_path)
        seen: list = []
        gc.after_batch = lambda: seen.append("batch")
        try:
            await _commit(gc, [1])  # a new segment: the worker thread's write_batch
            done = asyncio.get_running_loop().create_future()
            for z in (2, 3, 4):  # one loop turn: one fast batch through the helper
                gc.submit_entry(z, _payload(z), lambda z=z: seen.append(z), lambda why: None)
            gc.submit_entry(5, _payload(5), lambda: done.set_result(seen.append(5)),
                            lambda why: None)
            await asyncio.wait_for(done, 10)
            await _commit(gc, [6])  # a later turn: a batch of its own
            return seen
        finally:
            gc.close()

    assert asyncio.run(main()) == ["batch", 2, 3, 4, 5, "batch", "batch"]


def test_batches_are_acknowledged_in_order_when_a_later_fsync_ends_first(tmp_path):
    async def main() -> list[int]:
        gc = _committer(tmp_path, syncer=lambda loop: FsyncPool(loop, 2))
        acked: list[int] = []
        loop = asyncio.get_running_loop()

        def submit(z: int) -> None:
            gc.submit_entry(z, _payload(z), lambda: acked.append(z),
                            lambda why: acked.append(-z))
        try:
            await _commit(gc, [1, 2])  # new segment (thread), starts the pool
            await _commit(gc, [3])
            first, second = gc._syncer.helpers
            os.kill(first.proc.pid, signal.SIGSTOP)
            try:
                submit(4)
                await asyncio.sleep(0.05)  # batch [4] goes to the stopped helper
                submit(5)
                submit(6)
                await asyncio.sleep(0.5)  # batch [5, 6] to the other, which answers
                assert len(first._waiting) == 1 and not second._waiting
                assert acked == [], "acknowledged before the earlier batch's fsync ended"
            finally:
                os.kill(first.proc.pid, signal.SIGCONT)
            deadline = loop.time() + 10
            while len(acked) < 3 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert gc.log.last_zxid == 6
            return acked
        finally:
            gc.close()

    assert asyncio.run(main()) == [4, 5, 6]
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 7)]


def test_a_dead_helper_is_replaced_by_fsync_on_the_thread(tmp_path, caplog):
    async def main() -> None:
        gc = _committer(tmp_path)
        try:
            await _commit(gc, [1, 2])
            await _commit(gc, [3])
            helper = gc._syncer
            os.kill(helper.proc.pid, signal.SIGKILL)
            helper.proc.wait(5)
            await _commit(gc, range(4, 40))
            for z in range(40, 60):  # one at a time: many batches after the loss
                await _commit(gc, [z])
            assert not helper.alive
            assert gc.failure is None
        finally:
            gc.close()

    with caplog.at_level(logging.WARNING, logger="zabby.server.storage"):
        asyncio.run(main())
    assert any("fsync helper process exited" in r.getMessage() for r in caplog.records)
    assert _logged(tmp_path / "log") == [(z, _payload(z)) for z in range(1, 60)]


def _helper_answers(tmp_path, requests) -> list:
    """Run (what, key) requests through one FsyncHelper, `what` being "file" (a
    regular file) or "pipe" (cannot be fsynced: EINVAL); return the answers."""
    async def main() -> list:
        helper = FsyncHelper(asyncio.get_running_loop())
        r, w = os.pipe()
        f = open(tmp_path / "f", "wb")  # noqa: SIM115 - closed below
        try:
            got = []
            for what, key in requests:
                fut = asyncio.get_running_loop().create_future()
                helper.sync(f.fileno() if what == "file" else r, True, fut.set_result, key)
                got.append(await asyncio.wait_for(fut, 5))
            return got
        finally:
            helper.close()
            f.close()
            os.close(r)
            os.close(w)

    return asyncio.run(main())


def test_an_fsync_error_reaches_the_caller_as_its_errno(tmp_path):
    assert _helper_answers(tmp_path, [("pipe", None), ("file", None)]) == [errno.EINVAL, 0]


def test_the_helper_keeps_a_descriptor_while_its_key_stays(tmp_path):
    # the file under key 1; then the pipe under key 1 (so: the file the helper
    # holds, fine); then the pipe under key 2 (sent anew: EINVAL)
    answers = _helper_answers(tmp_path, [("file", 1), ("pipe", 1), ("pipe", 2)])
    assert answers == [0, 0, errno.EINVAL]


def test_the_helper_exits_with_its_server(tmp_path, monkeypatch):
    # the writer child is the log writer of a pure-Python install (and on request);
    # where zabby._logio is built the server writes through a thread of its own
    monkeypatch.setenv("ZABBY_LOG_WRITER", "child")
    srv = ZabbyServer(tmp_path)
    try:
        with RawClient(srv.host, srv.port) as c:
            for i in range(5):  # the first batches start the helper
                r = c.request(Op.CREATE, CreateRequest(f"/n{i}", b"x", OPEN_ACL_UNSAFE, 0))
                assert r.err == Err.OK
        children = _children(srv.pid)
        helpers = [p for p in children if b"fsync_helper" in _cmdline(p)]
        assert len(helpers) == 1, [(p, _cmdline(p)) for p in children]  # the LogWriter
        os.kill(srv.pid, signal.SIGKILL)  # the server only, not its process group
        for pid in helpers:
            assert _gone(pid, 10), "an fsync helper outlived its server"
    finally:
        srv.stop()


def _children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


if not os.path.exists("/proc/self/task"):  # pragma: no cover - Linux only
    pytest.skip("needs /proc", allow_module_level=True)
