"""Quotas and the tree digest against Apache ZooKeeper 3.8.

* quota stats (``/zookeeper/quota/<path>/zookeeper_stats``) after creates, deletes,
  setData and multi, soft limits, hard limits not enforced (the shared pair) and
  enforced (``enforceQuota=true``, a pair of its own), delquota -- transcripts equal;
* zkCli.sh ``setquota`` / ``listquota`` / ``delquota`` print the same against both;
* the digest: ZooKeeper's ``hash`` value at a zxid equals zabby's digest function over
  ZooKeeper's own tree as a client reads it, and zabby's ``hash`` equals the same function
  over zabby's tree.  (The two servers' values themselves differ: ctime/mtime come from
  each server's clock and ephemeralOwner from its session ids, all inside the digest.)
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from zabby.testing.differential import MultiOp as M
from zabby.testing.differential import Runner
from zabby.testing.pytest_plugin import require_tool
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.tree.digest import signed, stat_digest
from zabby.wire import CreateRequest, Op
from zabby.wire.records import PathWatchRequest, SetDataRequest

from .conftest import DIFF_CFG, SUPER_PASSWORD, SUPER_USER, _check, start_pair

pytestmark = pytest.mark.differential

ZKCLI = os.environ.get("ZABBY_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
Q = "/zookeeper/quota"


def setquota(r: Runner, s: str, path: str, limits: bytes) -> None:
    """zkCli's setquota as requests: the quota node's parents, limits, then stats."""
    q = Q
    for part in path.strip("/").split("/"):
        q += "/" + part
        r.create(s, q)
    r.create(s, f"{q}/zookeeper_limits", limits)
    r.create(s, f"{q}/zookeeper_stats", b"count=0,bytes=0")
    r.get(s, f"{q}/zookeeper_stats")


def delquota(r: Runner, s: str, path: str) -> None:
    r.delete(s, f"{Q}{path}/zookeeper_limits")
    r.delete(s, f"{Q}{path}/zookeeper_stats")
    parts = path.strip("/").split("/")
    while parts:
        r.delete(s, Q + "/" + "/".join(parts))
        parts.pop()


def scenario_quota_stats(r: Runner) -> None:
    b = r.base
    st = f"{Q}{b}/q/zookeeper_stats"
    r.session("a")
    r.create("a", f"{b}/q", b"12345")
    r.create("a", f"{b}/q/pre", b"ab")
    # soft limits and hard limits, none enforced on this pair: every write passes
    setquota(r, "a", f"{b}/q", b"count=3,bytes=10=;byteHardLimit=12;countHardLimit=4")
    for i in range(4):
        r.create("a", f"{b}/q/n{i}", b"xyz")
        r.get("a", st)
    r.set("a", f"{b}/q/pre", b"abcdefgh")
    r.get("a", st)
    r.set("a", f"{b}/q", b"")
    r.delete("a", f"{b}/q/n0")
    r.get("a", st)
    r.multi("a", [M.create(f"{b}/q/m", b"123"), M.set(f"{b}/q/n1", b""), M.delete(f"{b}/q/n2")])
    r.get("a", st)
    r.multi("a", [M.create(f"{b}/q/m2", b"123"), M.delete(f"{b}/q/none")])  # fails whole
    r.get("a", st)
    r.create("a", f"{b}/q/m/deep", b"1", flags=1)  # ephemeral, sequential below
    r.create("a", f"{b}/q/m/deep-", b"22", flags=3)
    r.get("a", st)
    r.get("a", f"{Q}{b}/q/zookeeper_limits")
    r.children("a", f"{Q}{b}/q")
    r.close("a")  # the ephemerals go: counted out
    r.session("b")
    r.get("b", st)
    # a second quota deeper down: only the deepest counts
    setquota(r, "b", f"{b}/q/m", b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1")
    r.create("b", f"{b}/q/m/x", b"1234")
    r.get("b", st)
    r.get("b", f"{Q}{b}/q/m/zookeeper_stats")
    # delquota: the bookkeeping stops
    delquota(r, "b", f"{b}/q/m")
    delquota(r, "b", f"{b}/q")
    r.create("b", f"{b}/q/after", b"1")
    r.exists("b", st)
    r.children("b", Q)


@pytest.fixture
def open_quota_root(diff_pair):
    """/zookeeper/quota world-writable again on the shared pair (test_scenarios makes it
    read-only), set by the super user outside the compared transcripts."""
    from kazoo.client import KazooClient
    from kazoo.security import OPEN_ACL_UNSAFE as KAZOO_OPEN

    for srv in diff_pair:
        zk = KazooClient(hosts=srv.hosts, timeout=10.0,
                         auth_data=[("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")])
        zk.start(timeout=15)
        try:
            zk.set_acls(Q, KAZOO_OPEN)
        finally:
            zk.stop()
            zk.close()
    return diff_pair


def test_quota_stats(open_quota_root, differential):
    differential(scenario_quota_stats)


@pytest.fixture(scope="module")
def enforce_pair(tmp_path_factory):
    ref, cand = start_pair(tmp_path_factory, "quota-enforce",
                           **dict(DIFF_CFG, enforceQuota=True, **{"admin.enableServer": True}))
    try:
        yield ref, cand
    finally:
        cand.stop()
        ref.stop()


def scenario_quota_enforced(r: Runner) -> None:
    b = r.base
    st = f"{Q}{b}/h/zookeeper_stats"
    r.session("a")
    r.create("a", f"{b}/h", b"12")
    r.create("a", f"{b}/s", b"")
    setquota(r, "a", f"{b}/h", b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3")
    r.create("a", f"{b}/h/1", b"1234")
    r.create("a", f"{b}/h/2", b"")
    r.create("a", f"{b}/h/3", b"")  # count 4 > 3: refused, nothing changes
    r.create("a", f"{b}/h/3", b"", flags=2)  # sequential, refused too
    r.get("a", st)
    r.exists("a", f"{b}/h/3")
    r.set("a", f"{b}/h/1", b"123456789")  # 2 + 9 > 10
    r.set("a", f"{b}/h/1", b"123456789", version=5)  # the quota is checked before the version
    r.set("a", f"{b}/h/1", b"12345678", version=5)
    r.set("a", f"{b}/h/1", b"12345678")  # exactly 10
    r.set("a", f"{b}/h", b"")  # shrinking passes
    r.get("a", st)
    r.multi("a", [M.set(f"{b}/h/2", b"1"), M.create(f"{b}/h/4")])
    r.multi("a", [M.delete(f"{b}/h/2"), M.create(f"{b}/h/4")])  # checked on the applied stats
    r.get("a", st)
    r.delete("a", f"{b}/h/1")
    r.create("a", f"{b}/h/5", b"12345")
    r.get("a", st)
    # soft limits only: writes pass (ZooKeeper logs a warning)
    setquota(r, "a", f"{b}/s", b"count=1,bytes=1")
    r.create("a", f"{b}/s/1", b"123")
    r.set("a", f"{b}/s", b"1234")
    r.get("a", f"{Q}{b}/s/zookeeper_stats")
    # delquota -n/-N style: the limits rewritten without the hard limit
    r.set("a", f"{Q}{b}/h/zookeeper_limits", b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1")
    r.create("a", f"{b}/h/6")
    r.create("a", f"{b}/h/7", b"123456789")
    r.get("a", st)
    delquota(r, "a", f"{b}/h")
    r.create("a", f"{b}/h/8", b"123456789")
    r.get("a", f"{b}/h/8")
    # limits StatsTrack cannot parse: the write fails as ZooKeeper's prep fails
    r.set("a", f"{Q}{b}/s/zookeeper_limits", b"count=two")
    r.create("a", f"{b}/s/2")
    r.set("a", f"{b}/s", b"")
    r.get("a", f"{Q}{b}/s/zookeeper_stats")
    # (readable again: ZooKeeper's quota metrics in mntr fail on such a node)
    r.set("a", f"{Q}{b}/s/zookeeper_limits", b"count=1,bytes=1")


def test_quota_enforced(enforce_pair):
    _check(enforce_pair, scenario_quota_enforced, "/quota_enforced")


def test_quota_metrics_in_mntr(enforce_pair):
    """QuotaMetricsUtils' gauge sets and the QUOTAEXCEEDED counter set, in mntr."""
    got = []
    for srv in enforce_pair:
        with RawClient(srv.host, srv.port) as c:
            for path, data in (("/qm", b"abc"), ("/qm/x", b"12"), (f"{Q}/qm", b""),
                               (f"{Q}/qm/zookeeper_limits", b"count=5,bytes=-1=;byteHardLimit=9"),
                               (f"{Q}/qm/zookeeper_stats", b"count=0,bytes=0"),
                               ("/qm/y", b"12345"), ("/qm/z", b"")):
                c.request(Op.CREATE, CreateRequest(path, data, OPEN_ACL_UNSAFE, 0))
        got.append(sorted(ln for ln in srv.four_letter_word("mntr").splitlines()
                          if ln.startswith("zk_qm_")))
    assert got[0] == [
        "zk_qm_quota_bytes_limit_per_namespace\t9", "zk_qm_quota_bytes_usage_per_namespace\t5",
        "zk_qm_quota_count_limit_per_namespace\t5", "zk_qm_quota_count_usage_per_namespace\t3",
        "zk_qm_quota_exceeded_error_per_namespace\t1"], got[0]
    assert got[1] == got[0]


