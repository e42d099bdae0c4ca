"""The workloads: what each session sends, and one worker's run of them.

The hot workloads (read, write, mixed, multi, create) use ``_Pipelined``: an
``asyncio.Protocol`` that keeps ``outstanding`` requests in flight, decodes every
complete reply of a read in one pass (only the reply header), takes the clock
once per read, records latencies into a shared histogram with inlined bucket
arithmetic, and answers each reply with the next pre-encoded request in one
``transport.write`` per read.

Time: recording covers replies that complete in ``[rec_start, rec_end)``
(``time.perf_counter_ns``, CLOCK_MONOTONIC, so the same in every worker
process); before that is warm-up; after it sessions send nothing more and drain.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import deque
from dataclasses import dataclass

from ..wire import (
    CreateRequest,
    MultiRequest,
    Op,
    PathWatchRequest,
    SetDataRequest,
    decode_connect_response,
)
from .client import (
    LEN,
    OPEN_ACL,
    REPLY,
    XID,
    BenchError,
    Session,
    connect,
    connect_frame,
    request_tail,
)
from .hist import SIZE, SUB_BITS

WORKLOADS = ("read", "write", "mixed", "create", "watch", "session", "multi")
# Which latency series a workload reports.
KINDS = {
    "read": ("read",), "write": ("write",), "mixed": ("read", "write"),
    "create": ("create", "delete"), "watch": ("watch",), "session": ("session",),
    "multi": ("multi",),
}

perf_ns = time.perf_counter_ns


@dataclass
class BenchConfig:
    hosts: str = "127.0.0.1:2181"
    workload: str = "read"
    sessions: int = 32
    outstanding: int = 1
    warmup: float = 1.0
    duration: float = 10.0
    value_size: int = 128
    keys: int = 1000
    read_pct: float = 90.0
    procs: int = 1
    prefix: str = "/bench"
    cleanup: bool = True
    session_timeout_ms: int = 30000
    connect_timeout: float = 5.0
    progress: bool = True
    seed: int = 1
    rate: float = 0.0  # > 0: open loop at this many requests/s in total (see _pace)

    def key(self, i: int) -> str:
        return f"{self.prefix}/k{i:07d}"


class RunState:
    """What the sessions of one worker share."""

    def __init__(self, kinds: tuple[str, ...], rec_start: int, rec_end: int, n: int) -> None:
        self.kinds = kinds
        self.hists = [[0] * SIZE for _ in kinds]
        self.ops = [0] * len(kinds)
        self.completed = 0  # warm-up included: for progress lines
        self.errors = 0
        self.error_codes: dict[int, int] = {}
        self.lost = 0
        self.missed = 0  # open loop: requests not sent, their session had PACED_CAP in flight
        self.rec_start = rec_start
        self.rec_end = rec_end
        self.active = n
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def session_done(self) -> None:
        self.active -= 1
        if self.active <= 0 and not self.done.done():
            self.done.set_result(None)

    def record(self, kind: int, lat: int, now: int) -> None:
        """For the slower workloads (the hot ones inline this)."""
        self.completed += 1
        if self.rec_start <= now < self.rec_end:
            self.ops[kind] += 1
            s = lat.bit_length() - 7
            self.hists[kind][(s << SUB_BITS) + (lat >> s) if s > 0 else lat] += 1

    def error(self, err: int) -> None:
        self.errors += 1
        self.error_codes[err] = self.error_codes.get(err, 0) + 1


# --------------------------------------------------------------- templates
def build_templates(cfg: BenchConfig) -> list[tuple[bytes, bytes, int]]:
    """Pre-encoded (length, opcode+body, kind index) for a run, shared by all sessions."""
    value = (b"zabby-bench-" * (cfg.value_size // 12 + 1))[: cfg.value_size]
    w = cfg.workload
    keys = [cfg.key(i) for i in range(cfg.keys)]
    out: list[tuple[bytes, bytes, int]] = []
    if w in ("read", "mixed"):
        for k in keys:
            out.append((*request_tail(Op.GET_DATA, PathWatchRequest(k, False)), 0))
    if w in ("write", "mixed"):
        kind = 1 if w == "mixed" else 0
        for k in keys:
            out.append((*request_tail(Op.SET_DATA, SetDataRequest(k, value, -1)), kind))
    if w == "multi":
        rng = random.Random(cfg.seed)
        for _ in range(1024):
            picked = rng.sample(keys, min(4, len(keys)))
            body = MultiRequest([(Op.SET_DATA, SetDataRequest(k, value, -1)) for k in picked])
            out.append((*request_tail(Op.MULTI, body), 0))
    return out


def session_order(cfg: BenchConfig, n_templates: int, rng: random.Random) -> list[int]:
    """The cycle of template indices one session sends."""
    length = max(1024, min(n_templates, 16384))
    if cfg.workload == "mixed":
        k = cfg.keys
        return [rng.randrange(k) if rng.random() * 100 < cfg.read_pct else k + rng.randrange(k)
                for _ in range(length)]
    return [rng.randrange(n_templates) for _ in range(length)]


# --------------------------------------------------------------- hot protocol
class _Pipelined(asyncio.Protocol):
    """A session that keeps `outstanding` pre-encoded requests in flight."""

    def __init__(self, st: RunState, cfg: BenchConfig, templates, order) -> None:
        self.st = st
        self.cfg = cfg
        self.templates = templates
        self.order = order
        self.i = 0
        self.xid = 0
        self.sent: deque = deque()
        self.buf = bytearray()
        self.transport = None
        self.ready = asyncio.get_running_loop().create_future()
        self.finished = False
        self.inline = type(self).reply is _Pipelined.reply
        self.paced = cfg.rate > 0  # requests are sent by _pace, not in answer to replies

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(connect_frame(self.cfg.session_timeout_ms))

    def _handshake(self, frame: bytes) -> None:
        resp, _ = decode_connect_response(frame)
        if resp.timeOut <= 0:
            self.ready.set_exception(BenchError("the server refused the session"))
        else:
            self.ready.set_result(self)

    def start(self) -> None:
        if self.paced:
            return
        now = perf_ns()
        out: list[bytes] = []
        for _ in range(self.cfg.outstanding):
            self._next(out, now)
        self.transport.write(b"".join(out))

    def _next(self, out: list, now: int) -> None:
        t = self.templates[self.order[self.i]]
        self.i += 1
        if self.i == len(self.order):
            self.i = 0
        self.xid += 1
        out.append(t[0])
        out.append(XID.pack(self.xid))
        out.append(t[1])
        self.sent.append((now, t[2]))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        if not self.ready.done():
            if n < 4 or n < 4 + LEN.unpack_from(buf, 0)[0]:
                return
            end = 4 + LEN.unpack_from(buf, 0)[0]
            self._handshake(bytes(buf[4:end]))
            del buf[:end]
            return  # nothing is sent before start()
        now = perf_ns()
        st = self.st
        recording = st.rec_start <= now < st.rec_end
        live = now < st.rec_end
        sending = live and not self.paced
        hists = st.hists
        ops = st.ops
        sent = self.sent
        out: list[bytes] = []
        unpack_len = LEN.unpack_from
        unpack_reply = REPLY.unpack_from
        # the next request of the cycle, inlined (most workloads): locals, saved after
        inline = self.inline
        templates, order, i, xid = self.templates, self.order, self.i, self.xid
        norder = len(order)
        pack_xid = XID.pack
        got = 0
        while n - pos >= 4:
            end = pos + 4 + unpack_len(buf, pos)[0]
            if end > n:
                break
            xid_in, _zxid, err = unpack_reply(buf, pos + 4)
            if xid_in < 0:  # a notification or ping reply
                pos = end
                continue
            t0, kind = sent.popleft()
            got += 1
            if err:
                st.error(err)
            elif recording:
                lat = now - t0
                s = lat.bit_length() - 7
                hists[kind][(s << 6) + (lat >> s) if s > 0 else lat] += 1
                ops[kind] += 1
            if sending:
                if inline:
                    t = templates[order[i]]
                    i += 1
                    if i == norder:
                        i = 0
                    xid += 1
                    out += (t[0], pack_xid(xid), t[1])
                    sent.append((now, t[2]))
                else:
                    self.reply(out, now, kind, err, buf, pos + 20, end)
            pos = end
        if inline:
            self.i, self.xid = i, xid
        if pos:
            del buf[:pos]
        st.completed += got
        if out:
            self.transport.write(b"".join(out))
        elif not sent and not live and not self.finished:
            self.finished = True
            st.session_done()

    def reply(self, out, now, kind, err, buf, body, end) -> None:
        """Send what follows a reply: by default the next request of the cycle."""
        self._next(out, now)

    def send_paced(self, now: int) -> None:
        """Open loop: the next request of the cycle, now, whatever is in flight."""
        if len(self.sent) >= PACED_CAP or self.transport is None or self.finished:
            self.st.missed += 1
            return
        out: list[bytes] = []
        self._next(out, now)
        self.transport.write(b"".join(out))

    def paced_end(self) -> None:
        """The pacer stopped: done now, or with the last reply (data_received)."""
        if not self.sent and not self.finished:
            self.finished = True
            self.st.session_done()

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"the server closed the connection ({exc})"))
        if not self.finished:
            self.finished = True
            self.st.lost += 1
            self.st.session_done()


class _CreateDelete(_Pipelined):
    """Chains of sequential create -> delete of the path the create returned."""

    def __init__(self, st, cfg, templates, order) -> None:
        super().__init__(st, cfg, templates, order)
        value = b"c" * cfg.value_size
        lenb, tail = request_tail(
            Op.CREATE, CreateRequest(f"{cfg.prefix}/c-", value, OPEN_ACL, 2))
        self.create = (lenb, tail, 0)

    def _next(self, out, now) -> None:
        self._send(out, now, self.create)

    def _send(self, out, now, t) -> None:
        self.xid += 1
        out.append(t[0])
        out.append(XID.pack(self.xid))
        out.append(t[1])
        self.sent.append((now, t[2]))

    def reply(self, out, now, kind, err, buf, body, end) -> None:
        if kind == 0 and not err:
            (ln,) = LEN.unpack_from(buf, body)
            path = bytes(buf[body + 4 : body + 4 + ln])
            tail = b"".join((_DELETE_OP, LEN.pack(ln), path, _ANY_VERSION))
            self._send(out, now, (LEN.pack(4 + len(tail)), tail, 1))
        else:
            self._send(out, now, self.create)


PACED_CAP = 1000  # open loop: requests in flight per session before sends are missed
PACED = ("read", "write", "mixed", "multi")  # the workloads --rate applies to


async def _pace(st: RunState, protos: list, rate: float, start: int) -> None:
    """Open loop: send `rate` requests/s in total, round robin over the sessions,
    on schedule whatever the replies, from `start` until the end of the run.
    The loop's timers tick about every millisecond; each tick sends what fell
    due since the last, so requests leave in small bursts spread over sessions."""
    n = len(protos)
    i = sent = 0
    while True:
        now = perf_ns()
        if now >= st.rec_end:
            break
        due = int((now - start) * rate / 1e9) - sent
        for _ in range(due):
            protos[i].send_paced(now)
            i += 1
            if i == n:
                i = 0
        sent += due
        await asyncio.sleep(0.001)
    for p in protos:
        p.paced_end()


_DELETE_OP = struct.pack(">i", Op.DELETE)
_ANY_VERSION = struct.pack(">i", -1)


# --------------------------------------------------------------- one worker
async def run_worker(cfg: BenchConfig, index: int, nprocs: int, addrs, go, report) -> dict:
    """Run this worker's share of the sessions.

    ``go()`` is awaited once every session is connected and returns the start time
    (perf_counter_ns); ``report(st)`` is called every 0.25 s for progress.
    """
    kinds = KINDS[cfg.workload]
    mine = list(range(index, cfg.sessions, nprocs))
    if cfg.workload == "watch":
        return await _watch(cfg, addrs, go, report)
    if cfg.workload == "session":
        return await _sessions(cfg, mine, addrs, go, report)
    templates = build_templates(cfg)
    proto = _CreateDelete if cfg.workload == "create" else _Pipelined
    rng = random.Random(cfg.seed * 1000 + index)
    # Placeholder state until the start time is known; sessions do not send before then.
    st = RunState(kinds, 0, 0, len(mine))
    conns = []
    try:
        for j in mine:
            host, port = addrs[j % len(addrs)]
            order = session_order(cfg, len(templates), rng) if templates else [0]
            conns.append(connect(host, port, lambda o=order: proto(st, cfg, templates, o),
                                 cfg.connect_timeout))
        results = await asyncio.gather(*conns, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                for other in results:
                    if not isinstance(other, BaseException):
                        other[0].close()
                raise r
        protos = [p for _, p in results]
        start = await go()
        st.rec_start = start + int(cfg.warmup * 1e9)
        st.rec_end = st.rec_start + int(cfg.duration * 1e9)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        ticker = _ticker(st, report)
        for p in protos:
            p.start()
        pacer = None
        if cfg.rate > 0:
            share = cfg.rate * len(mine) / cfg.sessions
            pacer = asyncio.get_running_loop().create_task(_pace(st, protos, share, start))
        # drain for at most 10 s after the end
        await _wait_done(st, st.rec_end)
        ticker.cancel()
        if pacer is not None:
            pacer.cancel()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        for p in protos:
            if p.transport is not None:
                p.transport.close()
        return _result(st, cpu, wall)
    finally:
        pass


async def _wait_done(st: RunState, rec_end: int) -> None:
    remaining = (rec_end - perf_ns()) / 1e9 + 10.0
    try:
        await asyncio.wait_for(asyncio.shield(st.done), max(remaining, 0.1))
    except TimeoutError:
        pass


def _ticker(st: RunState, report):
    loop = asyncio.get_running_loop()

    async def tick():
        while True:
            report(st)
            await asyncio.sleep(0.25)

    return loop.create_task(tick())


def _result(st: RunState, cpu: float, wall: float) -> dict:
    return {
        "kinds": list(st.kinds),
        "hists": st.hists,
        "ops": st.ops,
        "errors": st.errors,
        "error_codes": {str(k): v for k, v in st.error_codes.items()},
        "lost": st.lost,
        "missed": st.missed,
        "cpu_s": cpu,
        "wall_s": wall,
    }


# --------------------------------------------------------------- watch
async def _watch(cfg: BenchConfig, addrs, go, report) -> dict:
    """N watchers on one znode, one writer: time from setData to the last notification."""
    path = f"{cfg.prefix}/watch"
    value = b"w" * cfg.value_size
    st = RunState(("watch",), 0, 0, 1)
    loop = asyncio.get_running_loop()
    state = {"n": 0, "all": None, "rereg": []}
    n_watch = cfg.sessions

    def make_watcher():
        sess: Session

        def on_event(_err, _body):
            state["n"] += 1
            state["rereg"].append(sess.request(Op.GET_DATA, PathWatchRequest(path, True)))
            if state["n"] == n_watch and state["all"] is not None and not state["all"].done():
                state["all"].set_result(perf_ns())

        sess = Session(cfg.session_timeout_ms, on_event)
        return sess

    watchers = []
    try:
        results = await asyncio.gather(
            *(connect(*addrs[j % len(addrs)], make_watcher, cfg.connect_timeout)
              for j in range(n_watch)), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                for o in results:
                    if not isinstance(o, BaseException):
                        o[0].close()
                raise r
        watchers = [p for _, p in results]
        _, writer = await connect(*addrs[0], lambda: Session(cfg.session_timeout_ms),
                                  cfg.connect_timeout)
        regs = await asyncio.gather(
            *(w.request(Op.GET_DATA, PathWatchRequest(path, True)) for w in watchers))
        if any(err for err, _ in regs):
            raise BenchError(f"cannot watch {path}: error {regs[0][0]}")
        start = await go()
        st.rec_start = start + int(cfg.warmup * 1e9)
        st.rec_end = st.rec_start + int(cfg.duration * 1e9)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        ticker = _ticker(st, report)
        set_tail = request_tail(Op.SET_DATA, SetDataRequest(path, value, -1))
        while perf_ns() < st.rec_end:
            state["n"] = 0
            state["rereg"] = []
            state["all"] = loop.create_future()
            t0 = perf_ns()
            wr = writer.send(*set_tail)
            try:
                t_last = await asyncio.wait_for(state["all"], 10.0)
            except TimeoutError:
                st.error(-7)
                break
            st.record(0, t_last - t0, t_last)
            err, _ = await wr
            if err:
                st.error(err)
            rereg = await asyncio.gather(*state["rereg"])
            for err, _ in rereg:
                if err:
                    st.error(err)
        ticker.cancel()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await writer.close()
        res = _result(st, cpu, wall)
        res["notifications"] = st.ops[0] * n_watch
        return res
    finally:
        for w in watchers:
            if w.transport is not None:
                w.transport.close()


# --------------------------------------------------------------- session
async def _sessions(cfg: BenchConfig, mine, addrs, go, report) -> dict:
    """Each of this worker's loops: connect, handshake, closeSession, disconnect."""
    st = RunState(("session",), 0, 0, len(mine))
    # One probe connection first so an unreachable server fails before the start.
    t, p = await connect(*addrs[mine[0] % len(addrs)] if mine else addrs[0],
                         lambda: Session(cfg.session_timeout_ms), cfg.connect_timeout)
    await p.close()
    start = await go()
    st.rec_start = start + int(cfg.warmup * 1e9)
    st.rec_end = st.rec_start + int(cfg.duration * 1e9)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ticker = _ticker(st, report)

    async def loop_one(j: int) -> None:
        host, port = addrs[j % len(addrs)]
        try:
            while perf_ns() < st.rec_end:
                t0 = perf_ns()
                try:
                    tr, sess = await connect(host, port, lambda: Session(cfg.session_timeout_ms),
                                             cfg.connect_timeout)
                    err, _ = await asyncio.wait_for(sess.request(Op.CLOSE_SESSION), 10.0)
                    tr.close()
                except (TimeoutError, BenchError, ConnectionError):
                    st.error(-4)
                    continue
                if err:
                    st.error(err)
                    continue
                now = perf_ns()
                st.record(0, now - t0, now)
        finally:
            st.session_done()

    tasks = [asyncio.get_running_loop().create_task(loop_one(j)) for j in mine]
    await _wait_done(st, st.rec_end)
    for t in tasks:
        t.cancel()
    ticker.cancel()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _result(st, cpu, wall)
