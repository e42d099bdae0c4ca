"""Unit tests of each Zab phase on a hand-driven cluster."""

import random

import pytest
from consensus_harness import LIMITS, Cluster, entries, store_with, zx

from zabby.consensus import FOLLOWING, LEADING, LOOKING, NotLeader, Peer
from zabby.consensus import messages as m
from zabby.consensus.sim import MemStorage

# ------------------------------------------------------------------ election


def test_single_voter_leads_at_once():
    c = Cluster([1])
    assert c.peers[1].established and c.peers[1].serving
    assert c.peers[1].epoch == 1
    z = c.peers[1].propose(b"x")
    c.drain(1)
    assert c.commits[1] == [(z, b"x")]
    assert z == zx(1, 1)


def test_fresh_ensemble_elects_highest_id():
    c = Cluster([1, 2, 3])
    assert c.settle() == 3


def test_election_prefers_highest_epoch_then_zxid_then_id():
    # 1 has the longest log but an older current epoch; 2 and 3 agree on epoch 2
    base = entries(zx(1, 1), zx(1, 2))
    stores = {
        1: store_with(base + entries(zx(1, 3), zx(1, 4)), accepted=1, current=1),
        2: store_with(base + entries(zx(2, 1)), accepted=2, current=2),
        3: store_with(base, accepted=2, current=2),
    }
    c = Cluster([1, 2, 3], stores=stores)
    assert c.settle() == 2
    # tie on (epoch, zxid): the highest id wins
    stores = {i: store_with(base, accepted=1, current=1) for i in (1, 2, 3)}
    c = Cluster([1, 2, 3], stores=stores)
    c.down.add(3)
    assert c.settle() == 2


def test_restarted_server_joins_existing_leader():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    z = c.peers[leader].propose(b"a")
    c.drain(leader)
    c.run()
    # 1 restarts with its durable state and finds the leader via out-of-election votes
    c.peers[1] = Peer(1, c.voters, c.observers, c.stores[1], rng=random.Random(5),
                      tick_limits=LIMITS)
    c.stores[1].applied = list(c.stores[1].snap_state)
    c.drain(1)
    c.tick(3)
    assert c.peers[1].role == "following" and c.peers[1].leader_id == leader
    assert c.peers[leader].established and c.peers[1].serving
    assert (z, b"a") in c.stores[1].applied


def _follow_the_wrong_server():
    """1 and 2 voted for 2 (3 not up yet), 1 decided; then 3 showed up and 2 went on
    to follow 3. Server 1 now follows a server that will never lead it."""
    c = Cluster([1, 2, 3])
    assert c.settle() == 3
    c.peers[1]._decide(2)
    assert c.peers[1].role == FOLLOWING and c.peers[1].leader_id == 2
    return c


def test_a_learner_whose_leader_follows_another_finds_the_real_leader_at_once():
    # Seen on a local ensemble started all at once: server 1 kept sending FOLLOWERINFO
    # to 2 (dropped: "not leading") until initLimit ran out, serving nobody meanwhile.
    c = _follow_the_wrong_server()
    c.drain(1)      # FOLLOWERINFO to 2
    c.run()         # 2 answers with its vote: following 3
    assert any("server 2 is not leading" in e for e in c.events[1])
    c.tick(2)       # far below initLimit (10 ticks)
    assert c.peers[1].role == FOLLOWING and c.peers[1].leader_id == 3
    assert c.peers[1].serving


def test_a_learner_leaves_a_looking_server_that_votes_for_another():
    c = _follow_the_wrong_server()
    c.queue.clear()
    p2 = c.peers[2]
    vote = m.Notification(3, p2.last_zxid, p2.current_epoch, c.peers[1]._leader_round, 0)
    c.peers[1].receive(2, m.encode(m.NOTIFICATION, vote))
    assert c.peers[1].role == LOOKING
    # but a looking notification of the same round voting for itself changes nothing
    c = _follow_the_wrong_server()
    vote = m.Notification(2, p2.last_zxid, p2.current_epoch, c.peers[1]._leader_round, 0)
    c.peers[1].receive(2, m.encode(m.NOTIFICATION, vote))
    assert c.peers[1].role == FOLLOWING


