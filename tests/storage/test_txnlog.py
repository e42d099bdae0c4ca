"""TxnLog round trips, segments, preallocation, force_sync, truncation."""

from __future__ import annotations

import errno
import os

import pytest

from zabby.storage import StorageError, TxnLog, recover
from zabby.storage.fs import SimulatedFS
from zabby.storage.txnlog import ENTRY_HEADER, SEGMENT_HEADER, SegmentScan

from .helpers import Workload, assert_same_tree, entries

V2 = "/logs/version-2"


def _batches(n_batches: int, size: int, seed: int = 0):
    w = Workload(seed)
    bs = [entries(w.txns(size)) for _ in range(n_batches)]
    return w, bs


def test_round_trip_real_fs(tmp_path):
    w, batches = _batches(5, 7)
    log = TxnLog(str(tmp_path), prealloc_bytes=1 << 16)
    log.open_for_append(0)
    for b in batches:
        log.write_batch(b)
    assert log.last_zxid == batches[-1][-1][0]
    log.close()
    again = TxnLog(str(tmp_path))
    got = list(again.iter_entries())
    assert got == [e for b in batches for e in b]
    assert list(again.iter_entries(after_zxid=10)) == [e for b in batches for e in b if e[0] > 10]
    assert os.listdir(tmp_path / "version-2") == ["log.1"]
    tree, report = recover(str(tmp_path), extended_types=True)
    assert report.replayed == 35 and report.last_zxid == 35 and report.snapshot is None
    assert_same_tree(tree, w.tree)


def test_segments_roll_and_reopen():
    fs = SimulatedFS()
    w, batches = _batches(6, 5)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log.open_for_append(0)
    for i, b in enumerate(batches):
        log.write_batch(b)
        if i % 2 == 1:
            log.roll()
    names = fs.listdir(V2)
    assert names == ["log.1", "log.15", "log.b"]  # hex first zxids: 1, 11, 21
    log.close()
    # reopen: continues the newest segment after its last entry
    log2 = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log2.open_for_append(30)
    more = entries(w.txns(3))
    log2.write_batch(more)
    assert fs.listdir(V2) == ["log.1", "log.15", "log.b"]
    assert list(log2.iter_entries()) == [e for b in batches for e in b] + more
    assert list(log2.iter_entries(after_zxid=20)) == [e for b in batches[4:] for e in b] + more
    tree, report = recover("/logs", fs=fs, extended_types=True)
    assert report.replayed == 33
    assert_same_tree(tree, w.tree)


def test_open_for_append_behind_log_rolls():
    """A tree ahead of the log (e.g. from a snapshot) starts a new segment."""
    fs = SimulatedFS()
    _w, batches = _batches(1, 5)
    log = TxnLog("/logs", fs=fs)
    log.open_for_append(0)
    log.write_batch(batches[0])
    log.close()
    log = TxnLog("/logs", fs=fs)
    log.open_for_append(9)
    assert log.last_zxid == 9
    log.write_batch([(10, batches[0][0][1])])
    assert fs.listdir(V2) == ["log.1", "log.a"]
    with pytest.raises(ValueError):
        log.write_batch([(10, b"x")])  # not increasing
    log.close()
    log = TxnLog("/logs", fs=fs)
    with pytest.raises(ValueError):
        log.open_for_append(3)  # the log is ahead: truncate_after first


def test_preallocation_blocks_and_data_end():
    fs = SimulatedFS()
    _w, batches = _batches(40, 10)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    sizes = []
    for b in batches:
        log.write_batch(b)
        sizes.append(fs.file_size(V2 + "/log.1"))
    assert all(s % 4096 == 0 for s in sizes)
    assert sizes[0] == 4096 and sizes[-1] > 4096 and sorted(sizes) == sizes
    data = fs.content(V2 + "/log.1")
    used = SEGMENT_HEADER + sum(ENTRY_HEADER + len(p) for b in batches for _z, p in b)
    assert data[used:] == bytes(len(data) - used)  # zero-filled after the end of data
    log.close()
    got = list(TxnLog("/logs", fs=fs).iter_entries())
    assert len(got) == 400


def test_force_sync_off_performs_no_fsync():
    fs = SimulatedFS()
    _w, batches = _batches(5, 4)
    log = TxnLog("/logs", fs=fs, force_sync=False)
    log.open_for_append(0)
    for b in batches:
        log.write_batch(b)
    log.roll()
    log.write_batch(entries(_w.txns(2)))
    assert fs.calls["fsync"] == 0 and fs.calls["fsync_dir"] == 0
    assert fs.calls["write"] == 6
    fs2 = SimulatedFS()
    log2 = TxnLog("/logs", fs=fs2, force_sync=True)
    log2.open_for_append(0)
    for b in batches:
        log2.write_batch(b)
    assert fs2.calls["fsync"] == 5  # one per batch (group commit)
    assert fs2.calls["fsync_dir"] == 1  # the new segment's directory entry


