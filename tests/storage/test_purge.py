"""Retention: purge keeps what recovery needs."""

from __future__ import annotations

import pytest

from zabby.storage import TxnLog, list_snapshots, purge, recover, write_snapshot
from zabby.storage.fs import SimulatedFS

from .helpers import Workload, assert_same_tree, entries


def _history(fs, n_snaps=6, log_dir="/logs", roll_at_snapshot=True, seed=31):
    w = Workload(seed)
    log = TxnLog(log_dir, fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    snaps = []
    for i in range(n_snaps):
        for _ in range(3):
            log.write_batch(entries(w.txns(4)))
        if i == 2:
            log.roll()  # a roll that is not at a snapshot
        snaps.append(write_snapshot(w.tree, "/data", fs=fs))
        if roll_at_snapshot:
            log.roll()
    log.write_batch(entries(w.txns(5)))
    log.close()
    return w, snaps


@pytest.mark.parametrize("roll_at_snapshot", [True, False])
@pytest.mark.parametrize("keep", [3, 4, 10])
def test_purge_keeps_what_recovery_needs(keep, roll_at_snapshot):
    fs = SimulatedFS()
    w, snaps = _history(fs, roll_at_snapshot=roll_at_snapshot)
    before, _ = recover("/data", "/logs", fs=fs, extended_types=True)
    segs_before = fs.listdir("/logs/version-2")
    deleted = purge("/data", "/logs", keep, fs=fs)
    kept_snaps = [p for _z, p in list_snapshots("/data", fs)]
    assert kept_snaps == list(reversed(snaps))[:keep]
    assert set(deleted) >= set(snaps[: max(0, len(snaps) - keep)])
    after, report = recover("/data", "/logs", fs=fs, extended_types=True)
    assert_same_tree(before, after)
    assert_same_tree(after, w.tree)
    if keep == 3:
        assert any(p.startswith("/logs/") for p in deleted)
    # every kept snapshot is still usable: recovery from the oldest kept one works
    for _z, p in list_snapshots("/data", fs)[:-1]:
        fs.unlink(p)
    oldest, rep = recover("/data", "/logs", fs=fs, extended_types=True)
    assert rep.snapshot == kept_snaps[-1]
    assert_same_tree(oldest, w.tree)
    fs.crash()  # the deletions were made durable (directory fsynced)
    assert set(fs.listdir("/logs/version-2")) <= set(segs_before)


def test_purge_does_not_count_corrupt_snapshots():
    fs = SimulatedFS()
    w, snaps = _history(fs)
    # damage the two newest snapshots: the three valid ones before them are kept
    for p in snaps[-2:]:
        h = fs.open(p)
        fs.write(h, b"\xff", 60)
        fs.fsync(h)
    deleted = purge("/data", "/logs", 3, fs=fs)
    assert snaps[-1] not in deleted and snaps[-2] not in deleted
    assert not set(snaps[1:4]) & set(deleted)
    assert snaps[0] in deleted
    tree, report = recover("/data", "/logs", fs=fs, extended_types=True)
    assert report.snapshot == snaps[-3]
    assert_same_tree(tree, w.tree)


def test_purge_with_too_few_valid_snapshots_deletes_no_snapshot_or_log():
    fs = SimulatedFS()
    w, snaps = _history(fs, n_snaps=2)
    assert purge("/data", "/logs", 3, fs=fs) == []


def test_purge_removes_leftover_temp_files_and_rejects_small_n():
    fs = SimulatedFS()
    _history(fs)
    h = fs.open("/data/version-2/snapshot.99.tmp", create=True)
    fs.write(h, b"half")
    assert "/data/version-2/snapshot.99.tmp" in purge("/data", "/logs", 3, fs=fs)
    with pytest.raises(ValueError):
        purge("/data", "/logs", 2, fs=fs)