# ------------------------------------------------------------------ zkCli.sh
ZKCLI_QUOTA = """\
create /zq-cli
create /zq-cli/a 12345
setquota -n 5 /zq-cli
listquota /zq-cli
create /zq-cli/b xyz
setquota -B 100 /zq-cli
listquota /zq-cli
set /zq-cli/a 1
delete /zq-cli/b
setquota -N 1 /zq-cli
listquota /zq-cli
setquota -n 2 /zq-cli/a
setquota -b 10 /zq-cli
delquota -n /zq-cli
listquota /zq-cli
delquota /zq-cli
listquota /zq-cli
delquota /zq-cli
ls /zookeeper/quota
deleteall /zq-cli
quit
"""
_NOISE = ("SLF4J:", "Connecting to", "Welcome to ZooKeeper", "JLine", "WATCHER::",
          "WatchedEvent state:SyncConnected type:None", "WatchedEvent state:Closed")


def _zkcli(hosts: str) -> tuple[list[str], list[str]]:
    p = subprocess.run([ZKCLI, "-server", hosts], input=ZKCLI_QUOTA,
                       capture_output=True, text=True, timeout=90)

    def clean(text: str) -> list[str]:
        return [ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.startswith(_NOISE)]

    return clean(p.stdout), clean(p.stderr)


