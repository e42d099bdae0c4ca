"""Property test: DataTree against a tiny dict model, with pipelined prepares."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from zabby.tree import DataTree, RequestContext
from zabby.wire.constants import Err, Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import (
    ACL,
    CreateRequest,
    DeleteRequest,
    Id,
    PathWatchRequest,
    SetDataRequest,
)

OPEN = [ACL(31, Id("world", "anyone"))]
names = st.sampled_from(["a", "b"])
paths = st.lists(names, min_size=1, max_size=2).map(lambda p: "/" + "/".join(p))
versions = st.sampled_from(["any", "right", "wrong"])


class Model:
    """path -> [data, version, creates, deletes]; children derived."""

    def __init__(self) -> None:
        self.nodes = {"/": [b"", 0, 0, 0]}
        self.seq: dict[str, int] = {"/": 0}

    def parent(self, p):
        return p.rsplit("/", 1)[0] or "/"

    def children(self, p):
        pre = "/" if p == "/" else p + "/"
        return sorted(q[len(pre):] for q in self.nodes if q != p and q.startswith(pre) and "/" not in q[len(pre):])

    def create(self, p, data):
        par = self.parent(p)
        if p in self.nodes:
            return Err.NODEEXISTS
        if par not in self.nodes:
            return Err.NONODE
        self.nodes[p] = [data, 0, 0, 0]
        self.nodes[par][2] += 1
        return Err.OK

    def delete(self, p, v):
        if p not in self.nodes:
            return Err.NONODE
        if v != -1 and v != self.nodes[p][1]:
            return Err.BADVERSION
        if self.children(p):
            return Err.NOTEMPTY
        del self.nodes[p]
        self.nodes[self.parent(p)][3] += 1
        return Err.OK

    def set_data(self, p, data, v):
        if p not in self.nodes:
            return Err.NONODE
        if v != -1 and v != self.nodes[p][1]:
            return Err.BADVERSION
        self.nodes[p][0] = data
        self.nodes[p][1] += 1
        return Err.OK


class TreeVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tree = DataTree()
        self.model = Model()
        self.zxid = 0
        self.batch: list = []  # prepared, not yet applied: (txn, expected err)

    def ctx(self):
        self.zxid += 1
        return RequestContext(1, self.zxid, self.zxid, self.zxid * 10, [])

    def version(self, p, how):
        if how == "any":
            return -1
        cur = self.model.nodes.get(p, [None, 0])[1]
        return cur if how == "right" else cur + 7

    def submit(self, op, body, expected):
        txn = self.tree.prepare(op, body, self.ctx())
        self.batch.append((txn, expected))

    @rule(p=paths, data=st.binary(max_size=4))
    def create(self, p, data):
        # the model sees ops in prepare order: pipelined prepares must agree with it
        if p.startswith("/zookeeper"):
            return
        self.submit(Op.CREATE, CreateRequest(p, data, OPEN, 0), self.model.create(p, data))

    @rule(p=paths, how=versions)
    def delete(self, p, how):
        v = self.version(p, how)
        self.submit(Op.DELETE, DeleteRequest(p, v), self.model.delete(p, v))

    @rule(p=paths, data=st.binary(max_size=4), how=versions)
    def set_data(self, p, data, how):
        v = self.version(p, how)
        self.submit(Op.SET_DATA, SetDataRequest(p, data, v), self.model.set_data(p, data, v))

    @rule(p=paths, q=paths)
    def multi_create_delete(self, p, q):
        # all-or-nothing: run on a copy of the model, keep it only on success
        import copy

        trial = copy.deepcopy(self.model)
        e1 = trial.create(p, b"m") if not p.startswith("/zookeeper") else Err.NODEEXISTS
        e2 = trial.delete(q, -1) if e1 == Err.OK else Err.RUNTIMEINCONSISTENCY
        ok = e1 == Err.OK and e2 == Err.OK
        if ok:
            self.model = trial
        txn = self.tree.prepare(Op.MULTI, MultiRequest([
            (Op.CREATE, CreateRequest(p, b"m", OPEN, 0)), (Op.DELETE, DeleteRequest(q, -1))]), self.ctx())
        self.batch.append((txn, ("multi", ok, e1, e2)))

    @rule()
    def apply_all(self):
        for txn, expected in self.batch:
            r = self.tree.apply(txn)
            if isinstance(expected, tuple):
                _, ok, e1, e2 = expected
                codes = [x[1] for x in r.response.results]
                if ok:
                    assert codes == [0, 0]
                else:
                    assert r.multi_err != 0
                    assert all(x[0] == Op.ERROR for x in r.response.results)
            else:
                assert r.err == expected, (txn, r)
        self.batch.clear()

    @invariant()
    def agree(self):
        if self.batch:
            return
        t, m = self.tree, self.model
        user = {p for p, _ in t.iter_nodes() if not p.startswith("/zookeeper")}
        assert user == set(m.nodes)
        for p, (data, version, creates, deletes) in m.nodes.items():
            err, resp = t.read(Op.GET_CHILDREN2, PathWatchRequest(p, False), [], 0)
            assert err == 0
            kids = sorted(c for c in resp.children if not (p == "/" and c == "zookeeper"))
            assert kids == m.children(p)
            s = resp.stat
            assert s.numChildren == len(resp.children)
            node = t.get_node(p)
            if p != "/":
                assert node.data == data
                assert s.version == version
                assert s.cversion == creates + deletes
        assert t.last_zxid == self.zxid


TreeVsModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_tree_vs_model = TreeVsModel.TestCase
