"""The native log writer (zabby.server.native_log, the C extension zabby._logio)
against its Python twin, the writer child (fsync_helper.LogWriter), on a real file.

Differential: the same batches handed to both land as the same bytes and every one is
answered 0; a write error answers the same errno in both, and both write nothing more
through that descriptor (a batch after a missing one would be a hole) until a new one
comes. Then the native writer under the group committer: txns acknowledged in order,
the log holding exactly them.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
import time

import pytest

from zabby.server import native_log
from zabby.server.durability import GroupCommitter
from zabby.server.fsync_helper import LogWriter
from zabby.storage import TxnLog

# where the build is required (.ci/run: ZABBY_REQUIRE_COMPILED=1) a missing extension
# fails these tests instead of skipping them; ZABBY_PURE_PYTHON=1 always skips
_PURE = os.environ.get("ZABBY_PURE_PYTHON", "") not in ("", "0")
_REQUIRE = os.environ.get("ZABBY_REQUIRE_COMPILED", "") not in ("", "0")
pytestmark = pytest.mark.skipif(_PURE or (not native_log.available() and not _REQUIRE),
                                reason="zabby._logio is not built here (pure Python)")

KINDS = {
    "native": lambda loop: native_log.NativeLogWriter(loop, slots=4, max_batch=1 << 16),
    "child": lambda loop: LogWriter(loop, slots=4, slot_bytes=1 << 16, seal=False),
}


async def _write_all(writer, fd: int, batches, key=1) -> list:
    """Hand over `batches` [(offset, data)], at most `slots` outstanding; the answers."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future] = []
    answers = []
    for offset, data in batches:
        if len(pending) >= writer.slots:
            answers.append(await asyncio.wait_for(pending.pop(0), 10))
        fut = loop.create_future()
        writer.write_sync(fd, offset, data, fut.set_result, key)
        pending.append(fut)
    for fut in pending:
        answers.append(await asyncio.wait_for(fut, 10))
    return answers


def test_the_same_batches_land_as_the_same_bytes(tmp_path):
    rng = random.Random(7)
    batches, offset = [], 0
    for _ in range(300):
        data = rng.randbytes(rng.choice((1, 17, 300, 4096, 30000)))
        batches.append((offset, data))
        offset += len(data)

    async def main(kind: str) -> tuple[list, bytes]:
        writer = KINDS[kind](asyncio.get_running_loop())
        path = tmp_path / kind
        path.write_bytes(b"")
        fd = os.open(path, os.O_RDWR)
        try:
            answers = await _write_all(writer, fd, batches)
        finally:
            writer.close()
            os.close(fd)
        return answers, path.read_bytes()

    native, child = asyncio.run(main("native")), asyncio.run(main("child"))
    assert native[0] == child[0] == [0] * len(batches)
    assert native[1] == child[1] == b"".join(d for _, d in batches)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_errors_and_the_descriptor_after_a_failed_write(tmp_path, kind):
    async def main() -> list:
        loop = asyncio.get_running_loop()
        writer = KINDS[kind](loop)
        path = tmp_path / "f"
        path.write_bytes(b"")
        ro = os.open(path, os.O_RDONLY)
        fd = os.open(path, os.O_RDWR)
        fd2 = os.open(path, os.O_RDWR)
        try:
            got = await _write_all(writer, ro, [(0, b"abc")], key=1)
            # past any file size, then one already on its way behind it
            got += await _write_all(writer, fd, [(1 << 62, b"abc"), (0, b"abc")], key=2)
            assert os.pread(fd, 16, 0) == b"", "written after a failed write"
            got += await _write_all(writer, fd2, [(0, b"xyz")], key=3)  # a new descriptor
            assert os.pread(fd, 16, 0) == b"xyz"
            with pytest.raises(ValueError):
                writer.write_sync(fd2, 0, b"x" * ((1 << 16) + 1), lambda e: None, 3)
            return got
        finally:
            writer.close()
            for f in (ro, fd, fd2):
                os.close(f)

    bad_fd, bad, after, again = asyncio.run(main())
    assert bad_fd == errno.EBADF
    assert bad in (errno.EFBIG, errno.EINVAL) and after == bad and again == 0


