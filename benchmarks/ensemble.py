#!/usr/bin/env python3
"""Issue 4's ensemble benchmark: 3-member zabby against 3-member Apache ZooKeeper 3.8.

Not a test. Both ensembles run on loopback at the same time (only the one being
measured gets load), with the same settings: tickTime=2000, forceSync=yes,
snapCount=100000, maxClientCnxns=0, initLimit=10, syncLimit=5, data directories side
by side under --workdir (one filesystem); ZooKeeper's JVMs get production flags
(G1, full JIT), as in benchmarks/storage.py. Alternating zabby / ZooKeeper:

1. throughput and p50/p99 latency of read, write and mixed (80 % reads) with
   `zabby bench` at 32 sessions spread over all members (session j -> member j % 3);
2. leader failover: a client writes (setData, one at a time) in a loop through the
   two members that are not the leader; the leader gets SIGKILL; the figure is the time
   from the kill to the first successful write *sent after* the kill. The client
   reconnects (a new session, alternating between the two survivors, 10 ms apart) when
   its connection drops, and abandons a request after --request-timeout. The killed
   member is restarted and the ensemble left to settle before the next repetition.

    python benchmarks/ensemble.py                         # full run (~6 min)
    python benchmarks/ensemble.py --quick                 # smoke run (~1 min)
    python benchmarks/ensemble.py --failovers 5 --outstanding 1,8 --json out.json

Prints markdown tables; ratios are zabby / ZooKeeper.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from zabby.bench import BenchError, Session, connect
from zabby.bench.client import OPEN_ACL
from zabby.bench.compare import (
    HEADER,
    KINDS,
    LABEL,
    Target,
    filesystem_of,
    machine,
    md_table,
    measure,
    start_target,
    table_rows,
)
from zabby.bench.runner import arun
from zabby.wire import CreateRequest, Err, Op, SetDataRequest

PATH = "/failover"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ failover
async def _failover(target: Target, leader: int, warm: float, timeout: float,
                    request_timeout: float) -> dict:
    ens = target.handle
    victim = ens.members[leader]
    addrs = [(m.host, m.port) for i, m in ens.members.items() if i != leader]
    perf = time.perf_counter
    st = {"t_kill": None, "before": 0, "reconnects": 0, "errors": {}}

    tr, sess = await connect(*addrs[0], Session, 5.0)
    err, _ = await sess.request(Op.CREATE, CreateRequest(PATH, b"", OPEN_ACL, 0))
    if err not in (0, Err.NODEEXISTS):
        raise BenchError(f"cannot create {PATH}: {err}")

    async def killer() -> None:
        await asyncio.sleep(warm)
        st["t_kill"] = perf()
        os.killpg(victim.pid, signal.SIGKILL)

    ktask = asyncio.get_running_loop().create_task(killer())
    idx = 0
    deadline = perf() + warm + timeout
    value = b"x" * 128
    try:
        while perf() < deadline:
            if sess is None:
                try:
                    tr, sess = await connect(*addrs[idx % len(addrs)], Session, request_timeout)
                except BenchError:
                    idx += 1
                    st["reconnects"] += 1
                    await asyncio.sleep(0.01)
                    continue
            t_send = perf()
            try:
                err, _ = await asyncio.wait_for(
                    sess.request(Op.SET_DATA, SetDataRequest(PATH, value, -1)), request_timeout)
            except (TimeoutError, ConnectionError):
                err = None
            t_reply = perf()
            if err == 0:
                t_kill = st["t_kill"]
                if t_kill is None:
                    st["before"] += 1
                elif t_send >= t_kill:
                    return {"failover_s": t_reply - t_kill, **st}
                continue
            if err is not None:
                st["errors"][str(err)] = st["errors"].get(str(err), 0) + 1
            tr.close()
            sess = None
            idx += 1
        return {"failover_s": None, **st}
    finally:
        ktask.cancel()
        if sess is not None:
            tr.close()


def failover_once(target: Target, args) -> dict:
    ens = target.handle
    ens.wait_serving(timeout=180)
    leader = ens.leader()
    res = arun(_failover(target, leader, args.warm, args.timeout, args.request_timeout))
    res["killed"] = leader
    victim = ens.members[leader]
    try:
        victim.proc.wait(5)
    except Exception:  # noqa: BLE001 - reaped below by stop() anyway
        pass
    try:
        res["new_leader"] = ens.leader(timeout=60)
    except Exception:  # noqa: BLE001
        res["new_leader"] = None
    victim.start(wait=False)
    ens.wait_serving(timeout=180)
    time.sleep(args.settle)
    return res


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--sessions", type=int, default=32)
    p.add_argument("--outstanding", default="1,8")
    p.add_argument("--workloads", default="read,write,mixed")
    p.add_argument("--read-pct", type=float, default=80.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--value-size", type=int, default=128)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--failovers", type=int, default=5, help="repetitions per server")
    p.add_argument("--warm", type=float, default=2.0, help="seconds of writes before the kill")
    p.add_argument("--timeout", type=float, default=60.0, help="give up on a failover after")
    p.add_argument("--request-timeout", type=float, default=5.0)
    p.add_argument("--settle", type=float, default=3.0, help="seconds after the restart")
    p.add_argument("--workdir", help="parent of the servers' directories (default /tmp)")
    p.add_argument("--quick", action="store_true",
                   help="2 s runs, outstanding 1, 2 failovers (a smoke run)")
    p.add_argument("--json", help="also write raw results here")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.outstanding, args.failovers = 2.0, 0.5, "1", 2
    opts = {"sessions": args.sessions, "outstanding": [int(x) for x in args.outstanding.split(",")],
            "duration": args.duration, "warmup": args.warmup, "keys": args.keys,
            "value_size": args.value_size, "read_pct": args.read_pct, "procs": 1}
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="zabby-ensemble-bench-", dir=args.workdir))
    info = machine()
    info["filesystem"] = filesystem_of(base)
    say(f"{info}; servers under {base}")
    targets: dict[str, Target] = {}
    rows, raw, fo = [], [], {k: [] for k in KINDS}
    t_start = time.perf_counter()
    try:
        for kind in KINDS:
            t0 = time.perf_counter()
            targets[kind] = start_target(kind, "ensemble", base / kind, args.members)
            say(f"{LABEL[kind]} ensemble serving on {targets[kind].hosts} "
                f"({time.perf_counter() - t0:.1f} s), leader {targets[kind].handle.leader()}")
        for w in args.workloads.split(","):
            for m in opts["outstanding"]:
                res = {}
                for kind in KINDS:
                    r = measure(targets[kind], w, m, opts)
                    res[kind] = r
                    raw.append(r)
                    lat = r["latency_ms"]
                    say(f"{w} m={m} {LABEL[kind]}: {r['ops_per_sec']:,.0f} ops/s p50 "
                        f"{lat['p50']:.2f} p99 {lat['p99']:.2f} ms, server CPU "
                        f"{r['server_cpu_pct']:.0f}% (3 members), bench CPU "
                        f"{r['client_cpu_pct']:.0f}%, errors {r['errors']}")
                rows.append({"mode": "ensemble", "workload": w, "outstanding": m, **res})
        for rep in range(args.failovers):
            for kind in (KINDS if rep % 2 == 0 else KINDS[::-1]):
                r = failover_once(targets[kind], args)
                r["server"], r["rep"] = kind, rep
                fo[kind].append(r)
                s = "gave up" if r["failover_s"] is None else f"{r['failover_s'] * 1000:.0f} ms"
                say(f"failover {rep + 1}/{args.failovers} {LABEL[kind]}: killed member "
                    f"{r['killed']}, new leader {r['new_leader']}, first write after {s} "
                    f"({r['before']} writes before, {r['reconnects']} refused connects, "
                    f"errors {r['errors']})")
    finally:
        for t in targets.values():
            t.stop()
        shutil.rmtree(base, ignore_errors=True)
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["total_s"] = round(time.perf_counter() - t_start, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": info, "options": opts, "argv": sys.argv, "throughput": raw,
             "failover": fo}, indent=1, default=str))

    print(f"{args.members}-member ensembles on loopback; {args.sessions} sessions spread over "
          f"all members, {args.value_size} B values, {args.keys} keys, mixed = "
          f"{args.read_pct:g}% reads, {args.duration:g} s after {args.warmup:g} s warm-up; "
          f"server CPU summed over the members; load average at start "
          f"{info['loadavg_at_start']}, at end {info['loadavg_at_end']}; total "
          f"{info['total_s']:g} s\n")
    hdr = [h for h in HEADER if h != "mode"]
    print(md_table(hdr, [r[1:] for r in table_rows(rows)]))

    def fmt(v):
        return "gave up" if v is None else f"{v * 1000:,.0f}"

    def stats(kind):
        vals = [r["failover_s"] for r in fo[kind] if r["failover_s"] is not None]
        return (statistics.median(vals) if vals else None, max(vals) if vals else None,
                len(fo[kind]) - len(vals))

    zmed, zmax, zfail = stats("zabby")
    kmed, kmax, kfail = stats("zookeeper")
    print(f"\nLeader failover: kill -9 the leader while one client writes through the other "
          f"members; time from the kill to the first successful write sent after it "
          f"({args.failovers} runs each, alternating)\n")
    print(md_table(
        ["server", "each run (ms)", "median ms", "max ms", "gave up"],
        [[LABEL[k], ", ".join(fmt(r["failover_s"]) for r in fo[k]), fmt(med), fmt(mx), str(nf)]
         for k, med, mx, nf in (("zabby", zmed, zmax, zfail), ("zookeeper", kmed, kmax, kfail))]
        + [["zabby/ZK", "", f"{zmed / kmed:.2f}" if zmed and kmed else "n/a",
            f"{zmax / kmax:.2f}" if zmax and kmax else "n/a", ""]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
