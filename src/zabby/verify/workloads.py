"""The workloads of ``zabby verify``: client threads, each with its own raw-protocol
session (zabby.testing.rawclient), recording what they do in a ``History``.

Every thread survives faults the same way: a request that gets no reply (the
connection broke, or nothing came within IO_TIMEOUT) is recorded with outcome
"unknown"; the thread reconnects to a random member with the same session id and
its last zxid (so a member behind it refuses it); when the session is gone it opens
a new one and becomes a new process of the history (``Conn.process``).

Paths live under one root per run (``<root>/...``), so runs against an ensemble the
tool does not manage do not see each other.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, Reply
from zabby.wire import Err
from zabby.wire import Op as Opcode
from zabby.wire.constants import XID_SET_WATCHES, AddWatchMode, CreateMode, EventType
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import (
    AddWatchRequest,
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
    SetWatches2,
)

from .history import History
from .netlab import NsRawClient

SESSION_TIMEOUT_MS = 4000
IO_TIMEOUT = 4.0  # longer than a pause of a member, so paused members get to answer
CONNECT_TIMEOUT = 1.5
LOST = (ConnectionClosed, OSError, TimeoutError)
REGISTER_KEYS = ("r0", "r1", "r2", "r3")
WATCH_KEYS = ("k0", "k1")


def multi_err(r: Reply) -> int:
    """The error of a multi: the header's, or the first failed op's (the others carry
    RUNTIMEINCONSISTENCY or OK)."""
    if r.err != Err.OK or r.body is None:
        return r.err
    for op, err, _body in r.body.results:
        if op == Opcode.ERROR and err not in (Err.OK, Err.RUNTIMEINCONSISTENCY):
            return err
    return Err.OK


class Lost(Exception):
    """No reply: the outcome of the request in flight is unknown."""


class Conn:
    """A session that survives reconnects (see the module docstring)."""

    def __init__(self, name: str, endpoints: list[tuple[str, int]], ns: str | None,
                 rng: random.Random, stop: threading.Event,
                 on_connect: Callable[[NsRawClient, bool], None] | None = None) -> None:
        self.name = name
        self.endpoints = endpoints
        self.ns = ns
        self.rng = rng
        self.stop = stop
        self.on_connect = on_connect
        self.client: NsRawClient | None = None
        self.session = (0, b"\x00" * 16)
        self.last_zxid = 0
        self.generation = 0
        self.member = 0

    @property
    def process(self) -> str:
        return f"{self.name}s{self.generation}"

    def ensure(self) -> bool:
        """Connected (possibly after reconnecting); False when stopping or nothing answers."""
        while self.client is None:
            if self.stop.is_set():
                return False
            order = list(self.endpoints)
            self.rng.shuffle(order)
            for host, port in order:
                if self.stop.is_set():
                    return False
                sid, pw = self.session
                c = NsRawClient(host, port, timeout_ms=SESSION_TIMEOUT_MS,
                                io_timeout=CONNECT_TIMEOUT, session_id=sid, passwd=pw,
                                last_zxid=self.last_zxid, ns=self.ns)
                try:
                    resp = c.connect()
                except LOST:
                    c.drop()
                    continue
                if resp.timeOut <= 0 or resp.sessionId == 0:
                    c.drop()  # the session is gone: start a new one
                    self.session, self.last_zxid = (0, b"\x00" * 16), 0
                    continue
                c.io_timeout = IO_TIMEOUT
                resumed = resp.sessionId == sid
                if not resumed:
                    self.generation += 1
                    self.session = (c.session_id, c.passwd)
                self.member = self.endpoints.index((host, port)) + 1
                self.client = c
                if self.on_connect is not None:
                    try:
                        self.on_connect(c, resumed)
                    except LOST:
                        self.lose()
                        break
                return True
            else:
                time.sleep(0.1)
        return True

    def call(self, op: int, body: Any = None) -> Reply:
        c = self.client
        if c is None:
            raise Lost("not connected")
        try:
            r = c.request(op, body)
        except LOST as e:
            self.lose()
            raise Lost(repr(e)) from e
        self.last_zxid = max(self.last_zxid, c.last_zxid)
        return r

    def lose(self) -> None:
        if self.client is not None:
            self.last_zxid = max(self.last_zxid, self.client.last_zxid)
            self.client.drop()
            self.client = None

    def abandon(self) -> None:
        """Forget the session (it expires on its own); the next ensure opens a new one."""
        self.lose()
        self.session, self.last_zxid = (0, b"\x00" * 16), 0

    def close(self) -> bool:
        """closeSession; True when the server acknowledged it."""
        c = self.client
        if c is None:
            return False
        try:
            r = c.request(Opcode.CLOSE_SESSION)
            ok = r.err == Err.OK
        except LOST:
            ok = False
        self.lose()
        self.session, self.last_zxid = (0, b"\x00" * 16), 0
        return ok


class Worker:
    """A thread running ``step`` until stopped; ``error`` keeps an unexpected exception."""

    wl = "?"

    def __init__(self, wid: int, root: str, endpoints, ns, hist: History,
                 stop: threading.Event, seed: int, pace: float = 0.02) -> None:
        self.wid = wid
        self.root = root
        self.hist = hist
        self.stop = stop
        self.rng = random.Random(seed)
        self.pace = pace
        self.conn = Conn(f"{self.wl}{wid}", endpoints, ns, self.rng, stop, self.on_connect)
        self.error: BaseException | None = None
        self.ops = 0
        self.odd: list[str] = []
        self.thread: threading.Thread | None = None

    def on_connect(self, c, resumed: bool) -> None:
        pass

    def create_sequential(self, wl: str, kind: str, prefix: str, *,
                          tokened: bool = True) -> None:
        """One recorded sequential create under `prefix`; `tokened`: its data a token
        unique to this op (the checkers find each token's name once, or know it
        unknown), else empty."""
        extra = {}
        if tokened:
            self.ops_n = getattr(self, "ops_n", 0) + 1
            extra["token"] = f"{self.conn.name}-{self.ops_n}"
        e = self.hist.begin(wl, self.conn.process, kind, **extra)
        try:
            r = self.conn.call(Opcode.CREATE2, CreateRequest(
                prefix, extra.get("token", "").encode(), OPEN_ACL_UNSAFE,
                CreateMode.PERSISTENT_SEQUENTIAL))
        except Lost:
            self.hist.done(e, "unknown")
            raise
        if r.err == Err.OK:
            self.hist.done(e, "ok", path=r.body.path, zxid=r.body.stat.czxid)
        else:
            self.hist.done(e, "unknown", err=r.err)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.conn.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                if not self.conn.ensure():
                    continue
                try:
                    self.step()
                    self.ops += 1
                except Lost:
                    time.sleep(self.rng.uniform(0.1, 0.4))
                    continue
                if self.pace:
                    time.sleep(self.rng.uniform(0, self.pace))
            self.finish()
        except BaseException as e:  # noqa: BLE001 - reported by the runner
            self.error = e
        finally:
            self.conn.lose()

    def step(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def finish(self) -> None:
        """After stop: anything the checks need from this session."""

    def _odd(self, what: str) -> None:
        if len(self.odd) < 20:
            self.odd.append(what)

    def path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))


# ------------------------------------------------------------------ register
class RegisterWorker(Worker):
    """read / sync+read / write / cas on a few registers (linearizability checker)."""

    wl = "register"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.seen = {k: 0 for k in REGISTER_KEYS}
        self.n = 0

    def step(self) -> None:
        rec = self.hist.registers
        key = self.path(self.rng.choice(REGISTER_KEYS))
        short = key.rsplit("/", 1)[1]
        kind = self.rng.choices(("read", "sread", "write", "cas"), (30, 20, 25, 25))[0]
        self.n += 1
        value = f"w{self.wid}-{self.n}"
        proc, meta = self.conn.process, f"m{self.conn.member}"
        if kind in ("read", "sread"):
            h = rec.invoke(proc, kind, key, meta=meta)
            try:
                if kind == "sread":
                    r = self.conn.call(Opcode.SYNC, PathRequest(key))
                    if r.err != Err.OK:
                        self._odd(f"sync {key}: err {r.err}")
                        h.fail()
                        return
                r = self.conn.call(Opcode.GET_DATA, PathWatchRequest(key, False))
            except Lost:
                h.fail()  # a read without a reply observed nothing
                raise
            if r.err != Err.OK:
                self._odd(f"getData {key}: err {r.err}")
                h.fail()
                return
            v = r.body.stat.version
            h.ok((r.body.data.decode(), v), zxid=r.body.stat.mzxid)
            self.seen[short] = max(self.seen[short], v)
            return
        ev = self.seen[short] if kind == "cas" else -1
        h = rec.invoke(proc, kind, key, value=value,
                       expected_version=ev if kind == "cas" else None, meta=meta)
        try:
            r = self.conn.call(Opcode.SET_DATA, SetDataRequest(key, value.encode(), ev))
        except Lost:
            h.unknown()
            raise
        if r.err == Err.OK:
            h.ok(r.body.stat.version, zxid=r.body.stat.mzxid)
            self.seen[short] = max(self.seen[short], r.body.stat.version)
        elif r.err == Err.BADVERSION and kind == "cas":
            h.fail()
        else:
            self._odd(f"setData {key}: err {r.err}")
            h.unknown()  # not a definite "did not happen"


# ------------------------------------------------------------------ sequential
class SeqWorker(Worker):
    """Sequential creates under <root>/seq: every name handed out once, none lost."""

    wl = "seq"

    def step(self) -> None:
        self.create_sequential("seq", "create", self.path("seq", "n-"))


# ------------------------------------------------------------------ counter
class CounterWorker(Worker):
    """A counter incremented by multi [setData(ctr, v+1, version), create(log/inc-token)]:
    the counter and its log must move together, and no increment may be lost."""

    wl = "counter"

    def step(self) -> None:
        ctr = self.path("ctr")
        r = self.conn.call(Opcode.GET_DATA, PathWatchRequest(ctr, False))
        if r.err != Err.OK:
            self._odd(f"getData ctr: err {r.err}")
            return
        v, version = int(r.body.data), r.body.stat.version
        self.ops_n = getattr(self, "ops_n", 0) + 1
        token = f"{self.conn.name}-{self.ops_n}"
        e = self.hist.begin("counter", self.conn.process, "incr", token=token, base=v)
        req = MultiRequest([
            (Opcode.SET_DATA, SetDataRequest(ctr, str(v + 1).encode(), version)),
            (Opcode.CREATE, CreateRequest(self.path("ctrlog", f"inc-{token}"), b"",
                                          OPEN_ACL_UNSAFE, 0)),
        ])
        try:
            r = self.conn.call(Opcode.MULTI, req)
        except Lost:
            self.hist.done(e, "unknown")
            raise
        err = multi_err(r)
        if err == Err.OK:
            stat = r.body.results[0][2].stat
            self.hist.done(e, "ok", value=v + 1, zxid=stat.mzxid)
        elif err == Err.BADVERSION:
            self.hist.done(e, "fail", err=err)
        else:
            self._odd(f"multi: err {err}")
            self.hist.done(e, "unknown", err=err)


# ------------------------------------------------------------------ queue
class QueueWorker(Worker):
    """Producers create <root>/q/item-N; consumers take the first child by deleting it.
    An item is consumed (delete ok) at most once; an acknowledged item is never lost."""

    wl = "queue"

    def step(self) -> None:
        if self.rng.random() < 0.5:
            self.create_sequential("queue", "put", self.path("q", "item-"))
            return
        r = self.conn.call(Opcode.GET_CHILDREN, PathWatchRequest(self.path("q"), False))
        if r.err != Err.OK or not r.body.children:
            return
        child = self.path("q", sorted(r.body.children)[0])
        e = self.hist.begin("queue", self.conn.process, "take", path=child)
        try:
            r = self.conn.call(Opcode.DELETE, DeleteRequest(child, -1))
        except Lost:
            self.hist.done(e, "unknown")
            raise
        if r.err == Err.OK:
            self.hist.done(e, "ok", zxid=r.zxid)
        elif r.err == Err.NONODE:
            self.hist.done(e, "fail", err=r.err)
        else:
            self.hist.done(e, "unknown", err=r.err)


# ------------------------------------------------------------------ lock
class LockWorker(Worker):
    """The lock recipe (ephemeral sequential children, the lowest holds). Inside the
    critical section the holder writes "enter" then "exit" to <root>/lockreg, each in
    a multi with check(its lock node): the committed order of those writes (their
    mzxids) shows whether two holders ever overlapped."""

    wl = "lock"

    def on_connect(self, c, resumed: bool) -> None:
        if not resumed:
            self.node = None

    node: str | None = None

    def _guarded(self, what: str) -> tuple[str, int | None]:
        e = self.hist.begin("lock", self.conn.process, what, node=self.node)
        req = MultiRequest([
            (Opcode.CHECK, CheckVersionRequest(self.node, 0)),
            (Opcode.SET_DATA, SetDataRequest(self.path("lockreg"),
                                             f"{what} {self.node}".encode(), -1)),
        ])
        try:
            r = self.conn.call(Opcode.MULTI, req)
        except Lost:
            self.hist.done(e, "unknown")
            raise
        err = multi_err(r)
        if err == Err.OK:
            z = r.body.results[1][2].stat.mzxid
            self.hist.done(e, "ok", zxid=z)
            return "ok", z
        self.hist.done(e, "fail", err=err)
        return "fail", None

    def step(self) -> None:
        try:
            self._cycle()
        except Lost:
            self.conn.abandon()  # its lock node goes when the session expires
            self.node = None
            raise

    def _cycle(self) -> None:
        d = self.path("lock")
        if self.node is None:
            r = self.conn.call(Opcode.CREATE, CreateRequest(
                d + "/lk-", self.conn.name.encode(), OPEN_ACL_UNSAFE,
                CreateMode.EPHEMERAL_SEQUENTIAL))
            if r.err != Err.OK:
                self._odd(f"lock create: err {r.err}")
                return
            self.node = r.body.path
        mine = self.node.rsplit("/", 1)[1]
        deadline = time.monotonic() + 30
        while True:
            if self.stop.is_set() or time.monotonic() > deadline:
                self._release()
                return
            r = self.conn.call(Opcode.GET_CHILDREN, PathWatchRequest(d, False))
            if r.err != Err.OK:
                return
            kids = sorted(r.body.children)
            if mine not in kids:
                self._odd(f"own lock node {mine} missing from {kids[:5]}")
                self.node = None
                return
            if kids[0] == mine:
                break
            time.sleep(0.02)
        if self._guarded("enter")[0] == "ok":
            time.sleep(self.rng.uniform(0, 0.05))
            self._guarded("exit")
        self._release()

    def _release(self) -> None:
        if self.node is not None:
            self.conn.call(Opcode.DELETE, DeleteRequest(self.node, -1))
            self.node = None


# ------------------------------------------------------------------ ephemerals
class EphemeralWorker(Worker):
    """An owner creates <root>/eph/<name>-<gen> (ephemeral) and setData's it while its
    session lives, closing the session now and then; an observer (its own session)
    reads the nodes after sync. An ephemeral must vanish only after its session ends."""

    wl = "eph"

    def __init__(self, *a, observer: bool = False, registry: list[str] | None = None,
                 **kw) -> None:
        super().__init__(*a, **kw)
        self.observer = observer
        self.registry = registry if registry is not None else []
        self.node: str | None = None
        self.node_gen = -1

    def step(self) -> None:
        if self.observer:
            return self._observe()
        if self.node is None or self.node_gen != self.conn.generation:
            node = self.path("eph", f"{self.conn.name}-{self.conn.generation}")
            e = self.hist.begin("eph", self.conn.process, "create", node=node)
            try:
                r = self.conn.call(Opcode.CREATE, CreateRequest(
                    node, b"0", OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL))
            except Lost:
                self.hist.done(e, "unknown")
                raise
            if r.err == Err.NODEEXISTS:
                # an earlier create of this session got no reply but happened: the node
                # is ours if this session owns it
                self.hist.done(e, "fail", err=r.err)
                r = self.conn.call(Opcode.EXISTS, PathWatchRequest(node, False))
                if r.err != Err.OK or r.body.stat.ephemeralOwner != self.conn.session[0]:
                    return
                self.hist.note("eph", self.conn.process, "adopt", node=node)
            elif r.err != Err.OK:
                self.hist.done(e, "fail", err=r.err)
                return
            else:
                self.hist.done(e, "ok", err=r.err)
            self.node, self.node_gen = node, self.conn.generation
            self.registry.append(node)
            return
        if self.rng.random() < 0.05:
            e = self.hist.begin("eph", self.conn.process, "close", node=self.node)
            ok = self.conn.close()
            self.hist.done(e, "ok" if ok else "unknown")
            self.node = None
            return
        e = self.hist.begin("eph", self.conn.process, "touch", node=self.node)
        try:
            r = self.conn.call(Opcode.SET_DATA, SetDataRequest(self.node, b"1", -1))
        except Lost:
            self.hist.done(e, "unknown")
            raise
        if r.err == Err.OK:
            self.hist.done(e, "ok", zxid=r.body.stat.mzxid)
        elif r.err == Err.NONODE:
            self.hist.done(e, "fail", err=r.err)
        else:
            self.hist.done(e, "unknown", err=r.err)

    def _observe(self) -> None:
        if not self.registry:
            return
        node = self.rng.choice(self.registry[-8:])
        e = self.hist.begin("eph", self.conn.process, "observe", node=node)
        try:
            r = self.conn.call(Opcode.SYNC, PathRequest(node))
            r = self.conn.call(Opcode.EXISTS, PathWatchRequest(node, False))
        except Lost:
            self.hist.done(e, "unknown")
            raise
        if r.err in (Err.OK, Err.NONODE):
            self.hist.done(e, "ok", exists=r.err == Err.OK, zxid=r.zxid)
        else:
            self.hist.done(e, "fail", err=r.err)


# ------------------------------------------------------------------ watches
class WatchWriter(Worker):
    """Changes what the watcher watches: setData on <root>/w/k*, sequential creates
    under <root>/wr. Records each change's zxid from its reply."""

    wl = "wwrite"

    def step(self) -> None:
        x = self.rng.random()
        if x < 0.6:
            key = self.path("w", self.rng.choice(WATCH_KEYS)) if x < 0.4 else self.path("wp")
            e = self.hist.begin("watch", self.conn.process, "set", path=key)
            try:
                r = self.conn.call(Opcode.SET_DATA, SetDataRequest(key, b"x", -1))
            except Lost:
                self.hist.done(e, "unknown")
                raise
            if r.err == Err.OK:
                self.hist.done(e, "ok", version=r.body.stat.version, zxid=r.body.stat.mzxid)
            else:
                self.hist.done(e, "unknown", err=r.err)
            return
        self.create_sequential("watch", "add", self.path("wr", "c-"), tokened=False)


