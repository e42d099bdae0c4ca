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
  no_quorum            every member cut from every other (the clients reach all):
                       no write invoked after the cut (the queued-write probe's, at
                       the old leader, at least) may be acknowledged before the heal
Every kind happens once per seed, in a seeded order. Each fault is proven to bite:
every cut link loses datagrams both ways while it is cut and carries them after the
heal (NetLab.prove_cut / prove_linked); when the leader is cut off from a quorum of
the others, a new leader is elected among them (within NEW_LEADER_BOUND) before the
heal, and the cut-off side stops leading (when the clients can still ask it); when
no quorum is left anywhere, every member stops leading and no write invoked after
the cut is acknowledged before the heal; and the queued-write probe of a cut-off
leader must be set up and run (faults.QueuedOps). After each heal a leader exists
and a write commits within HEAL_BOUND. At the end the whole ensemble is killed and
restarted; every member answers sync + read of every key; the history must be
linearizable (faults.py / zabby.testing.linearizability), with no acknowledged write
lost and every member agreeing; unknown outcomes and odd replies are bounded
(faults.check_counts), and the watch workload of `zabby verify` that runs alongside
(faults.WatchLoad) must satisfy the watch guarantees.

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
    NEW_LEADER_BOUND,
    TICK_MS,
    NetLab,
    NetnsEnsemble,
    QueuedOps,
    WatchLoad,
    Workload,
    acked_during,
    check_counts,
    check_run,
    dump_history,
    final_reads,
    has_quorum,
    logs,
    probe_write,
    running,
    seeds,
    set_up_or_skip,
    setup_keys,
    summary,
    wait_for,
    wait_new_leader,
    wait_stepped_down,
)

pytestmark = pytest.mark.timeout(240)

KINDS = ("isolate_leader", "isolate_leader_all", "isolate_follower", "leader_in_minority",
         "bridge", "clients_lose_leader", "no_quorum")


def _params():
    return [pytest.param(3 if s % 2 == 0 else 5, s, id=f"n{3 if s % 2 == 0 else 5}-seed{s}")
            for s in seeds([1])]  # one size each by default (CI time); ZABBY_FAULT_SEEDS for more


