"""server.tls: store types, passwords, protocols and suites, x509 DNs (no server process)."""

from __future__ import annotations

import datetime
import shutil
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from zabby.server.config import ConfigError, parse_config
from zabby.server.security import SecuritySettings, load_security
from zabby.server.tls import (
    DEFAULT_CIPHERSUITES,
    StoreError,
    context_from_settings,
    java_dn,
    load_key_store,
    load_trust_store,
    store_type_of,
)
from zabby.testing.pytest_plugin import in_ci

from .conftest import PASSWORD, Pki

BASE = "tickTime=2000\ndataDir=/tmp/zabby-tls-unit\nclientPort=2181\n"


def _settings(pki: Pki, text: str = "", kind: str = "JKS", **over) -> SecuritySettings:
    cfg = pki.tls_cfg(kind, **over)
    lines = "".join(f"{k}={v}\n" for k, v in cfg.items() if v is not None)
    return SecuritySettings(parse_config(BASE + lines + text, source="/etc/zoo.cfg"))


def test_store_type_rules():
    assert store_type_of(None, "/a/b.jks") == "JKS"
    assert store_type_of(None, "/a/b.p12") == "PKCS12"
    assert store_type_of(None, "/a/b.pem") == "PEM"
    assert store_type_of("pkcs12", "/a/b.jks") == "PKCS12"  # the type wins, any case
    for name in ("/a/b.JKS", "/a/b.pfx", "/a/b.keystore", "/a/b"):
        with pytest.raises(ValueError):  # ZooKeeper: case-sensitive, no guessing
            store_type_of(None, name)
    with pytest.raises(ValueError):
        store_type_of("JCEKS", "/a/b.jks")


def test_compat_stores_load_like_java(pki, tmp_path):
    """Java's JKS and PKCS12 key stores read each other's files."""
    p12_named_jks = tmp_path / "really-p12.jks"
    shutil.copy(pki.key_store("PKCS12"), p12_named_jks)
    m = load_key_store(str(p12_named_jks), PASSWORD, store_type_of(None, str(p12_named_jks)))
    assert m.chain[0].subject == pki.server.cert.subject
    jks_typed_p12 = load_trust_store(str(pki.trust_store("JKS")), PASSWORD, "PKCS12")
    assert jks_typed_p12[0].subject == pki.ca.cert.subject


def test_encrypted_pem_key_store(pki, tmp_path):
    path = pki.server.write_pem_store(tmp_path / "enc.pem", "pem-pass")
    assert load_key_store(str(path), "pem-pass", "PEM").key is not None
    with pytest.raises(StoreError):
        load_key_store(str(path), "", "PEM")
    with pytest.raises(StoreError):
        load_key_store(str(path), "wrong", "PEM")


def test_password_path(pki, tmp_path):
    secret = tmp_path / "ks.pass"
    secret.write_text(PASSWORD + "\n")  # a trailing line separator is dropped, as in Java
    s = _settings(pki, **{"ssl.keyStore.password": None,
                          "ssl.keyStore.passwordPath": secret})
    tls = context_from_settings(s)
    assert tls.key_store == str(pki.key_store("JKS"))


def test_defaults_are_zookeepers(pki):
    tls = context_from_settings(_settings(pki))
    assert tls.protocols == ("TLSv1.2",)
    assert tls.client_auth == "need" and tls.context.verify_mode == ssl.CERT_REQUIRED
    assert tls.ciphersuites == DEFAULT_CIPHERSUITES
    assert tls.handshake_timeout == 5.0
    assert tls.context.minimum_version == tls.context.maximum_version == ssl.TLSVersion.TLSv1_2
    names = {c["name"] for c in tls.context.get_ciphers() if not c["name"].startswith("TLS_")}
    assert names == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                     "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                     "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256",
                     "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
                     "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384",
                     "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA"}


