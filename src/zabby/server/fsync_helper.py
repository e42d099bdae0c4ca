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

`LogWriter` (what the server uses) goes one step further: its one child also
does the write (and, with `seal`, computes the entries' checksums), so the
loop only encodes the batch into a buffer the two processes share
(docs/ARCHITECTURE.md, "Log writes off the loop").

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
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

_REPLY = struct.Struct("<i")


class HelperGone(Exception):
    """The child is no longer there; the caller syncs some other way."""


class FsyncHelper:
    """The parent's side: `sync(fd, data_only, callback)` with the callback run
    on the event loop as callback(errno_or_None) -- None when the helper is
    gone (then nothing is known about that fsync; the caller redoes it)."""

    def __init__(self, loop, *, mem_fd: int | None = None) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = [str(child.fileno())]
        fds = [child.fileno()]
        if mem_fd is not None:
            args.append(str(mem_fd))
            fds.append(mem_fd)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), *args],
                pass_fds=fds, stdin=subprocess.DEVNULL, close_fds=True,
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


# a LogWriter request: kind, then (sequence number, offset in the shared buffer,
# length (0: sync only), offset in the file); its answer: (errno, sequence number)
_WRITE = struct.Struct("<QQQQ")
_WREPLY = struct.Struct("<iQ")


class LogWriter(FsyncHelper):
    """One child that both writes and fdatasyncs each log batch, so the event
    loop neither writes nor syncs: `write_sync(fd, offset, data, callback,
    key)` copies `data` into a buffer shared with the child (a memfd both map)
    and sends a 33-byte request; the child pwrites it at `offset`, then
    fdatasyncs, and answers callback(errno), or callback(None) if the child is
    gone (as `FsyncHelper.sync`). The child writes in the order requested, on
    one thread, and syncs on two others (the next batch's fdatasync may start
    while the previous one's runs; each covers every write before it, so a
    crash never leaves a hole before a batch that was reported synced).
    Answers may come out of order; the committer acknowledges in order.

    The shared buffer has `slots` slots of `slot_bytes`; request k uses slot
    k % slots, so at most `slots` requests may be outstanding (the committer's
    `max_inflight`), and a batch over `max_batch` bytes is not taken (the
    committer writes it the slow way)."""

    def __init__(self, loop, slots: int = 2, slot_bytes: int = 8 << 20, *,
                 seal: bool = False) -> None:
        # seal: the batches come without their checksums (TxnLog.frame_entries);
        # the child computes them (txnlog.seal_entries) before writing. Off by
        # default: it takes CPU off the loop, but puts the checksums on the path
        # to the fsync, and with 1 KiB values a server then went slower
        # (docs/ARCHITECTURE.md, "Log writes off the loop")
        self.seal = seal
        self.slots = max(1, slots)
        self.max_batch = slot_bytes
        size = self.slots * slot_bytes
        mem_fd = os.memfd_create("zabby-log-batches", getattr(os, "MFD_CLOEXEC", 1))
        try:
            os.ftruncate(mem_fd, size)
            self._mem = mmap.mmap(mem_fd, size)
            super().__init__(loop, mem_fd=mem_fd)
        except BaseException:
            if hasattr(self, "_mem"):
                self._mem.close()
            raise
        finally:
            os.close(mem_fd)
        self._seq = 0
        self._cbs: dict[int, object] = {}

    def write_sync(self, fd: int, offset: int, data, callback, key=None) -> None:
        """Write `data` at `offset` of `fd`, then fdatasync; callback(errno or
        None). `len(data)` must be at most `max_batch`, and fewer than `slots`
        requests may be outstanding."""
        n = len(data)
        if n > self.max_batch or len(self._cbs) >= self.slots:
            raise ValueError("LogWriter: batch too large or no free slot")
        at = (self._seq % self.slots) * self.max_batch
        self._mem[at:at + n] = data
        self._request(b"S" if self.seal else b"W", fd, (at, n, offset), callback, key)

    def sync(self, fd: int, data_only: bool, callback, key=None) -> None:
        if len(self._cbs) >= self.slots:
            raise ValueError("LogWriter: no free slot")
        self._request(b"D" if data_only else b"F", fd, (0, 0, 0), callback, key)

    def _request(self, kind: bytes, fd: int, what, callback, key) -> None:
        if not self.alive:
            callback(None)
            return
        seq = self._seq
        req = _WRITE.pack(seq, *what)
        try:
            if key is not None and key == self._key:
                self._sock.send(kind.lower() + req)
            else:
                socket.send_fds(self._sock, [kind + req], [fd])
                self._key = key
        except OSError:
            self._gone()
            callback(None)
            return
        self._seq = seq + 1
        self._cbs[seq] = callback

    def _readable(self) -> None:
        while True:
            try:
                msg = self._sock.recv(_WREPLY.size)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if len(msg) != _WREPLY.size:
                self._gone()
                return
            err, seq = _WREPLY.unpack(msg)
            cb = self._cbs.pop(seq, None)
            if cb is not None:
                cb(err)

    def _gone(self) -> None:
        if not self.alive:
            return
        self.alive = False
        try:
            self._loop.remove_reader(self._sock.fileno())
        except Exception:  # pragma: no cover - loop already closed
            pass
        cbs, self._cbs = self._cbs, {}
        for seq in sorted(cbs):
            cbs[seq](None)

    def close(self) -> None:
        super().close()
        self._mem.close()


