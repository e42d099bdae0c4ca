"""CPU time of every thread of a local 3-member zabby ensemble, per write.

    python benchmarks/cpu_per_write.py [--seconds 5] [--load "-w write -n 1 -m 1"]

Starts a fresh ensemble on loopback, warms it up for a second, then runs `zabby bench`
(one session of one setData at a time through a follower, by default) and reads each
member thread's user and system time from /proc/<pid>/task/*/stat before and after.
Prints them per write, for the leader, the follower holding the session (F1) and the
other follower (F2); threads under 2 us per write are left out. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from zabby.testing.servers import ZabbyEnsemble

HZ = os.sysconf("SC_CLK_TCK")


def thread_times(pid: int) -> dict[int, tuple[str, int, int]]:
    """tid -> (name, user ticks, system ticks) of every thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[int(tid)] = (name, int(fields[11]), int(fields[12]))
    return out


def bench(hosts: str, load: str, seconds: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "zabby", "bench", "--hosts", hosts, *shlex.split(load),
         "--warmup", "0", "--duration", str(seconds), "--quiet", "--no-progress", "--json"],
        stdout=subprocess.PIPE, text=True, timeout=seconds + 60, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--load", default="-w write -n 1 -m 1", help="zabby bench arguments")
    args = ap.parse_args(argv)
    d = tempfile.mkdtemp(prefix="zabby-cpu-per-write-")
    ens = ZabbyEnsemble(d, 3, tickTime=2000)
    try:
        leader = ens.leader()
        f1, f2 = (i for i in ens.members if i != leader)
        roles = {leader: "leader", f1: "F1 (session)", f2: "F2"}
        hosts = ens.members[f1].hosts
        bench(hosts, args.load, 1.0)  # warm-up
        before = {s: thread_times(ens.members[s].pid) for s in roles}
        res = bench(hosts, args.load, args.seconds)
        after = {s: thread_times(ens.members[s].pid) for s in roles}
        writes = res["ops_per_sec"] * args.seconds
        print(f"p50 {res['latency_ms']['p50']:.3f} ms, {res['ops_per_sec']:,.0f} ops/s")
        for s, role in roles.items():
            for tid, (name, u, sy) in after[s].items():
                _, u0, s0 = before[s].get(tid, (name, 0, 0))
                us = (u - u0) / HZ * 1e6 / writes
                ss = (sy - s0) / HZ * 1e6 / writes
                if us + ss > 2:
                    print(f"  {role:14s} thread {tid:<7d} {name:16s} user {us:6.1f} us  "
                          f"system {ss:6.1f} us per write")
    finally:
        ens.stop()
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
