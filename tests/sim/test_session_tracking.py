"""A member that leads again must expire a session it tried to expire before.

As leader it marked the session closing and proposed its closeSession, then lost the
lead before that committed. Leading again, it kept the mark, and a session marked
closing is never touched or expired again: the session, and its ephemerals, lived
for good (found by the whole-server simulation, seed 119). The member is built as
the simulation builds one (the real EnsembleServer on a simulated disk)."""

from __future__ import annotations

import logging

from zabby.sim import Simulation
from zabby.sim.loop import Process

SID = 0x1234


def test_a_session_marked_closing_by_an_earlier_lead_expires_under_the_next(caplog):
    caplog.set_level(logging.WARNING)
    sim = Simulation(0)
    m = sim.members[1]
    proc = Process("m1", m.host)
    srv = proc.context.run(m._build)
    try:
        now = srv.monotonic_ms()
        srv.tree.sessions[SID] = 3000  # an open session (its createSession applied)
        s = srv.sessions.add(SID, 3000, now)
        # leading once: the deadline passed, the session is marked closing and its
        # closeSession proposed ... and then the lead was lost before it committed
        assert [x.id for x in srv.sessions.expired(now + 10_000)] == [SID]
        assert s.closing
        srv._role_change("leading", 1, True)  # leading (and serving) again
        assert not s.closing
        assert [x.id for x in srv.sessions.expired(now + 10_000)] == [SID]
    finally:
        srv.committer.close()
        sim._close()