def _native_on_empty_file(tmp_path):
    """(native writer on the running loop, the loop, a new empty file, its descriptor)"""
    loop = asyncio.get_running_loop()
    path = tmp_path / "f"
    path.write_bytes(b"")
    return KINDS["native"](loop), loop, path, os.open(path, os.O_RDWR)


def test_closing_answers_what_was_handed_over(tmp_path):
    async def main() -> list:
        writer, loop, path, fd = _native_on_empty_file(tmp_path)
        futs = []
        try:
            for i in range(3):
                fut = loop.create_future()
                writer.write_sync(fd, i * 3, b"abc", fut.set_result)
                futs.append(fut)
        finally:
            writer.close()  # the thread finishes its queue; nobody reads the eventfd now
            os.close(fd)
        assert path.read_bytes() == b"abc" * 3
        late = loop.create_future()
        writer.write_sync(0, 0, b"x", late.set_result)  # closed: answered None at once
        return [f.result() for f in futs] + [late.result()]

    assert asyncio.run(main()) == [None, None, None, None]


def test_the_committer_acknowledges_in_order_what_the_native_writer_synced(tmp_path):
    txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 22)
    txn_log.open_for_append(0)
    gc = GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                        tree_getter=None, syncer=lambda loop: native_log.NativeLogWriter(
                            loop, slots=4), max_inflight=4)
    acked: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        futs = []
        for z in range(1, 2001):
            f = loop.create_future()
            gc.submit_entry(z, b"txn-%d" % z, lambda z=z, f=f: (acked.append(z), f.set_result(z)),
                            lambda why, f=f: f.set_exception(AssertionError(why)))
            futs.append(f)
            if z == 1:
                await asyncio.wait_for(f, 10)  # starts the segment (worker thread)
            elif z % 50 == 0:
                await asyncio.sleep(0)  # batches of ~50 per loop turn
                if z > 100:
                    # at most ~150 in flight, whatever the disk's speed: at least 13
                    # batches, so acknowledging in order spans overlapping batches
                    await asyncio.wait_for(futs[z - 101], 10)
        await asyncio.wait_for(asyncio.gather(*futs), 30)
        assert isinstance(gc._syncer, native_log.NativeLogWriter) and gc.batches > 10

    try:
        asyncio.run(main())
    finally:
        gc.close()
    assert acked == list(range(1, 2001))
    log = TxnLog(str(tmp_path / "log"))
    try:
        assert [(z, p) for z, p in log.iter_entries()] == [(z, b"txn-%d" % z) for z in range(1, 2001)]
    finally:
        log.close()


def test_a_stall_file_slows_every_fdatasync_as_for_the_child(tmp_path, monkeypatch):
    # zabby.testing.diskfaults.FsyncStall (a slow disk for the fault tests) must bite
    # through the native writer too, or those tests would pass without a slow disk
    stall = tmp_path / "stall"
    monkeypatch.setenv("ZABBY_TEST_FSYNC_STALL_FILE", str(stall))

    async def main() -> list[float]:
        writer, loop, _, fd = _native_on_empty_file(tmp_path)
        took = []
        try:
            for seconds in ("0.4", "0", ""):
                stall.write_text(seconds)
                t0 = loop.time()
                assert await _write_all(writer, fd, [(0, b"abc")]) == [0]
                took.append(loop.time() - t0)
        finally:
            writer.close()
            os.close(fd)
        return took

    slow, zero, empty = asyncio.run(main())
    assert slow >= 0.4 and zero < 0.3 and empty < 0.3, (slow, zero, empty)


