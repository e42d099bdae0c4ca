#!/usr/bin/env python3
"""Issue 3's storage benchmark: zabby against Apache ZooKeeper 3.8, same machine, same run.

Not a test. Both servers get the same tickTime, forceSync=yes, snapCount,
maxClientCnxns=0 and 4lw whitelist *, with their data directories side by side
under --workdir (one filesystem). Phases alternate zabby / ZooKeeper:

1. write throughput: setData of 1 KiB values on 1000 keys, fsync on, at 1, 8, 32
   and 128 concurrent sessions (one outstanding request each), via zabby.bench;
2. for each data size N (znodes of 1 KiB under /s/dXXXX/nXXXX):
   load N znodes (snapCount high, so no snapshot), stop;
   start with snapCount=2 and time start -> first read ("recovery, log replay");
   force a snapshot with a few setData while a probe session reads in a loop; the
   snapshot time comes from the server's log (zabby: "snapshot at zxid ... written
   in X ms (server paused Y ms)"; ZooKeeper: "[Snapshot Thread] ... Snapshot taken
   in X ms"), the probe's longest read is the pause a client saw;
   stop, start again and time start -> first read ("recovery, snapshot").

    python benchmarks/storage.py                 # 100k and 1M znodes (slow)
    python benchmarks/storage.py --quick         # 20k znodes, short write runs
    python benchmarks/storage.py --sizes 100000,200000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    common_cfg,
    filesystem_of,
    log_size,
    machine,
    make_server,
    md_table,
    proc_cpu_seconds,
    ratio,
    read_log_from,
    timed_start,
)

from zabby.bench import BenchConfig, Session, connect, parse_hosts, run_bench  # noqa: E402
from zabby.bench.client import OPEN_ACL  # noqa: E402
from zabby.bench.runner import arun  # noqa: E402
from zabby.wire import CreateRequest, Op, PathWatchRequest, SetDataRequest  # noqa: E402

KINDS = ("zabby", "zookeeper")
VALUE = b"v" * 1024
PER_DIR = 1000


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ write throughput
def write_throughput(servers: dict, sessions: list[int], warmup: float, duration: float) -> dict:
    out: dict = {k: {} for k in KINDS}
    for n in sessions:
        for kind in KINDS:
            srv = servers[kind]
            cpu0, t0 = proc_cpu_seconds(srv.pid), time.perf_counter()
            res = run_bench(BenchConfig(
                hosts=srv.hosts, workload="write", sessions=n, outstanding=1, warmup=warmup,
                duration=duration, value_size=1024, keys=1000, progress=False,
                prefix="/wbench"))
            server_cpu = (proc_cpu_seconds(srv.pid) - cpu0) / (time.perf_counter() - t0)
            res["server_cpu_pct"] = round(100 * server_cpu, 1)
            out[kind][n] = res
            say(f"write {kind:>9} sessions={n:<4} {res['ops_per_sec']:>9,.0f} ops/s  "
                f"p50 {res['latency_ms']['p50']:.2f} p99 {res['latency_ms']['p99']:.2f} ms  "
                f"server CPU {res['server_cpu_pct']:.0f}%  client CPU {res['client_cpu_pct']:.0f}%")
    return out


# ------------------------------------------------------------------ data load
async def load(hosts: str, n: int, conns: int = 4, window: int = 400) -> None:
    host, port = parse_hosts(hosts)[0]
    sessions = [(await connect(host, port, Session, 10))[1] for _ in range(conns)]
    s0 = sessions[0]
    err, _ = await s0.request(Op.CREATE, CreateRequest("/s", b"", OPEN_ACL, 0))
    dirs = [f"/s/d{i:04d}" for i in range((n + PER_DIR - 1) // PER_DIR)]
    await asyncio.gather(*(s0.request(Op.CREATE, CreateRequest(d, b"", OPEN_ACL, 0)) for d in dirs))

    async def worker(sess: Session, start: int) -> None:
        pending: list = []
        for i in range(start, n, conns):
            pending.append(sess.request(
                Op.CREATE, CreateRequest(f"/s/d{i // PER_DIR:04d}/n{i % PER_DIR:04d}", VALUE,
                                         OPEN_ACL, 0)))
            if len(pending) >= window:
                for err, _ in await asyncio.gather(*pending):
                    if err:
                        raise RuntimeError(f"create failed: error {err}")
                pending = []
        for err, _ in await asyncio.gather(*pending):
            if err:
                raise RuntimeError(f"create failed: error {err}")

    await asyncio.gather(*(worker(s, i) for i, s in enumerate(sessions)))
    for s in sessions:
        await s.close()


# ------------------------------------------------------------------ snapshot
SNAP_RE = {
    "zabby": re.compile(r"snapshot at zxid 0x[0-9a-f]+ written in ([\d.]+) ms "
                        r"\(server paused ([\d.]+) ms\)"),
    "zookeeper": re.compile(r"\[Snapshot Thread:.*Snapshot taken in (\d+) ms"),
}


async def force_snapshot(srv, kind: str, probe_path: str, timeout: float = 900) -> dict:
    """With snapCount=2: a few setData trigger a snapshot; a probe reads meanwhile."""
    host, port = parse_hosts(srv.hosts)[0]
    offset = log_size(srv.log_path)
    _, probe = await connect(host, port, Session, 10)
    lats: list[tuple[float, float]] = []  # (completion time, latency s)
    stop = False

    async def probing() -> None:
        while not stop:
            t0 = time.perf_counter()
            await probe.request(Op.GET_DATA, PathWatchRequest(probe_path, False))
            t1 = time.perf_counter()
            lats.append((t1, t1 - t0))

    task = asyncio.get_running_loop().create_task(probing())
    await asyncio.sleep(1.0)
    t_trigger = time.perf_counter()
    _, writer = await connect(host, port, Session, 10)
    for _ in range(3):
        await writer.request(Op.SET_DATA, SetDataRequest(probe_path, VALUE, -1))
    match = None
    while match is None:
        await asyncio.sleep(0.05)
        match = SNAP_RE[kind].search(read_log_from(srv.log_path, offset))
        if time.perf_counter() - t_trigger > timeout:
            raise RuntimeError(f"{kind}: no snapshot line in the log after {timeout} s")
    await asyncio.sleep(0.5)
    stop = True
    await task
    # Drop the connections without closeSession: closing would log two more txns and,
    # with snapCount=2, start another snapshot that stopping the server would cut short.
    writer.transport.close()
    probe.transport.close()
    await wait_snapshots_done(srv, kind, offset, timeout)
    before = [lat for t, lat in lats if t < t_trigger]
    during = [lat for t, lat in lats if t >= t_trigger]
    res = {
        "snapshot_ms": float(match.group(1)),
        "probe_baseline_max_ms": round(1000 * max(before), 1) if before else None,
        "probe_max_ms": round(1000 * max(during), 1) if during else None,
    }
    if kind == "zabby":
        res["paused_ms"] = float(match.group(2))
    return res


async def wait_snapshots_done(srv, kind: str, offset: int, timeout: float) -> None:
    """Until no snapshot is being written (so stopping the server cuts none short)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if kind == "zookeeper":
            text = read_log_from(srv.log_path, offset)
            busy = text.count("Snapshotting:") > text.count("Snapshot taken in")
        else:  # zabby forks a child per snapshot (its log writer's helper is a child too)
            busy = any(not _is_fsync_helper(c) for c in children(srv.pid))
        if not busy:
            return
        await asyncio.sleep(0.05)


