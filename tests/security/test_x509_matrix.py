"""The ACL matrix (tests/differential/test_acl_matrix.py) with an x509 column.

Every opcode x permission against a node whose ACL names a client certificate's DN,
probed from that certificate, another trusted certificate and a plaintext session, on
Apache ZooKeeper 3.8 and zabby, both with a TLS port and the same JKS stores. The
matrix's own servers have no TLS, so this module starts its own pair.
"""

from __future__ import annotations

import pytest
from differential.conftest import DIFF_CFG
from differential.test_acl_matrix import (
    IDENTITIES,
    Column,
    Identity,
    _outcomes,
    make_column_scenario,
)

from zabby.testing.differential import Runner, run_scenario
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.rawclient import RawClient
from zabby.testing.servers import ZabbyServer, ZooKeeperServer, free_port
from zabby.wire import Id

from .conftest import Pki

pytestmark = pytest.mark.differential

NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
CLIENT_DN = "CN=client,OU=test,O=zabby"


def _tls_identity(name: str, who: str, pki: Pki) -> Identity:
    def connect(r: Runner, session: str) -> None:
        c = RawClient(r.host, r.server.secure_port, io_timeout=20.0,
                      ssl_context=pki.context(who))
        r.sessions[session] = c
        r._connect(session, c, "connect(tls)")

    return Identity(name, connect=connect)


@pytest.fixture
def tls_pair(tmp_path_factory, pki):
    require_zookeeper()
    cfg = dict(DIFF_CFG, serverCnxnFactory=NETTY, **pki.tls_cfg("JKS"))
    servers = []
    try:
        for cls, name in ((ZooKeeperServer, "zookeeper"), (ZabbyServer, "zabby")):
            port = free_port()
            srv = cls(tmp_path_factory.mktemp(f"x509-{name}"), secureClientPort=port, **cfg)
            srv.secure_port = port
            servers.append(srv)
        yield servers[0], servers[1]
    finally:
        for srv in servers:
            srv.stop()


def test_acl_matrix_x509(tls_pair, pki, monkeypatch):
    monkeypatch.setitem(IDENTITIES, "x509-client", _tls_identity("x509-client", "client", pki))
    monkeypatch.setitem(IDENTITIES, "x509-other", _tls_identity("x509-other", "other", pki))
    col = Column("x509", Id("x509", CLIENT_DN), ("x509-client", "x509-other", "anon"))
    ref, cand = tls_pair
    t_ref, _t_cand, diff = run_scenario(make_column_scenario(col), ref, cand, base="/x509matrix")
    seen = _outcomes(t_ref)
    assert seen.get("OK", 0) > 50 and seen.get("NOAUTH", 0) > 50, seen
    assert any(CLIENT_DN in line for line in t_ref.lines if "WHO_AM_I" in line)
    assert diff == "", diff
