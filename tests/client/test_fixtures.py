"""The zabby.testing fixtures that hand out zabby.client clients."""

from __future__ import annotations

from zabby.client import Client, SyncClient

from .conftest import arun


def test_sync_client_fixture(zabby_sync_client, zabby_sync_client_factory):
    assert isinstance(zabby_sync_client, SyncClient) and zabby_sync_client.connected
    assert zabby_sync_client.get_children("/") == ["zookeeper"]  # the tree was emptied
    zabby_sync_client.create("/fixture", b"1")
    app = zabby_sync_client_factory(chroot="/fixture")
    assert app.get("/")[0] == b"1"


def test_async_client_factory(zabby_async_client_factory):
    async def body():
        zk = zabby_async_client_factory()
        assert isinstance(zk, Client)
        async with zk:
            assert zk.connected
            assert await zk.exists("/zookeeper") is not None
    arun(body())


def test_zookeeper_sync_client_fixture(zk_sync_client):
    zk_sync_client.create("/fixture-zk", b"x")
    assert zk_sync_client.get("/fixture-zk")[0] == b"x"