def _is_fsync_helper(pid: str) -> bool:
    """The server's long-lived log writer child (server/fsync_helper.py), not a snapshot."""
    try:
        return b"fsync_helper" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # gone already: not a snapshot being written


def children(pid: int | None) -> list[str]:
    if pid is None:
        return []
    out: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += (task / "children").read_text().split()
        except OSError:
            pass
    return out


def snapshot_and_recovery(kind: str, n: int, workdir: Path) -> dict:
    d = workdir / f"{kind}-{n}"
    shutil.rmtree(d, ignore_errors=True)
    srv = make_server(kind, d, **common_cfg(snapCount=100_000_000))
    res: dict = {}
    try:
        t0 = time.perf_counter()
        arun(load(srv.hosts, n))
        res["load_s"] = round(time.perf_counter() - t0, 1)
        res["load_rate"] = round(n / (time.perf_counter() - t0))
        say(f"{kind}: loaded {n:,} znodes of {len(VALUE)} B in {res['load_s']} s")
        probe = f"/s/d{(n - 1) // PER_DIR:04d}/n{(n - 1) % PER_DIR:04d}"
        srv.stop(timeout=120)
        srv.cfg["snapCount"] = 2
        res["recovery_log_s"] = round(timed_start(srv, probe), 2)
        say(f"{kind}: started from the log alone in {res['recovery_log_s']} s")
        res.update(arun(force_snapshot(srv, kind, probe)))
        say(f"{kind}: snapshot {res['snapshot_ms']} ms, pause {res.get('paused_ms')} ms, "
            f"probe max {res['probe_max_ms']} ms (baseline {res['probe_baseline_max_ms']} ms)")
        srv.stop(timeout=120)
        snaps = sorted((d / "data").rglob("snapshot.*"), key=lambda p: p.stat().st_mtime)
        res["snapshot_mb"] = round(snaps[-1].stat().st_size / 2**20, 1) if snaps else None
        res["recovery_snap_s"] = round(timed_start(srv, probe), 2)
        say(f"{kind}: started from the snapshot in {res['recovery_snap_s']} s")
    finally:
        srv.stop(timeout=120)
        shutil.rmtree(d, ignore_errors=True)
    return res


