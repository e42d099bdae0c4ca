"""The transaction log: preallocated segment files of checksummed entries.

Layout: ``<dataLogDir>/version-2/log.<hex zxid>``, the name giving the zxid of
the segment's first entry (ZooKeeper's naming; zabby's own format inside).

Segment header (32 bytes, little-endian)::

    magic "ZABBYLOG" | version u32 (1) | flags u32 (0) | first_zxid i64 | crc32 u32 | 4 zero bytes

crc32 covers the 24 bytes before it. Then entries, each::

    length u32 | zxid i64 | payload_crc u32 | header_crc u32 | payload (length bytes)

`header_crc` is crc32 of the 16 bytes before it (so a damaged length field is
recognised as such), `payload_crc` crc32 of the payload; length >= 1. The file
is extended in blocks of `prealloc_bytes` (zero-filled, fallocate); the end of
the data is the first entry whose length is 0 with nothing but zeros after it.

A damaged entry followed only by zeros (or the end of the file) in the newest
segment is a torn write from a crash mid-append: recovery truncates it with a
warning. Anything else -- a damaged entry with data after it, a zxid that does
not increase, a torn older segment -- is `CorruptDataError`.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any, Final

from .errors import CorruptDataError, StorageError
from .fs import default_fs

# the reader of the format (compiled): its checks, and the constants both sides use
from .logscan import (
    _ENT_HDR,
    _SEG_HDR,
    ENTRY_HEADER,
    MAGIC,
    SEGMENT_HEADER,
    VERSION,
    SegmentScan,
    scan_segment,
)

__all__ = [
    "ENTRY_HEADER",
    "SEGMENT_HEADER",
    "SegmentScan",
    "TxnLog",
    "encode_entries",
    "frame_entries",
    "list_segments",
    "scan_segment",
    "seal_entries",
]

log = logging.getLogger("zabby.storage")

_SEG_HDR_CRC = struct.Struct("<8sIIq")
_ENT_PRE: Final = struct.Struct("<IqI")  # the part header_crc covers
PREFIX: Final = "log."
MAX_ENTRY = 1 << 30

_crc: Final = zlib.crc32


def segment_name(zxid: int) -> str:
    return f"{PREFIX}{zxid:x}"


def parse_name(name: str, prefix: str) -> int | None:
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    if not rest or len(rest) > 16:
        return None
    try:
        return int(rest, 16)
    except ValueError:
        return None


def list_segments(log_dir_v2: str, fs) -> list[tuple[int, str]]:
    """(first zxid, path) of every segment, oldest first."""
    if not fs.exists(log_dir_v2):
        return []
    out = []
    for name in fs.listdir(log_dir_v2):
        z = parse_name(name, PREFIX)
        if z is not None:
            out.append((z, os.path.join(log_dir_v2, name)))
    out.sort()
    return out


def encode_header(first_zxid: int) -> bytes:
    pre = _SEG_HDR_CRC.pack(MAGIC, VERSION, 0, first_zxid)
    return _SEG_HDR.pack(MAGIC, VERSION, 0, first_zxid, _crc(pre))


def encode_entries(entries, out: bytearray) -> None:
    pre_pack = _ENT_PRE.pack
    crc = _crc
    for zxid, payload in entries:
        n = len(payload)
        if n == 0:
            raise ValueError(f"empty txn payload for zxid {zxid:#x}")
        pre = pre_pack(n, zxid, crc(payload))
        out += pre
        out += crc(pre).to_bytes(4, "little")
        out += payload


def frame_entries(entries, out: bytearray) -> None:
    """`encode_entries` with both checksums left zero: for a writer that fills
    them in (`seal_entries`) off the event loop (crc32 is most of the cost of
    encoding a batch). Never write a framed batch without sealing it."""
    pack = _ENT_HDR.pack
    for zxid, payload in entries:
        if not payload:
            raise ValueError(f"empty txn payload for zxid {zxid:#x}")
        out += pack(len(payload), zxid, 0, 0)
        out += payload


def seal_entries(buf, start: int = 0, end: int | None = None) -> None:
    """Fill in the checksums of the entries `frame_entries` wrote to
    buf[start:end] (a writable buffer), making them what `encode_entries`
    makes. (fsync_helper's writer process has a standard-library twin.)"""
    view = memoryview(buf)
    end = len(view) if end is None else end
    unpack, pre_pack, crc = _ENT_HDR.unpack_from, _ENT_PRE.pack, _crc
    pos = start
    while pos < end:
        n, zxid, _, _ = unpack(view, pos)
        p = pos + ENTRY_HEADER
        pre = pre_pack(n, zxid, crc(view[p:p + n]))
        view[pos:p] = pre + crc(pre).to_bytes(4, "little")
        pos = p + n


class TxnLog:
    """Append-only segmented txn log with group commit (one fsync per batch).

    `write_batch` is called from one worker thread at a time; `iter_entries`
    may run concurrently on another thread (it reads only what is durable).
    """

    def __init__(self, log_dir: str, *, fs=None, prealloc_bytes: int = 64 << 20,
                 force_sync: bool = True) -> None:
        if prealloc_bytes < 4096:
            raise ValueError("prealloc_bytes must be at least 4096")
        self.fs = default_fs(fs)
        self.log_dir = log_dir
        self.dir = os.path.join(log_dir, "version-2")
        self.prealloc_bytes = prealloc_bytes
        self.force_sync = force_sync
        self.fs.makedirs(self.dir)
        self.last_zxid = 0
        self._opened = False
        self._lock = threading.Lock()
        self._h: Any = None  # handle of the current segment
        self.handle_generation = 0  # changes whenever _h is (re)opened
        self._path: str | None = None
        self._first_zxid = 0
        self._pos = 0  # end of valid data in the current segment
        self._alloc = 0  # current segment's size
        self._new_file = False  # directory entry not yet fsynced
        self._dirty: int | None = None  # a failed write left garbage from here
        self._roll = False
        # append_unsynced / stage_unsynced reserve up to here, zxids up to _wlast, ahead
        # of _pos/last_zxid (the durable end)
        self._wpos = 0
        self._wlast = 0

    # ---------------------------------------------------------------- open
    def segments(self) -> list[tuple[int, str]]:
        return list_segments(self.dir, self.fs)

    def _scan_file(self, path: str, name_zxid: int, prev: int | None = None,
                   limit: int | None = None) -> SegmentScan:
        if limit is None:
            buf = self.fs.read_file(path)
        else:
            h = self.fs.open(path)
            try:
                buf = self.fs.read(h, 0, limit)
            finally:
                self.fs.close(h)
        return scan_segment(buf, path, name_zxid, prev)

    def open_for_append(self, last_zxid: int, newest: SegmentScan | None = None) -> None:
        """Continue the newest segment after its last valid entry (truncating
        a torn tail, with a warning), or start a new one with the next write
        when the newest segment does not end at `last_zxid`. `newest`: what a
        scan of the newest segment found just before (recovery's, which read
        every segment), so that it is not read again; another file's is ignored."""
        self._close_handle()
        segs = self.segments()
        self._roll = True
        if segs:
            name_zxid, path = segs[-1]
            if newest is not None and newest.path == path and newest.first_zxid == name_zxid:
                scan = newest
            else:
                scan = self._scan_file(path, name_zxid)
            if scan.torn_at is not None:
                log.warning("txn log %s: torn tail at offset %d (%s): truncating",
                            path, scan.torn_at, scan.torn_reason)
            last = scan.last_zxid
            if last is not None and last > last_zxid:
                raise ValueError(f"txn log has entries up to {last:#x} beyond {last_zxid:#x}: "
                                 f"call truncate_after first")
            try:
                if last is None:
                    self.fs.unlink(path)
                    self.fs.fsync_dir(self.dir)
                elif last == last_zxid:
                    self._attach(path, name_zxid, scan.end, scan.torn_at is not None)
                    self._roll = False
                    # What it holds is this server's history from now on: make it
                    # durable, its directory entry included. A process that died
                    # after creating the segment but before the fsync of the
                    # directory left an entry only the page cache knows: a power
                    # loss later would take the segment away with every txn appended
                    # to it since, acknowledged or not (found by the whole-server
                    # simulation, seed 120).
                    if self.force_sync:
                        self.fs.fsync(self._h)
                        self.fs.fsync_dir(self.dir)
                elif scan.torn_at is not None:
                    h = self.fs.open(path)
                    try:
                        self.fs.truncate(h, scan.end)
                        self.fs.fsync(h)
                    finally:
                        self.fs.close(h)
            except OSError as e:
                raise StorageError(f"cannot open txn log {path}: {e}") from e
        self.last_zxid = last_zxid
        self._opened = True
        self._reset_written()

    def _attach(self, path: str, first_zxid: int, end: int, torn: bool) -> None:
        h = self.fs.open(path)
        self._h = h
        self.handle_generation += 1
        if torn:
            # cut the torn entry off: the zeros of the preallocation may stay,
            # garbage may not (the next entries could end before it)
            self.fs.truncate(h, end)
            self.fs.fsync(h)
        self._path = path
        self._first_zxid = first_zxid
        self._alloc = self.fs.size(h)
        self._new_file = False
        with self._lock:
            self._pos = end
        self._reset_written()

    # --------------------------------------------------------------- write
    def write_batch(self, entries: list[tuple[int, bytes]]) -> None:
        """Append (zxid, txn bytes) entries, then one fsync (unless
        force_sync is off). On failure raises StorageError; `last_zxid` does
        not move and the next write first removes what the failed one left."""
        if not entries:
            return
        if not self._opened:
            segs = self.segments()
            last = 0
            if segs:
                z, p = segs[-1]
                last = self._scan_file(p, z).last_zxid or 0
            self.open_for_append(last)
        if self.unsynced:
            raise ValueError("write_batch with batches of append_unsynced not yet synced")
        self._check_order(entries, self.last_zxid)
        fs = self.fs
        try:
            if self._dirty is not None:
                self._repair()
            if self._h is None or self._roll:
                self._close_handle()
                self._start_segment(entries[0][0])
            start = self._pos
            buf = bytearray()
            if start == 0:
                buf += encode_header(self._first_zxid)
            encode_entries(entries, buf)
            end = start + len(buf)
        except OSError as e:
            raise StorageError(f"txn log {self._path}: cannot prepare the write: {e}") from e
        try:
            grew = False
            if end > self._alloc:
                pre = self.prealloc_bytes
                target = -(-end // pre) * pre
                self._dirty = start
                fs.allocate(self._h, self._alloc, target - self._alloc)
                self._alloc = target
                grew = True
            self._dirty = start
            fs.write(self._h, buf, start)
            if self.force_sync:
                fs.fsync(self._h, data_only=not grew)
                if self._new_file:
                    fs.fsync_dir(self.dir)
            self._new_file = False
        except OSError as e:
            raise StorageError(self._write_failed(entries, start, e)) from e
        self._synced(end, entries[-1][0])

    def append_unsynced(self, entries: list[tuple[int, bytes]]):
        """The fast half of `write_batch`, for a caller that fsyncs elsewhere
        (in a process of its own, so the fsync never waits for our GIL).

        Writes `entries` into the current segment's preallocated room, after
        any batches written this way and not yet synced, and returns
        ``(handle, token)``; the caller fdatasyncs the handle (any later
        fdatasync covers this batch too) and then calls
        `appended_synced(token)` for the batches in the order written; until
        then `last_zxid` does not move. Returns None, having written nothing,
        when the batch needs `write_batch` instead: a new segment, more room,
        a failed earlier write, no fsync. Raises StorageError if the write
        fails (as `write_batch`); so does the caller whose fsync failed, by
        `unsynced_failed()`.
        """
        staged = self.stage_unsynced(entries)
        if staged is None:
            return None
        h, offset, buf, token = staged
        try:
            self.fs.write(h, buf, offset)
        except OSError as e:
            self.unsynced_failed()
            raise StorageError(self._write_failed(entries, offset, e)) from e
        return h, token

    def stage_unsynced(self, entries: list[tuple[int, bytes]], limit: int | None = None,
                       *, sealed: bool = True):
        """`append_unsynced` without the write: encode `entries` and reserve
        their place after every batch staged before, for a caller that has the
        bytes written *and* fdatasynced elsewhere (a writer process, off the
        event loop). Returns ``(handle, offset, data, token)``: the caller
        writes `data` at `offset` of `handle` -- the batches in the order
        staged, so that the file never has a hole -- then fdatasyncs, then
        calls `appended_synced(token)` for the batches in order, or
        `unsynced_failed()` if a write or fsync failed. Until then the batch
        is not in the file as far as `last_zxid` and `iter_entries` are
        concerned: they see only what is durable. Returns None, having
        reserved nothing, when the batch needs `write_batch` instead (see
        `append_unsynced`) or its bytes would be more than `limit`. With
        `sealed` off the entries' checksums are left zero (`frame_entries`):
        the writer must `seal_entries` the data before writing it.
        """
        if (not entries or self._h is None or self._roll or self._dirty is not None
                or self._new_file or not self.force_sync or self._pos == 0):
            return None
        self._check_order(entries, self._wlast)
        buf = bytearray()
        (encode_entries if sealed else frame_entries)(entries, buf)
        start = self._wpos
        end = start + len(buf)
        if end > self._alloc or (limit is not None and end - start > limit):
            return None
        self._wpos = end
        self._wlast = entries[-1][0]
        return self._h, start, buf, (end, entries[-1][0])

    def appended_synced(self, token) -> None:
        """The batch `token` (and every batch written before it) is durable."""
        end, last = token
        with self._lock:
            self._pos = end
            self.last_zxid = last

    @property
    def unsynced(self) -> bool:
        """Batches of `append_unsynced` still wait for `appended_synced`."""
        return self._wpos != self._pos

    def unsynced_failed(self) -> None:
        """A write or fsync of the unsynced batches failed: none of them counts;
        the next `write_batch` first cuts the segment back to the durable end."""
        self._dirty = self._pos
        self._wpos = self._pos
        self._wlast = self.last_zxid

    @property
    def current_path(self) -> str | None:
        return self._path

    def _check_order(self, entries, prev: int) -> None:
        for zxid, payload in entries:
            if zxid <= prev:
                raise ValueError(f"zxid {zxid:#x} does not follow {prev:#x}")
            if not payload:
                raise ValueError(f"empty txn payload for zxid {zxid:#x}")
            prev = zxid

    def _write_failed(self, entries, start: int, e: OSError) -> str:
        return (f"txn log {self._path}: write of zxids {entries[0][0]:#x}..{entries[-1][0]:#x} "
                f"at offset {start} failed: {e}")

    def _reset_written(self) -> None:
        self._wpos = self._pos
        self._wlast = self.last_zxid

    def _synced(self, end: int, last_zxid: int) -> None:
        self._dirty = None
        with self._lock:
            self._pos = end
            self.last_zxid = last_zxid
        self._wpos = end
        self._wlast = last_zxid

    def _start_segment(self, first_zxid: int) -> None:
        path = os.path.join(self.dir, segment_name(first_zxid))
        fs = self.fs
        h = fs.open(path, create=True)
        self._h = h
        self.handle_generation += 1
        self._path = path
        self._first_zxid = first_zxid
        self._new_file = True
        self._roll = False
        self._dirty = 0
        fs.truncate(h, 0)
        self._alloc = 0
        with self._lock:
            self._pos = 0
        self._reset_written()

    def _repair(self) -> None:
        """Undo what a failed write left behind (raises OSError if it cannot)."""
        fs = self.fs
        d = self._dirty
        if d is None:  # nothing to undo
            return
        if d == 0:
            # a segment whose very first write failed: remove it
            if self._h is not None:
                fs.close(self._h)
                self._h = None
            if self._path is not None and fs.exists(self._path):
                fs.unlink(self._path)
            fs.fsync_dir(self.dir)
            self._path = None
            self._roll = True
        elif self._h is not None:
            fs.truncate(self._h, d)
            self._alloc = d
            if self.force_sync:
                fs.fsync(self._h)
        self._dirty = None

    def roll(self) -> None:
        """The next write starts a new segment (called after a snapshot)."""
        self._roll = True

    def _close_handle(self) -> None:
        if self._dirty is not None:
            try:
                self._repair()
            except OSError as e:
                log.warning("txn log %s: could not clean up after a failed write: %s", self._path, e)
        if self._h is not None:
            try:
                self.fs.close(self._h)
            except OSError:
                pass
        self._h = None

    def close(self) -> None:
        self._close_handle()
        self._path = None
        self._opened = False

    # ---------------------------------------------------------------- read
    def iter_entries(self, after_zxid: int = -1) -> Iterator[tuple[int, bytes]]:
        """(zxid, txn bytes) of every entry with zxid > after_zxid, in order.

        A torn tail of the newest segment ends the iteration; corruption
        anywhere else raises CorruptDataError. While the log is open for
        append only what write_batch has completed is read."""
        with self._lock:
            cur_path, cur_pos = self._path, self._pos
        segs = self.segments()
        start = 0
        for i, (z, _p) in enumerate(segs):
            if z <= after_zxid:
                start = i
        prev: int | None = None
        for i in range(start, len(segs)):
            z, path = segs[i]
            limit: int | None = cur_pos if (path == cur_path and self._h is not None) else None
            scan = self._scan_file(path, z, prev, limit)
            if scan.torn_at is not None and i != len(segs) - 1 and limit is None:
                raise CorruptDataError(
                    f"{path}: offset {scan.torn_at}: {scan.torn_reason} in a segment that is not "
                    f"the newest", path=path, offset=scan.torn_at)
            buf: Any = None
            for zxid, s, e in scan.entries:
                if zxid > after_zxid:
                    if buf is None:
                        buf = self._read_for(path, limit)
                    yield zxid, bytes(buf[s:e])
            if scan.entries:
                prev = scan.entries[-1][0]

    def _read_for(self, path: str, limit: int | None):
        if limit is None:
            return self.fs.read_file(path)
        h = self.fs.open(path)
        try:
            return self.fs.read(h, 0, limit)
        finally:
            self.fs.close(h)

    # ------------------------------------------------------------ truncate
    def truncate_after(self, zxid: int) -> None:
        """Remove every entry with a zxid above `zxid` (durably)."""
        fs = self.fs
        had = self._h is not None or self._opened
        self._close_handle()
        segs = self.segments()
        removed = False
        last = None
        try:
            for z, path in reversed(segs):
                if z > zxid:
                    fs.unlink(path)
                    removed = True
                    continue
                scan = self._scan_file(path, z)
                cut = scan.end
                for ez, s, _e in scan.entries:
                    if ez > zxid:
                        cut = s - ENTRY_HEADER
                        break
                    last = ez
                if cut != scan.end or scan.torn_at is not None:
                    h = fs.open(path)
                    try:
                        fs.truncate(h, cut)
                        fs.fsync(h)
                    finally:
                        fs.close(h)
                break
            if removed:
                fs.fsync_dir(self.dir)
        except OSError as e:
            raise StorageError(f"txn log: truncate after {zxid:#x} failed: {e}") from e
        new_last = last if last is not None else min(self.last_zxid, zxid)
        self.last_zxid = new_last
        with self._lock:
            self._path = None
            self._pos = 0
        self._reset_written()
        if had:
            self.open_for_append(new_last)
