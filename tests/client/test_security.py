"""TLS and SASL DIGEST-MD5 with zabby.client, against zabby and Apache ZooKeeper 3.8."""

from __future__ import annotations

import ssl

import pytest

from zabby.client import ACL, AuthFailedError, Client, Id, NoAuthError
from zabby.testing import ZabbyServer, ZooKeeperServer, free_port
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.sasl import jaas_server_section

from .conftest import arun

NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


def _server(kind: str, tmp, jvm_flags=(), **cfg):
    if kind == "zookeeper":
        require_zookeeper()
        return ZooKeeperServer(tmp / "zk", jvm_flags=list(jvm_flags), **cfg)
    return ZabbyServer(tmp / "zabby", jvm_flags=list(jvm_flags), **cfg)


@pytest.mark.parametrize("kind", ["zabby", "zookeeper"])
def test_tls(kind, tmp_path):
    from zabby.testing.certs import CertificateAuthority

    ca = CertificateAuthority("client test CA")
    pw = "client-Pw-1"
    ca.issue("localhost", server=True).write(tmp_path / "server.jks", pw)
    ca.write_truststore(tmp_path / "trust.jks", pw)
    crt, key = ca.issue("client", ou="test").write_pem(tmp_path / "client")
    ca.write_truststore(tmp_path / "ca.pem", "")
    port = free_port()
    cfg = {"secureClientPort": port,
           "ssl.keyStore.location": tmp_path / "server.jks", "ssl.keyStore.password": pw,
           "ssl.trustStore.location": tmp_path / "trust.jks", "ssl.trustStore.password": pw}
    if kind == "zookeeper":
        cfg["serverCnxnFactory"] = NETTY
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    ctx.load_cert_chain(crt, key)

    async def body():
        async with Client(f"127.0.0.1:{port}", ssl_context=ctx) as zk:
            await zk.create("/tls", b"x")
            assert (await zk.get("/tls"))[0] == b"x"
            assert ("x509", "CN=client,OU=test,O=zabby") in await zk.whoami()
            zk._conn.abort()  # reconnects over TLS too
            assert (await zk.retry(zk.get, "/tls"))[0] == b"x"

    srv = _server(kind, tmp_path, **cfg)
    try:
        arun(body())
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["zabby", "zookeeper"])
def test_sasl_digest(kind, tmp_path):
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(jaas_server_section({"bob": "bob-Pw-1"}))
    srv = _server(kind, tmp_path, jvm_flags=[f"-Djava.security.auth.login.config={jaas}"],
                  **{"authProvider.1": SASL_PROVIDER})

    async def body():
        sasl = {"mechanism": "DIGEST-MD5", "username": "bob", "password": "bob-Pw-1"}
        async with Client(srv.hosts, sasl_options=sasl) as bob, Client(srv.hosts) as anon:
            assert ("sasl", "bob") in await bob.whoami()
            await bob.create("/bobs", b"x", acl=[ACL(31, Id("sasl", "bob"))])
            with pytest.raises(NoAuthError):
                await anon.get("/bobs")
            bob._conn.abort()  # the login is made again on the new connection
            assert (await bob.retry(bob.get, "/bobs"))[0] == b"x"
        wrong = {"mechanism": "DIGEST-MD5", "username": "bob", "password": "nope"}
        with pytest.raises(AuthFailedError):
            await Client(srv.hosts, sasl_options=wrong).start(timeout=10)

    try:
        arun(body())
    finally:
        srv.stop()
