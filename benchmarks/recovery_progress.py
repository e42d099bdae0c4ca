#!/usr/bin/env python3
"""Does start-up progress reporting cost anything? Time `recover()` on a big data dir.

Not a test. Builds (once, under --dir) a data directory holding a snapshot of
--znodes znodes (under /r/dXXX/nXXXXX, --value bytes each) followed by --txns
logged setData txns, then times `zabby.storage.recover()` --repeat times in this
process and prints the median and best, for each of:

- ``none``: no progress callback (what a server started from a pipe or with
  ZABBY_NO_PROGRESS=1 does; also the only case before the callback existed);
- ``count``: a callback that only counts its calls;
- ``tqdm``: the terminal bars (zabby.cli.progress), drawn to /dev/null.

    python benchmarks/recovery_progress.py --dir /tmp/rp --znodes 200000 --txns 50000
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time

from zabby.storage import TxnLog, recover, write_snapshot
from zabby.tree import DataTree, RequestContext
from zabby.wire.constants import Op
from zabby.wire.records import ACL, CreateRequest, Id, SetDataRequest

OPEN = [ACL(31, Id("world", "anyone"))]


def build(d: str, znodes: int, txns: int, value: int) -> None:
    tree = DataTree()
    zxid = 0
    now = 1_700_000_000_000

    def run(op, body):
        nonlocal zxid
        zxid += 1
        txn = tree.prepare(op, body, RequestContext(1, zxid, zxid, now, []))
        tree.apply(txn)
        return txn

    data = b"x" * value
    run(Op.CREATE, CreateRequest("/r", b"", OPEN, 0))
    per_dir = 1000
    for i in range(znodes):
        if i % per_dir == 0:
            run(Op.CREATE, CreateRequest(f"/r/d{i // per_dir:03d}", b"", OPEN, 0))
        run(Op.CREATE, CreateRequest(f"/r/d{i // per_dir:03d}/n{i:06d}", data, OPEN, 0))
    write_snapshot(tree, d)
    log = TxnLog(d, prealloc_bytes=1 << 20)
    log.open_for_append(zxid)
    batch = []
    for j in range(txns):
        i = (j * 7919) % znodes
        txn = run(Op.SET_DATA, SetDataRequest(f"/r/d{i // per_dir:03d}/n{i:06d}", data, -1))
        batch.append((txn.zxid, txn.encode()))
        if len(batch) >= 1000:
            log.write_batch(batch)
            batch = []
    if batch:
        log.write_batch(batch)
    log.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--znodes", type=int, default=200_000)
    p.add_argument("--txns", type=int, default=50_000)
    p.add_argument("--value", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--modes", default="none,count,tqdm")
    args = p.parse_args(argv)
    if not os.path.isdir(os.path.join(args.dir, "version-2")):
        t0 = time.perf_counter()
        build(args.dir, args.znodes, args.txns, args.value)
        print(f"built {args.dir} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    has_progress = "progress" in inspect.signature(recover).parameters
    calls = [0]

    def count(phase, done, total):
        calls[0] += 1

    for mode in args.modes.split(","):
        if mode != "none" and not has_progress:
            print(f"{mode}: recover() takes no progress callback here; skipped")
            continue
        times = []
        for _ in range(args.repeat):
            kw = {}
            bar = None
            if mode == "count":
                kw["progress"] = count
            elif mode == "tqdm":
                from zabby.cli.progress import TerminalProgress

                bar = TerminalProgress(file=open(os.devnull, "w"))  # noqa: SIM115
                kw["progress"] = bar
            t0 = time.perf_counter()
            tree, report = recover(args.dir, repair_tail=False, **kw)
            times.append(time.perf_counter() - t0)
            if bar is not None:
                bar.close()
            del tree
        print(f"{mode:>5}: median {statistics.median(times):.3f} s, best {min(times):.3f} s "
              f"over {args.repeat} ({report.replayed} txns replayed onto "
              f"{report.snapshot and os.path.basename(report.snapshot)}; load avg "
              f"{os.getloadavg()[0]:.2f})")
    if calls[0]:
        print(f"count: {calls[0] // args.repeat} callback calls per recovery")
    return 0


if __name__ == "__main__":
    sys.exit(main())
