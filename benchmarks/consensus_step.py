"""CPU of the consensus step alone (`zabby.consensus.peer.Peer`, no I/O), per write.

    python benchmarks/consensus_step.py [--writes 20000] [--size 200]

A settled 3-voter cluster of in-process Peers (tests/consensus/consensus_harness.py)
takes one write at a time: the leader proposes and yields its Ready, a follower takes
the ENTRIES message and yields its Ready, and the leader takes that follower's ACK and
its own durable log. Prints the mean of each step. It shows how small a share of a
member's CPU per write (`cpu_per_write.py`) the consensus step is. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "consensus"))

from consensus_harness import Cluster  # noqa: E402

import zabby.consensus.peer as peer_module  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=20000)
    ap.add_argument("--size", type=int, default=200, help="txn payload bytes")
    args = ap.parse_args(argv)
    c = Cluster([1, 2, 3])
    lid = c.settle()
    fid = next(i for i in c.ids if i != lid)
    leader, follower = c.peers[lid], c.peers[fid]
    payload = b"x" * args.size
    propose = entries = ack = 0.0
    clock = time.perf_counter
    for _ in range(args.writes):
        t0 = clock()
        z = leader.propose(payload)
        out = leader.ready().messages
        t1 = clock()
        for to, data in out:
            if to == fid:
                follower.receive(lid, data)
        follower.ready()
        t2 = clock()
        follower.persisted(z)
        acks = [data for to, data in follower.ready().messages if to == lid]
        t3 = clock()
        for data in acks:
            leader.receive(fid, data)
        leader.persisted(z)
        commits = [data for to, data in leader.ready().messages if to == fid]
        t4 = clock()
        for data in commits:
            follower.receive(lid, data)
        follower.ready()
        propose += t1 - t0
        entries += t2 - t1
        ack += t4 - t3
    n = args.writes / 1e6
    compiled = peer_module.__file__.endswith(".so")
    print(f"Peer ({'compiled' if compiled else 'pure Python'}), {args.writes} writes of "
          f"{args.size} B: leader propose + ready {propose / n:.1f} us, follower ENTRIES + "
          f"ready {entries / n:.1f} us, leader ACK + own durable + ready {ack / n:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
