"""SASL for clients (opcode 102) and the authentication policy keys, as ZooKeeper 3.8.

Settings (canonical names, from zoo.cfg or ``-D``):

* ``java.security.auth.login.config``: the JAAS file; its section ``sasl.serverconfig``
  (default ``Server``) lists the DIGEST-MD5 users (``user_<name>="<password>"``).
* ``authProvider.N=...SASLAuthenticationProvider``: registers the ``sasl`` ACL scheme
  (security.py).  Without it clients still authenticate, but sasl ACLs are refused.
* ``superUser``: a SASL authorization id that also gets ``super``.
* ``SASLAuthenticationProvider.superPassword``: the password of user ``super``.
* ``allowSaslFailedClients``: a failed exchange is answered OK (empty token) and the
  connection stays, unauthenticated.
* ``enforce.auth.enabled`` + ``enforce.auth.schemes``: every request other than auth and
  SASL from a connection without an id of those schemes gets SESSIONCLOSEDREQUIRESASLAUTH
  and the connection is closed (the session lives on until it expires).
* ``sessionRequireClientSASLAuth``: the same with schemes = [sasl]; a failed SASL
  exchange then answers SESSIONCLOSEDREQUIRESASLAUTH (not AUTHFAILED) even when failed
  clients are allowed.

What each does was found by running the same clients against ZooKeeper 3.8
(tests/differential/test_sasl_diff.py).  zabby refuses to start where ZooKeeper would
silently run without SASL (a JAAS file without the server section), and on Kerberos.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..wire import Err, Id
from ..wire.protocol import encode_reply
from ..wire.records import SaslToken
from .digest_md5 import DigestMD5Server, SaslError
from .jaas import DIGEST_LOGIN_MODULE, KRB5_LOGIN_MODULE, JaasError, load_jaas

if TYPE_CHECKING:
    from .connection import ClientConnection
    from .security import SecuritySettings

log = logging.getLogger("zabby.server.sasl")

JAAS_KEY = "java.security.auth.login.config"
SECTION_KEY = "sasl.serverconfig"
DEFAULT_SECTION = "Server"
SUPER_PASSWORD_KEY = "SASLAuthenticationProvider.superPassword"
# SetSASLResponse with a null token: what ZooKeeper sends with every failure reply
_NULL_TOKEN = b"\xff\xff\xff\xff"
# sasl.* system properties of ZooKeeper's client
_CLIENT_ONLY = (
    "sasl.client", "sasl.clientconfig", "sasl.client.username",
    "sasl.client.canonicalize.hostname", "sasl.client.allowReverseDnsLookup",
)


@dataclass
class SaslSettings:
    jaas_path: str | None = None
    section: str = DEFAULT_SECTION
    # DIGEST-MD5 users of the server section; None when there is no server login, in
    # which case ZooKeeper answers every SASL packet OK with no token
    users: dict[str, str] | None = field(default=None, repr=False)
    super_user: str | None = None
    super_password: str | None = field(default=None, repr=False)
    allow_failed: bool = False
    enforce: bool = False
    enforce_schemes: frozenset[str] = frozenset()

    @property
    def sasl_required(self) -> bool:
        return self.enforce and "sasl" in self.enforce_schemes

    def password(self, user: str) -> str | None:
        if user == "super" and self.super_password is not None:
            return self.super_password
        return (self.users or {}).get(user)


def load_sasl(settings: SecuritySettings, providers: set[str], *,
              quorum_sasl: bool = False) -> SaslSettings:
    """Take the SASL and policy keys; ConfigError for anything zabby cannot honour.

    `providers` are the registered ACL schemes (ip, digest, and those of authProvider.N).
    `quorum_sasl`: the JAAS file is (also) there for quorum SASL (server.quorum_auth), so
    a file without the client section is not a mistake unless the section was named."""
    s = SaslSettings()
    path = settings.take(JAAS_KEY)
    named_section = settings.take(SECTION_KEY)
    s.section = named_section or DEFAULT_SECTION
    if quorum_sasl and path and not named_section and _section_missing(path, s.section):
        log.info("%s has no %r section: no SASL for clients (the file serves quorum SASL)",
                 path, s.section)
        path = None
    for key in _CLIENT_ONLY:
        # ZooKeeper's client reads these (zkEnv.sh's JVMFLAGS reach client and server
        # alike); a server has nothing to do with them
        if settings.take(key) is not None:
            log.debug("%s is a client setting; the server ignores it", key)
    s.super_user = settings.take("superUser")
    s.super_password = settings.take(SUPER_PASSWORD_KEY)
    s.allow_failed = settings.take_bool("allowSaslFailedClients")
    require = settings.take_bool("sessionRequireClientSASLAuth")
    enabled = settings.take_bool("enforce.auth.enabled")
    schemes_raw = settings.take("enforce.auth.schemes")
    if require:
        # sessionRequireClientSASLAuth overrides enforce.auth.*
        s.enforce, s.enforce_schemes = True, frozenset({"sasl"})
    else:
        s.enforce = enabled
        if schemes_raw is not None:
            s.enforce_schemes = frozenset(x.strip() for x in schemes_raw.split(","))
    if s.enforce:
        key = "sessionRequireClientSASLAuth" if require else "enforce.auth.schemes"
        if not s.enforce_schemes:
            raise settings.error("enforce.auth.schemes", schemes_raw,
                                 "must name the schemes when enforce.auth.enabled is true; "
                                 "refusing to start")
        for scheme in sorted(s.enforce_schemes):
            if scheme not in providers:
                raise settings.error(
                    key, schemes_raw if not require else "true",
                    f"authentication scheme {scheme!r} is not available (register it with "
                    "authProvider.N, e.g. org.apache.zookeeper.server.auth."
                    "SASLAuthenticationProvider for sasl); refusing to start")
    if path is not None and path != "":
        s.jaas_path = path
        try:
            section = load_jaas(path).require(s.section)
        except JaasError as e:
            raise settings.error(JAAS_KEY, path,
                                 f"unusable JAAS file ({e}); refusing to start") from e
        for m in section.modules:
            if m.class_name == KRB5_LOGIN_MODULE:
                raise settings.error(
                    JAAS_KEY, path, f"section {s.section!r} uses Kerberos "
                    f"({KRB5_LOGIN_MODULE}); zabby has no GSSAPI/Kerberos, only DIGEST-MD5; "
                    "refusing to start")
            if m.class_name != DIGEST_LOGIN_MODULE:
                raise settings.error(
                    JAAS_KEY, path, f"section {s.section!r}: login module {m.class_name!r} "
                    f"is not supported (only {DIGEST_LOGIN_MODULE}); refusing to start")
        s.users = section.digest_users()
    for key in sorted(settings.values):
        if key.startswith("kerberos.") or key in ("java.security.krb5.conf",
                                                  "javax.security.auth.useSubjectCredsOnly"):
            raise settings.error(key, settings.take(key),
                                 "Kerberos (GSSAPI) is not supported by zabby; refusing to start")
    return s


def _section_missing(path: str, section: str) -> bool:
    try:
        return load_jaas(path).section(section) is None
    except JaasError:
        return False  # load_sasl reports it


def authorization_id(authcid: str, authzid: str | None) -> str:
    """The sasl id of an authenticated DIGEST-MD5 user: its authentication id, whatever
    authorization id the client asked for (ZooKeeper's server callback authorizes every
    request and then sets the id to the authentication id).

    ZooKeeper runs that id through Kerberos short-name rules first; for a name with a
    realm other than the default one those fail and ZooKeeper keeps the authorization id
    the client asked for, letting it pick any id.  zabby never does: the id is always
    the name the password was checked for."""
    return authcid


class SaslService:
    """Per-server SASL: the settings, the exchanges of connections in progress."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings

    # ---------------------------------------------------------- enforcement
    def enforce(self, conn: ClientConnection, xid: int) -> bool:
        """False (and the connection answered and closing) when enforce.auth refuses a
        request (any but auth and SASL) from `conn`."""
        st = self.settings
        if not st.enforce:
            return True
        schemes = st.enforce_schemes
        for ident in conn.auth:
            if ident.scheme in schemes:
                return True
        log.warning("Client %s:%d authenticated with %s, not one of the required schemes %s; "
                    "closing the connection", *conn.peer,
                    sorted({i.scheme for i in conn.auth}), sorted(schemes))
        conn.send(encode_reply(xid, 0, Err.SESSIONCLOSEDREQUIRESASLAUTH))
        conn.close_after_flush()
        return False

    # ---------------------------------------------------------- opcode 102
    def handle(self, conn: ClientConnection, xid: int, token: bytes | None,
               session_id: int) -> list[Id]:
        """Answer one SASL packet on `conn`; the ids it gained (empty if none)."""
        st = self.settings
        if st.users is None:
            # no server login: ZooKeeper has no SASL server and answers OK, no token
            # (debug: the connection stays, so a client could fill the log)
            log.debug("SASL packet from %s:%d, but no JAAS file is configured", *conn.peer)
            _null_token(conn, xid, Err.OK)
            return []
        server = conn.sasl
        if server is None:
            server = conn.sasl = DigestMD5Server(st.password, authorize=authorization_id)
        again = server.failed
        try:
            out = server.step(token or b"")
        except SaslError as e:
            if st.allow_failed and not st.sasl_required:
                # the connection stays: log its first failure only
                (log.debug if again else log.warning)(
                    "Client %s:%d failed to SASL authenticate: %s; keeping the connection "
                    "(allowSaslFailedClients)", *conn.peer, e)
                _null_token(conn, xid, Err.OK)
                return []
            log.warning("Client %s:%d failed to SASL authenticate: %s", *conn.peer, e)
            err = Err.SESSIONCLOSEDREQUIRESASLAUTH if st.sasl_required else Err.AUTHFAILED
            _null_token(conn, xid, err)
            conn.close_after_flush()
            return []
        gained: list[Id] = []
        if server.complete and server.authorization_id is not None:
            ident = server.authorization_id
            log.info("Session 0x%x: adding SASL authorization for authorizationID: %s",
                     session_id & (2**64 - 1), ident)
            gained.append(Id("sasl", ident))
            if st.super_user is not None and ident == st.super_user:
                log.info("Session 0x%x: authenticated id %r as super user",
                         session_id & (2**64 - 1), ident)
                gained.append(Id("super", ""))
        conn.send(_token_reply(xid, out))
        return gained


def _token_reply(xid: int, token: bytes) -> bytes:
    return bytes(encode_reply(xid, 0, Err.OK, SaslToken(token)))


def _null_token(conn: ClientConnection, xid: int, err: int) -> None:
    """A reply with SetSASLResponse(null) after the header, error or not (as ZooKeeper)."""
    reply = encode_reply(xid, 0, err)
    reply += _NULL_TOKEN
    reply[0:4] = (len(reply) - 4).to_bytes(4, "big")
    conn.send(reply)
