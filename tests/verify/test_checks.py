"""Negative controls for zabby verify's checks: deliberately broken histories must be
INVALID with the anomaly named, and the same histories without the flaw VALID (so a
check that can never fail, or always fails, is caught)."""

from __future__ import annotations

import pytest

from zabby.verify.checks import check_all
from zabby.verify.history import History, load
from zabby.wire.constants import EventType

R = "/root"
K0, K1, WP = f"{R}/w/k0", f"{R}/w/k1", f"{R}/wp"
INITIAL = {f"{R}/r0": ("init", 0)}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def new() -> History:
    return History(clock=Clock())


def names(h: History) -> set[str]:
    return {f"{a.workload}/{a.name}" for a in check_all(h, INITIAL).anomalies}


def verdict(h: History) -> str:
    return check_all(h, INITIAL).verdict


# ------------------------------------------------------------------ registers
def _write(h: History, proc: str, value: str, version: int, zxid: int) -> None:
    op = h.registers.invoke(proc, "write", f"{R}/r0", value=value)
    op.ok(version, zxid=zxid)


def _read(h: History, proc: str, kind: str, value: str, version: int, zxid: int) -> None:
    op = h.registers.invoke(proc, kind, f"{R}/r0")
    op.ok((value, version), zxid=zxid)


@pytest.mark.parametrize("broken", [False, True])
def test_lost_acknowledged_write(broken):
    h = new()
    _write(h, "p1", "a", 1, 10)
    if broken:  # the final sync+read finds the register as it was before the write
        _read(h, "final-m1", "sread", "init", 0, 2)
    else:
        _read(h, "final-m1", "sread", "a", 1, 10)
    got = names(h)
    if broken:
        assert "register/lost-write" in got and "register/not-linearizable" in got
    else:
        assert got == set()


@pytest.mark.parametrize("broken", [False, True])
def test_stale_read(broken):
    h = new()
    _write(h, "p1", "a", 1, 10)
    _write(h, "p1", "b", 2, 11)
    _read(h, "p2", "read", "b", 2, 11)
    if broken:  # the same session then reads the older value: it went back in time
        _read(h, "p2", "read", "a", 1, 10)
    else:
        _read(h, "p2", "read", "b", 2, 11)
    assert ("register/stale-read" in names(h)) is broken


# ------------------------------------------------------------------ watches
def _seg(h, proc, seg, reg, resumed=False):
    h.note("watch", proc, "segment", seg=seg, reg=reg, resumed=resumed)


def _arm(h, proc, path, version, seg=1, hzxid=5):
    h.note("watch", proc, "arm", path=path, version=version, mzxid=0, hzxid=hzxid, seg=seg)


def _event(h, proc, path, etype=EventType.NODE_DATA_CHANGED, seg=1, catchup=False):
    h.note("watch", proc, "event", type=int(etype), path=path, seg=seg, catchup=catchup)


def _wread(h, proc, path, version, seg=1, hzxid=50, final=False, kind="read"):
    h.note("watch", proc, kind, path=path, version=version, mzxid=0, hzxid=hzxid, seg=seg,
           final=final)


def _set(h, path, version, zxid):
    e = h.begin("watch", "writer", "set", path=path)
    h.done(e, "ok", version=version, zxid=zxid)


def _final_children(h, children):
    h.note("final", "collector", "watch", children=children)


@pytest.mark.parametrize("flaw", [None, "duplicate", "missing", "early-read"])
def test_one_shot_watch(flaw):
    h = new()
    _set(h, K0, 1, 20)
    _seg(h, "w", 1, 5)
    _arm(h, "w", K0, 0)
    if flaw == "early-read":  # the change is visible before its event
        _wread(h, "w", K0, 1)
    if flaw != "missing":
        _event(h, "w", K0)
    if flaw == "duplicate":
        _event(h, "w", K0)
    if flaw == "missing":
        _wread(h, "w", K0, 1, final=True)
    else:
        _arm(h, "w", K0, 1)
    _final_children(h, {})
    want = {None: set(), "duplicate": {"watch/duplicate-event"},
            "missing": {"watch/missing-event"}, "early-read": {"watch/read-before-event"}}[flaw]
    assert names(h) == want


@pytest.mark.parametrize("broken", [False, True])
def test_events_out_of_zxid_order(broken):
    h = new()
    _set(h, K0, 1, 20)
    _set(h, K1, 1, 30)
    _seg(h, "w", 1, 5)
    _arm(h, "w", K0, 0)
    _arm(h, "w", K1, 0)
    first, second = (K1, K0) if broken else (K0, K1)
    _event(h, "w", first)
    _event(h, "w", second)
    _final_children(h, {})
    assert names(h) == ({"watch/out-of-order"} if broken else set())


