#!/usr/bin/env python3
"""Client throughput and lock contention (issue 12): zabby.client against kazoo and aiozk,
on zabby and on Apache ZooKeeper 3.8, side by side in one run on this machine.

    python benchmarks/client.py [--duration 3] [--warmup 5] [--window 100] [--size 100]
                                [--contenders 8] [--servers zabby,zookeeper] [--no-locks]

Request workloads: getData and setData of one node of --size bytes. Clients:
  Client pipelined   -- zabby.client.Client, --window requests in flight
  Client 1-by-1      -- zabby.client.Client, one request at a time
  SyncClient 1-by-1  -- zabby.client.SyncClient (a blocking call per request)
  kazoo async        -- kazoo's get_async/set_async, --window in flight
  kazoo 1-by-1       -- kazoo's blocking get/set
  aiozk pipelined    -- aiozk's ZKClient (PyPI, asyncio), --window in flight
Lock workload: --contenders sessions loop acquire/release on one lock path; the figure
is acquisitions per second, all contenders together:
  Client Lock        -- `async with zk.Lock(path, id)` (zabby.recipes), one asyncio loop
  SyncClient Lock    -- `with zk.Lock(path, id)`, one thread per contender
  kazoo Lock         -- kazoo's `with zk.Lock(path, id)`, one thread per contender
Prints markdown tables with the ratios zabby/ZooKeeper (per client) and Client/kazoo,
Client/aiozk (per server), and the machine facts. Not a test: nothing is asserted.
Every server it starts is stopped by pid (its process group) on exit, also on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import common_cfg, machine, make_server, md_table, ratio  # noqa: E402

from zabby.client import Client, SyncClient  # noqa: E402

PATH = "/bench-client"
LOCK_PATH = "/bench-lock"


def _op(kind: str, value: bytes):
    return (lambda zk: zk.get(PATH)) if kind == "get" else (lambda zk: zk.set(PATH, value))


async def _pipelined(zk, op, duration: float, window: int) -> float:
    n, end = 0, time.perf_counter() + duration
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        await asyncio.gather(*(op(zk) for _ in range(window)))
        n += window
    return n / (time.perf_counter() - t0)


async def _client_pipelined(hosts: str, kind: str, value: bytes, duration: float,
                            window: int) -> float:
    async with Client(hosts) as zk:
        return await _pipelined(zk, _op(kind, value), duration, window)


async def _client_serial(hosts: str, kind: str, value: bytes, duration: float) -> float:
    async with Client(hosts) as zk:
        op = _op(kind, value)
        n, end = 0, time.perf_counter() + duration
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            for _ in range(100):
                await op(zk)
            n += 100
        return n / (time.perf_counter() - t0)


def _serial(zk, kind: str, value: bytes, duration: float) -> float:
    op = _op(kind, value)
    n, end = 0, time.perf_counter() + duration
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        for _ in range(100):
            op(zk)
        n += 100
    return n / (time.perf_counter() - t0)


def _kazoo_async(zk, kind: str, value: bytes, duration: float, window: int) -> float:
    n, end = 0, time.perf_counter() + duration
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        if kind == "get":
            rs = [zk.get_async(PATH) for _ in range(window)]
        else:
            rs = [zk.set_async(PATH, value) for _ in range(window)]
        for r in rs:
            r.get(timeout=30)
        n += window
    return n / (time.perf_counter() - t0)


def aiozk_status() -> str | None:
    """None if aiozk imports, else why not (it is the `bench` extra, not required)."""
    try:
        import aiozk  # noqa: F401
    except Exception as e:  # ImportError, or a 3.11 incompatibility at import time
        return f"aiozk unavailable: {type(e).__name__}: {e}"
    return None


async def _aiozk_pipelined(hosts: str, kind: str, value: bytes, duration: float,
                           window: int) -> float:
    from aiozk import ZKClient

    zk = ZKClient(hosts, session_timeout=10)
    await asyncio.wait_for(zk.start(), 15)
    try:
        if kind == "get":
            def op(z):
                return z.get(PATH)
        else:
            def op(z):
                return z.set(PATH, value, -1)
        return await _pipelined(zk, op, duration, window)
    finally:
        await zk.close()


def measure(hosts: str, kind: str, value: bytes, duration: float, window: int,
            notes: list[str]) -> dict:
    out = {}
    out["Client pipelined"] = asyncio.run(
        _client_pipelined(hosts, kind, value, duration, window))
    out["Client 1-by-1"] = asyncio.run(_client_serial(hosts, kind, value, duration))
    with SyncClient(hosts) as zk:
        out["SyncClient 1-by-1"] = _serial(zk, kind, value, duration)
    try:
        from kazoo.client import KazooClient
    except ImportError:  # kazoo is a test dependency
        _note(notes, "kazoo not installed: no kazoo figures")
    else:
        kz = KazooClient(hosts=hosts)
        kz.start(timeout=15)
        try:
            out["kazoo async"] = _kazoo_async(kz, kind, value, duration, window)
            out["kazoo 1-by-1"] = _serial(kz, kind, value, duration)
        finally:
            kz.stop()
            kz.close()
    why = aiozk_status()
    if why is None:
        try:
            out["aiozk pipelined"] = asyncio.run(
                _aiozk_pipelined(hosts, kind, value, duration, window))
        except Exception as e:
            _note(notes, f"aiozk failed on {kind}: {type(e).__name__}: {e}")
    else:
        _note(notes, why)
    return out


# ------------------------------------------------------------------ lock contention
async def _client_locks(hosts: str, k: int, duration: float) -> float:
    clients = [Client(hosts) for _ in range(k)]
    await asyncio.gather(*(c.start() for c in clients))
    count = 0
    end = time.perf_counter() + duration

    async def contender(zk, i: int) -> None:
        nonlocal count
        lock = zk.Lock(LOCK_PATH, f"client-{i}")
        while time.perf_counter() < end:
            async with lock:
                count += 1

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(contender(c, i) for i, c in enumerate(clients)))
        return count / (time.perf_counter() - t0)
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


def _threaded_locks(make_client, stop_client, k: int, duration: float, tag: str) -> float:
    clients = [make_client() for _ in range(k)]
    counts = [0] * k
    errors: list[BaseException] = []
    end = time.perf_counter() + duration

    def contender(i: int) -> None:
        lock = clients[i].Lock(LOCK_PATH, f"{tag}-{i}")
        try:
            while time.perf_counter() < end:
                with lock:
                    counts[i] += 1
        except BaseException as e:  # reported, not swallowed
            errors.append(e)

    try:
        threads = [threading.Thread(target=contender, args=(i,), daemon=True) for i in range(k)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 60)
        elapsed = time.perf_counter() - t0
    finally:
        for c in clients:
            stop_client(c)
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def _sync_client_locks(hosts: str, k: int, duration: float) -> float:
    def make():
        zk = SyncClient(hosts)
        zk.start()
        return zk
    return _threaded_locks(make, lambda zk: zk.stop(), k, duration, "sync")


def _kazoo_locks(hosts: str, k: int, duration: float) -> float:
    from kazoo.client import KazooClient

    def make():
        kz = KazooClient(hosts=hosts)
        kz.start(timeout=15)
        return kz

    def stop(kz):
        kz.stop()
        kz.close()
    return _threaded_locks(make, stop, k, duration, "kazoo")


def measure_locks(hosts: str, k: int, duration: float, notes: list[str]) -> dict:
    out = {"Client Lock": asyncio.run(_client_locks(hosts, k, duration)),
           "SyncClient Lock": _sync_client_locks(hosts, k, duration)}
    try:
        import kazoo  # noqa: F401
    except ImportError:
        _note(notes, "kazoo not installed: no kazoo Lock figures")
    else:
        out["kazoo Lock"] = _kazoo_locks(hosts, k, duration)
    return out


# ------------------------------------------------------------------ output
def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _fmt(v) -> str:
    return f"{v:,.0f}" if v else "n/a"


def tables(results: dict, servers: list[str]) -> list[str]:
    """results[(server, workload)] = {client: per second}; the workloads are get, set
    and lock. Returns the markdown tables as strings."""
    workloads = [w for w in ("get", "set", "lock") if any((s, w) in results for s in servers)]
    out = []
    # 1. per client: zabby / ZooKeeper
    header = ["workload", "client"] + [f"{s} /s" for s in servers]
    both = "zabby" in servers and "zookeeper" in servers
    if both:
        header.append("zabby/ZK")
    rows = []
    for w in workloads:
        clients: list[str] = []
        for s in servers:
            for c in results.get((s, w), {}):
                if c not in clients:
                    clients.append(c)
        for c in clients:
            vals = [results.get((s, w), {}).get(c) for s in servers]
            row = [w, c] + [_fmt(v) for v in vals]
            if both:
                row.append(ratio(results[("zabby", w)].get(c), results[("zookeeper", w)].get(c)))
            rows.append(row)
    out.append(md_table(header, rows))
    # 2. per server: zabby's Client against kazoo (and aiozk)
    header = ["workload", "server", "Client", "kazoo", "Client/kazoo", "aiozk", "Client/aiozk"]
    rows = []
    pairs = {"get": ("Client pipelined", "kazoo async", "aiozk pipelined"),
             "set": ("Client pipelined", "kazoo async", "aiozk pipelined"),
             "lock": ("Client Lock", "kazoo Lock", None)}
    for w in workloads:
        mine, kaz, aio = pairs[w]
        for s in servers:
            r = results.get((s, w), {})
            a = r.get(aio) if aio else None
            label = {"get": "get (pipelined)", "set": "set (pipelined)",
                     "lock": "lock acquire+release"}[w]
            rows.append([label, s, _fmt(r.get(mine)), _fmt(r.get(kaz)),
                         ratio(r.get(mine), r.get(kaz)),
                         _fmt(a) if aio else "-", ratio(r.get(mine), a) if aio else "-"])
    out.append(md_table(header, rows))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds of pipelined get and set before measuring (ZooKeeper's JIT)")
    p.add_argument("--window", type=int, default=100, help="requests in flight (pipelined)")
    p.add_argument("--size", type=int, default=100, help="bytes of the node's data")
    p.add_argument("--contenders", type=int, default=8, help="sessions on the one lock path")
    p.add_argument("--servers", default="zabby,zookeeper")
    p.add_argument("--no-locks", action="store_true", help="skip the lock workload")
    args = p.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    bad = [s for s in servers if s not in ("zabby", "zookeeper")]
    if bad or not servers:
        p.error(f"--servers: zabby and/or zookeeper, not {bad}")

    # SIGTERM unwinds through the finally blocks below, so started servers are stopped.
    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    value = b"x" * args.size
    results: dict[tuple[str, str], dict[str, float]] = {}
    notes: list[str] = []
    m = machine()
    t_start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    tmp = Path(tempfile.mkdtemp(prefix="zabby-client-bench-"))
    try:
        for server in servers:
            srv = make_server(server, tmp / server, **common_cfg())
            try:
                srv.start()
                print(f"{server} started, pid {srv.pid}", file=sys.stderr)
                with SyncClient(srv.hosts) as zk:
                    zk.create(PATH, value)
                if args.warmup > 0:
                    for kind in ("get", "set"):
                        asyncio.run(_client_pipelined(srv.hosts, kind, value, args.warmup,
                                                      args.window))
                for kind in ("get", "set"):
                    results[(server, kind)] = measure(srv.hosts, kind, value, args.duration,
                                                      args.window, notes)
                    print(f"{server} {kind}: done", file=sys.stderr)
                if not args.no_locks:
                    results[(server, "lock")] = measure_locks(srv.hosts, args.contenders,
                                                              args.duration, notes)
                    print(f"{server} lock: done", file=sys.stderr)
            finally:
                pid = srv.pid
                srv.stop()
                print(f"{server} stopped, pid {pid}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_end = [round(x, 2) for x in os.getloadavg()]
    try:
        from importlib.metadata import version
        aiozk_v = version("aiozk")
    except Exception:
        aiozk_v = "not installed"
    try:
        from importlib.metadata import version
        kazoo_v = version("kazoo")
    except Exception:
        kazoo_v = "not installed"
    print(f"started {t_start}; {args.duration:g} s per cell after {args.warmup:g} s warm-up; "
          f"window {args.window} in flight; {args.size} B values; "
          f"{args.contenders} lock contenders")
    print(", ".join(f"{k}: {v}" for k, v in m.items()) + f", loadavg_at_end: {load_end}")
    print(f"kazoo {kazoo_v}, aiozk {aiozk_v}")
    for n in notes:
        print(f"NOTE: {n}")
    print()
    print("\n\n".join(tables(results, servers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
