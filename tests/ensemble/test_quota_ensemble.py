"""Quotas and the tree digest in an ensemble: every member keeps the same
zookeeper_stats and the same digest history (they apply the same txns), and a hard
limit is enforced whichever member the client writes through."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

from zabby.testing import ZabbyEnsemble

STATS = "/zookeeper/quota/q/zookeeper_stats"


@pytest.fixture
def quota_ensemble(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 3, tickTime=200, enforceQuota=True)
    try:
        yield ens
    finally:
        ens.stop()


def test_followers_keep_quota_stats_and_digest(quota_ensemble):
    members = list(quota_ensemble.members.values())
    clients = [KazooClient(hosts=m.hosts, timeout=6.0) for m in members]
    try:
        for c in clients:
            c.start(timeout=15)
        a = clients[0]
        a.create("/q", b"12")
        a.create("/zookeeper/quota/q", makepath=True)
        a.create("/zookeeper/quota/q/zookeeper_limits",
                 b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=73")
        a.create(STATS, b"count=0,bytes=0")
        for i in range(140):  # past zxid 0x...80: a digest history entry
            c = clients[i % 3]
            if i % 2:
                c.set("/q", b"x" * (i % 9))
            else:
                c.create(f"/q/n{i}", b"abc")
        tx = clients[1].transaction()
        tx.create("/q/t1", b"1")
        tx.delete("/q/n0")
        tx.commit()
        stats = set()
        for c in clients:
            c.sync("/")
            stats.add(c.get(STATS)[0])
        assert stats == {b"count=71,bytes=212"}, stats
        # the hard limit holds through any member (the leader prepares every write)
        clients[2].create("/q/fill", b"")
        clients[2].create("/q/fill2", b"")
        for c in clients:
            with pytest.raises(QuotaExceededError):
                c.create("/q/over")
        hashes = [m.four_letter_word("hash").splitlines() for m in members]
        common = set(hashes[0]) & set(hashes[1]) & set(hashes[2])
        assert common, hashes
        by_zxid = [dict(ln.split(": ") for ln in h) for h in hashes]
        for z in {z for d in by_zxid for z in d}:
            assert len({d[z] for d in by_zxid if z in d}) == 1, (z, by_zxid)
    finally:
        for c in clients:
            c.stop()
