"""Simulated clients: the real `zabby.client.Client` in simulated processes.

Each client keeps one session (a new one when it expires) and runs a random mix:

* registers r0..r3: read, sync+read, write, compare-and-set, recorded for the
  linearizability and per-session-prefix checks (`zabby.testing.linearizability`);
* one-shot data watches on w0, w1 (re-armed after each event) and plain reads of
  them in between. Every notification the connection receives is seen (the
  client's `_notify` is wrapped), so the checks are the server's, not the client
  library's: no event for a path without a watch armed on it (a duplicate), no
  plain read showing a newer version than the watch was armed on before its event
  arrived, events of one connection in zxid order, and -- once the faults are over
  -- no armed watch whose path changed without an event (a lost event);
* an ephemeral node per session, which must be gone once the session is closed or
  has expired;
* a counter through multi: one transaction sets /sim/counter (at the version the
  client last read) and creates a sequential child of /sim/log; multi is atomic, so
  at the end the counter's version equals the number of children, whatever faults
  hit the transactions (and every acknowledged one is there).

Client processes can also be killed (their sessions must then expire).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from ..client import Client
from ..client.exceptions import (
    BadVersionError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    ZookeeperError,
)
from ..client.states import ConnectionState
from ..testing.linearizability import HistoryRecorder
from ..wire.constants import EventType
from .loop import Process

REGISTERS = ("r0", "r1", "r2", "r3")
WATCHED = ("w0", "w1")
COUNTER = "/sim/counter"
LOG = "/sim/log"
ROOT = "/sim"
EPH = "/eph"
SESSION_TIMEOUT = 3.0
LOST = (ConnectionLoss, OperationTimeoutError, TimeoutError, OSError)


class Anomaly(Exception):
    pass


class SimClient:
    def __init__(self, sim, idx: int, hosts: str, rec: HistoryRecorder) -> None:
        self.sim = sim
        self.idx = idx
        self.hosts = hosts
        self.rec = rec
        self.rng = random.Random(sim.rng.random())
        self.proc = Process(f"c{idx}", f"10.1.0.{idx}")
        self.client: Client | None = None
        self.gen = 0
        self.seen: dict[str, int] = {}
        self.armed: dict[str, int] = {}  # path -> version the watch was set on
        self.arming: dict[str, bool] = {}  # path -> its event came before the reply
        self.events = 0
        self.ops = 0
        self.odd: list[str] = []
        self.seg = 0
        self.catchup = True  # no reply yet on this connection segment
        self.last_event: tuple[int, str] | None = None
        self.ephemeral: str | None = None
        self.closed_sessions: list[int] = []
        self.abandoned_sessions: list[int] = []
        self.stopping = False
        self.multis_acked: list[str] = []  # log children of acknowledged transactions
        self.task: asyncio.Task | None = None
        self.task_proc: Process | None = None  # the process `task` runs in

    @property
    def process(self) -> str:
        return f"c{self.idx}s{self.gen}"

    # ------------------------------------------------------------ session
    async def _new_session(self) -> bool:
        c = Client(self.hosts, timeout=SESSION_TIMEOUT, rng=random.Random(self.rng.random()))
        try:
            await c.start(timeout=SESSION_TIMEOUT * 3)
        except (KazooException, *LOST):
            await self._drop(c)
            return False
        self.gen += 1
        self.client = c
        self.seen = {k: 0 for k in REGISTERS}
        self.armed = {}
        self.arming = {}
        self.seg += 1
        self.catchup = True
        self.last_event = None
        notify = c._notify

        def watched(ev) -> None:
            self._raw_event(ev)
            notify(ev)

        c._notify = watched
        c.add_listener(self._state)
        self.ephemeral = None
        try:
            path = await c.create(f"{EPH}/c{self.idx}-", b"", ephemeral=True, sequence=True)
            self.ephemeral = path
        except (KazooException, *LOST):
            pass  # not known to exist; the final check only looks at sessions' own nodes
        return True

    def _where(self) -> str:
        conn = getattr(self.client, "_conn", None) if self.client is not None else None
        return getattr(conn, "address", ("?",))[0]

    def _state(self, state) -> None:
        if self.sim.verbose:
            self.sim.log(f"client {self.process}: {state} at {self._where()} "
                         f"(last zxid {getattr(self.client, 'last_zxid', 0):#x})")
        if state == ConnectionState.LOST:
            # the session expired (the client opens a new one by itself): its watches
            # and what it saw are gone with it; what follows is another session
            if self.client is not None:
                self.abandoned_sessions.append(self.client.session_id)
            self.gen += 1
            self.seen = {k: 0 for k in REGISTERS}
            self.armed = {}
        if state in (ConnectionState.CONNECTED, ConnectionState.RECONNECTED):
            self.seg += 1
            self.catchup = True
            self.last_event = None

    async def _drop(self, c: Client) -> None:
        try:
            await asyncio.wait_for(c.stop(), 1.0)
        except BaseException:  # noqa: BLE001 - a client being thrown away
            pass

    # ------------------------------------------------------------ checks
    def anomaly(self, what: str) -> None:
        # recorded, not raised: raised inside the client library's frame handling it
        # would drop the connection and change what happens next
        self.sim.note_failure(f"client {self.process}: {what}")

    def _raw_event(self, ev) -> None:
        if ev.type == -1 or ev.path is None:
            return
        self.events += 1
        path = ev.path.rsplit("/", 1)[-1]
        if self.sim.verbose:
            self.sim.log(f"client {self.process}: event {ev.type} {ev.path} at {self._where()}")
        if ev.type in (EventType.NODE_DATA_CHANGED, EventType.NODE_DELETED) and \
                ev.path.startswith(ROOT + "/w"):
            if path in self.arming:  # in the same read as the getData reply
                self.arming[path] = True
                return
            if path not in self.armed:
                self.anomaly(f"an event {ev.type} for {ev.path} with no watch set on it "
                             "(duplicate event)")
            v = self.armed.pop(path, None)
            if v is None:
                return
            z = self.sim.change_zxid(ev.path, v + 1)
            if z is not None and not self.catchup:
                if self.last_event is not None and z < self.last_event[0]:
                    self.anomaly(f"event for {ev.path} (zxid {z:#x}) after the event of "
                                 f"{self.last_event[1]} (zxid {self.last_event[0]:#x}) on "
                                 "one connection: out of order")
                self.last_event = (z, ev.path)

    def describe(self) -> str:
        c = self.client
        if c is None:
            return "no session"
        pending = [(r.xid, r.op) for r in getattr(c, "_pending", ())]
        return (f"session {c.session_id:#x} at {self._where()}, connected={c.connected}, "
                f"requests awaiting replies (xid, op): {pending}")

    # ------------------------------------------------------------ workload
    async def run(self, until: float) -> None:
        loop = self.sim.loop
        while loop.time() < until and not self.stopping:
            if self.client is None:
                if not await self._new_session():
                    await asyncio.sleep(self.rng.uniform(0.1, 0.5))
                    continue
            try:
                await self.step()
                self.ops += 1
            except SessionExpiredError:
                c, self.client = self.client, None
                self.abandoned_sessions.append(c.session_id)
                await self._drop(c)
            except LOST:
                await asyncio.sleep(self.rng.uniform(0.01, 0.2))
            await asyncio.sleep(self.rng.uniform(0, 0.03))

    async def step(self) -> None:
        c = self.client
        x = self.rng.random()
        if x < 0.6:
            await self._register(c)
        elif x < 0.85:
            await self._watch(c)
        else:
            await self._multi(c)
        self.catchup = False

    async def _register(self, c: Client) -> None:
        key = self.rng.choice(REGISTERS)
        path = f"{ROOT}/{key}"
        kind = self.rng.choices(("read", "sread", "write", "cas"), (30, 20, 25, 25))[0]
        proc = self.process
        if kind in ("read", "sread"):
            h = self.rec.invoke(proc, kind, key)
            try:
                if kind == "sread":
                    await c.sync(path)
                data, st = await c.get(path)
            except LOST:
                h.fail()
                raise
            except ZookeeperError as e:
                self.odd.append(f"{kind} {key}: {e!r}")
                h.fail()
                return
            if st.version < self.seen[key]:
                self.anomaly(f"read {key} at version {st.version} after seeing {self.seen[key]}")
            self.seen[key] = max(self.seen[key], st.version)
            h.ok((data.decode(), st.version), zxid=st.mzxid)
            return
        self.ops_n = getattr(self, "ops_n", 0) + 1
        value = f"c{self.idx}-{self.ops_n}"
        ev = self.seen[key] if kind == "cas" else -1
        h = self.rec.invoke(proc, kind, key, value=value,
                            expected_version=ev if kind == "cas" else None)
        try:
            st = await c.set(path, value.encode(), ev)
        except LOST:
            h.unknown()
            raise
        except BadVersionError:
            if kind == "cas":
                h.fail()
            else:
                h.unknown()
            return
        except ZookeeperError as e:
            self.odd.append(f"{kind} {key}: {e!r}")
            h.unknown()
            if isinstance(e, SessionExpiredError):
                raise
            return
        self.seen[key] = max(self.seen[key], st.version)
        h.ok(st.version, zxid=st.mzxid)

    async def _multi(self, c: Client) -> None:
        _, st = await c.get(COUNTER)
        t = c.transaction()
        t.set_data(COUNTER, b"%d" % (st.version + 1), st.version)
        t.create(f"{LOG}/c{self.idx}-", b"", sequence=True)
        results = await t.commit()
        if not any(isinstance(r, Exception) for r in results):
            self.multis_acked.append(results[1].rsplit("/", 1)[1])

    async def _watch(self, c: Client) -> None:
        key = self.rng.choice(WATCHED)
        path = f"{ROOT}/{key}"
        if self.rng.random() < 0.4:
            st = await c.set(path, b"x")
            self.sim.record_change(path, st.version, st.mzxid)
            return
        if key not in self.armed:
            self.arming[key] = False
            try:
                _, st = await c.get(path, watch=lambda ev: None)
            finally:
                fired = self.arming.pop(key, False)
            if not fired:
                self.armed[key] = st.version
            if self.sim.verbose:
                self.sim.log(f"client {self.process}: watch on {path} at version {st.version} "
                             f"(mzxid {st.mzxid:#x}) at {self._where()}{' fired' if fired else ''}")
            return
        _, st = await c.get(path)
        v = self.armed.get(key)
        if v is not None and st.version > v:
            self.anomaly(f"read {path} at version {st.version} (mzxid {st.mzxid:#x}) before "
                         f"the event of the watch set on version {v}")

    # ------------------------------------------------------------ the end
    async def finish(self) -> dict[str, Any]:
        """Faults are over: final reads (lost writes, lost events), then close."""
        loop = self.sim.loop
        deadline = loop.time() + 30
        result: dict[str, Any] = {}
        while loop.time() < deadline:
            if self.client is None and not await self._new_session():
                await asyncio.sleep(0.2)
                continue
            c = self.client
            try:
                for key in REGISTERS:
                    path = f"{ROOT}/{key}"
                    h = self.rec.invoke(f"final-{self.idx}", "sread", key)
                    await c.sync(path)
                    data, st = await c.get(path)
                    h.ok((data.decode(), st.version), zxid=st.mzxid)
                for key, v in list(self.armed.items()):
                    path = f"{ROOT}/{key}"
                    await c.sync(path)
                    _, st = await c.get(path)
                    await asyncio.sleep(0.05)
                    if key in self.armed and st.version > v:
                        self.anomaly(f"the watch set on {path} at version {v} never fired, "
                                     f"though it is at version {st.version} (lost event)")
                sid = c.session_id
                await c.stop()  # closeSession
                self.closed_sessions.append(sid)
                self.client = None
                return result
            except SessionExpiredError:
                c, self.client = self.client, None
                self.abandoned_sessions.append(c.session_id)
                await self._drop(c)
            except (ZookeeperError, *LOST):
                await asyncio.sleep(0.2)
        self.sim.fail(f"client {self.idx} could not finish in 30 s after the faults ended")
        return result

    def kill(self) -> None:
        """The client process dies: its session must expire on its own."""
        if self.client is not None:
            self.abandoned_sessions.append(self.client.session_id)
        self.sim.loop.kill(self.proc)
        self.sim.net.crash(self.proc)
        self.client = None
        self.proc = Process(f"c{self.idx}.{self.gen + 1}", self.proc.host)


async def ensure_nodes(c: Client) -> None:
    for path in (ROOT, EPH, COUNTER, LOG, *(f"{ROOT}/{k}" for k in (*REGISTERS, *WATCHED))):
        try:
            await c.create(path, b"")
        except NodeExistsError:
            pass


__all__ = ["SimClient", "ensure_nodes", "NoNodeError"]
