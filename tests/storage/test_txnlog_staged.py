"""TxnLog.stage_unsynced: batches encoded on the loop, written and fsynced by
someone else (the server's writer process), on a simulated disk.

What must hold: staging writes nothing; a staged batch is not in `last_zxid`
or `iter_entries` until `appended_synced`; batches staged one after another
land back to back (no hole); a crash before the fsync loses them and recovery
sees a clean log; a failed write is cut back by the next `write_batch`; a
batch over `limit` is refused without reserving anything.
"""

from __future__ import annotations

from zabby.storage import TxnLog
from zabby.storage.fs import SimulatedFS
from zabby.storage.txnlog import SEGMENT_HEADER

from .helpers import Workload, entries

V2 = "/logs/version-2"


def _log(fs: SimulatedFS) -> tuple[TxnLog, Workload]:
    w = Workload(7)
    log = TxnLog("/logs", fs=fs, prealloc_bytes=1 << 16)
    log.open_for_append(0)
    log.write_batch(entries(w.txns(3)))  # starts the segment: staging needs one
    return log, w


def test_staging_writes_nothing_and_reads_see_only_synced_batches():
    fs = SimulatedFS()
    log, w = _log(fs)
    first = list(log.iter_entries())
    path = log.current_path
    before = fs.content(path)
    a, b = entries(w.txns(4)), entries(w.txns(2))
    h1, off1, data1, tok1 = log.stage_unsynced(a)
    h2, off2, data2, tok2 = log.stage_unsynced(b)
    assert fs.content(path) == before, "stage_unsynced wrote to the file"
    assert off2 == off1 + len(data1), "staged batches must land back to back"
    assert log.unsynced and log.last_zxid == 3
    fs.write(h1, data1, off1)
    fs.write(h2, data2, off2)
    # written but not synced: still not there for readers
    assert list(log.iter_entries()) == first
    fs.fsync(h1, data_only=True)
    log.appended_synced(tok1)
    assert log.last_zxid == a[-1][0]
    assert list(log.iter_entries()) == first + a
    log.appended_synced(tok2)
    assert not log.unsynced
    assert list(log.iter_entries()) == first + a + b
    # and the next write_batch continues after them
    c = entries(w.txns(2))
    log.write_batch(c)
    log.close()
    assert list(TxnLog("/logs", fs=fs).iter_entries()) == first + a + b + c


def test_a_crash_before_the_fsync_keeps_at_most_a_clean_prefix():
    fs = SimulatedFS()
    log, w = _log(fs)
    first = list(log.iter_entries())
    staged = entries(w.txns(5))
    h, off, data, _tok = log.stage_unsynced(staged)
    fs.write(h, data, off)
    fs.crash(tear_at=len(data) // 2)  # the writer got half of it out
    again = TxnLog("/logs", fs=fs)
    got = list(again.iter_entries())
    # whole entries of the unacknowledged batch may survive, a torn one never does
    assert got[:3] == first and got[3:] == staged[: len(got) - 3] and len(got) < 3 + 5
    last = got[-1][0]
    again.open_for_append(last)  # cuts the torn entry off
    more = [(last + 1, b"after the crash")]
    again.write_batch(more)
    assert list(again.iter_entries()) == got + more


def test_a_failed_write_is_cut_back_by_the_next_write_batch():
    fs = SimulatedFS()
    log, w = _log(fs)
    first = list(log.iter_entries())
    h, off, data, _tok = log.stage_unsynced(entries(w.txns(5)))
    fs.write(h, data[: len(data) // 3], off)  # the writer failed part way
    log.unsynced_failed()
    assert not log.unsynced and log.last_zxid == 3
    retry = [(4, b"again-4"), (5, b"again-5")]
    log.write_batch(retry)
    log.close()
    assert list(TxnLog("/logs", fs=fs).iter_entries()) == first + retry


def test_over_the_limit_or_without_room_nothing_is_reserved():
    fs = SimulatedFS()
    log, w = _log(fs)
    batch = entries(w.txns(3))
    assert log.stage_unsynced(batch, limit=10) is None
    assert not log.unsynced
    staged = log.stage_unsynced(batch, limit=1 << 20)
    assert staged is not None and staged[1] > SEGMENT_HEADER
    big = [(batch[-1][0] + 1, b"x" * (1 << 17))]  # more than the preallocated room
    assert log.stage_unsynced(big) is None
    log.roll()
    assert log.stage_unsynced([(big[0][0], b"y")]) is None  # a new segment: write_batch
