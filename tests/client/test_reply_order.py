"""A reply that does not match the oldest outstanding request (a server breaking
ZooKeeper's FIFO order) drops the connection: every request outstanding on it fails
with ConnectionLoss, the one whose reply was expected included. That one used to be
taken off the pending queue before the check and then forgotten: its call hung until
the client stopped (a zabby follower answered a write before the sync sent ahead of
it; the lock recipe's orphan-node cleanup waited on that sync forever and its node
blocked every contender)."""

from __future__ import annotations

import asyncio

from zabby.client import Client, ConnectionLoss
from zabby.wire.protocol import encode_reply

from .conftest import arun, fake_server


async def _swapping_server():
    """Accepts sessions; holds each request until the next one comes, then answers
    the later one first."""
    held: list[int] = []

    def answer(xid: int, writer) -> None:
        if held:
            for x in (xid, held.pop()):
                writer.write(bytes(encode_reply(x, 7, 0)))
        else:
            held.append(xid)

    return await fake_server(answer)


def test_out_of_order_reply_fails_every_outstanding_request():
    async def body():
        srv = await _swapping_server()
        port = srv.sockets[0].getsockname()[1]
        try:
            zk = Client(f"127.0.0.1:{port}", timeout=5.0)
            await zk.start()
            try:
                first = asyncio.ensure_future(zk.sync("/a"))
                await asyncio.sleep(0)  # written first
                second = asyncio.ensure_future(zk.sync("/b"))
                done = await asyncio.wait_for(
                    asyncio.gather(first, second, return_exceptions=True), 10)
                assert [type(r) for r in done] == [ConnectionLoss, ConnectionLoss], done
            finally:
                await zk.stop()
        finally:
            srv.close()
            await srv.wait_closed()
    arun(body(), timeout=30)
