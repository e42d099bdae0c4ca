"""The whole-server deterministic simulation (zabby.sim): seeds in CI, exact replay,
and negative controls that show its checks can fail.

A failing seed replays with ``python -m zabby.sim --seed N -v`` (add ``--log`` for
the servers' own log lines). ZABBY_SIM_SEEDS=a-b runs another range here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from zabby.sim import Simulation, SimulationFailure
from zabby.sim import cluster as sim_cluster
from zabby.sim.run import _seeds
from zabby.testing.seeds import run_sim_seed

# 120 seeds in chunks (each chunk is a test: its time stays under the per-test limit).
# It was 200 until the request path's compile added ~27 s to the install and the CI
# run reached 1191 s of its 1200 (2026-12-06); ZABBY_SIM_SEEDS=0-999 runs more.
SEEDS = _seeds(os.environ.get("ZABBY_SIM_SEEDS", "0-119"))
CHUNK = 20


@pytest.fixture(autouse=True)
def _quiet_servers():
    """The members log every election and sync; the trace says what matters."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("first", range(0, len(SEEDS), CHUNK),
                         ids=lambda i: f"seeds{SEEDS[i]}-{SEEDS[min(i + CHUNK, len(SEEDS)) - 1]}")
def test_seeds(first, seed_pool):
    # the seeds run in worker processes, one per core (zabby.testing.seeds)
    results = list(seed_pool.map(run_sim_seed, SEEDS[first:first + CHUNK]))
    failures = [f for _, f in results if f is not None]
    runs = [st for st, _ in results if st is not None]
    assert not failures, "\n".join(failures)
    # the runs did something: writes committed, faults injected, clients served
    assert len(runs) == len(results)
    assert all(st["txns"] > 50 and st["ok"] > 50 for st in runs), runs
    assert sum(st["faults"] for st in runs) >= 5 * len(runs)
    assert sum(st["elections"] > 1 for st in runs) >= len(runs) // 2


def test_a_seed_replays_exactly_in_another_process():
    """The same seed, run in two fresh processes with different hash seeds, records
    the same history (the CLI prints its digest)."""
    out = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        r = subprocess.run([sys.executable, "-m", "zabby.sim", "--seed", "7"], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        line = next(x for x in r.stdout.splitlines() if x.startswith("faults="))
        out.append(dict(kv.split("=", 1) for kv in line.split()))
    for o in out:
        o.pop("real_s")
    assert out[0] == out[1]  # history digest, ops, txns, faults, elections...


def test_in_process_runs_of_a_seed_agree():
    a, b = Simulation(3).run(), Simulation(3).run()
    a.pop("real_s"), b.pop("real_s")
    assert a == b


# ------------------------------------------------------------------ negative controls
@pytest.mark.parametrize("seed", [1, 2, 10, 19])
def test_acknowledging_before_fsync_is_caught(seed, monkeypatch):
    """Whole-ensemble power losses while disks are slow: with the real commit path
    nothing acknowledged is lost; acknowledging before the fsync loses writes that
    clients saw succeed, and the checks say so (acknowledged transactions gone, a
    register history with no linearization, or one gone back under a session that
    saw it newer)."""
    faults = ("blackout", "slowdisk")
    assert Simulation(seed, faults=faults).run()["ok"] > 50
    monkeypatch.setattr(sim_cluster.SimCommitter, "ack_before_fsync", True)
    with pytest.raises(SimulationFailure, match="transactions lost|not linearizable|after seeing"):
        Simulation(seed, faults=faults).run()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_server_that_drops_a_watch_event_is_caught(seed):
    """zabby.test.dropWatchEvent=5: each member loses the 5th event it would send."""
    Simulation(seed, faults=("reset",)).run()
    with pytest.raises(SimulationFailure, match="before the event|never fired"):
        Simulation(seed, faults=("reset",), extra_config=("zabby.test.dropWatchEvent=5",)).run()
