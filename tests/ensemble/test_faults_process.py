"""Process faults under a recorded register workload, checked for linearizability.

A seeded nemesis, on a 3- or 5-member ensemble (tickTime 200, syncLimit 5 ticks):
  kill_leader    kill -9 the leader, restart it a moment later
  kill_follower  kill -9 a follower, restart it
  pause_leader   SIGSTOP the leader for longer than syncLimit -- the others must
                 elect a new leader meanwhile (within NEW_LEADER_BOUND: the fault
                 bit) --, then SIGCONT: when it wakes up it must not acknowledge
                 writes the new leader's quorum does not have (the queued-write probe,
                 which must be set up and run, and clients wait longer than the pause
                 for its replies)
  restart_all    kill -9 every member, start them all again
Every kind happens once per seed, in a seeded order, plus one more drawn at random.
After each fault: every member serves, a leader exists and a write commits within
HEAL_BOUND. At the end the whole ensemble is killed and restarted, each member
answers sync + read for every key, and the whole history (linearizable writes, cas
and sync+reads; sequentially consistent plain reads) is checked, along with "no
acknowledged write lost" and "members agree". Unknown outcomes and odd replies
are bounded (faults.check_counts), and `zabby verify`'s watch workload runs alongside
(faults.WatchLoad): its events must satisfy the watch guarantees.
"""

from __future__ import annotations

import random
import time

import pytest

from zabby.testing import ZabbyEnsemble
from zabby.testing.linearizability import HistoryRecorder

from .faults import (
    HEAL_BOUND,
    IO_TIMEOUT,
    NEW_LEADER_BOUND,
    TICK_MS,
    QueuedOps,
    WatchLoad,
    Workload,
    check_counts,
    check_run,
    dump_history,
    final_reads,
    logs,
    loopback_endpoints,
    pause,
    probe_write,
    resume,
    running,
    seeds,
    setup_keys,
    summary,
    wait_for,
    wait_new_leader,
)

pytestmark = pytest.mark.timeout(240)

KINDS = ("kill_leader", "kill_follower", "pause_leader", "restart_all")


def _params():
    return [pytest.param(3 if s % 2 == 0 else 5, s, id=f"n{3 if s % 2 == 0 else 5}-seed{s}")
            for s in seeds([0])]  # one size each by default (CI time); ZABBY_FAULT_SEEDS for more


def _heal_and_probe(ens: ZabbyEnsemble, timeline: list[str], t0: float) -> None:
    start = time.monotonic()
    ens.wait_serving(timeout=HEAL_BOUND)
    leader = ens.leader(timeout=HEAL_BOUND)
    took = probe_write(loopback_endpoints(ens), None, HEAL_BOUND)
    timeline.append(f"{time.monotonic() - t0:7.2f}s healed: leader {leader}, a write committed "
                    f"{time.monotonic() - start:.2f}s after the heal (probe {took:.2f}s)")


def _fault(kind: str, ens: ZabbyEnsemble, rng: random.Random, timeline: list[str], t0: float,
           rec: HistoryRecorder) -> None:
    def note(what: str) -> None:
        timeline.append(f"{time.monotonic() - t0:7.2f}s (t={time.monotonic():.3f}) {what}")

    leader = ens.leader(timeout=HEAL_BOUND)
    if kind == "kill_leader":
        ens.kill(leader)
        note(f"kill -9 leader {leader}")
        time.sleep(rng.uniform(0.5, 2.5))
        ens.members[leader].start(wait=False)
        note(f"restart {leader}")
    elif kind == "kill_follower":
        f = rng.choice([i for i in ens.members if i != leader])
        ens.kill(f)
        note(f"kill -9 follower {f}")
        time.sleep(rng.uniform(0.5, 2.5))
        ens.members[f].start(wait=False)
        note(f"restart {f}")
    elif kind == "pause_leader":
        m = ens.members[leader]
        queued = QueuedOps((m.host, m.port), None, rec, f"pause{len(timeline)}", leader)
        queued.prepare()  # AssertionError when it cannot be set up
        pause(m)
        paused_at = time.monotonic()
        note(f"SIGSTOP leader {leader}")
        held = rng.uniform(1.8, 3.0)  # syncLimit is 5 ticks = 1s
        try:
            queued.fire(wait=NEW_LEADER_BOUND + held + IO_TIMEOUT)
            # the fault bit: the others (a quorum) elect a new leader while it sleeps
            new = wait_new_leader(ens, [i for i in ens.members if i != leader], leader,
                                  f"SIGSTOP of leader {leader}")
            note(f"new leader {new} elected")
            time.sleep(max(0.0, paused_at + held - time.monotonic()))
        finally:
            resume(m)
        note(f"SIGCONT {leader}")
        queued.join(NEW_LEADER_BOUND + held + IO_TIMEOUT + 5)
        queued.assert_ran()  # fired at once after the fault: every request went out
        note(f"requests queued at the paused leader: {queued.outcomes}")
    elif kind == "restart_all":
        for m in ens.members.values():
            m.kill()
        note("kill -9 every member")
        time.sleep(rng.uniform(0.2, 1.0))
        for m in ens.members.values():
            m.start(wait=False)
        note("start every member")
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize("n,seed", _params())
def test_process_faults_keep_history_linearizable(tmp_path, n, seed):
    rng = random.Random(seed)
    kinds = list(KINDS)
    rng.shuffle(kinds)
    kinds.append(rng.choice(KINDS))
    ens = ZabbyEnsemble(tmp_path, n, tickTime=TICK_MS)
    wl = None
    wload = None
    timeline: list[str] = []
    try:
        endpoints = loopback_endpoints(ens)
        initial = setup_keys(endpoints, None)
        wl = Workload(endpoints, workers=4, seed=seed)
        wload = WatchLoad(endpoints, None, seed)
        wload.setup()
        t0 = time.monotonic()
        wl.start()
        wload.start()
        wait_for(lambda: sum(w.ops for w in wl.workers) > 100, 20, "the workload to start")
        for kind in kinds:
            _fault(kind, ens, rng, timeline, t0, wl.rec)
            _heal_and_probe(ens, timeline, t0)
            time.sleep(rng.uniform(0.8, 1.5))  # some load on the healed ensemble
        wl.stop()
        wload.stop()
        # the final heal + whole restart: nothing acknowledged may be lost
        for m in ens.members.values():
            m.kill()
        for m in ens.members.values():
            m.start(wait=False)
        ens.wait_serving(timeout=HEAL_BOUND)
        ens.leader(timeout=HEAL_BOUND)
        finals = final_reads(ens, wl.rec, None)
        history = wl.rec.history()
        dump_history(history, tmp_path / "history.jsonl")
        res, problems = check_run(history, initial, finals)
        odd = [e for w in wl.workers for e in w.odd_errors]
        report = (f"seed {seed}, {n} members, faults {kinds}, history in {tmp_path}/history.jsonl\n" + "\n".join(timeline)
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
        # the workload did reach every kind of outcome it is meant to test
        assert any(o.kind == "cas" and o.outcome == "ok" for o in history), report
        assert any(o.kind == "sread" and o.outcome == "ok" for o in history), report
    finally:
        if wload is not None:
            wload.stop_writer.set()
            wload.stop_watcher.set()
        if wl is not None:
            wl.stop_event.set()
        for m in ens.members.values():
            if running(m):
                resume(m)
        ens.stop()
        if wl is not None:
            for t in wl.threads:
                t.join(10)
        if wload is not None:
            for w in (wload.writer, wload.watcher):
                if w.thread is not None:
                    w.thread.join(10)