def test_a_server_writes_its_log_through_the_native_writer_by_default(tmp_path, monkeypatch):
    from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
    from zabby.testing.servers import ZabbyServer
    from zabby.wire import Err, Op
    from zabby.wire.records import CreateRequest

    monkeypatch.delenv("ZABBY_LOG_WRITER", raising=False)
    monkeypatch.delenv("ZABBY_PURE_PYTHON", raising=False)
    srv = ZabbyServer(tmp_path)
    try:
        with RawClient(srv.host, srv.port) as c:
            for i in range(5):
                r = c.request(Op.CREATE, CreateRequest(f"/n{i}", b"x", OPEN_ACL_UNSAFE, 0))
                assert r.err == Err.OK
        children = []
        for tid in os.listdir(f"/proc/{srv.pid}/task"):
            with open(f"/proc/{srv.pid}/task/{tid}/children") as f:
                children += f.read().split()
        helpers = []
        for pid in children:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"fsync_helper" in f.read():
                        helpers.append(pid)
            except OSError:
                pass
        assert helpers == [], "a writer child although zabby._logio is built"
        assert "txn log writes: a C thread of this process" in srv.log_tail(200)
    finally:
        srv.stop()


def test_a_callback_that_raises_loses_no_other_answer(tmp_path):
    """The thread's answers are taken all at once: one callback raising must not drop
    the answers taken with it (their batches would never be acknowledged)."""
    async def main() -> list:
        writer, loop, _path, fd = _native_on_empty_file(tmp_path)
        errors: list = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
        got: list = []

        def bad(err) -> None:
            got.append(("bad", err))
            raise RuntimeError("a callback bug")

        futs = [loop.create_future() for _ in range(2)]
        try:
            writer.write_sync(fd, 0, b"abc", bad)
            for i, fut in enumerate(futs, 1):
                writer.write_sync(fd, i * 3, b"abc", fut.set_result)
            time.sleep(0.5)  # the loop looks away: all three answers wait for one take()
            answers = [await asyncio.wait_for(f, 5) for f in futs]
        finally:
            writer.close()
            os.close(fd)
        return got + answers + [type(e).__name__ for e in errors]

    assert asyncio.run(main()) == [("bad", 0), 0, 0, "RuntimeError"]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class _Send:
    """What write_sync(send=...) takes (peers.Lease in a server)."""

    def __init__(self, sock: socket.socket, message: bytes) -> None:
        self.fd = os.dup(sock.fileno())
        self.message = message
        self.cancel = None
        self.answers: list = []
        self.also: list = []
        self.quiet = False

    def bind(self, cancel) -> None:
        self.cancel = cancel

    def sent(self, n: int) -> None:
        self.answers.append(n)

    def more(self) -> list:
        return self.also


def test_a_message_goes_on_its_socket_once_the_batch_is_durable(tmp_path):
    """write_sync(..., send=...): the writer thread sends the message after the
    fdatasync (an ensemble follower's ACK), closes the descriptor it was given, and
    tells what went before the batch's callback runs."""
    async def main() -> tuple[list, bytes, bytes, set]:
        writer, loop, path, fd = _native_on_empty_file(tmp_path)
        a, b = socket.socketpair()
        order: list = []
        done = loop.create_future()
        try:
            before = _open_fds()
            send = _Send(a, b"ack-7")
            send.sent = lambda n: order.append(("sent", n))
            writer.write_sync(fd, 0, b"durable", lambda err: (order.append(("done", err)),
                                                              done.set_result(None)), send=send)
            await asyncio.wait_for(done, 5)
            leaked = _open_fds() - before
            b.settimeout(5)
            got = b.recv(100)
            assert send.cancel() is False  # sent: too late to cancel
        finally:
            writer.close()
            os.close(fd)
            a.close()
            b.close()
        return order, got, path.read_bytes(), leaked

    order, got, on_disk, leaked = asyncio.run(main())
    assert order == [("sent", 5), ("done", 0)]
    assert got == b"ack-7" and on_disk == b"durable"
    assert leaked == set()  # the writer closed its dup


