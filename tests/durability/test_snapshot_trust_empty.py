"""snapshot.trust.empty, as ZooKeeper 3.8's FileTxnSnapLog.restore: a data directory
with txn logs but no snapshot refuses to start unless the key is true; an empty one
starts (and, like ZooKeeper, takes a snapshot at once, so later starts find one)."""

from __future__ import annotations

import os

import pytest
from kazoo.client import KazooClient

from zabby.server.config import load_config
from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.servers import ServerStartError


def _snapshots(srv) -> list[str]:
    return sorted(f for f in os.listdir(srv.data_dir / "version-2") if f.startswith("snapshot."))


def _remove_snapshots(srv) -> None:
    names = _snapshots(srv)
    assert names
    for name in names:
        os.remove(srv.data_dir / "version-2" / name)


@pytest.mark.parametrize("kind", ["zookeeper", "zabby"])
def test_empty_dir_starts_and_logs_without_snapshot_refuse_unless_trusted(tmp_path, kind):
    """The same steps on Apache ZooKeeper 3.8 and on zabby, the same outcomes."""
    if kind == "zookeeper":
        require_zookeeper()
        srv = ZooKeeperServer(tmp_path, tickTime=500)
    else:
        srv = ZabbyServer(tmp_path, tickTime=500)
    try:
        # a brand-new directory starts, with a snapshot of the empty tree at zxid 0
        assert _snapshots(srv) == ["snapshot.0"]
        zk = KazooClient(hosts=srv.hosts)
        zk.start(timeout=15)
        zk.create("/kept", b"v")
        zk.stop()
        zk.close()
        srv.stop()
        _remove_snapshots(srv)
        # txn logs and no snapshot: ZooKeeper's refusal, naming the way out
        with pytest.raises(ServerStartError):
            srv.start()
        text = srv.log_path.read_text()
        assert "No snapshot found, but there are log entries. Something is broken!" in text
        if kind == "zabby":
            assert "snapshot.trust.empty=true" in text  # the way out, named
        # trusted: the logs are replayed from an empty tree, and a snapshot is taken
        srv.cfg["snapshot.trust.empty"] = "true"
        srv.start()
        assert "This should only be allowed during upgrading." in srv.log_path.read_text()
        zk = KazooClient(hosts=srv.hosts)
        zk.start(timeout=15)
        assert zk.get("/kept")[0] == b"v"
        zk.stop()
        zk.close()
        srv.stop()
        assert _snapshots(srv)  # taken when it started
        # the next start needs no trust
        del srv.cfg["snapshot.trust.empty"]
        srv.start()
        assert srv.ruok()
    finally:
        srv.stop()


def test_config_keys(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=2181\nsnapshot.trust.empty=true\n"
                   "zabby.keeperExtensions=true\n")
    c = load_config(str(cfg))
    assert c.snapshot_trust_empty and c.keeper_extensions and not c.unknown
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=2181\n")
    c = load_config(str(cfg))
    assert not c.snapshot_trust_empty and not c.keeper_extensions
