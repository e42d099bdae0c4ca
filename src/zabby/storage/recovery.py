"""Recovery (newest valid snapshot + log replay), retention, check and repair."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zlib import crc32 as _zcrc

from ..tree import DataTree
from ..wire.constants import DEFAULT_MAX_BUFFER
from .errors import CorruptDataError, StorageError
from .fs import default_fs
from .logscan import PROGRESS_MASK, SegmentScan, first_gap, replay_entries, scan_segment
from .snapshot import PREFIX as SNAP_PREFIX
from .snapshot import TMP_SUFFIX, bulk_load_gc, load_snapshot, read_snapshot_info
from .txnlog import ENTRY_HEADER, list_segments, parse_name

__all__ = [
    "CheckReport",
    "RecoveryReport",
    "check",
    "list_snapshots",
    "purge",
    "recover",
]

log = logging.getLogger("zabby.storage")

# progress(phase, done, total): how far recovery has come, for a caller that shows it
# (the `zabby` command draws terminal bars; storage itself shows nothing). Phases, in
# order: "snapshot" (znodes restored), "scan" (log bytes validated), "replay" (logged
# txns read after the snapshot, applied unless replay=False). Within a phase `done`
# rises from 0 to `total`; a phase starts again at 0 when a damaged snapshot makes
# recovery fall back to an older one. Called every few thousand items, never per item.
Progress = Callable[[str, int, int], None]


@dataclass
class RecoveryReport:
    snapshot: str | None
    snapshot_zxid: int
    replayed: int
    last_zxid: int
    truncated: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    skipped_snapshots: list[str] = field(default_factory=list)  # corrupt, older one used
    log_last_zxid: int = 0  # newest valid entry in the log (or the snapshot's zxid)
    # what recovery's scan found in the newest log segment, when it had no torn tail:
    # TxnLog.open_for_append continues it without reading it all again (0.8 s at 1M txns)
    newest_segment: SegmentScan | None = None


def list_snapshots(data_dir: str, fs=None) -> list[tuple[int, str]]:
    """(zxid, path) of every snapshot file (temporary files excluded), newest first."""
    fs = default_fs(fs)
    d = os.path.join(data_dir, "version-2")
    if not fs.exists(d):
        return []
    out = []
    for name in fs.listdir(d):
        if name.endswith(TMP_SUFFIX):
            continue
        z = parse_name(name, SNAP_PREFIX)
        if z is not None:
            out.append((z, os.path.join(d, name)))
    out.sort(reverse=True)
    return out


class _Plan:
    """The log segments recovery from `snap_zxid` reads, validated."""

    def __init__(self) -> None:
        self.scans: list = []  # SegmentScan (the bytes are read again for replay)
        self.truncate: list[tuple[str, int, str, bool]] = []  # (path, offset, reason, whole file)


def _scan_log(log_v2: str, fs, snap_zxid: int, progress: Progress | None = None) -> _Plan:
    """Validate every segment recovery from snap_zxid needs (raises CorruptDataError)."""
    segs = list_segments(log_v2, fs)
    start = 0
    for i, (z, _p) in enumerate(segs):
        if z <= snap_zxid:
            start = i
    plan = _Plan()
    prev = None
    if progress is not None:
        sizes = []
        for _z, path in segs[start:]:
            try:
                sizes.append(fs.file_size(path))
            except OSError:
                sizes.append(0)  # reading it below says what is wrong
        total, done = sum(sizes), 0
        progress("scan", 0, total)
    for i in range(start, len(segs)):
        z, path = segs[i]
        try:
            buf = fs.read_file(path)
        except OSError as e:
            raise CorruptDataError(f"{path}: cannot read txn log segment: {e}", path=path) from e
        scan = scan_segment(buf, path, z, prev)
        if scan.torn_at is not None:
            if i != len(segs) - 1:
                raise CorruptDataError(
                    f"{path}: offset {scan.torn_at}: {scan.torn_reason} (a torn tail) in a segment "
                    f"that is not the newest ({segs[-1][1]} follows)",
                    path=path, offset=scan.torn_at, zxid=scan.last_zxid)
            if scan.header_valid and not _looks_torn(buf, scan.torn_at):
                last = f" (last good zxid {scan.last_zxid:#x})" if scan.entries else ""
                raise CorruptDataError(
                    f"{path}: offset {scan.torn_at}: {scan.torn_reason} in the last entry of the "
                    f"log{last}, and the entry is complete (its last byte reached the disk), so "
                    f"this is damage to a logged txn, not a torn write (`zabby check --repair` "
                    f"drops it; an ensemble member then gets it back from the leader)",
                    path=path, offset=scan.torn_at, zxid=scan.last_zxid)
            plan.truncate.append((path, scan.torn_at, scan.torn_reason, not scan.header_valid))
        plan.scans.append(scan)
        del buf
        if scan.entries:
            prev = scan.entries[-1][0]
        if progress is not None:
            done += sizes[i - start]
            progress("scan", done, total)
    return plan


def _looks_torn(buf, pos: int) -> bool:
    """Is the damaged entry at `pos` (with nothing but zeros after it) a write that
    stopped part-way, rather than damage to a complete entry?

    The log is preallocated with zeros and an entry is written in one go, so a write
    cut short leaves the end of the entry still zero (or the file ends first: a log
    on a filesystem without preallocation, or a file cut short). A complete entry
    whose checksum fails -- a flipped bit, a bad sector read back -- has its last byte
    (the payload's, or the header checksum's) in place, and dropping it could drop a
    txn that was fsynced and acknowledged: that is refused (as ZooKeeper refuses a
    record whose end-of-record byte is there but whose CRC fails). The one ambiguity
    is an entry whose own last byte is 0 (a closeSession that deleted no ephemerals
    ends in four): a small one is tried with each single bit flipped back, and if one
    makes the checksum match before the zeros it ends in, it was a flipped bit. A bit
    that fits inside those trailing zeros fits a torn write just as well (the lost end
    of the write held that one set bit: found by the whole-server simulation, seed
    3616, where a power loss left a member refusing to start), and reads as torn: the
    entry is cut on this member only, and the quorum holds it if it was acknowledged."""
    n = len(buf)
    if pos + ENTRY_HEADER > n:
        return True
    if _zcrc(buf[pos : pos + 16]) != int.from_bytes(buf[pos + 16 : pos + 20], "little"):
        return buf[pos + ENTRY_HEADER - 1] == 0  # the header itself is incomplete
    length = int.from_bytes(buf[pos : pos + 4], "little")
    end = pos + ENTRY_HEADER + length
    if length == 0 or end > n:
        return True
    if buf[end - 1] != 0:
        return False
    payload = buf[pos + ENTRY_HEADER : end]
    flipped = _one_bit_off(payload, int.from_bytes(buf[pos + 12 : pos + 16], "little"))
    zeros_from = len(bytes(payload).rstrip(b"\0"))  # where the trailing zeros start
    return flipped is None or flipped >= zeros_from


def _one_bit_off(payload, want: int, limit: int = 512) -> int | None:
    """The offset of the one bit of `payload` (at most `limit` bytes) whose flip gives
    crc `want`, if there is one."""
    if len(payload) > limit:
        return None
    b = bytearray(payload)
    for i in range(len(b)):
        old = b[i]
        for bit in range(8):
            b[i] = old ^ (1 << bit)
            if _zcrc(b) == want:
                return i
        b[i] = old
    return None


def _check_coverage(plan: _Plan, snap_zxid: int, snap_desc: str) -> int:
    """Check the entries after snap_zxid continue it without a gap; count them."""
    count, i, j, prev = first_gap(plan.scans, snap_zxid)
    if i < 0:
        return count
    scan = plan.scans[i]
    zxid, s, _e = scan.entries[j]
    if count == 0:
        msg = (f"{scan.path}: offset {s - ENTRY_HEADER}: the txn log does not reach back "
               f"to {snap_desc} (zxid {snap_zxid:#x}): the first entry after it is "
               f"zxid {zxid:#x}")
    else:
        msg = (f"{scan.path}: offset {s - ENTRY_HEADER}: gap in the txn log: zxid "
               f"{zxid:#x} follows {prev:#x}")
    raise CorruptDataError(msg, path=scan.path, offset=s - ENTRY_HEADER, zxid=zxid)


def _apply_truncations(plan: _Plan, fs) -> list[tuple[str, int]]:
    done = []
    for path, off, reason, whole in plan.truncate:
        log.warning("txn log %s: torn write at offset %d (%s): truncating the log there",
                    path, off, reason)
        try:
            if whole:
                fs.unlink(path)
                fs.fsync_dir(os.path.dirname(path))
            else:
                h = fs.open(path)
                try:
                    fs.truncate(h, off)
                    fs.fsync(h)
                finally:
                    fs.close(h)
        except OSError as e:
            raise StorageError(f"{path}: cannot truncate the torn tail at offset {off}: {e}") from e
        done.append((path, off))
    return done


def _load(data_dir: str, log_v2: str, fs, max_buffer: int, extended_types: bool,
          progress: Progress | None = None):
    """Pick a snapshot whose log coverage holds; (tree, snap path, snap zxid, plan, count, skipped)."""
    snaps = list_snapshots(data_dir, fs)
    errors: list[CorruptDataError] = []
    skipped: list[str] = []
    bad_zxids: list[int] = []  # the zxids (by name) of the snapshots skipped
    for zxid, path in snaps:
        try:
            tree = load_snapshot(path, fs=fs, max_buffer=max_buffer, extended_types=extended_types,
                                 progress=progress)
        except CorruptDataError as e:
            log.warning("snapshot %s is unusable, trying an older one: %s", path, e)
            errors.append(e)
            skipped.append(path)
            bad_zxids.append(zxid)
            continue
        if tree.last_zxid != zxid:
            e = CorruptDataError(f"{path}: offset 0: snapshot holds zxid {tree.last_zxid:#x}, "
                                 f"its name says {zxid:#x}", path=path, offset=0, zxid=zxid)
            log.warning("%s", e)
            errors.append(e)
            skipped.append(path)
            bad_zxids.append(zxid)
            continue
        plan = _scan_log(log_v2, fs, zxid, progress)
        try:
            count = _check_coverage(plan, zxid, f"snapshot {path}")
        except CorruptDataError as e:
            if errors:
                raise CorruptDataError(
                    f"{errors[0]}; the older snapshot {path} cannot be used instead: {e}",
                    path=e.path, offset=e.offset, zxid=e.zxid) from e
            raise
        if skipped:
            # The log must lead from this snapshot through the zxid of the newest one
            # that failed: only then does it rebuild what that one held. (After a
            # snapshot from the leader replaced the log, the log starts after that
            # snapshot; the coverage check above cannot see the hole when the log's
            # first txn opens a new epoch, which may follow any older zxid.)
            newest_bad = max(bad_zxids)
            if not any(z == newest_bad for scan in plan.scans for z, _s, _e in scan.entries):
                e = errors[0]
                raise CorruptDataError(
                    f"{e}; the older snapshot {path} (zxid {zxid:#x}) cannot be used "
                    f"instead: the txn log does not hold zxid {newest_bad:#x}, at which the "
                    "unusable snapshot was taken, so nothing rebuilds what it held",
                    path=e.path, offset=e.offset, zxid=e.zxid)
            log.warning("recovering from the older snapshot %s (zxid %#x) and the txn log",
                        path, zxid)
        return tree, path, zxid, plan, count, skipped
    if errors:
        first = errors[0]
        raise CorruptDataError(f"{first} (and no older valid snapshot)", path=first.path,
                               offset=first.offset, zxid=first.zxid)
    tree = DataTree(max_buffer=max_buffer, extended_types=extended_types)
    plan = _scan_log(log_v2, fs, 0, progress)
    count = _check_coverage(plan, 0, "an empty tree")
    return tree, None, 0, plan, count, skipped


def recover(data_dir: str, log_dir: str | None = None, *, fs=None,
            max_buffer: int = DEFAULT_MAX_BUFFER, extended_types: bool = False,
            repair_tail: bool = True, replay: bool = True,
            progress: Progress | None = None) -> tuple[DataTree, RecoveryReport]:
    """The newest valid snapshot plus the log after it.

    With replay=False the log is checked (and a torn tail cut) but not applied:
    an ensemble member's log may end in proposals that were never committed, so
    its tree starts from the snapshot and the consensus layer re-applies what
    the leader confirms (report.log_last_zxid says how far the log goes).

    A torn tail of the newest log segment is truncated (durably, with a
    WARNING; not with repair_tail=False, which only reads); any other damage
    raises CorruptDataError. An empty directory gives a fresh tree.

    `progress(phase, done, total)`, if given, hears how far recovery has come (see
    `Progress`); without it recovery does no extra work."""
    t0 = time.perf_counter()
    fs = default_fs(fs)
    with bulk_load_gc():
        return _recover(data_dir, log_dir, fs, max_buffer, extended_types, repair_tail,
                        replay, progress, t0)


def _replay_ticker(progress: Progress, count: int) -> Callable[[int], None]:
    def tick(n: int) -> None:
        progress("replay", n, count)
    return tick


def _recover(data_dir: str, log_dir: str | None, fs, max_buffer: int, extended_types: bool,
             repair_tail: bool, replay: bool, progress: Progress | None,
             t0: float) -> tuple[DataTree, RecoveryReport]:
    log_v2 = os.path.join(log_dir if log_dir is not None else data_dir, "version-2")
    tree, spath, szxid, plan, count, skipped = _load(data_dir, log_v2, fs, max_buffer,
                                                     extended_types, progress)
    replayed = 0
    log_last = szxid
    seen = 0  # entries after the snapshot read so far (for progress)
    tick: Callable[[int], None] | None = None
    if progress is not None:
        progress("replay", 0, count)
        tick = _replay_ticker(progress, count)
    for scan in plan.scans:
        if not scan.entries or scan.entries[-1][0] <= szxid:
            continue
        try:
            buf = fs.read_file(scan.path)
        except OSError as e:
            raise CorruptDataError(f"{scan.path}: cannot read txn log segment: {e}",
                                   path=scan.path) from e
        last, applied, seen = replay_entries(tree, buf, scan, szxid, replay, tick, seen)
        if last >= 0:
            log_last = last
        replayed += applied
    if progress is not None and (seen & PROGRESS_MASK or seen != count):
        progress("replay", count, count)
    truncated: list[tuple[str, int]] = []
    if plan.truncate:
        if repair_tail:
            truncated = _apply_truncations(plan, fs)
        else:
            truncated = [(p, o) for p, o, _r, _w in plan.truncate]
            for p, o, r, _w in plan.truncate:
                log.warning("txn log %s: torn write at offset %d (%s): would truncate", p, o, r)
    newest = plan.scans[-1] if plan.scans else None
    report = RecoveryReport(spath, szxid, replayed, tree.last_zxid, truncated,
                            time.perf_counter() - t0, skipped, log_last,
                            newest if newest is not None and newest.torn_at is None else None)
    return tree, report


# ----------------------------------------------------------------- retention
def purge(data_dir: str, log_dir: str | None, snap_retain_count: int = 3, *, fs=None) -> list[str]:
    """Keep the newest `snap_retain_count` (>= 3) valid snapshots and every log
    segment recovery from the oldest of them needs; delete older snapshots,
    older segments and leftover temporary snapshot files. Returns the deleted
    paths. Snapshots that fail their checksum are not counted and not
    deleted when newer than the kept ones."""
    if snap_retain_count < 3:
        raise ValueError("snap_retain_count must be at least 3")
    fs = default_fs(fs)
    log_v2 = os.path.join(log_dir if log_dir is not None else data_dir, "version-2")
    snap_v2 = os.path.join(data_dir, "version-2")
    snaps = list_snapshots(data_dir, fs)
    kept: list[tuple[int, str]] = []
    delete: list[str] = []
    for zxid, path in snaps:
        if len(kept) >= snap_retain_count:
            delete.append(path)
            continue
        try:
            read_snapshot_info(path, fs=fs)
        except CorruptDataError:
            continue  # neither counted nor deleted
        kept.append((zxid, path))
    if len(kept) < snap_retain_count:
        # not enough valid snapshots to trust any deletion of older ones
        delete = []
    if kept:
        oldest = kept[-1][0]
        segs = list_segments(log_v2, fs)
        keep_from = 0
        for i, (z, _p) in enumerate(segs):
            if z <= oldest:
                keep_from = i
        if len(kept) >= snap_retain_count:
            delete.extend(p for _z, p in segs[:keep_from])
    if fs.exists(snap_v2):
        for name in fs.listdir(snap_v2):
            if name.startswith(SNAP_PREFIX) and name.endswith(TMP_SUFFIX):
                delete.append(os.path.join(snap_v2, name))
    deleted = []
    dirs = set()
    for p in delete:
        try:
            fs.unlink(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("purge: cannot delete %s: %s", p, e)
            continue
        deleted.append(p)
        dirs.add(os.path.dirname(p))
    for d in dirs:
        try:
            fs.fsync_dir(d)
        except OSError as e:
            log.warning("purge: cannot fsync %s: %s", d, e)
    return deleted


# ------------------------------------------------------------- check/repair
@dataclass
class CheckReport:
    ok: bool
    message: str
    report: RecoveryReport | None = None
    repaired: list[str] = field(default_factory=list)  # what --repair did


def _repair_plan(data_dir: str, log_v2: str, fs, err: CorruptDataError) -> list[tuple[str, int | None]]:
    """How to truncate the log at the damage `err` names: [(path, offset or None = delete)]."""
    if err.path is None or err.offset is None:
        return []
    if os.path.dirname(err.path) != log_v2 or parse_name(os.path.basename(err.path), "log.") is None:
        return []  # a snapshot: truncating the log cannot help
    segs = list_segments(log_v2, fs)
    plan: list[tuple[str, int | None]] = []
    seen = False
    for _z, path in segs:
        if path == err.path:
            seen = True
            plan.append((path, None if err.offset <= 0 else err.offset))
        elif seen:
            plan.append((path, None))
    return plan


def check(data_dir: str, log_dir: str | None = None, *, fs=None, repair: bool = False,
          max_buffer: int = DEFAULT_MAX_BUFFER, extended_types: bool = False,
          say=print, progress: Progress | None = None) -> CheckReport:
    """Can these directories be recovered? With repair=True, truncate the log
    at the first damaged entry (saying what is dropped first) until they can.
    `progress` hears each recovery attempt as `recover` describes."""
    fs = default_fs(fs)
    log_v2 = os.path.join(log_dir if log_dir is not None else data_dir, "version-2")
    repaired: list[str] = []
    for _round in range(64):
        try:
            _tree, report = recover(data_dir, log_dir, fs=fs, max_buffer=max_buffer,
                                    extended_types=extended_types, repair_tail=repair,
                                    progress=progress)
        except CorruptDataError as e:
            if not repair:
                return CheckReport(False, str(e))
            steps = _repair_plan(data_dir, log_v2, fs, e)
            if not steps:
                return CheckReport(False, f"{e} (not repairable by truncating the log)",
                                   repaired=repaired)
            for path, off in steps:
                size = fs.file_size(path)
                if off is None:
                    say(f"repair: deleting {path} ({size} bytes)")
                    fs.unlink(path)
                    fs.fsync_dir(os.path.dirname(path))
                    repaired.append(f"deleted {path}")
                else:
                    say(f"repair: truncating {path} at offset {off} (dropping {size - off} bytes "
                        f"after the last valid entry)")
                    h = fs.open(path)
                    try:
                        fs.truncate(h, off)
                        fs.fsync(h)
                    finally:
                        fs.close(h)
                    repaired.append(f"truncated {path} at {off}")
            continue
        msg = (f"ok: snapshot {report.snapshot or '(none)'} at zxid {report.snapshot_zxid:#x}, "
               f"{report.replayed} txns replayed, last zxid {report.last_zxid:#x}")
        if report.truncated:
            verb = "truncated" if repair else "torn tail (recovery will truncate)"
            msg += "; " + ", ".join(f"{verb}: {p} at offset {o}" for p, o in report.truncated)
        return CheckReport(True, msg, report, repaired)
    return CheckReport(False, "repair did not converge", repaired=repaired)
