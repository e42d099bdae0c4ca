"""Security settings: what the server honours, and a refusal to start for the rest.

`config` collects every security key of a zoo.cfg or ``-D`` option into
``ServerConfig.security`` (and ``authProvider.N`` into ``auth_providers``) without judging
them.  `load_security` hands them to the pieces that implement them (client TLS, SASL,
quorum authentication); each piece `take`s the keys it honours and may refuse a value.
Any key left over is one zabby would otherwise ignore, and an ignored security key means
running less safely than the operator asked: we refuse to start instead, with a message
naming the key.  ZooKeeper itself often ignores such keys (given ``secureClientPort`` and a
missing key store, 3.8 still serves plaintext on ``clientPort``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .admin_tls import load_admin_tls
from .config import ConfigError, ServerConfig
from .quorum_auth import load_quorum_security
from .sasl import load_sasl
from .secure_client import load_client_tls

log = logging.getLogger("zabby.server.security")

_AUTH = "org.apache.zookeeper.server.auth."
# authProvider.N classes zabby has built in (IP and digest are always on, as in ZooKeeper).
BUILTIN_PROVIDERS = {
    _AUTH + "IPAuthenticationProvider": "ip",
    _AUTH + "DigestAuthenticationProvider": "digest",
    _AUTH + "X509AuthenticationProvider": "x509",  # server.secure_client
    _AUTH + "SASLAuthenticationProvider": "sasl",
}


class SecuritySettings:
    """The security keys of one configuration, each to be taken by what honours it."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.values = dict(config.security)
        self.taken: set[str] = set()

    def take(self, key: str, default: str | None = None) -> str | None:
        """The value of `key` (canonical name), marking it honoured."""
        self.taken.add(key)
        return self.values.get(key, default)

    def take_bool(self, key: str, default: bool = False) -> bool:
        """A Java boolean (``Boolean.parseBoolean``: "true" in any case, else false),
        but anything other than true/false is refused rather than read as false."""
        value = self.take(key)
        if value is None or value == "":
            return default
        low = value.strip().lower()
        if low not in ("true", "false"):
            raise self.error(key, value, "is not true or false")
        return low == "true"

    def present(self, *keys: str) -> bool:
        return any(k in self.values for k in keys)

    def error(self, key: str, value: str | None, reason: str) -> ConfigError:
        where = self.config.source or "<config>"
        shown = "" if value is None else f" {value!r}"
        return ConfigError(f"{where}: {key}:{shown} {reason}", source=self.config.source,
                           key=key, value=value)

    def refuse_leftovers(self) -> None:
        left = sorted(k for k in self.values if k not in self.taken)
        if left:
            names = ", ".join(left)
            raise ConfigError(
                f"{self.config.source or '<config>'}: {names}: security setting"
                f"{'s' if len(left) > 1 else ''} zabby does not support; refusing to start "
                "rather than run less securely than configured",
                source=self.config.source, key=left[0], value=self.values[left[0]],
            )


@dataclass
class Security:
    """What the server enforces; each piece is filled by the module that implements it."""

    # authProvider.N -> scheme, for the providers that are registered
    providers: dict[str, str] = field(default_factory=dict)
    client_tls: Any = None  # server.tls: the secure client port's TLS settings
    sasl: Any = None  # server.sasl: SASL for clients
    quorum: Any = None  # server.quorum_auth: TLS / SASL between ensemble members
    admin_tls: Any = None  # server.admin_tls: the AdminServer's HTTPS (None: plain HTTP)


def load_security(config: ServerConfig) -> Security:
    """Interpret `config`'s security settings; ConfigError for any not honoured."""
    settings = SecuritySettings(config)
    sec = Security()
    _auth_providers(config, sec)
    # before quorum TLS: the AdminServer's HTTPS uses (takes) the ssl.quorum.* stores
    sec.admin_tls = load_admin_tls(settings)
    # a verified admin client certificate is an x509 identity: the scheme is registered
    admin_x509 = sec.admin_tls is not None and sec.admin_tls.need_client_auth
    sec.client_tls = load_client_tls(settings, "x509" in sec.providers.values() or admin_x509)
    sec.quorum = load_quorum_security(settings)
    sec.sasl = load_sasl(settings, {"ip", "digest", *sec.providers.values()},
                         quorum_sasl=sec.quorum is not None and sec.quorum.sasl is not None)
    settings.refuse_leftovers()
    if sec.quorum is not None and not config.is_distributed:
        log.warning("quorum security settings given to a standalone server: there are no "
                    "peer links to secure")
    return sec


def _auth_providers(config: ServerConfig, sec: Security) -> None:
    for n, cls in config.auth_providers.items():
        scheme = BUILTIN_PROVIDERS.get(cls.strip())
        if scheme is None:
            where = config.source or "<config>"
            raise ConfigError(
                f"{where}: authProvider.{n}: {cls!r} is not an authentication provider zabby "
                f"has; refusing to start (known: {', '.join(sorted(BUILTIN_PROVIDERS))})",
                source=config.source, key=f"authProvider.{n}", value=cls,
            )
        sec.providers[n] = scheme