def test_a_followerinfo_that_came_before_we_decided_to_lead_is_answered_at_once():
    # After a failover one survivor decided for the other before the other's own
    # finalize wait ended; its FOLLOWERINFO was dropped and only sent again after
    # _RETRY_TICKS: ~300 ms more to elect. The leader now keeps it while looking.
    c = Cluster([1, 2, 3])
    old = c.settle()
    a, b = (i for i in c.ids if i != old)
    c.down.add(old)
    for i in (a, b):
        c.peers[i].disconnected(old)
        c.peers[i]._become_looking("test: leader gone")
        c.peers[i].ready()
    c.queue.clear()
    lo, hi = sorted((a, b))
    c.peers[lo]._decide(hi)          # lo decided for hi; hi is still looking
    fi = [d for to, d in c.peers[lo].ready().messages if to == hi]
    assert [m.decode(d)[0].type for d in fi] == [m.FOLLOWERINFO]
    c.peers[hi].receive(lo, fi[0])
    c.peers[hi].ready()
    assert c.peers[hi].role == LOOKING
    c.peers[hi]._decide(hi)          # hi's finalize wait ends: it leads
    rd = c.peers[hi].ready()
    assert m.LEADERINFO in [m.decode(d)[0].type for to, d in rd.messages if to == lo]
    c.queue.extend((hi, to, d) for to, d in rd.messages)
    c.run()                          # no tick: nobody needs to retry
    assert c.peers[hi].established and c.peers[lo].serving


def test_looking_server_joins_leader_reelected_in_later_round():
    """Regression (sim seed 5): learners re-attached to a leader re-elected in a later
    election round report their old round; a LOOKING server must still join."""
    c = Cluster([1, 2, 3, 4, 5])
    leader = c.settle()
    c.peers[leader]._clock += 3   # as if it had stepped down and been re-elected
    rounds = {i: c.peers[i]._clock for i in c.ids}
    victim = 1 if leader != 1 else 2
    c.peers[victim] = Peer(victim, c.voters, c.observers, c.stores[victim],
                           rng=random.Random(9), tick_limits=LIMITS)
    c.drain(victim)
    c.tick(3)
    assert c.peers[victim].leader_id == leader and c.peers[victim].serving, rounds


# ------------------------------------------------------------------ discovery


def test_new_epoch_exceeds_every_accepted_epoch_and_is_persisted_first():
    stores = {
        1: store_with(accepted=7, current=3),
        2: store_with(accepted=4, current=3),
        3: store_with(accepted=5, current=3),
    }
    c = Cluster([1, 2, 3], stores=stores)
    leader = c.settle()
    assert c.peers[leader].epoch == 8
    # 1 (accepted 7) connected after the epoch was fixed from 2 and 3: one re-election
    assert sum("proposing epoch" in e for e in c.events[leader]) <= 2
    for i in c.ids:
        assert c.stores[i].accepted_epoch == 8 and c.stores[i].current_epoch == 8
        assert c.stores[i].accepted_leader == leader
    # the leader's epoch is durable in (or before) the Ready that sends LEADERINFO
    rds = c.readies[leader]
    first = next(k for k, rd in enumerate(rds)
                 if any(m.decode(d)[0].type == m.LEADERINFO and m.decode(d)[0].epoch == 8
                        for _, d in rd.messages))
    assert any(rd.persist_epochs and rd.persist_epochs.accepted_epoch == 8
               for rd in rds[:first + 1])
    # and a follower's ACKEPOCH goes out with its accepted epoch persisted
    f = next(i for i in c.ids if i != leader)
    rds = c.readies[f]
    first = next(k for k, rd in enumerate(rds)
                 if any(m.decode(d)[0].type == m.ACKEPOCH for _, d in rd.messages))
    assert rds[first].persist_epochs.accepted_epoch == 8


def test_follower_refuses_same_epoch_from_a_second_leader():
    """ZooKeeper acks LEADERINFO(e) when e == acceptedEpoch from anyone; two leaders that
    computed the same epoch could then both gather quorums. We remember the proposer."""
    st = store_with(accepted=0, current=0)
    p = Peer(1, frozenset({1, 2, 3}), frozenset(), st, rng=random.Random(1), tick_limits=LIMITS)
    p.ready()
    p._decide(2)           # as if the election chose 2
    fi = p.ready().messages
    session = m.decode(fi[0][1])[0].session
    p.receive(2, m.encode(m.LEADERINFO, m.Empty(), epoch=5, session=session, seq=0))
    rd = p.ready()
    assert rd.persist_epochs.accepted_epoch == 5 and rd.persist_epochs.accepted_leader == 2
    assert any(m.decode(d)[0].type == m.ACKEPOCH for _, d in rd.messages)
    # now 3 claims epoch 5 as well
    p._become_looking("test")
    p._decide(3)
    session = m.decode(p.ready().messages[-1][1])[0].session
    p.receive(3, m.encode(m.LEADERINFO, m.Empty(), epoch=5, session=session, seq=0))
    rd = p.ready()
    assert p.role == LOOKING
    assert not any(m.decode(d)[0].type == m.ACKEPOCH for _, d in rd.messages)


