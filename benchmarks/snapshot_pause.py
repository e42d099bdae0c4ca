#!/usr/bin/env python3
"""What a snapshot costs the serving process (issue 14 item 6), in one process.

The server snapshots by forking (server/durability.py, GroupCommitter.take_snapshot):
the child writes the tree as of the fork, the parent goes on applying txns. The
parent pays twice: the fork itself (copying the page tables: a pause for every
client), then a copy-on-write fault for each page it writes while the child
lives (refcounts and new objects touch pages all over the heap), spread over
the child's lifetime. This script builds a tree of --znodes znodes of --value
bytes (/r/dXXX/nXXXXXX, as benchmarks/recovery_progress.py), then:

1. applies --txns setData txns in batches of --batch with no child: the
   baseline time per batch;
2. forks a child that writes a snapshot (write_snapshot, as the server's does)
   and, meanwhile, applies txns: the fork time, the child's snapshot time, and
   the parent's per-batch times while the child runs (copy-on-write faults, and
   the child taking CPU);
3. the same with a child that only sleeps as long (copy-on-write alone).

Prints the fork pause, the worst and median batch with and without the child,
and the total apply time of each.

    PYTHONPATH=src python benchmarks/snapshot_pause.py --znodes 1000000 --value 100 [--freeze]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

from zabby.storage import write_snapshot
from zabby.tree import DataTree, RequestContext
from zabby.wire.constants import Op
from zabby.wire.records import ACL, CreateRequest, Id, SetDataRequest

OPEN = [ACL(31, Id("world", "anyone"))]
PER_DIR = 1000


class Builder:
    def __init__(self) -> None:
        self.tree = DataTree()
        self.zxid = 0

    def run(self, op, body) -> None:
        self.zxid += 1
        z = self.zxid
        txn = self.tree.prepare(op, body, RequestContext(1, z, z, 1_700_000_000_000, []))
        self.tree.apply(txn)


def apply_batches(b: Builder, n: int, batch: int, value: bytes, znodes: int, seed: int) -> list[float]:
    times = []
    j = seed
    for _ in range(n // batch):
        t0 = time.perf_counter()
        for _ in range(batch):
            i = (j * 7919) % znodes
            j += 1
            b.run(Op.SET_DATA, SetDataRequest(f"/r/d{i // PER_DIR:03d}/n{i:07d}", value, -1))
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--txns", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--freeze", action="store_true",
                    help="gc.freeze() before each fork (gc.unfreeze() once the child is gone): "
                         "the parent's cyclic GC then leaves the shared pages alone")
    args = ap.parse_args()
    value = b"v" * args.value
    b = Builder()
    t0 = time.perf_counter()
    b.run(Op.CREATE, CreateRequest("/r", b"", OPEN, 0))
    for i in range(args.znodes):
        if i % PER_DIR == 0:
            b.run(Op.CREATE, CreateRequest(f"/r/d{i // PER_DIR:03d}", b"", OPEN, 0))
        b.run(Op.CREATE, CreateRequest(f"/r/d{i // PER_DIR:03d}/n{i:07d}", value, OPEN, 0))
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    print(f"built {args.znodes:,} znodes of {args.value} B in {time.perf_counter() - t0:.1f} s, "
          f"RSS {rss} MiB; load {os.getloadavg()[0]:.1f}", flush=True)

    base = apply_batches(b, args.txns, args.batch, value, args.znodes, 1)
    with tempfile.TemporaryDirectory(prefix="zabby-snap-pause-") as d:
        t0 = time.perf_counter()
        if args.freeze:
            gc.freeze()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                write_snapshot(b.tree, d)
            except BaseException:
                code = 1
            os._exit(code)
        fork_ms = (time.perf_counter() - t0) * 1000
        during: list[float] = []
        snap_ms = None
        seed = 10_000_000
        while True:
            during += apply_batches(b, args.batch * 20, args.batch, value, args.znodes, seed)
            seed += args.batch * 20
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                snap_ms = (time.perf_counter() - t0) * 1000
                gc.unfreeze()
                break
            if len(during) * args.batch >= 20 * args.txns:  # pragma: no cover - stuck child
                os.waitpid(pid, 0)
                break
        # the same with a child that only sleeps as long: copy-on-write alone, no CPU taken
        t1 = time.perf_counter()
        if args.freeze:
            gc.freeze()
        pid = os.fork()
        if pid == 0:
            time.sleep((snap_ms or 1000) / 1000)
            os._exit(0)
        fork2_ms = (time.perf_counter() - t1) * 1000
        cow: list[float] = []
        while not os.waitpid(pid, os.WNOHANG)[0]:
            cow += apply_batches(b, args.batch * 20, args.batch, value, args.znodes, seed)
            seed += args.batch * 20
        gc.unfreeze()
        after = apply_batches(b, args.txns, args.batch, value, args.znodes, 20_000_000)

    def show(name: str, ts: list[float]) -> None:
        ms = sorted(t * 1000 for t in ts)
        print(f"  {name:28s} {len(ts):5d} batches of {args.batch}: median {statistics.median(ms):6.2f} ms, "
              f"p99 {ms[int(len(ms) * 0.99) - 1]:6.2f}, worst {ms[-1]:6.2f}; "
              f"{sum(ts) / (len(ts) * args.batch) * 1e6:5.2f} us per txn")

    print(f"fork {fork_ms:.1f} ms; the child wrote the snapshot in {snap_ms or float('nan'):.0f} ms "
          f"(status {status}); load {os.getloadavg()[0]:.1f}")
    show("no child (before)", base)
    show("while the child writes", during)
    print(f"fork {fork2_ms:.1f} ms; a child that only sleeps as long:")
    show("while the child sleeps", cow)
    show("no child (after)", after)


if __name__ == "__main__":
    sys.exit(main())
