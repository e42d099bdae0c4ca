"""Quotas (zookeeper_stats kept current, enforceQuota) and the tree digest, on the tree."""

from __future__ import annotations

import logging
import random

from treeutil import OPEN, Driver

from zabby.tree import DataTree
from zabby.tree.digest import node_digest, signed
from zabby.tree.snapshot import restore, snapshot_items
from zabby.wire.constants import Err, Op
from zabby.wire.records import CreateRequest, DeleteRequest, SetDataRequest

LIMITS = "/zookeeper/quota/a/zookeeper_limits"
STATS = "/zookeeper/quota/a/zookeeper_stats"


def setquota(d: Driver, path: str, limits: bytes) -> None:
    """What zkCli's setquota writes (parents, limits, then stats as count=0,bytes=0)."""
    q = "/zookeeper/quota"
    for part in path.strip("/").split("/"):
        q += "/" + part
        d.create(q)
    assert d.create(q + "/zookeeper_limits", limits).err == 0
    assert d.create(q + "/zookeeper_stats", b"count=0,bytes=0").err == 0


def data(d: Driver, path: str) -> bytes:
    return d.tree.get_node(path).data


def test_stats_follow_creates_deletes_set_data_and_multi():
    d = Driver()
    d.create("/a", b"12345")
    d.create("/a/b", b"xy")
    d.create("/other", b"zzz")
    setquota(d, "/a", b"count=10,bytes=-1")
    assert data(d, STATS) == b"count=2,bytes=7"  # recounted when the stats node appears
    d.create("/a/c", b"abc")
    assert data(d, STATS) == b"count=3,bytes=10"
    d.set_data("/a/b", b"")
    assert data(d, STATS) == b"count=3,bytes=8"
    d.delete("/a/c")
    assert data(d, STATS) == b"count=2,bytes=5"
    d.create("/other/x", b"not counted")
    assert data(d, STATS) == b"count=2,bytes=5"
    r = d.multi([(Op.CREATE, CreateRequest("/a/m1", b"1", OPEN, 0)),
                 (Op.SET_DATA, SetDataRequest("/a", b"", -1)),
                 (Op.DELETE, DeleteRequest("/a/b", -1))])
    assert r.multi_err == 0
    assert data(d, STATS) == b"count=2,bytes=1"
    # a failed multi changes nothing
    r = d.multi([(Op.CREATE, CreateRequest("/a/m2", b"22", OPEN, 0)),
                 (Op.DELETE, DeleteRequest("/nope", -1))])
    assert r.multi_err == Err.NONODE
    assert data(d, STATS) == b"count=2,bytes=1"
    # the stats node's own stat is untouched (ZooKeeper rewrites its data only)
    assert d.stat(STATS).version == 0
    # delquota: the limits node goes, so does the bookkeeping
    d.delete(LIMITS)
    d.create("/a/after", b"zz")
    assert data(d, STATS) == b"count=2,bytes=1"
    assert d.tree.quota_paths() == set()


