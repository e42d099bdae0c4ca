"""The harness keeps a test server's disk use small (a full disk once failed a CI run)."""

from __future__ import annotations

from kazoo.client import KazooClient

from zabby.testing.pytest_plugin import TEST_PREALLOC_KB
from zabby.testing.servers import ZabbyServer


def _write_and_measure(srv: ZabbyServer) -> int:
    c = KazooClient(srv.hosts, timeout=10)
    c.start(timeout=15)
    try:
        c.create("/disk-use", b"x")
    finally:
        c.stop()
        c.close()
    logs = sorted(srv.data_dir.rglob("log.*"))
    assert logs, "the write left no txn log"
    return sum(p.stat().st_blocks * 512 for p in logs)


def test_a_test_server_preallocates_a_small_log(tmp_path):
    with ZabbyServer(tmp_path / "small") as srv:
        assert srv.cfg["preAllocSize"] == TEST_PREALLOC_KB
        used = _write_and_measure(srv)
    assert used <= TEST_PREALLOC_KB * 1024 + 64 * 1024  # one block, not 64 MB


def test_a_test_may_still_ask_for_its_own_preallocation(tmp_path):
    with ZabbyServer(tmp_path / "big", preAllocSize=8192) as srv:
        used = _write_and_measure(srv)
    assert used >= 8 << 20
