"""Prometheus ``/metrics``: ZooKeeper 3.8's PrometheusMetricsProvider for zabby.

Configured as ZooKeeper's is::

    metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
    metricsProvider.httpHost=0.0.0.0        # default
    metricsProvider.httpPort=7000           # default
    metricsProvider.exportJvmInfo=true      # default: process metrics (see below)

The text is written by ``prometheus_client`` (pinned in pyproject) from its own HTTP
server thread (``start_http_server``: one thread per scrape), never by the client
loop.  Each scrape calls :class:`ZabbyCollector`, which takes one consistent
:class:`zabby.ops.monitor.Figures` through the loop bridge -- the same figures mntr
and the AdminServer's ``monitor`` print -- and turns them into metric families.

Names are ZooKeeper's, unprefixed, with ``help`` equal to the name as ZooKeeper sets
it: gauges (``znode_count``, ``num_alive_connections``, ``quorum_size`` ...), counters
(``commit_count`` ...), summaries (``readlatency`` ...: ``quantile`` 0.5 / 0.9 / 0.99
for ZooKeeper's ADVANCED summaries, 0.5 for its BASIC ones, plus ``_count`` and
``_sum``), and requests per opcode as ``op_count{key="getData"}`` (ZooKeeper's label
name for its counter sets; the op names are its ``Request.op2String``).

One difference a dashboard will see: ZooKeeper 3.8 bundles simpleclient 0.9, which
writes a counter's sample without a suffix (``commit_count 3.0``); prometheus_client
writes today's format, ``commit_count_total 3.0`` (``# TYPE commit_count_total
counter``).  A query on ``commit_count`` needs ``commit_count_total`` here.

``exportJvmInfo``: zabby has no JVM; ``true`` exports the Python process instead --
prometheus_client's ProcessCollector (``process_cpu_seconds_total``,
``process_resident_memory_bytes``, ``process_open_fds`` ...), PlatformCollector
(``python_info``) and GCCollector (``python_gc_*``), the counterparts of the JVM's
hotspot exports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .bridge import LoopBridge
from .monitor import (
    PROMETHEUS_BASIC_QUANTILES,
    PROMETHEUS_QUANTILES,
    Figures,
    fd_counts,
    figures,
)

if TYPE_CHECKING:
    from ..server.config import ServerConfig
    from ..server.core import ZabbyServer

__all__ = ["PrometheusService", "ZabbyCollector", "families", "make_registry"]

log = logging.getLogger("zabby.ops.prometheus")


def families(f: Figures) -> Iterator[Metric]:
    """The metric families of one Figures (ZooKeeper's names and types)."""
    for name, value in f.gauges:
        yield GaugeMetricFamily(name, name, value=value)
    for name, value in f.counters:
        yield CounterMetricFamily(name, name, value=value)
    for s in f.summaries:
        m = Metric(s.name, s.name, "summary")
        for q in PROMETHEUS_QUANTILES if s.percentiles else PROMETHEUS_BASIC_QUANTILES:
            m.add_sample(s.name, {"quantile": str(q)}, s.quantiles[q])
        m.add_sample(f"{s.name}_count", {}, s.count)
        m.add_sample(f"{s.name}_sum", {}, s.total)
        yield m
    ops = CounterMetricFamily("op_count", "op_count", labels=["key"])
    for op, n in f.op_counts.items():
        ops.add_metric([op], n)
    yield ops


class ZabbyCollector(Collector):
    """Reads the server once per scrape, on its loop, through `bridge`."""

    def __init__(self, server: ZabbyServer, bridge: LoopBridge) -> None:
        self.server = server
        self.bridge = bridge

    def describe(self) -> list[Metric]:
        return []  # names vary with the role: never collected at registration

    def collect(self) -> Iterator[Metric]:
        # ServerBusy propagates: the scrape fails (HTTP 500) rather than show stale data
        # the descriptor count needs no server state: taken here, off the loop
        yield from families(self.bridge.call(figures, self.server, fd_counts()))


def make_registry(server: ZabbyServer, bridge: LoopBridge, *,
                  process_info: bool) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ZabbyCollector(server, bridge))
    if process_info:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


class PrometheusService:
    """An OpsService (``server.app``): ``start(server)`` on the server's loop serves
    /metrics and returns the function that stops it.  Raises OSError if the port
    cannot be bound (``zabby serve`` then refuses to start, as ZooKeeper does)."""

    def __init__(self, config: ServerConfig) -> None:
        self.host = config.metrics_http_host
        self.port = config.metrics_http_port
        self.process_info = config.metrics_export_jvm_info

    def __call__(self, server: ZabbyServer) -> Callable[[], None]:
        bridge = LoopBridge(asyncio.get_running_loop())
        registry = make_registry(server, bridge, process_info=self.process_info)
        httpd, thread = start_http_server(self.port, addr=self.host, registry=registry)
        thread.name = "zabby-prometheus"
        log.info("serving /metrics on %s:%d (process info %s)", self.host,
                 httpd.server_port, "on" if self.process_info else "off")

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5.0)

        return stop
