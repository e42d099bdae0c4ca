"""Authenticated, encrypted links between ensemble members (TLS and SASL on the peer mesh).

Settings (ZooKeeper 3.8's names, canonical form without ``zookeeper.``):

* ``sslQuorum=true``: mutual TLS on the quorum and the election ports.  Both sides
  present the certificate of ``ssl.quorum.keyStore`` and verify the other's against
  ``ssl.quorum.trustStore`` (see `tls` for every ``ssl.quorum.*`` key).  With
  ``ssl.quorum.hostnameVerification`` (default true) the dialling member checks the
  accepting member's certificate against the host of its ``server.N`` line, and the
  accepting member checks the dialler's certificate against the address it connects
  from (or the host name of the server it claims to be, when that name resolves to that
  address).
* ``portUnification=true``: the quorum and election ports take TLS and plaintext peers
  (told apart by the first byte), for a rolling change to or from ``sslQuorum``.
  Members dial with TLS when ``sslQuorum`` is true, in plaintext otherwise.
* ``sslQuorumReloadCertFiles=true``: the key and trust store files are watched (their
  size and modification time, every two seconds); a change rebuilds the TLS contexts,
  used by every link opened afterwards.  A store that no longer loads keeps the old
  contexts and logs why.
* ``quorum.auth.enableSasl`` / ``quorum.auth.learnerRequireSasl`` /
  ``quorum.auth.serverRequireSasl``: DIGEST-MD5 between members.  The dialling member
  (ZooKeeper's "learner" side of the link) logs in with ``username``/``password`` of the
  JAAS section ``quorum.auth.learner.saslLoginContext`` (default ``QuorumLearner``); the
  accepting member (the "server" side) checks them against the ``user_<name>`` entries
  of ``quorum.auth.server.saslLoginContext`` (default ``QuorumServer``), and proves that
  it knows the password too (DIGEST-MD5's rspauth).  ``serverRequireSasl`` refuses a
  dialler that does not authenticate; ``learnerRequireSasl`` makes the dialler refuse an
  accepting member that does not.  With ``enableSasl`` alone both are logged and
  accepted (a rolling upgrade), as in ZooKeeper.
* ``quorum.auth.kerberos.servicePrincipal``: Kerberos only; zabby has no Kerberos and
  refuses a JAAS section that uses it.

The handshake (in zabby's peer protocol, after the hello frames; see `peers`): a member
with quorum SASL enabled sends a version 2 hello with the SASL flag (without it, the
version 1 hello earlier zabby members send, so they still link with it).  The exchange
runs when both hellos carry the flag; its messages are frames of ``kind (u8) | body``:

    dialler  -> acceptor  START
    acceptor -> dialler   CHALLENGE  DIGEST-MD5 challenge
    dialler  -> acceptor  RESPONSE   DIGEST-MD5 response
    acceptor -> dialler   OUTCOME    status (u8: ok / failed but accepted / refused) + rspauth

Nothing is delivered to the ensemble, and nothing of it is sent, before the handshake
ends; the mesh bounds its time and the size of its frames.  `LearnerHandshake` and
`ServerHandshake` below are the two sides, sans-IO.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import NameOID

from .config import ConfigError
from .digest_md5 import DigestMD5Client, DigestMD5Server, SaslError
from .jaas import DIGEST_LOGIN_MODULE, KRB5_LOGIN_MODULE, JaasError, load_jaas
from .tls import StoreError, TlsConfig, context_from_settings

if TYPE_CHECKING:
    from .security import SecuritySettings

log = logging.getLogger("zabby.server.quorum_auth")

JAAS_KEY = "java.security.auth.login.config"
LEARNER_SECTION_KEY = "quorum.auth.learner.saslLoginContext"
SERVER_SECTION_KEY = "quorum.auth.server.saslLoginContext"
DEFAULT_LEARNER_SECTION = "QuorumLearner"
DEFAULT_SERVER_SECTION = "QuorumServer"
# time an accepted or dialled link has to finish its hello (and SASL) exchange
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
RELOAD_INTERVAL = 2.0

# handshake messages
START, CHALLENGE, RESPONSE, OUTCOME = 1, 2, 3, 4
OK, FAILED_ACCEPTED, REFUSED = 0, 1, 2
_KIND = struct.Struct(">B")


@dataclass
class QuorumSasl:
    learner_require: bool = False
    server_require: bool = False
    jaas_path: str = ""
    learner_section: str = DEFAULT_LEARNER_SECTION
    server_section: str = DEFAULT_SERVER_SECTION
    username: str = ""
    password: str = field(default="", repr=False)
    users: dict[str, str] = field(default_factory=dict, repr=False)

    def user_password(self, name: str) -> str | None:
        return self.users.get(name)


@dataclass
class QuorumSecurity:
    """What the peer mesh enforces. `server_tls`/`client_tls` are None without TLS."""

    ssl_quorum: bool = False
    port_unification: bool = False
    server_tls: TlsConfig | None = None
    client_tls: TlsConfig | None = None
    sasl: QuorumSasl | None = None
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    reload_cert_files: bool = False
    # for reloading: the configuration the contexts were built from
    _config: object = field(default=None, repr=False)

    @property
    def dial_tls(self) -> bool:
        return self.ssl_quorum and self.client_tls is not None

    @property
    def accept_tls(self) -> bool:
        return self.server_tls is not None and (self.ssl_quorum or self.port_unification)

    @property
    def accept_plain(self) -> bool:
        return not self.ssl_quorum or self.port_unification

    def describe(self) -> str:
        parts = []
        if self.ssl_quorum:
            parts.append("TLS (sslQuorum)")
        if self.port_unification:
            parts.append("TLS and plaintext accepted (portUnification)")
        if self.sasl is not None:
            parts.append(f"SASL DIGEST-MD5 (learnerRequireSasl={self.sasl.learner_require}, "
                         f"serverRequireSasl={self.sasl.server_require})")
        return ", ".join(parts) or "none"


# ------------------------------------------------------------------ settings
def load_quorum_security(settings: SecuritySettings) -> QuorumSecurity | None:
    """Take the quorum keys of `settings`; None when members neither use TLS nor SASL."""
    ssl_quorum = settings.take_bool("sslQuorum")
    unify = settings.take_bool("portUnification")
    reload_certs = settings.take_bool("sslQuorumReloadCertFiles")
    qs = QuorumSecurity(ssl_quorum=ssl_quorum, port_unification=unify,
                        reload_cert_files=reload_certs, _config=settings.config)
    quorum_ssl_keys = sorted(k for k in settings.values if k.startswith("ssl.quorum."))
    if ssl_quorum or unify:
        if not (settings.values.get("ssl.quorum.keyStore.location") or "").strip():
            key = "sslQuorum" if ssl_quorum else "portUnification"
            settings.take("ssl.quorum.keyStore.location")
            raise settings.error(key, "true", "needs a key store for member certificates, "
                                 "but ssl.quorum.keyStore.location is not set; refusing to "
                                 "start")
        qs.server_tls, qs.client_tls = _quorum_contexts(settings)
        qs.handshake_timeout = max(DEFAULT_HANDSHAKE_TIMEOUT, qs.server_tls.handshake_timeout)
        if qs.server_tls.client_auth != "need":
            log.warning("ssl.quorum.clientAuth=%s: members are not required to present a "
                        "certificate", qs.server_tls.client_auth)
        if unify:
            log.warning("portUnification=true: the quorum and election ports also accept "
                        "plaintext peers; turn it off once every member uses sslQuorum")
    else:
        # keys the AdminServer's HTTPS took are honoured (server.admin_tls)
        unused = [k for k in quorum_ssl_keys if k not in settings.taken]
        if unused:
            raise settings.error(unused[0], None, "is set but neither sslQuorum nor "
                                 "portUnification is (and the AdminServer's HTTPS does not "
                                 "use it): no peer link would use TLS; refusing to start")
        if reload_certs:
            raise settings.error("sslQuorumReloadCertFiles", "true", "is set but sslQuorum "
                                 "is not: there are no quorum certificates to reload")
    qs.sasl = _quorum_sasl(settings)
    if not (ssl_quorum or unify or qs.sasl is not None):
        return None
    log.info("quorum peer security: %s", qs.describe())
    return qs


def _quorum_contexts(settings: SecuritySettings) -> tuple[TlsConfig, TlsConfig]:
    server = context_from_settings(settings, "ssl.quorum.", server_side=True)
    client = context_from_settings(settings, "ssl.quorum.", server_side=False)
    if client.trust_store is None:
        raise settings.error("ssl.quorum.trustStore.location", None,
                             "is not set: members' certificates could not be verified")
    return server, client


def rebuild_contexts(qs: QuorumSecurity) -> None:
    """Build the TLS contexts again from the files (sslQuorumReloadCertFiles); raises
    ConfigError and keeps the old ones when the files do not load."""
    from .security import SecuritySettings

    settings = SecuritySettings(qs._config)  # type: ignore[arg-type]
    server, client = _quorum_contexts(settings)
    qs.server_tls, qs.client_tls = server, client


def _quorum_sasl(settings: SecuritySettings) -> QuorumSasl | None:
    enabled = settings.take_bool("quorum.auth.enableSasl")
    learner_require = settings.take_bool("quorum.auth.learnerRequireSasl")
    server_require = settings.take_bool("quorum.auth.serverRequireSasl")
    learner_section = settings.take(LEARNER_SECTION_KEY) or DEFAULT_LEARNER_SECTION
    server_section = settings.take(SERVER_SECTION_KEY) or DEFAULT_SERVER_SECTION
    principal = settings.take("quorum.auth.kerberos.servicePrincipal")
    if not enabled:
        for key, on in (("quorum.auth.learnerRequireSasl", learner_require),
                        ("quorum.auth.serverRequireSasl", server_require)):
            if on:
                raise settings.error(key, "true", "needs quorum.auth.enableSasl=true; "
                                     "refusing to start")
        return None
    if principal:
        log.info("quorum.auth.kerberos.servicePrincipal is only used by Kerberos; quorum SASL "
                 "uses DIGEST-MD5")
    path = settings.take(JAAS_KEY)
    if not path:
        raise settings.error(JAAS_KEY, None, "is not set: quorum.auth.enableSasl=true needs a "
                             f"JAAS file with the sections {learner_section!r} and "
                             f"{server_section!r}; refusing to start")
    s = QuorumSasl(learner_require=learner_require, server_require=server_require,
                   jaas_path=path, learner_section=learner_section,
                   server_section=server_section)
    try:
        jaas = load_jaas(path)
        learner = jaas.require(learner_section)
        server = jaas.require(server_section)
    except JaasError as e:
        raise settings.error(JAAS_KEY, path, f"unusable for quorum SASL ({e}); refusing to "
                             "start") from e
    for sec in (learner, server):
        for m in sec.modules:
            if m.class_name == KRB5_LOGIN_MODULE:
                raise settings.error(JAAS_KEY, path, f"section {sec.name!r} uses Kerberos; "
                                     "zabby's quorum SASL is DIGEST-MD5 only; refusing to start")
            if m.class_name != DIGEST_LOGIN_MODULE:
                raise settings.error(JAAS_KEY, path, f"section {sec.name!r}: login module "
                                     f"{m.class_name!r} is not supported (only "
                                     f"{DIGEST_LOGIN_MODULE}); refusing to start")
    opts = learner.options(DIGEST_LOGIN_MODULE)
    if not opts.get("username") or "password" not in opts:
        raise settings.error(JAAS_KEY, path, f"section {learner_section!r} needs username= "
                             "and password= (the credentials this member logs in with); "
                             "refusing to start")
    s.username, s.password = opts["username"], opts["password"]
    s.users = server.digest_users()
    if not s.users:
        raise settings.error(JAAS_KEY, path, f"section {server_section!r} lists no "
                             "user_<name>= entry (the members allowed in); refusing to start")
    if s.users.get(s.username) != s.password:
        log.warning("quorum SASL: the learner user of section %r is not accepted by section "
                    "%r of %s: other members with the same file would refuse this one",
                    learner_section, server_section, path)
    return s


# ------------------------------------------------------------------ handshake
class HandshakeRefused(Exception):
    """The link must be closed; the message (safe to log) says why."""


def encode_msg(kind: int, body: bytes = b"") -> bytes:
    return _KIND.pack(kind) + body


def _decode_msg(msg: bytes) -> tuple[int, bytes]:
    if not msg:
        raise HandshakeRefused("empty handshake message")
    return msg[0], msg[1:]


class LearnerHandshake:
    """The dialling member's side of quorum SASL, sans-IO.

    ``start()`` gives the first message; ``receive(msg)`` the replies to send; when
    ``done`` is set, ``authenticated`` says whether the peer proved itself.  Raises
    HandshakeRefused when the link must be dropped."""

    def __init__(self, sasl: QuorumSasl) -> None:
        self.sasl = sasl
        self.client = DigestMD5Client(sasl.username, sasl.password)
        self.done = False
        self.authenticated = False
        self.failure: str | None = None
        self._state = "start"

    def start(self) -> bytes:
        if self._state != "start":
            raise HandshakeRefused("handshake already started")
        self._state = "challenge"
        return encode_msg(START)

    def receive(self, msg: bytes) -> list[bytes]:
        kind, body = _decode_msg(msg)
        if self._state == "challenge" and kind == CHALLENGE:
            try:
                token = self.client.step(body)
            except SaslError as e:
                # an unusable challenge: answer nothing useful, the server fails us
                self.failure = str(e)
                token = b""
            self._state = "outcome"
            return [encode_msg(RESPONSE, token)]
        if self._state == "outcome" and kind == OUTCOME and body:
            status, rspauth = body[0], body[1:]
            self._state = "done"
            self.done = True
            if status == OK and self.failure is None:
                try:
                    self.client.step(rspauth)
                    self.authenticated = self.client.complete
                except SaslError as e:
                    self.failure = str(e)
            elif status == REFUSED:
                raise HandshakeRefused("the server refused our credentials")
            elif self.failure is None:
                self.failure = "the server did not accept our credentials"
            if not self.authenticated and self.sasl.learner_require:
                raise HandshakeRefused(f"server not authenticated ({self.failure}) and "
                                       "quorum.auth.learnerRequireSasl=true")
            return []
        state, self._state = self._state, "failed"
        raise HandshakeRefused(f"unexpected handshake message {kind} (state {state})")


class ServerHandshake:
    """The accepting member's side of quorum SASL, sans-IO (see LearnerHandshake)."""

    def __init__(self, sasl: QuorumSasl) -> None:
        self.sasl = sasl
        self.server = DigestMD5Server(sasl.user_password)
        self.done = False
        self.authenticated = False
        self.user: str | None = None
        self.failure: str | None = None
        self._state = "start"

    def receive(self, msg: bytes) -> list[bytes]:
        kind, body = _decode_msg(msg)
        if self._state == "start" and kind == START and not body:
            self._state = "response"
            return [encode_msg(CHALLENGE, self.server.step(b""))]
        if self._state == "response" and kind == RESPONSE:
            self._state = "done"
            self.done = True
            try:
                rspauth = self.server.step(body)
            except SaslError as e:
                self.failure = str(e)
                if self.sasl.server_require:
                    raise HandshakeRefused(f"{e} (quorum.auth.serverRequireSasl=true)",
                                           encode_msg(OUTCOME, bytes([REFUSED]))) from None
                return [encode_msg(OUTCOME, bytes([FAILED_ACCEPTED]))]
            self.authenticated = True
            self.user = self.server.authentication_id
            return [encode_msg(OUTCOME, bytes([OK]) + rspauth)]
        state, self._state = self._state, "failed"
        raise HandshakeRefused(f"unexpected handshake message {kind} (state {state})")


