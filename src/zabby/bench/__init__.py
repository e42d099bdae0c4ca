"""``zabby bench``: a ZooKeeper-protocol load generator (asyncio + uvloop, pipelined).

    from zabby.bench import BenchConfig, run_bench
    result = run_bench(BenchConfig(hosts="127.0.0.1:2181", workload="write", sessions=32))
    result["ops_per_sec"], result["latency_ms"]["p99"]
"""

from .client import BenchError, Session, connect, parse_hosts
from .hist import Histogram
from .runner import run_bench
from .workloads import WORKLOADS, BenchConfig

__all__ = ["WORKLOADS", "BenchConfig", "BenchError", "Histogram", "Session", "connect",
           "parse_hosts", "run_bench"]
