"""Reading the txn log's segments: the checks of every entry, and the replay loop.

Compiled with mypyc (zabby._compiled): a recovery from the log alone runs both loops
once per logged txn (a million of them for a tree of a million znodes). The format
is described in `txnlog` (which writes it); the constants it shares with the reader
are defined here, once.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ..tree.datatree import DataTree
from ..tree.txn import Txn
from ..wire.jute import ProtocolError
from .errors import CorruptDataError

MAGIC = b"ZABBYLOG"
VERSION = 1
_SEG_HDR = struct.Struct("<8sIIqI4x")
SEGMENT_HEADER = 32  # _SEG_HDR.size
_ENT_HDR = struct.Struct("<IqII")
ENTRY_HEADER = 20  # _ENT_HDR.size
_COPY_MAX: Final = 4096
# how often the replay reports progress (every 4096 entries)
PROGRESS_MASK = 0xFFF


def _u32(buf: bytes, pos: int) -> int:
    """The little-endian u32 at pos (the caller checked the bounds): native byte
    reads, not a struct call and its tuple."""
    return buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)


def _i64(buf: bytes, pos: int) -> int:
    v = _u32(buf, pos) | (_u32(buf, pos + 4) << 32)
    return v - (1 << 64) if v >> 63 else v


def _all_zero(buf: bytes, start: int) -> bool:
    n = len(buf)
    return start >= n or buf.count(0, start) == n - start


@dataclass
class SegmentScan:
    """What `scan_segment` found in one file."""

    path: str
    first_zxid: int  # from the header (or the name when the header is torn)
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (zxid, payload start, payload end)
    end: int = SEGMENT_HEADER  # offset just past the last valid entry
    torn_at: int | None = None  # a torn tail starts here (entry or header offset)
    torn_reason: str = ""
    header_valid: bool = True

    @property
    def last_zxid(self) -> int | None:
        return self.entries[-1][0] if self.entries else None


def scan_segment(buf: Any, path: str, name_zxid: int, prev_zxid: int | None = None) -> SegmentScan:
    """Validate one segment's bytes.

    Returns the valid entries; a damaged tail that is followed only by zeros
    is reported in `torn_at` (the caller decides whether a torn tail is
    acceptable there). Raises CorruptDataError for damage with data after it
    and for zxids that do not increase (also against `prev_zxid`, the last
    zxid of the previous segment).
    """
    data: bytes = buf if isinstance(buf, bytes) else bytes(buf)
    return _scan(data, path, name_zxid, prev_zxid)


def _scan(buf: bytes, path: str, name_zxid: int, prev_zxid: int | None) -> SegmentScan:
    n = len(buf)
    crc = zlib.crc32
    scan = SegmentScan(path, name_zxid)
    if n < SEGMENT_HEADER or buf[:8] != MAGIC or \
            crc(buf[:24]) != int.from_bytes(buf[24:28], "little"):
        scan.header_valid = False
        scan.end = 0
        if _all_zero(buf, SEGMENT_HEADER):
            # a header that never fully reached the disk: nothing after it
            scan.torn_at = 0
            scan.torn_reason = "incomplete segment header"
            return scan
        raise CorruptDataError(
            f"{path}: offset 0: bad segment header (magic/checksum) with data after it",
            path=path, offset=0)
    _magic, version, _flags, first_zxid, _c = _SEG_HDR.unpack_from(buf, 0)
    if version != VERSION:
        raise CorruptDataError(f"{path}: offset 0: unsupported txn log format version {version}",
                               path=path, offset=0)
    if first_zxid != name_zxid:
        raise CorruptDataError(
            f"{path}: offset 0: header says first zxid {first_zxid:#x}, file name says {name_zxid:#x}",
            path=path, offset=0, zxid=first_zxid)
    scan.first_zxid = first_zxid
    pos = SEGMENT_HEADER
    entries = scan.entries
    have_prev = prev_zxid is not None
    prev = prev_zxid if prev_zxid is not None else 0
    # a payload's checksum over a copy of it (a bytes slice is cheaper to make than a
    # memoryview of one), or over a view when it is big enough for the copy to cost more
    view = memoryview(buf)
    bad = ""
    while True:
        length = 0
        hdr_ok = False
        if pos + ENTRY_HEADER > n:
            if _all_zero(buf, pos):
                break
            bad = "truncated entry header"
        else:
            length = _u32(buf, pos)
            zxid = _i64(buf, pos + 4)
            pcrc = _u32(buf, pos + 12)
            hcrc = _u32(buf, pos + 16)
            if length == 0 and _all_zero(buf, pos):
                break
            hdr_ok = crc(buf[pos:pos + 16]) == hcrc and length > 0
            if hdr_ok:
                start = pos + ENTRY_HEADER
                end = start + length
                if end > n:
                    bad = f"entry zxid {zxid:#x} truncated ({length} bytes announced, file ends)"
                elif crc(buf[start:end] if length <= _COPY_MAX else view[start:end]) != pcrc:
                    bad = f"entry zxid {zxid:#x}: payload checksum mismatch"
                else:
                    if have_prev and zxid <= prev:
                        raise CorruptDataError(
                            f"{path}: offset {pos}: zxid {zxid:#x} does not increase "
                            f"(previous {prev:#x})", path=path, offset=pos, zxid=zxid)
                    if not entries and zxid != first_zxid:
                        raise CorruptDataError(
                            f"{path}: offset {pos}: first entry has zxid {zxid:#x}, "
                            f"segment says {first_zxid:#x}", path=path, offset=pos, zxid=zxid)
                    entries.append((zxid, start, end))
                    prev = zxid
                    have_prev = True
                    pos = end
                    continue
            else:
                bad = "entry header checksum mismatch" if length else "zero length entry with data after it"
        # a bad entry at pos: torn tail iff nothing but zeros follows it
        after = pos + ENTRY_HEADER + length if hdr_ok else pos + ENTRY_HEADER
        if _all_zero(buf, after):
            scan.torn_at = pos
            scan.torn_reason = bad
            break
        last = f" (last good zxid {prev:#x})" if have_prev else ""
        raise CorruptDataError(f"{path}: offset {pos}: {bad}, with valid-looking data after it{last}",
                               path=path, offset=pos, zxid=prev if have_prev else None)
    scan.end = pos
    return scan


def replay_entries(tree: DataTree, buf: bytes, scan: SegmentScan, after_zxid: int, apply: bool,
                   progress: Callable[[int], None] | None, seen: int) -> tuple[int, int, int]:
    """Decode (and with `apply`, apply to `tree`) each of the scanned entries of `buf`
    after `after_zxid`; `progress(seen)` hears every 4096th. Returns (the last zxid
    read or -1, how many were applied, `seen` plus how many were read). Raises
    CorruptDataError for an entry that passed its checksums but does not decode, or
    holds a txn of another zxid."""
    path = scan.path
    last = -1
    applied = 0
    for zxid, s, e in scan.entries:
        if zxid <= after_zxid:
            continue
        try:
            txn = Txn.decode(buf[s:e])
        except (ProtocolError, ValueError) as err:
            raise CorruptDataError(
                f"{path}: offset {s - ENTRY_HEADER}: zxid {zxid:#x}: undecodable txn: {err}",
                path=path, offset=s - ENTRY_HEADER, zxid=zxid) from err
        if txn.header.zxid != zxid:
            raise CorruptDataError(
                f"{path}: offset {s - ENTRY_HEADER}: entry zxid {zxid:#x} holds a txn "
                f"with zxid {txn.header.zxid:#x}", path=path, offset=s - ENTRY_HEADER, zxid=zxid)
        last = zxid
        if apply:
            tree.apply(txn)
            applied += 1
        if progress is not None:
            seen += 1
            if not seen & PROGRESS_MASK:
                progress(seen)
    return last, applied, seen


def follows(prev: int, zxid: int) -> bool:
    """Is `zxid` the txn right after `prev`? (+1 in an epoch; a new epoch
    restarts its counter at 1 -- or 0 -- and may skip empty epochs)."""
    if zxid >> 32 == prev >> 32:
        return zxid == prev + 1
    return zxid >> 32 > prev >> 32 and (zxid & 0xFFFFFFFF) <= 1


def first_gap(scans: list[SegmentScan], after_zxid: int) -> tuple[int, int, int, int]:
    """Walk the scanned entries after `after_zxid`: (how many follow it without a
    gap, and at the first gap: the index of its scan, its entry's index and the zxid
    before it; -1, -1, the last zxid when there is none)."""
    prev = after_zxid
    count = 0
    for i, scan in enumerate(scans):
        entries = scan.entries
        for j in range(len(entries)):
            zxid = entries[j][0]
            if zxid <= after_zxid:
                continue
            if not follows(prev, zxid):
                return count, i, j, prev
            prev = zxid
            count += 1
    return count, -1, -1, prev
