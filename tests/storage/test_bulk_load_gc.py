"""bulk_load_gc: the cyclic GC during and after a snapshot load or a log replay.

During: off (it would walk the growing heap again and again). After: on again
if it was on, and what the load made sits in the oldest generation, not the
youngest (else the first collections after a 1M-znode load walk it three times:
a gen0, a gen1 and a full collection). Off stays off; frozen objects stay frozen.
"""

from __future__ import annotations

import gc

import pytest

from zabby.storage import TxnLog, load_snapshot, recover, write_snapshot
from zabby.storage.fs import SimulatedFS
from zabby.storage.snapshot import bulk_load_gc

from .helpers import Workload, assert_same_tree, entries


@pytest.fixture(autouse=True)
def _gc_state():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if was:
        gc.enable()
    else:  # pragma: no cover
        gc.disable()


def _generation_of(obj) -> int | None:
    for g in range(3):
        if any(o is obj for o in gc.get_objects(generation=g)):
            return g
    return None


def _some_nodes(tree, n: int = 5) -> list:
    out = []
    for _path, node in tree.iter_nodes():
        if gc.is_tracked(node):
            out.append(node)
        if len(out) >= n:
            break
    assert out
    return out


def _snapshot_fs() -> tuple[SimulatedFS, str, Workload]:
    fs = SimulatedFS()
    w = Workload(3)
    w.txns(300)
    return fs, write_snapshot(w.tree, "/d", fs=fs), w


def test_a_loaded_snapshot_lands_in_the_oldest_generation():
    fs, path, w = _snapshot_fs()
    gc.collect()
    tree = load_snapshot(path, fs=fs, extended_types=True)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert gc.get_count()[0] < 700  # the load's objects are not counted as young
    for node in _some_nodes(tree):
        assert _generation_of(node) == 2
    assert_same_tree(w.tree, tree)


def test_a_replay_runs_with_gc_off_and_lands_in_the_oldest_generation():
    fs = SimulatedFS()
    w = Workload(4)
    log = TxnLog("/d", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    write_snapshot(Workload(4).tree, "/d", fs=fs)  # the empty tree at zxid 0
    for _ in range(5):
        log.write_batch(entries(w.txns(40)))
    log.close()
    seen: list[tuple[str, bool]] = []
    tree, report = recover("/d", fs=fs, extended_types=True, progress=lambda phase, done, total:
                           seen.append((phase, gc.isenabled())))
    assert report.replayed == 200
    assert ("replay", False) in seen
    assert all(not on for _phase, on in seen)  # off for the whole recovery
    assert gc.isenabled()
    for node in _some_nodes(tree):
        assert _generation_of(node) == 2
    assert_same_tree(w.tree, tree)


def test_gc_left_off_when_it_was_off():
    fs, path, _ = _snapshot_fs()
    gc.disable()
    load_snapshot(path, fs=fs)
    assert not gc.isenabled()
    with bulk_load_gc():
        pass
    assert not gc.isenabled()


def test_someone_elses_frozen_objects_stay_frozen():
    fs, path, _ = _snapshot_fs()
    mine = [[i] for i in range(20)]  # lists: tracked by the cyclic GC
    gc.freeze()
    assert all(_generation_of(x) is None for x in mine)  # in no generation: frozen
    load_snapshot(path, fs=fs)
    assert gc.isenabled()
    # still frozen (these objects, not the frozen count: others frozen with them may be
    # freed meanwhile)
    assert all(_generation_of(x) is None for x in mine)


def test_kept_frozen_when_the_process_is_the_servers(monkeypatch):
    """KEEP_FROZEN (set by `zabby serve`, server.app.run): what the load made stays
    frozen -- a full collection never walks the recovered tree -- and is still freed
    by its refcount once dropped."""
    import zabby.storage.snapshot as snapshot

    monkeypatch.setattr(snapshot, "KEEP_FROZEN", True)
    gc.unfreeze()
    with bulk_load_gc():
        made = [[i] for i in range(5000)]  # lists: tracked by the cyclic GC
    frozen = gc.get_freeze_count()
    assert frozen >= 5000
    assert all(_generation_of(x) is None for x in made[:50])  # in no generation
    gc.collect()
    assert all(_generation_of(x) is None for x in made[:50])  # a collection kept them so
    frozen = gc.get_freeze_count()
    del made  # refcounts free them, frozen or not
    assert gc.get_freeze_count() <= frozen - 5000


def test_a_server_process_turns_keeping_frozen_on_unless_set(monkeypatch):
    import zabby.storage.snapshot as snapshot
    from zabby.server.app import _keep_tree_frozen
    from zabby.server.durability import GroupCommitter

    monkeypatch.setattr(snapshot, "KEEP_FROZEN", None)
    monkeypatch.setattr(GroupCommitter, "keep_frozen", None)
    _keep_tree_frozen()
    assert snapshot.KEEP_FROZEN is True and GroupCommitter.keep_frozen is True
    # a benchmark's explicit choice stands
    monkeypatch.setattr(snapshot, "KEEP_FROZEN", False)
    monkeypatch.setattr(GroupCommitter, "keep_frozen", False)
    _keep_tree_frozen()
    assert snapshot.KEEP_FROZEN is False and GroupCommitter.keep_frozen is False