def test_voter_locked_out_by_newer_accepted_epoch_forces_reelection():
    """Regression (sim seed 29): a voter that accepted epoch 7 from a leader that never got
    going cannot follow the established epoch-4 leader; the leader re-elects past it."""
    c = Cluster([1, 2, 3])
    leader = c.settle()
    other = next(i for i in c.ids if i != leader)
    old_epoch = c.peers[leader].epoch
    c.stores[other].accepted_epoch = old_epoch + 5
    c.stores[other].accepted_leader = 99
    c.peers[other] = Peer(other, c.voters, c.observers, c.stores[other],
                          rng=random.Random(3), tick_limits=LIMITS)
    c.drain(other)
    leader = c.settle(ticks=60)
    assert c.peers[leader].epoch > old_epoch + 5
    assert all(c.peers[i].serving for i in c.ids)


def test_leader_gives_up_when_a_quorum_member_is_ahead():
    # 3 wins the vote (highest id) while 2 (with the better log) is not yet visible
    stores = {
        1: store_with(entries(zx(1, 1)), accepted=1, current=1),
        2: store_with(entries(zx(1, 1), zx(1, 2)), accepted=1, current=1),
        3: store_with(entries(zx(1, 1)), accepted=1, current=1),
    }
    c = Cluster([1, 2, 3], stores=stores)
    c.peers[3]._decide(3)
    c.drain(3)
    c.peers[2]._decide(3)
    c.drain(2)
    c.run()
    assert "is ahead" in c.all_events(3)
    # regression (sim seeds 1306, 3039): 3 votes for 2 straight away and 2, still
    # following 3, joins the election as soon as it sees 3 looking - no livelock
    assert c.settle(ticks=4) == 2
    assert "leader 3 is looking" in c.all_events(2)


# ------------------------------------------------------------------ synchronisation


def _sync_modes(c, leader):
    return [e for e in c.events[leader] if e.startswith("sync ")]


def test_sync_diff_for_a_lagging_follower():
    log = entries(zx(1, 1), zx(1, 2), zx(1, 3))
    stores = {1: store_with(log[:1], accepted=1, current=1),
              2: store_with(log, accepted=1, current=1),
              3: store_with(log, accepted=1, current=1)}
    c = Cluster([1, 2, 3], stores=stores)
    leader = c.settle()
    assert leader == 3
    assert any("sync 1: DIFF 0x100000001 (+2 entries" in e for e in _sync_modes(c, leader))
    assert c.stores[1].history() == log
    assert c.stores[1].applied == log          # the initial history is committed


def test_sync_trunc_removes_uncommitted_entries_of_an_old_epoch():
    common = entries(zx(1, 1), zx(1, 2))
    stores = {
        # 1 logged 1:3 and 1:4 in epoch 1 but they never reached a quorum
        1: store_with(common + entries(zx(1, 3), zx(1, 4)), accepted=1, current=1),
        # epoch 2 was established without them and committed 2:1
        2: store_with(common + entries(zx(2, 1)), accepted=2, current=2),
        3: store_with(common + entries(zx(2, 1)), accepted=2, current=2),
    }
    c = Cluster([1, 2, 3], stores=stores)
    leader = c.settle()
    assert leader == 3
    assert any("sync 1: TRUNC 0x100000002" in e for e in _sync_modes(c, leader))
    assert "truncated log to 0x100000002" in c.all_events(1)
    assert c.stores[1].history() == c.stores[3].history() == common + entries(zx(2, 1))
    assert c.stores[1].applied == common + entries(zx(2, 1))


def test_sync_trunc_when_follower_is_ahead_of_the_leader():
    common = entries(zx(1, 1))
    stores = {1: store_with(common + entries(zx(1, 2)), accepted=2, current=1),
              2: store_with(common, accepted=2, current=2),
              3: store_with(common, accepted=2, current=2)}
    c = Cluster([1, 2, 3], stores=stores)
    assert c.settle() == 3
    assert c.stores[1].history() == common


