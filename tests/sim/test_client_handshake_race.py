"""A connection that closes right after its connect response, before the client
task that waits for that response runs again (found by the whole-server
simulation, seed 28: a client kept a request in flight for good).

The client took the dead connection for its current one: the connection's loss had
already been reported while it was not current, so nothing failed the requests
written to it and no pinger watched it. Driven on the simulated network with zero
latency, so the response and the close arrive in one delivery, every time.
"""

from __future__ import annotations

import asyncio

from zabby.client import Client
from zabby.sim.loop import Process, SimLoop
from zabby.sim.net import Network
from zabby.wire import Err
from zabby.wire.protocol import (
    FrameDecoder,
    decode_connect_request,
    encode_connect_response,
    encode_reply,
)
from zabby.wire.records import ConnectResponse

SESSION = 0x1234


class _FakeServer(asyncio.Protocol):
    """Answers the connect; the second connection is then closed at once and the
    port closed for two seconds. Every request gets NONODE (enough for ``exists``)."""

    accepted = 0
    listener = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.decoder = FrameDecoder()
        self.connected = False
        type(self).accepted += 1
        self.nth = type(self).accepted

    def data_received(self, data: bytes) -> None:
        for f in self.decoder.feed(data):
            if not self.connected:
                decode_connect_request(f)
                self.connected = True
                self.transport.write(encode_connect_response(
                    ConnectResponse(0, 4000, SESSION, b"\x01" * 16)))
                if self.nth == 2:
                    self.transport.close()  # FIN right behind the response
                    _FakeServer.listener.close()
                    loop = asyncio.get_running_loop()
                    loop.call_later(2.0, _listen, loop.network)
                continue
            xid = int.from_bytes(f[:4], "big", signed=True)
            self.transport.write(bytes(encode_reply(xid, 1, Err.NONODE)))


def _listen(net: Network) -> None:
    _FakeServer.listener = net.listen(_FakeServer, "10.0.0.1", 2181)


def test_connection_lost_behind_its_connect_response_is_not_adopted():
    loop = SimLoop()
    net = Network(loop, seed=1)
    net.base_latency = (0.0, 0.0)  # the response and the FIN arrive together
    net.spike_chance = 0.0
    server, client_proc = Process("server", "10.0.0.1"), Process("client", "10.1.0.1")
    loop.run_in(server, _listen, net)
    result: dict = {}

    async def body() -> None:
        zk = Client("10.0.0.1:2181", timeout=4.0)
        await zk.start(timeout=10)
        zk._conn.abort()  # the client reconnects: that connection dies under the handshake
        await asyncio.sleep(0.5)  # the port is closed: no connection for a while
        # a request now waits for a live connection (it was written to the dead one,
        # which nothing would ever fail)
        result["exists"] = await asyncio.wait_for(zk.exists("/x"), 10)
        result["accepted"] = _FakeServer.accepted
        await asyncio.wait_for(zk.stop(), 10)

    asyncio.set_event_loop(loop)
    try:
        task = loop.spawn(client_proc, body())
        loop.run_until_complete(asyncio.wait_for(task, 60))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert result == {"exists": None, "accepted": 3}
