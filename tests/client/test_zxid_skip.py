"""A server behind the client's last zxid is skipped: the client never reads an older
state than it has seen. Two standalone servers: A (the client's, with writes) and B
(empty). A dies; B refuses the session (its zxid is behind) so the client waits; A
comes back from its data directory and the client resumes the same session there."""

from __future__ import annotations

import asyncio

import pytest

from zabby.client import Client, ConnectionState
from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import require_zookeeper

from .conftest import arun


@pytest.mark.parametrize("kind", ["zabby", "zookeeper"])
def test_server_behind_our_zxid_is_skipped(kind, tmp_path):
    if kind == "zookeeper":
        require_zookeeper()
    cls = ZooKeeperServer if kind == "zookeeper" else ZabbyServer
    a = cls(tmp_path / "a", tickTime=500)
    b = None
    try:
        b = cls(tmp_path / "b", tickTime=500)

        async def body():
            zk = Client(f"{a.hosts},{b.hosts}", timeout=10.0, randomize_hosts=False)
            await zk.start()
            try:
                assert zk.current_host[1] == a.port
                for i in range(10):
                    await zk.create(f"/n{i}")
                sid, seen = zk.session_id, zk.last_zxid
                assert seen > 0
                states = zk.states()
                nxt = asyncio.ensure_future(states.__anext__())
                await asyncio.sleep(0)
                await asyncio.to_thread(a.kill)
                assert await asyncio.wait_for(nxt, 10) == ConnectionState.SUSPENDED
                await asyncio.sleep(1.5)  # B is tried, and refuses us
                assert zk.state == ConnectionState.SUSPENDED and not zk.connected
                await asyncio.to_thread(a.start)
                assert await asyncio.wait_for(states.__anext__(), 20) == \
                    ConnectionState.RECONNECTED
                assert zk.session_id == sid and zk.current_host[1] == a.port
                assert await zk.exists("/n9") is not None
            finally:
                await zk.stop()

        arun(body())
    finally:
        a.stop()
        if b is not None:
            b.stop()