def test_sync_snap_when_follower_is_behind_the_snapshot():
    log = entries(*(zx(1, i) for i in range(1, 9)))
    stores = {1: store_with(log[:2], accepted=1, current=1),
              2: store_with(log, accepted=1, current=1, snap=6),
              3: store_with(log, accepted=1, current=1, snap=6)}
    c = Cluster([1, 2, 3], stores=stores)
    leader = c.settle()
    assert any(": SNAP" in e for e in _sync_modes(c, leader) if e.startswith("sync 1"))
    assert c.stores[1].snap_zxid >= zx(1, 6)
    assert c.stores[1].history() == log
    assert c.stores[1].applied == log


def test_follower_refuses_trunc_below_what_it_applied():
    st = store_with(entries(zx(1, 1), zx(1, 2)), accepted=1, current=1, snap=2)
    p = Peer(1, frozenset({1, 2, 3}), frozenset(), st, rng=random.Random(1), tick_limits=LIMITS)
    p._decide(2)
    session = m.decode(p.ready().messages[-1][1])[0].session
    p.receive(2, m.encode(m.LEADERINFO, m.Empty(), epoch=2, session=session, seq=0))
    p.receive(2, m.encode(m.SYNC, m.Sync(m.SYNC_TRUNC, zx(1, 1), None), epoch=2,
                          session=session, seq=1))
    rd = p.ready()
    assert rd.truncate_to is None and p.role == LOOKING
    assert any("refusing TRUNC" in e for e in rd.events)


# ------------------------------------------------------------------ broadcast


def test_commit_needs_a_quorum_of_persisted_acks():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    c.auto_fsync = False
    f1, f2 = (i for i in c.ids if i != leader)
    zs = [c.peers[leader].propose(b"v%d" % i) for i in range(3)]   # pipelined
    c.drain(leader)
    c.run()
    assert c.peers[leader].committed_zxid < zs[0]
    c.fsync(f1)
    c.run()
    # 1 of 3 durable (the leader's own log is not fsynced yet): nothing commits
    assert c.peers[leader].committed_zxid < zs[0]
    c.fsync(leader)
    c.run()
    assert c.peers[leader].committed_zxid == zs[-1]
    assert [z for z, _ in c.commits[leader][-3:]] == zs
    # f1 learns the commit, f2 cannot apply until its own log is durable
    assert [z for z, _ in c.commits[f1][-3:]] == zs
    assert zs[0] not in [z for z, _ in c.commits[f2]]
    c.fsync(f2)
    c.tick()
    assert [z for z, _ in c.commits[f2][-3:]] == zs


def test_proposals_are_batched_per_learner():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    for i in range(10):
        c.peers[leader].propose(b"b%d" % i)
    rd = c.peers[leader].ready()
    kinds = [m.decode(d)[0].type for _, d in rd.messages]
    assert kinds.count(m.ENTRIES) == 2      # one message per follower


def test_a_learner_acks_a_log_batch_once_with_the_highest_zxid():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    c.auto_fsync = False
    f = next(i for i in c.ids if i != leader)
    zs = [c.peers[leader].propose(b"a%d" % i) for i in range(5)]
    c.drain(leader)
    c.queue = [q for q in c.queue if q[1] == f]
    for frm, to, data in c.queue:
        c.peers[to].receive(frm, data)
    c.queue.clear()
    follower = c.peers[f]
    follower.ready()  # persists the entries (the harness store is not touched)
    # the log reports each entry durable on its own, as a group commit may
    for z in zs:
        follower.persisted(z)
    acks = [m.decode(d) for to, d in follower.ready().messages if to == leader]
    assert [(h.type, b.zxid) for h, b in acks] == [(m.ACK, zs[-1])]
    # an ACK already taken by ready() is never rewritten: the next batch gets its own
    z6 = c.peers[leader].propose(b"a6")
    for d in [x for t, x in c.peers[leader].ready().messages if t == f]:
        follower.receive(leader, d)
    follower.ready()
    follower.persisted(z6)
    acks = [m.decode(d) for to, d in follower.ready().messages if to == leader]
    assert [(h.type, b.zxid) for h, b in acks] == [(m.ACK, z6)]


