"""The file layer under the txn log and snapshots, injectable for tests.

`RealFS` is the operating system. `SimulatedFS` is an in-memory filesystem
that remembers, per file, what is durable (fsynced) and what is only written,
and per directory which entries are durable (a create, rename or unlink needs
an fsync of the directory). `crash()` throws away everything not durable and
can keep a prefix of the last unsynced write (a torn write); `inject()` makes
an operation fail with an errno (ENOSPC, EIO, ...).

Both are plain synchronous code (no threads, no asyncio), so a forked child
can write a snapshot through them.

The interface (handles are opaque):

    open(path, *, create=False, exclusive=False) -> handle   read-write, never truncates
    write(h, data, offset=None)    whole buffer; offset None = at the handle's position
    read(h, offset, n) -> bytes
    size(h) -> int
    allocate(h, offset, length)    zero-filled, space reserved where supported
    truncate(h, size)
    fsync(h, data_only=False)
    close(h)
    read_file(path) -> bytes;  file_size(path);  exists(path);  listdir(dir)
    makedirs(dir);  rename(src, dst);  unlink(path);  fsync_dir(dir)
"""

from __future__ import annotations

import errno as _errno
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["FS", "FSYNC_STALL_ENV", "RealFS", "SimulatedFS", "default_fs", "fsync_stall"]

# Tests only -- a slow disk (zabby.testing.diskfaults.FsyncStall). When the server's
# environment names a file here, every fsync of RealFS (and of the fsync helper
# processes, server/fsync_helper.py, which read the same variable) first sleeps for
# the seconds written in that file (nothing, 0 or a missing file: no stall). Unset,
# the only cost is one comparison per fsync.
FSYNC_STALL_ENV = "ZABBY_TEST_FSYNC_STALL_FILE"
_STALL_FILE = os.environ.get(FSYNC_STALL_ENV) or None


