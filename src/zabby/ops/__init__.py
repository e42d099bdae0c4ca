"""What operators see: the four-letter words (``ops.fourletter``), and the services
started beside a running server (the AdminServer, Prometheus metrics, the web console).

Everything here reads the server's one monitoring model, ``server.metrics``
(``zabby.server.metrics.ServerMetrics``), and the server's state; ``server`` never
imports this package: whoever builds a server hands it
``ops.fourletter.handle_four_letter_word`` and ``services_for(config)`` (``zabby serve``
does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..server.config import PROMETHEUS_PROVIDER

if TYPE_CHECKING:
    from ..server.app import OpsService
    from ..server.config import ServerConfig

__all__ = ["admin_installers", "services_for"]


def admin_installers() -> list:
    """What the AdminServer serves: ZooKeeper's commands, then each operator view that
    hangs its routes on it (the web console adds its installer here)."""
    from .admin import install_commands
    from .console import install as install_console

    return [install_commands, install_console]


def services_for(config: ServerConfig) -> list[OpsService]:
    """The operator services `config` asks for, to start beside the server (each runs
    in its own thread: see ``zabby.ops.bridge`` for reading the server from there)."""
    services: list[OpsService] = []
    if config.admin_enable_server:
        from .admin import admin_service

        services.append(admin_service(config, admin_installers()))
    # Prometheus /metrics (metricsProvider.className=...PrometheusMetricsProvider)
    if config.metrics_provider == PROMETHEUS_PROVIDER:
        from .prometheus import PrometheusService

        services.append(PrometheusService(config))
    return services
