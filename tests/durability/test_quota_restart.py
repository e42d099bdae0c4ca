"""Quota stats and limits survive a crash: snapshot + log replay give the same
zookeeper_stats, and a hard limit is still enforced after the restart."""

from __future__ import annotations

from zabby.testing import ZabbyServer
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.wire import CreateRequest, Err, Op
from zabby.wire.records import DeleteRequest, PathWatchRequest, SetDataRequest

STATS = "/zookeeper/quota/q/zookeeper_stats"


def _create(c: RawClient, path: str, data: bytes = b"") -> int:
    return c.request(Op.CREATE, CreateRequest(path, data, OPEN_ACL_UNSAFE, 0)).err


def _get(c: RawClient, path: str) -> bytes:
    r = c.request(Op.GET_DATA, PathWatchRequest(path, False))
    assert r.err == 0, r.err
    return r.body.data


def test_stats_survive_snapshot_and_replay(tmp_path):
    srv = ZabbyServer(tmp_path / "z", snapCount=16, enforceQuota=True)
    try:
        with RawClient(srv.host, srv.port) as c:
            assert _create(c, "/q", b"root") == 0
            assert _create(c, "/zookeeper/quota/q") == 0
            assert _create(c, "/zookeeper/quota/q/zookeeper_limits",
                           b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=40") == 0
            assert _create(c, STATS, b"count=0,bytes=0") == 0
            for i in range(40):  # several snapshots go by (snapCount=16)
                assert _create(c, f"/q/n{i}", b"x" * (i % 5)) == 0
                if i % 4 == 0:
                    assert c.request(Op.SET_DATA, SetDataRequest(f"/q/n{i}", b"yy", -1)).err == 0
                if i % 6 == 5:
                    assert c.request(Op.DELETE, DeleteRequest(f"/q/n{i}", -1)).err == 0
            before = _get(c, STATS)
        assert before == b"count=35,bytes=74"
        assert list(srv.data_dir.rglob("snapshot*")), "no snapshot was taken"
        srv.kill()
        srv.start()
        with RawClient(srv.host, srv.port) as c:
            assert _get(c, STATS) == before
            for i in range(40, 45):
                assert _create(c, f"/q/n{i}") == 0
            # 40 counted now: the hard limit is still known after the restart
            assert _create(c, "/q/over") == Err.QUOTAEXCEEDED
            assert _get(c, STATS) == b"count=40,bytes=74"
    finally:
        srv.stop()
