"""One log write's round trip, four ways: the writer child (`fsync_helper.LogWriter`),
inline on the event loop, `run_in_executor`, and a thread of our own fed by a queue (what
`GroupCommitter`'s direct lane does). One 300 B pwrite + fdatasync at a time into a
preallocated file, 0.5 ms apart, from a uvloop loop with nothing else to do; prints
p50 / p90 / p99 in us per way, each way `--rounds` times.

    PYTHONPATH=src python benchmarks/log_roundtrip.py [-n 2000] [--rounds 2] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import uvloop

from zabby.server.fsync_helper import LogWriter

DATA = b"y" * 300


def _report(name: str, lat: list[float]) -> None:
    lat.sort()
    n = len(lat)
    print(f"{name:10s} p50 {lat[n // 2]:4.0f} us  p90 {lat[int(.9 * n)]:4.0f}  "
          f"p99 {lat[int(.99 * n)]:4.0f}", flush=True)


async def _timed(n: int, one) -> list[float]:
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        await one(i * len(DATA))
        lat.append((time.perf_counter_ns() - t0) / 1000)
        await asyncio.sleep(0.0005)
    return lat


async def main(n: int, rounds: int, fd: int) -> None:
    loop = asyncio.get_running_loop()

    def write_sync(off: int) -> None:
        os.pwrite(fd, DATA, off)
        os.fdatasync(fd)

    async def writer_child(off: int) -> None:
        fut = loop.create_future()
        child.write_sync(fd, off, DATA, fut.set_result, key=1)
        await fut

    async def inline(off: int) -> None:
        write_sync(off)

    async def executor(off: int) -> None:
        await loop.run_in_executor(pool, write_sync, off)

    q: queue.SimpleQueue = queue.SimpleQueue()

    def thread_main() -> None:
        while (item := q.get()) is not None:
            off, fut = item
            write_sync(off)
            loop.call_soon_threadsafe(fut.set_result, 0)

    async def own_thread(off: int) -> None:
        fut = loop.create_future()
        q.put((off, fut))
        await fut

    child = LogWriter(loop)
    pool = ThreadPoolExecutor(1)
    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    try:
        for _ in range(rounds):
            for name, one in (("child", writer_child), ("inline", inline),
                              ("executor", executor), ("thread", own_thread)):
                _report(name, await _timed(n, one))
    finally:
        child.close()
        pool.shutdown()
        q.put(None)
        thread.join()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="writes per way and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dir", default="/var/tmp", help="where the file goes (a real disk)")
    args = ap.parse_args()
    d = tempfile.mkdtemp(dir=args.dir, prefix="zabby-roundtrip-")
    try:
        fd = os.open(os.path.join(d, "log"), os.O_RDWR | os.O_CREAT)
        os.posix_fallocate(fd, 0, args.n * len(DATA) + (1 << 20))
        os.fsync(fd)
        uvloop.run(main(args.n, args.rounds, fd))
        os.close(fd)
    finally:
        shutil.rmtree(d)