def test_the_log_writer_s_ack_is_the_one_persisted_would_send_and_is_not_sent_twice():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    c.auto_fsync = False
    f = next(i for i in c.ids if i != leader)
    follower = c.peers[f]
    zs = [c.peers[leader].propose(b"w%d" % i) for i in range(3)]
    c.drain(leader)
    for frm, _to, data in [q for q in c.queue if q[1] == f]:
        follower.receive(frm, data)
    c.queue.clear()
    assert follower.writer_ack(zs[-1] + 1) is None  # beyond what it accepted
    follower.ready()  # the entries go to the log
    msg = follower.writer_ack(zs[-1])
    h, body = m.decode(msg)
    assert (h.type, body.zxid, body.newleader) == (m.ACK, zs[-1], False)
    # what persisted() sends when the writer could not send it is the same ACK
    follower.persisted(zs[-1])
    [plain] = [d for t, d in follower.ready().messages if t == leader]
    assert plain == msg
    # once the writer sent it, persisted() sends none; a later batch is acked again
    z4 = c.peers[leader].propose(b"w4")
    c.drain(leader)
    for frm, _to, data in [q for q in c.queue if q[1] == f]:
        follower.receive(frm, data)
    c.queue.clear()
    follower.ready()
    assert follower.writer_ack(zs[-1]) is None  # already durable
    msg4 = follower.writer_ack(z4)
    follower.writer_acked(z4)
    follower.persisted(z4)
    assert [d for t, d in follower.ready().messages if t == leader] == []
    assert follower.durable_zxid == z4
    leader_peer = c.peers[leader]
    leader_peer.receive(f, msg4)  # the writer's ACK counts as the loop's would
    c.fsync(leader)
    assert leader_peer.committed_zxid == z4
    # the leader and a follower still syncing send no writer ACK
    assert leader_peer.writer_ack(z4) is None


def test_commits_waiting_for_the_same_ready_are_sent_as_one():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    c.auto_fsync = False
    lp = c.peers[leader]
    zs = [lp.propose(b"c%d" % i) for i in range(3)]
    c.drain(leader)
    c.fsync(leader)
    c.queue.clear()
    f1, f2 = (i for i in c.ids if i != leader)
    # f1 acknowledges the txns one at a time; the leader takes no Ready in between
    for z in zs:
        lp.receive(f1, m.encode(m.ACK, m.Ack(z, False), epoch=lp.epoch,
                                session=c.peers[f1]._session))
    assert lp.committed_zxid == zs[-1]
    msgs = [(to, m.decode(d)) for to, d in lp.ready().messages]
    commits = [(to, b.zxid) for to, (h, b) in msgs if h.type == m.COMMIT]
    assert sorted(commits) == sorted([(f1, zs[-1]), (f2, zs[-1])])


def test_propose_on_a_follower_raises_not_leader():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    with pytest.raises(NotLeader) as ei:
        c.peers[1 if leader != 1 else 2].propose(b"x")
    assert ei.value.leader_id == leader


def test_observers_get_committed_entries_and_do_not_count():
    c = Cluster([1, 2, 3], observers=[4])
    leader = c.settle()
    assert c.peers[4].role == "observing" and c.peers[4].serving
    voters = [i for i in (1, 2, 3) if i != leader]
    for v in voters:
        c.isolate(v)
    z = c.peers[leader].propose(b"x")
    c.drain(leader)
    c.run()
    assert c.peers[leader].committed_zxid < z        # the observer's ack does not count
    assert (z, b"x") not in c.stores[4].history()    # nor does it see uncommitted txns
    c.cut.clear()
    c.tick(2)
    c.run()
    assert c.peers[leader].committed_zxid >= z
    assert (z, b"x") in c.stores[4].applied


def test_leader_steps_down_without_quorum_within_sync_limit():
    c = Cluster([1, 2, 3, 4, 5])
    leader = c.settle()
    for i in c.ids:
        if i != leader:
            c.cut.add((i, leader))
            c.cut.add((leader, i))
    ticks = 0
    while c.peers[leader].role == LEADING and ticks < 50:
        c.tick(only={leader})
        ticks += 1
    assert c.peers[leader].role == LOOKING
    assert ticks <= LIMITS.sync_limit + 2
    assert "lost quorum" in c.all_events(leader)


