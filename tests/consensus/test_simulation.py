"""Whole-ensemble deterministic simulation over many seeds.

ZABBY_SIM_SEEDS=N runs seeds 0..N-1 (default 800, about 25 s);
ZABBY_SIM_SEED=S runs one seed verbosely. A failure prints the seed and the
one-line replay command: python -m zabby.consensus.sim --seed S -v
"""

import os
import subprocess
import sys

import pytest

from zabby.consensus.sim import Simulation, run_seed
from zabby.testing.seeds import run_consensus_seed

N_SEEDS = int(os.environ.get("ZABBY_SIM_SEEDS", "800"))
CHUNK = 50

# seeds that once exposed a bug (see the commit log); kept on top of the range
REGRESSIONS = [0, 2, 5, 17, 29, 132, 1306, 3039]


def _run(pool, seeds):
    # the seeds run in worker processes, one per core (zabby.testing.seeds)
    failures = [f for f in pool.map(run_consensus_seed, seeds) if f is not None]
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(0)
@pytest.mark.parametrize("start", range(0, N_SEEDS, CHUNK))
def test_seeds(start, seed_pool):
    _run(seed_pool, range(start, min(start + CHUNK, N_SEEDS)))


def test_regression_seeds(seed_pool):
    _run(seed_pool, REGRESSIONS)


@pytest.mark.skipif("ZABBY_SIM_SEED" not in os.environ, reason="set ZABBY_SIM_SEED to replay")
def test_replay_one_seed():
    run_seed(int(os.environ["ZABBY_SIM_SEED"]), verbose=True)


def test_same_seed_same_run():
    a, b = Simulation(17), Simulation(17)
    sa, sb = a.run(), b.run()
    assert sa == sb and a.canonical == b.canonical and a.trace == b.trace


def test_simulation_exercises_the_faults():
    kinds: dict[str, int] = {}
    for s in range(40):
        sim = Simulation(s)
        sim.run()
        for k, v in sim.kinds.items():
            kinds[k] = kinds.get(k, 0) + v
    for k in (": DIFF", ": SNAP", ": TRUNC", "stepped down", "malformed", "unknown server",
              "resyncing"):
        assert kinds.get(k, 0) > 0, (k, kinds)


_INJECTED_BUG = """
from zabby.consensus import peer as peer_mod
from zabby.consensus.sim import Simulation, SimulationFailure

assert not getattr(peer_mod, "__file__", "").endswith(".so")
orig = peer_mod.Peer._advance_commit

def bad(self):
    if self._eff_durable() > self._commit:
        old = self._commit
        self._commit = self._eff_durable()
        self._commit_to_learners(old)
        self._emit_commits()
    orig(self)

peer_mod.Peer._advance_commit = bad
caught = 0
for s in range(60):
    try:
        Simulation(s).run()
    except SimulationFailure:
        caught += 1
print("caught", caught)
"""


def test_injected_bug_is_caught():
    """The checker is not vacuous: a leader that commits on its own ack alone loses
    acknowledged writes, and some seed notices. (In a pure-Python child: a compiled
    Peer's methods cannot be replaced, and its own calls would not see the bug.)"""
    env = dict(os.environ, ZABBY_PURE_PYTHON="1")
    p = subprocess.run([sys.executable, "-c", _INJECTED_BUG], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    caught = int(p.stdout.split()[-1])
    assert caught > 0


# membership changes: two more servers start outside the configuration and client
# writes are now and then reconfigs among all of them (ZABBY_SIM_RECONFIG_SEEDS)
N_RECONFIG_SEEDS = int(os.environ.get("ZABBY_SIM_RECONFIG_SEEDS", "150"))
RECONFIG_REGRESSIONS = [6, 56, 122]


@pytest.mark.timeout(0)
def test_seeds_with_reconfig(seed_pool):
    seeds = [*RECONFIG_REGRESSIONS, *range(1000, 1000 + N_RECONFIG_SEEDS)]
    failures = [f for f in seed_pool.map(run_consensus_seed, seeds, [True] * len(seeds))
                if f is not None]
    assert not failures, "\n".join(failures)
