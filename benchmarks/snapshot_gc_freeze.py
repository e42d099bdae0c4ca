#!/usr/bin/env python3
"""gc.freeze() around the snapshot fork, in process (issue 14 item 6).

Not a test. Loads the 1M-znode snapshot that benchmarks/snapshot_client_pause.py
builds (under --cache), then, alternating frozen / not frozen:

1. `collect`: fork a child that only sleeps, run a full gc.collect() in the parent
   meanwhile; the collection's time and how much of the parent became private
   (copied) -- and a full collection with no child, for comparison;
2. `apply`: fork a child that writes the snapshot (write_snapshot, as the
   server's) and apply setData txns in the parent meanwhile: us per txn, and after.

    PYTHONPATH=src python benchmarks/snapshot_gc_freeze.py --rounds 2
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snapshot_client_pause import build, node_path  # noqa: E402

from zabby.storage import load_snapshot, write_snapshot  # noqa: E402
from zabby.tree import RequestContext  # noqa: E402
from zabby.wire.constants import Op  # noqa: E402
from zabby.wire.records import SetDataRequest  # noqa: E402


def private_dirty_mib() -> int:
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) >> 10
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--cache", default="/tmp/zabby-snapclient")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    tree = load_snapshot(str(build(cache, args.znodes, args.value)))
    gc.collect()
    print(f"{gc.get_count()} young, {len(gc.get_objects())} tracked objects; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    zxid = tree.last_zxid
    value = b"w" * args.value

    def apply(n: int, seed: int) -> float:
        nonlocal zxid
        t0 = time.perf_counter()
        for k in range(n):
            zxid += 1
            i = ((seed + k) * 7919) % args.znodes
            tree.apply(tree.prepare(Op.SET_DATA, SetDataRequest(node_path(i), value, -1),
                                    RequestContext(1, zxid, zxid, 1_700_000_000_000, [])))
        return (time.perf_counter() - t0) / n * 1e6

    d = str(cache / "gc-freeze-snap")
    seed = 0
    for rnd in range(args.rounds):
        t0 = time.perf_counter()
        gc.collect()
        print(f"round {rnd + 1}: full collection, no child: "
              f"{(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
        for freeze in ((False, True) if rnd % 2 == 0 else (True, False)):
            if freeze:
                gc.freeze()
            before = private_dirty_mib()
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                time.sleep(4)
                os._exit(0)
            fork_ms = (time.perf_counter() - t0) * 1000
            time.sleep(0.2)
            t0 = time.perf_counter()
            gc.collect()
            gc_ms = (time.perf_counter() - t0) * 1000
            copied = private_dirty_mib()
            os.waitpid(pid, 0)
            if freeze:
                gc.unfreeze()
            print(f"  collect frozen={freeze!s:5}: fork {fork_ms:.0f} ms, full collection while "
                  f"the child lives {gc_ms:.0f} ms, parent private {before} -> {copied} MiB; "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        for freeze in ((True, False) if rnd % 2 == 0 else (False, True)):
            if freeze:
                gc.freeze()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    shutil.rmtree(d, ignore_errors=True)
                    write_snapshot(tree, d)
                except BaseException:
                    code = 1
                os._exit(code)
            during = []
            while not os.waitpid(pid, os.WNOHANG)[0]:
                during.append(apply(2000, seed))
                seed += 2000
            if freeze:
                gc.unfreeze()
            after = apply(20000, seed)
            seed += 20000
            print(f"  apply   frozen={freeze!s:5}: {statistics.mean(during):.2f} us per txn while "
                  f"the child writes ({len(during)} x 2000), {after:.2f} after; "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
