"""Snapshots: exact round trips, compression, atomic write, snapshot + replay."""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zabby.storage import (
    StorageError,
    TxnLog,
    load_snapshot,
    read_snapshot_info,
    recover,
    write_snapshot,
)
from zabby.storage.fs import SimulatedFS
from zabby.tree import DataTree, RequestContext
from zabby.tree import znode as zn
from zabby.wire.constants import CreateMode, Op
from zabby.wire.records import CreateRequest, CreateTTLRequest, DeleteRequest, SetDataRequest

from .helpers import DIGEST, IP, OPEN, Workload, assert_same_tree, entries, tree_state


def _all_kinds_tree() -> DataTree:
    t = DataTree(extended_types=True)
    z = 0

    def run(sid, op, body):
        nonlocal z
        z += 1
        txn = t.prepare(op, body, RequestContext(sid, z, z, 1000 + z))
        assert txn.type != Op.ERROR, (op, body, txn)
        t.apply(txn)
        return txn

    s1, s2 = 0x100000001, 0x7FFF000000000002
    run(s1, Op.CREATE_SESSION, 30000)
    run(s2, Op.CREATE_SESSION, 4000)
    run(s1, Op.CREATE, CreateRequest("/app", b"root data", OPEN, 0))
    run(s1, Op.CREATE, CreateRequest("/app/eph", b"e", OPEN, int(CreateMode.EPHEMERAL)))
    run(s2, Op.CREATE, CreateRequest("/app/eseq-", b"", OPEN, int(CreateMode.EPHEMERAL_SEQUENTIAL)))
    run(s1, Op.CREATE, CreateRequest("/app/seq-", None, DIGEST, int(CreateMode.PERSISTENT_SEQUENTIAL)))
    run(s1, Op.CREATE_CONTAINER, CreateRequest("/box", b"c", OPEN, int(CreateMode.CONTAINER)))
    run(s1, Op.CREATE, CreateRequest("/box/item", b"i", IP, 0))
    run(s1, Op.CREATE_TTL, CreateTTLRequest("/ttl", b"t", OPEN, int(CreateMode.PERSISTENT_WITH_TTL), 5000))
    run(s1, Op.CREATE_TTL, CreateTTLRequest("/ttl-seq-", b"t", OPEN,
                                            int(CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL), 1))
    run(s1, Op.CREATE, CreateRequest("/binary", bytes(range(256)) * 4, DIGEST, 0))
    run(s1, Op.CREATE, CreateRequest("/ünïcødé-名前", b"u", OPEN, 0))
    for i in range(20):  # enough children to grow the Java HashSet capacity
        run(s1, Op.CREATE, CreateRequest(f"/app/c{i}", str(i).encode(), OPEN, 0))
    for i in range(0, 20, 3):
        run(s1, Op.DELETE, DeleteRequest(f"/app/c{i}", -1))
    run(s1, Op.SET_DATA, SetDataRequest("/app", b"changed", 0))
    return t


@pytest.mark.parametrize("compress", [False, True])
def test_all_node_kinds_survive_exactly(compress):
    fs = SimulatedFS()
    t = _all_kinds_tree()
    kinds = {zn.ephemeral_kind(n.ephemeral_owner, True) for _p, n in t.iter_nodes()}
    assert kinds == {zn.VOID, zn.NORMAL, zn.CONTAINER, zn.TTL}
    assert t.get_node("/app/seq-0000000002").data is None
    path = write_snapshot(t, "/d", fs=fs, compress=compress)
    assert path == f"/d/version-2/snapshot.{t.last_zxid:x}"
    assert fs.listdir("/d/version-2") == [os.path.basename(path)]  # no temp file left
    info = read_snapshot_info(path, fs=fs)
    assert info.zxid == t.last_zxid and info.node_count == t.node_count
    assert info.session_count == 2 and info.compressed == compress
    t2 = load_snapshot(path, fs=fs, extended_types=True)
    assert_same_tree(t, t2)
    st_ = tree_state(t2)
    assert st_["ephemerals"] and st_["containers"] == {"/box"} and len(st_["ttls"]) == 2
    # the restored tree keeps working identically
    w1, w2 = Workload(1), Workload(1)
    w1.tree, w2.tree = t, t2
    w1.zxid = w2.zxid = t.last_zxid
    for _ in range(100):
        a, b = w1.step(), w2.step()
        assert a == b
    assert_same_tree(t, t2)