class Watcher(Worker):
    """One session that keeps a one-shot data watch on every <root>/w/k* (set again by
    getData after each event), a persistent watch on <root>/wp and a persistent
    recursive watch on <root>/wr, and reads the keys and <root>/wp without a watch in
    between. It records, in arrival order on its
    connection: each watch it arms (path, base version), each event, each read
    (version, mzxid, reply-header zxid), and each connection segment (the zxid of the
    reply that registered the watches there: addWatch, or SetWatches2 on a resumed
    session). On a resumed session it re-registers its watches with SetWatches2
    (relativeZxid = the last zxid it saw), as every ZooKeeper client does."""

    wl = "watcher"

    def __init__(self, *a, drop_events: int = 0, **kw) -> None:
        super().__init__(*a, **kw)
        self.armed: dict[str, int] = {}
        self.segment = 0
        self.drop_events = drop_events  # negative control: pretend to lose events

    def _events(self, c, catchup: bool = False) -> None:
        for ev in c.take_events():
            if ev.type == EventType.NONE:
                continue
            if self.drop_events and ev.type == EventType.NODE_DATA_CHANGED:
                self.drop_events -= 1
                self.armed.pop(ev.path, None)
                continue
            self.hist.note("watch", self.conn.process, "event", type=int(ev.type), path=ev.path,
                           seg=self.segment, catchup=catchup)
            if ev.type == EventType.NODE_DATA_CHANGED:
                self.armed.pop(ev.path, None)

    def _req(self, c, op, body) -> Reply:
        r = c.request(op, body)
        self._events(c)
        return r

    def _arm(self, c, key: str) -> None:
        r = self._req(c, Opcode.GET_DATA, PathWatchRequest(key, True))
        if r.err == Err.OK:
            self.armed[key] = r.body.stat.version
            self.hist.note("watch", self.conn.process, "arm", path=key,
                           version=r.body.stat.version, mzxid=r.body.stat.mzxid,
                           hzxid=r.zxid, seg=self.segment)

    def on_connect(self, c, resumed: bool) -> None:
        self.segment += 1
        rec = self.path("wr")
        if not resumed:
            self.armed = {}
            r = self._req(c, Opcode.ADD_WATCH,
                          AddWatchRequest(rec, AddWatchMode.PERSISTENT_RECURSIVE))
            if r.err != Err.OK:
                raise OSError(f"addWatch: err {r.err}")
            r2 = self._req(c, Opcode.ADD_WATCH,
                           AddWatchRequest(self.path("wp"), AddWatchMode.PERSISTENT))
            if r2.err != Err.OK:
                raise OSError(f"addWatch: err {r2.err}")
            self.hist.note("watch", self.conn.process, "segment", seg=self.segment,
                           reg=r.zxid, resumed=False)
            self._pread(c)
            for k in WATCH_KEYS:
                self._arm(c, self.path("w", k))
            return
        body = SetWatches2(self.conn.last_zxid, sorted(self.armed), [], [],
                           [self.path("wp")], [rec])
        c.send_request(Opcode.SET_WATCHES2, body, xid=XID_SET_WATCHES)
        r = c.wait_reply(XID_SET_WATCHES, Opcode.SET_WATCHES2)
        self._events(c, catchup=True)
        self.hist.note("watch", self.conn.process, "segment", seg=self.segment, reg=r.zxid,
                       resumed=True, relative=self.conn.last_zxid)
        self._pread(c)

    def _pread(self, c, final: bool = False) -> None:
        """A plain read of <root>/wp (its persistent watch's events are counted
        against the versions these reads see)."""
        wp = self.path("wp")
        r = self._req(c, Opcode.GET_DATA, PathWatchRequest(wp, False))
        if r.err == Err.OK:
            self.hist.note("watch", self.conn.process, "pread", path=wp,
                           version=r.body.stat.version, mzxid=r.body.stat.mzxid,
                           hzxid=r.zxid, seg=self.segment, final=final)

    def step(self) -> None:
        c = self.conn.client
        try:
            for k in WATCH_KEYS:
                key = self.path("w", k)
                if key not in self.armed:
                    self._arm(c, key)
            if self.rng.random() < 0.3:
                self._pread(c)
                return
            key = self.path("w", self.rng.choice(WATCH_KEYS))
            r = self._req(c, Opcode.GET_DATA, PathWatchRequest(key, False))
        except LOST as e:
            self.conn.lose()
            raise Lost(repr(e)) from e
        self.conn.last_zxid = max(self.conn.last_zxid, c.last_zxid)
        if r.err == Err.OK:
            self.hist.note("watch", self.conn.process, "read", path=key,
                           version=r.body.stat.version, mzxid=r.body.stat.mzxid,
                           hzxid=r.zxid, seg=self.segment)

    def finish(self) -> None:
        """Writers have stopped: sync and read every key once more (an event still
        missing then is lost), and ping so every recursive event arrives."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stop, self.conn.stop = self.conn.stop, threading.Event()
            try:
                ok = self.conn.ensure()
            finally:
                self.conn.stop = stop
            if not ok:
                continue
            c = self.conn.client
            try:
                for k in WATCH_KEYS:
                    key = self.path("w", k)
                    self._req(c, Opcode.SYNC, PathRequest(key))
                    r = self._req(c, Opcode.GET_DATA, PathWatchRequest(key, False))
                    if r.err == Err.OK:
                        self.hist.note("watch", self.conn.process, "read", path=key,
                                       version=r.body.stat.version, mzxid=r.body.stat.mzxid,
                                       hzxid=r.zxid, seg=self.segment, final=True)
                self._req(c, Opcode.SYNC, PathRequest(self.path("wp")))
                self._pread(c, final=True)
                r = self._req(c, Opcode.SYNC, PathRequest(self.path("wr")))
                self.hist.note("watch", self.conn.process, "final", seg=self.segment,
                               hzxid=r.zxid)
                return
            except LOST:
                self.conn.lose()
