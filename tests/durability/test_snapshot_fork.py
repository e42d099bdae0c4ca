"""The snapshot fork (GroupCommitter.take_snapshot) and the cyclic GC (issue 14 item 6).

While the forked child writes the snapshot, every page the server writes is
copied; a full collection in the server would write to every object. So the
server's objects are frozen (gc.freeze) just before the fork and unfrozen once
the child is reaped -- also when the child fails or the fork does -- unless
someone else had frozen them first. With keep_frozen (on in a server's own
process: server.app.run) they stay frozen, still freed by their refcounts. Each test bounds its wait and kills
the child it started if something goes wrong.
"""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest

import zabby.server.durability as durability
from zabby.server.durability import GroupCommitter
from zabby.storage import TxnLog, load_snapshot
from zabby.storage.snapshot import snapshot_path
from zabby.tree import DataTree, RequestContext
from zabby.wire.constants import Op
from zabby.wire.records import ACL, CreateRequest, DeleteRequest, Id

OPEN = [ACL(31, Id("world", "anyone"))]


@pytest.fixture(autouse=True)
def _unfrozen():
    if gc.get_freeze_count():  # pragma: no cover - another test left objects frozen
        gc.unfreeze()
    yield
    gc.unfreeze()


def _apply(t: DataTree, op: int, body) -> None:
    z = t.last_zxid + 1
    t.apply(t.prepare(op, body, RequestContext(1, z, z, 1000 + z)))


def _tree(n: int = 50) -> DataTree:
    t = DataTree()
    for i in range(1, n + 1):
        _apply(t, Op.CREATE, CreateRequest(f"/n{i}", b"x" * 10, OPEN, 0))
    return t


def _committer(tmp_path, tree) -> GroupCommitter:
    txn_log = TxnLog(str(tmp_path / "log"), prealloc_bytes=1 << 16)
    txn_log.open_for_append(0)
    return GroupCommitter(txn_log, snap_dir=str(tmp_path / "snap"), snap_count=1 << 30,
                          tree_getter=lambda: tree)


def _slow_child(monkeypatch, fail: bool = False) -> None:
    """The child sleeps before it writes (so the test sees it alive), or fails."""
    real = durability.write_snapshot

    def slow(tree, snap_dir, **kw):
        time.sleep(0.5)
        if fail:
            raise OSError("no room")
        return real(tree, snap_dir, **kw)

    monkeypatch.setattr(durability, "write_snapshot", slow)


@pytest.fixture
def unfreezing(monkeypatch):
    """keep_frozen off (as in a shared process): frozen only while the child lives."""
    monkeypatch.setattr(GroupCommitter, "keep_frozen", False)


def _wait_reaped(c: GroupCommitter, pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while c._snap_child is not None:
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)  # the reaper thread reaps it
            except ProcessLookupError:
                pass
            raise AssertionError("the snapshot child was not reaped in time")
        time.sleep(0.01)


def _frozen(objs) -> int:
    """How many of these tracked objects are frozen (gc.get_objects() lists every
    generation but the permanent one)."""
    young = {id(o) for o in gc.get_objects()}
    return sum(id(o) not in young for o in objs)


def _snapshot(c: GroupCommitter):
    c.take_snapshot()
    pid = c._snap_child
    assert pid is not None
    return pid


def test_kept_frozen_after_the_child_and_still_freed_by_refcount(tmp_path, monkeypatch):
    _slow_child(monkeypatch)
    tree = _tree()
    c = _committer(tmp_path, tree)
    try:
        monkeypatch.setattr(GroupCommitter, "keep_frozen", True)
        pid = _snapshot(c)
        _wait_reaped(c, pid)
        assert c.snapshots_taken == 1
        frozen = gc.get_freeze_count()
        assert frozen >= tree.node_count  # still frozen: full collections skip the tree
        # a frozen node that is deleted is freed at once (its refcount), not kept
        for i in range(1, 41):
            _apply(tree, Op.DELETE, DeleteRequest(f"/n{i}", -1))
        assert gc.get_freeze_count() <= frozen - 40
        # the next snapshot freezes what is new since (here: the nodes made now). The
        # nodes themselves are looked for, not the frozen count: objects frozen earlier
        # may be freed meanwhile (in the whole suite it once grew by 28, not 30)
        for i in range(100, 130):
            _apply(tree, Op.CREATE, CreateRequest(f"/m{i}", b"y", OPEN, 0))
        new_nodes = [tree.get_node(f"/m{i}") for i in range(100, 130)]
        assert all(gc.is_tracked(n) for n in new_nodes)
        assert _frozen(new_nodes) == 0
        pid = _snapshot(c)
        _wait_reaped(c, pid)
        assert _frozen(new_nodes) == 30
        assert c.snapshots_taken == 2
    finally:
        c.close()


