#!/usr/bin/env python3
"""Where a single write's time goes in a local zabby ensemble, on the build `zabby serve`
runs (compiled modules, the C log thread): a per-hop trace from system calls.

Not a test. `benchmarks/hoptrace.py` patches Python methods, so it can only trace the
pure-Python modules; this one asks `perf trace` (root, linux-perf) for the timestamped
system calls of every thread of the three members and the client while one session
writes one setData at a time through a follower (F1; F2 is the other follower, L the
leader), cuts the trace at each request, and prints the median time of each hop from
the moment the client sent it:

    python benchmarks/systrace.py                # 0.5 s of tracing
    python benchmarks/systrace.py --seconds 1

The tracing itself slows every system call (the one-session p50 goes from ~0.9 to ~1.0
ms), so compare hops with each other and runs with runs, not with untraced latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zabby.testing.servers import ZabbyEnsemble  # noqa: E402

CALLS = "read,write,pwrite64,fdatasync,sendto"
# a call's start, its thread, name and arguments; a call another one interrupted is
# printed unfinished ("...") and still counts (its start is what we want)
LINE = re.compile(r"\s*([\d.]+) \(\s*([\d.]*)(?: ms)?\s*\): \S+/(\d+) (\w+)\((.*?)\)\s*(?:=|\.\.\.)")
FD = re.compile(r"fd: (\d+)")
COUNT = re.compile(r"count: (\d+)")


def parse(path: Path) -> list[tuple[float, int, str, int, int]]:
    """(ms, tid, call, fd, bytes asked) of every call, in time order."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = LINE.match(line)
        if not m:
            continue
        fd, count = FD.search(m.group(5)), COUNT.search(m.group(5))
        out.append((float(m.group(1)), int(m.group(3)), m.group(4),
                    int(fd.group(1)) if fd else -1, int(count.group(1)) if count else -1))
    out.sort()
    return out


