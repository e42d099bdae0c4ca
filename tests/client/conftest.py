"""Servers for the client tests: each test runs against zabby and Apache ZooKeeper 3.8.

One standalone server of each kind for the whole directory (session scope); tests
work under a base path of their own, so they need no cleaning between them.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import require_zookeeper

CFG = {
    "tickTime": 500,  # sessions of 1 s .. 10 s: expiry tests stay short
    "extendedTypesEnabled": True,  # TTL nodes
    "4lw.commands.whitelist": "*",
}


@pytest.fixture(scope="session")
def client_zabby(tmp_path_factory):
    srv = ZabbyServer(tmp_path_factory.mktemp("client-zabby"), **CFG)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def client_zookeeper(tmp_path_factory):
    require_zookeeper()
    srv = ZooKeeperServer(tmp_path_factory.mktemp("client-zookeeper"), **CFG)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["zabby", "zookeeper"])
def server(request):
    """The server under test: zabby, then Apache ZooKeeper 3.8."""
    return request.getfixturevalue(f"client_{request.param}")


@pytest.fixture
def base(request) -> str:
    """A path of this test's own (made unique by the test's name and parameters)."""
    return "/" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)


def arun(coro, timeout: float = 60.0):
    """Run a coroutine to completion on a fresh loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


XID_PING = -2


async def fake_server(answer):
    """A server on 127.0.0.1 that accepts every session (id 0x1234) and hands each
    other frame to ``answer(xid, writer)``; pings are answered. Returns the
    asyncio server (its port: ``srv.sockets[0].getsockname()[1]``)."""
    from zabby.wire import FrameDecoder
    from zabby.wire.protocol import (
        decode_connect,
        decode_request,
        encode_connect_response,
        encode_reply,
    )
    from zabby.wire.records import ConnectResponse

    async def handle(reader, writer):
        dec = FrameDecoder()
        first = True
        try:
            while data := await reader.read(65536):
                for f in dec.feed(data):
                    if first:
                        req, _ = decode_connect(f)
                        writer.write(encode_connect_response(ConnectResponse(
                            0, req.timeOut, 0x1234, b"\0" * 16)))
                        first = False
                        continue
                    xid, _op, _body = decode_request(f)
                    if xid == XID_PING:
                        writer.write(bytes(encode_reply(xid, 7, 0)))
                    else:
                        answer(xid, writer)
        finally:
            writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0)
