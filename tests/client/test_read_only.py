"""read_only=True: a member cut off from its quorum serves reads (Apache ZooKeeper's
read-only mode, ``readonlymode.enabled``; zabby has no read-only mode, so this runs on
ZooKeeper only). The client reports READ_ONLY; a write fails with NotReadOnlyCallError."""

from __future__ import annotations

import pytest

from zabby.client import Client, ConnectionState, NotReadOnlyCallError
from zabby.testing import ZooKeeperEnsemble
from zabby.testing.pytest_plugin import require_zookeeper

from .conftest import arun


def test_read_only_member(tmp_path):
    require_zookeeper()
    # a read-only server makes local sessions only (a global one is a write)
    ens = ZooKeeperEnsemble(tmp_path, 3, tickTime=500, localSessionsEnabled=True,
                            jvm_flags=["-Dreadonlymode.enabled=true"])
    try:
        async def setup():
            async with Client(ens.hosts) as zk:
                await zk.create("/ro", b"kept")
                await zk.sync("/ro")
        arun(setup())
        survivor = 1
        for i in (2, 3):
            ens.kill(i)

        async def body():
            zk = Client(ens.members[survivor].hosts, timeout=4.0, read_only=True)
            await zk.start(timeout=30)
            try:
                assert zk.state == ConnectionState.READ_ONLY and zk.connected_read_only
                assert (await zk.get("/ro"))[0] == b"kept"
                with pytest.raises(NotReadOnlyCallError):
                    await zk.create("/nope")
            finally:
                await zk.stop()
        arun(body())
    finally:
        ens.stop()
