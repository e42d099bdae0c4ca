"""ClickHouse Keeper's opcodes in the DataTree: what prepare logs, that replaying the log
(decoded txns) gives the same tree, and RemoveRecursive against prepared-but-unapplied
changes (a pipelined client: create then remove before either is applied)."""

from __future__ import annotations

from zabby.storage.snapshot import snapshot_bytes, snapshot_from_bytes
from zabby.tree import DataTree, RequestContext, Txn
from zabby.wire import ACL, Err, Id, MultiRequest, Op
from zabby.wire.keeper import RemoveRecursiveRequest
from zabby.wire.records import CheckVersionRequest, CreateRequest, DeleteRequest, SetDataRequest

OPEN = [ACL(31, Id("world", "anyone"))]
ANYONE = [Id("world", "anyone")]


class Run:
    def __init__(self, keeper: bool = True) -> None:
        self.tree = DataTree()
        self.tree.keeper_extensions = keeper
        self.zxid = 0
        self.log: list[bytes] = []

    def prepare(self, op, body, sid=1) -> Txn:
        self.zxid += 1
        txn = self.tree.prepare(op, body, RequestContext(sid, self.zxid, self.zxid, 1000, ANYONE))
        self.log.append(txn.encode())
        return txn

    def apply(self, txn):
        return self.tree.apply(txn)

    def do(self, op, body, sid=1):
        return self.apply(self.prepare(op, body, sid))


def _replayed(log: list[bytes]) -> DataTree:
    t = DataTree()  # replay needs no keeper_extensions: only ordinary txn types
    for raw in log:
        t.apply(Txn.decode(raw))
    return t


def _dump(t: DataTree):
    return {p: (n.data, n.stat(False)) for p, n in t.iter_nodes()}