def _writer_main(sock: socket.socket, mem_fd: int) -> None:
    """The LogWriter child: this thread writes, in the order requested; two
    threads fdatasync (fsync when asked), each taking every request waiting,
    one sync for them all, one answer per request."""
    import queue
    import threading

    size = os.fstat(mem_fd).st_size
    mem = memoryview(mmap.mmap(mem_fd, size))
    stall_file = os.environ.get("ZABBY_TEST_FSYNC_STALL_FILE") or None  # tests: a slow disk
    work: queue.SimpleQueue = queue.SimpleQueue()
    idle = threading.Condition()
    outstanding = [0]
    # after a failed write or sync nothing more is written through that descriptor
    # (a later batch written after a missing one would leave a hole that recovery
    # must call corruption, not a torn tail); the parent refuses writes from then
    # on anyway, and a new descriptor (the log repaired or reopened) clears it
    broken = [0]

    def syncer() -> None:
        while True:
            group = [work.get()]
            while True:
                try:
                    group.append(work.get_nowait())
                except queue.Empty:
                    break
            done: dict[int, int] = {}  # fd -> errno of its sync
            for _seq, fd, err, full in group:
                if err or fd in done:
                    continue
                try:
                    if fd is None:
                        done[fd] = errno.EBADF
                        continue
                    if stall_file is not None:
                        _stall(stall_file)
                    if full or any(g[1] == fd and g[3] for g in group):
                        os.fsync(fd)
                    else:
                        os.fdatasync(fd)
                    done[fd] = 0
                except OSError as e:
                    done[fd] = e.errno or errno.EIO
                    broken[0] = broken[0] or done[fd]
            try:
                for seq, fd, err, _full in group:
                    sock.send(_WREPLY.pack(err or done[fd], seq))
            except OSError:
                pass
            with idle:
                outstanding[0] -= len(group)
                idle.notify_all()

    for _ in range(2):
        threading.Thread(target=syncer, daemon=True).start()
    held = None
    while True:
        try:
            msg, fds = _recv(sock, 0)
        except OSError:
            return
        if len(msg) != 1 + _WRITE.size:
            return  # EOF (the server is gone) or garbage
        if fds:
            with idle:  # nobody may still sync the descriptor we are about to close
                idle.wait_for(lambda: outstanding[0] == 0)
            held = _take_fd(held, fds)
            broken[0] = 0
        kind = msg[:1]
        seq, at, n, offset = _WRITE.unpack_from(msg, 1)
        err = 0
        if n:
            view = mem[at:at + n]
            try:
                if broken[0]:
                    raise OSError(broken[0], "an earlier write or sync failed")
                if held is None:
                    raise OSError(errno.EBADF, "no descriptor")
                if kind in (b"S", b"s"):
                    _seal(view)
                while view:
                    k = os.pwrite(held, view, offset)
                    view = view[k:]
                    offset += k
            except OSError as e:
                err = e.errno or errno.EIO
                broken[0] = err
            except (struct.error, ValueError):  # not a framed batch: nothing written
                err = errno.EINVAL
        with idle:
            outstanding[0] += 1
        work.put((seq, held, err, kind in (b"F", b"f")))


_ENT_HDR = struct.Struct("<IqII")
_ENT_PRE = struct.Struct("<IqI")


def _seal(view) -> None:
    """zabby.storage.txnlog.seal_entries (this program imports only the
    standard library; tests/durability/test_log_writer.py compares the two)."""
    unpack, pre_pack, crc = _ENT_HDR.unpack_from, _ENT_PRE.pack, zlib.crc32
    pos, end = 0, len(view)
    while pos < end:
        n, zxid, _, _ = unpack(view, pos)
        p = pos + 20
        pre = pre_pack(n, zxid, crc(view[p:p + n]))
        view[pos:p] = pre + crc(pre).to_bytes(4, "little")
        pos = p + n


_ANC = socket.CMSG_LEN(4 * 4)


def _recv(sock: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    # socket.recv_fds, but with `flags` (3.11's recv_fds drops them)
    msg, anc, _, _ = sock.recvmsg(64, _ANC, flags)
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) - len(data) % 4])
    return msg, fds


def _take_fd(held, fds):
    if held is not None:
        os.close(held)
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


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
    if len(sys.argv) > 2:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _writer_main(socket.socket(fileno=int(sys.argv[1])), int(sys.argv[2]))
    else:
        _child_main(int(sys.argv[1]))
