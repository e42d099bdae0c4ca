"""zabby.testing.linearizability on synthetic histories: it accepts what ZooKeeper may
do and rejects each kind of anomaly the fault tests look for; hypothesis compares the
search with a brute-force enumeration of orders on small random histories."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.testing.linearizability import (
    HistoryRecorder,
    Op,
    check_history,
    check_key_linearizable,
)

K = "/k"
INIT = {K: ("init", 0)}


def op(p, kind, t0, t1, outcome="ok", *, value=None, ev=None, result=None, key=K) -> Op:
    return Op(p, kind, key, float(t0), None if t1 is None else float(t1), outcome,
              value=value, expected_version=ev, result=result)


def w(p, t0, t1, value, result=None, outcome="ok", key=K):
    return op(p, "write", t0, t1, outcome, value=value, result=result, key=key)


def cas(p, t0, t1, ev, value, result=None, outcome="ok"):
    return op(p, "cas", t0, t1, outcome, value=value, ev=ev, result=result)


def r(p, t0, t1, value, version, key=K):
    return op(p, "read", t0, t1, result=(value, version), key=key)


def sr(p, t0, t1, value, version, key=K):
    return op(p, "sread", t0, t1, result=(value, version), key=key)


def valid(history, initial=INIT):
    res = check_history(history, initial)
    assert res.valid is True, res.report()


def invalid(history, *needles, initial=INIT):
    res = check_history(history, initial)
    assert res.valid is False, f"accepted a bad history:\n{res.report()}"
    text = res.report()
    for n in needles:
        assert n in text, text
    return text


# ------------------------------------------------------------------ good histories
def test_sequential_history_is_linearizable():
    valid([w(1, 0, 1, "a", 1), r(1, 2, 3, "a", 1), cas(1, 4, 5, 1, "b", 2),
           sr(2, 6, 7, "b", 2), cas(2, 8, 9, 1, "c", outcome="fail"), r(2, 10, 11, "b", 2)])


def test_concurrent_writes_either_order():
    h = [w(1, 0, 10, "a", 2), w(2, 1, 9, "b", 1), sr(3, 11, 12, "a", 2)]
    valid(h)
    h = [w(1, 0, 10, "a", 1), w(2, 1, 9, "b", 2), sr(3, 11, 12, "b", 2)]
    valid(h)


def test_sread_concurrent_with_write_may_see_either():
    valid([w(1, 0, 10, "a", 1), sr(2, 2, 3, "init", 0), sr(3, 4, 5, "a", 1)])


def test_unknown_write_may_appear_later_or_never():
    valid([w(1, 0, None, "a", outcome="unknown"), sr(2, 5, 6, "init", 0),
           sr(2, 7, 8, "a", 1), w(2, 9, 10, "b", 2)])
    valid([w(1, 0, None, "a", outcome="unknown"), sr(2, 5, 6, "init", 0),
           w(2, 9, 10, "b", 1), sr(2, 11, 12, "b", 1)])


def test_unknown_cas_that_took_effect():
    valid([cas(1, 0, None, 0, "a", outcome="unknown"), cas(2, 1, 2, 1, "b", 2)])


def test_stale_plain_read_of_another_process_is_allowed():
    # sequential consistency: a follower may lag, so a plain read can miss a write
    # another client already saw acknowledged
    valid([w(1, 0, 1, "a", 1), r(2, 2, 3, "init", 0), r(2, 4, 5, "a", 1)])


def test_keys_are_independent():
    init = {K: ("init", 0), "/j": ("j0", 0)}
    valid([w(1, 0, 1, "a", 1), w(1, 2, 3, "x", 1, key="/j"), sr(2, 4, 5, "x", 1, key="/j"),
           sr(2, 6, 7, "a", 1)], initial=init)


def test_recorder_builds_a_checkable_history():
    clock = iter(range(100)).__next__
    rec = HistoryRecorder(clock=lambda: float(clock()))
    h = rec.invoke(1, "write", K, value="a")
    h.ok(1)
    h = rec.invoke(1, "cas", K, value="b", expected_version=0)
    h.fail()
    h = rec.invoke(2, "write", K, value="c")
    h.unknown()
    h = rec.invoke(2, "sread", K)
    h.ok(("a", 1))
    hist = rec.history()
    assert [o.outcome for o in hist] == ["ok", "fail", "unknown", "ok"]
    assert hist[2].complete is None and hist[0].complete == 1.0
    valid(hist)
    h = rec.invoke(3, "sread", K)
    h.ok(("init", 0))  # after everything: stale
    invalid(rec.history(), "not linearizable")


# ------------------------------------------------------------------ bad histories
def test_lost_write():
    text = invalid([w(1, 0, 1, "a", 1), w(2, 2, 3, "b", 2), sr(3, 4, 5, "a", 1)],
                   "not linearizable")
    assert "'b'" in text


def test_lost_write_seen_only_through_versions():
    # the acknowledged version 2 write is gone: a later cas on version 1 succeeds
    invalid([w(1, 0, 1, "a", 1), w(1, 2, 3, "b", 2), cas(2, 4, 5, 1, "c", 2)],
            "not linearizable")


def test_stale_read_after_sync():
    invalid([w(1, 0, 1, "a", 1), sr(2, 2, 3, "init", 0)], "not linearizable")


def test_non_monotonic_plain_reads():
    invalid([w(1, 0, 1, "a", 1), r(2, 2, 3, "a", 1), r(2, 4, 5, "init", 0)],
            "went back in time")


def test_read_your_writes():
    invalid([w(1, 0, 1, "a", 1), r(1, 2, 3, "init", 0)], "went back in time")


def test_cas_succeeding_twice_on_one_version():
    invalid([cas(1, 0, 3, 0, "a", 1), cas(2, 1, 4, 0, "b", 1)], "not linearizable")


def test_cas_twice_on_one_version_seen_only_by_plain_reads():
    # both cas unknown, two followers each show one of them at version 1
    invalid([cas(1, 0, None, 0, "a", outcome="unknown"), cas(2, 0, None, 0, "b", outcome="unknown"),
             r(3, 5, 6, "a", 1), r(4, 5, 6, "b", 1)], "different values")


def test_failed_cas_when_the_version_matched():
    invalid([w(1, 0, 1, "a", 1), cas(2, 2, 3, 1, "b", outcome="fail")], "not linearizable")


def test_unknown_write_appearing_before_it_was_invoked():
    invalid([sr(2, 0, 1, "a", 1), w(1, 2, None, "a", outcome="unknown")], "not linearizable")
    invalid([r(2, 0, 1, "a", 1), w(1, 2, None, "a", outcome="unknown")], "from the future")


def test_unknown_write_that_appears_then_vanishes():
    invalid([w(1, 0, None, "a", outcome="unknown"), sr(2, 1, 2, "a", 1), sr(2, 3, 4, "init", 0)],
            "not linearizable")


def test_definitely_failed_write_appears():
    invalid([w(1, 0, 1, "a", outcome="fail"), sr(2, 2, 3, "a", 1)], "not linearizable")
    invalid([w(1, 0, 1, "a", outcome="fail"), r(2, 2, 3, "a", 1)], "definitely failed")


def test_read_of_a_value_nobody_wrote():
    invalid([r(1, 0, 1, "zzz", 1)], "no operation wrote")


def test_wrong_acknowledged_version():
    invalid([w(1, 0, 1, "a", 1), w(1, 2, 3, "b", 3)], "not linearizable")
    invalid([w(1, 0, 1, "a", 1), r(2, 2, 3, "a", 2)], "its write made version 1")


def test_malformed_history():
    invalid([op(1, "read", 5, 4, result=("init", 0))], "completes before")
    invalid([w(1, 0, 1, "a", 1, key="/nokey")], "no initial state")


def test_budget_gives_no_verdict():
    h = [w(p, 0, None, f"v{p}", outcome="unknown") for p in range(12)]
    h += [sr(99, 10 + i, 11 + i, f"v{i}", i + 1) for i in range(6)]
    h.append(sr(99, 30, 31, "nope", 99))
    verdict, why, steps = check_key_linearizable(h, ("init", 0), max_steps=50)
    assert verdict is None and "budget" in why and steps > 50
    res = check_history(h, INIT, max_steps=50)
    assert res.valid is False  # plain checks still see the read of an unwritten value


def test_many_concurrent_unknown_writes_decide_quickly():
    # 40 unknown writes nobody read, then acknowledged writes whose versions say that
    # exactly 7 of them took effect: symmetry keeps this from costing 2**40 states
    h = [w(p, p * 0.01, None, f"u{p}", outcome="unknown") for p in range(40)]
    h += [w(100, 10, 11, "a", 8), sr(101, 12, 13, "a", 8)]
    res = check_history(h, INIT, max_steps=100_000)
    assert res.valid is True, res.report()
    # ... but no number of them explains a version that went down
    h.append(w(102, 14, 15, "b", 3))
    res = check_history(h, INIT, max_steps=100_000)
    assert res.valid is False, res.report()


# ------------------------------------------------------------------ brute force
def _brute_force(ops: list[Op], initial) -> bool:
    """Every ok/fail op (and any subset of unknown ones) in some order that respects
    real time and the register model."""
    from zabby.testing.linearizability import _linearizable_part, _step

    ops = _linearizable_part(ops)
    must = [o for o in ops if o.outcome != "unknown"]
    maybe = [o for o in ops if o.outcome == "unknown"]
    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            chosen = must + list(extra)
            for perm in itertools.permutations(chosen):
                ok = True
                for a, b in itertools.combinations(perm, 2):
                    # b is placed after a: a must not have been invoked after b returned
                    if b.complete is not None and b.complete < a.invoke:
                        ok = False
                        break
                if not ok:
                    continue
                state = initial
                for o in perm:
                    state = _step(state, o)
                    if state is None:
                        break
                if state is not None:
                    return True
    return False


@st.composite
def small_history(draw):
    n = draw(st.integers(1, 6))
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from(["write", "cas", "sread"]))
        t0 = draw(st.integers(0, 8))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "unknown"]
                                       if kind != "sread" else ["ok"]))
        t1 = None if outcome == "unknown" else t0 + draw(st.integers(0, 6))
        if kind == "sread":
            v = draw(st.integers(0, 3))
            val = "init" if v == 0 else f"x{draw(st.integers(0, n - 1))}"
            ops.append(op(i, "sread", t0, t1, result=(val, v)))
        elif kind == "write":
            res = draw(st.one_of(st.none(), st.integers(1, 3))) if outcome == "ok" else None
            ops.append(w(i, t0, t1, f"x{i}", res, outcome=outcome))
        else:
            ev = draw(st.integers(0, 2))
            res = draw(st.one_of(st.none(), st.integers(1, 3))) if outcome == "ok" else None
            ops.append(cas(i, t0, t1, ev, f"x{i}", res, outcome=outcome))
    return ops


@settings(max_examples=500, deadline=None)
@given(small_history())
def test_search_agrees_with_brute_force(history):
    verdict, why, _ = check_key_linearizable(history, ("init", 0))
    assert verdict == _brute_force(history, ("init", 0)), (
        why, [o.describe() for o in history])


@st.composite
def legal_history(draw):
    """Run ops one at a time on a register, then widen each op's interval around its
    moment; make some writes unknown. Such a history is always linearizable."""
    n = draw(st.integers(1, 25))
    state = ("init", 0)
    ops = []
    for i in range(n):
        t = 10 * i
        kind = draw(st.sampled_from(["write", "cas", "sread", "read"]))
        t0 = t - draw(st.integers(0, 25))
        t1 = t + draw(st.integers(0, 25))
        if kind == "write":
            state = (f"x{i}", state[1] + 1)
            ops.append(w(i % 4, t0, t1, state[0], state[1]))
        elif kind == "cas":
            ev = state[1] if draw(st.booleans()) else state[1] + 1
            if ev == state[1]:
                state = (f"x{i}", state[1] + 1)
                ops.append(cas(i % 4, t0, t1, ev, state[0], state[1]))
            else:
                ops.append(cas(i % 4, t0, t1, ev, f"x{i}", outcome="fail"))
        else:
            ops.append(op(i % 4, kind, t0, t1, result=state))
        if kind in ("write", "cas") and draw(st.integers(0, 5)) == 0:
            ops[-1].outcome, ops[-1].complete, ops[-1].result = "unknown", None, None
    # plain reads of one process must not overlap: give each process its own reads only
    for o in ops:
        if o.kind == "read":
            o.process = ("reader", o.invoke)
    return ops


@settings(max_examples=200, deadline=None)
@given(legal_history())
def test_legal_histories_are_accepted(history):
    res = check_history(history, INIT)
    assert res.valid is True, res.report()


# ------------------------------------------------------- the session prefix (zxids)
A, B = "/a", "/b"
INIT2 = {A: ("a0", 0), B: ("b0", 0)}  # created at zxids 1 and 2


def _z(o: Op, zxid: int) -> Op:
    o.zxid = zxid
    return o


def _p1_writes_a_then_b(zxids: bool = True) -> list[Op]:
    h = [w(1, 0, 1, "a1", 1, key=A), w(1, 2, 3, "b1", 1, key=B)]
    if zxids:
        _z(h[0], 10)
        _z(h[1], 11)
    return h


def test_reading_new_b_then_old_a_is_rejected():
    """The negative control: each key alone is fine (the old a was current when the
    read began), but no prefix of the committed order holds the new b and the old a."""
    h = _p1_writes_a_then_b() + [_z(r(2, 4, 5, "b1", 1, key=B), 11),
                                 _z(r(2, 6, 7, "a0", 0, key=A), 1)]
    invalid(h, "session 2 went back in the committed order", "mzxid 0x1",
            "overwritten at zxid 0xa", initial=INIT2)


def test_without_zxids_the_same_history_passes_key_by_key():
    """What the checker could not see before zxids were recorded (kept, so the prefix
    check above is known to be what rejects it)."""
    h = _p1_writes_a_then_b(zxids=False) + [r(2, 4, 5, "b1", 1, key=B),
                                            r(2, 6, 7, "a0", 0, key=A)]
    valid(h, initial=INIT2)


def test_prefixes_that_only_grow_are_accepted():
    # old a then new b: the prefix grows from before 0xa to 0xb
    valid(_p1_writes_a_then_b() + [_z(r(2, 4, 5, "a0", 0, key=A), 1),
                                   _z(r(2, 6, 7, "b1", 1, key=B), 11)], initial=INIT2)
    # new a then old b: a prefix ending at 0xa holds both
    valid(_p1_writes_a_then_b() + [_z(r(2, 4, 5, "a1", 1, key=A), 10),
                                   _z(r(2, 6, 7, "b0", 0, key=B), 2)], initial=INIT2)
    # an unknown write of a nobody read cannot make a violation
    valid(_p1_writes_a_then_b() + [w(3, 0, None, "a2", outcome="unknown", key=A),
                                   _z(r(2, 4, 5, "b1", 1, key=B), 11),
                                   _z(r(2, 6, 7, "a1", 1, key=A), 10)], initial=INIT2)


def test_a_session_reading_before_its_own_write_on_another_key_is_rejected():
    """Read your writes across keys: after its write of b at 0xb is acknowledged,
    the session cannot read an a that was overwritten at 0xa."""
    h = _p1_writes_a_then_b()
    h.append(_z(w(2, 2.5, 3.5, "b2", 2, key=B), 12))  # p2 writes b after both
    h[1].complete = 2.4
    h += [_z(r(2, 4, 5, "a0", 0, key=A), 1)]
    invalid(h, "session 2 went back in the committed order", initial=INIT2)


def test_an_unknown_write_seen_by_a_read_is_placed_by_its_mzxid():
    """p3's write got no reply, but p2 read it (mzxid 0xc): reading the a it
    overwrote afterwards is going back."""
    h = [_z(w(1, 0, 1, "a1", 1, key=A), 10), w(3, 0, None, "b1", outcome="unknown", key=B),
         _z(r(2, 2, 3, "b1", 1, key=B), 12), _z(w(1, 1.5, 1.8, "a2", 2, key=A), 11),
         _z(r(2, 4, 5, "a1", 1, key=A), 10)]
    invalid(h, "session 2 went back", "overwritten at zxid 0xb", initial=INIT2)