def refusal_reply(e: HandshakeRefused) -> bytes | None:
    """The message to send the peer before closing, if any."""
    return e.args[1] if len(e.args) > 1 else None


def sasl_negotiation(sasl: QuorumSasl | None, peer_sasl: bool, dialler: bool) -> bool:
    """Whether the link runs the SASL exchange; HandshakeRefused when a required
    exchange cannot run (the peer does not do quorum SASL)."""
    if sasl is None:
        return False
    if peer_sasl:
        return True
    if dialler and sasl.learner_require:
        raise HandshakeRefused("it does not do quorum SASL and "
                               "quorum.auth.learnerRequireSasl=true")
    if not dialler and sasl.server_require:
        raise HandshakeRefused("it does not do quorum SASL and "
                               "quorum.auth.serverRequireSasl=true")
    return False


# ------------------------------------------------------------------ host names
def _cert_names(cert: x509.Certificate) -> tuple[list[str], list[ipaddress._BaseAddress]]:
    dns: list[str] = []
    ips: list[ipaddress._BaseAddress] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [d.lower() for d in san.get_values_for_type(x509.DNSName)]
        ips = list(san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    if not dns and not ips:
        # no subject alternative names: the most specific CN, as Java's checker does
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if cns:
            dns = [str(cns[-1].value).lower()]
    return dns, ips


def _dns_match(pattern: str, host: str) -> bool:
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:] and pattern.count(".") >= 2
    return False


