"""Single big operations while nobody else is served: zabby vs Apache ZooKeeper 3.8.

Not a test: figures, not assertions. Starts each server (zabby.testing launchers,
ZooKeeper with its production JVM flags), builds a parent with N children through
the client protocol, then times, a few runs each after one warm-up run (best run
printed: the machine is shared), from the request leaving to the whole reply
having arrived (the client does not decode it):

* getChildren / getChildren2 of the N children;
* one multi of as many `check` ops as fit jute.maxbuffer (58k on "/"), one of
  creates, one of setData;
* `wchp`, `wchc`, `wchs` with W getData watches set by one session (W nodes);

and the memory a flood of watches costs: the server's RSS before and after one
session sets W getData watches on W nodes, and W getData watches on one node
(ZooKeeper: also its live heap after a full GC, from jcmd).

    python benchmarks/big_ops.py                    # 200k children, 100k watches
    python benchmarks/big_ops.py --children 20000 --watches 10000 --runs 3 --only zabby
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import common_cfg, machine, make_server, ratio  # noqa: E402

from zabby.bench import Session, connect, parse_hosts  # noqa: E402
from zabby.wire import (  # noqa: E402
    ACL,
    CheckVersionRequest,
    CreateRequest,
    Id,
    Op,
    PathWatchRequest,
    SetDataRequest,
)
from zabby.wire.protocol import MultiRequest  # noqa: E402

OPEN = [ACL(31, Id("world", "anyone"))]
MAX_BUFFER = 0xFFFFF


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def java_live_heap(pid: int) -> int | None:
    """Bytes of live Java heap after a full GC (jcmd GC.class_histogram forces one)."""
    try:
        out = subprocess.run(["jcmd", str(pid), "GC.class_histogram"], capture_output=True,
                             text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^Total\s+\d+\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else None


def fourlw(host: str, port: int, word: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout=120) as s:
        s.sendall(word.encode())
        n = 0
        while True:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            n += len(chunk)
    return time.perf_counter() - t0, n


async def timed(sess: Session, op: int, body) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    err, reply = await sess.request(op, body)
    return time.perf_counter() - t0, err, len(reply)


async def pipelined(sess: Session, reqs, window: int = 2000) -> None:
    pending = []
    for op, body in reqs:
        pending.append(sess.request(op, body))
        if len(pending) >= window:
            for err, _ in await asyncio.gather(*pending):
                if err:
                    raise RuntimeError(f"request failed: error {err}")
            pending = []
    for err, _ in await asyncio.gather(*pending):
        if err:
            raise RuntimeError(f"request failed: error {err}")


def _fits(make, limit: int = MAX_BUFFER - 64) -> int:
    """How many ops of one kind fit one multi frame of jute.maxbuffer."""
    one = _size([make(0)])
    base = _size([])
    return (limit - base) // (one - base)


def _size(ops) -> int:
    out = bytearray()
    MultiRequest(ops).encode(out)
    return len(out) + 8


async def bench(srv, kind: str, args) -> dict:
    host, port = parse_hosts(srv.hosts)[0]
    _, s = await connect(host, port, Session, 30)
    res: dict = {}
    n = args.children
    # build /big with n children, by multis of creates (fast on both servers)
    await s.request(Op.CREATE, CreateRequest("/big", b"", OPEN, 0))
    names = [f"/big/n{i:07d}" for i in range(n)]
    batch = 10_000
    for i in range(0, n, batch):
        ops = [(Op.CREATE, CreateRequest(p, b"", OPEN, 0)) for p in names[i:i + batch]]
        err, body = await s.request(Op.MULTI, MultiRequest(ops))
        if err:
            raise RuntimeError(f"multi create: error {err}")
    runs = args.runs

    async def repeat(label, op, body, first: bool = False):
        times = []
        for _ in range(runs + 1):  # first run warms up (JIT), not counted
            t, err, size = await timed(s, op, body)
            times.append(t)
        if first:  # also the cold run (zabby: hashes computed, listing not kept yet)
            res[label + " (first)"] = {"s": times[0], "err": err, "bytes": size}
        res[label] = {"s": min(times[1:]), "err": err, "bytes": size}

    # watches: W getData watches from one session on W nodes
    w = min(args.watches, n)
    _, ws = await connect(host, port, Session, 30)
    before = rss_bytes(srv.pid)
    heap_before = java_live_heap(srv.pid) if kind == "zookeeper" and args.heap else None
    t0 = time.perf_counter()
    await pipelined(ws, ((Op.GET_DATA, PathWatchRequest(p, True)) for p in names[:w]))
    res[f"set {w} watches (pipelined)"] = {"s": time.perf_counter() - t0, "err": 0, "bytes": 0}
    time.sleep(1)
    after = rss_bytes(srv.pid)
    heap_after = java_live_heap(srv.pid) if heap_before is not None else None
    res["watch bytes (RSS, W nodes)"] = (after - before) / w
    if heap_before is not None and heap_after is not None:
        res["watch bytes (live heap, W nodes)"] = (heap_after - heap_before) / w
    for word in ("wchs", "wchc", "wchp"):
        times = []
        size = 0
        for _ in range(runs + 1):
            t, size = fourlw(host, port, word)
            times.append(t)
        res[f"{word} {w} watches"] = {"s": min(times[1:]), "err": 0, "bytes": size}
    # the same node watched W times by one session: one watch, nothing should grow
    before = rss_bytes(srv.pid)
    await pipelined(ws, ((Op.GET_DATA, PathWatchRequest(names[0] if w == 0 else "/big", True))
                         for _ in range(w)))
    time.sleep(1)
    res["watch bytes (RSS, 1 node, per request)"] = (rss_bytes(srv.pid) - before) / max(w, 1)
    await ws.close()

    await repeat(f"getChildren {n}", Op.GET_CHILDREN, PathWatchRequest("/big", False), first=True)
    await repeat(f"getChildren2 {n}", Op.GET_CHILDREN2, PathWatchRequest("/big", False))
    # a directory that changes between listings: no kept listing to copy
    times = []
    for r in range(runs + 1):
        await s.request(Op.CREATE, CreateRequest(f"/big/x{r}", b"", OPEN, 0))
        t, err, size = await timed(s, Op.GET_CHILDREN, PathWatchRequest("/big", False))
        times.append(t)
    res[f"getChildren {n} after a create"] = {"s": min(times[1:]), "err": err, "bytes": size}

    # multis as big as a frame allows
    def check(i):
        return (Op.CHECK, CheckVersionRequest("/", -1))
    k = _fits(check)
    await repeat(f"multi {k} check", Op.MULTI, MultiRequest([check(i) for i in range(k)]))

    def setdata(i):
        return (Op.SET_DATA, SetDataRequest(names[i % n], b"v", -1))
    k = _fits(setdata)
    await repeat(f"multi {k} setData", Op.MULTI, MultiRequest([setdata(i) for i in range(k)]))

    k = _fits(lambda i: (Op.CREATE, CreateRequest(f"/m/r0/c{i:06d}", b"", OPEN, 0)))
    await s.request(Op.CREATE, CreateRequest("/m", b"", OPEN, 0))
    times = []
    for r in range(runs + 1):
        await s.request(Op.CREATE, CreateRequest(f"/m/r{r}", b"", OPEN, 0))
        ops = [(Op.CREATE, CreateRequest(f"/m/r{r}/c{i:06d}", b"", OPEN, 0)) for i in range(k)]
        t, err, size = await timed(s, Op.MULTI, MultiRequest(ops))
        times.append(t)
    res[f"multi {k} create"] = {"s": min(times[1:]), "err": err, "bytes": size}

    await s.close()
    return res


def watch_manager_bytes(w: int) -> float:
    """zabby's own bookkeeping per watch, in-process (tracemalloc): one watcher,
    W distinct paths that already exist as strings (the tree holds them)."""
    import gc
    import tracemalloc

    from zabby.tree.watches import WatchManager

    watcher = object()
    paths = [f"/big/n{i:07d}" for i in range(w)]
    gc.collect()
    tracemalloc.start()
    try:
        wm = WatchManager()
        before, _ = tracemalloc.get_traced_memory()
        for p in paths:
            wm.add_data_watch(p, watcher)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (after - before) / max(w, 1)


def measure(kind: str, args, workdir: Path) -> dict:
    cfg = common_cfg(forceSync="no", snapCount=100_000_000)
    srv = make_server(kind, workdir / kind, **cfg)
    try:
        res = asyncio.run(bench(srv, kind, args))
    finally:
        srv.stop()
    if kind == "zabby":
        res["watch bytes (WatchManager, tracemalloc)"] = watch_manager_bytes(args.watches)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=200_000)
    ap.add_argument("--watches", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", choices=["zabby", "zookeeper"])
    ap.add_argument("--no-heap", dest="heap", action="store_false",
                    help="skip jcmd's live-heap figure for ZooKeeper")
    args = ap.parse_args(argv)
    print(machine())
    kinds = [args.only] if args.only else ["zabby", "zookeeper"]
    out = {}
    with tempfile.TemporaryDirectory(prefix="big-ops-") as d:
        for kind in kinds:
            out[kind] = measure(kind, args, Path(d))
    keys = list(dict.fromkeys(k for kind in kinds for k in out[kind]))
    print(f"{'operation':42} " + " ".join(f"{k:>12}" for k in kinds) +
          ("   zabby/zk" if len(kinds) == 2 else ""))
    for key in keys:
        cells = []
        vals = []
        for kind in kinds:
            v = out[kind].get(key)
            if isinstance(v, dict):
                vals.append(v["s"])
                note = f" err{v['err']}" if v["err"] else ""
                cells.append(f"{v['s']:>10.3f} s{note}")
            elif v is None:
                vals.append(None)
                cells.append(f"{'-':>12}")
            else:
                vals.append(v)
                cells.append(f"{v:>10.0f} B")
        line = f"{key:42} " + " ".join(cells)
        if len(kinds) == 2 and None not in vals and vals[1]:
            line += f"   {ratio(vals[0], vals[1])}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
