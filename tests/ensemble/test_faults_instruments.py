"""The fault tests' own instruments (faults.py), shown able to fail without a server:
the quorum arithmetic that decides which faults leave no quorum, the window check
for writes acknowledged without one, and the bounds on unknown outcomes and odd
replies."""

from __future__ import annotations

import threading

from zabby.testing.linearizability import HistoryRecorder

from .faults import (
    MAX_ODD_REPLIES,
    UNKNOWN_PER_WORKER_AND_FAULT,
    Worker,
    acked_during,
    check_counts,
    has_quorum,
)


def test_has_quorum_follows_the_leaders_links():
    ids = [1, 2, 3]
    assert has_quorum(ids, [])
    assert has_quorum(ids, [(1, 2), (1, 3)])  # 2-3 still a majority
    assert has_quorum(ids, [(1, 3)])  # a bridge: 2 sees both
    assert not has_quorum(ids, [(1, 2), (1, 3), (2, 3)])
    five = [1, 2, 3, 4, 5]
    assert has_quorum(five, [(a, b) for a in (1, 2) for b in (3, 4, 5)])  # 3-4-5
    pairs = [(a, b) for a in five for b in five if a < b]
    assert not has_quorum(five, pairs)
    # {1,2} | {3,4} | {5}: nobody reaches three
    split = [p for p in pairs if not (set(p) <= {1, 2} or set(p) <= {3, 4})]
    assert not has_quorum(five, split)


def _clock(times):
    it = iter(times)
    return lambda: next(it)


def test_acked_during_sees_only_writes_invoked_and_acked_inside_the_window():
    rec = HistoryRecorder(clock=_clock([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.5]))
    before = rec.invoke("p", "write", "/r0", value="a")  # invoked at 1, before the window
    inside = rec.invoke("q", "write", "/r0", value="b")  # 2
    before.ok(1)  # 3: invoked before the cut, may have committed before it
    inside.ok(2)  # 4
    read = rec.invoke("r", "read", "/r0")  # 5
    read.ok(("b", 2))  # 6
    late = rec.invoke("s", "cas", "/r0", value="c", expected_version=2)  # 7
    late.ok(3)  # 8: after the heal
    lost = rec.invoke("t", "write", "/r0", value="d")  # 9
    lost.unknown()
    got = acked_during(rec.history(), 1.5, 7.5)
    assert [o.value for o in got] == ["b"]


def _workers(n: int) -> list[Worker]:
    stop = threading.Event()
    return [Worker(i, i, [], HistoryRecorder(), stop) for i in range(n)]


def test_check_counts_bounds_unknown_outcomes_and_odd_replies():
    workers = _workers(4)
    rec = HistoryRecorder()
    bound = UNKNOWN_PER_WORKER_AND_FAULT * 4 * 3
    for n in range(bound):
        rec.invoke(f"w{n % 4}s1", "write", "/r0", value=str(n)).unknown()
    for n in range(50):  # the probes' unknowns do not count
        rec.invoke("queued-x", "write", "/r0", value=f"q{n}").unknown()
    assert check_counts(rec.history(), workers, 3) == []
    rec.invoke("w0s2", "cas", "/r1", value="x", expected_version=0).unknown()
    problems = check_counts(rec.history(), workers, 3)
    assert len(problems) == 1 and f"{bound + 1} worker ops" in problems[0]
    workers[1].odd_count = MAX_ODD_REPLIES + 1
    workers[1].odd_errors.append("setData /r0: err -4")
    problems = check_counts(rec.history(), workers, 4)
    assert len(problems) == 1 and "odd replies" in problems[0] and "err -4" in problems[0]