def test_catchup_events_after_a_reconnect_are_not_held_to_order():
    h = new()
    _set(h, K0, 1, 20)
    _set(h, K1, 1, 30)
    _seg(h, "w", 1, 5)
    _arm(h, "w", K0, 0)
    _arm(h, "w", K1, 0)
    _seg(h, "w", 2, 40, resumed=True)
    _event(h, "w", K1, seg=2, catchup=True)
    _event(h, "w", K0, seg=2, catchup=True)
    _final_children(h, {})
    assert names(h) == set()


@pytest.mark.parametrize("flaw", [None, "missing", "duplicate", "disorder", "disconnected"])
def test_recursive_watch(flaw):
    h = new()
    c1, c2 = f"{R}/wr/c-1", f"{R}/wr/c-2"
    _seg(h, "w", 1, 5)
    if flaw == "disorder":
        _event(h, "w", c2, EventType.NODE_CREATED)
        _event(h, "w", c1, EventType.NODE_CREATED)
    elif flaw == "disconnected":
        # c2 (zxid 30) committed after the last reply seen on connection 1 (25) and
        # before the watch was registered again on connection 2 (35): ZooKeeper does not
        # replay persistent watch events, so it may be missing
        _event(h, "w", c1, EventType.NODE_CREATED)
        _wread(h, "w", K0, 0, hzxid=25)
        _seg(h, "w", 2, 35, resumed=True)
        _wread(h, "w", K0, 0, seg=2, hzxid=50)
    else:
        if flaw != "missing":
            _event(h, "w", c1, EventType.NODE_CREATED)
        _event(h, "w", c2, EventType.NODE_CREATED)
        if flaw == "duplicate":
            _event(h, "w", c2, EventType.NODE_CREATED)
    _wread(h, "w", K0, 0, hzxid=50, seg=2 if flaw == "disconnected" else 1)
    _final_children(h, {c1: 20, c2: 30})
    want = {None: set(), "missing": {"watch/missing-event"},
            "duplicate": {"watch/duplicate-event"}, "disorder": {"watch/out-of-order"},
            "disconnected": set()}[flaw]
    assert names(h) == want


@pytest.mark.parametrize("flaw", [None, "missing", "duplicate"])
def test_persistent_watch(flaw):
    h = new()
    _seg(h, "w", 1, 5)
    _wread(h, "w", WP, 3, kind="pread")  # the connection starts from version 3
    _event(h, "w", WP)
    if flaw != "missing":
        _event(h, "w", WP)
    if flaw == "duplicate":
        _event(h, "w", WP)
    _wread(h, "w", WP, 5, kind="pread")
    _final_children(h, {})
    want = {None: set(), "missing": {"watch/missing-event"},
            "duplicate": {"watch/duplicate-event"}}[flaw]
    assert names(h) == want


# ------------------------------------------------------------------ lock, queue, ...
def _guarded(h, proc, what, node, zxid):
    e = h.begin("lock", proc, what, node=node)
    h.done(e, "ok", zxid=zxid)


@pytest.mark.parametrize("broken", [False, True])
def test_two_lock_holders(broken):
    h = new()
    _guarded(h, "a", "enter", "/l/lk-1", 10)
    if broken:
        _guarded(h, "b", "enter", "/l/lk-2", 11)
        _guarded(h, "a", "exit", "/l/lk-1", 12)
        _guarded(h, "b", "exit", "/l/lk-2", 13)
    else:
        _guarded(h, "a", "exit", "/l/lk-1", 11)
        _guarded(h, "b", "enter", "/l/lk-2", 12)
        _guarded(h, "b", "exit", "/l/lk-2", 13)
    assert names(h) == ({"lock/two-holders"} if broken else set())


def test_a_holder_whose_exit_failed_does_not_count_as_overlapping():
    h = new()
    _guarded(h, "a", "enter", "/l/lk-1", 10)  # then a's session expired: its exit failed
    e = h.begin("lock", "a", "exit", node="/l/lk-1")
    h.done(e, "fail", err=-101)
    _guarded(h, "b", "enter", "/l/lk-2", 12)
    _guarded(h, "b", "exit", "/l/lk-2", 13)
    assert names(h) == set()


@pytest.mark.parametrize("flaw", [None, "twice", "lost"])
def test_queue(flaw):
    h = new()
    for i in (1, 2):
        e = h.begin("queue", "p", "put", token=f"t{i}")
        h.done(e, "ok", path=f"{R}/q/item-{i}", zxid=i)
    takers = ["c1", "c2"] if flaw == "twice" else ["c1"]
    for c in takers:
        e = h.begin("queue", c, "take", path=f"{R}/q/item-1")
        h.done(e, "ok", zxid=9)
    left = [] if flaw == "lost" else ["item-2"]
    h.note("final", "collector", "queue", children=left)
    want = {None: set(), "twice": {"queue/consumed-twice"}, "lost": {"queue/lost-item"}}[flaw]
    assert names(h) == want


