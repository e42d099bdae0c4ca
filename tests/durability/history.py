"""Concurrent write load with a recorded history, and its checker.

Each `Worker` is a thread with its own raw (pipelining) client and session. It
writes its *own* keys (``/own/c<N>/k<i>``: creates, setData with and without
versions, deletes -- including some that must fail with a definite error) and
a few *shared* keys (``/shared/s<i>``: read the version, then a conditional
setData with it; OK and BADVERSION are both legitimate). Every write carries
a unique payload, so the tree itself says which op last wrote a node.

Every op ends up in one of these states:
  ok       acknowledged: reply OK, with the reply's zxid and Stat
  err      a definite error reply (never applied)
  unknown  sent, but the connection broke before the reply (the kill)

`check_after_restart` compares the tree of a restarted server with the
history. Own keys are only written by their owner, in FIFO order, so each
reply is predicted exactly and the durable part of a client's ops is a prefix
ops[:j] with j >= the number of replied ops; the checker finds every j whose
replay equals the owner's keys in the tree. A shared key's final value must be
its newest acknowledged value, or the payload of an unknown op that
conditioned on version V-1 (V the final version) and lies inside its owner's
possible prefix; every version between must be accounted for by unknown ops.
Payloads of ops that got a definite error must appear nowhere, and nothing but
the expected nodes may exist.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from zabby.wire import Err, Op
from zabby.wire.records import (
    CreateRequest,
    DeleteRequest,
    PathWatchRequest,
    SetDataRequest,
)

OWN_KEYS = 6
SHARED_KEYS = 3
SESSION_TIMEOUT_MS = 4000


def own_parent(cid: int) -> str:
    return f"/own/c{cid}"


def own_path(cid: int, k: int) -> str:
    return f"{own_parent(cid)}/k{k}"


def shared_path(k: int) -> str:
    return f"/shared/s{k}"


@dataclass
class NodeState:
    data: bytes
    version: int
    mzxid: int = 0


@dataclass
class OpRec:
    cid: int
    idx: int  # position in the client's sequence
    kind: str  # create | set | delete | shared_set
    path: str
    data: bytes | None
    version: int  # the request's version argument (-1 = any)
    expect_err: int | None  # predicted error code (None: not predictable, shared ops)
    expect_version: int | None = None  # predicted Stat.version after an OK create/set
    status: str = "pending"  # pending | ok | err | unknown
    err: int | None = None
    zxid: int | None = None
    stat_version: int | None = None
    stat_mzxid: int | None = None

    def describe(self) -> str:
        tag = self.data[:24] if self.data else b""
        return (f"c{self.cid}#{self.idx} {self.kind} {self.path} v={self.version} {tag!r} "
                f"-> {self.status} err={self.err} zxid={self.zxid} stat_v={self.stat_version}")


@dataclass
class Worker:
    cid: int
    seed: int
    host: str
    port: int
    base_own: dict[str, NodeState | None]
    round_tag: str
    max_ops: int = 20000
    ops: list[OpRec] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    error: BaseException | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._run, name=f"load-c{self.cid}", daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------ the load
    def _run(self) -> None:
        try:
            self._load()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.connected.set()
            self.finished.set()

    def _load(self) -> None:
        rng = random.Random(self.seed)
        model: dict[str, NodeState | None] = {
            p: (None if s is None else NodeState(s.data, s.version)) for p, s in self.base_own.items()
        }
        client = RawClient(self.host, self.port, timeout_ms=SESSION_TIMEOUT_MS, io_timeout=10.0)
        try:
            client.connect()
        except (ConnectionClosed, OSError):
            return  # killed before we got a session: no history
        self.connected.set()
        pending: deque[tuple[int, int, OpRec]] = deque()
        try:
            while len(self.ops) < self.max_ops:
                depth = rng.choice((1, 2, 4, 8, 16))
                while len(pending) >= depth:
                    self._settle(client, pending)
                if rng.random() < 0.15:
                    # read a shared key (after everything in flight), then a conditional set
                    while pending:
                        self._settle(client, pending)
                    sp = shared_path(rng.randrange(SHARED_KEYS))
                    r = client.request(Op.GET_DATA, PathWatchRequest(sp, False))
                    if r.err != Err.OK:
                        self.anomalies.append(f"c{self.cid}: getData {sp} -> err {r.err}")
                        return
                    op = self._new(sp, "shared_set", self._payload(rng), r.body.stat.version, None)
                    xid = client.send_request(Op.SET_DATA, SetDataRequest(sp, op.data, op.version))
                    pending.append((xid, Op.SET_DATA, op))
                    continue
                xid_op = self._own_op(rng, model, client)
                pending.append(xid_op)
        except TimeoutError:
            raise AssertionError(f"c{self.cid}: no reply within {client.io_timeout}s while the "
                                 f"server was up") from None
        except (ConnectionClosed, OSError):
            pass  # the kill
        finally:
            for op in self.ops:
                if op.status == "pending":
                    op.status = "unknown"
            client.drop()

    def _payload(self, rng: random.Random) -> bytes:
        tag = f"{self.round_tag}c{self.cid}o{len(self.ops)}|".encode()
        return tag + bytes(rng.randrange(97, 123) for _ in range(rng.randrange(0, 120)))

    def _new(self, path, kind, data, version, expect_err, expect_version=None) -> OpRec:
        op = OpRec(self.cid, len(self.ops), kind, path, data, version, expect_err, expect_version)
        self.ops.append(op)
        return op

    def _own_op(self, rng, model, client) -> tuple[int, int, OpRec]:
        path = own_path(self.cid, rng.randrange(OWN_KEYS))
        cur = model[path]
        r = rng.random()
        if cur is None:
            if r < 0.8:
                op = self._new(path, "create", self._payload(rng), -1, Err.OK, 0)
                model[path] = NodeState(op.data, 0)
            elif r < 0.9:
                op = self._new(path, "set", self._payload(rng), -1, Err.NONODE)
            else:
                op = self._new(path, "delete", None, -1, Err.NONODE)
        else:
            if r < 0.12:
                op = self._new(path, "create", self._payload(rng), -1, Err.NODEEXISTS)
            elif r < 0.75:
                v = rng.choice((-1, -1, cur.version, cur.version, cur.version + 1 + rng.randrange(3)))
                ok = v == -1 or v == cur.version
                op = self._new(path, "set", self._payload(rng), v,
                               Err.OK if ok else Err.BADVERSION, cur.version + 1 if ok else None)
                if ok:
                    model[path] = NodeState(op.data, cur.version + 1)
            else:
                v = rng.choice((-1, cur.version, cur.version, cur.version + 1))
                ok = v == -1 or v == cur.version
                op = self._new(path, "delete", None, v, Err.OK if ok else Err.BADVERSION)
                if ok:
                    model[path] = None
        if op.kind == "create":
            xid = client.send_request(Op.CREATE2, CreateRequest(path, op.data, OPEN_ACL_UNSAFE, 0))
            return xid, Op.CREATE2, op
        if op.kind == "set":
            xid = client.send_request(Op.SET_DATA, SetDataRequest(path, op.data, op.version))
            return xid, Op.SET_DATA, op
        xid = client.send_request(Op.DELETE, DeleteRequest(path, op.version))
        return xid, Op.DELETE, op

    def _settle(self, client: RawClient, pending: deque) -> None:
        xid, opcode, op = pending[0]
        reply = client.wait_reply(xid, opcode)
        pending.popleft()
        op.zxid = reply.zxid
        op.err = reply.err
        if reply.err == Err.OK:
            op.status = "ok"
            stat = getattr(reply.body, "stat", None)
            if stat is not None:
                op.stat_version = stat.version
                op.stat_mzxid = stat.mzxid
        else:
            op.status = "err"
        # predictions
        if op.expect_err is not None and reply.err != op.expect_err:
            self.anomalies.append(f"reply differs from prediction: {op.describe()} "
                                  f"(expected err {op.expect_err})")
        if op.status == "ok" and op.expect_version is not None and op.stat_version != op.expect_version:
            self.anomalies.append(f"acknowledged Stat.version {op.stat_version}, expected "
                                  f"{op.expect_version}: {op.describe()}")
        if op.status == "ok" and op.stat_mzxid is not None and op.stat_mzxid != reply.zxid:
            self.anomalies.append(f"Stat.mzxid {op.stat_mzxid:#x} != reply zxid {reply.zxid:#x}: "
                                  f"{op.describe()}")
        if op.kind == "shared_set":
            if op.status == "ok" and op.stat_version != op.version + 1:
                self.anomalies.append(f"conditional set acknowledged with version {op.stat_version}: "
                                      f"{op.describe()}")
            if op.status == "err" and op.err != Err.BADVERSION:
                self.anomalies.append(f"unexpected error for a shared set: {op.describe()}")


# --------------------------------------------------------------- reading
def read_tree(client: RawClient) -> tuple[dict[str, tuple[bytes, object]], int]:
    """Every node but /zookeeper's subtree: path -> (data, Stat); and the
    zxid in the first reply's header (the server's last zxid)."""
    out: dict[str, tuple[bytes, object]] = {}
    first_zxid = None
    stack = ["/"]
    while stack:
        path = stack.pop()
        r = client.request(Op.GET_DATA, PathWatchRequest(path, False))
        if first_zxid is None:
            first_zxid = r.zxid
        if r.err == Err.NONODE:
            continue
        assert r.err == Err.OK, f"getData {path}: err {r.err}"
        out[path] = (r.body.data or b"", r.body.stat)
        r = client.request(Op.GET_CHILDREN, PathWatchRequest(path, False))
        if r.err == Err.NONODE:
            continue
        assert r.err == Err.OK, f"getChildren {path}: err {r.err}"
        for ch in r.body.children:
            child = ("/" if path == "/" else path + "/") + ch
            if child != "/zookeeper":
                stack.append(child)
    return out, first_zxid or 0


def setup_tree(client: RawClient, clients: int) -> None:
    def create(path: str, data: bytes = b"") -> None:
        r = client.request(Op.CREATE2, CreateRequest(path, data, OPEN_ACL_UNSAFE, 0))
        assert r.err == Err.OK, f"setup create {path}: err {r.err}"

    create("/own")
    for c in range(clients):
        create(own_parent(c))
    create("/shared")
    for k in range(SHARED_KEYS):
        create(shared_path(k), b"init")


@dataclass
class Base:
    own: dict[int, dict[str, NodeState | None]]
    shared: dict[str, NodeState]


def base_from_tree(tree: dict[str, tuple[bytes, object]], clients: int) -> Base:
    own = {}
    for c in range(clients):
        d: dict[str, NodeState | None] = {}
        for k in range(OWN_KEYS):
            p = own_path(c, k)
            if p in tree:
                data, st = tree[p]
                d[p] = NodeState(data, st.version, st.mzxid)
            else:
                d[p] = None
        own[c] = d
    shared = {}
    for k in range(SHARED_KEYS):
        p = shared_path(k)
        data, st = tree[p]
        shared[p] = NodeState(data, st.version, st.mzxid)
    return Base(own, shared)


# --------------------------------------------------------------- checking
def _replay_own(base: dict[str, NodeState | None], ops: list[OpRec], j: int):
    """Own-key state after ops[:j] as predicted; value: (NodeState|None, last writer op|None)."""
    state = {p: (None if s is None else NodeState(s.data, s.version, s.mzxid)) for p, s in base.items()}
    writer: dict[str, OpRec | None] = {p: None for p in base}
    for op in ops[:j]:
        if op.kind == "shared_set" or op.expect_err != Err.OK:
            continue
        if op.kind == "create":
            state[op.path] = NodeState(op.data, 0)
            writer[op.path] = op
        elif op.kind == "set":
            state[op.path] = NodeState(op.data, state[op.path].version + 1)
            writer[op.path] = op
        else:
            state[op.path] = None
            writer[op.path] = op
    return state, writer


def check_after_restart(base: Base, workers: list[Worker], tree, last_zxid: int) -> list[str]:
    """Problems found (empty: the restarted tree is consistent with the history)."""
    problems: list[str] = []
    clients = len(workers)
    all_ops = [op for w in workers for op in w.ops]
    for op in all_ops:
        if op.status == "pending":
            problems.append(f"op left pending by the harness: {op.describe()}")
        if op.status == "ok" and op.zxid is not None and op.zxid > last_zxid:
            problems.append(f"acknowledged zxid {op.zxid:#x} is beyond the restarted server's "
                            f"last zxid {last_zxid:#x}: {op.describe()}")

    # 0. the tree is a state of the log up to last_zxid: no node was made or changed
    # by a txn after it (a torn or mixed recovery would show one)
    for p, (_data, st) in sorted(tree.items()):
        newest = max(st.czxid, st.mzxid, st.pzxid)
        if newest > last_zxid:
            problems.append(f"{p}: zxid {newest:#x} (czxid/mzxid/pzxid) is beyond the "
                            f"restarted server's last zxid {last_zxid:#x}")

    # 1. exactly the expected nodes
    expected_fixed = {"/", "/own", "/shared"} | {own_parent(c) for c in range(clients)} | {
        shared_path(k) for k in range(SHARED_KEYS)}
    own_all = {own_path(c, k) for c in range(clients) for k in range(OWN_KEYS)}
    for p in sorted(expected_fixed - tree.keys()):
        problems.append(f"node {p} is missing")
    for p in sorted(tree.keys() - expected_fixed - own_all):
        problems.append(f"unexpected node {p}")

    # 2. payloads of definite errors appear nowhere
    failed = {op.data: op for op in all_ops if op.status == "err" and op.data}
    for p, (data, _st) in tree.items():
        if data in failed:
            problems.append(f"{p} holds the payload of a write that got a definite error: "
                            f"{failed[data].describe()}")

    # 3. own keys: which prefixes ops[:j] (j >= replied ops) replay to the tree?
    candidates: dict[int, list[int]] = {}
    for w in workers:
        replied = sum(1 for op in w.ops if op.status in ("ok", "err"))
        if any(op.status in ("ok", "err") for op in w.ops[replied:]):
            problems.append(f"c{w.cid}: replies are not a prefix of the sent ops")
        js = []
        for j in range(replied, len(w.ops) + 1):
            state, writer = _replay_own(base.own[w.cid], w.ops, j)
            ok = True
            for p, s in state.items():
                actual = tree.get(p)
                if (s is None) != (actual is None):
                    ok = False
                    break
                if s is None:
                    continue
                data, st = actual
                if data != s.data or st.version != s.version:
                    ok = False
                    break
                wop = writer[p]
                if wop is not None and wop.status == "ok" and st.mzxid != wop.zxid:
                    ok = False
                    break
                if wop is None and s.mzxid and st.mzxid != s.mzxid:
                    ok = False
                    break
            if ok:
                js.append(j)
        candidates[w.cid] = js
        if not js:
            lines = [f"c{w.cid}: its keys match no prefix of its history "
                     f"({replied} replied, {len(w.ops)} sent)"]
            state, _ = _replay_own(base.own[w.cid], w.ops, replied)
            for p in sorted(state):
                s = state[p]
                a = tree.get(p)
                lines.append(f"   {p}: acked-prefix model {None if s is None else (s.data[:20], s.version)}"
                             f" / tree {None if a is None else (a[0][:20], a[1].version, hex(a[1].mzxid))}")
            tail = [op for op in w.ops if op.status != "err"][-12:]
            lines += ["   last ops:"] + ["     " + op.describe() for op in tail]
            problems.append("\n".join(lines))

    # 4. shared keys
    lower: dict[int, int] = {w.cid: 0 for w in workers}
    by_payload = {op.data: op for op in all_ops if op.data}
    for k in range(SHARED_KEYS):
        p = shared_path(k)
        if p not in tree:
            continue
        data, st = tree[p]
        b = base.shared[p]
        ops = [op for op in all_ops if op.path == p]
        acked = [op for op in ops if op.status == "ok"]
        maxv = max([b.version] + [op.stat_version for op in acked])
        V = st.version
        if V < maxv:
            problems.append(f"{p}: version {V} is below the acknowledged version {maxv} (lost write)")
            continue
        if V == maxv:
            if acked and maxv > b.version:
                last = next(op for op in acked if op.stat_version == maxv)
                if data != last.data or st.mzxid != last.zxid:
                    problems.append(f"{p}: holds {data[:24]!r} (mzxid {st.mzxid:#x}), expected the "
                                    f"acknowledged {last.describe()}")
            elif data != b.data:
                problems.append(f"{p}: holds {data[:24]!r}, expected the base value {b.data[:24]!r}")
            continue
        # V > maxv: unknown ops made up the difference
        writer = by_payload.get(data)
        if writer is None or writer.path != p or writer.status != "unknown" or writer.version != V - 1:
            problems.append(f"{p}: version {V} > acknowledged {maxv}, but its data {data[:24]!r} is "
                            f"not from an unknown set conditioned on {V - 1}: "
                            f"{writer.describe() if writer else 'no such op'}")
            continue
        lower[writer.cid] = max(lower[writer.cid], writer.idx + 1)
        for v in range(maxv + 1, V):
            if not any(op.status == "unknown" and op.version == v - 1 for op in ops):
                problems.append(f"{p}: version {v} between acknowledged {maxv} and final {V} has no "
                                f"unknown op that could have made it")
    for cid, lb in lower.items():
        js = candidates.get(cid) or []
        if js and not any(j >= lb for j in js):
            problems.append(f"c{cid}: a shared key shows its op #{lb - 1} applied, but its own keys "
                            f"allow only prefixes {js}")
    return problems


def wait_threads(threads: list[threading.Thread], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]
