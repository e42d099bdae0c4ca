"""snapshot.compression.method=gz: snapshots are written compressed and recovered."""

from kazoo.client import KazooClient

from zabby.storage import list_snapshots, read_snapshot_info
from zabby.testing import ZabbyServer


def test_compressed_snapshots_are_written_and_recovered(tmp_path):
    srv = ZabbyServer(tmp_path, snapCount=20, **{"snapshot.compression.method": "gz"})
    try:
        zk = KazooClient(hosts=srv.hosts)
        zk.start(timeout=15)
        for i in range(80):
            zk.create(f"/c{i}", b"v" * 200)
        zk.stop()
        srv.stop()
        snaps = list_snapshots(str(srv.data_dir))
        assert snaps, "no snapshot was taken"
        assert all(read_snapshot_info(p).compressed for _, p in snaps)
        srv.start()
        zk = KazooClient(hosts=srv.hosts)
        zk.start(timeout=15)
        try:
            assert len([c for c in zk.get_children("/") if c.startswith("c")]) == 80
            assert zk.get("/c79")[0] == b"v" * 200
        finally:
            zk.stop()
    finally:
        srv.stop()
