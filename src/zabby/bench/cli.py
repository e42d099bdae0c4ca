"""``zabby bench``: arguments, the human summary and the JSON line."""

from __future__ import annotations

import argparse
import json
import sys

from .client import BenchError
from .runner import run_bench
from .workloads import WORKLOADS, BenchConfig

DESCRIPTION = """\
Load generator speaking the ZooKeeper client protocol (works against zabby and
Apache ZooKeeper). Each session keeps --outstanding requests pipelined (or, with
--rate, requests go out on a fixed schedule whatever the replies); all
sessions share one process unless --procs is given. Workloads: read (getData),
write (setData), mixed (--read-pct reads), create (sequential create + delete),
watch (N sessions watch one znode, one writer; latency = setData to the last
notification), session (connect + closeSession), multi (4 setData in one multi).
Keys live under --prefix (default /bench), created before and deleted after.
Progress goes to stderr: a bar when stderr is a terminal, else a line a second
(--no-progress or ZABBY_NO_PROGRESS=1: neither); the last line of stdout is one
JSON object.

`zabby bench compare --help`: start Apache ZooKeeper 3.8 and zabby here (standalone
and 3-member ensembles) and run the workloads against both, in alternation.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from . import compare

    d = BenchConfig()
    sub = p.add_subparsers(dest="bench_command", metavar="{compare}",
                           title="subcommands (optional)")
    c = sub.add_parser("compare", help="zabby vs Apache ZooKeeper 3.8, started here",
                       description=compare.DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_arguments(c)
    p.add_argument("--hosts", default=d.hosts, help="host:port[,host:port...] (default %(default)s)")
    p.add_argument("--workload", "-w", choices=WORKLOADS, default=d.workload)
    p.add_argument("--sessions", "-n", type=int, default=d.sessions,
                   help="concurrent sessions (watch: watchers) (default %(default)s)")
    p.add_argument("--outstanding", "-m", type=int, default=d.outstanding,
                   help="pipelined requests per session (default %(default)s)")
    p.add_argument("--procs", "-p", type=int, default=d.procs,
                   help="worker processes sharing the sessions (default %(default)s)")
    p.add_argument("--warmup", type=float, default=d.warmup, help="seconds (default %(default)s)")
    p.add_argument("--duration", "-d", type=float, default=d.duration,
                   help="measured seconds (default %(default)s)")
    p.add_argument("--value-size", type=int, default=d.value_size,
                   help="bytes per value (default %(default)s)")
    p.add_argument("--keys", type=int, default=d.keys, help="znodes read/written (default %(default)s)")
    p.add_argument("--read-pct", type=float, default=d.read_pct,
                   help="mixed: percentage of reads (default %(default)s)")
    p.add_argument("--rate", type=float, default=d.rate,
                   help="open loop: send this many requests/s in total on schedule, whatever "
                        "the replies (read, write, mixed, multi; --outstanding is then "
                        "ignored); 0 = closed loop (default)")
    p.add_argument("--prefix", default=d.prefix, help="parent znode (default %(default)s)")
    p.add_argument("--no-cleanup", action="store_true", help="leave the znodes in place")
    p.add_argument("--connect-timeout", type=float, default=d.connect_timeout,
                   help="seconds to wait for a session (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr at all")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on a terminal (also ZABBY_NO_PROGRESS=1)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        hosts=args.hosts, workload=args.workload, sessions=args.sessions,
        outstanding=args.outstanding, warmup=args.warmup, duration=args.duration,
        value_size=args.value_size, keys=args.keys, read_pct=args.read_pct, procs=args.procs,
        prefix=args.prefix, cleanup=not args.no_cleanup, connect_timeout=args.connect_timeout,
        progress=not args.quiet, rate=args.rate,
    )


def summary(res: dict) -> str:
    lat = res["latency_ms"]
    what = res["workload"]
    if what == "mixed":
        what += f" ({res['read_pct']:g}% reads)"
    unit = {"watch": "rounds", "session": "sessions"}.get(res["workload"], "ops")
    load = (f"open loop at {res['offered_per_sec']:,.0f} requests/s ({res['missed']} missed)"
            if "offered_per_sec" in res else f"outstanding {res['outstanding']}")
    lines = [
        f"zabby bench: {what} against {res['hosts']}",
        f"  sessions {res['sessions']} x {load}, procs {res['procs']}, "
        f"value {res['value_size']} B, keys {res['keys']}, {res['duration_s']:g} s "
        f"after {res['warmup_s']:g} s warm-up",
        f"  throughput  {res['ops_per_sec']:>12,.0f} {unit}/s   ({res['ops']:,} {unit}, "
        f"{res['errors']} errors, {res['lost_sessions']} sessions lost)",
        f"  latency ms  p50 {lat['p50']:.3f}  p99 {lat['p99']:.3f}  p99.9 {lat['p99.9']:.3f}  "
        f"max {lat['max']:.3f}  mean {lat['mean']:.3f}",
    ]
    for name, k in res.get("by_kind", {}).items():
        kl = k["latency_ms"]
        lines.append(f"    {name:<7} {k['ops_per_sec']:>12,.0f} ops/s  p50 {kl['p50']:.3f}  "
                     f"p99 {kl['p99']:.3f}  p99.9 {kl['p99.9']:.3f}")
    if res["workload"] == "watch":
        lines.append(f"  {res['watchers']} watchers: {res['notifications_per_sec']:,.0f} "
                     f"notifications/s; latency = setData to the last notification")
    if res["error_codes"]:
        lines.append(f"  error codes {res['error_codes']}")
    lines.append(f"  client CPU  {res['client_cpu_s']:.2f} s = {res['client_cpu_pct']:.0f}% of one "
                 f"core ({res['client_cpu_pct_of_machine']:.0f}% of the machine)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "bench_command", None) == "compare":
        from . import compare

        if getattr(args, "argv", None) is None:
            argv = sys.argv[1:]
            args.argv = argv[argv.index("compare") + 1:] if "compare" in argv else []
        return compare.run(args)
    from ..cli.progress import BenchBar, progress_off, progress_wanted

    cfg = config_from_args(args)
    bar = None
    if cfg.progress and progress_wanted(args.no_progress):
        bar = BenchBar(desc=f"bench {cfg.workload}", warmup=cfg.warmup)
    elif progress_off(args.no_progress):
        cfg.progress = False  # not even the once-a-second lines
    try:
        res = run_bench(cfg, bar)
    except BenchError as e:
        print(f"zabby bench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zabby bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    try:
        if not args.json:
            print(summary(res))
        print(json.dumps(res, sort_keys=True), flush=True)
    except BrokenPipeError:  # `zabby bench ... | head`
        sys.stderr.close()
        return 0
    return 1 if res["lost_sessions"] else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zabby bench", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    if argv is not None and "compare" in argv:
        args.argv = argv[argv.index("compare") + 1:]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
