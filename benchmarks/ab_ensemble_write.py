"""A/B one session's setData latency on a 3-member zabby ensemble, two source trees.

    python benchmarks/ab_ensemble_write.py --a /work/main/src --b /tmp/other/src [--rounds 6]
    python benchmarks/ab_ensemble_write.py --a src --b src --b-env ZABBY_X=1   # one tree, two settings
    python benchmarks/ab_ensemble_write.py --a ... --b ... --standalone --load "-w write -n 32 -m 16"

Each round starts a fresh ensemble whose members import zabby from tree A (PYTHONPATH),
runs `zabby bench -w write -n 1 -m 1` against a follower (as `zabby bench compare`'s one
session usually is), stops it, then does the same with tree B; the order alternates
between rounds so that a drift of the machine's load favours neither. Each tree must be
built in place (`python setup.py build_ext --inplace` there) if it is to run compiled:
the members' startup log line says which build they run. Prints each round's p50 and the
median of each side: p50, ops/s, and the servers' CPU time per op (summed over the
members), which the machine's noise moves less than the other two. The bench client
itself always runs from this interpreter's zabby. `--standalone` runs one server per
round instead of an ensemble;
`--load` gives other `zabby bench` arguments than one session of one setData at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

from zabby.testing.servers import ZabbyEnsemble, ZabbyServer

DEFAULT_LOAD = "-w write -n 1 -m 1"


HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of process `pid`, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def one_round(src: str, seconds: float, env: dict[str, str], standalone: bool = False,
              load: str = DEFAULT_LOAD) -> tuple[float, float, float]:
    """(p50 ms, ops/s, server CPU microseconds per op: every member's, summed) of one
    fresh ensemble (or standalone server) whose members run from `src`, with `env`
    added to their environment. A second's run warms the servers up first."""
    members_env = {"PYTHONPATH": src, **env}  # the members inherit os.environ
    old = {k: os.environ.get(k) for k in members_env}
    os.environ.update(members_env)
    d = tempfile.mkdtemp(prefix="ab-ensemble-")
    try:
        ens = ZabbyServer(d) if standalone else ZabbyEnsemble(d, 3, tickTime=2000)
    finally:
        for k, v in old.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    try:
        if isinstance(ens, ZabbyServer):
            hosts = ens.hosts
            pids = [ens.pid]
        else:
            leader = ens.leader()
            hosts = ens.members[next(i for i in ens.members if i != leader)].hosts
            pids = [m.pid for m in ens.members.values()]

        def bench(duration: float) -> dict:
            out = subprocess.run(
                [sys.executable, "-m", "zabby", "bench", "--hosts", hosts, *shlex.split(load),
                 "--warmup", "0", "--duration", str(duration), "--quiet", "--no-progress",
                 "--json"],
                stdout=subprocess.PIPE, text=True, timeout=duration + 60, check=True).stdout
            return json.loads(out.strip().splitlines()[-1])

        bench(1.0)
        before = sum(cpu_ticks(p) for p in pids)
        res = bench(seconds)
        used = (sum(cpu_ticks(p) for p in pids) - before) / HZ
        ops = res["ops_per_sec"]
        # (the CPU window also holds the bench's connect and clean-up: a little high)
        return res["latency_ms"]["p50"], ops, used * 1e6 / max(1.0, ops * seconds)
    finally:
        ens.stop()
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="source tree A (its src/ directory)")
    ap.add_argument("--b", required=True, help="source tree B (its src/ directory)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    ap.add_argument("--standalone", action="store_true",
                    help="one standalone server per round instead of a 3-member ensemble")
    ap.add_argument("--load", default=DEFAULT_LOAD,
                    help="zabby bench arguments (default %(default)r)")
    for side in ("a", "b"):
        ap.add_argument(f"--{side}-env", action="append", default=[], metavar="KEY=VALUE",
                        help=f"an environment variable for side {side.upper()}'s members "
                             "(repeatable)")
    args = ap.parse_args(argv)
    envs = {"A": dict(kv.split("=", 1) for kv in args.a_env),
            "B": dict(kv.split("=", 1) for kv in args.b_env)}
    trees = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    p50s: dict[str, list[float]] = {"A": [], "B": []}
    opss: dict[str, list[float]] = {"A": [], "B": []}
    cpus: dict[str, list[float]] = {"A": [], "B": []}
    for r in range(args.rounds):
        for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
            p50, ops, cpu = one_round(trees[side], args.seconds, envs[side], args.standalone,
                                      args.load)
            p50s[side].append(p50)
            opss[side].append(ops)
            cpus[side].append(cpu)
            print(f"round {r} {side}: p50 {p50:.3f} ms, {ops:,.0f} ops/s, "
                  f"server CPU {cpu:.1f} us/op", flush=True)
    for side, values in p50s.items():
        env = " ".join(f"{k}={v}" for k, v in envs[side].items())
        print(f"{side} ({trees[side]}{', ' + env if env else ''}): median p50 "
              f"{statistics.median(values):.3f} ms of {', '.join(f'{v:.3f}' for v in values)}; "
              f"median {statistics.median(opss[side]):,.0f} ops/s of "
              f"{', '.join(f'{v:,.0f}' for v in opss[side])}; median server CPU "
              f"{statistics.median(cpus[side]):.1f} us/op of "
              f"{', '.join(f'{v:.1f}' for v in cpus[side])}")
    a, b = statistics.median(p50s["A"]), statistics.median(p50s["B"])
    print(f"B/A: p50 {b / a:.3f}, ops/s "
          f"{statistics.median(opss['B']) / statistics.median(opss['A']):.3f}, server CPU "
          f"per op {statistics.median(cpus['B']) / statistics.median(cpus['A']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
