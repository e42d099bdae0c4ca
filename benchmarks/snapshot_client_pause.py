#!/usr/bin/env python3
"""The pause clients see while a real server snapshots a big tree (issue 14 item 6).

Not a test. Builds once (under --cache) a snapshot of --znodes znodes of --value
bytes (/r/dXXX/nXXXXXXX, 1000 per parent, as benchmarks/snapshot_pause.py), then
for each run starts a standalone `zabby serve` on 127.0.0.1 whose data directory
holds (a hard link to) that snapshot, waits until it serves, and drives it with
--sessions sessions, each one request at a time (setData and getData of random
znodes, alternating; with --creates, creates of new znodes), for --duration seconds. Per run: requests, p50 / p99 / p99.9 /
max latency, and the server's own "server paused X ms" log lines.

Variants (--variants, run in alternating order, --rounds times each):

- `nosnap` (or a name starting with it): snapCount 1e8, no snapshot during the run;
- any other name: snapCount --snap-count, so the server snapshots over and over
  during the run; a variant `name:attr=value;attr=value` also sets those class
  attributes of `zabby.server.durability.GroupCommitter` (or, with a dotted name,
  a module's global) in the server process before it starts (how the cuts are
  A/B-ed without a config knob), e.g. `nosync:zabby.storage.snapshot.SYNC_EVERY=0`.

    PYTHONPATH=src python benchmarks/snapshot_client_pause.py --variants nosnap,snap --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from zabby.bench import Session, connect
from zabby.bench.compare import proc_cpu_seconds
from zabby.storage import write_snapshot
from zabby.testing.servers import ZabbyServer
from zabby.tree.acl import intern_acl
from zabby.tree.snapshot import restore
from zabby.tree.znode import ZNode
from zabby.wire import CreateRequest, Op, PathWatchRequest, SetDataRequest
from zabby.wire.records import ACL, Id

PER_DIR = 1000
OPEN = [ACL(31, Id("world", "anyone"))]
PAUSED_RE = re.compile(r"written in ([\d.]+) ms \(server paused ([\d.]+) ms\)")

WRAPPER = """\
import os, sys
import zabby.server.durability as d
for kv in filter(None, os.environ.get("SNAPPAUSE_SET", "").split(";")):
    k, v = kv.split("=", 1)
    if "." in k:  # a module's global: zabby.storage.snapshot.SYNC_EVERY=0
        import importlib
        mod, _, k = k.rpartition(".")
        setattr(importlib.import_module(mod), k, eval(v))
    else:
        setattr(d.GroupCommitter, k, eval(v))