def test_protocols_and_suites(pki):
    t = context_from_settings(_settings(pki, **{"ssl.protocol": "TLSv1.3"}))
    assert t.protocols == ("TLSv1.3",)
    t = context_from_settings(_settings(pki, **{"ssl.enabledProtocols": "TLSv1.3,TLSv1.2"}))
    assert t.protocols == ("TLSv1.2", "TLSv1.3")
    # a list with no TLS 1.3 suite turns TLS 1.3 off, as in Java
    t = context_from_settings(_settings(pki, **{
        "ssl.enabledProtocols": "TLSv1.2,TLSv1.3",
        "ssl.ciphersuites": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}))
    assert t.protocols == ("TLSv1.2",)
    with pytest.raises(ConfigError, match="cannot restrict"):
        context_from_settings(_settings(pki, **{"ssl.protocol": "TLSv1.3",
                                                "ssl.ciphersuites": "TLS_AES_128_GCM_SHA256"}))
    with pytest.raises(ConfigError, match="ssl.protocol"):
        context_from_settings(_settings(pki, **{"ssl.protocol": "SSLv3"}))


def test_handshake_timeout(pki):
    t = context_from_settings(_settings(pki, **{"ssl.handshakeDetectionTimeoutMillis": "250"}))
    assert t.handshake_timeout == 0.25
    t = context_from_settings(_settings(pki, **{"ssl.handshakeDetectionTimeoutMillis": "0"}))
    assert t.handshake_timeout == 5.0  # ZooKeeper: below 1 means the default
    with pytest.raises(ConfigError, match="handshakeDetectionTimeoutMillis"):
        context_from_settings(_settings(pki, **{"ssl.handshakeDetectionTimeoutMillis": "x"}))


def test_client_side_context_for_quorum_use(pki):
    """The same API builds client contexts (what peer TLS will use with ssl.quorum.)."""
    s = _settings(pki)
    t = context_from_settings(s, "ssl.", server_side=False)
    assert t.context.check_hostname and t.context.verify_mode == ssl.CERT_REQUIRED


def test_x509_provider_registration(pki):
    def sec(text):
        return load_security(parse_config(BASE + text, source="/etc/zoo.cfg"))

    lines = "".join(f"{k}={v}\n" for k, v in pki.tls_cfg("JKS").items())
    assert sec(lines + "secureClientPort=2282\n").client_tls.tls is not None
    assert sec(lines + "client.portUnification=true\n").client_tls.port_unification
    s = sec("authProvider.1=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n")
    assert s.providers == {"1": "x509"} and s.client_tls is not None
    assert sec("").client_tls is None
    with pytest.raises(ConfigError, match="superUser"):
        sec("X509AuthenticationProvider.superUser=CN=admin\n")
    with pytest.raises(ConfigError, match="ssl.authProvider"):
        sec(lines + "secureClientPort=2282\nssl.authProvider=mine\n")
    with pytest.raises(ConfigError, match="secureClientPortAddress"):
        sec("secureClientPortAddress=127.0.0.1\n")


def test_passwords_never_in_errors(pki, tmp_path):
    for over in ({"ssl.keyStore.password": "not-" + PASSWORD},
                 {"ssl.trustStore.password": "not-" + PASSWORD},
                 {"ssl.keyStore.location": tmp_path / "missing.jks"}):
        with pytest.raises(ConfigError) as e:
            context_from_settings(_settings(pki, **over))
        assert PASSWORD not in str(e.value)