def empty_start(kind: str, workdir: Path) -> float:
    d = workdir / f"{kind}-empty"
    shutil.rmtree(d, ignore_errors=True)
    srv = make_server(kind, d, start=False, **common_cfg())
    try:
        return round(timed_start(srv), 2)
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ report
def report(results: dict, args, info: dict) -> str:
    lines = []
    w = results["write"]
    rows = []
    for n in args.sessions:
        z, k = w["zabby"][n], w["zookeeper"][n]
        rows.append([n, f"{z['ops_per_sec']:,.0f}", f"{k['ops_per_sec']:,.0f}",
                     ratio(z["ops_per_sec"], k["ops_per_sec"]),
                     f"{z['latency_ms']['p50']:.2f} / {z['latency_ms']['p99']:.2f}",
                     f"{k['latency_ms']['p50']:.2f} / {k['latency_ms']['p99']:.2f}",
                     f"{z['server_cpu_pct']:.0f}% / {k['server_cpu_pct']:.0f}%",
                     f"{z['client_cpu_pct']:.0f}% / {k['client_cpu_pct']:.0f}%"])
    lines.append(f"Write throughput: setData, 1 KiB values, 1000 keys, fsync on, one outstanding "
                 f"request per session, {args.duration:g} s after {args.warmup:g} s warm-up\n")
    lines.append(md_table(
        ["sessions", "zabby ops/s", "ZooKeeper ops/s", "zabby/ZK",
         "zabby p50/p99 ms", "ZK p50/p99 ms", "server CPU zabby/ZK", "bench CPU zabby/ZK"],
        rows))
    lines.append("")
    rows = []
    for n in args.sizes:
        z, k = results["sizes"][n]["zabby"], results["sizes"][n]["zookeeper"]

        def row(label, key, fmt="{:,.0f}", z=z, k=k, n=n):
            a, b = z.get(key), k.get(key)
            rows.append([f"{n:,}", label, fmt.format(a) if a is not None else "n/a",
                         fmt.format(b) if b is not None else "n/a", ratio(a, b)])

        row("load rate (creates/s)", "load_rate")
        row("snapshot time (ms)", "snapshot_ms")
        row("server pause, self-reported (ms)", "paused_ms", "{:,.1f}")
        row("longest probe read during snapshot (ms)", "probe_max_ms", "{:,.1f}")
        row("longest probe read before (ms)", "probe_baseline_max_ms", "{:,.1f}")
        row("snapshot file (MiB)", "snapshot_mb", "{:,.1f}")
        row("recovery from snapshot: start to first read (s)", "recovery_snap_s", "{:,.2f}")
        row("recovery from log only: start to first read (s)", "recovery_log_s", "{:,.2f}")
    e = results["empty"]
    rows.append(["0", "start to first read, empty data dir (s)", f"{e['zabby']:.2f}",
                 f"{e['zookeeper']:.2f}", ratio(e["zabby"], e["zookeeper"])])
    lines.append("Snapshots and recovery: znodes of 1 KiB, 1000 per parent\n")
    lines.append(md_table(["znodes", "measure", "zabby", "ZooKeeper", "zabby/ZK"], rows))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20k znodes, 3 s write runs")
    p.add_argument("--sizes", help="comma-separated znode counts (default 100000,1000000)")
    p.add_argument("--sessions", default="1,8,32,128")
    p.add_argument("--duration", type=float, default=None, help="seconds per write run")
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument("--workdir", default=None, help="where data dirs go (default: a temp dir)")
    p.add_argument("--skip-writes", action="store_true")
    p.add_argument("--json", help="also write raw results to this file")
    args = p.parse_args(argv)
    args.sizes = [int(x) for x in (args.sizes or ("20000" if args.quick else "100000,1000000"))
                  .split(",") if x]
    args.sessions = [int(x) for x in args.sessions.split(",") if x]
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="zabby-storage-"))
    base.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["filesystem"] = filesystem_of(base)
    say(f"machine {info}; data under {base}")
    started = time.perf_counter()
    results: dict = {"machine": info, "write": {k: {} for k in KINDS}, "sizes": {}}
    try:
        if not args.skip_writes:
            servers = {}
            try:
                for kind in KINDS:
                    servers[kind] = make_server(kind, base / f"{kind}-writes", **common_cfg())
                results["write"] = write_throughput(servers, args.sessions, args.warmup,
                                                    args.duration)
            finally:
                for s in servers.values():
                    s.stop()
        results["empty"] = {kind: empty_start(kind, base) for kind in KINDS}
        for n in args.sizes:
            results["sizes"][n] = {kind: snapshot_and_recovery(kind, n, base) for kind in KINDS}
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if args.skip_writes:
        args.sessions = []
    print(f"Machine: {info['nproc']} x {info['cpu']}, {info['mem_gb']} GiB RAM, kernel "
          f"{info['kernel']}, Python {info['python']}, {info['java']}; data on "
          f"{info['filesystem']}. Total run {results['elapsed_s']} s.\n")
    print(report(results, args, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
