"""zabby.testing's asyncio Client fixtures (``zabby_async_client``, ``zk_async_client``)
used as a user's test suite uses them: a project of its own that loads the plugin and
writes ``@pytest.mark.asyncio`` tests, run by pytest in a subprocess (pytester)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytest.importorskip("pytest_asyncio")

SRC = str(Path(__file__).resolve().parents[2] / "src")

CONFTEST = 'pytest_plugins = ["zabby.testing.pytest_plugin"]\n'

USER_TESTS = '''
import pytest

from zabby.client import Client, EventType


@pytest.mark.asyncio
async def test_connected_client(zabby_async_client):
    zk = zabby_async_client
    assert isinstance(zk, Client) and zk.connected
    assert await zk.get_children("/") == ["zookeeper"]
    await zk.create("/users/a", b"x", makepath=True)
    w = zk.watcher()
    data, stat = await zk.get("/users/a", watch=w)
    assert data == b"x" and stat.version == 0
    await zk.set("/users/a", b"y")
    event = await w.next(timeout=5)
    assert event.type == EventType.CHANGED and event.path == "/users/a"


@pytest.mark.asyncio
async def test_tree_emptied_between_tests(zabby_async_client):
    assert await zabby_async_client.exists("/users") is None
    await zabby_async_client.create("/users", b"")


@pytest.mark.asyncio
async def test_zookeeper_too(zk_async_client):
    await zk_async_client.create("/zk-users", b"z")
    assert (await zk_async_client.get("/zk-users"))[0] == b"z"
'''


def test_async_client_fixtures_in_a_users_suite(pytester, monkeypatch):
    from zabby.testing.servers import find_zookeeper

    monkeypatch.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_users=USER_TESTS)
    # strict mode and no settings at all: what a user gets from a bare pytest-asyncio
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error",
                                           timeout=180)
    zookeeper = find_zookeeper() is None
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == (3 if zookeeper else 2), result.stdout.str()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0
    assert "warnings" not in outcomes, result.stdout.str()
