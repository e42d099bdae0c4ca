"""A member paused (SIGSTOP: a long GC pause, a stalled VM) while the rest of the
ensemble moved on learns so from its first message on waking, as ZooKeeper's does when
it finds its peers' sockets closed -- not after syncLimit of serving clients it can no
longer serve (stale reads on a follower; writes a deposed leader cannot commit, which
stalled every lock in a recipe fault test for its whole fault phase).

tickTime 200 ms, syncLimit 5 ticks: each pause lasts well beyond syncLimit (1 s).
"""

from __future__ import annotations

import time

import pytest

from zabby.testing import ZabbyEnsemble

pytestmark = pytest.mark.timeout(120)


def _log(ens: ZabbyEnsemble, i: int) -> str:
    return ens.members[i].log_path.read_text(errors="replace")


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_paused_members_learn_on_waking_that_the_ensemble_moved_on(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 3, tickTime=200)
    try:
        ens.wait_serving(timeout=30)
        leader = ens.leader(timeout=30)
        f = ens.followers(timeout=30)[0]

        # a follower paused past syncLimit: the leader drops it and tells it so
        ens.pause(f)
        _wait(lambda: f"learner {f} silent for syncLimit" in _log(ens, leader), 10,
              "the leader did not drop the paused follower")
        time.sleep(0.5)
        ens.resume(f)
        _wait(lambda: "dropped our session" in _log(ens, f), 2,
              f"follower {f} did not resync on waking:\n{ens.members[f].log_tail()}")
        assert "silent for" not in _log(ens, f)  # it did not wait out syncLimit
        ens.wait_serving([f], timeout=10)

        # the leader paused until the others lead a newer epoch: the first of its old
        # learners it pings answers with that epoch, and it steps down at once
        ens.pause(leader)
        others = [i for i in ens.members if i != leader]
        _wait(lambda: any(ens.mode(i) == "leader" for i in others), 15,
              "no new leader while the old one was paused")
        ens.resume(leader)
        woke = time.monotonic()
        _wait(lambda: "is in a newer epoch" in _log(ens, leader), 2,
              f"the old leader kept leading:\n{ens.members[leader].log_tail()}")
        assert "lost quorum" not in _log(ens, leader), ens.members[leader].log_tail()
        ens.wait_serving(timeout=10)
        assert ens.mode(leader) == "follower"
        print(f"old leader stepped down and rejoined within {time.monotonic() - woke:.2f} s")
    finally:
        ens.stop()
