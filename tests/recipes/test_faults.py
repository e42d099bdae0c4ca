"""Recipes under faults: contenders in separate processes on a 3-member zabby
ensemble while members are killed (SIGKILL, then restarted) and paused
(SIGSTOP/SIGCONT). Every process records what it saw (one monotonic clock for the
machine); the checks run on the merged history:

- never two Lock holders, never more than 2 Semaphore holders, never two leaders
  (a holding ends when the holder is released or told SUSPENDED/LOST);
- every LockingQueue item consumed exactly once, a killed consumer's item included;
- every workflow task completed exactly once, a killed worker's task included;
- every DoubleBarrier participant enters and leaves, no one leaves before all entered;
- the election ends with exactly one leader.
A pause of the ensemble's leader lasts until the others have elected a new one
(bounded by NEW_LEADER_BOUND: the proof that the fault bit), and recipe calls that
raised something other than their timeout are bounded (MAX_ERRORS).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter as Tally
from pathlib import Path

import pytest

from zabby.testing import ZabbyEnsemble

WORKER = Path(__file__).with_name("_worker.py")
WORKERS = 4
DURATION = 12.0  # seconds of faults
SETTLE = 5.0  # then quiet, for the election to converge
MAX_ERRORS = 3  # recipe calls that raised under the faults (see the assertion)


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=f,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


def wait_for(cond, procs: list[subprocess.Popen[bytes]], what: str) -> None:
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, what
        assert all(p.poll() is None for p in procs), f"a worker died: {what}"
        time.sleep(0.1)


def intervals(events: list[dict], role: str, start: str) -> list[tuple[float, float, str]]:
    """[start, first end after it] per worker; an open one runs to +inf."""
    out = []
    open_at: dict[str, float] = {}
    for e in sorted(events, key=lambda e: e["t"]):
        if e["role"] != role:
            continue
        if e["ev"] == start:
            open_at[e["w"]] = e["t"]
        elif e["ev"] == "end" and e["w"] in open_at:
            out.append((open_at.pop(e["w"]), e["t"], e["w"]))
    out.extend((t, float("inf"), w) for w, t in open_at.items())
    return out


def max_overlap(ivs: list[tuple[float, float, str]]) -> tuple[int, float]:
    points = sorted([(s, 1) for s, _, _ in ivs] + [(e, -1) for _, e, _ in ivs],
                    key=lambda p: (p[0], p[1]))  # an end before a start at one instant
    best, cur, when = 0, 0, 0.0
    for t, d in points:
        cur += d
        if cur > best:
            best, when = cur, t
    return best, when


NEW_LEADER_BOUND = 15.0  # seconds from pausing the leader to a new one


def epoch(ens: ZabbyEnsemble, i: int) -> int:
    """Member ``i``'s Zab epoch (mntr's zk_epoch); -1 while it does not answer."""
    try:
        out = ens.members[i].four_letter_word("mntr", timeout=1.0)
    except OSError:
        return -1
    for line in out.splitlines():
        key, _, value = line.partition("\t")
        if key == "zk_epoch":
            return int(value)
    return -1


def leader_of(ens: ZabbyEnsemble, timeout: float = 30.0) -> tuple[int, int]:
    """The member leading the newest epoch, and that epoch."""
    deadline = time.monotonic() + timeout
    while True:
        leading = [(epoch(ens, i), i) for i in ens.members if ens.mode(i) == "leader"]
        if leading:
            e, i = max(leading)
            return i, e
        assert time.monotonic() < deadline, f"no leader within {timeout}s"
        time.sleep(0.05)


def new_leader(ens: ZabbyEnsemble, old: int, old_epoch: int,
               timeout: float = NEW_LEADER_BOUND) -> int:
    """A member other than ``old`` leading an epoch after ``old_epoch`` (a member
    deposed by an earlier pause may still call itself leader); AssertionError
    (naming the fault) when none does within ``timeout`` -- the pause did not bite."""
    others = [i for i in ens.members if i != old]
    deadline = time.monotonic() + timeout
    while True:
        modes = {i: ens.mode(i) for i in others}
        for i, mode in modes.items():
            if mode == "leader" and epoch(ens, i) > old_epoch:
                return i
        assert time.monotonic() < deadline, (
            f"SIGSTOP of leader {old} (epoch {old_epoch}): no new leader among {others} "
            f"within {timeout}s (modes {modes})")
        time.sleep(0.05)


def chaos(ens: ZabbyEnsemble, until: float, rng: random.Random, log: list[str]) -> None:
    """One member at a time: killed and restarted, or paused and resumed. Half the
    pauses hit the leader, and those last until the others have elected a new one
    (the proof that the fault bit), at least 0.5-2 s."""
    while time.monotonic() < until:
        i = rng.choice(list(ens.members))
        m = ens.members[i]
        if rng.random() < 0.5:
            log.append(f"{time.monotonic():.2f} kill {i}")
            m.kill()
            time.sleep(rng.uniform(0.5, 1.5))
            m.start(wait=False)
            ens.wait_serving([i], timeout=30)
        else:
            # any member, and half the time the leader, held until the others lead a
            # newer epoch (at least 0.5-2 s; syncLimit is 1 s). These pauses exposed
            # (issue 15: the lock had 5 holdings in 12 s in 1 run of 4 of seed
            # 168454498): a write forwarded to the paused leader commits after its
            # client has reconnected and read, so the lock looked for its lost create
            # with a plain read (a second node queued behind its own first: stalled
            # to the end) and the workflow's progress retry dropped a task it held;
            # a follower answered a write before the sync sent ahead of it, and the
            # client then forgot the request whose reply was expected (a hung sync)
            leader, old_epoch = leader_of(ens) if rng.random() < 0.5 else (None, -1)
            if leader is not None:
                i, m = leader, ens.members[leader]
            what = "leader " if leader is not None else ""
            log.append(f"{time.monotonic():.2f} pause {what}{i}")
            os.killpg(m.pid, signal.SIGSTOP)
            try:
                hold_until = time.monotonic() + rng.uniform(0.5, 2.0)
                if leader is not None:
                    new = new_leader(ens, leader, old_epoch)
                    log.append(f"{time.monotonic():.2f} new leader {new}")
                time.sleep(max(0.0, hold_until - time.monotonic()))
            finally:
                os.killpg(m.pid, signal.SIGCONT)
        ens.wait_serving(timeout=30)
        time.sleep(rng.uniform(0.3, 1.0))


def test_recipes_under_member_kills_and_pauses(tmp_path):
    seed = int(os.environ.get("ZABBY_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    faults: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    ens = ZabbyEnsemble(tmp_path / "ens", 3, tickTime=200)
    try:
        base = "/faults"
        # the victim queues the items and submits the tasks, then takes one of each
        victim_out = tmp_path / "victim.jsonl"
        victim = spawn([ens.hosts, base, str(victim_out), "victim", str(WORKERS), "0", "0",
                        "victim"], tmp_path / "victim.log")
        procs.append(victim)
        wait_for(lambda: victim_out.exists() and "claimed" in victim_out.read_text(),
                 procs, "the victim did not take its item and task")
        outs = [tmp_path / f"w{i}.jsonl" for i in range(WORKERS)]
        for i, out in enumerate(outs):
            procs.append(spawn([ens.hosts, base, str(out), f"w{i}", str(WORKERS),
                                str(DURATION), str(SETTLE)], tmp_path / f"w{i}.log"))
        wait_for(lambda: all(o.exists() and "started" in o.read_text() for o in outs),
                 procs, "workers did not start")
        faults.append(f"{time.monotonic():.2f} kill victim")
        kill(victim)  # dies holding a queue item and a task: both must be handed on
        chaos_end = time.monotonic() + DURATION
        while time.monotonic() < chaos_end:
            chaos(ens, chaos_end, rng, faults)
        for p in procs[1:]:
            try:
                p.wait(DURATION + SETTLE + 60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"a worker hung (seed {seed}; faults {faults})")
    finally:
        for p in procs:
            kill(p)
        ens.stop()

    events = [json.loads(line) for o in outs for line in o.read_text().splitlines()]
    vic = [json.loads(line) for line in victim_out.read_text().splitlines()]
    where = f"seed {seed}, faults {faults}"
    errors = [e for e in events if e["ev"] == "error"]
    assert not [e for e in errors if e["role"] == "main"], (errors, where)
    # a recipe call that raised something other than its timeout (connection loss
    # at a bad moment): measured 0 in each of 6 runs (seeds 1, 2, 3 and random ones)
    assert len(errors) <= MAX_ERRORS, (f"{len(errors)} recipe errors (bound {MAX_ERRORS})",
                                       errors[:10], where)

    locks = intervals(events, "lock", "acq")
    sems = intervals(events, "sem", "acq")
    leads = intervals(events, "elect", "lead")
    suspended = sum(1 for e in events if e["ev"] == "end" and e.get("why") != "release")
    print(f"seed {seed}: {len(locks)} lock, {len(sems)} semaphore, {len(leads)} leader "
          f"holdings; {suspended} ended by SUSPENDED/LOST; errors {len(errors)}; "
          f"faults {faults}")

    # exclusion
    assert len(locks) > 10, where
    assert max_overlap(locks)[0] == 1, (max_overlap(locks), where)
    assert len(sems) > 10, where
    assert max_overlap(sems)[0] <= 2, (max_overlap(sems), where)
    assert leads, where
    assert max_overlap(leads)[0] == 1, (max_overlap(leads), where)

    # election converges to one leader
    finals = [e for e in events if e["role"] == "elect" and e["ev"] == "final"]
    assert len(finals) == WORKERS, where
    assert sum(e["leader"] for e in finals) == 1, (finals, where)

    # exactly once
    consumed = Tally(e["item"] for e in events if e["ev"] == "consumed")
    assert set(consumed) == {str(i) for i in range(40)}, (sorted(consumed), where)
    assert set(consumed.values()) == {1}, (consumed, where)
    completed = Tally(e["task"] for e in events if e["ev"] == "completed")
    assert set(completed) == {f"t{i:03d}" for i in range(40)}, (sorted(completed), where)
    assert set(completed.values()) == {1}, (completed, where)
    took = [e for e in vic if e["ev"] in ("took", "claimed")]
    assert len(took) == 2 and all(e.get("item") or e.get("task") for e in took), vic

    # barriers: everyone released, nobody out before all were in
    for rnd in range(2):
        ins = [e for e in events if e["role"] == "barrier" and e["ev"] == "entered"
               and e["round"] == rnd]
        outs_ = [e for e in events if e["role"] == "barrier" and e["ev"] == "left"
                 and e["round"] == rnd]
        assert len(ins) == WORKERS and len(outs_) == WORKERS, (rnd, ins, outs_, where)
        assert max(e["t"] for e in ins) <= min(e["t"] for e in outs_), where


def test_history_checker_sees_a_double_holding():
    ev = [{"t": 1.0, "w": "a", "role": "lock", "ev": "acq"},
          {"t": 2.0, "w": "b", "role": "lock", "ev": "acq"},
          {"t": 2.5, "w": "a", "role": "lock", "ev": "end"},
          {"t": 3.0, "w": "b", "role": "lock", "ev": "end"},
          {"t": 3.0, "w": "c", "role": "lock", "ev": "acq"}]
    ivs = intervals(ev, "lock", "acq")
    assert max_overlap(ivs) == (2, 2.0)
    assert max_overlap(ivs[1:]) == (1, 2.0)  # an end and a start at one instant: fine
    assert (3.0, float("inf"), "c") in ivs  # never released: held to the end
