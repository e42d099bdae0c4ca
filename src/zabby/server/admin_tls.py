"""HTTPS for the AdminServer: ZooKeeper's ``admin.forceHttps``, ``admin.portUnification``
(3.8) and ``admin.needClientAuth`` (3.9).

* ``admin.forceHttps=true``: the admin port speaks HTTPS only (it overrides
  ``admin.portUnification``, as in ZooKeeper).
* ``admin.portUnification=true``: the admin port takes HTTP and HTTPS; the first byte a
  client sends tells them apart (0x16, a TLS handshake record, means HTTPS), as Jetty's
  ``UnifiedConnectionFactory`` does.
* ``admin.needClientAuth=true``: a client certificate is required and verified against
  the trust store (then it is the ``x509`` identity 3.9's snapshot/restore accept).
  When false, as in ZooKeeper (Jetty's default), no client certificate is asked for.

The key and trust stores are ZooKeeper's JettyAdminServer's: ``QuorumX509Util``'s, i.e.
``ssl.quorum.keyStore.*`` and ``ssl.quorum.trustStore.*`` -- not the secure client port's
``ssl.*``.  ``ssl.quorum.protocol``/``enabledProtocols``/``ciphersuites`` apply too (3.9
honours the last two).  ``ssl.quorum.clientAuth`` and ``ssl.quorum.hostnameVerification``
do not concern the AdminServer (``admin.needClientAuth`` does); they are left to quorum TLS,
which refuses them if it is off.

Beyond ZooKeeper (which lets Jetty fail later or serve without the stores): HTTPS without
``ssl.quorum.keyStore.location``, or ``admin.needClientAuth`` without a trust store or
without HTTPS, refuses to start, naming the key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .tls import TlsConfig, context_from_settings

if TYPE_CHECKING:
    from .security import SecuritySettings

log = logging.getLogger("zabby.server.tls")

PREFIX = "ssl.quorum."  # QuorumX509Util: the stores ZooKeeper's AdminServer uses


@dataclass
class AdminTls:
    tls: TlsConfig
    force_https: bool  # HTTPS only
    port_unification: bool  # HTTP and HTTPS on one port (when not force_https)
    need_client_auth: bool

    def describe(self) -> str:
        mode = "HTTPS only" if self.force_https else "HTTP and HTTPS (port unification)"
        return f"{mode}; {self.tls.describe()}"


def load_admin_tls(settings: SecuritySettings) -> AdminTls | None:
    """The AdminServer's TLS (None: plain HTTP); ConfigError when it cannot be honoured."""
    force = settings.take_bool("admin.forceHttps")
    unify = settings.take_bool("admin.portUnification")
    need = settings.take_bool("admin.needClientAuth")
    if not (force or unify):
        if need:
            raise settings.error("admin.needClientAuth", "true", "is set but neither "
                                 "admin.forceHttps nor admin.portUnification is: the "
                                 "AdminServer serves plain HTTP and could ask no client "
                                 "certificate; refusing to start")
        return None
    on = "admin.forceHttps" if force else "admin.portUnification"
    ks = PREFIX + "keyStore.location"
    if not (settings.values.get(ks) or "").strip():
        settings.take(ks)
        raise settings.error(ks, None, f"is not set, but {on}=true needs a key store for "
                             "the AdminServer's HTTPS (ZooKeeper's AdminServer uses the "
                             "ssl.quorum.* stores); refusing to start")
    ts = PREFIX + "trustStore.location"
    if need and not (settings.values.get(ts) or "").strip():
        settings.take(ts)
        raise settings.error(ts, None, "is not set, but admin.needClientAuth=true needs a "
                             "trust store to verify client certificates; refusing to start")
    tls = context_from_settings(settings, PREFIX, server_side=True,
                                client_auth="need" if need else "none")
    admin = AdminTls(tls, force_https=force, port_unification=unify and not force,
                     need_client_auth=need)
    if force and unify:
        log.info("admin.forceHttps=true overrides admin.portUnification=true: HTTPS only")
    if not settings.config.admin_enable_server:
        log.warning("%s=true but admin.enableServer=false: no AdminServer is served", on)
    log.info("AdminServer TLS: %s", admin.describe())
    return admin
