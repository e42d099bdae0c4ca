"""zabby.testing.seeds: the simulation seeds' workers report a failing seed with its
replay command, and the pool returns what the workers did."""

from __future__ import annotations

from zabby.consensus import sim as consensus_sim
from zabby.sim import run as sim_run
from zabby.testing.seeds import run_consensus_seed, run_sim_seed


def _failing_run(failure):
    def run(self):
        self.trace.append("the last step before it broke")
        raise failure("history diverged")
    return run


def test_a_failing_consensus_seed_is_reported_with_its_replay(monkeypatch):
    monkeypatch.setattr(consensus_sim.Simulation, "run",
                        _failing_run(consensus_sim.SimulationFailure))
    out = run_consensus_seed(41, reconfig=True)
    assert out is not None
    assert "history diverged" in out
    assert "python -m zabby.consensus.sim --seed 41 -v --reconfig" in out
    assert "the last step before it broke" in out


def test_a_failing_whole_server_seed_is_reported_with_its_replay(monkeypatch):
    monkeypatch.setattr(sim_run.Simulation, "run", _failing_run(sim_run.SimulationFailure))
    stats, out = run_sim_seed(7)
    assert stats is None and out is not None
    assert "python -m zabby.sim --seed 7 -v" in out and "the last step before it broke" in out


def test_the_pool_returns_each_seeds_outcome(seed_pool):
    assert list(seed_pool.map(run_consensus_seed, [0, 1, 2])) == [None, None, None]
    stats, failure = next(iter(seed_pool.map(run_sim_seed, [3])))
    assert failure is None and stats["txns"] > 50


def test_a_seed_gives_the_same_stats_in_a_worker_as_in_process(seed_pool):
    here, _ = run_sim_seed(3)
    there, _ = next(iter(seed_pool.map(run_sim_seed, [3])))
    here.pop("real_s"), there.pop("real_s")
    assert here == there
