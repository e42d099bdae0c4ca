"""A member restarted with its clock an hour ahead (issue 15, item 3e).

Session expiry runs on each server's monotonic session clock (core.monotonic_ms),
and members relay only "touched" (no timestamps) to the leader, so no member's
idea of the time of day reaches another's session deadlines. The test makes the
member with the +1 h clock (ZABBY_TEST_CLOCK_OFFSET_MS: its wall and monotonic
clocks both read an hour ahead) the leader -- the one member that expires sessions
-- and checks:
  - the clock offset is in force: a write it commits carries an mtime an hour ahead;
  - sessions on every member, pinging, live through two session timeouts under it
    and through the elections around it (their ephemerals are still theirs);
  - expiry still works there: a session whose client went silent does expire.
"""

from __future__ import annotations

import time

import pytest

from zabby.testing.diskfaults import SlowDiskServer
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.testing.servers import ZabbyEnsemble
from zabby.wire import CreateMode, Err, Op
from zabby.wire.records import CreateRequest, PathWatchRequest

from .faults import TICK_MS, loopback_endpoints, wait_for
from .harsh import Bystander

pytestmark = pytest.mark.timeout(150)

HOUR_MS = 3_600_000
SESSION_MS = 2000


def _mntr(m, key: str) -> int:
    for line in m.four_letter_word("mntr").splitlines():
        if line.startswith(key + "\t") or line.startswith(key + " "):
            return int(line.split()[-1])
    raise AssertionError(f"mntr has no {key}")


def test_member_with_clock_an_hour_ahead_expires_no_live_session(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 3, tickTime=TICK_MS, member_cls=SlowDiskServer)
    bystanders: list[Bystander] = []
    try:
        eps = loopback_endpoints(ens)
        ahead = 3  # the highest id: it wins an election among members with equal zxids
        bystanders += [Bystander(f"m{i}", eps, i - 1, timeout_ms=SESSION_MS) for i in (1, 2)]
        assert all(b.negotiated == SESSION_MS for b in bystanders)

        m = ens.members[ahead]
        m.stop()
        m.clock_offset_ms = HOUR_MS
        m.start()
        ens.wait_serving()
        bystanders.append(Bystander("m3-ahead", eps, ahead - 1, timeout_ms=SESSION_MS))

        # make it the leader: restart whoever leads until it is
        for _ in range(4):
            leader = ens.leader(timeout=30)
            if leader == ahead:
                break
            ens.restart(leader)
            ens.wait_serving(timeout=30)
        assert ens.leader(timeout=30) == ahead, "the member with the clock ahead never led"

        with RawClient(m.host, m.port, timeout_ms=SESSION_MS) as c:
            r = c.request(Op.CREATE2, CreateRequest("/when", b"", OPEN_ACL_UNSAFE, 0))
            assert r.err == Err.OK, r
            skew = r.body.stat.mtime - time.time() * 1000
        assert skew > HOUR_MS * 0.9, f"the clock offset is not in force (mtime skew {skew} ms)"

        # a client that goes silent: its session must still expire under this leader
        silent = RawClient(*eps[0], timeout_ms=SESSION_MS)
        silent.connect()
        r = silent.request(Op.CREATE2, CreateRequest("/silent", b"", OPEN_ACL_UNSAFE,
                                                     int(CreateMode.EPHEMERAL)))
        assert r.err == Err.OK, r
        silent.drop()

        t_lead = time.monotonic()
        while time.monotonic() - t_lead < 2 * SESSION_MS / 1000:
            assert ens.leader(timeout=10) == ahead
            time.sleep(0.5)

        def silent_gone() -> bool:
            with RawClient(*eps[1], timeout_ms=SESSION_MS) as c:
                return c.request(Op.EXISTS, PathWatchRequest("/silent", False)).err == Err.NONODE

        wait_for(silent_gone, 20, "the silent session's ephemeral to go")
        assert _mntr(m, "zk_stale_sessions_expired") >= 1

        for b in bystanders:
            assert not b.expired, f"{b.path}: {b.expired}"
            assert b.pings > 0, b.path
        for host, port in eps:
            for b in bystanders:
                assert b.owns_its_node(host, port), f"{b.path} lost on {port}"
        print(f"mtime skew under the +1 h leader: {skew / 1000:.0f} s; bystander pings "
              f"{[b.pings for b in bystanders]}, reconnects {[b.reconnects for b in bystanders]}")
    finally:
        for b in bystanders:
            b.close()
        ens.stop()