def test_compression_shrinks_and_checksums_cover_content():
    fs = SimulatedFS()
    w = Workload(2)
    for _ in range(300):
        w.step()
    p1 = write_snapshot(w.tree, "/a", fs=fs)
    p2 = write_snapshot(w.tree, "/b", fs=fs, compress=True)
    assert fs.file_size(p2) < fs.file_size(p1)
    assert_same_tree(load_snapshot(p1, fs=fs, extended_types=True),
                     load_snapshot(p2, fs=fs, extended_types=True))


def test_real_fs_round_trip_and_no_temp_file(tmp_path):
    t = _all_kinds_tree()
    p = write_snapshot(t, str(tmp_path), compress=True)
    assert os.listdir(tmp_path / "version-2") == [os.path.basename(p)]
    assert_same_tree(t, load_snapshot(p, extended_types=True))


def test_snapshot_from_forked_child(tmp_path):
    t = _all_kinds_tree()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            write_snapshot(t, str(tmp_path))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    t2 = load_snapshot(str(tmp_path / "version-2" / f"snapshot.{t.last_zxid:x}"), extended_types=True)
    assert_same_tree(t, t2)


@pytest.mark.parametrize("op", ["write", "fsync", "rename", "fsync_dir"])
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_snapshot_write_failure_leaves_nothing(op, err):
    fs = SimulatedFS()
    w = Workload(4)
    w.txns(50)
    fs.inject(op, err)
    with pytest.raises(StorageError):
        write_snapshot(w.tree, "/d", fs=fs)
    names = fs.listdir("/d/version-2")
    if op == "fsync_dir":
        # the rename happened; the entry is not durable until a directory fsync
        assert names == [f"snapshot.{w.tree.last_zxid:x}"]
        fs.crash()
        assert fs.listdir("/d/version-2") == []
    else:
        assert names == []


def test_snapshot_without_dir_fsync_is_lost_in_a_crash():
    fs = SimulatedFS()
    w = Workload(4)
    w.txns(10)
    p = write_snapshot(w.tree, "/d", fs=fs)
    fs.crash()
    assert fs.exists(p)  # written durably: file fsynced, renamed, directory fsynced


def test_snapshot_plus_log_replay_equals_applying_everything():
    fs = SimulatedFS()
    w = Workload(5)
    log = TxnLog("/d", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    for i in range(12):
        log.write_batch(entries(w.txns(17)))
        if i % 4 == 3:
            write_snapshot(w.tree, "/d", fs=fs, compress=i % 8 == 3)
            log.roll()
    log.write_batch(entries(w.txns(9)))
    log.close()
    fs.crash()
    tree, report = recover("/d", fs=fs, extended_types=True)
    assert report.snapshot_zxid == 12 * 17 and report.replayed == 9
    assert_same_tree(tree, w.tree)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 250), snap_at=st.floats(0, 1),
       compress=st.booleans())
def test_property_snapshot_then_replay(seed, n, snap_at, compress):
    fs = SimulatedFS()
    w = Workload(seed)
    txns = w.txns(n)
    cut = int(n * snap_at)
    model = Workload(seed)
    model.txns(cut)
    log = TxnLog("/d", fs=fs, prealloc_bytes=4096)
    log.open_for_append(0)
    if txns:
        log.write_batch(entries(txns))
    write_snapshot(model.tree, "/d", fs=fs, compress=compress)
    tree, report = recover("/d", fs=fs, extended_types=True)
    assert report.snapshot_zxid == cut and report.replayed == n - cut
    assert_same_tree(tree, w.tree)


def test_snapshot_bytes_round_trip_equals_file_round_trip(tmp_path):
    """What a leader sends as SNAP is the snapshot file's own format."""
    from zabby.storage.snapshot import snapshot_bytes, snapshot_from_bytes
    from zabby.tree import DataTree, RequestContext
    from zabby.wire import ACL, Id, Op
    from zabby.wire.records import CreateRequest

    t = DataTree()
    acl = [ACL(31, Id("world", "anyone"))]
    for i, path in enumerate(["/a", "/a/b", "/c"], start=1):
        t.apply(t.prepare(Op.CREATE, CreateRequest(path, b"v%d" % i, acl, 0),
                          RequestContext(0, i, i, 1000 + i, [])))
    for compress in (True, False):
        t2 = snapshot_from_bytes(snapshot_bytes(t, compress=compress))
        assert t2.last_zxid == t.last_zxid == 3
        for path in ["/a", "/a/b", "/c", "/zookeeper"]:
            assert t2.get_node(path).data == t.get_node(path).data
            assert t2.stat(path) == t.stat(path)
    damaged = bytearray(snapshot_bytes(t))
    damaged[60] ^= 0xFF
    import pytest

    from zabby.storage import CorruptDataError
    with pytest.raises(CorruptDataError):
        snapshot_from_bytes(bytes(damaged))


