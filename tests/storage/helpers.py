"""Shared helpers for the storage tests: a random workload and tree comparison."""

from __future__ import annotations

import random

from zabby.tree import DataTree, RequestContext, Txn, digest_id
from zabby.wire.constants import CreateMode, Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import (
    ACL,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    Id,
    SetACLRequest,
    SetDataRequest,
)

OPEN = [ACL(31, Id("world", "anyone"))]
DIGEST = [ACL(31, Id("digest", digest_id("alice:secret"))), ACL(1, Id("world", "anyone"))]
IP = [ACL(3, Id("ip", "10.0.0.0/8"))]
ACLS = [OPEN, DIGEST, IP]
ALICE = [Id("digest", digest_id("alice:secret"))]


class Workload:
    """Generates valid-looking writes of every kind (via prepare) and applies
    them to `self.tree`, the model. Each call of `step()` returns one Txn."""

    def __init__(self, seed: int = 0, *, extended_types: bool = True, start_zxid: int = 0) -> None:
        self.rng = random.Random(seed)
        self.tree = DataTree(extended_types=extended_types)
        self.zxid = start_zxid
        self.tree.last_zxid = start_zxid
        self.time = 1_700_000_000_000
        self.sessions: list[int] = []
        self.next_session = 0x1000000000000
        self.paths = ["/"]

    def _ctx(self, sid: int) -> RequestContext:
        self.zxid += 1
        self.time += self.rng.randrange(1, 50)
        return RequestContext(sid, self.rng.randrange(1 << 20), self.zxid, self.time, list(ALICE))

    def _run(self, sid: int, op: int, body) -> Txn:
        txn = self.tree.prepare(op, body, self._ctx(sid))
        self.tree.apply(txn)
        return txn

    def _create_body(self):
        rng = self.rng
        parent = rng.choice(self.paths)
        name = rng.choice(["a", "b", "node", "q-", "x", "ü", "seq-"]) + str(rng.randrange(100))
        path = (parent.rstrip("/") + "/" + name) if parent != "/" else "/" + name
        data = None if rng.random() < 0.05 else bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        acl = rng.choice(ACLS)
        mode = rng.choice(list(CreateMode))
        if mode.ttl:
            return Op.CREATE_TTL, CreateTTLRequest(path, data, acl, int(mode), rng.randrange(1, 100000)), path
        op = Op.CREATE_CONTAINER if mode.container else rng.choice([Op.CREATE, Op.CREATE2])
        return op, CreateRequest(path, data, acl, int(mode)), path

    def step(self) -> Txn:
        rng = self.rng
        r = rng.random()
        if not self.sessions or r < 0.05:
            sid = self.next_session
            self.next_session += 1
            self.sessions.append(sid)
            return self._run(sid, Op.CREATE_SESSION, rng.choice([4000, 10000, 30000]))
        sid = rng.choice(self.sessions)
        if r < 0.08 and len(self.sessions) > 1:
            self.sessions.remove(sid)
            return self._run(sid, Op.CLOSE_SESSION, None)
        if r < 0.55:
            op, body, _ = self._create_body()
            txn = self._run(sid, op, body)
            if txn.type != Op.ERROR:
                self.paths.append(txn.body.path)
            return txn
        existing = [p for p in self.paths if self.tree.get_node(p) is not None and p != "/"]
        self.paths = ["/"] + existing
        if not existing:
            op, body, _ = self._create_body()
            return self._run(sid, op, body)
        path = rng.choice(existing)
        if r < 0.75:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
            return self._run(sid, Op.SET_DATA, SetDataRequest(path, data, -1))
        if r < 0.82:
            return self._run(sid, Op.SET_ACL, SetACLRequest(path, rng.choice(ACLS), -1))
        if r < 0.92:
            return self._run(sid, Op.DELETE, DeleteRequest(path, -1))
        op1, b1, p1 = self._create_body()
        ops = [(op1, b1), (Op.SET_DATA, SetDataRequest(path, b"multi", -1))]
        if rng.random() < 0.3:
            ops.append((Op.DELETE, DeleteRequest("/does-not-exist", -1)))
        return self._run(sid, Op.MULTI, MultiRequest(ops))

    def txns(self, n: int) -> list[Txn]:
        return [self.step() for _ in range(n)]


def entries(txns: list[Txn]) -> list[tuple[int, bytes]]:
    return [(t.zxid, t.encode()) for t in txns]


_FIELDS = ("data", "czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
           "ephemeral_owner", "pzxid", "child_cap")


def tree_state(tree: DataTree) -> dict:
    """Everything a snapshot must preserve, in comparable form."""
    nodes = {}
    for path, node in tree.iter_nodes():
        nodes[path] = (
            tuple(getattr(node, f) for f in _FIELDS),
            tuple((a.perms, a.id.scheme, a.id.id) for a in node.acl),
            list(node.children or ()),
            tree.children_of(node),
            node.stat(tree.extended_types),
        )
    return {
        "nodes": nodes,
        "sessions": dict(tree.sessions),
        "last_zxid": tree.last_zxid,
        "ephemerals": tree.ephemerals(),
        "containers": tree.containers,
        "ttls": tree.ttls,
        "node_count": tree.node_count,
    }


def assert_same_tree(a: DataTree, b: DataTree) -> None:
    sa, sb = tree_state(a), tree_state(b)
    assert sa["nodes"].keys() == sb["nodes"].keys()
    for path in sa["nodes"]:
        assert sa["nodes"][path] == sb["nodes"][path], path
    assert sa == sb