def test_truncate_after():
    fs = SimulatedFS()
    w, batches = _batches(6, 5)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    for i, b in enumerate(batches):
        log.write_batch(b)
        if i == 2:
            log.roll()
    log.truncate_after(12)
    assert log.last_zxid == 12
    assert fs.listdir(V2) == ["log.1"]
    assert [z for z, _ in log.iter_entries()] == list(range(1, 13))
    # appending continues right after 12
    log.write_batch([(13, batches[2][2][1])])
    log.close()
    assert [z for z, _ in TxnLog("/logs", fs=fs).iter_entries()] == list(range(1, 14))
    # survives a crash: truncation and the new entry were fsynced
    fs.crash()
    assert [z for z, _ in TxnLog("/logs", fs=fs).iter_entries()] == list(range(1, 14))


def test_write_batch_rejects_empty_payload_and_bad_order():
    log = TxnLog("/logs", fs=SimulatedFS())
    log.open_for_append(0)
    with pytest.raises(ValueError):
        log.write_batch([(2, b"a"), (1, b"b")])
    with pytest.raises((ValueError, StorageError)):
        log.write_batch([(1, b"")])


def test_a_segment_continued_after_a_restart_is_made_durable_directory_entry_included():
    """A process died after creating a segment and writing to it, before the fsync
    of the directory: only the page cache knows the segment. Continued after the
    restart, txns appended to it (and acknowledged: their data is fsynced) must
    survive a power loss, so the segment's directory entry must reach the disk
    (found by the whole-server simulation, seed 120: a later power loss took the
    segment away with everything appended since)."""
    fs = SimulatedFS()
    w, batches = _batches(3, 4)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log.open_for_append(0)
    log.write_batch(batches[0])
    log.roll()
    fs.inject("fsync_dir", errno.EIO)  # the new segment's entry never reaches the disk
    with pytest.raises(StorageError):
        log.write_batch(batches[1])
    # the process died (kill -9: the page cache stays); the restart continues the
    # segment, whose last entry is where recovery says the log ends
    last = batches[1][-1][0]
    log2 = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log2.open_for_append(last)
    log2.write_batch(batches[2])  # durable, acknowledged
    fs.crash()  # power loss
    tree, report = recover("/logs", fs=fs, extended_types=True)
    assert report.log_last_zxid == batches[2][-1][0]
    assert_same_tree(tree, w.tree)


def test_open_for_append_takes_recoverys_scan_of_the_newest_segment():
    """A server opens the log right after recovery read every segment: the newest
    one is not read again (at 1M txns that read and scan took 0.8 s of a start),
    and what is appended after it recovers as before. A scan of another file is not
    taken for the newest; after a torn tail recovery cut, there is no scan to take."""
    fs = SimulatedFS()
    w, batches = _batches(4, 5)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log.open_for_append(0)
    for i, b in enumerate(batches[:3]):
        log.write_batch(b)
        if i == 0:
            log.roll()
    log.close()
    _tree, report = recover("/logs", fs=fs, extended_types=True, replay=False)
    newest = report.newest_segment
    assert newest is not None and newest.path == f"{V2}/log.6" and newest.last_zxid == 15
    reads = fs.calls["read_file"]
    log = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log.open_for_append(report.log_last_zxid, newest)
    assert fs.calls["read_file"] == reads  # nothing read again
    log.write_batch(batches[3])
    log.close()
    tree, report = recover("/logs", fs=fs, extended_types=True)
    assert report.replayed == 20 and report.log_last_zxid == 20
    assert_same_tree(tree, w.tree)
    # another file's scan is not taken for the newest, even one ending at the same
    # zxid: taken, its end (just after the header) would have the next write land on
    # the newest segment's first entries
    log = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    other = SegmentScan(f"{V2}/log.1", 1, [(20, SEGMENT_HEADER, SEGMENT_HEADER)],
                        end=SEGMENT_HEADER)
    log.open_for_append(20, other)
    assert log.last_zxid == 20
    log.write_batch([(21, batches[0][0][1])])
    log.close()
    assert [z for z, _ in TxnLog("/logs", fs=fs).iter_entries()] == list(range(1, 22))


def test_a_torn_newest_segment_gives_no_scan_to_reuse():
    fs = SimulatedFS()
    _w, batches = _batches(1, 5)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=8192)
    log.open_for_append(0)
    log.write_batch(batches[0])
    log.close()
    path = f"{V2}/log.1"
    data = bytearray(fs.read_file(path))
    end = SEGMENT_HEADER + sum(ENTRY_HEADER + len(p) for _, p in batches[0])
    data[end - 8:end] = bytes(8)  # the last entry's end never reached the disk: torn
    h = fs.open(path)
    fs.write(h, bytes(data), 0)
    fs.close(h)
    _tree, report = recover("/logs", fs=fs, extended_types=True)
    assert report.truncated and report.newest_segment is None
    assert report.log_last_zxid == 4
