"""Certificates shared by the security tests (made once per session)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from zabby.testing.certs import CertificateAuthority, Identity

PASSWORD = "s3cret-Pw"  # must never show up in a log or a four-letter word


@dataclass
class Pki:
    dir: Path
    ca: CertificateAuthority
    server: Identity
    client: Identity  # CN=client,OU=test,O=zabby
    other: Identity  # CN=other,OU=test,O=zabby
    admin: Identity  # CN=admin,OU=ops,O=zabby
    rogue: Identity  # CN=client,OU=test,O=zabby but from another CA

    def key_store(self, kind: str) -> Path:
        return self.dir / f"server.{ {'JKS': 'jks', 'PKCS12': 'p12', 'PEM': 'pem'}[kind]}"

    def trust_store(self, kind: str) -> Path:
        return self.dir / f"trust.{ {'JKS': 'jks', 'PKCS12': 'p12', 'PEM': 'pem'}[kind]}"

    def tls_cfg(self, kind: str = "JKS", **extra) -> dict:
        """zoo.cfg keys for a secure client port with `kind` stores."""
        cfg = {
            "ssl.keyStore.location": self.key_store(kind),
            "ssl.keyStore.password": PASSWORD,
            "ssl.trustStore.location": self.trust_store(kind),
            "ssl.trustStore.password": PASSWORD,
        }
        cfg.update(extra)
        return cfg

    def pem(self, who: str) -> tuple[str, str]:
        return str(self.dir / f"{who}.crt"), str(self.dir / f"{who}.key")

    @property
    def ca_pem(self) -> str:
        return str(self.dir / "ca.crt")

    def context(self, who: str | None = "client") -> ssl.SSLContext:
        """A client-side context trusting the CA, presenting `who`'s certificate."""
        ctx = ssl.create_default_context(cafile=self.ca_pem)
        if who is not None:
            ctx.load_cert_chain(*self.pem(who))
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("zabby test CA")
    server = ca.issue("localhost", server=True)
    client = ca.issue("client", ou="test")
    other = ca.issue("other", ou="test")
    admin = ca.issue("admin", ou="ops")
    rogue = CertificateAuthority("rogue CA").issue("client", ou="test")
    for ext in ("jks", "p12", "pem"):
        server.write(d / f"server.{ext}", PASSWORD)
        ca.write_truststore(d / f"trust.{ext}", PASSWORD)
    for name, ident in (("client", client), ("other", other), ("admin", admin),
                        ("rogue", rogue)):
        ident.write_pem(d / name)
        ident.write_jks(d / f"{name}.jks", PASSWORD)
    ca.write_pem(d / "ca.crt")
    return Pki(d, ca, server, client, other, admin, rogue)
