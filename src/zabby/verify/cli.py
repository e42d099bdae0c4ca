"""`zabby verify`: check that a ZooKeeper-compatible ensemble keeps its promises.

Runs concurrent workloads (registers: read / write / cas / sync+read; sequential
creates; a counter through multi; a queue; a lock; ephemerals; one-shot, persistent
and recursive watches) against an ensemble, injecting faults when it started the
ensemble itself, then checks the recorded history. The last line printed is the
verdict: `verify: VALID|INVALID|UNKNOWN|ERROR ops=N ok=N ...`; the exit status is
0 VALID, 1 INVALID (an anomaly, named), 2 UNKNOWN (the checker ran out of budget),
3 ERROR (the run could not be done). The history (history.jsonl), a timeline
(timeline.html) and summary.json go to --out DIR (default: a new temporary dir).

  zabby verify --nodes 3 --faults kill,pause,leader-kill,partition --duration 60
  zabby verify --nodes 3 --server zookeeper --faults kill,pause --duration 30
  zabby verify --hosts zk1:2181,zk2:2181,zk3:2181 --duration 60     # no faults

Partitions (partition, oneway, bridge) need root and iproute2 (network namespaces);
without them those faults are skipped with a message. slow-disk, clock-ahead, corrupt
(a member's log or snapshot damaged while it is down) and wipe (its data directory
deleted) are for zabby members only. See docs/VERIFY.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .runner import FAULTS

    g = p.add_mutually_exclusive_group()
    g.add_argument("--nodes", type=int, default=3,
                   help="start an ensemble of N members on 127.0.0.1, or each in its own "
                   "network namespace when --faults has partition (default 3)")
    g.add_argument("--hosts", help="host:port,... of an ensemble it does not manage (no faults)")
    p.add_argument("--faults", default="",
                   help=f"comma-separated, of: {','.join(FAULTS)} (default: none)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of workload (default 60)")
    p.add_argument("--seed", type=int, help="seed of the fault schedule and the workloads")
    p.add_argument("--server", choices=("zabby", "zookeeper"), default="zabby",
                   help="what to start (zookeeper: Apache ZooKeeper 3.8 from Debian)")
    p.add_argument("--out", help="directory for history.jsonl, timeline.html, summary.json")
    p.add_argument("--max-steps", type=int, default=2_000_000,
                   help="linearizability search budget per key (beyond it: UNKNOWN)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a zoo.cfg key for the members it starts; repeat for more")
    p.add_argument("--connect-timeout", type=float, default=30.0,
                   help="seconds to wait for a first session (default 30)")
    p.add_argument("--check", metavar="HISTORY",
                   help="only check a recorded history.jsonl again (no run)")
    p.add_argument("--drop-watch-events", type=int, default=0, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    from .runner import FAULTS, Options, parse_hosts, recheck, run

    def err(msg: str) -> int:
        print(f"verify: ERROR {msg}")
        return 3

    if args.check:
        outcome = recheck(Path(args.check), args.max_steps)
        if outcome.report is not None:
            for a in outcome.report.anomalies[:20]:
                print(f"ANOMALY {a}", file=sys.stderr)
        print(outcome.line, flush=True)
        return outcome.exit_code
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        return err(f"unknown fault {bad[0]!r} (known: {','.join(FAULTS)})")
    hosts = None
    if args.hosts:
        try:
            hosts = parse_hosts(args.hosts)
        except ValueError as e:
            return err(f"bad --hosts: {e}")
        if faults:
            return err("--faults needs an ensemble it starts itself (--nodes), not --hosts")
    elif args.nodes < 1:
        return err("--nodes must be at least 1")
    extra = {}
    for pair in args.set:
        k, sep, v = pair.partition("=")
        if not sep:
            return err(f"--set {pair!r}: expected KEY=VALUE")
        extra[k.strip()] = v.strip()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    opts = Options(nodes=args.nodes, faults=faults, duration=args.duration, seed=args.seed,
                   server=args.server, hosts=hosts, out=Path(args.out) if args.out else None,
                   max_steps=args.max_steps, drop_watch_events=args.drop_watch_events,
                   server_config=extra, connect_timeout=args.connect_timeout, log=log)
    outcome = run(opts)
    print(outcome.line, flush=True)
    return outcome.exit_code