def test_a_paused_leader_steps_down_as_soon_as_it_hears_of_the_newer_epoch():
    """A leader paused (SIGSTOP) while the others elect anew wakes up still leading
    its old epoch, its links intact. The first learner it pings answers with its vote
    for the newer epoch, and it steps down on the spot instead of serving clients it
    cannot commit for until syncLimit runs out (2.5 s in a recipe fault test)."""
    c = Cluster([1, 2, 3])
    old = c.settle()
    old_epoch = c.peers[old].epoch
    c.pause(old)  # neither ticks nor hears nor is heard
    for _ in range(40):
        c.tick()
        if any(c.peers[i].established for i in c.ids if i != old):
            break
    new = next(i for i in c.ids if i != old and c.peers[i].established)
    assert c.peers[new].epoch > old_epoch
    c.settle()  # the third member follows the new leader too
    c.resume(old)  # its clock and its view are where they stopped
    c.run()  # the votes of the election it missed: it replies, still leading
    assert c.peers[old].role == LEADING
    c.tick(only={old})  # it pings its former learners, they answer with their votes
    assert c.peers[old].role != LEADING, c.all_events(old)
    assert f"is in a newer epoch ({c.peers[new].epoch})" in c.all_events(old)
    c.settle()  # and it joins the new leader
    assert c.leader() == new and c.peers[old].role == FOLLOWING


def test_a_paused_follower_dropped_by_its_leader_resyncs_as_soon_as_it_resumes():
    """A follower paused past syncLimit is dropped by the leader, which tells it so (as
    ZooKeeper's leader closes its socket). Resumed, it stops serving at once and syncs
    anew, instead of serving stale reads for syncLimit more."""
    c = Cluster([1, 2, 3])
    leader = c.settle()
    f = next(i for i in c.ids if i != leader)
    c.pause(f)
    c.tick(LIMITS.sync_limit + 3)
    assert f"learner {f} silent for syncLimit; dropped" in c.all_events(leader)
    c.resume(f)
    assert c.peers[f].serving  # it does not know yet
    c.run()  # resumed: what the leader sent meanwhile arrives
    assert f"resyncing with leader {leader}: leader {leader} dropped our session" in \
        c.all_events(f)
    assert "silent" not in c.all_events(f)  # it did not wait for the silence
    c.settle()
    assert c.leader() == leader and c.peers[f].serving


def test_a_late_vote_of_the_leader_does_not_restart_a_learner_s_sync():
    """Votes ride another link than Zab's: the leader's answer to a vote a learner sent
    while looking can arrive after that learner's LEADERINFO. Only a learner in
    broadcast takes the leader's vote as "you were dropped"."""
    c = Cluster([1, 2, 3])
    leader = c.settle()
    f = next(i for i in c.ids if i != leader)
    p = c.peers[f]
    p._resync("test: a new session")
    c.drain(f)
    while p._fstage in ("connect",) and c.queue:  # up to our LEADERINFO, no further
        frm, to, data = c.queue.pop(0)
        c.peers[to].receive(frm, data)
        c.drain(to)
    assert p._fstage not in ("connect", "broadcast"), p._fstage
    p.receive(leader, c.peers[leader]._notification())  # the late vote
    c.drain(f)
    assert "dropped our session" not in c.all_events(f)
    c.settle()
    assert c.peers[f].serving and c.all_events(f).count("resyncing") == 1


def test_a_learner_of_the_current_epoch_never_deposes_its_leader():
    """Only a newer epoch deposes: a member that is looking, or that follows the same
    epoch and drops a message (a stale session), says nothing that steps a leader down."""
    c = Cluster([1, 2, 3])
    leader = c.settle()
    f1, f2 = (i for i in c.ids if i != leader)
    p = c.peers[leader]
    ping = m.encode(m.PING, m.Zxid(0), epoch=p.epoch, session=12345, seq=0)
    c.peers[f1].receive(leader, ping)  # stale session: dropped, no vote sent back
    c.peers[f1].receive(f2, ping)  # not our leader, but the same epoch: nothing either
    c.drain(f1)
    assert not [q for q in c.queue if q[0] == f1 and q[1] in (leader, f2)
                and m.decode(q[2])[0].type == m.NOTIFICATION]
    c.run()
    # a follower's vote for this very epoch, and a looking member's vote
    p.receive(f1, c.peers[f1]._notification())
    c.peers[f2]._become_looking("test")
    p.receive(f2, c.peers[f2]._notification())
    c.drain(leader)
    assert p.role == LEADING and p.established
    assert "newer epoch" not in c.all_events(leader)
    c.settle()
    assert c.leader() == leader