def hops(events, roles: dict[int, str]
         ) -> tuple[list[dict[str, float]], dict[str, int], dict[str, int], dict[str, int]]:
    """The hop times (ms after the client's send) of each write traced whole, for the
    others how many lacked each first missing hop, how many of each follower's ACKs
    its log thread sent, and how many of F1's replies left before and after it read
    the leader's COMMIT (before: it committed on F2's PEER_ACK)."""
    def first(seq, t, who, call, cond=lambda e: True):
        for e in seq:
            if e[0] > t and roles.get(e[1]) == who and e[2] == call and cond(e):
                return e
        return None

    sends = [e for e in events if roles.get(e[1]) == "client" and e[2] == "write"]
    # F1's end of the client's connection: the descriptor of F1's last write before
    # each read of the client's, most often
    fds: dict[int, int] = {}
    last_f1_write = None
    for e in events:
        if roles.get(e[1]) == "F1" and e[2] == "write":
            last_f1_write = e
        elif roles.get(e[1]) == "client" and e[2] == "read" and last_f1_write is not None:
            fds[last_f1_write[3]] = fds.get(last_f1_write[3], 0) + 1
    client_fd = max(fds, key=fds.__getitem__) if fds else -1
    out: list[dict[str, float]] = []
    missed: dict[str, int] = {}
    writer_acks: dict[str, int] = {}
    replied: dict[str, int] = {}  # F1's replies before / after it read the COMMIT
    for s, nxt in zip(sends, sends[1:], strict=False):
        seq = [e for e in events if s[0] <= e[0] < nxt[0]]
        t0 = s[0]
        h: dict[str, float] = {}
        extra: dict[str, tuple | None] = {}
        creq = first(seq, t0, "F1", "read", lambda e: e[3] == client_fd)  # the request
        fwd = creq and first(seq, creq[0], "F1", "write", lambda e: e[3] != client_fd)
        if fwd is None:
            continue
        marks = [("F1 forwards", fwd)]
        lrecv = first(seq, fwd[0], "L", "read")
        lprop = lrecv and first(seq, lrecv[0], "L", "write")
        marks += [("L reads it", lrecv), ("L proposes", lprop)]
        for who in ("F1", "F2"):
            extra[f"{who} reads ENTRIES"] = lprop and first(seq, lprop[0], who, "read")
        for who in ("F1", "F2", "L"):
            pw = first(seq, t0, who + "-log", "pwrite64")
            # a follower's log thread sends the batch's ACK itself (its sendto comes
            # before the eventfd write that tells the loop); otherwise the loop does
            sent = pw and first(seq, pw[0], who + "-log", "sendto")
            dur = pw and first(seq, pw[0], who + "-log", "write", lambda e: e[4] == 8)
            marks += [(f"{who} log write starts", pw), (f"{who} durable", sent or dur)]
            if who != "L" and sent:
                marks.append((f"{who} sends ACK", sent))
                writer_acks[who] = writer_acks.get(who, 0) + 1
            elif who != "L" and dur:
                wake = first(seq, dur[0], who, "read", lambda e: e[4] == 8)
                ack = wake and first(seq, wake[0], who, "write")
                marks += [(f"{who} loop sees it", wake), (f"{who} sends ACK", ack)]
            elif dur:
                marks.append(("L loop sees own", first(seq, dur[0], "L", "read",
                                                       lambda e: e[4] == 8)))
        acks = [e for name, e in marks if e and name.endswith("sends ACK")]
        extra["L reads an ACK"] = acks and first(seq, min(a[0] for a in acks), "L", "read")
        commit = acks and first(seq, min(a[0] for a in acks), "L", "write")
        # the reply is F1's write on the client's connection: F1 commits on the
        # leader's COMMIT or, as often, on F2's PEER_ACK before the COMMIT arrives
        reply = first(seq, fwd[0], "F1", "write", lambda e: e[3] == client_fd)
        got = reply and first(seq, reply[0], "client", "read")
        extra["L sends COMMIT"] = commit
        # (on the leader's link, which F1 forwarded on: not F2's PEER_ACK)
        creads = commit and first(seq, commit[0], "F1", "read",
                                  lambda e, link=fwd[3]: e[3] == link)
        extra["F1 reads COMMIT"] = creads
        if reply:
            how = "after the COMMIT" if creads and creads[0] < reply[0] else "before the COMMIT"
            replied[how] = replied.get(how, 0) + 1
        marks += [("F1 replies", reply), ("client reads", got)]
        missing = [name for name, e in marks if not e]
        if missing:
            missed[missing[0]] = missed.get(missing[0], 0) + 1
            continue
        # the optional marks (seen in most writes) go in time order among the others
        for name, e in sorted(marks + [(n, e) for n, e in extra.items() if e],
                              key=lambda m: m[1][0]):
            h[name] = (e[0] - t0) * 1000
        out.append(h)
    return out, missed, writer_acks, replied


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for t in os.listdir(f"/proc/{p}/task"):
            try:
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(k) for k in kids)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    if shutil.which("perf") is None:
        sys.exit("needs perf (Debian: linux-perf) and root")
    work = Path(tempfile.mkdtemp(prefix="systrace"))
    ens = ZabbyEnsemble(work / "ens", 3, tickTime=2000)
    try:
        leader = ens.leader()
        f1, f2 = (i for i in ens.members if i != leader)
        bench = subprocess.Popen(
            [sys.executable, "-m", "zabby.cli.main", "bench", "--hosts", ens.members[f1].hosts,
             "-w", "write", "-n", "1", "-m", "1", "--warmup", "1",
             "--duration", str(args.seconds + 3), "--quiet", "--no-progress", "--json"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        roles: dict[int, str] = {}
        client_pids = _descendants(bench.pid)  # the bench may run its sessions in children
        for pid in client_pids:
            for t in os.listdir(f"/proc/{pid}/task"):
                roles[int(t)] = "client"
        for name, i in (("L", leader), ("F1", f1), ("F2", f2)):
            pid = ens.members[i].pid
            for t in os.listdir(f"/proc/{pid}/task"):
                comm = Path(f"/proc/{pid}/task/{t}/comm").read_text().strip()
                roles[int(t)] = name if int(t) == pid else f"{name}-log" \
                    if comm.startswith("python") else f"{name}-{comm}"
        trace = work / "trace.txt"
        subprocess.run(["perf", "trace", "-p", ",".join(str(p) for p in {
            *(ens.members[i].pid for i in ens.members), *client_pids}), "-o", str(trace), "-e",
            CALLS, "--", "sleep", str(args.seconds)], check=True, capture_output=True)
        result = json.loads(bench.communicate(timeout=60)[0].strip().splitlines()[-1])
        # several threads of a member besides its loop do syscalls only when they work
        # (snapshots, the admin server): the log thread is the one that pwrites
        writers = {e[1] for e in parse(trace) if e[2] == "pwrite64"}
        for tid, role in list(roles.items()):
            if role.endswith("-log") and tid not in writers:
                roles[tid] = role.replace("-log", "-other")
        rows, missed, writer_acks, replied = hops(parse(trace), roles)
        print(f"bench (traced): p50 {result['latency_ms']['p50']:.3f} ms; "
              f"{len(rows)} writes traced whole; not whole, by first missing hop: {missed}; "
              f"ACKs sent by the log thread: {writer_acks}; F1 replied: {replied}")
        if not rows:
            return
        names = {n for r in rows for n in r}
        med = {n: statistics.median([r[n] for r in rows if n in r]) for n in names}
        for name in sorted(names, key=med.__getitem__):
            print(f"  {med[name]:7.0f} us  {name}")
    finally:
        ens.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
