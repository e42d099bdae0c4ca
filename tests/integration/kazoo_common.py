"""What the kazoo integration modules share: the target server, client factories.

Set ZABBY_IT_TARGET=zookeeper to run them against Apache ZooKeeper 3.8 instead.
"""

from __future__ import annotations

import os

import pytest
from kazoo.client import KazooClient

from zabby.testing.servers import ZabbyServer, ZooKeeperServer, find_zookeeper

TARGET = os.environ.get("ZABBY_IT_TARGET", "zabby")
TIMEOUT = 10.0


def target_server(path, **cfg):
    """A started zabby (or, with ZABBY_IT_TARGET=zookeeper, Apache ZooKeeper) server."""
    if TARGET == "zookeeper":
        why = find_zookeeper()
        if why:
            pytest.skip(why)
        return ZooKeeperServer(path, **cfg)
    return ZabbyServer(path, **cfg)


def close_quietly(c: KazooClient) -> None:
    try:
        c.stop()
        c.close()
    except Exception:  # noqa: BLE001 - teardown is best effort
        pass


def client_factory(hosts: str, **defaults):
    """Generator for a pytest fixture: yields make(**kw) -> a started KazooClient on
    `hosts` (kw override `defaults`; hosts=... and start=False are honoured), then
    closes every client it made."""
    made: list[KazooClient] = []

    def make(start=True, **kw):
        kw = {**defaults, **kw}
        c = KazooClient(hosts=kw.pop("hosts", None) or hosts, **kw)
        made.append(c)
        if start:
            c.start(timeout=TIMEOUT)
        return c

    yield make
    for c in made:
        close_quietly(c)


def empty_tree(c: KazooClient) -> KazooClient:
    """Delete everything but /zookeeper (a test starts from an empty tree)."""
    for child in c.get_children("/"):
        if child != "zookeeper":
            c.delete("/" + child, recursive=True)
    return c