def _send_once(tmp_path, message: bytes, *, cancel=False, full=False, read_only=False):
    """One batch handed over with a message to send once durable: (what cancel()
    answered right after the hand-off, or None; the send's answers; the batch's errno;
    what the other end of the socket got). `full`: the socket's buffers are full;
    `read_only`: the log's descriptor is (its pwrite fails)."""
    async def main():
        loop = asyncio.get_running_loop()
        writer = KINDS["native"](loop)
        path = tmp_path / "log"
        path.write_bytes(b"")
        fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        if full:
            try:
                while True:  # fill a's send buffer and b's receive buffer
                    a.send(b"z" * 65536)
            except BlockingIOError:
                pass
        done = loop.create_future()
        got = b""
        try:
            send = _Send(a, message)
            writer.write_sync(fd, 0, b"x", done.set_result, send=send)
            cancelled = send.cancel() if cancel else None
            err = await asyncio.wait_for(done, 5)
            if not full:
                try:
                    got = b.recv(len(message) + 1)
                except BlockingIOError:
                    pass
        finally:
            writer.close()
            os.close(fd)
            a.close()
            b.close()
        return cancelled, send.answers, err, got

    return asyncio.run(main())


def test_a_send_cancelled_before_the_fdatasync_ends_does_not_go(tmp_path, monkeypatch):
    stall = tmp_path / "stall"
    stall.write_text("0.3")  # the fdatasync sleeps 0.3 s first
    monkeypatch.setenv("ZABBY_TEST_FSYNC_STALL_FILE", str(stall))
    assert _send_once(tmp_path, b"ack", cancel=True) == (True, [-errno.ECANCELED], 0, b"")


def test_a_full_socket_sends_nothing_and_says_so(tmp_path):
    assert _send_once(tmp_path, b"m" * 1000, full=True) == (None, [-errno.EAGAIN], 0, b"")


def test_a_failed_write_sends_no_message(tmp_path):
    assert _send_once(tmp_path, b"ack", read_only=True) == (
        None, [-errno.EBADF], errno.EBADF, b"")


def _chained_sends(pairs, prefix: bytes) -> list[_Send]:
    """A send on the first end of each socket pair; the first carries the others (its
    more())."""
    sends = [_Send(a, prefix + b"%d" % i) for i, (a, _) in enumerate(pairs)]
    sends[0].also = sends[1:]
    return sends


def _received(pairs) -> list[bytes]:
    """What reached the second end of each pair so far."""
    got = []
    for _, b in pairs:
        b.setblocking(False)
        try:
            got.append(b.recv(100))
        except BlockingIOError:
            got.append(b"")
    return got


def _close_pairs(pairs) -> None:
    for a, b in pairs:
        a.close()
        b.close()


def test_more_messages_go_on_their_own_sockets_once_the_batch_is_durable(tmp_path):
    """A send's more() (a follower's PEER_ACKs): each goes on its own socket after the
    batch's fdatasync. The batch's own message is answered before its callback; the
    others, data-less jobs queued behind it, in the same take or (when the thread took
    the batch before they were queued) the next one."""
    async def main():
        writer, loop, path, fd = _native_on_empty_file(tmp_path)
        pairs = [socket.socketpair() for _ in range(3)]
        order: list = []
        done = loop.create_future()

        def note(what, n=None):
            order.append((what, n))
            if len(order) == 4:
                done.set_result(None)
        try:
            before = _open_fds()
            sends = _chained_sends(pairs, b"msg")
            for i, send in enumerate(sends):
                send.sent = lambda n, i=i: note(f"sent {i}", n)
            writer.write_sync(fd, 0, b"durable", lambda err: note("done", err),
                              send=sends[0])
            await asyncio.wait_for(done, 5)
            leaked = _open_fds() - before
            got = _received(pairs)
        finally:
            writer.close()
            os.close(fd)
            _close_pairs(pairs)
        return order, got, path.read_bytes(), leaked

    order, got, on_disk, leaked = asyncio.run(main())
    assert order.index(("sent 0", 4)) < order.index(("done", 0))
    assert sorted(order) == [("done", 0), ("sent 0", 4), ("sent 1", 4), ("sent 2", 4)]
    assert got == [b"msg0", b"msg1", b"msg2"] and on_disk == b"durable"
    assert leaked == set()


