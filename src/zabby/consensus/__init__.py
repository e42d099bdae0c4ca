"""Zab (ZooKeeper Atomic Broadcast) as a pure, deterministic state machine.

No sockets, no clock, no threads; randomness only from the injected
``random.Random``. The server drives a :class:`Peer` like etcd raft's Node:

    peer = Peer(my_id, voters, observers, storage, rng=random.Random(), tick_limits=Limits())
    peer.tick()                    # every tickTime
    peer.receive(frm, raw_bytes)   # every peer message
    zxid = peer.propose(payload)   # leader only (raises NotLeader)
    peer.persisted(zxid)           # after fsync of appended entries up to zxid
    peer.snapshot_installed(zxid)  # after a snapshot handed out in Ready is durable
    rd = peer.ready()              # after any input: do what it says, in its order

Phases (as ZooKeeper 3.8 / the Zab paper):

* election: fast leader election; votes ordered by (current epoch, last zxid,
  server id); a vote wins with a quorum of voters (after a one-tick finalize
  wait unless every voter agrees); a LOOKING server joins an existing leader
  when a quorum of voters report following it and it reports leading.
* discovery: learners send FOLLOWERINFO(acceptedEpoch); once a quorum of
  voters has connected the leader proposes max(acceptedEpoch)+1 in LEADERINFO;
  learners persist it and reply ACKEPOCH(currentEpoch, lastZxid). A leader that
  sees a voter with a more recent (currentEpoch, lastZxid) than its own before
  the quorum gives up.
* synchronisation: per learner, DIFF (learner's last zxid is in our log),
  TRUNC (learner has entries we do not: truncate to the largest zxid of ours
  below its last, then DIFF) or SNAP (learner is behind our log's snapshot
  base), then NEWLEADER. The learner acks NEWLEADER once everything is on its
  disk, persisting currentEpoch first. A quorum of NEWLEADER acks establishes
  the leader and commits its initial history; UPTODATE then lets learners serve.
* broadcast: proposals pipelined and batched (ENTRIES), acknowledged
  cumulatively after fsync, committed in zxid order once a quorum of voters
  (the leader's own fsync included) has them. Observers get committed entries only.
* re-election: a learner whose leader sends a LOOKING vote from a newer round
  joins the election at once (ZooKeeper's learner sees the connection close); a
  leader that finds a follower ahead of it in discovery steps down voting for
  that follower; a leader that meets a voter which accepted an epoch >= its own
  (from a leader that never got going) steps down and the next epoch exceeds it
  (ZooKeeper would leave that voter locked out until some other election).
* liveness: leader PINGs every tick, learners answer with an ACK; a leader
  without a quorum of synced voters heard within syncLimit steps down; a leader
  not established within initLimit steps down; a learner not hearing from its
  leader for syncLimit (initLimit while syncing) goes LOOKING.

Refinements of the API in the issue (each for correctness):

* LogReader has ``snap_zxid`` (base of the log = the state the caller's tree
  was restored to at start; entries_after() is only asked for zxid >= it) and
  ``accepted_leader``. Ready.persist_epochs is an EpochState(accepted_epoch,
  current_epoch, accepted_leader): a server acknowledges an epoch only if it is
  newer than the one it accepted, or the same epoch from the same leader. ZooKeeper
  accepts an equal epoch from anyone, which lets two leaders that computed the
  same epoch both gather ACKEPOCH quorums when learners switch between them.
* Ready.serving: True once this server may serve clients (leader established,
  learner received UPTODATE); the role alone does not say so.
* The caller applies Ready in this order: persist_epochs (fsync) ->
  install_snapshot -> truncate_to (durable) -> append persist -> send messages
  -> apply commit -> log events. The first four must be visible through the
  LogReader before the next input (appends need not be fsynced yet).
* Commits are emitted only for entries that are durable locally (so the applied
  state is always a prefix of this server's durable log + snapshot), on
  learners and leader alike.
* The transport may drop, duplicate, delay and reorder. Learner<->leader
  traffic runs in sessions: the learner picks a random session id per connection
  attempt; leader messages carry (epoch, session, seq); a gap makes the learner
  start a new session (= ZooKeeper's reconnect + resync), stale sessions and
  old epochs are dropped with an event. Learner->leader ACKs are cumulative.
* Introspection: role, leader_id, epoch, serving, last_zxid, committed_zxid,
  applied_zxid, durable_zxid, accepted_epoch, current_epoch, established,
  learner_acks() (lag per learner for mntr).
"""

from .messages import MalformedMessage
from .peer import (
    FOLLOWING,
    LEADING,
    LOOKING,
    OBSERVING,
    Config,
    EpochState,
    Limits,
    LogReader,
    NotLeader,
    Peer,
    Ready,
    make_zxid,
    zxid_counter,
    zxid_epoch,
)

__all__ = [
    "FOLLOWING", "LEADING", "LOOKING", "OBSERVING", "Config", "EpochState", "Limits", "LogReader",
    "MalformedMessage", "NotLeader", "Peer", "Ready", "make_zxid", "zxid_counter", "zxid_epoch",
]
