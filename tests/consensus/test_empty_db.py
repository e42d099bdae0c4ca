"""db.autocreate=false: a member whose data directory was emptied takes no part in
elections until a leader has synced it (Peer.distrust_empty_db; docs/OPERATING.md)."""

from consensus_harness import Cluster, entries, store_with, zx

from zabby.consensus import LEADING
from zabby.consensus.sim import MemStorage


def _cluster(distrust: bool) -> Cluster:
    """1 has every write (4 entries); 2 fell behind (2 entries); 3 was wiped. 1 is down."""
    base = entries(zx(1, 1), zx(1, 2))
    stores = {1: store_with(base + entries(zx(1, 3), zx(1, 4)), accepted=1, current=1),
              2: store_with(base, accepted=1, current=1),
              3: MemStorage()}
    c = Cluster([1, 2, 3], stores=stores)
    c.down.add(1)
    if distrust:
        c.queue = [q for q in c.queue if q[0] != 3]  # its starting votes, not yet delivered
        c.peers[3].distrust_empty_db()
        c.drain(3)
    return c


def test_a_wiped_member_and_a_laggard_elect_the_laggard_by_default():
    c = _cluster(distrust=False)
    assert c.settle() == 2  # the control: entries (1, 3) and (1, 4) are lost this way


def test_an_untrusted_empty_member_elects_nobody_then_follows():
    c = _cluster(distrust=True)
    for _ in range(40):
        c.tick()
        assert all(c.peers[i].role != LEADING for i in (2, 3)), c.all_events(2)
    assert c.peers[3].untrusted_empty
    # the member with every write comes back: it leads, and 3 follows it once synced
    c.down.discard(1)
    assert c.settle() == 1
    assert not c.peers[3].untrusted_empty
    assert c.stores[3].applied == c.stores[1].applied
    assert [z for z, _ in c.stores[3].applied] == [zx(1, 1), zx(1, 2), zx(1, 3), zx(1, 4)]
