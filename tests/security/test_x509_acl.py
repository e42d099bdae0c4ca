"""x509 ACL ids: which DNs ZooKeeper accepts (X500Principal parses them) and zabby too.

The x509 scheme is registered here by ``authProvider.1=...X509AuthenticationProvider``
alone (no TLS): ACLs can then name certificates that only TLS connections can hold.
"""

from __future__ import annotations

import pytest

from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.rawclient import RawClient
from zabby.testing.servers import ZabbyServer, ZooKeeperServer
from zabby.tree.x500 import x500_name_valid
from zabby.wire import ACL, Err, Id, Op
from zabby.wire.records import CreateRequest

X509 = {"authProvider.1": "org.apache.zookeeper.server.auth.X509AuthenticationProvider"}
# (id, accepted by ZooKeeper 3.8's X509AuthenticationProvider.isValid)
CASES = [
    ("CN=ok", True), ("cn=lower,o=x", True), ("not a dn", False), ("", True),
    ("CN=a,OU", False), ("CN=a;O=b", True), ("CN=a+UID=b", True), ("2.5.4.3=x", True),
    ("OID.2.5.4.3=x", True), ("CN=#0c0161", True), ('CN="quoted, value"', True),
    ("FOO=bar", False), ("CN=a\\,b", True), ("CN=a,,O=b", False), ("CN=", True),
    ("EMAILADDRESS=a@b", True), ("CN=a, O=b", True), ("CN=a\\", False), ("CN=a=b", True),
    (" CN=a ", True), ("S=x", True), ("T=y", True), ("CN=#zz", False),
]


@pytest.mark.parametrize("dn, ok", CASES)
def test_x500_name_valid(dn, ok):
    assert x500_name_valid(dn) is ok


def _create_all(srv) -> list[int]:
    c = RawClient("127.0.0.1", srv.port)
    c.connect()
    try:
        return [c.request(Op.CREATE, CreateRequest(f"/n{i}", b"", [ACL(31, Id("x509", dn))],
                                                   0)).err for i, (dn, _) in enumerate(CASES)]
    finally:
        c.close()


def test_x509_acl_ids_zabby(tmp_path):
    with ZabbyServer(tmp_path, **X509) as srv:
        assert _create_all(srv) == [Err.OK if ok else Err.INVALIDACL for _, ok in CASES]
    # without the provider the scheme is unknown: INVALIDACL for every id
    with ZabbyServer(tmp_path / "plain") as srv:
        assert set(_create_all(srv)) == {Err.INVALIDACL}


@pytest.mark.differential
def test_x509_acl_ids_match_zookeeper(tmp_path):
    require_zookeeper()
    with ZooKeeperServer(tmp_path / "zk", **X509) as zk:
        expected = _create_all(zk)
    with ZabbyServer(tmp_path / "zb", **X509) as zb:
        assert _create_all(zb) == expected
