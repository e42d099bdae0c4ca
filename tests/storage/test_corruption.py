"""Damage before the tail is refused with a message naming file and offset."""

from __future__ import annotations

import logging
import re

import pytest

from zabby.storage import CorruptDataError, TxnLog, recover, write_snapshot
from zabby.storage.fs import SimulatedFS
from zabby.storage.txnlog import ENTRY_HEADER, SEGMENT_HEADER, encode_entries, encode_header

from .helpers import Workload, assert_same_tree, entries

V2 = "/d/version-2"


def _setup(n_batches=4, size=5, roll_every=None, seed=21):
    fs = SimulatedFS()
    w = Workload(seed)
    log = TxnLog("/d", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    all_txns = []
    for i in range(n_batches):
        b = w.txns(size)
        all_txns += b
        log.write_batch(entries(b))
        if roll_every and (i + 1) % roll_every == 0:
            log.roll()
    log.close()
    return fs, w, all_txns


def _poke(fs, path, offset, value=None):
    h = fs.open(path)
    old = fs.read(h, offset, 1)[0]
    fs.write(h, bytes([old ^ 0x40 if value is None else value]), offset)
    fs.fsync(h)
    fs.close(h)


def _offset_of(fs, path, index):
    """Offset of the index-th entry of a segment."""
    data = fs.content(path)
    pos = SEGMENT_HEADER
    for _ in range(index):
        pos += ENTRY_HEADER + int.from_bytes(data[pos : pos + 4], "little")
    return pos


@pytest.mark.parametrize("where", ["payload", "length", "zxid", "header_crc"])
def test_flipped_byte_in_early_entry_is_refused(where):
    fs, _w, _txns = _setup()
    path = V2 + "/log.1"
    off = _offset_of(fs, path, 3)
    delta = {"payload": ENTRY_HEADER + 5, "length": 1, "zxid": 4, "header_crc": 17}[where]
    _poke(fs, path, off + delta)
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    msg = str(exc.value)
    assert path in msg and f"offset {off}" in msg, msg
    assert exc.value.path == path and exc.value.offset == off
    # iter_entries refuses too
    with pytest.raises(CorruptDataError):
        list(TxnLog("/d", fs=fs).iter_entries())


def test_zeroed_length_in_the_middle_is_not_an_end_of_log():
    fs, _w, _txns = _setup()
    path = V2 + "/log.1"
    off = _offset_of(fs, path, 2)
    for i in range(4):
        _poke(fs, path, off + i, 0)
    with pytest.raises(CorruptDataError, match=re.escape(f"offset {off}")):
        recover("/d", fs=fs, extended_types=True)


def test_unfinished_last_entry_with_nothing_after_is_a_torn_tail(caplog):
    fs, _w, txns = _setup()
    path = V2 + "/log.1"
    off = _offset_of(fs, path, len(txns) - 1)
    end = _offset_of(fs, path, len(txns))
    for o in range(off + ENTRY_HEADER + 3, end):  # the write stopped there: zeros after
        _poke(fs, path, o, 0)
    with caplog.at_level(logging.WARNING, logger="zabby.storage"):
        _tree, report = recover("/d", fs=fs, extended_types=True)
    assert report.truncated == [(path, off)] and report.last_zxid == len(txns) - 1
    assert any(path in r.getMessage() and f"offset {off}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("where", ["payload", "length", "header_crc"])
def test_damage_to_a_complete_last_entry_is_refused(where):
    """A flipped bit in the last entry (its last byte in place: it was written in
    full, maybe fsynced and acknowledged) is not a torn write: refused, not cut."""
    fs, _w, txns = _setup()
    path = V2 + "/log.1"
    off = _offset_of(fs, path, len(txns) - 1)
    delta = {"payload": ENTRY_HEADER + 3, "length": 0, "header_crc": 16}[where]
    _poke(fs, path, off + delta)
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    assert exc.value.path == path and exc.value.offset == off
    assert f"{path}: offset {off}" in str(exc.value)
    if where == "payload":  # (a damaged header shows the payload as data after it)
        assert "not a torn write" in str(exc.value)


def _write_segment(fs, first_zxid, items):
    buf = bytearray(encode_header(first_zxid))
    encode_entries(items, buf)
    h = fs.open(f"{V2}/log.{first_zxid:x}", create=True)
    fs.write(h, bytes(buf) + bytes(1000), 0)
    fs.fsync(h)
    fs.close(h)
    fs.fsync_dir(V2)


def test_gap_in_zxids_is_refused():
    fs, w, txns = _setup(n_batches=2)
    more = entries(w.txns(4))
    _write_segment(fs, more[1][0], more[1:])  # zxid 11 is missing
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    assert "gap" in str(exc.value) and "log.c" in str(exc.value) and "0xc" in str(exc.value)


def test_non_increasing_zxid_is_refused():
    fs, w, txns = _setup(n_batches=2)
    _write_segment(fs, 10, [(10, txns[9].encode())])
    with pytest.raises(CorruptDataError, match="does not increase"):
        recover("/d", fs=fs, extended_types=True)


def test_torn_segment_that_is_not_the_newest_is_refused():
    fs, w, txns = _setup(n_batches=4, roll_every=2)
    first = V2 + "/log.1"
    off = _offset_of(fs, first, 9)
    _poke(fs, first, off + ENTRY_HEADER + 1)  # the last entry of the older segment
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    assert first in str(exc.value) and f"offset {off}" in str(exc.value)
    assert "not the newest" in str(exc.value)


def test_log_that_does_not_reach_back_to_the_snapshot_is_refused():
    fs, w, txns = _setup(n_batches=4, roll_every=1)
    # a snapshot at zxid 10, then lose the segment holding 11..15
    w10 = Workload(21)
    w10.txns(10)
    write_snapshot(w10.tree, "/d", fs=fs)
    fs.unlink(V2 + "/log.b")
    fs.fsync_dir(V2)
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    msg = str(exc.value)
    assert "does not reach back" in msg and "snapshot.a" in msg and "log.10" in msg


def test_no_snapshot_and_log_starting_late_is_refused():
    fs = SimulatedFS()
    w = Workload(5)
    t = w.txns(8)
    fs.makedirs(V2)
    _write_segment(fs, 4, entries(t[3:]))
    with pytest.raises(CorruptDataError, match="does not reach back"):
        recover("/d", fs=fs, extended_types=True)


def _corrupt_file(fs, path, offset):
    _poke(fs, path, offset)


def test_corrupt_newest_snapshot_uses_older_one(caplog):
    fs = SimulatedFS()
    w = Workload(8)
    log = TxnLog("/d", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    txns = []
    snaps = []
    for _i in range(3):
        b = w.txns(10)
        txns += b
        log.write_batch(entries(b))
        snaps.append(write_snapshot(w.tree, "/d", fs=fs))
        log.roll()
    last = w.txns(5)
    log.write_batch(entries(last))
    log.close()
    _corrupt_file(fs, snaps[-1], 100)
    with caplog.at_level(logging.WARNING, logger="zabby.storage"):
        tree, report = recover("/d", fs=fs, extended_types=True)
    assert report.snapshot == snaps[1] and report.snapshot_zxid == 20
    assert report.replayed == 15 and report.skipped_snapshots == [snaps[-1]]
    assert_same_tree(tree, w.tree)
    assert any(snaps[-1] in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # and if the log no longer covers the older snapshot: refuse, naming both
    fs.unlink(V2 + "/log.15")
    fs.fsync_dir(V2)
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    assert snaps[-1] in str(exc.value) and "does not reach back" in str(exc.value)


@pytest.mark.parametrize("offset", [3, 30, 60, -10, -3])
def test_corrupt_only_snapshot_is_refused(offset):
    fs = SimulatedFS()
    w = Workload(9)
    w.txns(30)
    path = write_snapshot(w.tree, "/d", fs=fs)
    size = fs.file_size(path)
    _corrupt_file(fs, path, offset % size)
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    msg = str(exc.value)
    assert path in msg and "offset" in msg and "no older valid snapshot" in msg


def test_truncated_snapshot_is_refused():
    fs = SimulatedFS()
    w = Workload(9)
    w.txns(30)
    path = write_snapshot(w.tree, "/d", fs=fs)
    h = fs.open(path)
    fs.truncate(h, fs.size(h) - 7)
    fs.fsync(h)
    with pytest.raises(CorruptDataError, match="trailer"):
        recover("/d", fs=fs, extended_types=True)


def test_older_snapshot_is_not_used_when_the_log_skips_what_the_newest_held():
    """A member synced by a snapshot from the leader has that snapshot and a log that
    starts after it. With that snapshot damaged, an older one (here the empty tree's)
    plus the log would give a tree missing every txn up to the leader's snapshot --
    and the gap is invisible when the log's first txn opens a new epoch (it may follow
    any older zxid). Recovery must refuse instead (found by the whole-server
    simulation, seed 4818: such a member rejoined with an empty tree)."""
    fs = SimulatedFS()
    old = write_snapshot(Workload(1).tree, "/d", fs=fs)  # snapshot.0, as a new server takes
    w = Workload(5)
    w.txns(12)  # what the leader's snapshot holds (epoch 0): never in this log
    snap = write_snapshot(w.tree, "/d", fs=fs)
    w.zxid = 1 << 32  # the next epoch's txns follow, from counter 1
    log = TxnLog("/d", fs=fs, prealloc_bytes=4096)
    log.open_for_append(12)
    log.write_batch(entries(w.txns(6)))
    log.close()
    tree, report = recover("/d", fs=fs, extended_types=True)  # intact: fine
    assert report.snapshot == snap
    assert_same_tree(tree, w.tree)
    _corrupt_file(fs, snap, 100)
    with pytest.raises(CorruptDataError) as exc:
        recover("/d", fs=fs, extended_types=True)
    assert snap in str(exc.value) and old in str(exc.value)
    assert "does not hold zxid 0xc" in str(exc.value)


def _rewrite_last_entry(fs, path, off, zxid, payload) -> int:
    one = bytearray()
    encode_entries([(zxid, payload)], one)
    h = fs.open(path)
    fs.write(h, bytes(one), off)
    fs.fsync(h)
    fs.close(h)
    return off + len(one)


def test_torn_last_entry_whose_lost_end_held_one_set_bit_is_a_torn_tail():
    """A power loss kept all of the last write but its last byte, 0x01. Putting that
    one bit back matches the checksum, as it would for a flipped bit -- but the bit
    lies in the zeros the entry now ends in, which is what a torn write leaves: it is
    a torn tail, not refused (found by the whole-server simulation, seed 3616: a
    member refused to start after a blackout). A bit cleared before an entry's
    trailing zeros is damage, and refused."""
    fs, _w, txns = _setup()
    path = V2 + "/log.1"
    off = _offset_of(fs, path, len(txns) - 1)
    end = _offset_of(fs, path, len(txns))
    data = fs.content(path)
    zxid = int.from_bytes(data[off + 4 : off + 12], "little")
    body = bytes(data[off + ENTRY_HEADER : end - 4])
    # an entry whose last field is a small int (00 00 00 01), torn before its last byte
    end = _rewrite_last_entry(fs, path, off, zxid, body + b"\0\0\0\1")
    _poke(fs, path, end - 1, 0)
    _tree, report = recover("/d", fs=fs, extended_types=True, repair_tail=False)
    assert report.log_last_zxid == zxid - 1
    # an entry that really ends in zeros, with a bit cleared in the middle: refused
    _rewrite_last_entry(fs, path, off, zxid, body + b"\0\0\0\0")
    i = next(i for i, b in enumerate(body) if b)
    _poke(fs, path, off + ENTRY_HEADER + i, body[i] & (body[i] - 1))
    with pytest.raises(CorruptDataError, match="not a torn write"):
        recover("/d", fs=fs, extended_types=True, repair_tail=False)
