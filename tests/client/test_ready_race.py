"""A connection lost after it woke a waiting request but before that request ran.

The request must go out on the next connection. Written on the lost one, it stayed
in the pending queue with no reply: the call hung until its timeout and the next
reply failed with "reply xid 3, expected 2" (seen once in the ensemble fixture's
kill-the-leader test).
"""

from __future__ import annotations

import asyncio

from zabby.client import Client, core

from .conftest import arun


def test_request_woken_by_a_lost_connection_waits_for_the_next(zabby_server, monkeypatch):
    orig = core.Client._wake
    fired: list[int] = []

    def wake_then_lose(self, conn):
        orig(self, conn)
        if not fired:  # the loss is handled before the woken request gets to run
            fired.append(1)
            self._on_conn_lost(conn)
            conn.abort()

    async def body():
        async with Client(zabby_server.hosts, timeout=4.0) as zk:
            await zk.create("/ready-race", b"1")
            monkeypatch.setattr(core.Client, "_wake", wake_then_lose)
            zk._conn.abort()  # reconnect; the get waits for a connection
            data, _ = await asyncio.wait_for(zk.get("/ready-race"), 10)
            assert fired and data == b"1"
            assert await asyncio.wait_for(zk.exists("/ready-race"), 10) is not None
            await zk.delete("/ready-race")

    arun(body(), timeout=30)
