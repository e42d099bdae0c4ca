"""SASL for clients (opcode 102) and the authentication policy keys, as ZooKeeper 3.8.

Settings (canonical names, from zoo.cfg or ``-D``):

* ``java.security.auth.login.config``: the JAAS file; its section ``sasl.serverconfig``
  (default ``Server``) either lists DIGEST-MD5 users (``DigestLoginModule`` with
  ``user_<name>="<password>"``) or names the server's Kerberos principal and keytab
  (``Krb5LoginModule``, GSSAPI; needs the ``gssapi`` package).
* ``authProvider.N=...SASLAuthenticationProvider``: registers the ``sasl`` ACL scheme
  (security.py).  Without it clients still authenticate, but sasl ACLs are refused.
* ``superUser``: a SASL authorization id that also gets ``super``.
* ``SASLAuthenticationProvider.superPassword``: the password of DIGEST-MD5 user ``super``.
* ``allowSaslFailedClients``: a failed exchange is answered OK (null token) and the
  connection stays, unauthenticated.
* ``enforce.auth.enabled`` + ``enforce.auth.schemes``: every request other than auth and
  SASL from a connection without an id of those schemes gets SESSIONCLOSEDREQUIRESASLAUTH
  and the connection is closed (the session lives on until it expires).
* ``sessionRequireClientSASLAuth``: the same with schemes = [sasl]; a failed SASL
  exchange then answers SESSIONCLOSEDREQUIRESASLAUTH (not AUTHFAILED) even when failed
  clients are allowed.
* ``java.security.krb5.conf``, ``kerberos.removeHostFromPrincipal``,
  ``kerberos.removeRealmFromPrincipal``: Kerberos configuration and how a principal
  becomes an id (also for DIGEST-MD5 user names with a realm, as in ZooKeeper).

What each does was found by running the same clients against ZooKeeper 3.8
(tests/differential/test_sasl_diff.py, tests/external/test_zkcli_sasl.py).  zabby
refuses to start where ZooKeeper would silently run without SASL (a JAAS file without
the server section).

A GSSAPI step reads the keytab and the replay cache: it runs on a worker thread, and
the connection's later packets wait until it is answered (as ZooKeeper handles a SASL
packet before the next one).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..wire import Err, Id
from ..wire.protocol import encode_reply
from ..wire.records import SaslToken
from .digest_md5 import DigestMD5Server, SaslError
from .gssapi_sasl import GssapiSaslServer, KerberosNames, default_realm
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
KRB5_CONF_KEY = "java.security.krb5.conf"
# Krb5LoginModule options that change nothing for an acceptor reading a keytab
_KRB5_HARMLESS = frozenset({"storeKey", "doNotPrompt", "debug", "isInitiator",
                            "refreshKrb5Config", "renewTGT", "clearPass"})
# where the JVM looks for krb5.conf when java.security.krb5.conf is not set (Linux)
_DEFAULT_KRB5_CONF = "/etc/krb5.conf"


@dataclass
class KerberosSettings:
    principal: str
    keytab: str
    krb5_conf: str | None
    credentials: Any = field(repr=False)  # gssapi.Credentials (accept)


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
    # GSSAPI instead of DIGEST-MD5 when the server section uses Krb5LoginModule
    kerberos: KerberosSettings | None = None
    names: KerberosNames = field(default_factory=lambda: KerberosNames(""))

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
    rules = settings.take("security.auth_to_local")
    if rules is not None and rules.strip() != "DEFAULT":
        raise settings.error("security.auth_to_local", rules,
                             "only the DEFAULT rule is supported; refusing to start")
    krb5_conf = settings.take(KRB5_CONF_KEY)
    settings.take("javax.security.auth.useSubjectCredsOnly")  # the JVM's; nothing to do
    s.names = KerberosNames(
        default_realm(krb5_conf or _DEFAULT_KRB5_CONF),
        remove_host=settings.take_bool("kerberos.removeHostFromPrincipal"),
        remove_realm=settings.take_bool("kerberos.removeRealmFromPrincipal"),
    )
    if path is not None and path != "":
        s.jaas_path = path
        try:
            section = load_jaas(path).require(s.section)
        except JaasError as e:
            raise settings.error(JAAS_KEY, path,
                                 f"unusable JAAS file ({e}); refusing to start") from e
        classes = {m.class_name for m in section.modules}
        if classes == {KRB5_LOGIN_MODULE}:
            s.kerberos = _load_kerberos(settings, path, s.section,
                                        section.options(KRB5_LOGIN_MODULE), krb5_conf)
        elif classes == {DIGEST_LOGIN_MODULE}:
            s.users = section.digest_users()
        else:
            raise settings.error(
                JAAS_KEY, path, f"section {s.section!r}: login modules "
                f"{sorted(classes)} are not supported (one of {DIGEST_LOGIN_MODULE} or "
                f"{KRB5_LOGIN_MODULE}); refusing to start")
    for key in sorted(settings.values):
        if key.startswith("kerberos.") and key not in settings.taken:
            raise settings.error(key, settings.take(key),
                                 "is not a Kerberos setting zabby has; refusing to start")
    return s


def _section_missing(path: str, section: str) -> bool:
    try:
        return load_jaas(path).section(section) is None
    except JaasError:
        return False  # load_sasl reports it


def _load_kerberos(settings: SecuritySettings, path: str, section: str,
                   options: dict[str, str], krb5_conf: str | None) -> KerberosSettings:
    """The acceptor credentials of a Krb5LoginModule server section (keytab only)."""

    def refuse(reason: str):
        return settings.error(JAAS_KEY, path, f"section {section!r} (Kerberos): {reason}; "
                              "refusing to start")

    unknown = sorted(k for k in options if k not in _KRB5_HARMLESS and k not in (
        "useKeyTab", "keyTab", "principal", "useTicketCache"))
    if unknown:
        raise refuse(f"option(s) {', '.join(unknown)} not supported")
    if options.get("useKeyTab", "").lower() != "true" or not options.get("keyTab"):
        raise refuse("zabby reads the server's key from a keytab only: set useKeyTab=true "
                     "and keyTab")
    if options.get("useTicketCache", "false").lower() == "true":
        raise refuse("useTicketCache=true is not supported (use the keytab)")
    principal = options.get("principal", "")
    if not principal or principal == "*":
        raise refuse("name the server's principal (principal=\"zookeeper/host@REALM\")")
    keytab = options["keyTab"]
    try:
        import gssapi
    except ImportError as e:
        raise refuse("GSSAPI needs the gssapi package (pip install 'zabby[kerberos]')") from e
    if krb5_conf:
        if not os.access(krb5_conf, os.R_OK):
            raise settings.error(KRB5_CONF_KEY, krb5_conf, "cannot be read; refusing to start")
        # the Kerberos library of this process reads it from the environment
        os.environ["KRB5_CONFIG"] = krb5_conf
    if not os.access(keytab, os.R_OK):
        raise refuse(f"keytab {keytab!r} cannot be read")
    try:
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        creds = gssapi.Credentials(name=name, usage="accept", store={"keytab": keytab})
        creds.lifetime  # noqa: B018 - fails now if the keytab has no key for the principal
    except Exception as e:  # gssapi.exceptions.GSSError
        raise refuse(f"no key for {principal!r} in {keytab!r}: {_gss_reason(e)}") from e
    return KerberosSettings(principal, keytab, krb5_conf, creds)


def _gss_reason(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__


class _Exchange:
    """A connection's SASL state: the mechanism's server, and while a GSSAPI step runs
    on a worker thread, the packets that arrived after it (handled once it is done)."""

    __slots__ = ("server", "held")

    def __init__(self, server) -> None:
        self.server = server
        self.held: deque | None = None


class SaslService:
    """Per-server SASL: the settings, the exchanges of connections in progress."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self._executor: ThreadPoolExecutor | None = None  # GSSAPI steps, made on first use

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
    def _new_server(self):
        st = self.settings
        if st.kerberos is not None:
            import gssapi

            ctx = gssapi.SecurityContext(creds=st.kerberos.credentials, usage="accept")
            return GssapiSaslServer(ctx, st.names)
        # the id of a DIGEST-MD5 user with a realm goes through the same name rules
        return DigestMD5Server(st.password, authorize=lambda authcid, _z: st.names(authcid))

    def handle(self, conn: ClientConnection, xid: int, token: bytes | None,
               session_id: int, add_id: Callable[[Id], None],
               resume: Callable[[ClientConnection, deque], None]) -> None:
        """Answer one SASL packet on `conn`.  `add_id` gets the ids it gains; `resume`
        gets the packets held back while a GSSAPI step ran on a worker thread."""
        st = self.settings
        if st.users is None and st.kerberos is None:
            # no server login: ZooKeeper has no SASL server and answers OK, no token
            # (debug: the connection stays, so a client could fill the log)
            log.debug("SASL packet from %s:%d, but no JAAS file is configured", *conn.peer)
            _null_token(conn, xid, Err.OK)
            return
        ex = conn.sasl
        if ex is None:
            ex = conn.sasl = _Exchange(self._new_server())
        server = ex.server
        if st.kerberos is None:
            again = server.failed
            try:
                out = server.step(token or b"")
            except SaslError as e:
                self._failed(conn, xid, e, again)
                return
            self._answer(conn, xid, server, out, session_id, add_id)
            return
        # GSSAPI: off the loop; this connection's next packets wait for the answer
        again = server.failed
        ex.held = deque()
        if conn.transport is not None:
            conn.transport.pause_reading()
        if self._executor is None:
            # its own small pool: a burst of logins queues here, not in the loop's
            # default executor
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zabby-gssapi")
        fut = asyncio.get_running_loop().run_in_executor(self._executor, _step, server,
                                                         token or b"")

        def done(f: asyncio.Future) -> None:
            held, ex.held = ex.held, None
            if conn.closed:
                return
            if conn.transport is not None and not conn.closing:
                conn.transport.resume_reading()
            err = f.exception()
            if err is not None:
                if not isinstance(err, SaslError):
                    err = SaslError(f"GSSAPI: {type(err).__name__}")
                self._failed(conn, xid, err, again)
            else:
                self._answer(conn, xid, server, f.result(), session_id, add_id)
            if held and not (conn.closed or conn.closing):
                resume(conn, held)

        fut.add_done_callback(done)

    def _answer(self, conn: ClientConnection, xid: int, server, out: bytes | None,
                session_id: int, add_id: Callable[[Id], None]) -> None:
        st = self.settings
        if server.complete and server.authorization_id is not None:
            # only the completing step gets here: any later one fails
            ident = server.authorization_id
            log.info("Session 0x%x: adding SASL authorization for authorizationID: %s",
                     session_id & (2**64 - 1), ident)
            add_id(Id("sasl", ident))
            if st.super_user is not None and ident == st.super_user:
                log.info("Session 0x%x: authenticated id %r as super user",
                         session_id & (2**64 - 1), ident)
                add_id(Id("super", ""))
        if out is None:
            _null_token(conn, xid, Err.OK)
        else:
            conn.send(_token_reply(xid, out))

    def _failed(self, conn: ClientConnection, xid: int, e: Exception, again: bool) -> None:
        st = self.settings
        if st.allow_failed and not st.sasl_required:
            # the connection stays: log its first failure only
            (log.debug if again else log.warning)(
                "Client %s:%d failed to SASL authenticate: %s; keeping the connection "
                "(allowSaslFailedClients)", *conn.peer, e)
            _null_token(conn, xid, Err.OK)
            return
        log.warning("Client %s:%d failed to SASL authenticate: %s", *conn.peer, e)
        err = Err.SESSIONCLOSEDREQUIRESASLAUTH if st.sasl_required else Err.AUTHFAILED
        _null_token(conn, xid, err)
        conn.close_after_flush()


def _step(server, token: bytes):
    return server.step(token)


def _token_reply(xid: int, token: bytes) -> bytes:
    return bytes(encode_reply(xid, 0, Err.OK, SaslToken(token)))


def _null_token(conn: ClientConnection, xid: int, err: int) -> None:
    """A reply with SetSASLResponse(null) after the header, error or not (as ZooKeeper)."""
    reply = encode_reply(xid, 0, err)
    reply += _NULL_TOKEN
    reply[0:4] = (len(reply) - 4).to_bytes(4, "big")
    conn.send(reply)
