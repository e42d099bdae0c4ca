"""PEER_ACK: a follower that forwards client writes asks the other voting followers for
their broadcast ACKs, and commits once its own durable log and theirs make a quorum,
without waiting a hop for the leader's COMMIT."""

from __future__ import annotations

from consensus_harness import Cluster

from zabby.consensus import messages as m
from zabby.consensus.peer import _WANT_TICKS


def _three() -> tuple[Cluster, int, int, int]:
    """A settled 3-voter cluster whose logs become durable only when told: (cluster,
    leader, one follower, the other)."""
    c = Cluster([1, 2, 3])
    leader = c.settle()
    c.auto_fsync = False
    f1, f2 = (i for i in c.ids if i != leader)
    return c, leader, f1, f2


def _proposed_to_followers_only(c: Cluster, leader: int, n: int = 1) -> list[int]:
    """The leader proposes `n` txns; its followers get them, and nothing the followers
    send reaches the leader (no ACK there, so no COMMIT comes back)."""
    for f in c.ids:
        if f != leader:
            c.cut.add((f, leader))
    zs = [c.peers[leader].propose(b"v%d" % i) for i in range(n)]
    c.drain(leader)
    c.run()
    return zs


def _applied(c: Cluster, i: int) -> list[int]:
    return [z for z, _ in c.commits[i]]


def _asking(c: Cluster, f: int) -> None:
    c.peers[f].want_peer_acks()
    c.drain(f)
    c.run()


def test_the_follower_that_asked_commits_on_the_other_follower_s_ack():
    c, leader, f1, f2 = _three()
    _asking(c, f1)
    zs = _proposed_to_followers_only(c, leader, 3)
    c.fsync(f1)
    c.run()
    assert zs[0] not in _applied(c, f1)  # one durable log of three is no quorum
    c.fsync(f2)  # f2 acks to the leader (cut) and to f1, who asked
    c.run()
    assert _applied(c, f1)[-3:] == zs
    assert c.peers[f1].peer_commits == 1
    # nobody else learned it: the leader heard no ACK, f2 asked for none
    assert c.peers[leader].committed_zxid < zs[0]
    assert zs[0] not in _applied(c, f2) and c.peers[f2].peer_commits == 0
    # the leader's COMMIT, once its links heal, changes nothing at f1
    c.cut.clear()
    c.fsync(leader)
    c.tick()
    assert _applied(c, f1)[-3:] == zs and _applied(c, f2)[-3:] == zs


def _f2_acked_a_write_f1_asked_for() -> tuple[Cluster, int, int, int, int]:
    """f1 asks, the leader proposes one txn to its followers only, and f2's log is
    durable (its PEER_ACK delivered to f1): (cluster, leader, f1, f2, the txn)."""
    c, leader, f1, f2 = _three()
    _asking(c, f1)
    [z] = _proposed_to_followers_only(c, leader)
    c.fsync(f2)
    c.run()
    return c, leader, f1, f2, z


def test_an_ack_that_comes_first_waits_for_the_follower_s_own_log():
    c, _, f1, _, z = _f2_acked_a_write_f1_asked_for()
    assert z not in _applied(c, f1)  # f2's log alone: f1's own is not durable yet
    c.fsync(f1)
    assert _applied(c, f1)[-1] == z


def test_no_ack_goes_to_a_follower_that_did_not_ask_or_stopped_asking():
    c, leader, f1, f2 = _three()
    [z] = _proposed_to_followers_only(c, leader)
    c.peers[f2].persisted(z)
    sent = [(to, m.decode(d)[0].type) for to, d in c.peers[f2].ready().messages]
    assert sent == [(leader, m.ACK)]
    c.cut.clear()
    _asking(c, f1)
    c.tick(2 * _WANT_TICKS + 1)  # the ask has run out
    assert c.peers[f2].role == "following"
    [z2] = _proposed_to_followers_only(c, leader)
    c.peers[f2].persisted(z2)
    assert [to for to, _ in c.peers[f2].ready().messages] == [leader]


def test_acks_of_another_epoch_or_from_the_leader_are_not_counted():
    c, leader, f1, f2 = _three()
    [z] = _proposed_to_followers_only(c, leader)
    c.fsync(f1)
    p = c.peers[f1]
    p.receive(f2, m.encode(m.PEER_ACK, m.Ack(z, False), epoch=p.epoch + 1))
    p.receive(leader, m.encode(m.PEER_ACK, m.Ack(z, False), epoch=p.epoch))
    c.drain(f1)
    assert z not in _applied(c, f1) and p.peer_commits == 0
    p.receive(f2, m.encode(m.PEER_ACK, m.Ack(z, False), epoch=p.epoch))
    c.drain(f1)
    assert _applied(c, f1)[-1] == z and p.peer_commits == 1


def test_a_new_epoch_forgets_the_acks_and_asks_of_the_old_one():
    c, leader, f1, f2, z = _f2_acked_a_write_f1_asked_for()
    assert c.peers[f1]._peer_acks == {f2: z}
    assert f1 in c.peers[f2]._peer_ack_wanted
    c.auto_fsync = True
    c.cut.clear()
    c.down.add(leader)
    new = c.settle(60)
    assert new != leader
    for f in (f1, f2):
        assert c.peers[f]._peer_acks == {} and c.peers[f]._peer_ack_wanted == {}
