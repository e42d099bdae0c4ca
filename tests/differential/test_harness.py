"""The differential harness itself: equal behaviour gives no diff, different behaviour does."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from zabby.testing.differential import Normaliser, Runner, Transcript, compare, run_scenario
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.rawclient import RawClient
from zabby.testing.servers import ZooKeeperServer
from zabby.wire import (
    ConnectResponse,
    Create2Response,
    DeleteRequest,
    EventType,
    FrameDecoder,
    GetChildren2Response,
    GetChildrenResponse,
    Op,
    PathResponse,
    PathWatchRequest,
    Stat,
    StatResponse,
    encode_connect_response,
    encode_notification,
    encode_reply,
)

from .conftest import DIFF_CFG
from .test_scenarios import scenario_create_modes, scenario_watches

pytestmark = pytest.mark.differential


@pytest.fixture(scope="module")
def own_reference(tmp_path_factory):
    """A ZooKeeper of its own: these tests must not change the shared pair's history
    (e.g. the root's cversion), or the scenarios would see different roots."""
    require_zookeeper()
    srv = ZooKeeperServer(tmp_path_factory.mktemp("harness-zookeeper"), **DIFF_CFG)
    try:
        yield srv
    finally:
        srv.stop()


def test_compare_reports_a_changed_line():
    a, b = Transcript("zookeeper"), Transcript("zabby")
    for t in (a, b):
        t.add("#1 a connect -> {}")
    a.add('#2 a CREATE2(\'/x\') -> {"err":"OK"}')
    b.add('#2 a CREATE2(\'/x\') -> {"err":"NODEEXISTS"}')
    diff = compare(a, b)
    assert "-#2 a CREATE2('/x') -> {\"err\":\"OK\"}" in diff
    assert '+#2 a CREATE2(\'/x\') -> {"err":"NODEEXISTS"}' in diff
    a.lines = b.lines[:]
    assert compare(a, b) == ""


def test_normaliser_ranks_zxids_and_names_sessions():
    n = Normaliser()
    n.sessions[0x1234] = "@a"
    st = Stat(czxid=0x500, mzxid=0x502, ctime=17, mtime=17, version=1, cversion=0,
              aversion=0, ephemeralOwner=0x1234, dataLength=3, numChildren=0, pzxid=0x500)
    out = n.stat(st)
    assert (out["czxid"], out["mzxid"], out["pzxid"]) == ("z1", "z2", "z1")
    assert out["ctime"] == "set" and out["mtime_vs_ctime"] == "ge"
    assert out["ephemeralOwner"] == "@a"
    assert n.owner(-0x8000000000000000) == "0x8000000000000000"  # container marker kept
    assert n.owner(0x9999) == "@other"
    assert n.zxid(0) == 0


def test_same_server_twice_gives_no_diff(own_reference):
    """Runs on the reference only: proves the normalisation removes run-to-run noise."""
    ref = own_reference
    for scenario in (scenario_create_modes, scenario_watches):
        a, b, diff = run_scenario(scenario, ref, ref, base="/harness_twice")
        assert diff == "", diff
        assert len(a.lines) > 20


def test_a_deliberately_different_run_is_reported(own_reference):
    ref = own_reference
    calls = []

    def scenario(r: Runner) -> None:
        calls.append(r.transcript.label)
        r.session("a")
        r.create("a", f"{r.base}/n", b"data")
        if len(calls) == 2:  # the "candidate" misbehaves
            r.create("a", f"{r.base}/n", b"again")
        r.get("a", f"{r.base}/n")

    _, _, diff = run_scenario(scenario, ref, ref, base="/harness_broken")
    assert "NODEEXISTS" in diff
    assert diff.count("\n+") >= 1


# ------------------------------------------------ negative controls, no server needed
class _Scripted(RawClient):
    """A session whose server is a script: each request is answered by the frames a
    function of (xid, op) returns (notifications first, then the reply)."""

    def __init__(self, answer) -> None:
        super().__init__("127.0.0.1", 0)
        self.answer = answer

    @property
    def connected(self) -> bool:
        return True

    def send_bytes(self, data: bytes) -> None:
        _, xid, op = struct.unpack_from(">iii", data, 0)
        self.frames.extend(bytes(f[4:]) for f in self.answer(xid, op))


def _scripted_runner(label: str, answer) -> Runner:
    r = Runner.__new__(Runner)
    r.norm, r.transcript, r.step_no, r.base = Normaliser(), Transcript(label), 0, None
    r.zxid_seen = {}
    r.sessions = {"a": _Scripted(answer)}
    return r


_STAT = Stat(czxid=5, mzxid=5, ctime=1, mtime=1, version=0, cversion=1, aversion=0,
             ephemeralOwner=0, dataLength=0, numChildren=1, pzxid=6)


def _now_stat(mtime: int | None = None) -> Stat:
    """_STAT as a setData made now leaves it (mtime: wall-clock ms, unless given)."""
    now = int(time.time() * 1000)
    fields = {name: getattr(_STAT, name) for name, _ in Stat.FIELDS}
    fields.update(ctime=now - 5000, version=1, mtime=now if mtime is None else mtime)
    return Stat(**fields)


def _honest(xid: int, op: int):
    if op == Op.GET_CHILDREN:
        return [encode_reply(xid, 7, 0, GetChildrenResponse(["c"]))]
    if op == Op.CREATE:
        return [encode_reply(xid, 8, 0, PathResponse("/n"))]
    if op == Op.SET_DATA:  # the session's own watch fires before the reply
        return [encode_notification(EventType.NODE_DATA_CHANGED, 3, "/n"),
                encode_reply(xid, 9, 0, StatResponse(_now_stat()))]
    return [encode_reply(xid, 0, 0)]  # ping


def _scenario(r: Runner) -> None:
    r.children("a", "/")
    r.create("a", "/n", op=Op.CREATE)
    r.set("a", "/n", b"x")


def _run(answer) -> Transcript:
    r = _scripted_runner("x", answer)
    _scenario(r)
    return r.transcript


def test_scripted_honest_server_gives_no_diff():
    assert compare(_run(_honest), _run(_honest)) == ""


@pytest.mark.parametrize("op,wrong", [
    (Op.GET_CHILDREN, lambda xid: GetChildren2Response(["c"], _STAT)),
    (Op.CREATE, lambda xid: Create2Response("/n", _STAT)),
])
def test_trailing_bytes_fail_even_when_both_servers_send_them(op, wrong):
    """A GetChildren2 body for getChildren (a Create2 body for create) decodes as the
    right record with bytes left over: the harness fails, whoever sent it."""
    def sloppy(xid, got):
        return [encode_reply(xid, 7, 0, wrong(xid))] if got == op else _honest(xid, got)

    diff = compare(_run(_honest), _run(sloppy))
    assert "byte(s) after the" in diff and '"trailing"' in diff, diff
    both = compare(_run(sloppy), _run(sloppy))  # equal transcripts, still a failure
    assert f"after the {Op(op).name} reply body" in both, both


def test_event_after_the_reply_differs_from_event_before():
    """The same event, once before and once after the write's reply: a diff."""
    def late(xid, op):
        if op == Op.SET_DATA:
            return [encode_reply(xid, 9, 0, StatResponse(_now_stat())),
                    encode_notification(EventType.NODE_DATA_CHANGED, 3, "/n")]
        return _honest(xid, op)

    a, b = _run(_honest), _run(late)
    assert any("event a (before reply): NODE_DATA_CHANGED" in line for line in a.lines), a.text()
    diff = compare(a, b)
    assert "-   event a (before reply): NODE_DATA_CHANGED" in diff, diff
    assert "+   event a: NODE_DATA_CHANGED" in diff, diff


def test_a_reply_zxid_going_back_fails():
    def back(xid, op):
        if op == Op.SET_DATA:
            return [encode_notification(EventType.NODE_DATA_CHANGED, 3, "/n"),
                    encode_reply(xid, 6, 0, StatResponse(_now_stat()))]  # after 0x8 for create
        return _honest(xid, op)

    assert "reply zxid 0x6 is below one it already saw, 0x8" in compare(_run(_honest), _run(back))


@pytest.mark.parametrize("mtime,why", [
    (lambda now: now // 1000, "outside the request's round trip"),  # seconds, not ms
    (lambda now: now - 60_000, "outside the request's round trip"),  # a stale stamp
    (lambda now: now + 60_000, "ms after the reply arrived"),  # from the future
])
def test_stat_times_must_be_the_writes_wall_clock_milliseconds(mtime, why):
    """The transcript says only "set" for a time; the values are checked apart, and
    fail whoever sent them (equal transcripts included)."""
    def clock(xid, op):
        if op == Op.SET_DATA:
            return [encode_notification(EventType.NODE_DATA_CHANGED, 3, "/n"),
                    encode_reply(xid, 9, 0,
                                 StatResponse(_now_stat(mtime(int(time.time() * 1000)))))]
        return _honest(xid, op)

    assert compare(_run(_honest), _run(_honest)) == ""
    both = compare(_run(clock), _run(clock))
    assert why in both and "mtime" in both, both


# ------------------------------------- a reply held back until the server's next request
class _HoldingServer:
    """A TCP server that answers every request at once, except a delete: its reply is
    held until some connection sends another request (what a ZooKeeper 3.8 follower
    now and then does with a write), or for good when `release` is False."""

    def __init__(self, release: bool = True) -> None:
        self.release = release
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[tuple[socket.socket, bytes]] = []
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket) -> None:
        dec = FrameDecoder()
        first = True
        while True:
            try:
                data = s.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            for f in dec.feed(data):
                if first:
                    first = False
                    resp = ConnectResponse(0, 10000, 0x1234 + len(self.conns), b"\x01" * 16)
                    s.sendall(encode_connect_response(resp))
                    continue
                xid, op = struct.unpack_from(">ii", f, 0)
                with self.lock:
                    if self.release:
                        for hs, frame in self.held:
                            hs.sendall(frame)
                        self.held.clear()
                    frame = bytes(encode_reply(xid, 0, 0))
                    if op == Op.DELETE:
                        self.held.append((s, frame))
                    else:
                        s.sendall(frame)

    def late(self) -> None:
        """Send the held replies now."""
        with self.lock:
            for hs, frame in self.held:
                hs.sendall(frame)
            self.held.clear()

    def close(self) -> None:
        self.stopped = True
        self.listener.close()
        for s in self.conns:
            s.close()


@pytest.fixture
def holding_server():
    servers = []

    def make(release: bool = True) -> _HoldingServer:
        servers.append(_HoldingServer(release))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_a_held_write_is_released_by_a_nudge_from_another_session(holding_server):
    srv = holding_server()
    c = RawClient("127.0.0.1", srv.port, io_timeout=5.0)
    other = RawClient("127.0.0.1", srv.port)
    c.connect()
    other.connect()
    c.nudge = lambda: other.request(Op.EXISTS, PathWatchRequest("/", False))
    c.nudge_after = 0.3
    t0 = time.monotonic()
    assert c.request(Op.DELETE, DeleteRequest("/n", -1)).err == 0
    assert 0.3 <= time.monotonic() - t0 < 2.0
    # without the nudge the reply is late: the wait times out ...
    c.nudge = None
    c.io_timeout = 0.5
    with pytest.raises(TimeoutError):
        c.request(Op.DELETE, DeleteRequest("/n", -1))
    timed_out = c.xid
    srv.late()  # ... the late reply comes in before the next request's reply
    c.io_timeout = 5.0
    r = c.request(Op.EXISTS, PathWatchRequest("/", False))
    assert r.xid == timed_out + 1 and r.err == 0  # the late one was dropped
    other.close()
    c.close()


def test_only_a_zookeeper_runner_nudges(holding_server):
    srv = holding_server(release=False)
    server = type("S", (), {"host": "127.0.0.1", "port": srv.port})()
    zk = Runner(server, "zookeeper")
    zb = Runner(server, "zabby")
    assert zk.probe.nudge is not None and zk.session("a").nudge is not None
    assert zb.probe.nudge is None and zb.session("a").nudge is None
    # the nudge is one read from a session of its own; the held delete stays held here
    zk.probe.nudge_after, zk.probe.io_timeout = 0.2, 1.0
    with pytest.raises(TimeoutError):
        zk.probe.request(Op.DELETE, DeleteRequest("/n", -1))
    assert zk.nudged == 1 and zk._nudger is not None and zk._nudger.connected
    for r in (zk, zb):
        r.finish()
