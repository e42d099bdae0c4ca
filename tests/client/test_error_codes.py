"""Error codes the standalone servers of test_client.py do not produce.

* QuotaExceeded (-125): Apache ZooKeeper 3.8 enforces a hard quota when started with
  ``-Dzookeeper.enforceQuota=true``; zabby has no quota enforcement, so it is skipped.
* SessionMoved (-118) and Throttled (-127): no server here sends them in a reply
  (ZooKeeper closes the connection on a moved session instead of answering -118; its
  throttling needs a loaded server). Their mapping is tested through the wire codec: a
  fake server that answers every request with that code, so the bytes the client
  decodes are the real frames.
"""

from __future__ import annotations

import pytest

from zabby.client import Client, ZookeeperError
from zabby.client.exceptions import QuotaExceededError, SessionMovedError, ThrottledOpError
from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.wire.constants import Err
from zabby.wire.protocol import encode_reply

from .conftest import arun, fake_server


async def _fake_server(err: int):
    """Accepts sessions; answers every request but pings with ``err``."""
    return await fake_server(lambda xid, w: w.write(bytes(encode_reply(xid, 7, err))))


@pytest.mark.parametrize("err,cls", [(Err.SESSIONMOVED, SessionMovedError),
                                     (Err.THROTTLEDOP, ThrottledOpError),
                                     (Err.QUOTAEXCEEDED, QuotaExceededError)])
def test_error_code_mapping_through_codec(err, cls):
    async def body():
        srv = await _fake_server(err)
        port = srv.sockets[0].getsockname()[1]
        try:
            async with Client(f"127.0.0.1:{port}", timeout=5.0) as zk:
                assert zk.session_id == 0x1234
                with pytest.raises(cls) as ei:
                    await zk.set("/p", b"x")
                assert ei.value.code == err and ei.value.path == "/p"
                assert isinstance(ei.value, ZookeeperError)
                with pytest.raises(cls):  # a read maps the same way
                    await zk.get("/q")
                assert zk.connected  # an error reply is no connection failure
        finally:
            srv.close()
            await srv.wait_closed()
    arun(body())


@pytest.mark.parametrize("kind", ["zabby", "zookeeper"])
def test_quota_exceeded(kind, tmp_path):
    if kind == "zookeeper":
        require_zookeeper()
    cls = ZooKeeperServer if kind == "zookeeper" else ZabbyServer
    srv = cls(tmp_path, tickTime=500, jvm_flags=["-Dzookeeper.enforceQuota=true"])
    try:
        async def body():
            async with Client(srv.hosts, timeout=10.0) as zk:
                await zk.create("/q", b"")
                # a hard limit of 2 nodes under /q (itself included), as setquota -N
                # writes it; ZooKeeper computes zookeeper_stats when it is created
                await zk.create("/zookeeper/quota/q/zookeeper_limits",
                                b"count=-1,bytes=-1,countHardLimit=2,byteHardLimit=-1",
                                makepath=True)
                await zk.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
                await zk.create("/q/a")
                with pytest.raises(QuotaExceededError) as ei:
                    await zk.create("/q/b")
                assert ei.value.code == Err.QUOTAEXCEEDED
                assert await zk.get_children("/q") == ["a"]
        arun(body())
    finally:
        srv.stop()