def test_logged_as_ordinary_txns_and_replayed_alike():
    r = Run()
    assert r.prepare(502, CreateRequest("/a", b"x", OPEN, 0)).type == Op.CREATE
    r.apply(_last(r))
    again = r.prepare(502, CreateRequest("/a", b"y", OPEN, 0))
    assert again.type == Op.CHECK  # nothing to create: a no-op check of the path
    assert r.apply(again).path == "/a"
    for p in ("/a/b", "/a/b/c", "/a/d"):
        r.do(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
    r.do(Op.CREATE, CreateRequest("/a/e", b"", OPEN, 1), sid=7)  # an ephemeral
    rr = r.prepare(503, RemoveRecursiveRequest("/a", 100))
    assert rr.type == Op.MULTI
    assert [t for t, _ in rr.body.ops()] == [Op.DELETE] * 5
    paths = [b.path for _, b in rr.body.ops()]
    assert paths[-1] == "/a" and paths.index("/a/b/c") < paths.index("/a/b")
    res = r.apply(rr)
    assert res.multi_err == 0 and r.tree.get_node("/a") is None
    assert r.tree.ephemerals_of(7) == set()
    m = r.prepare(Op.MULTI, MultiRequest([(501, CheckVersionRequest("/a", -1)),
                                           (Op.CREATE, CreateRequest("/a", b"", OPEN, 0))]))
    assert [t for t, _ in m.body.ops()] == [501, Op.CREATE]
    assert r.apply(m).response.results[0] == (501, 0, None)
    assert _dump(_replayed(r.log)) == _dump(r.tree)
    # and a snapshot of it loads back
    back = snapshot_from_bytes(snapshot_bytes(r.tree), "<test>")
    assert _dump(back) == _dump(r.tree)


def _last(r: Run) -> Txn:
    return Txn.decode(r.log[-1])


def test_remove_recursive_sees_pending_creates_and_deletes():
    r = Run()
    r.do(Op.CREATE, CreateRequest("/p", b"", OPEN, 0))
    r.do(Op.CREATE, CreateRequest("/p/old", b"", OPEN, 0))
    # pipelined: none of these is applied before the RemoveRecursive is prepared
    pending = [r.prepare(Op.CREATE, CreateRequest("/p/new", b"", OPEN, 0)),
               r.prepare(Op.CREATE, CreateRequest("/p/new/deep", b"", OPEN, 0)),
               r.prepare(Op.DELETE, _delete("/p/old"))]
    rr = r.prepare(503, RemoveRecursiveRequest("/p", 100))
    assert sorted(b.path for _, b in rr.body.ops()) == ["/p", "/p/new", "/p/new/deep"]
    # and what comes after it sees the subtree gone
    late = r.prepare(Op.CREATE, CreateRequest("/p/x", b"", OPEN, 0))
    assert late.type == Op.ERROR and late.body.err == Err.NONODE
    for t in (*pending, rr, late):
        r.apply(t)
    assert r.tree.get_node("/p") is None and r.tree.get_node("/p/new/deep") is None
    assert _dump(_replayed(r.log)) == _dump(r.tree)


def _delete(path):
    return DeleteRequest(path, -1)


def test_errors_and_disabled():
    r = Run()
    r.do(Op.CREATE, CreateRequest("/q", b"", OPEN, 0))
    r.do(Op.CREATE, CreateRequest("/q/a", b"", OPEN, 0))
    assert r.prepare(503, RemoveRecursiveRequest("/q", 1)).body.err == Err.NOTEMPTY
    r.tree.discard_pending()
    r.do(Op.SET_DATA, SetDataRequest("/q/a", b"v", -1))
    ok = r.prepare(503, RemoveRecursiveRequest("/q", 2))
    assert ok.type == Op.MULTI
    off = Run(keeper=False)
    for op, body in ((502, CreateRequest("/z", b"", OPEN, 0)),
                     (503, RemoveRecursiveRequest("/z", 2))):
        t = off.prepare(op, body)
        assert (t.type, t.body.err) == (Op.ERROR, Err.UNIMPLEMENTED)
    t = off.prepare(Op.MULTI, MultiRequest([(501, CheckVersionRequest("/z", -1))]))
    assert (t.type, t.body.err) == (Op.ERROR, Err.MARSHALLINGERROR)


def test_create_if_not_exists_and_remove_recursive_inside_a_multi():
    r = Run()
    for p in ("/m", "/m/a", "/m/a/b"):
        r.do(Op.CREATE, CreateRequest(p, b"", OPEN, 0))
    pending = r.prepare(Op.CREATE, CreateRequest("/m/c", b"", OPEN, 0))  # not applied yet
    multi = r.prepare(Op.MULTI, MultiRequest([
        (502, CreateRequest("/n", b"1", OPEN, 0)),
        (502, CreateRequest("/m", b"2", OPEN, 0)),   # there already: nothing changes
        (503, RemoveRecursiveRequest("/m", 10)),
        (501, CheckVersionRequest("/m", -1))]))
    assert [t for t, _ in multi.body.ops()] == [502, 502, 503, 501]
    r.apply(pending)
    res = r.apply(multi)
    assert [(op, err) for op, err, _ in res.response.results] == [
        (502, 0), (502, 0), (503, 0), (501, 0)]
    assert [getattr(b, "path", None) for _, _, b in res.response.results[:2]] == ["/n", "/m"]
    assert r.tree.get_node("/m") is None and r.tree.get_node("/n").data == b"1"
    assert _dump(_replayed(r.log)) == _dump(r.tree)


def test_failed_multi_with_remove_recursive_restores_pending_state():
    r = Run()
    r.do(Op.CREATE, CreateRequest("/f", b"", OPEN, 0))
    first = r.prepare(Op.CREATE, CreateRequest("/f/new", b"", OPEN, 0))  # pending
    failed = r.prepare(Op.MULTI, MultiRequest([
        (503, RemoveRecursiveRequest("/f", 10)),
        (Op.SET_DATA, SetDataRequest("/nowhere", b"", -1))]))
    assert [t for t, _ in failed.body.ops()][-1] == Op.ERROR
    # /f/new is still pending: creating it again is refused at prepare
    again = r.prepare(Op.CREATE, CreateRequest("/f/new", b"", OPEN, 0))
    assert again.type == Op.ERROR and again.body.err == Err.NODEEXISTS
    r.apply(first)
    assert {op for op, _, _ in r.apply(failed).response.results} == {Op.ERROR}
    r.apply(again)
    assert r.tree.get_node("/f/new") is not None


def _consistent(t: DataTree) -> None:
    nodes = dict(t.iter_nodes())
    assert len(nodes) == t.node_count  # nothing orphaned outside the walk
    for path, node in nodes.items():
        for name in node.children or ():
            assert path.rstrip("/") + "/" + name in nodes


def test_random_pipelined_mix_replays_to_the_same_consistent_tree():
    """Creates, deletes, CreateIfNotExists, RemoveRecursive and multis holding them,
    prepared in random batches before being applied (as a pipelining leader does)."""
    import random

    rng = random.Random(13)
    names = ["/r", "/r/a", "/r/b", "/r/a/x", "/r/a/y", "/r/b/z", "/s", "/s/q"]
    r = Run()

    def one():
        p = rng.choice(names)
        k = rng.randrange(6)
        if k == 0:
            return Op.CREATE, CreateRequest(p, b"", OPEN, rng.choice((0, 1)))
        if k == 1:
            return Op.DELETE, DeleteRequest(p, -1)
        if k == 2:
            return 502, CreateRequest(p, b"", OPEN, 0)
        if k == 3:
            return 503, RemoveRecursiveRequest(p, rng.choice((1, 3, 100)))
        if k == 4:
            return Op.MULTI, MultiRequest([
                (503, RemoveRecursiveRequest(rng.choice(names), 100)),
                (502, CreateRequest(rng.choice(names), b"", OPEN, 0)),
                (501, CheckVersionRequest(rng.choice(names), -1))])
        return Op.SET_DATA, SetDataRequest(p, b"d", -1)

    for _ in range(150):
        batch = [r.prepare(*one(), sid=rng.choice((1, 2))) for _ in range(rng.randrange(1, 6))]
        for t in batch:
            r.apply(t)
        _consistent(r.tree)
    assert _dump(_replayed(r.log)) == _dump(r.tree)
