#!/usr/bin/env python3
"""Where a single write's time goes in a local zabby ensemble: a per-hop trace.

Not a test. Starts a 3-member ensemble whose members record CLOCK_MONOTONIC (shared by
all processes of the machine) at a few points -- a client or peer socket read, the end
of a client or peer socket write, the start of a log batch (`pump`), the request to the
fsync helper and its answer -- then drives one session of setData at the leader (one
request at a time), and prints, for the most common event sequences of a request, the
median time of each event from the request's arrival at the leader.

    python benchmarks/hoptrace.py                 # 3 s of writes
    python benchmarks/hoptrace.py --seconds 5 --top 2

Monkeypatching is done in the member processes only (`_member` below); the numbers
include the small cost of recording. The members run the pure-Python modules
(ZABBY_PURE_PYTHON=1): the request path's classes are native when compiled, and a
native class's methods cannot be patched. So each hop's Python cost here is the
interpreted one, higher than `zabby serve`'s; the network and fsync hops are the same.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (module, class, method, label, record after the call instead of before)
POINTS = [
    ("peers", "_Link", "data_received", "peer.recv", False),
    ("peers", "_Link", "flush", "peer.sent", True),
    ("connection", "ClientConnection", "data_received", "client.recv", False),
    ("connection", "ClientConnection", "flush", "client.sent", True),
    ("fsync_helper", "FsyncHelper", "sync", "fsync.ask", False),
    ("fsync_helper", "FsyncHelper", "_readable", "fsync.done", False),
    # the server's default log syncer: write + fsync in one child (ask = hand-off)
    ("fsync_helper", "LogWriter", "write_sync", "fsync.ask", False),
    ("fsync_helper", "LogWriter", "_readable", "fsync.done", False),
    ("durability", "GroupCommitter", "_pump", "log.pump", False),
    # the direct lane: a thread of the member's own process writes + fsyncs small batches
    ("durability", "_DirectWriter", "write_sync", "fsync.ask", False),
    ("durability", "GroupCommitter", "_direct_synced", "fsync.done", False),
]
# --detail: the steps inside a member between those points
DETAIL = [
    ("peers", "_Link", "data_received", "peer.recv.end", True),
    ("peers", "_Link", "send", "peer.queue", False),
    ("durability", "GroupCommitter", "_synced", "log.synced", False),
    ("ensemble", "EnsembleServer", "_log_batch_durable", "log.durable.end", True),
    ("ensemble", "EnsembleServer", "_drain_deferred", "drain.deferred", False),
    ("pipeline", "ZabCommit", "lead_write", "lead.write", False),
    ("pipeline", "CommitStage", "apply", "apply", False),
    ("connection", "ClientConnection", "send", "client.queue", False),
]


def _member(cfg: str, out: str, detail: bool = False, profile: bool = False) -> None:
    """Run one member with the trace points installed; SIGUSR1 writes and clears them.
    With `profile`, the first SIGUSR1 also starts cProfile and the second writes its
    statistics next to the trace (`<trace>.prof`): the functions the member's loop ran
    during the measured writes (no trace points then: they would show up in it)."""
    import importlib

    events: list[tuple[int, str]] = []
    now = time.monotonic_ns

    def wrap(cls, name, label, after):
        orig = getattr(cls, name)

        def traced(self, *a, **k):
            if not after:
                events.append((now(), label))
            r = orig(self, *a, **k)
            if after:
                events.append((now(), label))
            return r

        setattr(cls, name, traced)

    for mod, cls, meth, label, after in ([] if profile else
                                         POINTS + (DETAIL if detail else [])):
        m = importlib.import_module(f"zabby.server.{mod}")
        wrap(getattr(m, cls), meth, label, after)
    prof: list = []

    def dump(*_):
        with open(out, "w") as f:
            f.writelines(f"{t} {lab}\n" for t, lab in events)
        events.clear()
        if profile:
            if not prof:
                import cProfile

                # CPU time of the loop thread, not wall time (a process preempted by the
                # one it woke would otherwise charge the wait to the write that woke it)
                prof.append(cProfile.Profile(time.thread_time_ns, 1e-9))
                prof[0].enable()
            else:
                prof[0].disable()
                prof[0].dump_stats(out + ".prof")

    signal.signal(signal.SIGUSR1, dump)
    from zabby.cli.main import main

    sys.argv = ["zabby", "serve", "--config", cfg]
    main()


def analyze(files: dict[int, Path], leader: int, top: int, by_label: bool = False,
            at: int | None = None) -> str:
    ev = []
    for sid, f in files.items():
        for line in f.read_text().split("\n"):
            if line:
                t, lab = line.split()
                ev.append((int(t), f"s{sid}.{lab}"))
    ev.sort()
    at = leader if at is None else at
    start, end = f"s{at}.client.recv", f"s{at}.client.sent"
    cycles, cur = [], None
    for t, lab in ev:
        if lab == start:
            cur = [(t, lab)]
        elif cur is not None:
            cur.append((t, lab))
            if lab == end:
                cycles.append(cur)
                cur = None
    where = "the leader" if at == leader else f"follower s{at}"
    out = [f"{len(cycles)} requests traced (leader s{leader}, session on {where}; times from "
           f"the request's arrival there, medians)"]
    if by_label:
        at: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
        for c in cycles:
            seen: collections.Counter = collections.Counter()
            for t, lab in c:
                seen[lab] += 1
                at[(lab, seen[lab])].append((t - c[0][0]) / 1000)
        rows = sorted((statistics.median(v), k, len(v)) for k, v in at.items()
                      if len(v) >= len(cycles) // 2)
        prev = 0.0
        for med, (lab, k), n in rows:
            out.append(f"  {lab + ('#' + str(k) if k > 1 else ''):22s} {med:8.1f} us   "
                       f"(+{med - prev:6.1f})  in {n}")
            prev = med
        return "\n".join(out)
    kinds = collections.Counter(tuple(lab for _, lab in c) for c in cycles)
    for seq, n in kinds.most_common(top):
        same = [c for c in cycles if tuple(lab for _, lab in c) == seq]
        cols = list(zip(*[[(t - c[0][0]) / 1000 for t, _ in c] for c in same], strict=True))
        out.append(f"\n{n} requests with this sequence:")
        prev = 0.0
        for lab, col in zip(seq, cols, strict=True):
            med = statistics.median(col)
            out.append(f"  {lab:20s} {med:8.1f} us   (+{med - prev:6.1f})")
            prev = med
    return "\n".join(out)


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_member":
        mode = sys.argv[4] if len(sys.argv) > 4 else "plain"
        _member(sys.argv[2], sys.argv[3], mode == "detail", mode == "profile")
        return 0
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--top", type=int, default=3, help="event sequences to show")
    p.add_argument("--at", choices=("leader", "follower"), default="leader",
                   help="the member the session writes through (zabby bench compare's one "
                        "session uses the first member listed, usually a follower)")
    p.add_argument("--detail", action="store_true",
                   help="more trace points inside each member (DETAIL)")
    p.add_argument("--profile", action="store_true",
                   help="instead of tracing, cProfile every member during the writes and "
                        "print the leader's and the session's member's top functions")
    p.add_argument("--by-label", action="store_true",
                   help="median time of each (event, n-th occurrence in the request) over "
                        "every request, instead of per event sequence (robust when "
                        "members interleave differently from request to request)")
    args = p.parse_args(argv)
    from zabby.testing import ZabbyEnsemble

    base = Path(tempfile.mkdtemp(prefix="zabby-hoptrace-"))
    ens = ZabbyEnsemble(base, 3, start=False, tickTime=2000)  # ports and data dirs only
    procs: dict[int, subprocess.Popen] = {}
    traces = {sid: base / f"trace{sid}.txt" for sid in ens.members}
    try:
        for sid, m in ens.members.items():
            m.write_config()
            procs[sid] = subprocess.Popen(
                [sys.executable, __file__, "_member", str(m.cfg_path), str(traces[sid]),
                 "profile" if args.profile else "detail" if args.detail else "plain"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "ZABBY_PURE_PYTHON": "1"})  # (see the docstring)
            m.proc = procs[sid]  # so that the ensemble's helpers (mode, wait) see it running
        ens.wait_serving(ids=list(ens.members), timeout=60)
        leader = next(i for i in ens.members if ens.mode(i) == "leader")
        for pr in procs.values():
            pr.send_signal(signal.SIGUSR1)  # drop what the election recorded
        time.sleep(0.3)
        at = leader if args.at == "leader" else min(i for i in ens.members if i != leader)
        lm = ens.members[at]
        subprocess.run([sys.executable, "-m", "zabby", "bench", "--hosts",
                        f"{lm.host}:{lm.port}", "-w", "write", "-n", "1", "-d",
                        str(args.seconds), "--warmup", "0.5", "--quiet"], check=True)
        for pr in procs.values():
            pr.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        if args.profile:
            import pstats

            for sid in dict.fromkeys((leader, at)):
                role = "leader" if sid == leader else "the session's follower"
                print(f"\n==== s{sid} ({role}): cProfile during the writes, by own time")
                st = pstats.Stats(str(traces[sid]) + ".prof")
                st.sort_stats("tottime").print_stats(25)
        else:
            print(analyze(traces, leader, args.top, args.by_label, at))
    finally:
        for pr in procs.values():
            try:
                os.killpg(pr.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pr.wait()
        shutil.rmtree(base, ignore_errors=True)  # three members' preallocated logs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
