"""SASL GSSAPI (RFC 4752, Kerberos V5), authentication only, for ZooKeeper clients.

The server side of one exchange, driven like `digest_md5.DigestMD5Server`: feed each
client token to ``step`` and send back what it returns (None: a null token).  The
GSS-API work is done by an acceptor context (``gssapi.SecurityContext``) given by the
caller, so this module needs the ``gssapi`` package only through that object.

The exchange, as Java's server (which ZooKeeper uses) runs it::

    client: AP-REQ                  server: AP-REP (context established)
    client: "" (empty)              server: wrap(01 | max buffer 65536)   offer: no layer
    client: wrap(01 | size | authzid)
                                    server: null                          (complete)

Without mutual authentication (Java's client) the context is established with no
AP-REP, and the offer is the answer to the AP-REQ.

Kerberos principals become ZooKeeper ids as ZooKeeper's server does with its default
``auth_to_local`` rule: ``service[/host]@REALM`` keeps host and realm unless
``kerberos.removeHostFromPrincipal`` / ``kerberos.removeRealmFromPrincipal`` say
otherwise; a principal of another realm than the default one is kept whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .digest_md5 import SaslError

__all__ = ["GssapiSaslServer", "KerberosNames", "default_realm"]

_NO_SECURITY_LAYER = 0x01
_MAX_BUFFER = 65536  # what Java's server offers
_PRINCIPAL = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


class KerberosNames:
    """Principal -> ZooKeeper id (zookeeper.kerberos.remove{Host,Realm}FromPrincipal)."""

    def __init__(self, default_realm: str, remove_host: bool = False,
                 remove_realm: bool = False) -> None:
        self.default_realm = default_realm
        self.remove_host = remove_host
        self.remove_realm = remove_realm

    def __call__(self, principal: str, authzid: str | None = None) -> str:
        m = _PRINCIPAL.fullmatch(principal)
        if m is None:
            return principal  # no realm: already a short name
        service, host, realm = m.group(1), m.group(3), m.group(4)
        if realm != self.default_realm:
            # ZooKeeper's DEFAULT rule has no short name for it; keep the principal whole
            # (ZooKeeper would take the client's authzid here; zabby does not)
            return principal
        ident = service
        if host is not None and not self.remove_host:
            ident += "/" + host
        if not self.remove_realm:
            ident += "@" + realm
        return ident


def default_realm(krb5_conf: str | None) -> str:
    """default_realm from [libdefaults] of a krb5.conf, "" when there is none."""
    if not krb5_conf:
        return ""
    try:
        with open(krb5_conf, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return ""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section == "libdefaults" and "=" in line:
            key, _, value = line.partition("=")
            if key.strip() == "default_realm":
                return value.strip()
    return ""


class GssapiSaslServer:
    """One GSSAPI exchange.  ``context`` is an accepting gssapi.SecurityContext;
    ``authorize(principal, authzid)`` gives the id (see `KerberosNames`)."""

    def __init__(self, context: Any, authorize: Callable[[str, str | None], str]) -> None:
        self._ctx = context
        self._authorize = authorize
        self._stage = 0
        self.complete = False
        self.authentication_id: str | None = None
        self.authorization_id: str | None = None

    @property
    def failed(self) -> bool:
        return self._stage == -1

    def step(self, token: bytes) -> bytes | None:
        stage, self._stage = self._stage, -1  # an exception leaves the exchange failed
        try:
            if stage == 0:
                out = self._ctx.step(token)
                if not self._ctx.complete:
                    self._stage = 0
                    return out
                if out:  # the client must see it (mutual authentication) before the offer
                    self._stage = 1
                    return out
                self._stage = 2  # the client is done too: the offer at once
                return self._offer()
            if stage == 1:
                # the client's answer to the last context token (empty)
                self._stage = 2
                return self._offer()
            if stage == 2:
                msg = self._ctx.unwrap(token).message
                if len(msg) < 4 or msg[0] != _NO_SECURITY_LAYER:
                    raise SaslError("GSSAPI: the client chose a security layer not offered")
                authzid = msg[4:].decode("utf-8", "replace") or None
                principal = str(self._ctx.initiator_name)
                self.authentication_id = principal
                self.authorization_id = self._authorize(principal, authzid)
                self.complete = True
                self._stage = 3
                return None
        except SaslError:
            raise
        except Exception as e:  # gssapi.exceptions.GSSError and friends
            raise SaslError(f"GSSAPI: {type(e).__name__}: {_first_line(e)}") from e
        raise SaslError("GSSAPI: authentication already completed" if stage == 3
                        else "GSSAPI: exchange already failed")


    def _offer(self) -> bytes:
        """Security layers the server offers (none) and its receive buffer, wrapped."""
        offer = bytes([_NO_SECURITY_LAYER]) + _MAX_BUFFER.to_bytes(3, "big")
        return self._ctx.wrap(offer, False).message


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""
