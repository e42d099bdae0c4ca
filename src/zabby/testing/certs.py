"""Test certificates: a CA, server and client certificates, written as JKS, PKCS12 or PEM.

    ca = CertificateAuthority("zabby test CA")
    server = ca.issue("localhost", server=True)           # SAN localhost, 127.0.0.1
    client = ca.issue("client", ou="test")               # subject CN=client,OU=test
    server.write_jks(tmp / "server.jks", "secret")        # key store
    ca.write_truststore(tmp / "trust.jks", "secret")      # trust store (type by extension)
    client.write_pem(tmp / "client")                      # client.crt, client.key, ca.crt

Keys are EC P-256 by default (fast to make); ``key_type="rsa"`` gives RSA 2048.
JKS files are made with pyjks, PKCS12 and PEM with cryptography: Java's keytool reads them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "Identity", "make_name", "write_truststore"]

_DAY = datetime.timedelta(days=1)


def _new_key(key_type: str):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_name(cn: str, *, ou: str | None = None, o: str | None = "zabby",
              c: str | None = None) -> x509.Name:
    """A subject; written by Java as ``CN=cn,OU=ou,O=o,C=c`` (most specific first)."""
    attrs = []
    if c:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, c))
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key_pem(key, password: str | None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _pem(certs) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class Identity:
    """A private key with its certificate chain (leaf first, CA last)."""

    key: object
    cert: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def full_chain(self) -> list[x509.Certificate]:
        return [self.cert, *self.chain]

    def write_jks(self, path, password: str, alias: str = "key") -> Path:
        import jks

        der_key = self.key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        entry = jks.PrivateKeyEntry.new(
            alias, [c.public_bytes(serialization.Encoding.DER) for c in self.full_chain],
            der_key, "pkcs8")
        ks = jks.KeyStore.new("jks", [entry])
        ks.save(str(path), password)
        return Path(path)

    def write_pkcs12(self, path, password: str, alias: str = "key") -> Path:
        enc = (serialization.BestAvailableEncryption(password.encode()) if password
               else serialization.NoEncryption())
        data = pkcs12.serialize_key_and_certificates(
            alias.encode(), self.key, self.cert, self.chain or None, enc)  # type: ignore[arg-type]
        Path(path).write_bytes(data)
        return Path(path)

    def write_pem_store(self, path, password: str | None = None) -> Path:
        """One PEM file with the key (encrypted when `password`) and the chain, as
        ZooKeeper's PEM key store type wants."""
        Path(path).write_bytes(_key_pem(self.key, password) + _pem(self.full_chain))
        return Path(path)

    def write_pem(self, stem, password: str | None = None) -> tuple[Path, Path]:
        """``<stem>.crt`` (chain) and ``<stem>.key``, for kazoo / ssl's load_cert_chain."""
        stem = Path(stem)
        crt, key = stem.with_suffix(".crt"), stem.with_suffix(".key")
        crt.write_bytes(_pem(self.full_chain))
        key.write_bytes(_key_pem(self.key, password))
        return crt, key

    def write(self, path, password: str, store_type: str | None = None) -> Path:
        """Key store of `store_type` (default: from the extension .jks/.p12/.pem)."""
        t = (store_type or {".jks": "JKS", ".p12": "PKCS12", ".pem": "PEM"}[Path(path).suffix])
        if t == "JKS":
            return self.write_jks(path, password)
        if t == "PKCS12":
            return self.write_pkcs12(path, password)
        return self.write_pem_store(path, password or None)


def write_truststore(path, certs, password: str = "", store_type: str | None = None) -> Path:
    """A trust store holding `certs` as trusted entries (type from the extension)."""
    t = store_type or {".jks": "JKS", ".p12": "PKCS12", ".pem": "PEM"}[Path(path).suffix]
    if t == "JKS":
        import jks

        entries = [jks.TrustedCertEntry.new(f"ca{i}", c.public_bytes(serialization.Encoding.DER))
                   for i, c in enumerate(certs)]
        jks.KeyStore.new("jks", entries).save(str(path), password)
    elif t == "PKCS12":
        enc = (serialization.BestAvailableEncryption(password.encode()) if password
               else serialization.NoEncryption())
        Path(path).write_bytes(pkcs12.serialize_key_and_certificates(
            b"trust", None, None, list(certs), enc))
    else:
        Path(path).write_bytes(_pem(certs))
    return Path(path)


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, cn: str = "zabby test CA", *, key_type: str = "ec",
                 not_before: datetime.datetime | None = None, days: int = 30) -> None:
        self.key_type = key_type
        self.key = _new_key(key_type)
        now = datetime.datetime.now(datetime.UTC)
        start = not_before or now - _DAY
        name = make_name(cn)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, subject: str | x509.Name, *, server: bool = False, client: bool = True,
              hosts=("localhost", "127.0.0.1"), ou: str | None = None,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None, days: int = 30,
              key_type: str | None = None) -> Identity:
        """A certificate for `subject` (a CN or a full Name). Server certificates carry
        `hosts` as subject alternative names; all are usable for client auth."""
        key = _new_key(key_type or self.key_type)
        name = subject if isinstance(subject, x509.Name) else make_name(subject, ou=ou)
        now = datetime.datetime.now(datetime.UTC)
        start = not_before or now - _DAY
        end = not_after or start + datetime.timedelta(days=days)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if server and hosts:
            sans: list[x509.GeneralName] = []
            for h in hosts:
                try:
                    sans.append(x509.IPAddress(ip_address(h)))
                except ValueError:
                    sans.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return Identity(key, cert, [self.cert])

    def write_truststore(self, path, password: str = "", store_type: str | None = None) -> Path:
        return write_truststore(path, [self.cert], password, store_type)

    def write_pem(self, path) -> Path:
        Path(path).write_bytes(_pem([self.cert]))
        return Path(path)
