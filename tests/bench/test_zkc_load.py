"""The independent load generator (benchmarks/zkc_load.c, on Apache ZooKeeper's C client)
does what its figures claim: it builds, drives a zabby server with the load asked for,
writes the keys it says it writes, and refuses bad arguments. No timing is asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from zabby.testing.servers import ZabbyServer

SOURCE = Path(__file__).resolve().parents[2] / "benchmarks" / "zkc_load.c"
HEADER = Path("/usr/include/zookeeper/zookeeper.h")  # Debian's libzookeeper-mt-dev

pytestmark = pytest.mark.skipif(
    not HEADER.exists() or shutil.which("cc") is None,
    reason="libzookeeper-mt-dev (the C client's headers) or a C compiler is missing")


@pytest.fixture(scope="module")
def exe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zkc") / "zkc_load"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(out), str(SOURCE),
                    "-lzookeeper_mt", "-lpthread"], check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ZabbyServer(tmp_path_factory.mktemp("zkc-server"))
    yield srv
    srv.stop()


def run(exe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


def test_set_writes_every_key_it_claims(exe, server):
    r = run(exe, server.hosts, "set", "3", "4", "0.5", "0.2", "100", "20")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["errors"] == 0
    assert res["ops"] > 0
    assert res["ops_per_sec"] == pytest.approx(res["ops"] / res["seconds"], rel=0.01)
    assert 0 < res["p50_ms"] <= res["p90_ms"] <= res["p99_ms"]
    zk = KazooClient(hosts=server.hosts, timeout=10)
    zk.start(timeout=10)
    try:
        assert sorted(zk.get_children("/zkc_load")) == sorted(f"k{i}" for i in range(20))
        versions = []
        for i in range(20):
            data, stat = zk.get(f"/zkc_load/k{i}")
            assert data == b"v" * 100
            versions.append(stat.version)
        # every completed setData bumped one key's version (plus those still in flight
        # when the window closed, and the warm-up's)
        assert sum(versions) >= res["ops"]
    finally:
        zk.stop()
        zk.close()


def test_get_reads(exe, server):
    r = run(exe, server.hosts, "get", "1", "1", "0.5", "0.1", "100", "20")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["errors"] == 0 and res["ops"] > 0


@pytest.mark.parametrize("args", [
    ("get",),                                          # too few
    ("get", "0", "1", "1", "0"),                       # no session
    ("get", "1", "1", "0", "0"),                       # no window
    ("get", "1", "1", "1", "0", "100", "0"),           # no key
])
def test_bad_arguments_refused(exe, server, args):
    r = run(exe, server.hosts, *args)
    assert r.returncode == 2
    assert r.stdout == ""
