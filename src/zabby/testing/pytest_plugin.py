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

zabby's own client (``zabby.client``), same servers:
  ``zabby_sync_client``, ``zk_sync_client``  -- a connected ``SyncClient`` (tree emptied
                        before the test, closed after it)
  ``zabby_sync_client_factory``, ``zk_sync_client_factory`` -- ``make(**kwargs)`` more
                        connected SyncClients (``chroot="/app"`` appends a chroot)
  ``zabby_async_client_factory``, ``zk_async_client_factory`` -- ``make(**kwargs)`` an
                        asyncio ``Client`` for the server, not yet started: in an async
                        test, ``async with make() as zk: ...``
  ``zabby_async_client``, ``zk_async_client`` -- a connected asyncio ``Client`` (only
                        when pytest-asyncio is installed: an async fixture needs it; the
                        tree emptied first). In pytest-asyncio's strict mode mark the
                        test: ``@pytest.mark.asyncio async def test_x(zabby_async_client)``

Ensembles, for failover tests (function-scoped: see ``zabby_ensemble``):
  ``zabby_ensemble``    -- a started 3-member ``ZabbyEnsemble`` on 127.0.0.1 (free ports,
                        tickTime 200 ms so elections take well under a second); members
                        can be killed, paused, resumed, restarted; every member is
                        stopped after the test, paused ones resumed first
  ``zk_ensemble``       -- the same with Apache ZooKeeper 3.8 (``ZooKeeperEnsemble``),
                        skipped like ``zk_server``
  ``zabby_ensemble_factory``, ``zk_ensemble_factory`` -- ``make(size=3, observers=0,
                        **cfg)`` more ensembles (any zoo.cfg key in ``cfg``), all stopped
                        after the test
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .servers import (
    CFG_DEFAULTS,
    ServerStartError,
    ZabbyEnsemble,
    ZabbyServer,
    ZooKeeperEnsemble,
    ZooKeeperServer,
    find_zookeeper,
)

KAZOO_TIMEOUT = 15.0

# preAllocSize (KB) of every server the harness starts under pytest, zabby and
# ZooKeeper alike, unless a test sets its own: 1 MB instead of the 64 MB production
# default, which a suite of hundreds of short-lived servers turns into tens of GB
TEST_PREALLOC_KB = 1024


def pytest_configure(config: pytest.Config) -> None:
    CFG_DEFAULTS.setdefault("preAllocSize", TEST_PREALLOC_KB)


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


def _made(create: Callable[..., Any], close: Callable[[Any], None]) -> Iterator[Callable[..., Any]]:
    """A factory fixture's body: yields ``make`` (``create`` and remember), then closes
    everything made (best effort: one failing close does not keep the others open)."""
    made: list[Any] = []

    def make(*args: Any, **kwargs: Any):
        c = create(*args, **kwargs)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            try:
                close(c)
            except Exception:  # noqa: BLE001 - teardown is best effort
                pass


def _factory_fixture(server) -> Iterator[Callable[..., Any]]:
    yield from _made(lambda **kw: kazoo_client(server.hosts, **kw), _stop)


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


# ------------------------------------------------------------ zabby.client fixtures
def _hosts(server, chroot: str = "") -> str:
    return server.hosts + chroot


def sync_client(hosts: str, **kwargs: Any):
    """A started zabby.client.SyncClient."""
    from zabby.client import SyncClient

    kwargs.setdefault("timeout", 10.0)
    client = SyncClient(hosts, **kwargs)
    try:
        client.start(timeout=KAZOO_TIMEOUT)
    except BaseException:
        client.close()
        raise
    return client


def clean_tree_sync(client) -> None:
    """clean_tree for a zabby SyncClient."""
    from zabby.client import NoAuthError, NoNodeError

    for child in client.get_children("/"):
        if child == "zookeeper":
            continue
        try:
            client.delete("/" + child, recursive=True)
        except (NoNodeError, NoAuthError):
            pass


def _sync_client_fixture(server) -> Iterator[Any]:
    client = sync_client(server.hosts)
    try:
        clean_tree_sync(client)
        yield client
    finally:
        client.close()


def _sync_factory_fixture(server) -> Iterator[Callable[..., Any]]:
    def create(chroot: str = "", **kwargs: Any):
        return sync_client(_hosts(server, chroot), **kwargs)

    yield from _made(create, lambda c: c.close())


def _async_factory(server) -> Callable[..., Any]:
    def make(chroot: str = "", **kwargs: Any):
        from zabby.client import Client

        kwargs.setdefault("timeout", 10.0)
        return Client(_hosts(server, chroot), **kwargs)

    return make


@pytest.fixture
def zabby_sync_client(zabby_server: ZabbyServer) -> Iterator[Any]:
    yield from _sync_client_fixture(zabby_server)


@pytest.fixture
def zk_sync_client(zk_server: ZooKeeperServer) -> Iterator[Any]:
    yield from _sync_client_fixture(zk_server)


