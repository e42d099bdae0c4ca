"""Network partitions under a recorded register workload, checked for linearizability.

Each member runs in its own network namespace, joined by veth pairs to a bridge in
the test's own namespace, where the clients are (faults.NetLab). A seeded nemesis
cuts links with neighbour entries to a MAC that does not exist (established TCP
connections stall as on a real partition), holds the partition for longer than
syncLimit, and heals it:
  isolate_leader       the leader loses every other member; clients still reach it,
                       so until it steps down it is an old leader they talk to
  isolate_leader_all   the same, and the clients lose it too
  isolate_follower     one follower loses every other member
  leader_in_minority   (5 members) the leader and one follower vs the other three
  bridge               two halves that cannot see each other, and one member that
                       sees both (3 members: only the link between two is cut)
  clients_lose_leader  the servers are whole, the clients cannot reach the leader
Every kind happens once per seed, in a seeded order. After each heal a leader exists
and a write commits within HEAL_BOUND. At the end the whole ensemble is killed and
restarted; every member answers sync + read of every key; the history must be
linearizable (faults.py / zabby.testing.linearizability), with no acknowledged write
lost and every member agreeing.

The test skips only when network namespaces cannot be made here (EPERM) and CI is
not "true"; the namespaces are deleted at the end whatever happens.
"""

from __future__ import annotations

import random
import time

import pytest

from .faults import (
    HEAL_BOUND,
    IO_TIMEOUT,
    TICK_MS,
    NetLab,
    NetnsEnsemble,
    NetnsUnavailable,
    QueuedOps,
    Workload,
    check_run,
    dump_history,
    final_reads,
    logs,
    probe_write,
    running,
    seeds,
    setup_keys,
    summary,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)

KINDS = ("isolate_leader", "isolate_leader_all", "isolate_follower", "leader_in_minority",
         "bridge", "clients_lose_leader")


def _params():
    return [pytest.param(3 if s % 2 == 0 else 5, s, id=f"n{3 if s % 2 == 0 else 5}-seed{s}")
            for s in seeds([0, 1])]


def _partition(kind: str, lab: NetLab, ids: list[int], leader: int, rng: random.Random) -> str:
    others = [i for i in ids if i != leader]
    rng.shuffle(others)
    if kind == "isolate_leader":
        lab.partition([leader], others)
        return f"leader {leader} | {others}"
    if kind == "isolate_leader_all":
        lab.partition([leader], others + ["C"])
        return f"leader {leader} | {others} + clients"
    if kind == "isolate_follower":
        f = others[0]
        lab.partition([f], [i for i in ids if i != f])
        return f"follower {f} | the rest"
    if kind == "leader_in_minority":
        small = [leader] + others[: (len(ids) - 1) // 2 - 1]
        big = [i for i in ids if i not in small]
        lab.partition(small, big)
        return f"{small} (with leader) | {big}"
    if kind == "bridge":
        order = [leader] + others
        rng.shuffle(order)
        half = len(order) // 2
        a, mid, b = order[:half], order[half], order[half + 1:]
        lab.partition(a, b)
        return f"{a} | {b}, {mid} sees both"
    if kind == "clients_lose_leader":
        lab.cut(leader, "C")
        return f"clients | leader {leader}"
    raise AssertionError(kind)


@pytest.mark.parametrize("n,seed", _params())
def test_partitions_keep_history_linearizable(tmp_path, n, seed):
    rng = random.Random(seed)
    kinds = list(KINDS)
    rng.shuffle(kinds)
    lab = NetLab(n)
    try:
        lab.setup()
    except NetnsUnavailable as e:
        lab.cleanup()
        pytest.skip(f"cannot create network namespaces here ({e}); CI is not true")
    ens = None
    wl = None
    timeline: list[str] = []
    cleanup_errors: list[str] = []
    try:
        ens = NetnsEnsemble(tmp_path, lab, tickTime=TICK_MS)
        ens.start(timeout=30)
        endpoints = ens.endpoints
        ids = list(ens.members)
        initial = setup_keys(endpoints, lab.br)
        wl = Workload(endpoints, workers=4, seed=seed, ns=lab.br)
        t0 = time.monotonic()

        def note(what: str) -> None:
            timeline.append(f"{time.monotonic() - t0:7.2f}s (t={time.monotonic():.3f}) {what}")

        wl.start()
        wait_for(lambda: sum(w.ops for w in wl.workers) > 100, 20, "the workload to start")
        for kind in kinds:
            leader = ens.leader(timeout=HEAL_BOUND)
            queued = None
            held = rng.uniform(2.0, 3.0)  # syncLimit is 5 ticks = 1s
            if kind in ("isolate_leader", "leader_in_minority"):
                m = ens.members[leader]
                queued = QueuedOps((m.host, m.port), lab.br, wl.rec, f"{kind}{len(timeline)}",
                                   leader)
                queued.prepare()
            note(f"{kind}: " + _partition(kind, lab, ids, leader, rng))
            if queued is not None:
                queued.fire(wait=held + IO_TIMEOUT)
            time.sleep(held)
            lab.heal()
            note("healed")
            if queued is not None:
                queued.join(IO_TIMEOUT + 5)
                note(f"requests queued at the cut-off leader: {queued.outcomes}")
            start = time.monotonic()
            ens.wait_serving(timeout=HEAL_BOUND)
            new = ens.leader(timeout=HEAL_BOUND)
            probe_write(endpoints, lab.br, HEAL_BOUND)
            note(f"leader {new}; a write committed {time.monotonic() - start:.2f}s after the heal")
            time.sleep(rng.uniform(0.8, 1.5))
        wl.stop()
        for m in ens.members.values():
            m.kill()
        for m in ens.members.values():
            m.start(wait=False)
        ens.wait_serving(timeout=HEAL_BOUND)
        ens.leader(timeout=HEAL_BOUND)
        finals = final_reads(ens, wl.rec, lab.br)
        history = wl.rec.history()
        dump_history(history, tmp_path / "history.jsonl")
        res, problems = check_run(history, initial, finals)
        odd = [e for w in wl.workers for e in w.odd_errors]
        report = (f"seed {seed}, {n} members, faults {kinds}, history in "
                  f"{tmp_path}/history.jsonl\n" + "\n".join(timeline)
                  + f"\nhistory: {summary(history)}\nodd replies ({sum(w.odd_count for w in wl.workers)}): {odd[:10]}\n")
        print(report + f"search steps per key: {res.steps}")
        assert res.valid is not None, report + res.report()
        assert res.valid and not problems, (report + res.report() + "\n" + "\n".join(problems)
                                            + "\n" + logs(ens))
        assert any(o.kind == "cas" and o.outcome == "ok" for o in history), report
    finally:
        if wl is not None:
            wl.stop_event.set()
        if ens is not None:
            for m in ens.members.values():
                if running(m):
                    m.stop()
        if wl is not None:
            for t in wl.threads:
                t.join(10)
        cleanup_errors = lab.cleanup()
    assert not cleanup_errors, f"could not delete namespaces: {cleanup_errors}"