def test_leader_keeps_leading_with_a_minority_lost():
    c = Cluster([1, 2, 3, 4, 5])
    leader = c.settle()
    lost = [i for i in c.ids if i != leader][:2]
    for i in lost:
        c.down.add(i)
    c.tick(3 * LIMITS.sync_limit)
    assert c.peers[leader].established
    z = c.peers[leader].propose(b"y")
    c.drain(leader)
    c.run()
    assert c.peers[leader].committed_zxid >= z


# ------------------------------------------------------------------ bad input


def test_malformed_unknown_and_old_epoch_messages_are_dropped_with_an_event():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    p = c.peers[leader]
    before = (p.role, p.epoch, p.committed_zxid)
    p.receive(2 if leader != 2 else 1, b"\x00\x01garbage")
    p.receive(42, m.encode(m.ACK, m.Ack(5, False)))
    p.receive(1 if leader != 1 else 2,
              m.encode(m.ACK, m.Ack(0, False), epoch=p.epoch - 1 if p.epoch > 1 else 0))
    evs = p.ready().events
    assert any("malformed" in e for e in evs)
    assert any("unknown server 42" in e for e in evs)
    assert any("old-epoch" in e for e in evs)
    assert (p.role, p.epoch, p.committed_zxid) == before


def test_truncated_frames_never_raise():
    p = Peer(1, frozenset({1, 2, 3}), frozenset(), MemStorage(), rng=random.Random(0))
    msg = m.encode(m.ENTRIES, m.Entries([m.Entry(5, b"abc"), m.Entry(6, b"de")]),
                   epoch=1, session=3, seq=0)
    for i in range(len(msg)):
        p.receive(2, msg[:i])
    assert sum("malformed" in e for e in p.ready().events) == len(msg)


def test_learner_elects_at_once_when_its_link_to_the_leader_breaks():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    follower = next(i for i in c.ids if i != leader)
    c.peers[follower].disconnected(next(i for i in c.ids if i not in (leader, follower)))
    assert c.peers[follower].role == FOLLOWING  # another member's link: nothing happens
    c.peers[follower].disconnected(leader)
    c.drain(follower)
    assert c.peers[follower].role == LOOKING  # no waiting out syncLimit
    assert f"lost the connection to leader {leader}" in c.all_events(follower)


def test_leader_drops_a_learner_whose_link_breaks_and_steps_down_without_a_quorum():
    c = Cluster([1, 2, 3])
    leader = c.settle()
    f1, f2 = (i for i in c.ids if i != leader)
    assert set(c.peers[leader].learner_acks()) == {f1, f2}
    c.peers[leader].disconnected(f1)
    c.drain(leader)
    assert c.peers[leader].role == LEADING  # it and f2 are still a quorum
    assert f"learner {f1}'s connection closed; dropped" in c.all_events(leader)
    assert set(c.peers[leader].learner_acks()) == {f2}
    c.peers[leader].disconnected(f2)  # no waiting out syncLimit either
    c.drain(leader)
    assert c.peers[leader].role == LOOKING
    assert "lost quorum (1 of 3 voters in sync)" in c.all_events(leader)


def _leader_elect():
    """A 3-voter cluster driven message by message until one member is leader-elect
    (discovery: not established). Returns (cluster, leader, the two others)."""
    c = Cluster([1, 2, 3])
    for i in c.ids:
        c.peers[i].tick()
        c.drain(i)
    while c.queue and not any(p.role == LEADING for p in c.peers.values()):
        c.run(limit=1)
    leader = next(i for i, p in c.peers.items() if p.role == LEADING)
    assert c.peers[leader].phase != "broadcast"
    f1, f2 = (i for i in c.ids if i != leader)
    return c, leader, f1, f2


def test_leader_elect_whose_links_close_steps_down_before_initlimit():
    """Its voters stopped right after electing it: once the links to all of them have
    closed it gives up at once rather than waiting out initLimit. While one is left it
    waits (a quorum can still form); told nothing about links, it waits as before."""
    c, leader, f1, f2 = _leader_elect()
    p = c.peers[leader]
    c.down |= {f1, f2}
    p.disconnected(f1)
    p.disconnected(f2)
    c.drain(leader)
    assert p.role == LEADING  # a transport that does not say: initLimit decides
    p.disconnected(f1, lost={f1})
    c.drain(leader)
    assert p.role == LEADING  # it and f2 are a quorum
    p.disconnected(f2, lost={f1, f2})
    c.drain(leader)
    assert p.role == LOOKING
    assert "not established, and the links to a quorum of voters are gone" in c.all_events(leader)


