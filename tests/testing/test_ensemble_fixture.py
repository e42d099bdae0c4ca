"""zabby.testing's ensemble fixtures, used the way a user's test would use them.

Every wait is bounded: ``leader(timeout=...)``, client start/operation timeouts, and
pytest's own timeout.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from zabby.client import SyncClient
from zabby.testing import ZabbyEnsemble, ZooKeeperEnsemble

TIMEOUT = 4.0  # client session timeout (an ensemble with tickTime 200 caps it at 4 s)


def client(hosts: str) -> SyncClient:
    zk = SyncClient(hosts, timeout=TIMEOUT)
    zk.start(timeout=15)
    return zk


def gone(pid: int) -> bool:
    """No process and no process group with this id (a member's group id is its pid)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        pass
    else:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def no_leftovers():
    """Requested before the ensemble fixture, so this teardown runs after the
    ensemble's: every pid the test recorded must be gone by then."""
    pids: list[int] = []
    yield pids
    assert pids, "the test recorded no pids"
    left = [p for p in pids if not gone(p)]
    assert not left, f"processes left after teardown: {left}"


def test_kill_leader_new_leader_keeps_data(zabby_ensemble):
    ens = zabby_ensemble
    assert len(ens.members) == 3 and len(ens.hosts.split(",")) == 3
    old = ens.leader(timeout=10)
    assert sorted(ens.followers(timeout=10)) == sorted(i for i in ens.members if i != old)
    zk = client(ens.hosts)
    try:
        zk.create("/app/config", b"v1", makepath=True)
        t0 = time.monotonic()
        ens.kill(old)
        new = ens.leader(timeout=15)
        assert new != old
        failover = time.monotonic() - t0
        # the data is on the survivors, and the ensemble takes writes again
        zk.set("/app/config", b"v2")
        survivors = [i for i in ens.members if i != old]
        reader = client(ens.member_hosts(*survivors))
        try:
            reader.sync("/app/config")
            assert reader.get("/app/config")[0] == b"v2"
        finally:
            reader.close()
        # the killed member comes back as a follower and catches up
        ens.restart(old, wait=True)
        assert ens.mode(old) == "follower"
        back = client(ens.member_hosts(old))
        try:
            back.sync("/")
            assert back.get("/app/config")[0] == b"v2"
        finally:
            back.close()
    finally:
        zk.close()
    assert failover < 15


def test_paused_follower_catches_up(no_leftovers, zabby_ensemble):
    ens = zabby_ensemble
    no_leftovers.extend(ens.pids.values())
    lead = ens.leader(timeout=10)
    f1, f2 = ens.followers(timeout=10)
    zk = client(ens.member_hosts(lead, f1))
    try:
        zk.create("/counter", b"0")
        ens.pause(f2)
        assert ens.members[f2].paused and ens.mode(f2) == ""
        with pytest.raises(OSError):  # stopped: the kernel accepts, nobody answers
            ens.members[f2].four_letter_word("srvr", timeout=0.5)
        for n in range(1, 21):  # a quorum (leader + f1) without f2
            zk.set("/counter", str(n).encode())
        assert zk.get("/counter")[0] == b"20"
        ens.resume(f2)
        ens.wait_serving([f2], timeout=15)
        lagger = client(ens.member_hosts(f2))
        try:
            lagger.sync("/counter")
            assert lagger.get("/counter")[0] == b"20"
        finally:
            lagger.close()
        # paused again and left paused: the fixture's teardown must still end it
        ens.pause(f2)
    finally:
        zk.close()


def test_context_manager_stops_paused_members(tmp_path):
    with ZabbyEnsemble(tmp_path, 3, start=False, tickTime=200) as ens:
        pids = list(ens.pids.values())
        assert len(pids) == 3
        ens.pause(ens.leader(timeout=10))
    assert not ens.pids
    assert all(gone(p) for p in pids), [p for p in pids if not gone(p)]
    # the paused leader was resumed and ended by SIGTERM, not left for SIGKILL
    codes = {i: m.proc.returncode for i, m in ens.members.items()}
    assert -signal.SIGKILL not in codes.values(), codes


def test_factory_sizes_and_observers(zabby_ensemble_factory):
    ens = zabby_ensemble_factory(size=3, observers=1, syncLimit=4)
    assert ens.voters == [1, 2, 3] and ens.observers == [4]
    assert ens.members[4].cfg["syncLimit"] == 4 and ens.members[1].cfg["tickTime"] == 200
    assert ens.mode(4) == "observer"
    zk = client(ens.member_hosts(4))
    try:
        zk.create("/via-observer", b"x")
        assert zk.get("/via-observer")[0] == b"x"
    finally:
        zk.close()


def test_zookeeper_ensemble_fixture(zk_ensemble):
    ens = zk_ensemble
    assert isinstance(ens, ZooKeeperEnsemble)
    old = ens.leader(timeout=20)
    zk = client(ens.hosts)
    try:
        zk.create("/zk-data", b"kept")
        ens.kill(old)
        assert ens.leader(timeout=30) != old
        survivors = [i for i in ens.members if i != old]
        reader = client(ens.member_hosts(*survivors))
        try:
            reader.sync("/zk-data")
            assert reader.get("/zk-data")[0] == b"kept"
        finally:
            reader.close()
    finally:
        zk.close()


def test_readme_example(zabby_ensemble):
    """The example in README.md's zabby.testing section, as it is written there."""
    ens = zabby_ensemble
    old = ens.leader()
    with SyncClient(ens.hosts, timeout=4.0) as zk:
        zk.create("/config", b"v1")
        ens.kill(old)                             # SIGKILL the leader
        assert ens.leader(timeout=15) != old      # a new one is elected...
        assert zk.get("/config")[0] == b"v1"      # ...and the data is there
    ens.restart(old, wait=True)                   # back, as a follower
    f1, f2 = ens.followers()
    ens.pause(f2)                                 # hung; leader + f1 are a quorum
    with SyncClient(ens.member_hosts(ens.leader(), f1), timeout=4.0) as zk:
        zk.set("/config", b"v2")
    ens.resume(f2)
