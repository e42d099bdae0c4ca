"""SASL GSSAPI (Kerberos v5, RFC 4752) for zabby's client, with the ``gssapi`` package.

``sasl_options={"mechanism": "GSSAPI"}`` logs in with the default credentials (the
ticket cache in KRB5CCNAME, as ``kinit`` left it) to the service principal
``zookeeper/<server host>``, as ZooKeeper's Java client does. Options:

  ``service``      the service name (default "zookeeper"; ZooKeeper's
                   ``zookeeper.sasl.client.username``)
  ``host``         the host part of the service principal (default: the server the
                   client is connected to, canonicalised by a reverse lookup unless
                   ``canonicalize`` is false -- 127.0.0.1 becomes "localhost")
  ``principal``    the client principal (default: the one of the ticket cache)
  ``keytab``       log in from this keytab instead of a ticket cache (with ``principal``)
  ``ccache``       the credential cache to use (default KRB5CCNAME or the system's)
  ``mutual``       ask the server to prove itself too (default true)

The exchange: GSS-API context tokens until the context is established, then the
server's wrapped security-layer offer, answered with "no security layer" and the
client's name as authorisation id. Every gssapi call may talk to the KDC, so the
client runs them off its event loop.
"""

from __future__ import annotations

import socket
from typing import Any

from .exceptions import ConfigurationError, SASLException

NO_SECURITY_LAYER = 1


class GssapiInitiator:
    """One login: ``initial()``, then ``step(server_token)`` until ``complete``."""

    def __init__(self, options: dict[str, Any], server_host: str) -> None:
        try:
            import gssapi
        except ImportError:  # pragma: no cover - depends on what is installed
            raise ConfigurationError(
                "SASL GSSAPI needs the python 'gssapi' package "
                "(pip install 'zabby[kerberos]')") from None
        self._gssapi = gssapi
        self.options = options
        host = options.get("host") or server_host
        if str(options.get("canonicalize", "true")).lower() not in ("false", "0", "no"):
            host = _canonical(host)
        self.service = f"{options.get('service', 'zookeeper')}@{host}"
        store = {}
        if options.get("keytab"):
            store["client_keytab"] = str(options["keytab"])
        if options.get("ccache"):
            store["ccache"] = str(options["ccache"])
        elif store:  # a keytab login gets its own cache, not the user's
            store["ccache"] = f"MEMORY:zabby-client-{id(self)}"
        principal = options.get("principal")
        name = (gssapi.Name(principal, gssapi.NameType.kerberos_principal)
                if principal else None)
        mutual = str(options.get("mutual", "true")).lower() not in ("false", "0", "no")
        # an empty flag set would mean "the defaults", which include mutual authentication
        flags = (gssapi.RequirementFlag.mutual_authentication if mutual
                 else gssapi.RequirementFlag.integrity)
        # a store only when told where: otherwise the default ticket cache / client keytab
        self._creds_args = {"name": name, "usage": "initiate", **({"store": store} if store else {})}
        self._flags = flags
        self._ctx = None
        self._answered = False
        self.complete = False
        self.authzid = principal or ""

    def initial(self) -> bytes:
        gssapi = self._gssapi
        try:
            creds = gssapi.Credentials(**self._creds_args)
            if not self.authzid:
                self.authzid = str(creds.name)
            self._ctx = gssapi.SecurityContext(
                name=gssapi.Name(self.service, gssapi.NameType.hostbased_service),
                creds=creds, usage="initiate", flags=self._flags)
            return self._ctx.step() or b""
        except gssapi.exceptions.GSSError as e:
            raise SASLException(f"GSSAPI: cannot start a context for {self.service}: "
                                f"{_gss_message(e)}") from None

    def step(self, token: bytes | None) -> bytes | None:
        """The answer to the server's token (None: the server sent none). Sets
        ``complete`` once the server has accepted the security-layer answer."""
        gssapi = self._gssapi
        ctx = self._ctx
        assert ctx is not None
        try:
            if not ctx.complete:
                if not token:
                    raise SASLException("GSSAPI: the server sent no context token")
                return ctx.step(token) or b""
            if token is None:  # after the security layer was agreed: done
                if not self._answered:
                    raise SASLException("GSSAPI: the server offered no security layer")
                self.complete = True
                return None
            if not token:
                return b""
            offer = ctx.unwrap(token).message
            if len(offer) != 4 or not offer[0] & NO_SECURITY_LAYER:
                raise SASLException("GSSAPI: the server does not offer to run without a "
                                    "security layer")
            self._answered = True
            answer = bytes([NO_SECURITY_LAYER]) + offer[1:4] + self.authzid.encode()
            return ctx.wrap(answer, False).message
        except gssapi.exceptions.GSSError as e:
            raise SASLException(f"GSSAPI: {_gss_message(e)}") from None


def _canonical(host: str) -> str:
    try:
        return socket.gethostbyaddr(host)[0]
    except OSError:
        return host


def _gss_message(e: Exception) -> str:
    try:
        return e.gen_message()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any text will do
        return str(e)