@pytest.mark.parametrize("flaw", [None, "lost-update", "not-atomic"])
def test_counter(flaw):
    h = new()
    for i, v in enumerate((1, 1 if flaw == "lost-update" else 2)):
        e = h.begin("counter", f"p{i}", "incr", token=f"t{i}", base=v - 1)
        h.done(e, "ok", value=v, zxid=10 + i)
    value = 1 if flaw == "lost-update" else 2
    log = ["inc-t0", "inc-t1"] if flaw != "not-atomic" else ["inc-t0", "inc-t1"]
    if flaw == "not-atomic":
        value = 3
    h.note("final", "collector", "counter", value=value, log=log)
    got = names(h)
    if flaw is None:
        assert got == set()
    elif flaw == "lost-update":
        assert "counter/lost-update" in got
    else:
        assert "counter/multi-not-atomic" in got


@pytest.mark.parametrize("flaw", [None, "duplicate", "lost"])
def test_sequential(flaw):
    h = new()
    names_ = ["n-1", "n-1" if flaw == "duplicate" else "n-2"]
    for i, n in enumerate(names_):
        e = h.begin("seq", "p", "create", token=f"t{i}")
        h.done(e, "ok", path=f"{R}/seq/{n}", zxid=i)
    final = {"n-1": "t0", "n-2": "t1"}
    if flaw == "lost":
        del final["n-2"]
    h.note("final", "collector", "seq", children=final)
    got = names(h)
    want = {None: set(), "duplicate": "seq/duplicate-name", "lost": "seq/lost-create"}[flaw]
    assert got == set() if flaw is None else want in got


@pytest.mark.parametrize("flaw", [None, "vanished", "outlived"])
def test_ephemeral(flaw):
    h = new()
    node = f"{R}/eph/o-1"
    e = h.begin("eph", "o", "create", node=node)
    h.done(e, "ok", err=0)
    e = h.begin("eph", "obs", "observe", node=node)
    h.done(e, "ok", exists=flaw != "vanished", zxid=3)
    e = h.begin("eph", "o", "touch", node=node)
    h.done(e, "ok", zxid=4)
    e = h.begin("eph", "o", "close", node=node)
    h.done(e, "ok")
    e = h.begin("eph", "obs", "observe", node=node)
    h.done(e, "ok", exists=flaw == "outlived", zxid=6)
    want = {None: set(), "vanished": {"eph/vanished-early"},
            "outlived": {"eph/outlived-session"}}[flaw]
    assert names(h) == want


def test_history_round_trips_through_json_lines(tmp_path):
    h = new()
    _write(h, "p1", "a", 1, 10)
    _read(h, "final-m1", "sread", "init", 0, 2)
    _seg(h, "w", 1, 5)
    _arm(h, "w", K0, 0)
    _event(h, "w", K0)
    _event(h, "w", K0)
    _final_children(h, {})
    h.dump(tmp_path / "history.jsonl")
    again = load(tmp_path / "history.jsonl")
    assert names(again) == names(h) >= {"register/lost-write", "watch/duplicate-event"}
    assert verdict(again) == "INVALID"


@pytest.mark.parametrize("create", ["ok", "unknown"])
def test_own_ephemeral_missing_in_a_live_session(create):
    """NONODE for its own ephemeral, then the session answers again: INVALID when the
    create was acknowledged; after a create without a reply (it may never have
    happened) that is no anomaly (found by a seeded run, seed 20)."""
    h = new()
    node = f"{R}/eph/o-1"
    e = h.begin("eph", "o", "create", node=node)
    h.done(e, create)
    e = h.begin("eph", "o", "touch", node=node)
    h.done(e, "fail", err=-101)
    e = h.begin("eph", "o", "close", node=node)
    h.done(e, "ok")
    assert names(h) == ({"eph/vanished-early"} if create == "ok" else set())


# ------------------------------------------------------------------ members agree
def test_members_that_hold_different_trees_are_invalid(tmp_path):
    h = new()
    same = {"/r": [1, 1, 0, 0], "/r/a": [2, 5, 3, 1234]}
    h.note("final", "collector-m1", "tree", member=1, nodes=same)
    h.note("final", "collector-m2", "tree", member=2, nodes=dict(same))
    r = check_all(h, {})
    assert r.verdict == "VALID" and r.stats["members_compared"] == 2
    # member 3 serves another value at the same version (rebuilt from damaged data)
    h.note("final", "collector-m3", "tree", member=3,
           nodes={"/r": [1, 1, 0, 0], "/r/a": [2, 5, 3, 999]})
    r = check_all(h, {})
    assert [f"{a.workload}/{a.name}" for a in r.anomalies] == ["members/diverged"]
    assert "member 3" in r.anomalies[0].detail and "/r/a" in r.anomalies[0].detail
    # and the same from the history file
    h.dump(tmp_path / "h.jsonl")
    assert check_all(load(tmp_path / "h.jsonl"), {}).verdict == "INVALID"
