#!/usr/bin/env python3
"""First throughput baseline (issue 5): `zabby bench` read / write / mixed at 32 sessions
against zabby and Apache ZooKeeper 3.8 standalone, alternating, same settings.

    python benchmarks/baseline.py [--duration 10] [--outstanding 1,8] [--procs 1]

Prints a markdown table; ratios are zabby / ZooKeeper.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    common_cfg,
    filesystem_of,
    machine,
    make_server,
    md_table,
    proc_cpu_seconds,
    ratio,
)

from zabby.bench import BenchConfig, run_bench  # noqa: E402

KINDS = ("zabby", "zookeeper")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=32)
    p.add_argument("--outstanding", default="1,8")
    p.add_argument("--workloads", default="read,write,mixed")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--value-size", type=int, default=128)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--json", help="also write raw results here")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="zabby-baseline-"))
    info = machine()
    info["filesystem"] = filesystem_of(base)
    print(f"[{time.strftime('%H:%M:%S')}] {info}", file=sys.stderr, flush=True)
    servers = {}
    rows, raw = [], []
    try:
        for kind in KINDS:
            servers[kind] = make_server(kind, base / kind, **common_cfg())
        for w in args.workloads.split(","):
            for m in [int(x) for x in args.outstanding.split(",")]:
                res = {}
                for kind in KINDS:
                    srv = servers[kind]
                    cpu0, t0 = proc_cpu_seconds(srv.pid), time.perf_counter()
                    r = run_bench(BenchConfig(
                        hosts=srv.hosts, workload=w, sessions=args.sessions, outstanding=m,
                        warmup=args.warmup, duration=args.duration, value_size=args.value_size,
                        procs=args.procs, progress=False))
                    r["server_cpu_pct"] = round(
                        100 * (proc_cpu_seconds(srv.pid) - cpu0) / (time.perf_counter() - t0), 1)
                    r["server"] = kind
                    res[kind] = r
                    raw.append(r)
                    print(f"[{time.strftime('%H:%M:%S')}] {w} m={m} {kind}: "
                          f"{r['ops_per_sec']:,.0f} ops/s p50 {r['latency_ms']['p50']} "
                          f"p99 {r['latency_ms']['p99']} server CPU {r['server_cpu_pct']}% "
                          f"client CPU {r['client_cpu_pct']}%", file=sys.stderr, flush=True)
                z, k = res["zabby"], res["zookeeper"]
                rows.append([
                    w, m, f"{z['ops_per_sec']:,.0f}", f"{k['ops_per_sec']:,.0f}",
                    ratio(z["ops_per_sec"], k["ops_per_sec"]),
                    f"{z['latency_ms']['p50']:.2f} / {z['latency_ms']['p99']:.2f} / "
                    f"{z['latency_ms']['p99.9']:.2f}",
                    f"{k['latency_ms']['p50']:.2f} / {k['latency_ms']['p99']:.2f} / "
                    f"{k['latency_ms']['p99.9']:.2f}",
                    f"{z['server_cpu_pct']:.0f}% / {k['server_cpu_pct']:.0f}%",
                    f"{z['client_cpu_pct']:.0f}% / {k['client_cpu_pct']:.0f}%",
                ])
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "runs": raw}, indent=1))
    print(f"{args.sessions} sessions, {args.value_size} B values, 1000 keys, mixed = 90% reads, "
          f"{args.duration:g} s after {args.warmup:g} s warm-up, bench procs {args.procs}; "
          f"load average at start {info['loadavg_at_start']}\n")
    print(md_table(["workload", "outstanding/session", "zabby ops/s", "ZooKeeper ops/s",
                    "zabby/ZK", "zabby p50/p99/p99.9 ms", "ZK p50/p99/p99.9 ms",
                    "server CPU zabby/ZK", "bench CPU zabby/ZK"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
