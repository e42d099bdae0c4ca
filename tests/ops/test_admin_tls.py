"""The AdminServer's HTTPS: admin.forceHttps, admin.portUnification, admin.needClientAuth.

As ZooKeeper's JettyAdminServer, the stores are ``ssl.quorum.keyStore.*`` and
``ssl.quorum.trustStore.*``.  Every setting is honoured or the server refuses to start
naming the key; a client certificate verified by the admin's TLS is the ``x509``
identity 3.9's snapshot command accepts.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl

from zabby.server.config import ConfigError, parse_config
from zabby.server.security import load_security
from zabby.server.tls import java_dn
from zabby.testing.certs import CertificateAuthority, Identity
from zabby.testing.servers import ServerStartError, ZabbyServer

PASSWORD = "s3cret-Pw"


@dataclass
class Pki:
    dir: Path
    client: Identity
    other: Identity

    @property
    def stores(self) -> dict:
        return {
            "ssl.quorum.keyStore.location": self.dir / "server.jks",
            "ssl.quorum.keyStore.password": PASSWORD,
            "ssl.quorum.trustStore.location": self.dir / "trust.jks",
            "ssl.quorum.trustStore.password": PASSWORD,
        }

    def context(self, who: str | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        if who is not None:
            ctx.load_cert_chain(str(self.dir / f"{who}.crt"), str(self.dir / f"{who}.key"))
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("admin-pki")
    ca = CertificateAuthority("zabby admin test CA")
    ca.issue("localhost", server=True).write(d / "server.jks", PASSWORD)
    ca.write_truststore(d / "trust.jks", PASSWORD)
    ca.write_pem(d / "ca.crt")
    client = ca.issue("client", ou="ops")
    other = ca.issue("other", ou="ops")
    client.write_pem(d / "client")
    other.write_pem(d / "other")
    return Pki(d, client, other)


def admin(tmp_path, **cfg) -> ZabbyServer:
    return ZabbyServer(tmp_path, **{"admin.enableServer": True,
                                    "admin.rateLimiterIntervalInMS": 600000, **cfg})


def https_url(s: ZabbyServer) -> str:
    return s.admin_url.replace("http://", "https://", 1).replace("127.0.0.1", "localhost")


def get(url: str, ctx: ssl.SSLContext | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def plain_http_fails(s: ZabbyServer) -> bool:
    """A plain HTTP request to the admin port gets no HTTP answer."""
    conn = http.client.HTTPConnection(s.cfg["admin.serverAddress"],
                                      s.cfg["admin.serverPort"], timeout=10)
    try:
        conn.request("GET", "/commands/ruok")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return True
    finally:
        conn.close()
    return False


def refusal(tmp_path, **cfg) -> str:
    with pytest.raises(ServerStartError) as e:
        admin(tmp_path, **cfg)
    return str(e.value)


def test_force_https_serves_https_only(tmp_path, pki):
    with admin(tmp_path, **{"admin.forceHttps": True, **pki.stores}) as s:
        status, body = get(https_url(s) + "/ruok", pki.context())
        assert status == 200 and json.loads(body)["command"] == "ruok"
        assert plain_http_fails(s)
        # needClientAuth is off (ZooKeeper's default): no certificate asked for
        status, _ = get(https_url(s) + "/ruok", pki.context("client"))
        assert status == 200


def test_force_https_false_is_plain_http(tmp_path):
    with admin(tmp_path, **{"admin.forceHttps": False,
                            "zookeeper.admin.portUnification": "false"}) as s:
        status, body = get(s.admin_url + "/ruok")
        assert status == 200 and json.loads(body)["command"] == "ruok"
        assert not plain_http_fails(s)


def test_force_https_without_a_key_store_refuses_to_start(tmp_path):
    msg = refusal(tmp_path, **{"admin.forceHttps": True})
    assert "ssl.quorum.keyStore.location" in msg and "admin.forceHttps" in msg
    msg = refusal(tmp_path / "b", **{"zookeeper.admin.portUnification": True})
    assert "ssl.quorum.keyStore.location" in msg and "admin.portUnification" in msg


def test_force_https_as_a_system_property(tmp_path, pki):
    s = ZabbyServer(tmp_path, start=False, **{"admin.enableServer": True, **pki.stores})
    s.jvm_flags = ["-Dzookeeper.admin.forceHttps=true"]
    with s:
        s.start()
        assert get(https_url(s) + "/ruok", pki.context())[0] == 200
        assert plain_http_fails(s)


def test_need_client_auth_without_https_or_trust_store_refuses(tmp_path, pki):
    msg = refusal(tmp_path, **{"admin.needClientAuth": True})
    assert "admin.needClientAuth" in msg
    stores = dict(pki.stores)
    del stores["ssl.quorum.trustStore.location"], stores["ssl.quorum.trustStore.password"]
    msg = refusal(tmp_path / "b", **{"admin.forceHttps": True, "admin.needClientAuth": True,
                                     **stores})
    assert "ssl.quorum.trustStore.location" in msg


def test_bad_boolean_refuses_to_start(tmp_path):
    assert "admin.forceHttps" in refusal(tmp_path, **{"admin.forceHttps": "yes"})


def test_port_unification_serves_http_and_https(tmp_path, pki):
    with admin(tmp_path, **{"admin.portUnification": True, **pki.stores}) as s:
        status, body = get(https_url(s) + "/ruok", pki.context())
        assert status == 200 and json.loads(body)["command"] == "ruok"
        status, body = get(s.admin_url + "/ruok")
        assert status == 200 and json.loads(body)["command"] == "ruok"
        # a client that connects and says nothing does not stop the others
        with socket.create_connection((s.cfg["admin.serverAddress"],
                                       s.cfg["admin.serverPort"])):
            assert get(s.admin_url + "/ruok")[0] == 200


def test_force_https_overrides_port_unification(tmp_path, pki):
    with admin(tmp_path, **{"admin.portUnification": True, "admin.forceHttps": True,
                            **pki.stores}) as s:
        assert get(https_url(s) + "/ruok", pki.context())[0] == 200
        assert plain_http_fails(s)


def test_x509_identity_authorises_snapshot(tmp_path, pki):
    cfg = {"admin.forceHttps": True, "admin.needClientAuth": True, **pki.stores}
    with admin(tmp_path, **cfg) as s:
        url = https_url(s) + "/snapshot?streaming=false"
        dn = java_dn(pki.client.cert.subject)
        c = KazooClient(s.hosts, timeout=10)
        c.start(10)
        try:  # the x509 scheme is registered: "/" grants only the client's DN
            c.set_acls("/", [make_acl("x509", dn, all=True)])
        finally:
            c.stop()
            c.close()
        # a certificate is required
        with pytest.raises((ssl.SSLError, OSError, urllib.error.URLError)):
            get(https_url(s) + "/ruok", pki.context())
        x509 = {"Authorization": "x509"}
        status, body = get(url, pki.context("client"), x509)
        assert status == 200, body
        assert json.loads(body) == {"command": "snapshot", "error": None}
        # a verified certificate without rights on "/"
        status, body = get(url, pki.context("other"), x509)
        assert status == 403 and json.loads(body)["error"] == "Not authorized"
        # the certificate alone is no Authorization header (3.9)
        assert get(url, pki.context("client"))[0] == 401
        # digest still works (and is refused here: "/" grants the certificate only)
        assert get(url, pki.context("client"), {"Authorization": "digest a:b"})[0] == 403


def test_x509_super_user(tmp_path, pki):
    dn = java_dn(pki.other.cert.subject)
    cfg = {"admin.forceHttps": True, "admin.needClientAuth": True,
           "X509AuthenticationProvider.superUser": dn, **pki.stores}
    with admin(tmp_path, **cfg) as s:
        c = KazooClient(s.hosts, timeout=10)
        c.start(10)
        try:
            c.set_acls("/", [make_acl("digest", "nobody:x", all=True)])
        finally:
            c.stop()
            c.close()
        url = https_url(s) + "/snapshot?streaming=false"
        assert get(url, pki.context("other"), {"Authorization": "x509"})[0] == 200
        assert get(url, pki.context("client"), {"Authorization": "x509"})[0] == 403


# ------------------------------------------------------------- settings, in-process
def _security(text: str):
    return load_security(parse_config(text))


def test_admin_keys_are_security_keys(tmp_path, pki):
    base = f"dataDir={tmp_path}\nclientPort=2181\n"
    stores = "".join(f"{k}={v}\n" for k, v in pki.stores.items())
    for key in ("admin.forceHttps", "zookeeper.admin.forceHttps"):
        sec = _security(base + stores + f"{key}=true\n")
        assert sec.admin_tls is not None and sec.admin_tls.force_https
        assert sec.admin_tls.tls.context.verify_mode == ssl.CERT_NONE
    sec = _security(base + stores + "admin.forceHttps=true\nadmin.needClientAuth=true\n")
    assert sec.admin_tls.tls.context.verify_mode == ssl.CERT_REQUIRED
    assert sec.client_tls is not None  # x509 registered for the admin's identities
    assert _security(base + "admin.forceHttps=false\n").admin_tls is None
    # the ssl.quorum.* stores without anything that uses them still refuse to start
    with pytest.raises(ConfigError, match="ssl.quorum.keyStore"):
        _security(base + stores)
    # ssl.quorum.clientAuth does not concern the AdminServer: refused without sslQuorum
    with pytest.raises(ConfigError, match="ssl.quorum.clientAuth"):
        _security(base + stores + "admin.forceHttps=true\nssl.quorum.clientAuth=want\n")
