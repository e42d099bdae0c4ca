"""Key stores and SSL contexts from ZooKeeper's ``ssl.*`` (and ``ssl.quorum.*``) settings.

Reusable API (client TLS uses it with ``prefix="ssl."``; peer TLS can use it with
``prefix="ssl.quorum."``)::

    tls = context_from_settings(settings, prefix="ssl.", server_side=True)
    tls.context          # an ssl.SSLContext, ready for loop.create_server(ssl=...)
    tls.client_auth      # "need" | "want" | "none"
    tls.handshake_timeout  # seconds (ssl.handshakeDetectionTimeoutMillis)
    tls.verify_client_hostname  # server side with ssl.quorum.: the caller must check
                                 # the peer certificate against the peer's address
                                 # (Python's ssl module cannot do it for a server)

`settings` is a `security.SecuritySettings`; every key of the prefix that is honoured is
`take`n from it, so keys left over make the server refuse to start.  Every problem is a
`ConfigError` naming the key and the file, never showing a password.

Keys read (``P`` is the prefix), with ZooKeeper 3.8's meaning and defaults:

* ``P keyStore.location/password/passwordPath/type`` and the same for ``trustStore``.
  Types ``JKS``, ``PKCS12`` and ``PEM`` (case-insensitive); when ``type`` is unset the
  type comes from the file name's extension, exactly as ZooKeeper does (``.jks``,
  ``.p12``, ``.pem``, case-sensitive; anything else is an error).  Like Java's
  "compat" key stores, a JKS file typed PKCS12 (or the reverse) still loads.  A PEM key
  store holds the private key (PKCS#8, encrypted with the password when one is given)
  and the certificate chain; PEM/PKCS12 trust stores trust every certificate they hold,
  JKS trust stores their trusted-certificate entries (as Java does).
* ``P protocol`` (TLSv1.2 — ZooKeeper 3.8's default — TLSv1.3 or TLS) and
  ``P enabledProtocols`` (default: the protocol alone).
* ``P ciphersuites``: Java/IANA names, mapped to OpenSSL's; default ZooKeeper's
  ECDHE AES-GCM then AES-CBC list.  An unknown suite is an error.  TLS 1.3 suites cannot
  be restricted with Python's ssl module: a list naming some but not all is refused.
* ``P clientAuth``: need (default) / want / none.
* ``P hostnameVerification`` (default true): checked by client-side contexts; a server
  context reports it in `verify_client_hostname` for ``ssl.quorum.`` (ZooKeeper
  verifies a quorum peer's host name, never a client's).
* ``P handshakeDetectionTimeoutMillis`` (default 5000; below 1 means the default).
* ``P crl``, ``P ocsp``: only false (revocation checking is not implemented).
* ``P context.supplier.class``: refused (no Java classes here).

Beyond ZooKeeper: a key store that is missing, unreadable, has a wrong password, holds
no key, a key that does not match its certificate, or a certificate that is expired or
not yet valid refuses to start (ZooKeeper logs and serves without TLS, or fails every
handshake).
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .config import ConfigError

if TYPE_CHECKING:
    from .security import SecuritySettings

log = logging.getLogger("zabby.server.tls")

__all__ = [
    "DEFAULT_CIPHERSUITES",
    "KeyMaterial",
    "StoreError",
    "TlsConfig",
    "context_from_settings",
    "java_dn",
    "load_cert_chain",
    "load_key_store",
    "load_trust_store",
    "peer_identity",
    "store_type_of",
]

# ZooKeeper 3.8 on Java 9+: ECDHE with AES-GCM first, then AES-CBC (TLS 1.2 suites).
DEFAULT_CIPHERSUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
)

# Java (IANA) cipher suite names -> OpenSSL names, TLS 1.2 and below.
_JAVA_TO_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "DHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256": "DHE-RSA-AES128-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256": "DHE-RSA-AES256-SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": "DHE-RSA-AES128-SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": "DHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
# TLS 1.3 suites OpenSSL enables (Python's ssl module cannot choose among them).
_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
_PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".bcfks": "BCFKS"}
_CLIENT_AUTH = {
    "need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE,
}
DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000
_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"


class StoreError(Exception):
    """A key or trust store could not be used; the message names the problem, not the key."""


@dataclass
class KeyMaterial:
    """A private key and its certificate chain (leaf first)."""

    key: object
    chain: list[x509.Certificate]
    alias: str = ""


@dataclass
class TlsConfig:
    """An SSL context and the options that go with it (see the module docstring)."""

    context: ssl.SSLContext
    prefix: str
    server_side: bool
    client_auth: str = "need"
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000
    verify_hostname: bool = True
    verify_client_hostname: bool = False
    protocols: tuple[str, ...] = ()
    ciphersuites: tuple[str, ...] = ()
    key_store: str | None = None
    trust_store: str | None = None
    identity: list[x509.Certificate] = field(default_factory=list)

    def describe(self) -> str:
        """One log line: what is served, never a password."""
        who = self.identity[0].subject.rfc4514_string() if self.identity else "no certificate"
        return (f"{'/'.join(self.protocols)}, clientAuth={self.client_auth}, key store "
                f"{self.key_store} ({who}), trust store {self.trust_store}")


# ------------------------------------------------------------------ store loading
def store_type_of(type_value: str | None, location: str) -> str:
    """The store type ZooKeeper uses: the ``type`` setting, else the file's extension.

    Raises ValueError as ZooKeeper does for an unknown type or extension."""
    if type_value:
        t = type_value.upper()
        if t not in ("JKS", "PEM", "PKCS12", "BCFKS"):
            raise ValueError(f"unknown key store type {type_value!r} (JKS, PKCS12 or PEM)")
        return t
    i = location.rfind(".")
    t = _EXTENSIONS.get(location[i:]) if i >= 0 else None
    if t is None:
        raise ValueError("cannot tell the store type from the file name (expected .jks, "
                         ".p12 or .pem; or set the type)")
    return t


def _read(location: str) -> bytes:
    try:
        with open(location, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise StoreError("file does not exist") from None
    except IsADirectoryError:
        raise StoreError("is a directory, not a file") from None
    except OSError as e:
        raise StoreError(f"cannot be read: {e.strerror or e}") from None


def _jks_entries(data: bytes, password: str):
    import jks  # pyjks

    try:
        return jks.KeyStore.loads(data, password, try_decrypt_keys=True)
    except jks.util.KeystoreSignatureException:
        raise StoreError("wrong password (the key store's integrity check failed)") from None
    except jks.util.KeystoreException as e:
        raise StoreError(f"is not a valid JKS key store: {e}") from None
    except Exception as e:  # pyjks raises assorted errors on garbage
        raise StoreError(f"is not a valid JKS key store: {e}") from None


def _pkcs12(data: bytes, password: str):
    try:
        return pkcs12.load_pkcs12(data, password.encode("utf-8") if password else None)
    except ValueError as e:
        msg = str(e)
        if "password" in msg.lower() or "mac" in msg.lower():
            raise StoreError("wrong password, or not a PKCS12 file") from None
        raise StoreError(f"is not a valid PKCS12 key store: {msg}") from None


def _der_cert(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise StoreError(f"holds a certificate that does not parse: {e}") from None


def _pem_certs(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise StoreError(f"holds a certificate that does not parse: {e}") from None


def _kind(data: bytes, declared: str) -> str:
    """Java's JKS and PKCS12 key stores read each other's format ("compat" mode)."""
    if declared in ("JKS", "PKCS12"):
        if data[:4] in (_JKS_MAGIC, _JCEKS_MAGIC):
            return "JKS"
        if data[:1] == b"\x30":
            return "PKCS12"
    return declared


def load_key_store(location: str, password: str, store_type: str) -> KeyMaterial:
    """The private key and chain in a key store (StoreError if there is none usable)."""
    data = _read(location)
    kind = _kind(data, store_type)
    if kind == "BCFKS":
        raise StoreError("BCFKS key stores are not supported (use JKS, PKCS12 or PEM)")
    if kind == "JKS":
        ks = _jks_entries(data, password)
        keys = sorted(ks.private_keys.items())
        if not keys:
            raise StoreError("holds no private key entry")
        alias, entry = keys[0]
        if len(keys) > 1:
            log.warning("%s: %d private keys; using the one named %r", location, len(keys), alias)
        if not entry.is_decrypted():
            raise StoreError(f"the key {alias!r} does not open with the key store's password")
        key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
        chain = [_der_cert(der) for _, der in entry.cert_chain]
        return KeyMaterial(key, chain, alias)
    if kind == "PKCS12":
        p12 = _pkcs12(data, password)
        if p12.key is None or p12.cert is None:
            raise StoreError("holds no private key with its certificate")
        chain = [p12.cert.certificate] + [c.certificate for c in p12.additional_certs]
        name = p12.cert.friendly_name.decode("utf-8", "replace") if p12.cert.friendly_name else ""
        return KeyMaterial(p12.key, chain, name)
    # PEM: a PKCS#8 key (encrypted when a password is given) and its chain
    try:
        key = serialization.load_pem_private_key(data, password.encode("utf-8") if password else None)
    except TypeError as e:
        if password:
            raise StoreError("a password is set but the private key is not encrypted") from None
        raise StoreError(f"the private key is encrypted but no password is set ({e})") from None
    except ValueError as e:
        msg = str(e)
        if "PRIVATE KEY" not in data.decode("ascii", "replace"):
            raise StoreError("holds no private key") from None
        raise StoreError(f"the private key does not load (wrong password?): {msg}") from None
    chain = _pem_certs(data)
    if not chain:
        raise StoreError("holds no certificate")
    return KeyMaterial(key, chain)


def load_trust_store(location: str, password: str, store_type: str) -> list[x509.Certificate]:
    """The trusted certificates of a trust store (StoreError if none)."""
    data = _read(location)
    kind = _kind(data, store_type)
    if kind == "BCFKS":
        raise StoreError("BCFKS trust stores are not supported (use JKS, PKCS12 or PEM)")
    if kind == "JKS":
        ks = _jks_entries(data, password)
        certs = [_der_cert(e.cert) for _, e in sorted(ks.certs.items())]
    elif kind == "PKCS12":
        p12 = _pkcs12(data, password)
        certs = ([p12.cert.certificate] if p12.cert is not None else []) + [
            c.certificate for c in p12.additional_certs]
    else:
        certs = _pem_certs(data)
    if not certs:
        raise StoreError("holds no trusted certificate")
    return certs


def _check_validity(certs: list[x509.Certificate], what: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    for i, c in enumerate(certs):
        name = c.subject.rfc4514_string() or "(empty subject)"
        role = "certificate" if i == 0 else "chain certificate"
        if c.not_valid_after_utc < now:
            raise StoreError(f"{what}: the {role} {name!r} expired on "
                             f"{c.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
        if c.not_valid_before_utc > now:
            raise StoreError(f"{what}: the {role} {name!r} is not valid before "
                             f"{c.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")


def _public_der(k) -> bytes:
    return k.public_bytes(serialization.Encoding.DER,
                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_into(ctx: ssl.SSLContext, material: KeyMaterial) -> None:
    """load_cert_chain wants files: a private 0700 directory, the key encrypted with a
    one-time password, both files removed at once."""
    pw = secrets.token_urlsafe(24).encode()
    d = tempfile.mkdtemp(prefix="zabby-tls-")
    try:
        os.chmod(d, 0o700)
        key_path, chain_path = os.path.join(d, "key.pem"), os.path.join(d, "chain.pem")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(material.key.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(pw)))
        fd = os.open(chain_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            for c in material.chain:
                f.write(c.public_bytes(serialization.Encoding.PEM))
        ctx.load_cert_chain(chain_path, key_path, password=pw)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def load_cert_chain(ctx: ssl.SSLContext, material: KeyMaterial) -> None:
    """Give `ctx` the key and chain of a loaded key store (``zabby shell`` uses it too)."""
    _load_into(ctx, material)


# ------------------------------------------------------------------ settings
def _password(settings: SecuritySettings, key: str) -> str:
    value = settings.take(key) or ""
    path = settings.take(key + "Path")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read()
        except OSError as e:
            raise settings.error(key + "Path", path, f"cannot be read: {e.strerror or e}") from None
        if value.endswith(os.linesep):
            value = value[: -len(os.linesep)]
    return value


def _store_error(settings: SecuritySettings, key: str, location: str, why: str) -> ConfigError:
    where = settings.config.source or "<config>"
    return ConfigError(f"{where}: {key}: {location}: {why}; refusing to start",
                       source=settings.config.source, key=key, value=location)


def _protocols(settings: SecuritySettings, p: str) -> list[str]:
    proto = settings.take(p + "protocol") or "TLSv1.2"
    if proto not in ("TLSv1.2", "TLSv1.3", "TLS"):
        raise settings.error(p + "protocol", proto, "is not a protocol zabby offers "
                             "(TLSv1.2, TLSv1.3 or TLS; older versions are insecure)")
    raw = settings.take(p + "enabledProtocols")
    if raw is None:
        return ["TLSv1.2", "TLSv1.3"] if proto == "TLS" else [proto]
    names = [s.strip() for s in raw.split(",") if s.strip()]
    if not names:
        raise settings.error(p + "enabledProtocols", raw, "names no protocol")
    for n in names:
        if n not in _PROTOCOLS:
            raise settings.error(p + "enabledProtocols", raw, f"names {n!r}, which zabby does "
                                 "not offer (TLSv1.2, TLSv1.3; older versions are insecure)")
    return sorted(set(names))


def _ciphers(settings: SecuritySettings, p: str, protocols: list[str]) -> tuple[list[str], list[str]]:
    """(Java names, enabled protocols), the protocols narrowed to those the suites allow."""
    key = p + "ciphersuites"
    raw = settings.take(key)
    names = list(DEFAULT_CIPHERSUITES) if raw is None else [
        s.strip() for s in raw.split(",") if s.strip()]
    if not names:
        raise settings.error(key, raw, "names no cipher suite")
    tls12, tls13 = [], []
    for n in names:
        if n in _TLS13_SUITES:
            tls13.append(n)
        elif n in _JAVA_TO_OPENSSL:
            tls12.append(n)
        else:
            raise settings.error(key, raw, f"names {n!r}, a cipher suite zabby does not know "
                                 "(use Java's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
    protos = list(protocols)
    if "TLSv1.3" in protos:
        if raw is not None and tls13 and set(tls13) != _TLS13_SUITES:
            raise settings.error(key, raw, "names some TLS 1.3 suites but not all of "
                                 f"{', '.join(sorted(_TLS13_SUITES))}; zabby cannot restrict "
                                 "TLS 1.3 suites")
        if raw is not None and not tls13:
            protos.remove("TLSv1.3")  # as in Java: no TLS 1.3 suite, no TLS 1.3
    if "TLSv1.2" in protos and not tls12:
        protos.remove("TLSv1.2")
    if not protos:
        raise settings.error(key, raw, "leaves no suite for the enabled protocols "
                             f"({', '.join(protocols)})")
    for n in tls12:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(_JAVA_TO_OPENSSL[n])
        except ssl.SSLError:
            raise settings.error(key, raw, f"names {n!r}, which this OpenSSL "
                                 f"({ssl.OPENSSL_VERSION}) does not offer") from None
    return names, protos


def _revocation(settings: SecuritySettings, p: str) -> None:
    for name in ("crl", "ocsp"):
        if settings.take_bool(p + name, False):
            raise settings.error(p + name, "true", "certificate revocation checking is not "
                                 "implemented in zabby; refusing to start rather than accept "
                                 "revoked certificates")
    supplier = settings.take(p + "context.supplier.class")
    if supplier:
        raise settings.error(p + "context.supplier.class", supplier,
                             "zabby cannot load Java classes; give the key and trust stores")


def context_from_settings(settings: SecuritySettings, prefix: str = "ssl.", *,
                          server_side: bool = True,
                          client_auth: str | None = None) -> TlsConfig:
    """Build a `TlsConfig` from the ``prefix`` keys of `settings` (ConfigError if unusable).

    `client_auth` ("need" / "want" / "none"), server side only: the caller decides
    client authentication itself (the AdminServer's ``admin.needClientAuth``), so
    ``P clientAuth`` and ``P hostnameVerification`` are neither read nor taken."""
    p = prefix
    _revocation(settings, p)
    protocols = _protocols(settings, p)
    suites, protocols = _ciphers(settings, p, protocols)
    if client_auth is not None:
        assert server_side and client_auth in _CLIENT_AUTH, client_auth
        verify_hostname = False
    else:
        client_auth = (settings.take(p + "clientAuth") or "need").strip()
        if client_auth.lower() not in _CLIENT_AUTH:
            raise settings.error(p + "clientAuth", client_auth, "is not need, want or none")
        client_auth = client_auth.lower()
        verify_hostname = settings.take_bool(p + "hostnameVerification", True)
    timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS
    raw = settings.take(p + "handshakeDetectionTimeoutMillis")
    if raw is not None:
        try:
            timeout_ms = int(raw.strip())
        except ValueError:
            raise settings.error(p + "handshakeDetectionTimeoutMillis", raw,
                                 "is not an integer") from None
        if timeout_ms < 1:
            log.warning("%shandshakeDetectionTimeoutMillis=%s is below 1; using %d ms", p, raw,
                        DEFAULT_HANDSHAKE_TIMEOUT_MS)
            timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _PROTOCOLS[protocols[0]]
    ctx.maximum_version = _PROTOCOLS[protocols[-1]]
    tls12 = [_JAVA_TO_OPENSSL[n] for n in suites if n in _JAVA_TO_OPENSSL]
    if tls12:
        ctx.set_ciphers(":".join(tls12))
    # ZooKeeper turns off client-initiated renegotiation
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)

    # key store
    ks_key = p + "keyStore.location"
    ks_loc = (settings.take(ks_key) or "").strip()
    ks_pw = _password(settings, p + "keyStore.password")
    ks_type = settings.take(p + "keyStore.type")
    identity: list[x509.Certificate] = []
    if ks_loc:
        try:
            t = store_type_of(ks_type, ks_loc)
        except ValueError as e:
            raise _store_error(settings, p + "keyStore.type" if ks_type else ks_key,
                               ks_loc, str(e)) from None
        try:
            material = load_key_store(ks_loc, ks_pw, t)
            _check_validity(material.chain, f"{t} key store")
            public = material.key.public_key()  # type: ignore[attr-defined]
            if _public_der(public) != _public_der(material.chain[0].public_key()):
                raise StoreError("the private key does not match its certificate "
                                 f"{material.chain[0].subject.rfc4514_string()!r}")
            _load_into(ctx, material)
        except StoreError as e:
            raise _store_error(settings, ks_key, ks_loc, str(e)) from None
        except ssl.SSLError as e:
            raise _store_error(settings, ks_key, ks_loc,
                               f"the key and certificate chain do not load: {e}") from None
        identity = material.chain
    elif server_side:
        raise settings.error(ks_key, None, f"is not set: a TLS server needs a key store "
                             f"({p}keyStore.location)")

    # trust store
    ts_key = p + "trustStore.location"
    ts_loc = (settings.take(ts_key) or "").strip()
    ts_pw = _password(settings, p + "trustStore.password")
    ts_type = settings.take(p + "trustStore.type")
    if ts_loc:
        try:
            t = store_type_of(ts_type, ts_loc)
        except ValueError as e:
            raise _store_error(settings, p + "trustStore.type" if ts_type else ts_key,
                               ts_loc, str(e)) from None
        try:
            anchors = load_trust_store(ts_loc, ts_pw, t)
            pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in anchors)
            ctx.load_verify_locations(cadata=pem)
        except StoreError as e:
            raise _store_error(settings, ts_key, ts_loc, str(e)) from None
        except ssl.SSLError as e:
            raise _store_error(settings, ts_key, ts_loc,
                               f"the trusted certificates do not load: {e}") from None
    elif server_side and client_auth != "none":
        raise settings.error(ts_key, None, f"is not set: with {p}clientAuth={client_auth} "
                             "client certificates could not be verified (set a trust store, "
                             f"or {p}clientAuth=none)")
    elif not server_side:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)

    if server_side:
        ctx.verify_mode = _CLIENT_AUTH[client_auth]
    else:
        ctx.check_hostname = verify_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
    return TlsConfig(
        context=ctx, prefix=p, server_side=server_side, client_auth=client_auth,
        handshake_timeout=timeout_ms / 1000, verify_hostname=verify_hostname,
        verify_client_hostname=server_side and verify_hostname and p != "ssl.",
        protocols=tuple(protocols), ciphersuites=tuple(suites), key_store=ks_loc or None,
        trust_store=ts_loc or None, identity=identity,
    )


# ------------------------------------------------------------------ identities
# Attribute types Java's X500Principal.getName() (RFC 2253) writes by keyword; any other
# is written as its dotted OID with the value as '#' + hex of its DER encoding.
_RFC2253_KEYWORDS = {
    NameOID.COMMON_NAME: "CN", NameOID.COUNTRY_NAME: "C", NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST", NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU", NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC", NameOID.USER_ID: "UID",
}
# Java escapes these wherever they appear (RFC 2253 only requires '#' at the start, not '=')
_SPECIALS = ',=+<>#;"\\'


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _attribute_der(attr: x509.NameAttribute) -> bytes:
    """The DER encoding of an attribute's value (tag, length, contents)."""
    tag = getattr(attr, "_type", None)
    tag_no = getattr(tag, "value", 12)
    value = attr.value
    if isinstance(value, bytes):
        body = value
    elif tag_no == 30:  # BMPString
        body = value.encode("utf-16-be")
    elif tag_no == 28:  # UniversalString
        body = value.encode("utf-32-be")
    elif tag_no in (19, 22, 20, 26):  # Printable, IA5, T61, Visible
        body = value.encode("latin-1", "replace")
    else:
        body = value.encode("utf-8")
    return bytes([tag_no]) + _der_length(len(body)) + body


def _escape_value(v: str) -> str:
    out = []
    for ch in v:
        if ch in _SPECIALS:
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    s = "".join(out)
    if s.startswith(" "):
        s = "\\" + s
    if s.endswith(" ") and not s.endswith("\\ ") and len(s) > 1:
        s = s[:-1] + "\\ "
    return s


def java_dn(name: x509.Name) -> str:
    """A distinguished name as Java's ``X500Principal.getName()`` writes it (RFC 2253):
    the most specific RDN first, keywords CN/C/L/ST/O/OU/STREET/DC/UID, other types as
    OID=#hex.  This is the id ZooKeeper's X509AuthenticationProvider gives a client."""
    rdns = []
    for rdn in reversed(list(name.rdns)):
        parts = []
        for attr in rdn:
            kw = _RFC2253_KEYWORDS.get(attr.oid)
            if kw is None:
                parts.append(f"{attr.oid.dotted_string}=#{_attribute_der(attr).hex()}")
            else:
                parts.append(f"{kw}={_escape_value(str(attr.value))}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def peer_identity(ssl_object) -> str | None:
    """The x509 id of a verified peer (its certificate's subject, `java_dn`), or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return java_dn(x509.load_der_x509_certificate(der).subject)