class _Recording(SimulatedFS):
    """SimulatedFS that records the bytes written between fdatasyncs of a file."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[int] = [0]  # bytes written since the last (data) sync, per sync

    def write(self, h, data, offset=None):
        super().write(h, data, offset)
        self.runs[-1] += len(data)

    def fsync(self, h, data_only=False):
        super().fsync(h, data_only)
        self.runs.append(0)


def test_snapshot_is_synced_as_it_is_written(monkeypatch):
    # issue 14 item 6: one fsync of a whole big snapshot at the end stalled every log
    # fdatasync behind it; the writer syncs every SYNC_EVERY bytes instead
    import zabby.storage.snapshot as snap

    monkeypatch.setattr(snap, "SYNC_EVERY", 16 << 10)
    monkeypatch.setattr(snap, "WRITE_BUFFER", 4 << 10)
    monkeypatch.setattr(snap, "CHUNK_NODES", 8)
    t = DataTree()
    for z in range(1, 301):
        txn = t.prepare(Op.CREATE, CreateRequest(f"/n{z}", bytes([z % 251]) * 1024, OPEN, 0),
                        RequestContext(1, z, z, 1000 + z))
        t.apply(txn)
    fs = _Recording()
    p = write_snapshot(t, "/d", fs=fs)
    size = fs.file_size(p)
    assert size > 300 << 10
    written = [n for n in fs.runs if n]
    assert sum(written) == size
    # between two syncs: SYNC_EVERY plus at most one flush (a buffer and the part
    # that overflowed it: here a chunk's 8 KiB of data)
    bound = snap.SYNC_EVERY + snap.WRITE_BUFFER + (8 << 10) + 1024
    assert max(written) <= bound
    assert len(written) >= size // bound
    assert_same_tree(t, load_snapshot(p, fs=fs))


def test_nodes_are_written_in_creation_order_and_rebuilt_with_their_sibling_order():
    """The writer walks the nodes in creation order (not depth first): a parent always
    comes before its children, and siblings in the order of the parent's children
    dict, which deletes and re-creates reorder. Restore must rebuild that order."""
    from zabby.storage.snapshot import snapshot_bytes, snapshot_from_bytes

    t = DataTree()
    z = 0

    def run(op, body):
        nonlocal z
        z += 1
        txn = t.prepare(op, body, RequestContext(1, z, z, 1000 + z))
        assert txn.type != Op.ERROR, (op, body)
        t.apply(txn)

    for p in ("/a", "/b", "/a/x", "/c", "/a/y", "/b/p", "/a/x/deep"):
        run(Op.CREATE, CreateRequest(p, p.encode(), OPEN, 0))
    run(Op.DELETE, DeleteRequest("/a/x/deep", -1))
    run(Op.DELETE, DeleteRequest("/a/x", -1))
    run(Op.CREATE, CreateRequest("/a/x", b"again", OPEN, 0))  # now after /a/y
    run(Op.CREATE, CreateRequest("/a/x/deep", b"d", OPEN, 0))
    run(Op.DELETE, DeleteRequest("/b/p", -1))
    run(Op.DELETE, DeleteRequest("/b", -1))
    run(Op.CREATE, CreateRequest("/b", b"b2", OPEN, 0))  # now after /c
    order = [p for p, _ in t.nodes_in_creation_order()]
    assert order != [p for p, _ in t.iter_nodes()]  # the two walks differ here
    assert order.index("/a/x") > order.index("/a/y") and order.index("/b") > order.index("/c")
    for i, p in enumerate(order[1:], 1):  # every parent before its children
        assert (p.rsplit("/", 1)[0] or "/") in order[:i]
    back = snapshot_from_bytes(snapshot_bytes(t, compress=False))
    assert list(t.get_node("/a").children) == list(back.get_node("/a").children) == ["y", "x"]
    assert list(back.get_node("/").children) == list(t.get_node("/").children)
    assert back.children_of(back.get_node("/a")) == t.children_of(t.get_node("/a"))
    assert_same_tree(back, t)
