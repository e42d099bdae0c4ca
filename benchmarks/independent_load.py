"""zabby against Apache ZooKeeper 3.8 under a load generator that is not zabby's.

    python benchmarks/independent_load.py [--modes standalone,ensemble] [--rounds 3]
        [--loads get:1x1,set:1x1,get:32x1,set:32x1,get:32x16,set:32x16]
        [--seconds 5] [--warmup 1] [--out DIR]

`zabby bench compare` drives both servers with zabby's own Python client. This drives
them with `zkc_load` (benchmarks/zkc_load.c), built here against Apache ZooKeeper's C
client library (`apt-get install libzookeeper-mt-dev`), so neither zabby's wire codec
nor its bench client is in the loop. Both servers are started as `zabby bench compare`
starts them (the same zoo.cfg keys, ZooKeeper with the same JVM flags), and the rounds
alternate between them, so a drift of this shared machine's load favours neither.
Prints, for every load (SESSIONSxOUTSTANDING), each side's median over the rounds:
ops/s, p50, p99, the server's CPU (all its processes) and the generator's, and the
ratios zabby / ZooKeeper. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zabby.bench.compare import KINDS, LABEL, proc_cpu_seconds, start_target

HERE = Path(__file__).resolve().parent
DEFAULT_LOADS = "get:1x1,set:1x1,get:32x1,set:32x1,get:32x16,set:32x16"


def build(out: Path) -> Path:
    exe = out / "zkc_load"
    cmd = ["cc", "-O2", "-o", str(exe), str(HERE / "zkc_load.c"), "-lzookeeper_mt", "-lpthread"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"building zkc_load failed (is libzookeeper-mt-dev installed?):\n{r.stderr}")
    return exe


def parse_loads(spec: str) -> list[tuple[str, int, int]]:
    loads = []
    for item in spec.split(","):
        op, _, shape = item.partition(":")
        n, _, m = shape.partition("x")
        if op not in ("get", "set") or not n.isdigit() or not m.isdigit():
            sys.exit(f"bad load {item!r}: want get|set:SESSIONSxOUTSTANDING")
        loads.append((op, int(n), int(m)))
    return loads


def run_once(exe: Path, target, op: str, n: int, m: int, args) -> dict:
    pids = target.pids()
    cpu0 = sum(proc_cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), target.hosts, op, str(n), str(m), str(args.seconds),
                        str(args.warmup), str(args.value), str(args.keys)],
                       capture_output=True, text=True, timeout=args.seconds + args.warmup + 120)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"zkc_load failed on {target.kind}: {r.stderr.strip()}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    # the server's CPU over the generator's whole run (connect and warm-up included)
    res["server_cpu_pct"] = round(100 * (sum(proc_cpu_seconds(p) for p in pids) - cpu0) / wall, 1)
    res["client_cpu_pct"] = round(100 * res["client_cpu_s"] / res["seconds"], 1)
    return res


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="standalone,ensemble")
    ap.add_argument("--loads", default=DEFAULT_LOADS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--value", type=int, default=1024, help="value bytes (1 KiB, as the issue)")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--out", default=None, help="directory for results.json and results.md")
    args = ap.parse_args(argv)
    loads = parse_loads(args.loads)
    work = Path(tempfile.mkdtemp(prefix="zabby-independent-"))
    exe = build(work)
    rows, raw = [], []
    try:
        for mode in args.modes.split(","):
            targets = {}
            try:
                for kind in KINDS:
                    targets[kind] = start_target(kind, mode, work / f"{mode}-{kind}")
                warm = argparse.Namespace(**{**vars(args), "seconds": 4.0})
                for kind in KINDS:  # warm both up (JIT, caches, log preallocation)
                    for op in ("set", "get"):
                        run_once(exe, targets[kind], op, 32, 16, warm)
                for op, n, m in loads:
                    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
                    for r in range(args.rounds):
                        for kind in (KINDS if r % 2 == 0 else KINDS[::-1]):
                            res = run_once(exe, targets[kind], op, n, m, args)
                            res.update(mode=mode, op=op, sessions=n, outstanding=m,
                                       server=kind, round=r)
                            runs[kind].append(res)
                            raw.append(res)
                            print(f"{mode} {op} {n}x{m} {LABEL[kind]}: "
                                  f"{res['ops_per_sec']:,.0f} ops/s p50 {res['p50_ms']:.3f} "
                                  f"p99 {res['p99_ms']:.3f} ms, server CPU "
                                  f"{res['server_cpu_pct']:.0f}%, generator CPU "
                                  f"{res['client_cpu_pct']:.0f}%, errors {res['errors']}",
                                  flush=True)
                    rows.append((mode, op, n, m, runs))
            finally:
                for t in targets.values():
                    t.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = ("| mode | op | load | zabby ops/s | ZK ops/s | ops zabby/ZK | zabby p50 ms | "
            "ZK p50 ms | p50 zabby/ZK | zabby p99 ms | ZK p99 ms | p99 zabby/ZK | "
            "server CPU zabby/ZK | generator CPU zabby/ZK |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for mode, op, n, m, runs in rows:
        z, k = runs["zabby"], runs["zookeeper"]
        zo, ko = median_of(z, "ops_per_sec"), median_of(k, "ops_per_sec")
        z50, k50 = median_of(z, "p50_ms"), median_of(k, "p50_ms")
        z99, k99 = median_of(z, "p99_ms"), median_of(k, "p99_ms")
        lines.append(
            f"| {mode} | {op} | {n}x{m} | {zo:,.0f} | {ko:,.0f} | {ratio(zo, ko)} | "
            f"{z50:.3f} | {k50:.3f} | {ratio(z50, k50)} | {z99:.3f} | {k99:.3f} | "
            f"{ratio(z99, k99)} | {median_of(z, 'server_cpu_pct'):.0f}% / "
            f"{median_of(k, 'server_cpu_pct'):.0f}% | {median_of(z, 'client_cpu_pct'):.0f}% / "
            f"{median_of(k, 'client_cpu_pct'):.0f}% |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(raw, indent=1))
        cmd = "python benchmarks/independent_load.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]))
        (out / "results.md").write_text(f"```\n{cmd}\n```\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
