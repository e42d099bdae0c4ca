"""mntr on a leader: zk_followers counts the learners connected, synced or not, as
ZooKeeper's leader.getLearners() does; zk_synced_followers only the synced voters."""

from __future__ import annotations

from types import SimpleNamespace

from zabby.ops.monitor import figures, mntr_pairs


class _Metrics:
    op_counts: dict = {}

    def __getattr__(self, name):  # every figure not given here: 0, summaries: none
        return None if name.endswith(("time", "latency", "loaded")) else 0


class _Peer:
    voters = {1, 2, 3}
    syncs_sent = {"DIFF": 0, "TRUNC": 0, "SNAP": 0}
    looking_count = 0
    peer_commits = 0
    phase = "broadcast"
    epoch = 1
    last_zxid = committed_zxid = 0x100000005

    def learner_count(self) -> int:
        return 2  # both followers connected ...

    def synced_learner_kinds(self) -> tuple[int, int, int]:
        return 1, 0, 0  # ... one of them still syncing

    def learner_acks(self) -> dict[int, int]:
        return {2: 0x100000005}


def test_followers_are_connected_learners_not_the_synced_ones():
    srv = SimpleNamespace(metrics=_Metrics(), peer=_Peer(), mode="leader", role="leading",
                          serving=True)
    pairs = dict(mntr_pairs(figures(srv, fds=(None, None))))
    assert pairs["followers"] == 2
    assert pairs["synced_followers"] == 1
    assert pairs["learners"] == 2
