"""Reconfiguration in the pure Zab peer: joint quorums, activation, joiners, removal."""

from __future__ import annotations

import random

from consensus_harness import LIMITS, Cluster

from zabby.consensus import Config, Peer


def cfg_payload(version: int, voters, observers=()) -> bytes:
    return b"cfg:%d:%s:%s" % (version, ",".join(map(str, voters)).encode(),
                              ",".join(map(str, observers)).encode())


def config_of_entry(payload: bytes) -> Config | None:
    if not payload.startswith(b"cfg:"):
        return None
    _, v, vs, os_ = payload.decode().split(":")
    ids = lambda s: frozenset(int(x) for x in s.split(",") if x)  # noqa: E731
    return Config(int(v), ids(vs), ids(os_), payload)


def config_of_data(version: int, data: bytes) -> Config | None:
    return config_of_entry(data)


class ReCluster(Cluster):
    """Members 1..n vote; the other ids start outside the configuration (joiners)."""

    def __init__(self, voters, joiners=(), observers=(), seed=0):
        self.joiners = frozenset(joiners)
        super().__init__(voters, observers=set(observers) | self.joiners, seed=seed)
        rng = random.Random(seed + 1)
        self.voters = frozenset(voters)
        self.observers = frozenset(observers)
        for i in self.ids:
            self.peers[i] = Peer(
                i, self.voters, self.observers, self.stores[i],
                rng=random.Random(rng.getrandbits(32)), tick_limits=LIMITS,
                config_version=1, config_data=cfg_payload(1, voters, observers),
                config_of_entry=config_of_entry, config_of_data=config_of_data,
                observer_type=False if i in self.joiners else None)
        self.queue.clear()
        for i in self.ids:
            self.drain(i)


def committed(c: ReCluster, i: int, zxid: int) -> bool:
    return c.peers[i].committed_zxid >= zxid


def test_a_reconfig_commits_only_with_a_quorum_of_old_and_new():
    c = ReCluster([1, 2, 3], joiners=[4, 5, 6])
    leader = c.settle()
    # the joiners learn as non-voting followers before any reconfig
    assert all(c.peers[j].role == "following" and not c.peers[j].is_voter for j in (4, 5, 6))
    c.down |= {4, 5, 6}
    z = c.peers[leader].propose(cfg_payload(9, [1, 2, 3, 4, 5, 6]))
    assert c.peers[leader].reconfig_pending
    c.run()
    c.tick(3)
    # all of {1,2,3} acked: a quorum of the old configuration, not of {1..6}
    assert not committed(c, leader, z)
    c.down.discard(4)
    for _ in range(40):
        c.tick()
        if committed(c, leader, z):
            break
    assert committed(c, leader, z)  # {1,2,3,4}: quorums of both
    c.tick(3)
    for i in (1, 2, 3, 4):
        assert c.peers[i].voters == frozenset({1, 2, 3, 4, 5, 6}), i
        assert c.peers[i].config.version == z  # a config is named by its zxid
    assert not c.peers[leader].reconfig_pending
    assert any(r.config is not None and r.config.version == z for r in c.readies[4])
    # from now on the new configuration decides: 4 of 6
    z2 = c.peers[leader].propose(b"after")
    c.run()
    c.tick(2)
    assert committed(c, leader, z2)


def test_a_leader_that_removes_itself_hands_over_and_a_removed_member_stops():
    c = ReCluster([1, 2, 3])
    leader = c.settle()
    rest = [i for i in (1, 2, 3) if i != leader]
    z = c.peers[leader].propose(cfg_payload(7, rest))
    c.run()
    c.tick(2)
    assert c.peers[leader].removed and c.peers[leader].role != "leading"
    for _ in range(60):
        c.tick()
        if any(c.peers[i].established for i in rest) and all(c.peers[i].serving for i in rest):
            break
    new = [i for i in rest if c.peers[i].established]
    assert len(new) == 1
    for i in rest:
        assert c.peers[i].committed_zxid >= z and c.peers[i].voters == frozenset(rest)
    z2 = c.peers[new[0]].propose(b"x")
    c.run()
    c.tick(2)
    assert all(committed(c, i, z2) for i in rest)
    c.tick(20)
    # the removed server goes on learning as a non-voter (a later change may name it
    # again); the server layer keeps it from serving clients
    old = c.peers[leader]
    assert old.removed and not old.is_voter and old.role in ("looking", "following")


def test_a_follower_becomes_an_observer_and_a_stale_server_adopts_the_newer_config():
    c = ReCluster([1, 2, 3, 4])
    leader = c.settle()
    other = next(i for i in (1, 2, 3, 4) if i != leader)
    stale = next(i for i in (1, 2, 3, 4) if i not in (leader, other))
    c.down.add(stale)
    voters = [i for i in (1, 2, 3, 4) if i != other]
    z = c.peers[leader].propose(cfg_payload(8, voters, [other]))
    for _ in range(40):
        c.tick()
        if c.peers[other].role == "observing" and c.peers[other].serving:
            break
    assert c.peers[leader].committed_zxid >= z
    assert c.peers[other].role == "observing" and c.peers[other].serving
    # the stale member was down: it comes back with the old configuration, learns
    # the newer one from notifications, and follows again
    c.down.discard(stale)
    c.peers[stale].disconnected(leader)
    for _ in range(60):
        c.tick()
        if c.peers[stale].serving:
            break
    assert c.peers[stale].serving and c.peers[stale].config.version == z
