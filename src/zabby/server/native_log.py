"""The log writer on a thread that never takes the GIL (`zabby._logio`, a small C
extension), with `fsync_helper.LogWriter` -- the writer child -- as its Python twin.

Why: at 32 sessions of one setData at a time a standalone server is bound by the log's
round trip, not its CPU (the loop is ~75 % idle), and the writer child's round trip was
~390 us around a ~205 us fdatasync: the request to the child, its hand-off between its
own threads, the answer, three wake-ups of busy processes on two cores. Threads of the
server's own process lost 20-30 % instead (each step waits for the GIL back;
docs/ARCHITECTURE.md, "Log writes off the loop"). A C thread pwrites and fdatasyncs
without the GIL and wakes the loop through one eventfd.

`NativeLogWriter` has the LogWriter interface the group committer uses (`write_sync`,
`slots`, `max_batch`, `seal`, `alive`, `close`). `available()` says whether the
extension was built (a pure-Python install, or ZABBY_PURE_PYTHON=1, uses the child).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Protocol

from .._compiled import ENV_PURE
from ..storage.fs import FSYNC_STALL_ENV

try:
    if os.environ.get(ENV_PURE, "").strip() not in ("", "0"):  # as _compiled.select
        raise ImportError(f"{ENV_PURE} is set")
    from .. import _logio  # type: ignore[attr-defined]
except ImportError:  # not built here: the writer child does this work
    _logio = None


class Send(Protocol):
    """A message for the writer thread to send once a batch is durable (an ensemble
    follower's ACK: `EnsembleServer._writer_ack`)."""

    fd: int  # a descriptor the writer closes when done (a dup of the socket's)
    message: bytes
    # the message is all the loop needs to hear of the batch now: the thread does not
    # wake it once the batch is durable and every such message went whole (the answer
    # is taken at the next `poll`, by a revoke that came too late, or by a timer)
    quiet: bool

    def bind(self, cancel: Callable[[], bool]) -> None:
        """cancel() -> True: the thread will not send it (its answer says -ECANCELED);
        False: it has begun to (wait for `sent`)."""

    def sent(self, n: int) -> None:
        """Bytes sent (a partial message: the caller sends the rest), or -errno."""

    def more(self) -> list[Send]:
        """Further messages to send, each on its own socket, once the same batch is
        durable (a follower's ACK to the other followers)."""


# how long the answers of quiet batches may wait when nothing else takes them
QUIET_CHECK_S = 0.002


def available() -> bool:
    return _logio is not None


def _unsent(send: Send, err: int, with_more: bool = True) -> None:
    """`send` (and what it carries more) will not go: its descriptor closed, -err told."""
    for s in ([send, *send.more()] if with_more else [send]):
        os.close(s.fd)
        s.sent(-err)


class NativeLogWriter:
    """pwrite + fdatasync of each handed-over batch on the extension's thread. The
    thread writes the batches in the order handed over, fdatasyncs once for all it
    took (covering every write before it), and answers callback(errno) on the loop.
    After a failed write nothing more goes through that descriptor: the batches behind
    it answer with the same errno (a later batch written after a missing one would be a
    hole that recovery must call corruption)."""

    seal = False  # the loop computes the checksums
    sends = True  # write_sync(..., send=...): a message sent once durable

    def __init__(self, loop, slots: int = 2, max_batch: int = 8 << 20) -> None:
        if _logio is None:
            raise OSError(errno.ENOSYS, "zabby._logio is not built")
        self.slots = max(1, slots)
        self.max_batch = max_batch
        self.alive = True
        self._loop = loop
        # tests: a slow disk (zabby.testing.diskfaults.FsyncStall), as the child does
        self._w = _logio.Writer(os.environ.get(FSYNC_STALL_ENV) or None)
        self._seq = 0
        self._cbs: dict[int, Callable[[int | None], None]] = {}
        # the `send` of the batches that send a message once durable
        self._sends: dict[int, Send] = {}
        # answers taken from the thread, not yet handed to their callbacks
        self._answers: deque[tuple[int, int, int]] = deque()
        # jobs of quiet batches not answered yet, and the timer that takes them if
        # nothing else does first
        self._quiet: set[int] = set()
        self._late: asyncio.TimerHandle | None = None
        loop.add_reader(self._w.fileno(), self._readable)

    def write_sync(self, fd: int, offset: int, data, callback, key=None,
                   send: Send | None = None) -> None:
        """Write `data` at `offset` of `fd`, then fdatasync; callback(errno) on the
        loop. At most `slots` outstanding, each at most `max_batch` bytes.

        `send`: once the data is durable the writer thread sends `send.message` on
        the descriptor `send.fd` itself (without blocking) and closes that
        descriptor, which becomes the writer's here whatever happens. `send.bind`
        gets the function that cancels the send if it has not begun;
        `send.sent(bytes sent, or -errno)` runs on the loop just before callback."""
        if len(data) > self.max_batch or len(self._cbs) >= self.slots:
            if send is not None:
                _unsent(send, errno.EBUSY)
            raise ValueError("NativeLogWriter: batch too large or no free slot")
        if not self.alive:
            if send is not None:
                _unsent(send, errno.ESHUTDOWN)
            callback(None)
            return
        seq = self._seq
        self._seq = seq + 1
        self._cbs[seq] = callback
        if send is None:
            self._w.submit(fd, offset, data, seq)
            return
        quiet = send.quiet
        try:
            self._w.submit(fd, offset, data, seq, send.fd, send.message, quiet)
        except BaseException:
            del self._cbs[seq]
            _unsent(send, errno.EIO)
            raise
        self._sends[seq] = send
        if quiet:
            self._quiet.add(seq)
            if self._late is None:
                self._late = self._loop.call_later(QUIET_CHECK_S, self._check_quiet)
        send.bind(partial(self._cancel, seq))
        more = send.more()
        for i, extra in enumerate(more):
            # a job with no data and no callback (it takes no slot): the thread sends
            # its message once everything before it is durable, right after the batch's
            xseq = self._seq
            self._seq = xseq + 1
            try:
                self._w.submit(fd, offset + len(data), b"", xseq, extra.fd, extra.message,
                               quiet)
            except BaseException:
                for left in more[i:]:
                    _unsent(left, errno.EIO, with_more=False)
                raise
            self._sends[xseq] = extra
            if quiet:
                self._quiet.add(xseq)
            extra.bind(partial(self._cancel, xseq))

    def _cancel(self, seq: int) -> bool:
        if self._w.cancel_send(seq):
            return True
        if seq in self._quiet:
            # too late: the thread is sending or has sent; its answer may never wake
            # us (a quiet batch), so look for it next turn (the thread bumps the
            # eventfd if it was still at work)
            self._loop.call_soon(self._readable)
        return False

    def poll(self) -> None:
        """Take the answers of quiet batches now (an ensemble member's peer read: the
        message that answers the quiet ACK, or the next proposal, may need them)."""
        if self._quiet:
            self._readable()

    def _check_quiet(self) -> None:
        self._late = None
        self._readable()
        if self._quiet and self.alive:
            self._late = self._loop.call_later(QUIET_CHECK_S, self._check_quiet)

    def _readable(self) -> None:
        # take() empties the thread's list: if a callback raises, the answers behind
        # it wait here for the next turn instead of being lost (the child's keep in
        # its socket), so one failing callback cannot stall the log for good
        answers = self._answers
        taken = self._w.take()
        answers.extend(taken)
        sends = self._sends
        if sends:
            quiet = self._quiet
            # every send's answer before any batch's callback: the callback (a
            # follower's persisted -> its next ACKs) must know all that the thread
            # sent for the batch, the messages of the data-less jobs behind it too
            for seq, _err, sent in taken:
                if quiet:
                    quiet.discard(seq)
                send = sends.pop(seq, None)
                if send is not None:
                    send.sent(sent)
        try:
            while answers:
                seq, err, sent = answers.popleft()
                cb = self._cbs.pop(seq, None)
                if cb is not None:
                    cb(err)
        finally:
            if answers:
                self._loop.call_soon(self._readable)

    def close(self) -> None:
        if not self.alive:
            return
        self.alive = False
        if self._late is not None:
            self._late.cancel()
            self._late = None
        self._quiet.clear()
        try:
            self._loop.remove_reader(self._w.fileno())
        except Exception:  # pragma: no cover - loop already closed
            pass
        self._w.close()  # finishes what was handed over, then the thread ends
        cbs, self._cbs = self._cbs, {}
        # what was sent is known (a partial message must be finished by the caller);
        # whether the writes are durable is not told: the reader is gone
        sends, self._sends = self._sends, {}
        sent = {seq: n for seq, _, n in (*self._answers, *self._w.take())}
        self._answers.clear()
        for seq in sorted(sends):
            sends[seq].sent(sent.get(seq, -errno.ESHUTDOWN))
        for seq in sorted(cbs):  # answered after the reader went: nothing is known
            cbs[seq](None)
