#!/usr/bin/env python3
"""Start-up of a real server holding 1M znodes, with and without bulk_load_gc (issue 14 item 6).

Not a test. Times `zabby serve` from process start to the first successful read
(as benchmarks/storage.py's "recovery" rows) on two data directories built once
under --cache: a snapshot of --znodes znodes (benchmarks/snapshot_client_pause.py's)
and a log of the same creates with no snapshot but the empty one. Variants
alternate run by run:

- `new`: this code (GC off during a snapshot load and during a log replay, and what
  they made moved into the oldest generation at the end: storage.snapshot.bulk_load_gc);
- `old`: as before (GC off during a snapshot load only, nothing moved).

    PYTHONPATH=src python benchmarks/recovery_gc.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import timed_start  # noqa: E402
from snapshot_client_pause import PER_DIR, WrappedZabby, build, node_path, say  # noqa: E402

from zabby.storage import TxnLog, write_snapshot  # noqa: E402
from zabby.tree import DataTree, RequestContext  # noqa: E402
from zabby.wire.constants import Op  # noqa: E402
from zabby.wire.records import ACL, CreateRequest, Id  # noqa: E402

OPEN = [ACL(31, Id("world", "anyone"))]
VARIANTS = {
    "new": "",
    "old": ("zabby.storage.snapshot.SETTLE_GC=False;"
            "zabby.storage.recovery.bulk_load_gc=__import__('contextlib').nullcontext"),
}


def build_log(cache: Path, znodes: int, value: int) -> Path:
    d = cache / f"log-{znodes}x{value}"
    if (d / "done").exists():
        return d
    shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    tree = DataTree()
    write_snapshot(tree, str(d))
    log = TxnLog(str(d))
    log.open_for_append(0)
    data = b"v" * value
    z = 0
    batch: list = []

    def run(path: str, v: bytes) -> None:
        nonlocal z
        z += 1
        txn = tree.prepare(Op.CREATE, CreateRequest(path, v, OPEN, 0),
                           RequestContext(1, z, z, 1_700_000_000_000, []))
        tree.apply(txn)
        batch.append((txn.zxid, txn.encode()))

    run("/r", b"")
    for i in range(znodes):
        if i % PER_DIR == 0:
            run(f"/r/d{i // PER_DIR:03d}", b"")
        run(node_path(i), data)
        if len(batch) >= 1000:
            log.write_batch(batch)
            batch.clear()
    if batch:
        log.write_batch(batch)
    log.close()
    (d / "done").write_text("")
    say(f"built {d} ({z} txns) in {time.perf_counter() - t0:.1f} s")
    return d


def one(kind: str, src: Path, variant: str, workdir: Path, probe: str) -> float:
    d = workdir / f"{kind}-{variant}"
    shutil.rmtree(d, ignore_errors=True)
    v2 = d / "data" / "version-2"
    v2.mkdir(parents=True)
    if kind == "snapshot":
        os.link(src, v2 / src.name)  # read only: the server writes new files beside it
    else:
        for f in (src / "version-2").iterdir():
            shutil.copyfile(f, v2 / f.name)  # the server appends to the last segment
    srv = WrappedZabby(d, attrs=VARIANTS[variant], start=False, snapCount=100_000_000)
    try:
        return timed_start(srv, probe)
    finally:
        srv.stop(timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--cache", default="/tmp/zabby-snapclient")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default="snapshot,log")
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    srcs = {}
    kinds = args.kinds.split(",")
    if "snapshot" in kinds:
        srcs["snapshot"] = build(cache, args.znodes, args.value)
    if "log" in kinds:
        srcs["log"] = build_log(cache, args.znodes, args.value)
    workdir = cache / "runs"
    probe = node_path(args.znodes - 1)
    res: dict = {(k, v): [] for k in kinds for v in VARIANTS}
    try:
        for rnd in range(args.rounds):
            order = list(VARIANTS) if rnd % 2 == 0 else list(VARIANTS)[::-1]
            for kind in kinds:
                for v in order:
                    s = one(kind, srcs[kind], v, workdir, probe)
                    res[kind, v].append(s)
                    say(f"round {rnd + 1} from {kind}: {v} {s:.2f} s (load {os.getloadavg()[0]:.1f})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nstart to first read, {args.znodes:,} znodes of {args.value} B:")
    for (kind, v), xs in res.items():
        print(f"  from {kind:8s} {v}: {', '.join(f'{x:.2f}' for x in xs)} s "
              f"(median {statistics.median(xs):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
