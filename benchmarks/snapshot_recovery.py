#!/usr/bin/env python3
"""Snapshot write and recovery time of N znodes: zabby against ZooKeeper 3.8 (issue 14 item 6).

Not a test. `benchmarks/storage.py`'s second phase (load N znodes through the
client, stop, start from the log alone, force a snapshot while a probe reads,
stop, start from the snapshot), with the value size a parameter (storage.py
uses 1 KiB) and the servers alternating run by run:

    PYTHONPATH=src python benchmarks/snapshot_recovery.py --znodes 1000000 --value 100 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import storage  # noqa: E402
from _common import machine  # noqa: E402


async def wait_snapshots_done(srv, kind: str, offset: int, timeout: float) -> None:
    """storage.py's, except that a zabby child counts only when it is a copy of the
    server (the log writer's fsync helper is a small child that lives as long)."""
    if kind != "zabby":
        return await _storage_wait(srv, kind, offset, timeout)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not [k for k in storage.children(srv.pid) if _rss_mib(int(k)) > 100]:
            return
        await asyncio.sleep(0.05)


def _rss_mib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, IndexError, ValueError):
        return 0


_storage_wait = storage.wait_snapshots_done
storage.wait_snapshots_done = wait_snapshots_done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--kinds", default="zabby,zookeeper")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    storage.VALUE = b"v" * args.value
    base = Path(args.workdir or tempfile.mkdtemp(prefix="zabby-snaprec-"))
    kinds = args.kinds.split(",")
    print(f"machine {machine()}", flush=True)
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    try:
        for rnd in range(args.rounds):
            for kind in (kinds if rnd % 2 == 0 else kinds[::-1]):
                t0 = time.perf_counter()
                r = storage.snapshot_and_recovery(kind, args.znodes, base)
                r["load_avg"] = round(os.getloadavg()[0], 1)
                results[kind].append(r)
                print(f"round {rnd + 1} {kind}: {r} ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{args.znodes:,} znodes of {args.value} B:")
    for key in ("snapshot_ms", "paused_ms", "probe_max_ms", "probe_baseline_max_ms",
                "snapshot_mb", "recovery_snap_s", "recovery_log_s", "load_avg"):
        row = "  ".join(f"{k} " + ", ".join(str(r.get(key)) for r in results[k]) for k in kinds)
        print(f"  {key:22s} {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