def test_the_extra_messages_take_no_slot(tmp_path):
    """The committer fills the writer's slots with batches (its own count): a batch's
    extra messages must not take one, or the next batch would be refused (which
    stops a server: its log failed)."""
    async def main():
        loop = asyncio.get_running_loop()
        writer = native_log.NativeLogWriter(loop, slots=2)
        path = tmp_path / "log"
        path.write_bytes(b"")
        fd = os.open(path, os.O_RDWR)
        pairs = [socket.socketpair() for _ in range(3)]
        sends = _chained_sends(pairs, b"m")
        done = [loop.create_future(), loop.create_future()]
        try:
            writer.write_sync(fd, 0, b"one", done[0].set_result, send=sends[0])
            writer.write_sync(fd, 3, b"two", done[1].set_result)  # the second slot
            errs = [await asyncio.wait_for(f, 5) for f in done]
        finally:
            writer.close()
            os.close(fd)
            _close_pairs(pairs)
        return errs, [s.answers for s in sends], path.read_bytes()

    assert asyncio.run(main()) == ([0, 0], [[2], [2], [2]], b"onetwo")


def test_each_message_of_a_batch_is_cancelled_on_its_own(tmp_path, monkeypatch):
    """Two links lent for one batch, taken back one after the other while its
    fdatasync runs: neither message goes (the writer remembers every cancelled one,
    not just the last); one taken back: the other still goes."""
    stall = tmp_path / "stall"
    stall.write_text("0.3")
    monkeypatch.setenv("ZABBY_TEST_FSYNC_STALL_FILE", str(stall))

    async def main(cancel: list[int]):
        writer, loop, path, fd = _native_on_empty_file(tmp_path)
        pairs = [socket.socketpair() for _ in range(2)]
        sends = _chained_sends(pairs, b"m")
        done = loop.create_future()
        try:
            writer.write_sync(fd, 0, b"x", done.set_result, send=sends[0])
            said = [sends[i].cancel() for i in cancel]
            await asyncio.wait_for(done, 5)
            got = _received(pairs)
        finally:
            writer.close()
            os.close(fd)
            _close_pairs(pairs)
        return said, [s.answers for s in sends], got

    cancelled = -errno.ECANCELED
    assert asyncio.run(main([0, 1])) == ([True, True], [[cancelled], [cancelled]], [b"", b""])
    assert asyncio.run(main([1])) == ([True], [[2], [cancelled]], [b"m0", b""])


def test_the_committer_hands_the_writer_a_message_for_a_lone_batch(tmp_path):
    """GroupCommitter.send_when_durable (an ensemble follower's ACK): asked with a
    batch's last zxid when that batch is the only one in flight, and what it returns
    goes on the socket once the batch is durable; a batch behind another one in
    flight is not asked (under load the loop's own path sends it)."""
    txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 22)
    txn_log.open_for_append(0)
    gc = GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                        tree_getter=None, syncer=lambda loop: native_log.NativeLogWriter(
                            loop, slots=4), max_inflight=4)
    a, b = socket.socketpair()
    asked: list[int] = []
    sends: list[_Send] = []

    def hook(zxid: int):
        asked.append(zxid)
        sends.append(_Send(a, b"ack-%d" % zxid))
        return sends[-1]

    gc.send_when_durable = hook

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def submit(zs):
            futs = []
            for z in zs:
                f = loop.create_future()
                gc.submit_entry(z, b"txn-%d" % z, lambda f=f: f.set_result(None),
                                lambda why, f=f: f.set_exception(AssertionError(why)))
                futs.append(f)
            return futs

        await asyncio.wait_for(asyncio.gather(*submit([1])), 10)  # the segment: thread
        await asyncio.wait_for(asyncio.gather(*submit([2, 3])), 10)  # one lone batch
        first = submit([4])
        await asyncio.sleep(0)  # batch 4 handed over; 5 joins while it is in flight
        rest = submit([5])
        await asyncio.wait_for(asyncio.gather(*first, *rest), 10)

    try:
        asyncio.run(main())
    finally:
        gc.close()
    b.settimeout(5)
    got = b""
    while len(got) < len(b"ack-3ack-4"):
        got += b.recv(100)
    a.close()
    b.close()
    assert asked == [3, 4] and got == b"ack-3ack-4"
    assert [s.answers for s in sends] == [[5], [5]]