def fsync_stall(path: str | None = None) -> float:
    """Sleep as the stall file says (see FSYNC_STALL_ENV); the seconds slept."""
    path = path or _STALL_FILE
    if path is None:
        return 0.0
    try:
        with open(path) as f:
            s = float(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0
    if s > 0:
        time.sleep(s)
    return max(s, 0.0)


class FS:
    """The interface (see the module docstring); handles are opaque (`Any`). Declared
    here so that code typed against `FS` -- the txn log, compiled -- calls it
    without casts."""

    def open(self, path: str, *, create: bool = False, exclusive: bool = False) -> Any:
        raise NotImplementedError

    def write(self, h: Any, data: Any, offset: int | None = None) -> None:
        raise NotImplementedError

    def read(self, h: Any, offset: int, n: int) -> bytes:
        raise NotImplementedError

    def size(self, h: Any) -> int:
        raise NotImplementedError

    def allocate(self, h: Any, offset: int, length: int) -> None:
        raise NotImplementedError

    def truncate(self, h: Any, size: int) -> None:
        raise NotImplementedError

    def fsync(self, h: Any, data_only: bool = False) -> None:
        raise NotImplementedError

    def close(self, h: Any) -> None:
        raise NotImplementedError

    def read_file(self, path: str) -> bytes:
        raise NotImplementedError

    def file_size(self, path: str) -> int:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def unlink(self, path: str) -> None:
        raise NotImplementedError

    def fsync_dir(self, path: str) -> None:
        raise NotImplementedError


class RealFS(FS):
    """The operating system's files (os.open/os.pwrite/os.fsync)."""

    def open(self, path: str, *, create: bool = False, exclusive: bool = False) -> int:
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
            if exclusive:
                flags |= os.O_EXCL
        return os.open(path, flags, 0o644)

    def write(self, h: int, data, offset: int | None = None) -> None:
        view = memoryview(data)
        if offset is None:
            while view:
                n = os.write(h, view)
                view = view[n:]
        else:
            while view:
                n = os.pwrite(h, view, offset)
                view = view[n:]
                offset += n

    def read(self, h: int, offset: int, n: int) -> bytes:
        return os.pread(h, n, offset)

    def size(self, h: int) -> int:
        return os.fstat(h).st_size

    def allocate(self, h: int, offset: int, length: int) -> None:
        try:
            os.posix_fallocate(h, offset, length)
        except OSError as e:
            if e.errno not in (_errno.EOPNOTSUPP, _errno.EINVAL, getattr(_errno, "ENOTSUP", -1)):
                raise
            end = offset + length
            if os.fstat(h).st_size < end:
                os.ftruncate(h, end)

    def truncate(self, h: int, size: int) -> None:
        os.ftruncate(h, size)

    def fsync(self, h: int, data_only: bool = False) -> None:
        if _STALL_FILE is not None:
            fsync_stall()
        if data_only and hasattr(os, "fdatasync"):
            os.fdatasync(h)
        else:
            os.fsync(h)

    def close(self, h: int) -> None:
        os.close(h)

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def file_size(self, path: str) -> int:
        return os.stat(path).st_size

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        """Create missing directories and fsync each new one's parent (so the
        directory itself survives a crash)."""
        path = os.path.abspath(path)
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        os.makedirs(path, exist_ok=True)
        for d in reversed(missing):
            self.fsync_dir(os.path.dirname(d))

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_REAL = RealFS()


def default_fs(fs: FS | None) -> FS:
    return _REAL if fs is None else fs


# ------------------------------------------------------------------ simulated
class _Inode:
    __slots__ = ("data", "durable", "ino")

    def __init__(self, ino: int) -> None:
        self.ino = ino
        self.data = bytearray()  # what reads see
        self.durable = b""  # what survives a crash


class _Handle:
    __slots__ = ("inode", "path", "pos", "closed", "generation")

    def __init__(self, inode: _Inode, path: str, generation: int) -> None:
        self.inode = inode
        self.path = path
        self.pos = 0
        self.closed = False
        self.generation = generation


@dataclass
class _Fault:
    op: str
    err: int
    path: str | None
    count: int
    partial: int


def _oserror(err: int, path: str | None = None) -> OSError:
    return OSError(err, os.strerror(err), path)


class SimulatedFS(FS):
    """An in-memory filesystem with durability tracking, crashes and faults.

    Directories themselves are created durably (makedirs); their *entries*
    become durable only with `fsync_dir`. A file's content becomes durable with
    `fsync` (size changes from allocate/truncate included).

    `calls` counts every operation by name (e.g. ``calls["fsync"]``).
    """

    def __init__(self) -> None:
        self._dirs: set[str] = {"/"}
        self._entries: dict[str, dict[str, _Inode]] = {"/": {}}
        self._durable_entries: dict[str, dict[str, _Inode]] = {"/": {}}
        self._next_ino = 1
        self._generation = 0
        self._last_write: tuple[_Inode, int, bytes] | None = None
        self._faults: list[_Fault] = []
        self.calls: Counter[str] = Counter()

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _norm(path: str) -> str:
        p = os.path.normpath(os.path.join("/", path))
        return p

    def _split(self, path: str) -> tuple[str, str]:
        p = self._norm(path)
        d, name = os.path.split(p)
        if d not in self._dirs:
            raise _oserror(_errno.ENOENT, path)
        return d, name

    def _lookup(self, path: str) -> _Inode:
        d, name = self._split(path)
        ino = self._entries[d].get(name)
        if ino is None:
            raise _oserror(_errno.ENOENT, path)
        return ino

    def _fault(self, op: str, path: str | None) -> _Fault | None:
        for f in self._faults:
            if f.op == op and f.count > 0 and (f.path is None or (path is not None and f.path in path)):
                f.count -= 1
                return f
        return None

    def _check(self, op: str, path: str | None) -> None:
        self.calls[op] += 1
        f = self._fault(op, path)
        if f is not None:
            raise _oserror(f.err, path)

    def _live(self, h: _Handle) -> _Handle:
        if h.closed or h.generation != self._generation:
            raise _oserror(_errno.EBADF, h.path)
        return h

    # ------------------------------------------------------- fault control
    def inject(self, op: str, err: int = _errno.EIO, *, path: str | None = None,
               count: int = 1, partial: int = 0) -> None:
        """Make the next `count` calls of `op` ("write", "fsync", "allocate",
        "truncate", "rename", "unlink", "fsync_dir", "open") on a path
        containing `path` fail with OSError(err). A failing write first writes
        its first `partial` bytes (a short write that then fails)."""
        self._faults.append(_Fault(op, err, path, count, partial))

    def clear_faults(self) -> None:
        self._faults.clear()

    def crash(self, tear_at: int | None = None, *, keep_dir_entries: bool = False) -> None:
        """Power loss: keep only what is durable. With `tear_at`, the first
        `tear_at` bytes of the last unsynced write (if any, and if its file
        survives) reach the disk too. `keep_dir_entries` models a filesystem
        whose journal happened to commit every directory change (files
        created but never fsynced survive, with their durable -- possibly
        empty -- content). Open handles become invalid."""
        last = self._last_write
        self._generation += 1
        if keep_dir_entries:
            self._durable_entries = {d: dict(e) for d, e in self._entries.items()}
        self._entries = {d: dict(e) for d, e in self._durable_entries.items()}
        alive = {id(i) for e in self._entries.values() for i in e.values()}
        for e in self._entries.values():
            for ino in e.values():
                ino.data = bytearray(ino.durable)
        if tear_at is not None and last is not None:
            ino, off, data = last
            if id(ino) in alive:
                part = data[:tear_at]
                buf = ino.data
                if len(buf) < off:
                    buf.extend(bytes(off - len(buf)))
                buf[off : off + len(part)] = part
                ino.durable = bytes(buf)
        self._last_write = None
        self._faults.clear()

    # --------------------------------------------------------- inspection
    def content(self, path: str) -> bytes:
        return bytes(self._lookup(path).data)

    def durable_content(self, path: str) -> bytes | None:
        d, name = self._split(path)
        ino = self._durable_entries[d].get(name)
        return None if ino is None else ino.durable

    def last_write(self) -> tuple[str, int, int] | None:
        """(file path, offset, length) of the last unsynced write, if any."""
        if self._last_write is None:
            return None
        ino, off, data = self._last_write
        for d, e in self._entries.items():
            for name, i in e.items():
                if i is ino:
                    return os.path.join(d, name), off, len(data)
        return None

    # ------------------------------------------------------------ file ops
    def open(self, path: str, *, create: bool = False, exclusive: bool = False) -> _Handle:
        self._check("open", path)
        d, name = self._split(path)
        entries = self._entries[d]
        ino = entries.get(name)
        if ino is None:
            if not create:
                raise _oserror(_errno.ENOENT, path)
            ino = _Inode(self._next_ino)
            self._next_ino += 1
            entries[name] = ino
        elif create and exclusive:
            raise _oserror(_errno.EEXIST, path)
        return _Handle(ino, self._norm(path), self._generation)

    def write(self, h: _Handle, data, offset: int | None = None) -> None:
        self._live(h)
        self.calls["write"] += 1
        data = bytes(data)
        off = h.pos if offset is None else offset
        f = self._fault("write", h.path)
        if f is not None:
            data = data[: f.partial]
        buf = h.inode.data
        if len(buf) < off:
            buf.extend(bytes(off - len(buf)))
        buf[off : off + len(data)] = data
        if data:
            self._last_write = (h.inode, off, data)
        if offset is None:
            h.pos = off + len(data)
        if f is not None:
            raise _oserror(f.err, h.path)

    def read(self, h: _Handle, offset: int, n: int) -> bytes:
        self._live(h)
        return bytes(h.inode.data[offset : offset + n])

    def size(self, h: _Handle) -> int:
        self._live(h)
        return len(h.inode.data)

    def allocate(self, h: _Handle, offset: int, length: int) -> None:
        self._live(h)
        self._check("allocate", h.path)
        buf = h.inode.data
        end = offset + length
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))

    def truncate(self, h: _Handle, size: int) -> None:
        self._live(h)
        self._check("truncate", h.path)
        buf = h.inode.data
        if len(buf) > size:
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))
        lw = self._last_write
        if lw is not None and lw[0] is h.inode and lw[1] + len(lw[2]) > size:
            self._last_write = None

    def fsync(self, h: _Handle, data_only: bool = False) -> None:
        self._live(h)
        self._check("fsync", h.path)
        h.inode.durable = bytes(h.inode.data)
        if self._last_write is not None and self._last_write[0] is h.inode:
            self._last_write = None

    def close(self, h: _Handle) -> None:
        h.closed = True

    # ------------------------------------------------------ path-level ops
    def read_file(self, path: str) -> bytes:
        self.calls["read_file"] += 1
        return bytes(self._lookup(path).data)

    def file_size(self, path: str) -> int:
        return len(self._lookup(path).data)

    def exists(self, path: str) -> bool:
        p = self._norm(path)
        if p in self._dirs:
            return True
        d, name = os.path.split(p)
        return d in self._dirs and name in self._entries[d]

    def listdir(self, path: str) -> list[str]:
        p = self._norm(path)
        if p not in self._dirs:
            raise _oserror(_errno.ENOENT, path)
        subdirs = [os.path.basename(x) for x in self._dirs if x != p and os.path.dirname(x) == p]
        return sorted(list(self._entries[p]) + subdirs)

    def makedirs(self, path: str) -> None:
        p = self._norm(path)
        parts = []
        while p not in self._dirs:
            parts.append(p)
            p = os.path.dirname(p)
        for q in reversed(parts):
            self._dirs.add(q)
            self._entries[q] = {}
            self._durable_entries[q] = {}

    def rename(self, src: str, dst: str) -> None:
        self._check("rename", src)
        sd, sn = self._split(src)
        dd, dn = self._split(dst)
        ino = self._entries[sd].get(sn)
        if ino is None:
            raise _oserror(_errno.ENOENT, src)
        del self._entries[sd][sn]
        self._entries[dd][dn] = ino

    def unlink(self, path: str) -> None:
        self._check("unlink", path)
        d, name = self._split(path)
        if self._entries[d].pop(name, None) is None:
            raise _oserror(_errno.ENOENT, path)

    def fsync_dir(self, path: str) -> None:
        self._check("fsync_dir", path)
        p = self._norm(path)
        if p not in self._dirs:
            raise _oserror(_errno.ENOENT, path)
        self._durable_entries[p] = dict(self._entries[p])
