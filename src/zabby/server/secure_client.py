"""TLS for clients: the secure client port, port unification and x509 identities.

Settings (ZooKeeper 3.8's names; see `tls` for the ``ssl.*`` keys):

* ``secureClientPort`` / ``secureClientPortAddress``: a second listener, TLS only.
* ``client.portUnification=true``: the plaintext ``clientPort`` also accepts TLS; the
  first byte tells them apart (0x16, a TLS handshake record, means TLS), as ZooKeeper's
  Netty factory does.  The byte is peeked (MSG_PEEK) when the socket becomes readable,
  then the socket is handed to asyncio with or without TLS: nothing blocks the loop.  A
  client that sends nothing within ``ssl.handshakeDetectionTimeoutMillis`` is dropped.
* ``ssl.authProvider``: only ``x509`` (the default).
* ``X509AuthenticationProvider.superUser``: the DN that also gets ``super``.

When TLS for clients is on (or ``authProvider.N`` names X509AuthenticationProvider) the
``x509`` scheme is registered, as ZooKeeper's ``configureSSLAuth`` does.  A connection
whose client certificate was verified (``ssl.clientAuth`` need, or want and a certificate
was sent) is authenticated as ``x509:<subject DN>`` in Java's RFC 2253 form
(`tls.java_dn`), after its ``ip`` id and, for the super user, ``super``.

``ssl.*`` keys without a TLS listener refuse to start: nothing would use them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire import Id
from .config import ConfigError
from .listen import accept_forever, first_byte_is_tls, listen_socket
from .tls import TlsConfig, context_from_settings, peer_identity

if TYPE_CHECKING:
    from .connection import ClientConnection
    from .core import ZabbyServer
    from .security import SecuritySettings

log = logging.getLogger("zabby.server.tls")

X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"


@dataclass
class ClientTls:
    tls: TlsConfig | None  # None: x509 registered without a TLS listener
    secure_port: int | None = None
    secure_address: str = "0.0.0.0"
    port_unification: bool = False
    super_user: str | None = None

    def authenticate(self, conn: ClientConnection) -> None:
        """Add the x509 (and super) ids of a verified client certificate to `conn.auth`."""
        if self.tls is None or self.tls.client_auth == "none" or conn.transport is None:
            return
        dn = peer_identity(conn.transport.get_extra_info("ssl_object"))
        if dn is None:
            return
        if self.super_user is not None and dn == self.super_user:
            conn.auth.append(Id("super", dn))
            log.info("Authenticated Id '%s' as super user", dn)
        conn.auth.append(Id("x509", dn))
        log.info("Authenticated Id '%s' for Scheme 'x509'", dn)


def load_client_tls(settings: SecuritySettings, x509_provider: bool) -> ClientTls | None:
    """Client TLS from `settings` (None when off). `x509_provider`: an authProvider.N
    names X509AuthenticationProvider, or the AdminServer verifies client certificates
    (``admin.needClientAuth``: `admin_tls`).  ConfigError when it cannot be honoured."""
    try:
        return _load(settings, x509_provider)
    except ConfigError as e:
        msg = str(e)
        if "refusing to start" in msg:
            raise
        raise ConfigError(msg + "; refusing to start", source=e.source, key=e.key,
                          value=e.value) from None


def _load(settings: SecuritySettings, x509_provider: bool) -> ClientTls | None:
    cfg = settings.config
    raw_port = settings.take("secureClientPort")
    raw_addr = settings.take("secureClientPortAddress")
    unify = settings.take_bool("client.portUnification", False)
    port = None
    if raw_port is not None and raw_port.strip() != "":
        try:
            port = int(raw_port.strip())
        except ValueError:
            raise settings.error("secureClientPort", raw_port, "is not an integer") from None
        if port == 0:
            port = None  # ZooKeeper: 0 means not set
        elif not 1 <= port <= 65535:
            raise settings.error("secureClientPort", raw_port, "is not a port number (1..65535)")
    if raw_addr is not None and port is None:
        raise settings.error("secureClientPortAddress", raw_addr,
                             "is set but secureClientPort is not set")
    if port is not None and port == cfg.client_port and cfg.client_port_given:
        raise settings.error("secureClientPort", raw_port,
                             f"is the same as clientPort ({cfg.client_port})")
    auth_provider = settings.take("ssl.authProvider")
    if auth_provider is not None and auth_provider.strip() != "x509":
        raise settings.error("ssl.authProvider", auth_provider, "is not x509, the only TLS "
                             "authentication provider zabby has")
    tls_on = port is not None or unify
    ssl_keys = sorted(k for k in settings.values if k.startswith("ssl.")
                      and not k.startswith("ssl.quorum.") and k != "ssl.authProvider")
    if not tls_on:
        if ssl_keys:
            raise settings.error(ssl_keys[0], None, "is set but neither secureClientPort nor "
                                 "client.portUnification is: no listener would use TLS; "
                                 "refusing to start")
        if not x509_provider:
            if settings.present("X509AuthenticationProvider.superUser"):
                settings.take("X509AuthenticationProvider.superUser")
                raise settings.error("X509AuthenticationProvider.superUser", None,
                                     "is set but x509 authentication is not on (set "
                                     "secureClientPort, client.portUnification or "
                                     "admin.needClientAuth)")
            return None
        return ClientTls(None, super_user=settings.take("X509AuthenticationProvider.superUser"))
    if not (settings.values.get("ssl.keyStore.location") or "").strip():
        on = "secureClientPort" if port is not None else "client.portUnification"
        raise settings.error("ssl.keyStore.location", None,
                             f"is not set, but {on} needs a key store for TLS")
    tls = context_from_settings(settings, "ssl.", server_side=True)
    return ClientTls(tls, secure_port=port, secure_address=(raw_addr or "0.0.0.0").strip(),
                     port_unification=unify,
                     super_user=settings.take("X509AuthenticationProvider.superUser"))


class _Acceptor:
    """Accepts on one socket and hands each connection to asyncio, with TLS or not.

    Our own accept loop (not ``create_server(ssl=...)``) so that a failed handshake is
    logged with its reason, as ZooKeeper logs "Unsuccessful handshake"; asyncio drops
    those silently.  `sniff`: ``client.portUnification``, decide by the first byte.
    """

    def __init__(self, server: ZabbyServer, ctls: ClientTls, host: str, port: int,
                 sniff: bool) -> None:
        self.server = server
        self.ctls = ctls
        self.host = host
        self.port = port
        self.sniff = sniff
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()  # accepted, not yet handed to asyncio
        self._pending_by_ip: dict[str, int] = {}

    async def start(self, factory) -> None:
        self.factory = factory
        sock = listen_socket(self.host, self.port, 1024)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(
            accept_forever(sock, self._accepted, f"client port {self.host}:{self.port}"))
        assert self.ctls.tls is not None
        what = ("takes plaintext and TLS (client.portUnification)" if self.sniff
                else "is the secure client port (TLS only)")
        log.info("%s:%d %s: %s", self.host, self.port, what, self.ctls.tls.describe())

    def _accepted(self, conn: socket.socket, addr) -> None:
        ip = addr[0] if isinstance(addr, tuple) else ""
        if self._over_limit(ip):
            conn.close()
            return
        self._pending_by_ip[ip] = self._pending_by_ip.get(ip, 0) + 1
        t = asyncio.get_running_loop().create_task(self._hand_over(conn))
        self._pending.add(t)
        t.add_done_callback(lambda t, ip=ip: self._done(t, ip))

    def _over_limit(self, ip: str) -> bool:
        """Connections still in their handshake count against maxClientCnxns and
        maxCnxns, as in ZooKeeper (which counts a channel from its accept)."""
        cfg = self.server.config
        per_ip = cfg.max_client_cnxns
        n = self.server.connections_by_ip.get(ip, 0) + self._pending_by_ip.get(ip, 0)
        if per_ip and n >= per_ip:
            log.warning("Too many connections from %s - max is %d", ip, per_ip)
            return True
        total = getattr(cfg, "max_cnxns", 0)
        if total and len(self.server.connections) + len(self._pending) >= total:
            log.warning("Too many connections - max is %d", total)
            return True
        return False

    def _done(self, t: asyncio.Task, ip: str) -> None:
        self._pending.discard(t)
        n = self._pending_by_ip.get(ip, 1) - 1
        if n <= 0:
            self._pending_by_ip.pop(ip, None)
        else:
            self._pending_by_ip[ip] = n

    async def _first_byte_is_tls(self, conn: socket.socket) -> bool | None:
        """True for TLS, False for plaintext, None when the client closed or sent
        nothing within the handshake detection timeout."""
        tls = self.ctls.tls
        assert tls is not None
        first = await first_byte_is_tls(conn, tls.handshake_timeout)
        if first is None:
            log.info("closing connection from %s: nothing sent within %d ms", _peer(conn),
                     int(tls.handshake_timeout * 1000))
        return first

    async def _hand_over(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        tls = self.ctls.tls
        assert tls is not None
        handed = False
        peer = _peer(conn)
        try:
            use_tls = True
            if self.sniff:
                first = await self._first_byte_is_tls(conn)
                if first is None:
                    return
                use_tls = first
            handed = True  # from here the transport owns the socket
            if use_tls:
                await loop.connect_accepted_socket(
                    self.factory, conn, ssl=tls.context,
                    ssl_handshake_timeout=tls.handshake_timeout)
            else:
                await loop.connect_accepted_socket(self.factory, conn)
        except asyncio.CancelledError:
            raise
        except (TimeoutError, OSError) as e:
            log.info("Unsuccessful TLS handshake with %s: %s", peer, _reason(e))
        except Exception:
            log.exception("error accepting a connection from %s", peer)
        finally:
            if not handed:
                conn.close()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for t in list(self._pending):
            t.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def wait_closed(self) -> None:
        if self._task is not None:
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


class SecureListener(_Acceptor):
    """``secureClientPort``: TLS only."""

    def __init__(self, server: ZabbyServer, ctls: ClientTls) -> None:
        assert ctls.secure_port is not None
        super().__init__(server, ctls, ctls.secure_address, ctls.secure_port, sniff=False)


class UnifiedListener(_Acceptor):
    """``client.portUnification``: plaintext and TLS on ``clientPort``."""

    def __init__(self, server: ZabbyServer, ctls: ClientTls, host: str, port: int) -> None:
        super().__init__(server, ctls, host, port, sniff=True)


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or e.strerror or str(e)
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


def _peer(conn: socket.socket) -> str:
    try:
        host, port = conn.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"

