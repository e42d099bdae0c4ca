"""Recovery's progress callback: rising positions per phase, each ending at its total."""

from __future__ import annotations

from zabby.storage import TxnLog, check, recover, write_snapshot
from zabby.wire.constants import Op
from zabby.wire.records import CreateRequest

from .helpers import OPEN, Workload, assert_same_tree, entries


def _data_dir(tmp_path, before: int, after: int, znodes: int = 0):
    """A snapshot of `before` txns' tree plus `znodes` more znodes, then `after`
    logged txns."""
    d = str(tmp_path / "data")
    w = Workload(7)
    log = TxnLog(d, prealloc_bytes=1 << 16)
    log.open_for_append(0)
    for i in range(0, before, 500):
        log.write_batch(entries(w.txns(min(500, before - i))))
    batch = [w._run(1, Op.CREATE, CreateRequest("/many", b"", OPEN, 0))]
    for i in range(znodes):
        batch.append(w._run(1, Op.CREATE, CreateRequest(f"/many/n{i}", b"v", OPEN, 0)))
    log.write_batch(entries(batch))
    write_snapshot(w.tree, d)
    log.roll()
    for i in range(0, after, 500):
        log.write_batch(entries(w.txns(min(500, after - i))))
    log.close()
    return d, w


def _by_phase(calls):
    phases: dict[str, list[tuple[int, int]]] = {}
    for phase, done, total in calls:
        phases.setdefault(phase, []).append((done, total))
    return phases


def test_positions_rise_to_the_total(tmp_path):
    # enough znodes for several snapshot chunks (4,096 each), enough txns for several
    # replay reports (every 4,096)
    d, w = _data_dir(tmp_path, 2_000, 9_000, znodes=10_000)
    assert w.tree.node_count > 2 * 4096
    calls = []
    tree, report = recover(d, extended_types=True, progress=lambda *a: calls.append(a))
    assert_same_tree(tree, w.tree)
    phases = _by_phase(calls)
    assert list(phases) == ["snapshot", "scan", "replay"]  # in this order, each once
    for phase, seq in phases.items():
        totals = {t for _d, t in seq}
        assert len(totals) == 1, (phase, totals)
        total = totals.pop()
        done = [d for d, _t in seq]
        assert done[0] == 0 and done[-1] == total, (phase, done[:3], done[-3:], total)
        if phase == "scan":
            assert all(a <= b for a, b in zip(done, done[1:], strict=False))
        else:
            assert all(a < b for a, b in zip(done, done[1:], strict=False)), (phase, done)
            assert len(done) > 2, phase  # reported along the way, not only at the ends
    assert phases["replay"][-1] == (report.replayed, report.replayed) == (9_000, 9_000)


def test_snapshot_total_is_the_snapshot_node_count(tmp_path):
    d, w = _data_dir(tmp_path, 3_000, 0)
    calls = []
    recover(d, extended_types=True, progress=lambda *a: calls.append(a))
    phases = _by_phase(calls)
    assert phases["snapshot"][-1] == (w.tree.node_count, w.tree.node_count)
    assert phases["replay"] == [(0, 0)]  # nothing after the snapshot: starts at its end


def test_empty_directory_and_no_callback(tmp_path):
    calls = []
    tree, report = recover(str(tmp_path / "empty"), progress=lambda *a: calls.append(a))
    assert report.snapshot is None and report.replayed == 0
    assert "snapshot" not in _by_phase(calls)
    for _phase, seq in _by_phase(calls).items():
        assert seq[-1][0] == seq[-1][1]
    # without a callback nothing changes
    d, w = _data_dir(tmp_path, 600, 600)
    tree, report = recover(d, extended_types=True)
    assert_same_tree(tree, w.tree)


def test_check_passes_progress_through(tmp_path):
    d, _w = _data_dir(tmp_path, 600, 600)
    calls = []
    result = check(d, extended_types=True, say=lambda s: None,
                   progress=lambda *a: calls.append(a))
    assert result.ok
    assert ("replay", 600, 600) in calls
