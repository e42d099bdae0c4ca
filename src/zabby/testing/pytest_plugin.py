"""pytest fixtures: a real zabby server, an Apache ZooKeeper 3.8 server, kazoo clients.

Enable in a conftest.py with ``pytest_plugins = ["zabby.testing.pytest_plugin"]``.

Session-scoped servers (one process each per test session):
  ``zabby_server``   -- ZabbyServer
  ``zk_server``      -- ZooKeeperServer (Apache ZooKeeper 3.8, extendedTypesEnabled=true).
                        Skipped when java or zookeeper.jar is absent, except under CI=true,
                        where a missing ZooKeeper is an error.
Function-scoped clients (connected kazoo KazooClient; the tree is emptied, all but
/zookeeper, before each test, and the client is closed after it):
  ``zabby_client``, ``zk_client``
Factories for more clients on the same server (closed at the end of the test):
  ``zabby_client_factory``, ``zk_client_factory``
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .servers import ZabbyServer, ZooKeeperServer, find_zookeeper

KAZOO_TIMEOUT = 15.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_zookeeper() -> None:
    """Skip (locally) or fail (under CI=true) when Apache ZooKeeper is not installed."""
    why = find_zookeeper()
    if why is None:
        return
    msg = f"Apache ZooKeeper 3.8 is not available: {why}; install it with `apt-get install zookeeper`"
    if in_ci():
        pytest.fail(msg + " (CI=true: a missing ZooKeeper is an error, not a skip)")
    pytest.skip(msg)


def require_tool(path: str, package: str) -> None:
    """Skip (locally) or fail (under CI=true) when a tool a test drives is missing."""
    import shutil

    if os.path.exists(path) or shutil.which(path):
        return
    msg = f"{path} is missing (apt-get install {package})"
    if in_ci():
        pytest.fail(msg + " (CI=true: missing tools are an error)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def zabby_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZabbyServer]:
    srv = ZabbyServer(tmp_path_factory.mktemp("zabby"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    require_zookeeper()
    srv = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"), extendedTypesEnabled=True)
    try:
        yield srv
    finally:
        srv.stop()


def kazoo_client(hosts: str, **kwargs: Any):
    """A started KazooClient (imported lazily: kazoo is a test dependency)."""
    from kazoo.client import KazooClient

    kwargs.setdefault("timeout", 10.0)
    client = KazooClient(hosts=hosts, **kwargs)
    client.start(timeout=KAZOO_TIMEOUT)
    return client


def clean_tree(client) -> None:
    """Delete every node except /zookeeper (best effort for nodes ACLs protect)."""
    from kazoo.exceptions import NoNodeError

    for child in client.get_children("/"):
        if child == "zookeeper":
            continue
        try:
            client.delete("/" + child, recursive=True)
        except NoNodeError:
            pass


def _stop(client) -> None:
    try:
        client.stop()
    finally:
        client.close()


def _client_fixture(server) -> Iterator[Any]:
    client = kazoo_client(server.hosts)
    try:
        clean_tree(client)
        yield client
    finally:
        _stop(client)


def _factory_fixture(server) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(**kwargs: Any):
        c = kazoo_client(server.hosts, **kwargs)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            try:
                _stop(c)
            except Exception:  # noqa: BLE001 - teardown is best effort
                pass


@pytest.fixture
def zabby_client(zabby_server: ZabbyServer) -> Iterator[Any]:
    yield from _client_fixture(zabby_server)


@pytest.fixture
def zk_client(zk_server: ZooKeeperServer) -> Iterator[Any]:
    yield from _client_fixture(zk_server)


@pytest.fixture
def zabby_client_factory(zabby_server: ZabbyServer) -> Iterator[Callable[..., Any]]:
    yield from _factory_fixture(zabby_server)


@pytest.fixture
def zk_client_factory(zk_server: ZooKeeperServer) -> Iterator[Callable[..., Any]]:
    yield from _factory_fixture(zk_server)
