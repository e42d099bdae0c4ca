"""The differential harness itself: equal behaviour gives no diff, different behaviour does."""

from __future__ import annotations

import struct
import time

import pytest

from zabby.testing.differential import Normaliser, Runner, Transcript, compare, run_scenario
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.rawclient import RawClient
from zabby.testing.servers import ZooKeeperServer
from zabby.wire import (
    Create2Response,
    EventType,
    GetChildren2Response,
    GetChildrenResponse,
    Op,
    PathResponse,
    Stat,
    StatResponse,
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