def _partition(kind: str, lab: NetLab, ids: list[int], leader: int,
               rng: random.Random) -> tuple[str, list[int]]:
    """Make the partition; returns its description and the members among which a new
    leader must be elected (empty: the old one may stay)."""
    others = [i for i in ids if i != leader]
    rng.shuffle(others)
    if kind == "isolate_leader":
        lab.partition([leader], others)
        return f"leader {leader} | {others}", others
    if kind == "isolate_leader_all":
        lab.partition([leader], others + ["C"])
        return f"leader {leader} | {others} + clients", others
    if kind == "isolate_follower":
        f = others[0]
        lab.partition([f], [i for i in ids if i != f])
        return f"follower {f} | the rest", []
    if kind == "leader_in_minority":
        small = [leader] + others[: (len(ids) - 1) // 2 - 1]
        big = [i for i in ids if i not in small]
        lab.partition(small, big)
        return f"{small} (with leader) | {big}", big
    if kind == "bridge":
        order = [leader] + others
        rng.shuffle(order)
        half = len(order) // 2
        a, mid, b = order[:half], order[half], order[half + 1:]
        lab.partition(a, b)
        return f"{a} | {b}, {mid} sees both", []
    if kind == "clients_lose_leader":
        lab.cut(leader, "C")
        return f"clients | leader {leader}", []
    if kind == "no_quorum":
        lab.partition(*[[i] for i in ids])
        return f"every member alone: {ids}", []
    raise AssertionError(kind)


@pytest.mark.parametrize("n,seed", _params())
def test_partitions_keep_history_linearizable(tmp_path, n, seed):
    rng = random.Random(seed)
    kinds = list(KINDS)
    rng.shuffle(kinds)
    lab = NetLab(n)
    set_up_or_skip(lab)
    ens = None
    wl = None
    wload = None
    timeline: list[str] = []
    cleanup_errors: list[str] = []
    try:
        ens = NetnsEnsemble(tmp_path, lab, tickTime=TICK_MS)
        ens.start(timeout=30)
        endpoints = ens.endpoints
        ids = list(ens.members)
        initial = setup_keys(endpoints, lab.br)
        wl = Workload(endpoints, workers=4, seed=seed, ns=lab.br)
        wload = WatchLoad(endpoints, lab.br, seed)
        wload.setup()
        t0 = time.monotonic()

        def note(what: str) -> None:
            timeline.append(f"{time.monotonic() - t0:7.2f}s (t={time.monotonic():.3f}) {what}")

        wl.start()
        wload.start()
        wait_for(lambda: sum(w.ops for w in wl.workers) > 100, 20, "the workload to start")
        no_quorum_windows: list[tuple[float, float, str]] = []
        probes = 0
        for kind in kinds:
            leader = ens.leader(timeout=HEAL_BOUND)
            queued = None
            held = rng.uniform(2.0, 3.0)  # syncLimit is 5 ticks = 1s
            if kind in ("isolate_leader", "leader_in_minority", "no_quorum"):
                m = ens.members[leader]
                queued = QueuedOps((m.host, m.port), lab.br, wl.rec, f"{kind}{len(timeline)}",
                                   leader)
                queued.prepare()  # AssertionError when it cannot be set up
            desc, must_elect = _partition(kind, lab, ids, leader, rng)
            cut_at = time.monotonic()
            note(f"{kind}: {desc}")
            if queued is not None:
                queued.fire(wait=NEW_LEADER_BOUND + held + IO_TIMEOUT)
            lab.prove_cut()  # every cut link loses datagrams both ways
            quorum = has_quorum(ids, [p for p in lab.cuts if "C" not in p])
            if must_elect:
                new = wait_new_leader(ens, must_elect, leader, f"{kind} ({desc})")
                note(f"new leader {new} elected among {must_elect}")
            # the cut-off side that the clients still reach must stop leading
            stranded = {"isolate_leader": [leader], "no_quorum": ids,
                        "leader_in_minority": [i for i in ids if i not in must_elect]}
            if kind in stranded:
                wait_stepped_down(ens, stranded[kind], f"{kind} ({desc})")
                note(f"no leader left among {stranded[kind]}")
            time.sleep(max(0.0, cut_at + held - time.monotonic()))
            healed_at = time.monotonic()
            lab.prove_linked(lab.heal())  # and carries them again after the heal
            note("healed")
            if not quorum:
                no_quorum_windows.append((cut_at, healed_at, desc))
            if queued is not None:
                queued.join(NEW_LEADER_BOUND + IO_TIMEOUT + 5)
                queued.assert_ran()  # fired at once after the fault: every request went out
                probes += 1
                note(f"requests queued at the cut-off leader: {queued.outcomes}")
            start = time.monotonic()
            ens.wait_serving(timeout=HEAL_BOUND)
            new = ens.leader(timeout=HEAL_BOUND)
            probe_write(endpoints, lab.br, HEAL_BOUND)
            note(f"leader {new}; a write committed {time.monotonic() - start:.2f}s after the heal")
            time.sleep(rng.uniform(0.4, 1.0))  # load on the healed ensemble (shorter since
            # no_quorum was added, to keep the suite's wall time)
        assert probes >= 1, "no queued-write probe of a cut-off leader ran"
        assert no_quorum_windows, "the schedule never left the ensemble without a quorum"
        wl.stop()
        wload.stop()
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
        counts = check_counts(history, wl.workers, len(kinds))
        assert not counts, report + "\n".join(counts)
        wreport, wtext = wload.check()
        print(wtext)
        assert not wreport.anomalies and not wreport.undecided, report + wtext
        assert wreport.stats["watch_events"] > 0, report + wtext  # the checks saw events
        for start, end, desc in no_quorum_windows:
            tried = [o for o in history if o.kind in ("write", "cas") and start <= o.invoke < end]
            assert tried, report + f"no write was even tried with no quorum ({desc})"
            acked = acked_during(history, start, end)
            assert not acked, (report + f"acknowledged with no quorum ({desc}): "
                               + "; ".join(o.describe() for o in acked[:5]))
        assert any(o.kind == "cas" and o.outcome == "ok" for o in history), report
    finally:
        if wload is not None:
            wload.stop_writer.set()
            wload.stop_watcher.set()
        if wl is not None:
            wl.stop_event.set()
        if ens is not None:
            for m in ens.members.values():
                if running(m):
                    m.stop()
        if wl is not None:
            for t in wl.threads:
                t.join(10)
        if wload is not None:
            for w in (wload.writer, wload.watcher):
                if w.thread is not None:
                    w.thread.join(10)
        cleanup_errors = lab.cleanup()
    assert not cleanup_errors, f"could not delete namespaces: {cleanup_errors}"
