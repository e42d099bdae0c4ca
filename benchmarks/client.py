#!/usr/bin/env python3
"""Client throughput (issue 12): zabby.client against kazoo, on zabby and on Apache
ZooKeeper 3.8, one session each, the same workload side by side in one run.

    python benchmarks/client.py [--duration 3] [--window 100] [--size 100]

Workloads: getData and setData of one node of --size bytes. Clients:
  Client pipelined   -- zabby.client.Client, --window requests in flight
  Client 1-by-1      -- zabby.client.Client, one request at a time
  SyncClient 1-by-1  -- zabby.client.SyncClient (a blocking call per request)
  kazoo async        -- kazoo's get_async/set_async, --window in flight
  kazoo 1-by-1       -- kazoo's blocking get/set
Prints a markdown table of requests per second (not a test: nothing is asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import common_cfg, machine, make_server, md_table  # noqa: E402

from zabby.client import Client, SyncClient  # noqa: E402

PATH = "/bench-client"


def _op(kind: str, value: bytes):
    return (lambda zk: zk.get(PATH)) if kind == "get" else (lambda zk: zk.set(PATH, value))


async def _client_pipelined(hosts: str, kind: str, value: bytes, duration: float,
                            window: int) -> float:
    async with Client(hosts) as zk:
        op = _op(kind, value)
        n, end = 0, time.perf_counter() + duration
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            await asyncio.gather(*(op(zk) for _ in range(window)))
            n += window
        return n / (time.perf_counter() - t0)


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


def measure(hosts: str, kind: str, value: bytes, duration: float, window: int) -> dict:
    out = {}
    out["Client pipelined"] = asyncio.run(
        _client_pipelined(hosts, kind, value, duration, window))
    out["Client 1-by-1"] = asyncio.run(_client_serial(hosts, kind, value, duration))
    with SyncClient(hosts) as zk:
        out["SyncClient 1-by-1"] = _serial(zk, kind, value, duration)
    try:
        from kazoo.client import KazooClient
    except ImportError:  # kazoo is a test dependency
        return out
    kz = KazooClient(hosts=hosts)
    kz.start(timeout=15)
    try:
        out["kazoo async"] = _kazoo_async(kz, kind, value, duration, window)
        out["kazoo 1-by-1"] = _serial(kz, kind, value, duration)
    finally:
        kz.stop()
        kz.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    p.add_argument("--window", type=int, default=100, help="requests in flight (pipelined)")
    p.add_argument("--size", type=int, default=100, help="bytes of the node's data")
    p.add_argument("--servers", default="zabby,zookeeper")
    args = p.parse_args(argv)
    value = b"x" * args.size
    results: dict[tuple[str, str], dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="zabby-client-bench-"))
    try:
        for server in args.servers.split(","):
            srv = make_server(server, tmp / server, **common_cfg())
            try:
                with SyncClient(srv.hosts) as zk:
                    zk.create(PATH, value)
                for kind in ("get", "set"):  # warm up (ZooKeeper's JIT) before measuring
                    asyncio.run(_client_pipelined(srv.hosts, kind, value, 2.0, args.window))
                for kind in ("get", "set"):
                    results[(server, kind)] = measure(srv.hosts, kind, value, args.duration,
                                                      args.window)
                    print(f"{server} {kind}: done", file=sys.stderr)
            finally:
                srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    clients = list(next(iter(results.values())).keys())
    header = ["client"] + [f"{s} {k} /s" for s, k in results]
    rows = [[c] + [f"{results[key].get(c, 0):,.0f}" for key in results] for c in clients]
    m = machine()
    print(", ".join(f"{k}: {v}" for k, v in m.items()))
    print(md_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