def test_only_the_deepest_quota_counts_and_extra_keys_are_kept():
    d = Driver()
    d.create("/a")
    d.create("/a/b")
    setquota(d, "/a", b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5")
    setquota(d, "/a/b", b"count=3,bytes=-1")
    d.tree.get_node(STATS).data = b"count=2,bytes=0=;zeta=7;alpha=1"
    d.create("/a/b/c", b"xyz")
    assert data(d, "/zookeeper/quota/a/b/zookeeper_stats") == b"count=2,bytes=3"
    assert data(d, STATS) == b"count=2,bytes=0=;zeta=7;alpha=1"  # not the deepest: untouched
    d.create("/a/x", b"x")
    assert data(d, STATS) == b"count=3,bytes=1=;alpha=1;zeta=7"


def test_hard_limits_refuse_only_when_enforced(caplog):
    d = Driver()
    d.create("/a", b"")
    setquota(d, "/a", b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3")
    d.create("/a/1", b"12345")
    d.create("/a/2", b"")
    # not enforced: writes pass, stats go over
    d.create("/a/3", b"")
    assert data(d, STATS) == b"count=4,bytes=5"
    d.delete("/a/3")
    d.tree.enforce_quota = True
    zxid = d.tree.last_zxid
    with caplog.at_level(logging.WARNING, logger="zabby.quota"):
        r = d.create("/a/3", b"")
    assert r.err == Err.QUOTAEXCEEDED
    assert d.stat("/a/3") is None and data(d, STATS) == b"count=3,bytes=5"
    assert d.tree.last_zxid == zxid + 1  # an error txn, as ZooKeeper
    assert "Quota exceeded: /a [current count=4, hardCountLimit=3]" in caplog.text
    # bytes: 5 + 6 > 10 refused, a shrink passes, a setData checked before its version
    assert d.set_data("/a/1", b"12345678901").err == Err.QUOTAEXCEEDED
    assert d.set_data("/a/1", b"12345678901", version=7).err == Err.QUOTAEXCEEDED
    assert d.set_data("/a/1", b"1").err == 0
    assert data(d, STATS) == b"count=3,bytes=1"
    # in a multi the failing op fails the whole multi
    r = d.multi([(Op.SET_DATA, SetDataRequest("/a/2", b"ab", -1)),
                 (Op.CREATE, CreateRequest("/a/4", b"", OPEN, 0))])
    assert r.multi_err == Err.QUOTAEXCEEDED
    assert data(d, STATS) == b"count=3,bytes=1"


def test_soft_limits_only_log(caplog):
    d = Driver()
    d.create("/a")
    setquota(d, "/a", b"count=2,bytes=4")
    d.tree.enforce_quota = True
    with caplog.at_level(logging.WARNING, logger="zabby.quota"):
        assert d.create("/a/1", b"123456").err == 0
    assert data(d, STATS) == b"count=2,bytes=6"
    assert "Quota exceeded: /a [current bytes=6, softByteLimit=4]" in caplog.text
    assert d.create("/a/2").err == 0
    assert "[current count=3, softCountLimit=2]" in caplog.text


def test_restore_recounts_stats_and_finds_quotas():
    d = Driver()
    d.create("/a", b"1")
    setquota(d, "/a", b"count=5,bytes=-1")
    d.create("/a/b", b"22")
    d.tree.get_node(STATS).data = b"count=99,bytes=99"  # whatever was saved
    t = d.tree
    t2 = restore(list(snapshot_items(t)), dict(t.sessions), t.last_zxid)
    assert t2.get_node(STATS).data == b"count=2,bytes=3"
    assert t2.quota_paths() == {"/a"}
    assert t2.digest() == t.digest()
    d2 = Driver(t2)
    d2.create("/a/c", b"4444")
    assert t2.get_node(STATS).data == b"count=3,bytes=7"


def full_digest(tree: DataTree) -> int:
    return signed(sum(node_digest(p, n) for p, n in tree.iter_nodes()))


def test_digest_is_kept_equal_to_a_full_recount():
    rnd = random.Random(7)
    d = Driver()
    assert d.tree.digest() == full_digest(d.tree)
    paths = ["/"]
    for _ in range(600):
        k = rnd.random()
        if k < 0.45 or len(paths) < 3:
            parent = rnd.choice(paths)
            p = f"{parent.rstrip('/')}/n{rnd.randrange(50)}"
            if d.create(p, rnd.randbytes(rnd.randrange(5))).err == 0:
                paths.append(p)
        elif k < 0.7:
            d.set_data(rnd.choice(paths), rnd.randbytes(3))
        elif k < 0.8:
            d.set_acl(rnd.choice(paths), OPEN)
        else:
            p = rnd.choice(paths[1:])
            if d.delete(p).err == 0:
                paths.remove(p)
        if rnd.random() < 0.05:
            assert d.tree.digest() == full_digest(d.tree)
    assert d.tree.digest() == full_digest(d.tree)
    # every 128th zxid is in the history, with the digest it had then
    hist = d.tree.digest_log()
    assert [z for z, _ in hist] == list(range(128, d.tree.last_zxid + 1, 128))


def test_digest_ignores_the_zookeeper_subtree_and_can_be_off():
    d = Driver()
    before = d.tree.digest()
    d.create("/zookeeper/quota/x", b"abc")
    assert d.tree.digest() == before
    d.tree.digest_enabled = False
    d.create("/y")
    assert d.tree.digest() == 0
    d.tree.digest_enabled = True
    assert d.tree.digest() == full_digest(d.tree)


def test_statstrack_text_as_zookeeper_reads_and_writes_it():
    from zabby.tree import quota as qt

    st = qt.parse_stats(b"count=1,bytes=2=;countHardLimit=-1;byteHardLimit=3")
    assert st == {"count": 1, "bytes": 2, "countHardLimit": -1, "byteHardLimit": 3}
    assert qt.format_stats(st) == b"count=1,bytes=2=;byteHardLimit=3;countHardLimit=-1"
    assert qt.format_stats({"count": 0, "bytes": 0}) == b"count=0,bytes=0"
    assert qt.parse_stats(b"") == {} and qt.parse_stats(None) == {}
    assert qt.parse_stats(b"count=4,,;bytes=5") == {"count": 4, "bytes": 5}
    for bad in (b"count=", b"count=x", b"count=1,bytes", b"count= 1"):
        try:
            qt.parse_stats(bad)
        except qt.StatsError:
            continue
        raise AssertionError(bad)
    assert qt.top_namespace("/a/b") == "a" and qt.top_namespace("/") is None
    assert qt.normalize("/a/ /b") == "/a/b"
    assert qt.max_prefix({"/a", "/a/b"}, "/a/b/c") == "/a/b"
    assert qt.max_prefix({"/a", "/a/b"}, "/a/bc") == "/a"
    assert qt.max_prefix({"/a"}, "/b") is None


def test_malformed_limits_refuse_the_write_when_enforced():
    d = Driver()
    d.create("/a")
    setquota(d, "/a", b"count=2,bytes=-1")
    d.tree.get_node(LIMITS).data = b"count=two"
    d.tree.enforce_quota = True
    assert d.create("/a/x").err == Err.MARSHALLINGERROR  # ZooKeeper: "Failed to process"
    d.tree.enforce_quota = False
    assert d.create("/a/x").err == 0
