"""A client that resumes its session on a member its createSession has not reached
yet keeps the session: the member asks the leader, as ZooKeeper's learner
revalidates a session it does not know. (Before, the member called it expired: a
client that moved right after creating its session, as after a failover, lost it,
and its ephemerals with it.) Scenario on the simulated ensemble: everything from the
leader to one follower is delayed by 0.3 s."""

from __future__ import annotations

import asyncio
import logging

from zabby.client import Client
from zabby.sim import Simulation
from zabby.sim.cluster import CLIENT_PORT, member_host
from zabby.sim.loop import Process


def test_a_member_behind_asks_the_leader_about_a_session_it_does_not_know():
    logging.disable(logging.WARNING)
    sim = Simulation(0, faults=())
    loop = sim.loop
    result: dict = {}

    async def scenario() -> None:
        for m in sim.members.values():
            sim._restart(m)
        await sim._wait_serving(30, "the start")
        leader = next(s for s, m in sim.members.items() if m.server.role == "leading")
        behind = next(s for s, m in sim.members.items()
                      if m.server.role == "following" and m.server.peer.is_voter)
        # the leader's proposals, commits and answers reach `behind` 0.3 s late (less
        # than syncLimit: it stays a serving follower)
        sim.net.delay[(member_host(leader), member_host(behind))] = 0.3
        a = Client(f"{member_host(leader)}:{CLIENT_PORT}", timeout=4.0)
        await a.start(timeout=10)
        sid, passwd = a.client_id
        await a.create("/eph-of-a", b"", ephemeral=True)
        # the client moves to `behind` at once (its server went away, say)
        b = Client(f"{member_host(behind)}:{CLIENT_PORT}", timeout=4.0, client_id=(sid, passwd))
        await b.start(timeout=10)
        result["same_session"] = b.session_id == sid
        await b.sync("/")  # (b is a new client object: it has not seen a's zxids)
        result["ephemeral_still_there"] = await b.exists("/eph-of-a") is not None

    proc = Process("test-client", "10.1.0.9")
    asyncio.set_event_loop(loop)
    try:
        task = loop.spawn(proc, scenario())
        loop.run_until_complete(asyncio.wait_for(task, 120))
    finally:
        sim._close()
        logging.disable(logging.NOTSET)
    assert result == {"same_session": True, "ephemeral_still_there": True}, result
