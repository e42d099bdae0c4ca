"""fsync in a process of our own, so it never waits for the event loop's GIL.

Why: the log's fdatasync used to run on a worker thread. A thread needs the
GIL to start the call, and the event-loop thread holds the GIL for as long
as it is busy replying to the previous batch, so the fsync began only when
the loop went idle: processing and fsync ran one after the other (measured:
~300 us of a ~740 us batch cycle spent waiting to start). A child process
has its own interpreter: the loop writes the batch (pwrite into preallocated
room, microseconds), hands the file descriptor to the child over a Unix
socket (SCM_RIGHTS), and goes on serving while the child syncs.

`FsyncPool` keeps two such children so that the next batch's fsync can
start before the previous one's ends (the committer acknowledges in order).

fsync acts on the file, not the descriptor, so the child's fdatasync makes
durable what the parent wrote. Protocol (SOCK_SEQPACKET, one message each
way per request): request b"D" (fdatasync) or b"F" (fsync) with one fd
attached, which the child keeps (closing the one it held), or b"d" / b"f"
for the descriptor it holds; reply a signed 32-bit errno, 0 for success. The child exits when
the socket reaches EOF (the server stopped or died), and ignores SIGINT so
Ctrl-C on `zabby serve` stops only the server.

This file is also the child's program: it is run by path with `python -I -S`,
so it imports nothing but the standard library.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time

_REPLY = struct.Struct("<i")


class HelperGone(Exception):
    """The child is no longer there; the caller syncs some other way."""


class FsyncHelper:
    """The parent's side: `sync(fd, data_only, callback)` with the callback run
    on the event loop as callback(errno_or_None) -- None when the helper is
    gone (then nothing is known about that fsync; the caller redoes it)."""

    def __init__(self, loop) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        parent.setblocking(False)
        self._sock = parent
        self._loop = loop
        self._waiting: list = []
        self._key = None  # the key of the descriptor the child holds
        self.alive = True
        loop.add_reader(parent.fileno(), self._readable)

    def sync(self, fd: int, data_only: bool, callback, key=None) -> None:
        """fsync `fd`. With a `key` (which must change whenever `fd` stops naming
        the same open file), the child keeps its copy of the descriptor and
        later requests with the same key send none: passing an fd costs more
        than the rest of the request."""
        if not self.alive:
            callback(None)
            return
        try:
            if key is not None and key == self._key:
                self._sock.send(b"d" if data_only else b"f")
            else:
                socket.send_fds(self._sock, [b"D" if data_only else b"F"], [fd])
                self._key = key
        except OSError:
            self._gone()
            callback(None)
            return
        self._waiting.append(callback)

    def _readable(self) -> None:
        while self._waiting:
            try:
                msg = self._sock.recv(_REPLY.size)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if len(msg) != _REPLY.size:
                self._gone()
                return
            self._waiting.pop(0)(_REPLY.unpack(msg)[0])
        if self.alive:
            # readable with nobody waiting: EOF (the child exited)
            try:
                if self._sock.recv(_REPLY.size, socket.MSG_PEEK) == b"":
                    self._gone()
            except BlockingIOError:
                pass
            except OSError:
                self._gone()

    def _gone(self) -> None:
        if not self.alive:
            return
        self.alive = False
        try:
            self._loop.remove_reader(self._sock.fileno())
        except Exception:  # pragma: no cover - loop already closed
            pass
        waiting, self._waiting = self._waiting, []
        for cb in waiting:
            cb(None)

    def close(self) -> None:
        """Stop the child (EOF on its socket) and reap it."""
        self._gone()
        self._sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck fsync
            self.proc.kill()
            self.proc.wait()


class FsyncPool:
    """`size` helpers, so that the next batch's fsync can start while the
    previous one's is still running (the disk serves concurrent flushes, and
    the hand-offs overlap); same interface as FsyncHelper. Each request goes to
    a helper with nothing outstanding, else to the least busy one."""

    def __init__(self, loop, size: int = 2) -> None:
        self.helpers: list[FsyncHelper] = []
        try:
            for _ in range(max(1, size)):
                self.helpers.append(FsyncHelper(loop))
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return all(h.alive for h in self.helpers)

    def sync(self, fd: int, data_only: bool, callback, key=None) -> None:
        if not self.alive:
            callback(None)
            return
        min(self.helpers, key=lambda h: len(h._waiting)).sync(fd, data_only, callback, key)

    def close(self) -> None:
        for h in self.helpers:
            h.close()


def _stall(path: str) -> None:
    """Tests only: zabby.storage.fs.FSYNC_STALL_ENV (a slow disk); this program
    imports nothing of zabby, so the few lines of fs.fsync_stall are repeated."""
    try:
        with open(path) as f:
            s = float(f.read().strip() or 0)
    except (OSError, ValueError):
        return
    if s > 0:
        time.sleep(s)


def _child_main(sock_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=sock_fd)
    stall_file = os.environ.get("ZABBY_TEST_FSYNC_STALL_FILE") or None
    held = None  # the descriptor of the last request that carried one
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 4)
        except OSError:
            return
        if not msg:
            return
        if fds:
            if held is not None:
                os.close(held)
            held = fds[0]
            for extra in fds[1:]:
                os.close(extra)
        err = 0
        try:
            if stall_file is not None:
                _stall(stall_file)
            if held is None:
                err = errno.EBADF
            elif msg in (b"D", b"d"):
                os.fdatasync(held)
            else:
                os.fsync(held)
        except OSError as e:
            err = e.errno or errno.EIO
        try:
            sock.send(_REPLY.pack(err))
        except OSError:
            return


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