def test_frozen_while_the_child_lives_unfrozen_once_it_is_reaped(tmp_path, monkeypatch, unfreezing):
    _slow_child(monkeypatch)
    tree = _tree()
    c = _committer(tmp_path, tree)
    try:
        assert gc.get_freeze_count() == 0
        nodes = [tree.get_node(f"/n{i}") for i in range(1, 51)]
        pid = _snapshot(c)
        try:
            frozen = gc.get_freeze_count()
            # everything the server held at the fork, the tree's nodes included
            assert frozen >= tree.node_count
            assert _frozen(nodes) == len(nodes)
            assert c._snap_child == pid  # the child still runs (it sleeps 0.5 s)
            # a full collection now leaves the frozen objects alone (the nodes are
            # looked for, not the count: objects frozen with them may be freed meanwhile)
            gc.collect()
            assert _frozen(nodes) == len(nodes)
        finally:
            _wait_reaped(c, pid)
        assert gc.get_freeze_count() == 0
        assert c.snapshots_taken == 1
        t2 = load_snapshot(snapshot_path(str(tmp_path / "snap"), tree.last_zxid))
        assert t2.node_count == tree.node_count
    finally:
        c.close()


def test_unfrozen_when_the_child_fails(tmp_path, monkeypatch, unfreezing):
    _slow_child(monkeypatch, fail=True)
    c = _committer(tmp_path, _tree())
    try:
        pid = _snapshot(c)
        try:
            assert gc.get_freeze_count() > 0
        finally:
            _wait_reaped(c, pid)
        assert gc.get_freeze_count() == 0
        assert c.snapshots_taken == 0
    finally:
        c.close()


def test_unfrozen_when_the_fork_fails(tmp_path, monkeypatch, unfreezing):
    c = _committer(tmp_path, _tree())

    def no_fork():
        assert gc.get_freeze_count() > 0  # frozen before the fork
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    try:
        with pytest.raises(OSError):
            c.take_snapshot()
        assert gc.get_freeze_count() == 0
        assert c._snap_child is None
    finally:
        c.close()


def test_not_frozen_when_turned_off(tmp_path, monkeypatch):
    _slow_child(monkeypatch)
    monkeypatch.setattr(GroupCommitter, "freeze_gc", False)
    c = _committer(tmp_path, _tree())
    try:
        pid = _snapshot(c)
        try:
            assert gc.get_freeze_count() == 0
        finally:
            _wait_reaped(c, pid)
        assert c.snapshots_taken == 1
    finally:
        c.close()


def test_leaves_someone_elses_freeze_alone(tmp_path, monkeypatch, unfreezing):
    _slow_child(monkeypatch)
    tree = _tree()
    c = _committer(tmp_path, tree)
    nodes = [tree.get_node(f"/n{i}") for i in range(1, 51)]
    gc.freeze()
    assert _frozen(nodes) == len(nodes)
    try:
        pid = _snapshot(c)
        _wait_reaped(c, pid)
        # still frozen: not ours to unfreeze (the nodes are looked for, not the frozen
        # count, which other objects frozen with them lower as they are freed)
        assert _frozen(nodes) == len(nodes)
        assert c.snapshots_taken == 1
    finally:
        c.close()


def test_unfrozen_when_close_reaps_the_child_first(tmp_path, monkeypatch, unfreezing):
    _slow_child(monkeypatch)
    c = _committer(tmp_path, _tree())
    pid = _snapshot(c)
    assert gc.get_freeze_count() > 0
    c.close()  # waits for the child itself, racing the reaper thread
    deadline = time.monotonic() + 10
    while gc.get_freeze_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.get_freeze_count() == 0
    _wait_reaped(c, pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped, by one of the two
