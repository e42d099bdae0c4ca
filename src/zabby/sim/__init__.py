"""Whole-server deterministic simulation: complete zabby members (request pipeline,
sessions, tree, watches, log and snapshots on a simulated disk, Zab) and real
clients in one process, on one virtual-time event loop, with network, disk, clock
and process faults drawn from one seed. See `zabby.sim.run` and docs/ARCHITECTURE.md ("Whole-server simulation")."""

from .run import FAULTS, Simulation, SimulationFailure, run_seed

__all__ = ["FAULTS", "Simulation", "SimulationFailure", "run_seed"]
