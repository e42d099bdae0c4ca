"""Where the txn log's write() runs: the event loop (pwrite, then two helper
processes fdatasync: ZABBY_LOG_WRITER=loop), or the writer process (the loop
encodes, one helper process pwrites + fdatasyncs: =write, the default), or the
writer that also computes the entries' checksums (=seal). Same code. A mode
with "-nodirect" appended runs with the committer's direct lane off
(ZABBY_LOG_DIRECT_MAX=0: every batch goes to the helper, even one small batch with
nothing in flight, which the server otherwise writes on a thread of its own):
`--modes write,write-nodirect -n 1 -m 1` measures that lane.

A standalone zabby server per round, `zabby bench -w write` (setData, 32
sessions, --outstanding each) against it, modes alternating round by round;
prints ops/s and the CPU per request of the server process and of its helper
processes (utime + stime from /proc), and the cores they kept busy together.

    PYTHONPATH=src python benchmarks/log_writer.py [--rounds 3] [--duration 5] [-m 16]
        [--modes loop,write,seal] [--workload write] [--value-size 1024]
    PYTHONPATH=src python benchmarks/log_writer.py --inproc [--batch 512] [--value-size 1024]

--inproc measures the log path alone: the event-loop thread's CPU per txn
(time.thread_time, so other processes on the machine hardly move it).

The machine is shared: compare the modes within one run, round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BenchZabby, common_cfg, proc_cpu_seconds  # noqa: E402


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _cpu(pid: int) -> tuple[float, float]:
    """(server process, its child processes) CPU seconds so far."""
    return proc_cpu_seconds(pid), sum(proc_cpu_seconds(c) for c in _children(pid))


def one_round(mode: str, args, workdir: Path) -> dict:
    writer, nodirect, _ = mode.partition("-nodirect")
    os.environ["ZABBY_LOG_WRITER"] = writer
    if nodirect:
        os.environ["ZABBY_LOG_DIRECT_MAX"] = "0"
    srv = BenchZabby(workdir / f"{mode}-{time.monotonic_ns()}", **common_cfg())
    try:
        def bench(duration: float) -> list[str]:
            return [sys.executable, "-m", "zabby", "bench", "--hosts", srv.hosts,
                    "-w", args.workload, "-n", str(args.sessions), "-m", str(args.outstanding),
                    "--duration", str(duration), "--warmup", "0", "--json", "--no-progress",
                    "--value-size", str(args.value_size)]
        # a warm-up run (starts the helpers, fills the tree), then the measured one
        subprocess.run(bench(args.warmup), check=True, capture_output=True)
        s0, c0 = _cpu(srv.pid)
        t0 = time.perf_counter()
        out = subprocess.run(bench(args.duration), check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t0
        s1, c1 = _cpu(srv.pid)
        res = json.loads(out.strip().splitlines()[-1])
        ops = res["ops"]
        return {
            "mode": mode, "ops_per_sec": res["ops_per_sec"],
            "server_us": (s1 - s0) / ops * 1e6, "helpers_us": (c1 - c0) / ops * 1e6,
            "cores": ((s1 - s0) + (c1 - c0)) / wall,
            "server_cores": (s1 - s0) / wall,
            "helpers": len(_children(srv.pid)),
        }
    finally:
        srv.stop()
        os.environ.pop("ZABBY_LOG_WRITER", None)
        os.environ.pop("ZABBY_LOG_DIRECT_MAX", None)


def inproc_round(mode: str, args, workdir: Path) -> dict:
    """The log path alone, in this process: a GroupCommitter on a real file,
    batches of `--batch` entries of `--value-size` bytes submitted in one loop
    turn each, `--outstanding` batches in flight; the event-loop thread's CPU
    (user + system, time.thread_time) per txn is what the mode costs the loop."""
    import asyncio

    from zabby.server.app import _log_syncer
    from zabby.server.durability import GroupCommitter
    from zabby.storage import TxnLog

    os.environ["ZABBY_LOG_WRITER"] = mode
    try:
        syncer = _log_syncer()
    finally:
        os.environ.pop("ZABBY_LOG_WRITER", None)
    d = workdir / f"inproc-{mode}-{time.monotonic_ns()}"
    txn_log = TxnLog(str(d / "log"), prealloc_bytes=64 << 20)
    txn_log.open_for_append(0)
    payload = os.urandom(args.value_size)

    async def run() -> tuple[int, float, float, float]:
        gc = GroupCommitter(txn_log, snap_dir=str(d / "snap"), snap_count=1 << 40,
                            syncer=syncer, max_inflight=2)
        loop = asyncio.get_running_loop()
        zxid = 0
        sem = asyncio.Semaphore(max(1, args.outstanding // 8))

        async def one_batch() -> None:
            nonlocal zxid
            async with sem:
                fut = loop.create_future()
                left = [args.batch]

                def done() -> None:
                    left[0] -= 1
                    if not left[0]:
                        fut.set_result(None)
                for _ in range(args.batch):
                    zxid += 1
                    gc.submit_entry(zxid, payload, done, fut.set_exception)
                await fut
        try:
            await one_batch()  # the first batch starts the segment and the helpers
            n0, c0, t0 = zxid, time.thread_time(), time.perf_counter()
            kids0 = sum(proc_cpu_seconds(c) for c in _children(os.getpid()))
            tasks: set = set()
            while time.perf_counter() - t0 < args.duration:
                while len(tasks) < max(1, args.outstanding // 8):
                    tasks.add(asyncio.ensure_future(one_batch()))
                finished, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in finished:
                    t.result()
            await asyncio.gather(*tasks)
            kids = sum(proc_cpu_seconds(c) for c in _children(os.getpid())) - kids0
            return zxid - n0, time.thread_time() - c0, time.perf_counter() - t0, kids
        finally:
            gc.close()

    n, cpu, wall, kids = asyncio.run(run())
    return {"mode": mode, "ops_per_sec": n / wall, "server_us": cpu / n * 1e6,
            "helpers_us": kids / n * 1e6, "cores": (cpu + kids) / wall, "server_cores": cpu / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("-m", "--outstanding", type=int, default=16)
    ap.add_argument("-n", "--sessions", type=int, default=32)
    ap.add_argument("--value-size", type=int, default=128)
    ap.add_argument("--workload", default="write")
    ap.add_argument("--modes", default="loop,write,seal",
                    help="loop: the loop writes, helpers fsync (before); write (the default): "
                         "the writer writes + fsyncs; seal: it also computes the checksums; "
                         "any of them + '-nodirect': without the direct lane")
    ap.add_argument("--inproc", action="store_true",
                    help="measure the log path alone in this process (loop-thread CPU per "
                         "txn), not a server under `zabby bench`")
    ap.add_argument("--batch", type=int, default=512, help="--inproc: txns per loop turn")
    args = ap.parse_args()
    modes = args.modes.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="zabby-logwriter-") as d:
        for r in range(args.rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                row = (inproc_round if args.inproc else one_round)(mode, args, Path(d))
                rows.append(row)
                print(f"round {r} {mode:14s} {row['ops_per_sec']:>9,.0f} ops/s  server "
                      f"{row['server_us']:5.1f} us/op  helpers {row['helpers_us']:5.1f} us/op  "
                      f"cores busy {row['cores']:.2f} (server {row['server_cores']:.2f})  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\n{args.workload}, {args.sessions} sessions x {args.outstanding} outstanding, "
          f"{args.value_size} B values, {args.duration:g} s per round; medians:")
    for mode in modes:
        rs = [x for x in rows if x["mode"] == mode]

        def med(k, rs=rs):
            v = sorted(x[k] for x in rs)
            return v[len(v) // 2]
        print(f"  {mode:14s} {med('ops_per_sec'):>9,.0f} ops/s  server {med('server_us'):5.1f} us/op  "
              f"helpers {med('helpers_us'):5.1f} us/op  cores {med('cores'):.2f}")


if __name__ == "__main__":
    main()