def _quiet_once(tmp_path, monkeypatch, *, full=False, late_cancel=False, poll_after=None,
                wait=0.3, check_s=60.0):
    """One quiet batch (its message is all the loop needs): (when the batch's callback
    ran, in s after the hand-off, or None if not within `wait`; the send's answers;
    what the other end got). The fallback timer fires after `check_s`; `poll_after`:
    call writer.poll() that many s after the hand-off; `late_cancel`: revoke once the
    message is sure to have gone."""
    monkeypatch.setattr(native_log, "QUIET_CHECK_S", check_s)

    async def main():
        writer, loop, path, fd = _native_on_empty_file(tmp_path)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        if full:
            try:
                while True:
                    a.send(b"z" * 65536)
            except BlockingIOError:
                pass
        send = _Send(a, b"ack-9")
        send.quiet = True
        t0 = loop.time()
        took: list = []
        writer.write_sync(fd, 0, b"quiet", lambda err: took.append(loop.time() - t0),
                          send=send)
        try:
            if late_cancel:
                await asyncio.sleep(0.15)  # long done: the thread sent it
                assert send.cancel() is False
            if poll_after is not None:
                await asyncio.sleep(poll_after)
                assert not took  # nothing woke the loop meanwhile
                writer.poll()
            deadline = loop.time() + wait
            while not took and loop.time() < deadline:
                await asyncio.sleep(0.005)
            got = b""
            if not full:
                try:
                    got = b.recv(100)
                except BlockingIOError:
                    pass
            result = (took[0] if took else None), list(send.answers), got
        finally:
            writer.close()  # (answers what is left: after the result is taken)
            os.close(fd)
            a.close()
            b.close()
        return result

    return asyncio.run(main())


def test_a_quiet_batch_whose_message_went_does_not_wake_the_loop(tmp_path, monkeypatch):
    """The message (a follower's ACK) went whole: the thread does not bump the eventfd,
    so the batch's callback waits until the loop looks (writer.poll())."""
    took, answers, got = _quiet_once(tmp_path, monkeypatch, poll_after=0.25)
    assert took is not None and took >= 0.25
    assert answers == [5] and got == b"ack-9"


def test_a_quiet_batch_is_answered_by_the_timer_when_nothing_looks(tmp_path, monkeypatch):
    took, answers, _ = _quiet_once(tmp_path, monkeypatch, wait=0.3)
    assert took is None  # the timer 60 s out: nothing woke the loop
    assert answers == []
    took, answers, got = _quiet_once(tmp_path, monkeypatch, wait=2.0, check_s=0.2)
    assert took is not None and 0.2 <= took < 2.0
    assert answers == [5] and got == b"ack-9"


def test_a_quiet_batch_wakes_the_loop_when_its_message_could_not_go(tmp_path, monkeypatch):
    took, answers, got = _quiet_once(tmp_path, monkeypatch, full=True)
    assert took is not None and took < 0.25
    assert answers == [-errno.EAGAIN]


def test_a_revoke_that_comes_too_late_gets_the_quiet_answer(tmp_path, monkeypatch):
    """The link wants its socket back after the thread sent the lent frame: the answer
    must come (the link holds its frames until then) although the batch is quiet."""
    took, answers, got = _quiet_once(tmp_path, monkeypatch, late_cancel=True)
    assert took is not None and took < 0.25
    assert answers == [5] and got == b"ack-9"