def certificate_matches(cert: x509.Certificate, host: str) -> bool:
    """Does `cert` name `host` (an IP address or a DNS name)?"""
    dns, ips = _cert_names(cert)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        h = host.lower().rstrip(".")
        return any(_dns_match(p, h) for p in dns)
    return addr in ips or host in dns


async def resolve_hosts(hosts: set[str]) -> dict[str, set[str]]:
    """host -> its addresses (asynchronously; unresolvable hosts map to nothing)."""
    loop = asyncio.get_running_loop()
    out: dict[str, set[str]] = {}
    for h in hosts:
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(h, None, type=socket.SOCK_STREAM), 5.0)
            out[h] = {i[4][0] for i in infos}
        except (OSError, TimeoutError):
            out[h] = set()
    return out


# ------------------------------------------------------------------ reloading
def _stamp(path: str | None) -> tuple[int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


async def watch_cert_files(qs: QuorumSecurity, interval: float = RELOAD_INTERVAL) -> None:
    """sslQuorumReloadCertFiles: rebuild the contexts when a store file changes."""
    assert qs.server_tls is not None
    files = [qs.server_tls.key_store, qs.server_tls.trust_store]
    stamps = [_stamp(f) for f in files]
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = [_stamp(f) for f in files]
        if now == stamps:
            continue
        stamps = now
        try:
            # the stores are read and decrypted off the event loop
            await loop.run_in_executor(None, rebuild_contexts, qs)
        except (ConfigError, StoreError) as e:
            log.error("sslQuorumReloadCertFiles: keeping the previous certificates: %s", e)
            continue
        except Exception as e:  # never let the watcher die silently
            log.error("sslQuorumReloadCertFiles: keeping the previous certificates: %s: %s",
                      type(e).__name__, e)
            continue
        log.info("sslQuorumReloadCertFiles: reloaded the quorum key and trust stores (%s)",
                 qs.server_tls.describe())


__all__ = [
    "CHALLENGE", "FAILED_ACCEPTED", "OK", "OUTCOME", "REFUSED", "RESPONSE", "START",
    "HandshakeRefused", "LearnerHandshake", "QuorumSasl", "QuorumSecurity", "ServerHandshake",
    "certificate_matches", "encode_msg", "load_quorum_security", "rebuild_contexts",
    "refusal_reply", "resolve_hosts", "sasl_negotiation", "watch_cert_files",
]
