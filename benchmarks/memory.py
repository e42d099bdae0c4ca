"""Resident memory with N znodes of 100 bytes: zabby vs Apache ZooKeeper 3.8 (issue 5).

Not a test. Starts each server (the same settings as benchmarks/storage.py, ZooKeeper
with its production JVM flags), loads N znodes of 100 bytes (1,000 per parent) through
the client protocol, waits a moment, and reads the server process's VmRSS from /proc.

    python benchmarks/memory.py --n 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import storage  # noqa: E402  (benchmarks/storage.py: its loader)
from _common import common_cfg, machine, make_server  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(kind: str, n: int, workdir: Path) -> dict:
    srv = make_server(kind, workdir / kind, **common_cfg(snapCount=100_000_000))
    try:
        empty = rss_mb(srv.pid)
        t0 = time.monotonic()
        asyncio.run(storage.load(srv.hosts, n))
        load_s = time.monotonic() - t0
        time.sleep(3)
        gc.collect()
        full = rss_mb(srv.pid)
    finally:
        srv.stop()
    return {"empty_mb": round(empty, 1), "loaded_mb": round(full, 1), "load_s": round(load_s, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    storage.VALUE = b"v" * 100
    work = Path(args.workdir or tempfile.mkdtemp(prefix="zabby-mem-"))
    try:
        res = {kind: measure(kind, args.n, work) for kind in ("zabby", "zookeeper")}
    finally:
        if not args.workdir:  # a million znodes' logs and snapshots: GBs
            shutil.rmtree(work, ignore_errors=True)
    info = machine()
    print(f"{args.n:,} znodes of 100 B; {info['cpu']} x{info['nproc']}, Python {info['python']}, "
          f"{info['java']}")
    print("| server | RSS empty MB | RSS loaded MB | load s |")
    print("| --- | --- | --- | --- |")
    for kind, r in res.items():
        print(f"| {kind} | {r['empty_mb']} | {r['loaded_mb']} | {r['load_s']} |")
    z, k = res["zabby"]["loaded_mb"], res["zookeeper"]["loaded_mb"]
    print(f"| zabby/ZooKeeper | | {z / k:.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
