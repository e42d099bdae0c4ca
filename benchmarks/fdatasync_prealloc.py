"""fdatasync latency of small appends into a log file preallocated three ways.

    python benchmarks/fdatasync_prealloc.py [--dir DIR] [--appends 600] [--rounds 3]

The txn log preallocates its segments with fallocate (unwritten extents on ext4). Would
writing real zeros ahead (so that an append overwrites initialised blocks and fdatasync
has no extent to convert) or a sparse file (ZooKeeper's padding: one byte at the new end)
make the fdatasync of a one-txn batch faster? Each round appends --appends records of
207 bytes (a small setData's entry), one pwrite + fdatasync each, to a fresh 16 MiB file
of each kind, and prints the p50 and p90 of each append. Not a test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

SIZE = 16 << 20


def one(path: str, kind: str, appends: int) -> tuple[float, float]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if kind == "fallocate":
            os.posix_fallocate(fd, 0, SIZE)
        elif kind == "zeros":
            block = b"\0" * (1 << 20)
            for _ in range(SIZE >> 20):
                os.write(fd, block)
        else:  # sparse
            os.pwrite(fd, b"\0", SIZE - 1)
        os.fsync(fd)
        record, offset, took = b"x" * 207, 0, []
        for _ in range(appends):
            t = time.perf_counter()
            os.pwrite(fd, record, offset)
            os.fdatasync(fd)
            took.append(time.perf_counter() - t)
            offset += len(record)
    finally:
        os.close(fd)
        os.unlink(path)
    took.sort()
    return took[len(took) // 2] * 1e6, took[len(took) * 9 // 10] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    ap.add_argument("--appends", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="fdatasync-", dir=args.dir)
    try:
        for r in range(args.rounds):
            for kind in ("fallocate", "zeros", "sparse"):
                p50, p90 = one(os.path.join(d, kind), kind, args.appends)
                print(f"round {r} {kind:9s} p50 {p50:5.0f} us  p90 {p90:5.0f} us", flush=True)
    finally:
        os.rmdir(d)


if __name__ == "__main__":
    main()
