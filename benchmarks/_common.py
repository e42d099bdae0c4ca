"""Shared parts of the benchmark scripts: servers tuned for measuring, machine facts."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from zabby.bench import Session, connect, parse_hosts
from zabby.bench.compare import (  # noqa: F401 - re-exported for the scripts
    filesystem_of,
    machine,
    md_table,
    proc_cpu_seconds,
    ratio,
)
from zabby.bench.runner import arun
from zabby.testing.servers import ZabbyServer, ZooKeeperServer
from zabby.wire import Op, PathWatchRequest

# The launcher's JVM flags are tuned for fast start in tests (C1 only, 256 MB heap);
# a benchmark wants ZooKeeper as it would run in production: full JIT, room for the data.
BENCH_JVM_FLAGS = ("-XX:+UseG1GC", "-Xms1g", "-Xmx8g", "-XX:-UsePerfData")


class BenchZooKeeper(ZooKeeperServer):
    start_timeout = 900.0

    def command(self) -> list[str]:
        cmd = super().command()
        java, rest = cmd[0], cmd[1:]
        rest = [a for a in rest if not a.startswith(("-XX:", "-Xms", "-Xmx", "-Xss", "-Xshare"))]
        return [java, *BENCH_JVM_FLAGS, *rest]


class BenchZabby(ZabbyServer):
    start_timeout = 900.0


def make_server(kind: str, directory: Path, **cfg):
    cls = BenchZabby if kind == "zabby" else BenchZooKeeper
    return cls(directory, **cfg)


def common_cfg(**over) -> dict:
    """Equivalent settings for both servers (4lw whitelist * comes from the launcher)."""
    cfg = {"tickTime": 2000, "forceSync": "yes", "maxClientCnxns": 0, "snapCount": 100000}
    cfg.update(over)
    return cfg


async def _read_once(hosts: str, path: str) -> bool:
    host, port = parse_hosts(hosts)[0]
    try:
        tr, sess = await connect(host, port, Session, 2.0)
    except Exception:
        return False
    try:
        err, _ = await asyncio.wait_for(sess.request(Op.GET_DATA, PathWatchRequest(path, False)), 5)
        return err == 0
    except Exception:
        return False
    finally:
        tr.close()


def timed_start(srv, probe_path: str = "/zookeeper") -> float:
    """Seconds from process start to the first successful getData of probe_path."""
    t0 = time.perf_counter()
    srv.start()
    deadline = t0 + srv.start_timeout
    while not arun(_read_once(srv.hosts, probe_path)):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{srv.kind} never answered a read of {probe_path}")
        time.sleep(0.02)
    return time.perf_counter() - t0


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_log_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


__all__ = [
    "BenchZabby", "BenchZooKeeper", "common_cfg", "filesystem_of", "log_size", "machine",
    "make_server", "md_table", "proc_cpu_seconds", "ratio", "re", "read_log_from",
    "timed_start",
]
