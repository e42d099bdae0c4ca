"""Seeded tests: which seeds to run, from an environment variable."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
from typing import Any


def seeds_from_env(var: str, default: list[int]) -> list[int]:
    """`default` unless `var` is set: "N" runs seeds 0..N-1, "3,17" those, "10-20"
    that range (inclusive)."""
    spec = os.environ.get(var, "").strip()
    if not spec:
        return default
    if "," in spec:
        return [int(x) for x in spec.split(",") if x.strip()]
    if "-" in spec:
        a, b = spec.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return list(range(int(spec)))


# ------------------------------------------------- simulation seeds on both cores
# The two deterministic simulations are CPU-bound and independent per seed, so their
# tests hand seeds to a pool of worker processes (the machine CI runs on has 2 cores
# and the suite is otherwise one process). A seed's run does not depend on the process
# it runs in (tests/sim: `test_a_seed_replays_exactly_in_another_process`).
_pool: Any = None


def seed_pool(workers: int | None = None):
    """The shared process pool (spawned on first use, `close_seed_pool` ends it);
    ZABBY_SEED_WORKERS sets its size (default: the machine's cores, at most 4)."""
    global _pool
    if _pool is None:
        n = workers or int(os.environ.get("ZABBY_SEED_WORKERS", "0") or 0) \
            or min(4, os.cpu_count() or 1)
        _pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=n, mp_context=multiprocessing.get_context("spawn"),
            initializer=_quiet)
    return _pool


def close_seed_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
        _pool = None


def _quiet() -> None:
    # the members log every election and sync; a failure's trace says what matters
    logging.disable(logging.WARNING)


def run_sim_seed(seed: int) -> tuple[dict | None, str | None]:
    """One seed of the whole-server simulation (zabby.sim): (its stats, None), or
    (None, what failed with the replay command and the trace's end)."""
    from ..sim import Simulation, SimulationFailure

    sim = Simulation(seed)
    try:
        return sim.run(), None
    except SimulationFailure as e:
        return None, (f"{e}\n  replay: python -m zabby.sim --seed {seed} -v\n  "
                      + "\n  ".join(sim.trace[-15:]))


def run_consensus_seed(seed: int, reconfig: bool = False) -> str | None:
    """One seed of the consensus simulation (zabby.consensus.sim; `reconfig`: with
    membership changes): None, or what failed with the replay command and the trace's
    end."""
    from ..consensus.sim import Simulation, SimulationFailure

    sim = Simulation(seed, reconfig=reconfig)
    try:
        sim.run()
        return None
    except SimulationFailure as e:
        flag = " --reconfig" if reconfig else ""
        return (f"{e}\n  replay: python -m zabby.consensus.sim --seed {seed} -v{flag}\n  "
                + "\n  ".join(sim.trace[-60:]))