def test_zkcli_quota_commands(open_quota_root):
    require_tool(ZKCLI, "zookeeper")
    ref, cand = open_quota_root
    ref_out, ref_err = _zkcli(ref.hosts)
    assert "Output stat for /zq-cli count=2,bytes=5" in ref_out, ref_out
    out, err = _zkcli(cand.hosts)
    assert (out, err) == (ref_out, ref_err)


# ------------------------------------------------------------------- digest
def _tree_digest(c: RawClient) -> int:
    """DigestCalculator over the tree as a client reads it (no containers or TTLs,
    whose ephemeralOwner a client sees as 0)."""
    total = 0
    stack = ["/"]
    while stack:
        path = stack.pop()
        r = c.request(Op.GET_DATA, PathWatchRequest(path, False))
        assert r.err == 0, (path, r.err)
        data, s = r.body.data, r.body.stat
        cversion = (s.cversion + s.numChildren) // 2  # the persisted one: creations only
        total += stat_digest(path, data, s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime,
                             s.version, cversion, s.aversion, s.ephemeralOwner)
        kids = c.request(Op.GET_CHILDREN, PathWatchRequest(path, False)).body.children
        stack.extend(("" if path == "/" else path) + "/" + k for k in kids)
    return signed(total)


def _digest_at_boundary(server) -> tuple[int, int, int]:
    """Write until a zxid that is a multiple of 128, read the tree, return
    (zxid, the server's hash entry for it, the digest computed from the tree)."""
    with RawClient(server.host, server.port) as c:
        base = "/digest-diff"
        c.request(Op.CREATE, CreateRequest(base, b"", OPEN_ACL_UNSAFE, 0))
        c.request(Op.CREATE, CreateRequest(base + "/e", b"eph", OPEN_ACL_UNSAFE, 1))
        i = 0
        while True:
            i += 1
            if i % 3 == 0:
                r = c.request(Op.CREATE, CreateRequest(f"{base}/n{i}", b"v%d" % i, OPEN_ACL_UNSAFE, 0))
            else:
                r = c.request(Op.SET_DATA, SetDataRequest(base, b"x" * (i % 7), -1))
            assert r.err == 0
            if r.zxid % 128 == 0:
                break
            assert i < 400
        computed = _tree_digest(c)
        lines = server.four_letter_word("hash").splitlines()
    got = dict((int(z, 16), int(d)) for z, d in (ln.split(": ") for ln in lines))
    # the AdminServer's hash: the same history as ZxidDigest beans
    with urllib.request.urlopen(f"{server.admin_url}/hash", timeout=30) as resp:
        admin = json.loads(resp.read())
    assert admin["digests"] == [{"zxid": z, "digest_version": 2, "digest": d}
                                for z, d in got.items()], admin
    return r.zxid, got.get(r.zxid), computed


def test_digest_matches_zookeeper_algorithm(enforce_pair):
    ref, cand = enforce_pair
    zxid, reported, computed = _digest_at_boundary(ref)
    assert reported == computed, (hex(zxid), reported, computed)
    zxid, reported, computed = _digest_at_boundary(cand)
    assert reported == computed, (hex(zxid), reported, computed)