@pytest.fixture
def zabby_sync_client_factory(zabby_server: ZabbyServer) -> Iterator[Callable[..., Any]]:
    yield from _sync_factory_fixture(zabby_server)


@pytest.fixture
def zk_sync_client_factory(zk_server: ZooKeeperServer) -> Iterator[Callable[..., Any]]:
    yield from _sync_factory_fixture(zk_server)


@pytest.fixture
def zabby_async_client_factory(zabby_server: ZabbyServer) -> Callable[..., Any]:
    return _async_factory(zabby_server)


@pytest.fixture
def zk_async_client_factory(zk_server: ZooKeeperServer) -> Callable[..., Any]:
    return _async_factory(zk_server)


# ------------------------------------------------------------------ ensembles
# A small tick: followers notice a paused leader after syncLimit (5) ticks, elections
# take a fraction of a tick, and session timeouts are capped at 20 ticks (4 s).
ENSEMBLE_DEFAULTS: dict[str, Any] = {"tickTime": 200}


def _ensemble_factory(cls, tmp_path_factory: pytest.TempPathFactory,
                      name: str) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(size: int = 3, observers: int = 0, **cfg: Any):
        for k, v in ENSEMBLE_DEFAULTS.items():
            cfg.setdefault(k, v)
        # the constructor stops what it started when the ensemble does not come up
        ens = cls(tmp_path_factory.mktemp(name), size, observers=observers, **cfg)
        made.append(ens)
        return ens

    try:
        yield make
    finally:
        errors = []
        for ens in reversed(made):
            try:
                ens.stop()  # resumes paused members, then SIGTERM / SIGKILL
            except Exception as e:  # noqa: BLE001 - stop the others too
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def zabby_ensemble_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``make(size=3, observers=0, **cfg)``: a started ZabbyEnsemble; all stopped after
    the test."""
    yield from _ensemble_factory(ZabbyEnsemble, tmp_path_factory, "zabby-ensemble")


@pytest.fixture
def zk_ensemble_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``make(size=3, observers=0, **cfg)``: a started ZooKeeperEnsemble (skipped, or
    an error under CI=true, when ZooKeeper is not installed)."""
    require_zookeeper()
    yield from _ensemble_factory(ZooKeeperEnsemble, tmp_path_factory, "zk-ensemble")


@contextlib.contextmanager
def started_ensemble(kind: str, tmpdir, size: int = 3, *,
                     prepare: Callable[[Any], None] | None = None,
                     **cfg: Any) -> Iterator[Any]:
    """A started 3-member ensemble of ``kind`` ("zabby" or "zookeeper": skipped, or an
    error under CI=true, when ZooKeeper is missing) for a test's own fixture; a start
    that fails fails the test with the members' logs; every member is stopped on the
    way out (paused ones resumed first). ``prepare(ens)`` runs before the start (to
    give one member its own settings)."""
    if kind == "zookeeper":
        require_zookeeper()
        cls = ZooKeeperEnsemble
    elif kind == "zabby":
        cls = ZabbyEnsemble
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    ens = cls(tmpdir, size, start=False, **cfg)
    try:
        if prepare is not None:
            prepare(ens)
        try:
            ens.start_or_stop()
        except ServerStartError as e:
            pytest.fail(f"the {kind} ensemble did not start: {e}")
        yield ens
    finally:
        ens.stop()


# Function-scoped on purpose: a test that kills, pauses or restarts members (what the
# fixture is for) would otherwise hand the next test a dead or paused member, another
# leader and its data. A zabby ensemble starts in about a second. For a shared one,
# make a module-scoped fixture around ZabbyEnsemble(tmp_path_factory.mktemp(...)).
@pytest.fixture
def zabby_ensemble(zabby_ensemble_factory: Callable[..., Any]) -> ZabbyEnsemble:
    """A started 3-member ZabbyEnsemble (tickTime 200 ms), stopped after the test."""
    return zabby_ensemble_factory()


@pytest.fixture
def zk_ensemble(zk_ensemble_factory: Callable[..., Any]) -> ZooKeeperEnsemble:
    """A started 3-member Apache ZooKeeper 3.8 ensemble, stopped after the test."""
    return zk_ensemble_factory()


try:  # an async fixture needs pytest-asyncio; without it these two are not defined
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on what the user installed
    pytest_asyncio = None

if pytest_asyncio is not None:  # pragma: no cover - pytest-asyncio is not ours
    async def _async_client(server):
        from zabby.client import Client

        client = Client(server.hosts, timeout=10.0)
        await client.start(timeout=KAZOO_TIMEOUT)
        try:
            for child in await client.get_children("/"):
                if child != "zookeeper":
                    await client.delete("/" + child, recursive=True)
            yield client
        finally:
            await client.stop()

    @pytest_asyncio.fixture
    async def zabby_async_client(zabby_server: ZabbyServer):
        async for c in _async_client(zabby_server):
            yield c

    @pytest_asyncio.fixture
    async def zk_async_client(zk_server: ZooKeeperServer):
        async for c in _async_client(zk_server):
            yield c
