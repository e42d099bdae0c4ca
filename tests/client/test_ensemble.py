"""Reconnect to another member of a 3-member ensemble: same session, every watch kept.

The member the client is on is killed (SIGKILL, by pid); the client moves to the next
host, resumes its session there and sets its watches again (SetWatches2), so events
made after the move reach every kind of watch, and its ephemeral node lives on.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from zabby.client import Client, ConnectionState, EventType
from zabby.testing.pytest_plugin import started_ensemble

from .conftest import arun


@pytest.fixture(params=["zabby", "zookeeper"])
def ensemble(request, tmp_path):
    with started_ensemble(request.param, tmp_path, tickTime=500) as ens:
        yield ens


@pytest.mark.parametrize("how", ["kill", "pause"])
def test_failover_keeps_session_and_watches(ensemble, how):
    """kill: the member dies (SIGKILL, the connection closes); pause: it stops
    answering (SIGSTOP): the client notices by its read timeout."""
    leader = ensemble.leader()
    first, second = [i for i in ensemble.members if i != leader]
    order = [first, second, leader]
    hosts = ",".join(ensemble.members[i].hosts for i in order)

    async def body():
        # a short session: a silent server is left after 2/3 of it
        zk = Client(hosts, timeout=3.0 if how == "pause" else 10.0, randomize_hosts=False)
        await zk.start(timeout=20)
        other = Client(ensemble.members[second].hosts, timeout=10.0)
        await other.start(timeout=20)
        try:
            assert zk.current_host[1] == ensemble.members[first].port
            for p in ("/d", "/c", "/p", "/r"):
                await zk.create(p)
            await zk.create("/eph", b"mine", ephemeral=True)
            data_w, exist_w, child_w = zk.watcher(), zk.watcher(), zk.watcher()
            await zk.get("/d", watch=data_w)
            assert await zk.exists("/missing", watch=exist_w) is None
            await zk.get_children("/c", watch=child_w)
            pers = zk.add_watch("/p", mode="persistent")
            rec = zk.add_watch("/r", mode="persistent_recursive")
            await pers
            await rec
            sid = zk.session_id
            states = zk.states()
            nxt = asyncio.ensure_future(states.__anext__())
            await asyncio.sleep(0)

            if how == "kill":
                ensemble.kill(first)
            else:
                os.kill(ensemble.members[first].pid, signal.SIGSTOP)
            assert await asyncio.wait_for(nxt, 20) == ConnectionState.SUSPENDED
            assert await asyncio.wait_for(states.__anext__(), 30) == ConnectionState.RECONNECTED
            assert zk.session_id == sid
            assert zk.current_host[1] != ensemble.members[first].port

            await other.set("/d", b"x")
            await other.create("/missing")
            await other.create("/c/kid")
            await other.set("/p", b"y")
            await other.create("/r/a")
            await other.create("/r/a/b")
            assert (await data_w.next(10)).type == EventType.CHANGED
            assert (await exist_w.next(10)).type == EventType.CREATED
            assert (await child_w.next(10)).type == EventType.CHILD
            assert (await pers.next(10)).type == EventType.CHANGED
            assert [(await rec.next(10)).path for _ in range(2)] == ["/r/a", "/r/a/b"]
            assert (await other.get("/eph"))[0] == b"mine"
            assert (await other.exists("/eph")).owner_session_id == sid
        finally:
            await other.stop()
            await zk.stop()

    arun(body(), timeout=90)