if os.environ.get("SNAPPAUSE_DIAG"):  # what the server does when a client waits
    import gc, time
    _t = {}
    def _cb(phase, info):
        if phase == "start":
            _t[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - _t[0]) * 1000
            if ms > 2 or info["generation"] == 2:
                print(f"DIAG {time.time():.3f} gc gen{info['generation']} {ms:.1f} ms "
                      f"collected {info['collected']}", file=sys.stderr, flush=True)
    gc.callbacks.append(_cb)
    def timed(cls, name):
        f = getattr(cls, name)
        def w(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                print(f"DIAG {time.time():.3f} {name} {(time.perf_counter() - t0) * 1000:.1f} ms",
                      file=sys.stderr, flush=True)
        setattr(cls, name, w)
    import zabby.storage.txnlog as tl
    timed(d.GroupCommitter, "take_snapshot")
    timed(tl.TxnLog, "roll")
    timed(tl.TxnLog, "write_batch")
    import zabby.storage.fs as zfs
    timed(zfs.RealFS, "fsync")
    timed(zfs.RealFS, "fsync_dir")
from zabby.cli.main import main
sys.exit(main())
"""


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def node_path(i: int) -> str:
    return f"/r/d{i // PER_DIR:03d}/n{i:07d}"


def build(cache: Path, znodes: int, value: int) -> Path:
    """The snapshot file (built once): / , /r, /r/dXXX, /r/dXXX/nXXXXXXX."""
    v2 = cache / f"{znodes}x{value}"
    found = sorted(v2.glob("snapshot.*")) if v2.exists() else []
    found = [p for p in found if not p.name.endswith(".tmp")]
    if found:
        return found[0]
    t0 = time.perf_counter()
    acl = intern_acl([ACL(31, Id("world", "anyone"))])
    data = b"v" * value
    now = 1_700_000_000_000

    def items():
        z = 1
        yield "/", ZNode(b"", acl, 0, now)
        yield "/r", ZNode(b"", acl, z, now)
        for i in range(znodes):
            if i % PER_DIR == 0:
                z += 1
                yield f"/r/d{i // PER_DIR:03d}", ZNode(b"", acl, z, now)
            z += 1
            yield node_path(i), ZNode(data, acl, z, now)

    n_dirs = (znodes + PER_DIR - 1) // PER_DIR
    tree = restore(items(), {}, znodes + n_dirs + 1)
    tmp = cache / "build"
    shutil.rmtree(tmp, ignore_errors=True)
    path = Path(write_snapshot(tree, str(tmp)))
    v2.mkdir(parents=True, exist_ok=True)
    final = v2 / path.name
    os.rename(path, final)
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"built {final} ({final.stat().st_size >> 20} MiB) in {time.perf_counter() - t0:.1f} s")
    return final


class WrappedZabby(ZabbyServer):
    start_timeout = 600.0

    def __init__(self, tmpdir, *, attrs: str = "", **cfg) -> None:
        self.attrs = attrs
        super().__init__(tmpdir, **cfg)

    def command(self) -> list[str]:
        return [self.python, "-c", WRAPPER, "serve", "--config", str(self.cfg_path)]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["SNAPPAUSE_SET"] = self.attrs
        return env


async def drive(host: str, port: int, sessions: int, duration: float, znodes: int,
                value: int, seed: int, creates: bool = False) -> list[float]:
    conns = [(await connect(host, port, Session, 10))[1] for _ in range(sessions)]
    data = b"w" * value
    lats: list[float] = []
    slow: list[tuple[float, float]] = []
    stop = time.perf_counter() + duration

    async def one(sess: Session, rng: random.Random) -> None:
        i = 0
        while time.perf_counter() < stop:
            p = node_path(rng.randrange(znodes))
            t0 = time.perf_counter()
            if creates:  # the tree grows: every request is a new znode
                err, _ = await sess.request(Op.CREATE, CreateRequest(
                    f"{p}-{seed}-{id(sess) % 99991}-{i}", data, OPEN, 0))
            elif i & 1:
                err, _ = await sess.request(Op.GET_DATA, PathWatchRequest(p, False))
            else:
                err, _ = await sess.request(Op.SET_DATA, SetDataRequest(p, data, -1))
            lat = time.perf_counter() - t0
            lats.append(lat)
            if lat > 0.03:
                slow.append((time.time(), lat * 1000))
            if err:
                raise RuntimeError(f"request failed: error {err}")
            i += 1

    await asyncio.gather(*(one(s, random.Random(seed + k)) for k, s in enumerate(conns)))
    for s in conns:
        s.transport.close()  # no closeSession: no txn after the run
    if os.environ.get("SNAPPAUSE_DIAG"):
        for t, ms in slow:
            print(f"SLOW {t:.3f} (ends) {ms:.1f} ms", flush=True)
    return lats


def wait_no_child(pid: int, timeout: float = 300) -> None:
    """Until the server has no snapshot child (so stopping it cuts none short)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                kids += (task / "children").read_text().split()
            except OSError:
                pass
        # the fsync helpers are children too: a snapshot child is a copy of the server
        big = [k for k in kids if _rss_mib(int(k)) > 100]
        if not big:
            return
        time.sleep(0.1)


def _rss_mib(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, IndexError, ValueError):
        return 0


def one_run(snap: Path, name: str, attrs: str, args, workdir: Path, seed: int) -> dict:
    d = workdir / f"run-{name}"
    shutil.rmtree(d, ignore_errors=True)
    v2 = d / "data" / "version-2"
    v2.mkdir(parents=True)
    os.link(snap, v2 / snap.name)
    snap_count = 100_000_000 if name.startswith("nosnap") else args.snap_count
    t0 = time.perf_counter()
    srv = WrappedZabby(d, attrs=attrs, snapCount=snap_count, forceSync="yes",
                       maxClientCnxns=0, tickTime=2000)
    try:
        start_s = time.perf_counter() - t0
        rss = _rss_mib(srv.pid)
        offset = srv.log_path.stat().st_size
        load0 = os.getloadavg()[0]
        cpu0 = proc_cpu_seconds(srv.pid)
        lats = asyncio.run(drive(srv.host, srv.port, args.sessions, args.duration, args.znodes,
                                 args.value, seed, args.creates))
        cpu = proc_cpu_seconds(srv.pid) - cpu0  # the server process, not its children
        load1 = os.getloadavg()[0]
        wait_no_child(srv.pid)
        with open(srv.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        snaps = [(float(a), float(b)) for a, b in PAUSED_RE.findall(text)]
        if os.environ.get("SNAPPAUSE_DIAG"):
            print("".join(ln + "\n" for ln in text.splitlines() if "DIAG" in ln or "snapshot" in ln))
    finally:
        srv.stop(timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    ms = sorted(x * 1000 for x in lats)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(len(ms) * p))]

    return {
        "name": name, "requests": len(ms), "rate": len(ms) / args.duration,
        "p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999), "max": ms[-1],
        "over50": sum(1 for x in ms if x > 50),
        "snaps": snaps, "start_s": start_s, "cpu_us": cpu / len(ms) * 1e6, "rss": rss, "load": (load0, load1),
    }


def show(r: dict) -> str:
    paused = ", ".join(f"{p:.0f}" for _, p in r["snaps"]) or "-"
    written = ", ".join(f"{w / 1000:.1f}" for w, _ in r["snaps"]) or "-"
    return (f"{r['name']:>12}: {r['requests']:7d} req ({r['rate']:6.0f}/s) p50 {r['p50']:5.2f} "
            f"p99 {r['p99']:6.2f} p99.9 {r['p999']:6.1f} max {r['max']:6.1f} ms, >50ms {r['over50']:3d}; "
            f"server paused [{paused}] ms, snapshots written in [{written}] s; "
            f"server CPU {r['cpu_us']:.1f} us/req; RSS {r['rss']} MiB; load {r['load'][0]:.1f}->{r['load'][1]:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--cache", default="/tmp/zabby-snapclient",
                    help="where the snapshot is built once (delete it afterwards)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--snap-count", type=int, default=20_000)
    ap.add_argument("--variants", default="nosnap,snap")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--creates", action="store_true",
                    help="every request creates a new znode (the tree grows; what the "
                         "cyclic GC's full collections cost: GroupCommitter.keep_frozen)")
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    snap = build(cache, args.znodes, args.value)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zabby-snapclient-run-", dir=cache))
    variants = []
    for v in args.variants.split(","):
        name, _, attrs = v.partition(":")
        variants.append((name, attrs))
    results: dict[str, list[dict]] = {n: [] for n, _ in variants}
    try:
        for rnd in range(args.rounds):
            order = variants if rnd % 2 == 0 else variants[::-1]
            for name, attrs in order:
                r = one_run(snap, name, attrs, args, workdir, seed=rnd * 1000)
                results[name].append(r)
                say(f"round {rnd + 1} " + show(r))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nsummary ({args.znodes:,} znodes of {args.value} B, {args.sessions} sessions x 1 "
          f"outstanding, setData/getData alternating, {args.duration:g} s per run, snapCount "
          f"{args.snap_count}):")
    for name, rs in results.items():
        paused = [p for r in rs for _, p in r["snaps"]]

        def col(key: str, fmt: str, rs=rs) -> str:
            return ", ".join(fmt % r[key] for r in rs)

        summ = (f"median {statistics.median(paused):.0f}, max {max(paused):.0f} ms over "
                f"{len(paused)} snapshots") if paused else "-"
        print(f"  {name:>12}: max {col('max', '%.1f')} ms; p99.9 {col('p999', '%.1f')} ms; "
              f"p99 {col('p99', '%.2f')} ms; req/s {col('rate', '%.0f')}; server CPU "
              f"{col('cpu_us', '%.1f')} us/req; server paused {summ}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
