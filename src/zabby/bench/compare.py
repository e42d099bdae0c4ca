"""``zabby bench compare``: zabby against Apache ZooKeeper 3.8, same settings, same run.

Starts both servers with equivalent settings (tickTime, forceSync=yes, snapCount,
maxClientCnxns=0, initLimit/syncLimit, data directories side by side under one
work directory), standalone and as 3-member ensembles on loopback, and runs each
workload against each server in alternation (zabby, ZooKeeper, then the next
workload; with --rounds R the order flips every round). Ensemble clients are spread
over all members. Writes ``results.md`` (the table), ``results.json`` (everything
``zabby bench`` reported, plus server CPU) and PNG plots (if matplotlib is
installed: ``pip install 'zabby[bench]'``) to the results folder, and prints the table.

Benchmarks are not tests: nothing here judges a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .client import BenchError
from .runner import run_bench
from .workloads import PACED, WORKLOADS, BenchConfig

KINDS = ("zabby", "zookeeper")
LABEL = {"zabby": "zabby", "zookeeper": "ZooKeeper"}
MODES = ("standalone", "ensemble")

# ZooKeeper as it would run in production (the test launcher's JVM is tuned for fast
# start: C1 only, 256 MB); the same flags as benchmarks/_common.py.
BENCH_JVM_FLAGS = ("-XX:+UseG1GC", "-Xms1g", "-Xmx8g", "-XX:-UsePerfData")

QUICK = {"sessions": 8, "outstanding": "1", "duration": 2.0, "warmup": 0.5, "keys": 100,
         "prime": 0.0}
FULL = {"sessions": 32, "outstanding": "1", "duration": 10.0, "warmup": 2.0, "keys": 1000,
        "prime": 10.0}

DESCRIPTION = """\
Compare zabby with Apache ZooKeeper 3.8 (Debian's zookeeper package, Java) on this
machine: both started here with equivalent settings (tickTime=2000, forceSync=yes,
same snapCount, maxClientCnxns=0, initLimit=10, syncLimit=5, data side by side),
standalone and as 3-member ensembles on loopback; each server first gets --prime seconds
of load (ZooKeeper's JIT warms up), then every workload runs against each server in
alternation in the same run. Writes results.md, results.json and PNG plots
(matplotlib, optional: pip install 'zabby[bench]') to --out (default
./results/<timestamp>/) and prints the table. Ratios are zabby / ZooKeeper.
A noisy machine moves absolute figures; compare ratios from the same run.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workloads", default="read,write,mixed",
                   help=f"comma-separated, of {','.join(WORKLOADS)} (default %(default)s)")
    p.add_argument("--modes", default="standalone,ensemble",
                   help="standalone, ensemble or both (default %(default)s)")
    p.add_argument("--sessions", "-n", type=int,
                   help=f"concurrent sessions (default {FULL['sessions']}; --quick {QUICK['sessions']})")
    p.add_argument("--outstanding", "-m",
                   help="pipelined requests per session, comma-separated list "
                        f"(default {FULL['outstanding']})")
    p.add_argument("--rate", type=float, default=0.0,
                   help="open loop at this many requests/s in total for read, write, mixed "
                        "and multi (latency at a fixed offered load both servers can "
                        "sustain); 0 = closed loop with --outstanding (default)")
    p.add_argument("--duration", "-d", type=float,
                   help=f"measured seconds per run (default {FULL['duration']:g}; "
                        f"--quick {QUICK['duration']:g})")
    p.add_argument("--warmup", type=float,
                   help=f"seconds (default {FULL['warmup']:g}; --quick {QUICK['warmup']:g})")
    p.add_argument("--keys", type=int, help=f"znodes (default {FULL['keys']}; --quick {QUICK['keys']})")
    p.add_argument("--prime", type=float,
                   help="seconds of mixed load on each server once it has started, before "
                        "any measurement (ZooKeeper's JIT speeds it up over the first tens "
                        f"of seconds) (default {FULL['prime']:g}; --quick {QUICK['prime']:g})")
    p.add_argument("--value-size", type=int, default=128, help="bytes (default %(default)s)")
    p.add_argument("--read-pct", type=float, default=80.0,
                   help="mixed: percentage of reads (default %(default)s)")
    p.add_argument("--procs", "-p", type=int, default=1,
                   help="bench worker processes (default %(default)s)")
    p.add_argument("--members", type=int, default=3, help="ensemble size (default %(default)s)")
    p.add_argument("--rounds", type=int, default=1,
                   help="runs per server and workload; medians are reported (default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="short runs, few sessions and keys (a smoke test, not a measurement)")
    p.add_argument("--out", help="results folder (default ./results/<timestamp>/)")
    p.add_argument("--workdir", help="where the servers keep their data (default: a temp dir)")
    p.add_argument("--keep-data", action="store_true", help="keep the servers' directories")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on a terminal (also ZABBY_NO_PROGRESS=1; the "
                        "timestamped lines stay)")


# ------------------------------------------------------------------ servers
def _zk_member_class():
    from ..testing.servers import ZooKeeperServer

    class BenchZooKeeper(ZooKeeperServer):
        start_timeout = 180.0

        def command(self) -> list[str]:
            cmd = super().command()
            rest = [a for a in cmd[1:]
                    if not a.startswith(("-XX:", "-Xms", "-Xmx", "-Xss", "-Xshare"))]
            return [cmd[0], *BENCH_JVM_FLAGS, *rest]

    return BenchZooKeeper


class Target:
    """One running server or ensemble: its client hosts, its pids, how to stop it."""

    def __init__(self, kind: str, mode: str, handle, members: list) -> None:
        self.kind, self.mode, self.handle, self.members = kind, mode, handle, members

    @property
    def hosts(self) -> str:
        return self.handle.hosts

    def pids(self) -> list[int]:
        return [m.pid for m in self.members if m.pid is not None]

    def stop(self) -> None:
        self.handle.stop()


def server_settings(**over) -> dict:
    """zoo.cfg keys both servers get (the launchers add the 4lw whitelist *)."""
    cfg = {"tickTime": 2000, "forceSync": "yes", "maxClientCnxns": 0, "snapCount": 100000}
    cfg.update(over)
    return cfg


def start_target(kind: str, mode: str, directory: Path, members: int = 3) -> Target:
    from ..testing.servers import ZabbyEnsemble, ZabbyServer, ZooKeeperEnsemble

    cfg = server_settings()
    if mode == "standalone":
        srv = (ZabbyServer(directory, **cfg) if kind == "zabby"
               else _zk_member_class()(directory, **cfg))
        return Target(kind, mode, srv, [srv])
    if kind == "zabby":
        ens = ZabbyEnsemble(directory, members, start=False, **cfg)
    else:
        ens = ZooKeeperEnsemble(directory, members, start=False, member_cls=_zk_member_class(),
                                initLimit=10, syncLimit=5, **cfg)
    try:
        ens.start(timeout=180.0)
    except BaseException:
        ens.stop()
        raise
    return Target(kind, mode, ens, list(ens.members.values()))


def proc_cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (all its threads), from /proc (0 where unavailable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        java = java.splitlines()[0] if java else "unknown"
    except OSError:
        java = "not installed"
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gb": mem, "kernel": platform.release(),
            "python": sys.version.split()[0], "java": java,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def filesystem_of(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout
        dev, fstype = out.splitlines()[1].split()[:2]
        return f"{fstype} on {dev}"
    except (OSError, IndexError, ValueError):
        return "unknown"


# ------------------------------------------------------------------ the run
def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _resolve(args: argparse.Namespace) -> dict:
    base = QUICK if args.quick else FULL
    opts = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}
    try:
        opts["outstanding"] = [int(x) for x in str(opts["outstanding"]).split(",") if x]
    except ValueError:
        raise BenchError("--outstanding takes a comma-separated list of integers") from None
    opts["workloads"] = [w.strip() for w in args.workloads.split(",") if w.strip()]
    opts["modes"] = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [w for w in opts["workloads"] if w not in WORKLOADS]
    if bad or not opts["workloads"]:
        raise BenchError(f"unknown workload {bad[0] if bad else ''!r} "
                         f"(one of {', '.join(WORKLOADS)})")
    badm = [m for m in opts["modes"] if m not in MODES]
    if badm or not opts["modes"]:
        raise BenchError(f"unknown mode {badm[0] if badm else ''!r} (standalone, ensemble)")
    if opts["sessions"] < 1 or opts["keys"] < 1 or min(opts["outstanding"] or [0]) < 1:
        raise BenchError("--sessions, --keys and --outstanding must be at least 1")
    if opts["duration"] <= 0 or opts["warmup"] < 0 or opts["prime"] < 0:
        raise BenchError("--duration must be > 0, --warmup and --prime >= 0")
    if args.rate < 0:
        raise BenchError("--rate must be >= 0")
    if args.rounds < 1 or args.members < 1 or args.procs < 1:
        raise BenchError("--rounds, --members and --procs must be at least 1")
    opts.update(value_size=args.value_size, read_pct=args.read_pct, procs=args.procs,
                rounds=args.rounds, members=args.members, rate=args.rate)
    return opts


def measure(target: Target, workload: str, m: int, opts: dict) -> dict:
    pids = target.pids()
    cpu0 = sum(proc_cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    res = run_bench(BenchConfig(
        hosts=target.hosts, workload=workload, sessions=opts["sessions"], outstanding=m,
        warmup=opts["warmup"], duration=opts["duration"], value_size=opts["value_size"],
        keys=max(opts["keys"], 4), read_pct=opts["read_pct"], procs=opts["procs"],
        progress=False, rate=_rate(opts, workload)))
    wall = time.perf_counter() - t0
    res["server_cpu_pct"] = round(100 * (sum(proc_cpu_seconds(p) for p in pids) - cpu0) / wall, 1)
    res["server"] = target.kind
    res["mode"] = target.mode
    return res


PRIME_SESSIONS = 32  # enough to load both cores; a 1,000-session connect burst is not priming


def prime(target: Target, opts: dict) -> None:
    """Load a fresh server before measuring it (JIT, caches, log preallocation)."""
    run_bench(BenchConfig(
        hosts=target.hosts, workload="mixed", sessions=min(opts["sessions"], PRIME_SESSIONS),
        outstanding=1,
        warmup=0, duration=opts["prime"], value_size=opts["value_size"],
        keys=max(opts["keys"], 4), read_pct=50.0, procs=opts["procs"], progress=False,
        prefix="/prime"))


def _rate(opts: dict, workload: str) -> float:
    """The open-loop rate for this workload (0: closed loop)."""
    return opts.get("rate", 0.0) if workload in PACED else 0.0


def load_label(row: dict) -> str:
    rate = row.get("rate", 0.0)
    return f"{rate:,.0f}/s open loop" if rate else f"m={row['outstanding']}"


def _stalled(run: dict) -> bool:
    """A run in which no request completed (the server stalled for the whole window):
    its latencies are zeros, not measurements, and must not enter a median."""
    return not run["ops_per_sec"]


def _median_result(runs: list[dict]) -> dict:
    """The medians of the runs in which requests completed; `stalled_rounds` counts
    the others (all of them stalled: the first run, zeros and all)."""
    measured = [r for r in runs if not _stalled(r)]
    stalled = len(runs) - len(measured)
    runs = measured or runs[:1]
    if len(runs) == 1:
        return {**runs[0], "stalled_rounds": stalled}
    out = dict(runs[0])
    out["stalled_rounds"] = stalled
    out["ops_per_sec"] = statistics.median(r["ops_per_sec"] for r in runs)
    out["latency_ms"] = {k: statistics.median(r["latency_ms"][k] for r in runs)
                         for k in runs[0]["latency_ms"]}
    out["server_cpu_pct"] = statistics.median(r["server_cpu_pct"] for r in runs)
    out["client_cpu_pct"] = statistics.median(r["client_cpu_pct"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["lost_sessions"] = sum(r["lost_sessions"] for r in runs)
    return out


def count_steps(opts: dict) -> int:
    """The steps `run_compare` reports: start-ups, primings and measured runs."""
    per_mode = len(KINDS) * (1 + (opts.get("prime", 0) > 0)
                             + len(opts["workloads"]) * len(opts["outstanding"]) * opts["rounds"])
    return per_mode * len(opts["modes"])


def run_compare(opts: dict, workdir: Path, say=_say, progress=None) -> dict:
    """Every (mode, workload, outstanding) against both servers; returns rows and raw runs.

    `progress(label, steps done, steps)`, if given, hears each step (a server start,
    a priming, a measured run) before it starts, and (steps, steps) at the end."""
    rows, raw = [], []
    total = count_steps(opts)
    done = 0

    def step(label: str) -> None:
        nonlocal done
        if progress is not None:
            progress(label, done, total)
        done += 1

    for mode in opts["modes"]:
        targets: dict[str, Target] = {}
        try:
            for kind in KINDS:
                step(f"{mode}: starting {LABEL[kind]}")
                t0 = time.perf_counter()
                targets[kind] = start_target(kind, mode, workdir / f"{mode}-{kind}",
                                             opts["members"])
                say(f"{mode} {LABEL[kind]} serving on {targets[kind].hosts} "
                    f"({time.perf_counter() - t0:.1f} s)")
            for kind in KINDS:
                if opts.get("prime", 0) > 0:
                    step(f"{mode}: priming {LABEL[kind]}")
                    prime(targets[kind], opts)
                    say(f"{mode} {LABEL[kind]} primed with {opts['prime']:g} s of mixed load")
            for w in opts["workloads"]:
                for m in opts["outstanding"]:
                    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
                    for r in range(opts["rounds"]):
                        for kind in (KINDS if r % 2 == 0 else KINDS[::-1]):
                            step(f"{mode} {w} {LABEL[kind]} round {r + 1}/{opts['rounds']}")
                            res = measure(targets[kind], w, m, opts)
                            res["round"] = r
                            runs[kind].append(res)
                            raw.append(res)
                            lat = res["latency_ms"]
                            load = load_label({"rate": _rate(opts, w), "outstanding": m})
                            say(f"{mode} {w} {load} {LABEL[kind]}: {res['ops_per_sec']:,.0f} ops/s "
                                f"p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} ms, server CPU "
                                f"{res['server_cpu_pct']:.0f}%, bench CPU "
                                f"{res['client_cpu_pct']:.0f}%, errors {res['errors']}"
                                + ("; no request done: left out of the medians"
                                   if _stalled(res) else ""))
                    rows.append({"mode": mode, "workload": w, "outstanding": m,
                                 "rate": _rate(opts, w),
                                 **{k: _median_result(runs[k]) for k in KINDS}})
        finally:
            for t in targets.values():
                t.stop()
    if progress is not None:
        progress("done", total, total)
    return {"rows": rows, "runs": raw}


# ------------------------------------------------------------------ output
def ratio(a, b) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}"


HEADER = ["mode", "workload", "load", "zabby ops/s", "ZK ops/s", "ops zabby/ZK",
          "zabby p50 ms", "ZK p50 ms", "p50 zabby/ZK", "zabby p99 ms", "ZK p99 ms",
          "p99 zabby/ZK", "server CPU zabby/ZK", "errors zabby/ZK"]


def table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for row in rows:
        z, k = row["zabby"], row["zookeeper"]
        zl, kl = z["latency_ms"], k["latency_ms"]
        w = row["workload"] + (f" ({z['read_pct']:g}% reads)" if row["workload"] == "mixed" else "")
        out.append([
            row["mode"], w, load_label(row),
            f"{z['ops_per_sec']:,.0f}", f"{k['ops_per_sec']:,.0f}",
            ratio(z["ops_per_sec"], k["ops_per_sec"]),
            f"{zl['p50']:.2f}", f"{kl['p50']:.2f}", ratio(zl["p50"], kl["p50"]),
            f"{zl['p99']:.2f}", f"{kl['p99']:.2f}", ratio(zl["p99"], kl["p99"]),
            f"{z['server_cpu_pct']:.0f}% / {k['server_cpu_pct']:.0f}%",
            f"{z['errors']} / {k['errors']}" + _stalled_note(z, k),
        ])
    return out


def _stalled_note(z: dict, k: dict) -> str:
    zs, ks = z.get("stalled_rounds", 0), k.get("stalled_rounds", 0)
    return f" ({zs} / {ks} rounds with no request done, left out)" if zs or ks else ""


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def describe(opts: dict, info: dict) -> str:
    load = (f"open loop at {opts['rate']:,.0f} requests/s for {'/'.join(PACED)} (sent on "
            f"schedule whatever the replies; latency from send to reply), "
            if opts.get("rate") else "")
    return (f"{opts['sessions']} sessions, {load}{opts['value_size']} B values, {opts['keys']} keys, "
            f"mixed = {opts['read_pct']:g}% reads, {opts['duration']:g} s after "
            f"{opts['warmup']:g} s warm-up, each server primed with {opts.get('prime', 0):g} s of "
            f"mixed load after it started, rounds {opts['rounds']} (medians), bench procs "
            f"{opts['procs']}; ensembles of {opts['members']} on loopback, clients spread over "
            f"all members. Both servers: tickTime=2000, forceSync=yes, snapCount=100000, "
            f"maxClientCnxns=0, initLimit=10, syncLimit=5, data on {info.get('filesystem')}; "
            f"ZooKeeper JVM {' '.join(BENCH_JVM_FLAGS)}. Machine: {info['nproc']} x "
            f"{info['cpu']}, {info['mem_gb']} GiB, kernel {info['kernel']}, Python "
            f"{info['python']}, {info['java']}; load average at start "
            f"{info['loadavg_at_start']}, at end {info.get('loadavg_at_end')}.")


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(rows: list[dict], out: Path) -> list[Path]:
    """throughput.png and latency.png (one panel per mode); [] without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return []
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r["mode"] for r in rows))
    colors = {"zabby": "#1f77b4", "zookeeper": "#ff7f0e"}
    written = []

    def label(r):
        return r["workload"] + (f"\n{load_label(r)}" if r.get("rate") or r["outstanding"] != 1
                                else "")

    # throughput
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.2), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        mr = [r for r in rows if r["mode"] == mode]
        xs = range(len(mr))
        for j, kind in enumerate(KINDS):
            vals = [r[kind]["ops_per_sec"] for r in mr]
            bars = ax.bar([x + (j - 0.5) * 0.4 for x in xs], vals, 0.4, label=LABEL[kind],
                          color=colors[kind])
            ax.bar_label(bars, labels=[f"{v / 1000:.1f}k" for v in vals], fontsize=7)
        for x, r in zip(xs, mr, strict=True):
            ax.annotate(f"x{ratio(r['zabby']['ops_per_sec'], r['zookeeper']['ops_per_sec'])}",
                        (x, 0), xytext=(0, -28), textcoords="offset points", ha="center",
                        fontsize=8, color="#444")
        ax.set_xticks(list(xs), [label(r) for r in mr])
        ax.set_title(f"{mode}: throughput (ops/s)")
        ax.legend(fontsize=8)
    written.append(_save(plt, fig, out / "throughput.png"))

    # latency: p50 and p99 side by side per workload
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.2), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        mr = [r for r in rows if r["mode"] == mode]
        xs = range(len(mr))
        width = 0.2
        for j, (kind, q) in enumerate([(k, q) for q in ("p50", "p99") for k in KINDS]):
            vals = [r[kind]["latency_ms"][q] for r in mr]
            ax.bar([x + (j - 1.5) * width for x in xs], vals, width,
                   label=f"{LABEL[kind]} {q}", color=colors[kind],
                   alpha=1.0 if q == "p50" else 0.55, hatch="" if q == "p50" else "//")
        ax.set_xticks(list(xs), [label(r) for r in mr])
        ax.set_yscale("log")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"{mode}: latency p50 / p99 (ms)")
        ax.legend(fontsize=7)
    written.append(_save(plt, fig, out / "latency.png"))
    return written


def run(args: argparse.Namespace) -> int:
    from ..testing.servers import ServerStartError, find_zookeeper

    try:
        opts = _resolve(args)
    except BenchError as e:
        print(f"zabby bench compare: {e}", file=sys.stderr)
        return 2
    why = find_zookeeper()
    if why is not None:
        print(f"zabby bench compare: cannot start Apache ZooKeeper: {why}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("results") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="zabby-compare-", dir=args.workdir))
    info = machine()
    info["filesystem"] = filesystem_of(workdir)
    command = "zabby bench compare " + shlex.join(getattr(args, "argv", None) or [])
    _say(f"{info}; servers under {workdir}, results to {out}")
    from ..cli.progress import StepBar, progress_wanted

    bar = StepBar() if progress_wanted(getattr(args, "no_progress", False)) else None
    say = _say
    if bar is not None:
        def say(msg: str) -> None:
            bar.write(f"[{time.strftime('%H:%M:%S')}] {msg}")

    t0 = time.perf_counter()
    try:
        result = run_compare(opts, workdir, say, bar)
    except (BenchError, ServerStartError) as e:
        print(f"zabby bench compare: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zabby bench compare: interrupted", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
        if not args.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["total_s"] = round(time.perf_counter() - t0, 1)
    table = md_table(HEADER, table_rows(result["rows"]))
    text = (f"# zabby vs Apache ZooKeeper 3.8\n\n`{command.strip()}` "
            f"({time.strftime('%Y-%m-%d %H:%M:%S')}, {info['total_s']:g} s)\n\n"
            f"{describe(opts, info)}\n\n{table}\n")
    plots: list[Path] = []
    if not args.no_plots:
        plots = write_plots(result["rows"], out)
        if not plots:
            text += ("\n(no plots: matplotlib is not installed; "
                     "`pip install 'zabby[bench]'`)\n")
    if plots:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(
        {"command": command.strip(), "machine": info, "options": opts, **result},
        indent=1, sort_keys=True))
    print(describe(opts, info) + "\n")
    print(table)
    print(f"\nresults: {out / 'results.md'}"
          + (f", plots: {', '.join(p.name for p in plots)}" if plots else ""))
    return 1 if any(r[k]["lost_sessions"] for r in result["rows"] for k in KINDS) else 0