# ------------------------------------------------------------------ DNs as Java writes them
_A = x509.NameAttribute
_R = x509.RelativeDistinguishedName
DN_CASES = [
    x509.Name([_A(NameOID.COMMON_NAME, "client"), _A(NameOID.ORGANIZATIONAL_UNIT_NAME, "t")]),
    x509.Name([_A(NameOID.COMMON_NAME, "a,b+c=d")]),
    x509.Name([_A(NameOID.COMMON_NAME, "#hash"), _A(NameOID.ORGANIZATION_NAME, " sp ")]),
    x509.Name([_A(NameOID.COMMON_NAME, 'q"uo<t>e;s\\b mid#dle')]),
    x509.Name([_A(NameOID.COUNTRY_NAME, "DE"), _A(NameOID.ORGANIZATION_NAME, "Acme"),
               _A(NameOID.EMAIL_ADDRESS, "a@b.c"), _A(NameOID.COMMON_NAME, "émile ✓")]),
    x509.Name([_R([_A(NameOID.DOMAIN_COMPONENT, "org")]),
               _R([_A(NameOID.COMMON_NAME, "x"), _A(NameOID.USER_ID, "u1")])]),
    x509.Name([_A(NameOID.SERIAL_NUMBER, "123"), _A(NameOID.TITLE, "boss"),
               _A(NameOID.STREET_ADDRESS, "1 Main St"), _A(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
               _A(NameOID.LOCALITY_NAME, "SF"), _A(NameOID.COMMON_NAME, "z")]),
    x509.Name([_A(NameOID.COMMON_NAME, " ")]),
    x509.Name([_A(NameOID.COMMON_NAME, "a  b\tc")]),
]
JAVA_DN = """\
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
public class DnProbe {
    public static void main(String[] args) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        for (String a : args) {
            try (FileInputStream in = new FileInputStream(a)) {
                X509Certificate c = (X509Certificate) cf.generateCertificate(in);
                System.out.println(c.getSubjectX500Principal().getName());
            }
        }
    }
}
"""


def test_java_dn_matches_x500principal(pki, tmp_path):
    """java_dn gives what Java's X500Principal.getName() (ZooKeeper's x509 id) gives."""
    if shutil.which("java") is None:
        if in_ci():
            pytest.fail("java is missing (CI=true)")
        pytest.skip("java is missing")
    files = []
    for i, name in enumerate(DN_CASES):
        cert = pki.ca.issue(name).cert
        f = tmp_path / f"c{i}.pem"
        f.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.append(str(f))
    (tmp_path / "DnProbe.java").write_text(JAVA_DN)
    p = subprocess.run(["java", "DnProbe.java", *files], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    java = p.stdout.splitlines()
    ours = [java_dn(n) for n in DN_CASES]
    assert ours == java


def test_expired_and_future_certificates_refused(pki, tmp_path):
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    for name, start in (("old", past), ("new", future)):
        ident = pki.ca.issue("localhost", server=True, not_before=start, days=1)
        path = ident.write_jks(tmp_path / f"{name}.jks", PASSWORD)
        with pytest.raises(ConfigError, match="expired|not valid before"):
            context_from_settings(_settings(pki, **{"ssl.keyStore.location": path}))


def test_keytool_made_stores_load(tmp_path):
    """Stores as operators make them with Java's keytool (Java 17 writes PKCS12 into a
    .jks file unless told -storetype JKS) load, keys and trusted certificates alike."""
    if shutil.which("keytool") is None:
        if in_ci():
            pytest.fail("keytool is missing (CI=true)")
        pytest.skip("keytool is missing")

    def kt(*args):
        subprocess.run(["keytool", *args, "-storepass", "changeit"], check=True,
                       capture_output=True, timeout=120, cwd=tmp_path)

    kt("-genkeypair", "-alias", "srv", "-keyalg", "EC", "-groupname", "secp256r1",
       "-dname", "CN=localhost,O=kt", "-validity", "10", "-keystore", "ks.jks",
       "-storetype", "JKS", "-keypass", "changeit")
    kt("-genkeypair", "-alias", "srv", "-keyalg", "RSA", "-keysize", "2048",
       "-dname", "CN=localhost,OU=p12,O=kt", "-validity", "10", "-keystore", "implicit.jks")
    kt("-exportcert", "-rfc", "-alias", "srv", "-keystore", "ks.jks", "-file", "srv.pem")
    kt("-importcert", "-noprompt", "-alias", "ca", "-file", "srv.pem", "-keystore", "ts.p12",
       "-storetype", "PKCS12")
    kt("-importcert", "-noprompt", "-alias", "ca", "-file", "srv.pem", "-keystore", "ts.jks",
       "-storetype", "JKS")
    m = load_key_store(str(tmp_path / "ks.jks"), "changeit", "JKS")
    assert java_dn(m.chain[0].subject) == "CN=localhost,O=kt"
    m = load_key_store(str(tmp_path / "implicit.jks"), "changeit", "JKS")
    assert java_dn(m.chain[0].subject) == "CN=localhost,OU=p12,O=kt"
    for ts, kind in (("ts.p12", "PKCS12"), ("ts.jks", "JKS")):
        certs = load_trust_store(str(tmp_path / ts), "changeit", kind)
        assert [java_dn(c.subject) for c in certs] == ["CN=localhost,O=kt"]