def test_member_elected_after_its_voters_links_closed_steps_down_at_once():
    """The CI case: the survivor is elected on votes that arrived just before the
    others stopped, so their links closed while it was still looking; the transport
    tells it on becoming leader. A member whose link never came up (at start the
    quorum links connect while the election runs) is not counted as gone."""
    c, leader, f1, f2 = _leader_elect()
    p = c.peers[leader]
    p.unreachable(set())
    p.unreachable({f1})
    c.drain(leader)
    assert p.role == LEADING
    p.unreachable({f1, f2})
    c.drain(leader)
    assert p.role == LOOKING


def test_an_established_leader_ignores_unreachable():
    """Once established, a leader keeps the rules it had: learners in sync (their own
    disconnects), syncLimit."""
    c = Cluster([1, 2, 3])
    leader = c.settle()
    p = c.peers[leader]
    p.unreachable(set(c.ids) - {leader})
    c.drain(leader)
    assert p.role == LEADING


def _new_leader_with_unsynced_history():
    """Five voters led by 5; five txns committed, the last two not durable at member 4
    (its disk stalls); 5 goes down and 4 -- the highest id, with as long a log as
    anyone -- is elected while the others sync to it. Returns (cluster, the txns'
    zxids, the epoch member 4 held before)."""
    c = Cluster([1, 2, 3, 4, 5])
    assert c.settle() == 5
    c.auto_fsync = False
    old = c.peers[5]
    zs = [old.propose(b"v%d" % k) for k in range(3)]
    c.drain(5)
    c.run()
    for i in (1, 2, 3, 4, 5):
        c.fsync(i)
    c.run()
    zs += [old.propose(b"v%d" % k) for k in (3, 4)]  # member 4's disk stalls on these
    c.drain(5)
    c.run()
    for i in (1, 2, 3, 5):
        c.fsync(i)
    c.run()
    c.tick()
    assert old.committed_zxid == zs[-1]
    assert zs[3] not in [z for z, _ in c.commits[4]]  # logged at 4, not durable there
    epoch_before = c.stores[4].current_epoch
    c.down.add(5)
    for _ in range(60):
        c.tick()
        for i in (1, 2, 3):
            c.fsync(i)
        if c.peers[4].established:
            break
    lead = c.peers[4]
    assert lead.established and lead.role == LEADING and lead.epoch > epoch_before
    return c, zs, epoch_before


def test_new_leader_serves_only_once_its_own_history_is_applied():
    """A quorum of followers can establish a new epoch while the new leader's own log
    is not durable yet (a slow disk): its tree then lacks txns of its history that
    are committed now, and a write prepared against it would undo them (found by the
    whole-server simulation, seed 75: versions went back). It serves, and proposes,
    only once its own log is durable and those txns are applied."""
    c, zs, _ = _new_leader_with_unsynced_history()
    lead = c.peers[4]
    assert zs[3] not in [z for z, _ in c.commits[4]]
    assert not lead.serving and not c.readies[4][-1].serving
    with pytest.raises(NotLeader):
        lead.propose(b"x")
    assert "not serving until its own log is durable" in c.all_events(4)
    c.fsync(4)
    assert lead.serving
    assert [z for z, _ in c.commits[4]][-2:] == zs[3:]
    # the Ready that says "serving" carries those commits (the host applies them first)
    rd = next(r for r in c.readies[4] if r.serving and r.role == LEADING)
    assert rd.commit and rd.commit[-1][0] == zs[-1]
    assert lead.propose(b"x") > zs[-1]


def test_new_leader_takes_the_epoch_as_current_only_with_its_history_durable():
    """Its current epoch is what its votes claim: taken before its own log held the
    epoch's initial history, a leader that then lost its unsynced tail (a failed
    write, a power loss) came back claiming the new epoch with a shorter history,
    won the next election and truncated committed txns away on the members that had
    them (found by the whole-server simulation, seed 1341)."""
    c, _, epoch_before = _new_leader_with_unsynced_history()
    lead = c.peers[4]
    # the followers hold the history durably and took the epoch; the leader not yet
    assert all(c.stores[i].current_epoch == lead.epoch for i in (1, 2, 3))
    assert c.stores[4].current_epoch == epoch_before
    assert lead._self_vote()[0] == epoch_before
    c.fsync(4)
    assert c.stores[4].current_epoch == lead.epoch
