"""Server configuration: Apache ZooKeeper's ``zoo.cfg`` and zabby's embedded default.

``zoo.cfg`` is a Java properties file.  We read it the way ``java.util.Properties.load``
does (``key=value``, ``key: value``, ``key value``, ``#``/``!`` comment lines, a trailing
odd backslash continues a line, backslash escapes including ``\\uXXXX``), then interpret
keys the way ZooKeeper 3.8's ``QuorumPeerConfig`` does: keys and values are trimmed, the
``QuorumPeerConfig`` keys (``tickTime``, ``dataDir``, ...) are read directly, and every
other key ``k`` becomes the Java system property ``zookeeper.k`` -- which is how
``snapCount``, ``4lw.commands.whitelist``, ``authProvider.1``... in a ``zoo.cfg`` take
effect.  We accept those settings both in the short form and in the system-property form
(``zookeeper.snapCount``); ``jute.maxbuffer`` is read under that name.

Where ZooKeeper silently ignores or mangles a bad value (``Integer.getInteger`` falls back
to the default on garbage) we refuse it with a :class:`ConfigError` naming the file, key
and value.  Where ZooKeeper warns and clamps (``autopurge.snapRetainCount`` < 3,
``snapCount`` < 2) we warn and clamp the same way.  Keys we do not know are recorded in
:attr:`ServerConfig.unknown` and logged once each at WARNING.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from dataclasses import dataclass, field, replace

__all__ = [
    "ALL_FOUR_LETTER_WORDS",
    "DEFAULT_FOUR_LETTER_WORDS",
    "ConfigError",
    "ServerConfig",
    "ServerSpec",
    "default_config",
    "load_config",
    "parse_config",
    "parse_properties",
    "system_properties_from",
]

log = logging.getLogger(__name__)

# Every four-letter word ZooKeeper 3.8 knows (FourLetterCommands).  "*" in the whitelist
# enables all of them.
# ClickHouse Keeper's words, answered with zabby.keeperExtensions=true (server/keeper.py)
KEEPER_FOUR_LETTER_WORDS: frozenset[str] = frozenset({"apiv", "ftfl"})
ALL_FOUR_LETTER_WORDS: frozenset[str] = frozenset(
    {
        "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst",
        "srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
    }
)
# ZooKeeper 3.8 enables only "srvr" by default, and always adds it to any whitelist
# (zkServer.sh depends on it).
DEFAULT_FOUR_LETTER_WORDS: frozenset[str] = frozenset({"srvr"})

PARTICIPANT = "participant"
OBSERVER = "observer"

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class ConfigError(Exception):
    """An invalid configuration.  The message names the file, the key and the value."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.key = key
        self.value = value


@dataclass(frozen=True)
class ServerSpec:
    """One ``server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`` line."""

    id: int
    host: str
    quorum_port: int
    election_port: int
    role: str = PARTICIPANT  # "participant" or "observer"
    client_host: str | None = None  # "0.0.0.0" when only a client port is given
    client_port: int | None = None
    # further (host, quorumPort, electionPort) of a multi-address line (a|b|c)
    more: tuple[tuple[str, int, int], ...] = ()

    @property
    def is_observer(self) -> bool:
        return self.role == OBSERVER


@dataclass
class ServerConfig:
    tick_time: int = 2000  # tickTime (ms)
    data_dir: str = "./zabby-data"  # dataDir
    data_log_dir: str | None = None  # dataLogDir (None -> data_dir)
    client_port: int = 2181  # clientPort (0 is accepted here only: "any free port")
    # False when a zoo.cfg sets no clientPort: with secureClientPort, TLS only (as ZooKeeper)
    client_port_given: bool = True
    # ZooKeeper binds 0.0.0.0 when a zoo.cfg has no clientPortAddress, and so do we for a
    # file; the embedded default (no file) listens on loopback only.
    client_port_address: str = "127.0.0.1"  # clientPortAddress
    max_client_cnxns: int = 60  # maxClientCnxns per client IP, 0 = unlimited
    min_session_timeout: int = -1  # minSessionTimeout ms; -1 -> 2 * tickTime
    max_session_timeout: int = -1  # maxSessionTimeout ms; -1 -> 20 * tickTime
    four_letter_words: frozenset[str] = DEFAULT_FOUR_LETTER_WORDS  # 4lw.commands.whitelist
    extended_types_enabled: bool = False  # zookeeper.extendedTypesEnabled
    # readonlymode.enabled: a member cut off from its quorum serves reads to clients
    # that allow it (server.readonly). ZooKeeper reads only the JVM property
    # -Dreadonlymode.enabled; zabby also takes it from zoo.cfg, with or without the
    # "zookeeper." prefix
    readonly_mode: bool = False
    enforce_quota: bool = False  # zookeeper.enforceQuota: hard quota limits refuse writes
    digest_enabled: bool = True  # zookeeper.digest.enabled: the data-tree digest (hash)
    max_buffer: int = 0xFFFFF  # jute.maxbuffer
    super_digest: str | None = None  # DigestAuthenticationProvider.superDigest
    auth_providers: dict[str, str] = field(default_factory=dict)  # authProvider.N -> class
    # Every other security setting (TLS, SASL, x509, quorum authentication, JAAS), as
    # written, by canonical name (no "zookeeper." prefix).  `server.security` interprets
    # them and refuses to start on any it does not honour: security fails closed.
    security: dict[str, str] = field(default_factory=dict)
    max_cnxns: int = 0  # maxCnxns: connections in all, 0 = unlimited
    global_outstanding_limit: int = 1000  # globalOutstandingLimit
    # zookeeper.nio.sessionlessCnxnTimeout (ms): a connection with no ConnectRequest
    # after this long is closed
    sessionless_cnxn_timeout: int = 10000
    snap_count: int = 100000  # snapCount
    # snapshot.compression.method: "" (none) or "gz"; ZooKeeper also knows "snappy",
    # which we accept as our zlib compression too
    snapshot_compression: str = ""
    pre_alloc_size_kb: int = 65536  # preAllocSize (KB)
    force_sync: bool = True  # forceSync
    autopurge_snap_retain_count: int = 3  # autopurge.snapRetainCount
    autopurge_purge_interval: int = 0  # autopurge.purgeInterval (hours, 0 = off)
    init_limit: int = 10  # initLimit (ticks)
    sync_limit: int = 5  # syncLimit (ticks)
    servers: dict[int, ServerSpec] = field(default_factory=dict)  # server.N
    # zabby.keeperExtensions: answer ClickHouse Keeper's extension opcodes (500-507),
    # /keeper/api_version, /keeper/feature_flags, apiv and ftfl (server/keeper.py)
    keeper_extensions: bool = False
    # snapshot.trust.empty (zookeeper.snapshot.trust.empty): start from a data
    # directory that has txn logs but no snapshot (ZooKeeper refuses it otherwise)
    snapshot_trust_empty: bool = False
    # db.autocreate (zookeeper.db.autocreate): false = an ensemble member that starts on
    # an empty data directory takes no part in elections until a leader syncs it,
    # unless <dataDir>/initialize exists (deleted when used); docs/OPERATING.md
    db_autocreate: bool = True
    # localSessionsEnabled: an ensemble member makes new sessions local to itself (no
    # txn); localSessionsUpgradingEnabled: one becomes global on its first ephemeral
    # create (server.local_sessions). Standalone servers ignore both, as ZooKeeper
    local_sessions: bool = False
    local_sessions_upgrading: bool = False
    peer_type: str = PARTICIPANT  # peerType
    standalone_enabled: bool = True  # standaloneEnabled
    admin_enable_server: bool = True  # admin.enableServer (ZooKeeper's default: on)
    admin_server_address: str = "0.0.0.0"  # admin.serverAddress
    admin_server_port: int = 8080  # admin.serverPort
    admin_command_url: str = "/commands"  # admin.commandURL
    admin_idle_timeout: int = 30000  # admin.idleTimeout (ms an idle HTTP connection stays)
    # admin.rateLimiterIntervalInMS (ZooKeeper 3.9): at most one snapshot and one restore
    # command per interval
    admin_rate_limiter_interval: int = 300000
    admin_snapshot_enabled: bool = True  # admin.snapshot.enabled (3.9)
    admin_restore_enabled: bool = True  # admin.restore.enabled (3.9)
    # metricsProvider.*: PROMETHEUS_PROVIDER serves /metrics (zabby.ops.prometheus);
    # None (or ZooKeeper's default/null provider) serves nothing
    metrics_provider: str | None = None  # metricsProvider.className
    metrics_http_host: str = "0.0.0.0"  # metricsProvider.httpHost
    metrics_http_port: int = 7000  # metricsProvider.httpPort
    metrics_export_jvm_info: bool = True  # metricsProvider.exportJvmInfo (process metrics)
    dynamic_config_file: str | None = None  # dynamicConfigFile, resolved path
    reconfig_enabled: bool = False  # reconfigEnabled
    multi_address_enabled: bool = False  # multiAddress.enabled (server.N=a:p:e|b:p:e)
    # the membership's version: from the dynamic file's name (zoo.cfg.dynamic.<hex>), else 0
    config_version: int = 0
    # servers whose client address came from clientPort, not their server.N line
    static_client_ids: frozenset[int] = frozenset()
    # hierarchical quorums: group.N=a:b:c (group -> its servers), weight.N (default 1)
    groups: dict[int, tuple[int, ...]] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)
    server_id: int | None = None  # from <dataDir>/myid when that file exists
    unknown: dict[str, str] = field(default_factory=dict)  # keys we do not know
    source: str | None = None  # file path, or None for the embedded default

    @property
    def effective_min_session_timeout(self) -> int:
        if self.min_session_timeout == -1:
            return 2 * self.tick_time
        return self.min_session_timeout

    @property
    def effective_max_session_timeout(self) -> int:
        if self.max_session_timeout == -1:
            return 20 * self.tick_time
        return self.max_session_timeout

    @property
    def effective_data_log_dir(self) -> str:
        return self.data_log_dir if self.data_log_dir is not None else self.data_dir

    @property
    def participants(self) -> dict[int, ServerSpec]:
        return {sid: s for sid, s in self.servers.items() if s.role == PARTICIPANT}

    @property
    def observers(self) -> dict[int, ServerSpec]:
        return {sid: s for sid, s in self.servers.items() if s.role == OBSERVER}

    @property
    def is_distributed(self) -> bool:
        """True when this is an ensemble, by ZooKeeper's rule (QuorumPeerConfig)."""
        if not self.servers:
            return False
        return not self.standalone_enabled or len(self.participants) > 1


def default_config() -> ServerConfig:
    """The embedded default for ``zabby serve`` with no arguments.

    127.0.0.1:2181, data under ./zabby-data.  Unlike ZooKeeper (only ``srvr``) every
    four-letter word is enabled -- the whitelist is ``*`` -- so local development tools
    (``echo stat | nc``, ``mntr`` scrapers, zkCli's helpers) work out of the box; this is
    safe because the default listens on loopback only.  The AdminServer (ZooKeeper's
    HTTP commands and the web console) listens on 127.0.0.1:8080, loopback only too, so
    ``make serve`` shows the console at http://127.0.0.1:8080/ (if 8080 is taken the
    server warns and serves clients anyway, as ZooKeeper does).
    """
    return ServerConfig(four_letter_words=ALL_FOUR_LETTER_WORDS, admin_enable_server=True,
                        admin_server_address="127.0.0.1")


def load_config(
    path: str | os.PathLike[str], system_properties: dict[str, str] | None = None
) -> ServerConfig:
    """Read and validate a ``zoo.cfg`` (and the JVM system properties of the start command)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read configuration: {e.strerror or e}", source=path) from e
    return parse_config(_decode(raw), source=path, system_properties=system_properties)


def parse_config(
    text: str, source: str | None = None, system_properties: dict[str, str] | None = None
) -> ServerConfig:
    """Parse and validate the text of a ``zoo.cfg``.

    ``source`` names the file in error messages, and relative ``dynamicConfigFile`` paths
    are resolved against its directory (against the working directory when None).

    ``system_properties`` are the ``-Dkey=value`` options a ZooKeeper start command gives
    the JVM (see :func:`system_properties_from`).  As in ZooKeeper, a setting in the file
    wins over the same setting given as a property, since QuorumPeerConfig writes the
    file's keys into the system properties after the JVM started.
    """
    return _Parser(source).parse(text, system_properties or {})


def system_properties_from(args: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """The ``-Dkey=value`` options of a ZooKeeper start command.

    ``zkServer.sh`` passes ``$SERVER_JVMFLAGS`` then ``$JVMFLAGS`` to java; options given
    to ``zabby serve`` come last.  For a key given twice the last wins, as in java.
    Other JVM options (``-Xmx1g``, ``-XX:...``) mean nothing to zabby and are skipped.
    """
    import shlex

    env = os.environ if env is None else env
    tokens: list[str] = []
    for var in ("SERVER_JVMFLAGS", "JVMFLAGS"):
        tokens += shlex.split(env.get(var, ""))
    tokens += args
    props: dict[str, str] = {}
    for t in tokens:
        if t.startswith("-D") and len(t) > 2:
            key, _, value = t[2:].partition("=")
            props[key] = value
    return props


# --------------------------------------------------------------------------------------
# java.util.Properties


_WS = " \t\f"
_NATURAL_LINE = re.compile(r"\r\n|\r|\n")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _decode(raw: bytes) -> str:
    # Properties.load(InputStream) reads ISO-8859-1; we prefer UTF-8 (so non-ASCII paths
    # survive) and fall back to ISO-8859-1 for files that are not UTF-8.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _trailing_backslashes(s: str) -> int:
    return len(s) - len(s.rstrip("\\"))


def parse_properties(text: str) -> list[tuple[str, str, int]]:
    """Split properties text into ``(key, value, line_number)``, in file order.

    Follows ``java.util.Properties.load``: escapes are decoded, separators are the first
    unescaped ``=``, ``:`` or whitespace, continuation lines have leading whitespace
    removed.  Values are not trimmed at the end (ZooKeeper does that).  A malformed
    ``\\uXXXX`` escape raises ``ValueError``.  Duplicates are all returned.
    """
    lines = _NATURAL_LINE.split(text)
    if text and text[0] == "\ufeff":  # a UTF-8 byte-order mark is not part of the first key
        lines[0] = lines[0][1:]
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].lstrip(_WS)
        i += 1
        if not line or line[0] in "#!":
            continue
        parts: list[str] = []
        while _trailing_backslashes(line) % 2 == 1:
            parts.append(line[:-1])
            if i >= len(lines):
                line = ""
                break
            line = lines[i].lstrip(_WS)
            i += 1
        parts.append(line)
        key, value = _split_logical_line("".join(parts), lineno)
        out.append((key, value, lineno))
    return out


def _split_logical_line(line: str, lineno: int) -> tuple[str, str]:
    n = len(line)
    k = 0
    escaped = False
    value_start = n
    has_sep = False
    while k < n:
        c = line[k]
        if not escaped and c in "=:":
            value_start, has_sep = k + 1, True
            break
        if not escaped and c in _WS:
            value_start = k + 1
            break
        escaped = (not escaped) if c == "\\" else False
        k += 1
    while value_start < n:
        c = line[value_start]
        if c not in _WS:
            if not has_sep and c in "=:":
                has_sep = True
            else:
                break
        value_start += 1
    return _unescape(line[:k], lineno), _unescape(line[value_start:], lineno)


_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(s: str, lineno: int) -> str:
    if "\\" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= n:  # a lone trailing backslash (end of file) is dropped
            break
        c = s[i]
        i += 1
        if c == "u":
            digits = s[i : i + 4]
            if not _HEX4.fullmatch(digits):
                raise ValueError(f"line {lineno}: malformed \\uxxxx encoding")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_SIMPLE_ESCAPES.get(c, c))
    return "".join(out)


def _java_trim(s: str) -> str:
    # String.trim(): strip every character <= ' ' from both ends.
    start, end = 0, len(s)
    while start < end and s[start] <= " ":
        start += 1
    while end > start and s[end - 1] <= " ":
        end -= 1
    return s[start:end]


# --------------------------------------------------------------------------------------
# Key table


# QuorumPeerConfig reads these names exactly as written.
_STATIC_KEYS = frozenset(
    {
        "dataDir", "dataLogDir", "clientPort", "clientPortAddress", "tickTime",
        "maxClientCnxns", "minSessionTimeout", "maxSessionTimeout", "initLimit",
        "syncLimit", "peerType", "dynamicConfigFile", "autopurge.snapRetainCount",
        "autopurge.purgeInterval", "standaloneEnabled", "maxCnxns", "reconfigEnabled",
        "zabby.keeperExtensions",  # zabby's own (ClickHouse Keeper's opcodes)
        "localSessionsEnabled", "localSessionsUpgradingEnabled",
    }
)
# Read by ZooKeeper as Java system properties "zookeeper.<name>"; a zoo.cfg may give them
# as "<name>" (QuorumPeerConfig turns it into the property) or as "zookeeper.<name>".
_SYSPROP_KEYS = frozenset(
    {
        "4lw.commands.whitelist", "extendedTypesEnabled",
        "DigestAuthenticationProvider.superDigest", "snapCount", "forceSync",
        "preAllocSize", "admin.enableServer", "admin.serverPort", "admin.serverAddress",
        "admin.commandURL", "admin.idleTimeout", "admin.rateLimiterIntervalInMS",
        "admin.snapshot.enabled", "admin.restore.enabled",
        "snapshot.compression.method", "globalOutstandingLimit",
        "serverCnxnFactory", "nio.sessionlessCnxnTimeout", "multiAddress.enabled",
        "readonlymode.enabled", "snapshot.trust.empty", "enforceQuota", "digest.enabled",
        "db.autocreate",
    }
)
# Security settings, by canonical name: zoo.cfg keys of QuorumPeerConfig, system properties
# "zookeeper.<name>" and the JVM's own (JAAS).  They are collected into
# ServerConfig.security whatever the spelling ("zookeeper."-prefixed or not), never
# silently ignored: `server.security` honours each or refuses to start.
_SECURITY_KEYS = frozenset(
    {
        "secureClientPort", "secureClientPortAddress", "sslQuorum", "portUnification",
        "sslQuorumReloadCertFiles", "client.portUnification", "allowSaslFailedClients",
        "sessionRequireClientSASLAuth", "superUser", "java.security.auth.login.config",
        "java.security.krb5.conf", "javax.security.auth.useSubjectCredsOnly",
        "security.auth_to_local",
        # the AdminServer's HTTPS (server.admin_tls): 3.8's forceHttps/portUnification,
        # 3.9's needClientAuth
        "admin.forceHttps", "admin.portUnification", "admin.needClientAuth",
    }
)
_SECURITY_PREFIXES = (
    "ssl.", "quorum.auth.", "enforce.auth.", "kerberos.", "sasl.",
    "X509AuthenticationProvider.", "SASLAuthenticationProvider.",
)
# Netty and NIO are both "the server's socket layer" to zabby: either class is accepted.
SERVER_CNXN_FACTORIES = frozenset(
    {
        "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "org.apache.zookeeper.server.NIOServerCnxnFactory",
    }
)
_AUTH_PROVIDER = "authProvider."
_SYSPROP_PREFIX = "zookeeper."
_JUTE_MAXBUFFER = "jute.maxbuffer"
_READONLY_MODE = "readonlymode.enabled"  # ZooKeeper's JVM property, without a prefix

# metricsProvider.className values. Prometheus: /metrics served; ZooKeeper's default
# (mntr only) and null providers: nothing served. Any other class is refused.
PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
QUIET_METRICS_PROVIDERS = frozenset(
    {
        "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
        "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
    }
)
_METRICS_PREFIX = "metricsProvider."
# PrometheusMetricsProvider's keys; the last three tune its Jetty worker pool, which
# zabby's one-thread exporter does not have: accepted and ignored
_METRICS_KEYS = frozenset(
    {
        "metricsProvider.className", "metricsProvider.httpHost", "metricsProvider.httpPort",
        "metricsProvider.exportJvmInfo", "metricsProvider.numWorkerThreads",
        "metricsProvider.maxQueueSize", "metricsProvider.workerShutdownTimeoutMs",
    }
)

# Options ZooKeeper 3.8 understands that zabby does not implement.  Recorded in `unknown`
# like any other key we do not know, with a more helpful warning.
_ZK_UNSUPPORTED = frozenset(
    {
        "observerMasterPort", "clientPortListenBacklog",
        "connectToLearnerMasterLimit", "electionAlg", "quorumListenOnAllIPs", "syncEnabled",
        "quorum.cnxn.threads.size", "jvm.pause.info-threshold.ms",
        "jvm.pause.warn-threshold.ms", "jvm.pause.sleep.time.ms", "jvm.pause.monitor",
        "multiAddress.reachabilityCheckTimeoutMs", "multiAddress.reachabilityCheckEnabled",
        "oraclePath",
    }
)


def is_security_key(name: str) -> bool:
    """Is ``name`` (without the "zookeeper." prefix) a security setting?"""
    return name in _SECURITY_KEYS or name.startswith(_SECURITY_PREFIXES)


def _canonical(key: str) -> str | None:
    """The name we handle ``key`` under, or None when it is not one we know."""
    if key in _STATIC_KEYS or key == _JUTE_MAXBUFFER or key in _METRICS_KEYS:
        return key
    name = key[len(_SYSPROP_PREFIX) :] if key.startswith(_SYSPROP_PREFIX) else key
    if name in _SYSPROP_KEYS or is_security_key(name):
        return name
    if name.startswith(_AUTH_PROVIDER) and len(name) > len(_AUTH_PROVIDER):
        return name
    return None


def is_secret_key(key: str) -> bool:
    """A setting whose value must never be printed or logged."""
    low = key.lower()
    return any(w in low for w in ("password", "passwd", "secret", "digest", "credential"))


_PARSE_INT = re.compile(r"[+-]?[0-9]+")
_DECODE_INT = re.compile(r"([+-]?)(?:(0[xX]|#)([0-9a-fA-F]+)|(0)([0-7]+)|([0-9]+))")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class _Parser:
    def __init__(self, source: str | None) -> None:
        self.source = source
        self.where = source if source is not None else "<config>"
        self.cfg = ServerConfig(source=source, client_port_address="0.0.0.0")
        self.servers_source: str | None = None  # the dynamic config file, once read
        self.dynamic_quorum_lines: dict[str, str] = {}  # its group.N / weight.N lines
        # a reconfig may name any id, as in ZooKeeper (such a server cannot be zabby)
        self.any_server_id = False

    # ---- errors and value parsers ----

    def error(self, key: str | None, value: str | None, reason: str) -> ConfigError:
        if key is None:
            msg = f"{self.where}: {reason}"
        elif value is None:
            msg = f"{self.where}: {key}: {reason}"
        elif is_secret_key(key):
            # an error message is printed and logged: never echo a secret
            msg = f"{self.where}: {key}: (value hidden) {reason}"
        else:
            msg = f"{self.where}: {key}: {value!r} {reason}"
        return ConfigError(msg, source=self.source, key=key, value=value)

    def int32(self, key: str, value: str) -> int:
        # Integer.parseInt: optional sign, decimal digits, 32-bit.
        if not _PARSE_INT.fullmatch(value):
            raise self.error(key, value, "is not an integer")
        n = int(value)
        if not _INT32_MIN <= n <= _INT32_MAX:
            raise self.error(key, value, "is out of range for a 32-bit integer")
        return n

    def int64(self, key: str, value: str) -> int:
        if not _PARSE_INT.fullmatch(value):
            raise self.error(key, value, "is not an integer")
        n = int(value)
        if not _INT64_MIN <= n <= _INT64_MAX:
            raise self.error(key, value, "is out of range for a 64-bit integer")
        return n

    def decoded_int(self, key: str, value: str) -> int:
        # Integer.getInteger -> Integer.decode: decimal, 0x/0X/# hex, leading-0 octal.
        m = _DECODE_INT.fullmatch(value)
        if not m:
            raise self.error(key, value, "is not an integer")
        sign, _, hexdigits, _, octdigits, decdigits = m.groups()
        if hexdigits is not None:
            n = int(hexdigits, 16)
        elif octdigits is not None:
            n = int(octdigits, 8)
        else:
            n = int(decdigits)
        if sign == "-":
            n = -n
        if not _INT32_MIN <= n <= _INT32_MAX:
            raise self.error(key, value, "is out of range for a 32-bit integer")
        return n

    def boolean(self, key: str, value: str) -> bool:
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise self.error(key, value, "is not a boolean (choose 'true' or 'false')")

    def port(self, key: str, value: str, n: int) -> int:
        if not 1 <= n <= 65535:
            raise self.error(key, value, "is not a port number (1..65535)")
        return n

    def at_least(self, key: str, value: str, n: int, low: int) -> int:
        if n < low:
            raise self.error(key, value, f"must be at least {low}")
        return n

    # ---- the parse ----

    def properties(self, text: str) -> dict[str, str]:
        try:
            entries = parse_properties(text)
        except ValueError as e:
            raise self.error(None, None, str(e)) from None
        props: dict[str, str] = {}
        for key, value, _ in entries:
            key = _java_trim(key)
            props.pop(key, None)  # a repeated key: the last one wins, in its position
            props[key] = _java_trim(value)
        return props

    def parse(self, text: str, system_properties: dict[str, str]) -> ServerConfig:
        props = self.properties(text)
        settings: dict[str, tuple[str, str]] = {}  # canonical name -> (key as written, value)
        server_lines: dict[str, str] = {}
        quorum_lines: dict[str, str] = {}
        for key, value in props.items():
            if key.startswith("server."):
                server_lines[key] = value
                continue
            if key.startswith(("group.", "weight.")):
                quorum_lines[key] = value
                continue
            canon = _canonical(key)
            if canon is None:
                self.unknown(key, value)
                continue
            if canon in settings and settings[canon][1] != value:
                other = settings[canon][0]
                raise self.error(
                    key, value, f"conflicts with {other}={settings[canon][1]!r} (the same setting)"
                )
            settings[canon] = (key, value)
        self.system_properties(system_properties, settings)

        for canon, (key, value) in settings.items():
            self.apply(canon, key, value)

        if "dataDir" not in settings:
            raise self.error(None, None, "dataDir is not set")

        if "dynamicConfigFile" in settings:
            if server_lines or quorum_lines:
                first = next(iter(server_lines or quorum_lines))
                raise self.error(first, None, "must be in the separate dynamic config file")
            server_lines = self.read_dynamic(*settings["dynamicConfigFile"])
            quorum_lines = self.dynamic_quorum_lines

        for key, value in server_lines.items():
            spec = self.server_spec(key, value)
            self.cfg.servers[spec.id] = spec
        self.quorum_system(quorum_lines)

        self.read_myid()
        self.validate(settings)
        return self.cfg

    def system_properties(
        self, props: dict[str, str], settings: dict[str, tuple[str, str]]
    ) -> None:
        """Fold ``-D`` options into `settings`; the file's own settings win."""
        for prop, value in props.items():
            value = _java_trim(value)
            if prop.startswith(_SYSPROP_PREFIX) or prop in (_JUTE_MAXBUFFER, _READONLY_MODE):
                canon = _canonical(prop)
            elif is_security_key(prop):  # the JVM's own: java.security.auth.login.config
                canon = prop
            else:
                log.debug("system property %s means nothing to zabby; ignored", prop)
                continue
            if canon is None or canon in _STATIC_KEYS:
                # a zoo.cfg key spelled as a property: ZooKeeper never reads it so either
                self.unknown(f"-D{prop}", value)
            elif canon not in settings:
                settings[canon] = (f"-D{prop}", value)

    def unknown(self, key: str, value: str) -> None:
        self.cfg.unknown[key] = value
        if key in _ZK_UNSUPPORTED or key.removeprefix(_SYSPROP_PREFIX) in _ZK_UNSUPPORTED:
            log.warning("%s: %s is a ZooKeeper option zabby does not support; ignored",
                        self.where, key)
        else:
            log.warning("%s: %s is not a valid key; ignored", self.where, key)

    def apply(self, canon: str, key: str, value: str) -> None:
        c = self.cfg
        if canon == "dataDir":
            if not value:
                raise self.error(key, value, "is empty")
            c.data_dir = value
        elif canon == "dataLogDir":
            if not value:
                raise self.error(key, value, "is empty")
            c.data_log_dir = value
        elif canon == "clientPort":
            c.client_port = self.port(key, value, self.int32(key, value))
        elif canon == "clientPortAddress":
            if not value:
                raise self.error(key, value, "is empty")
            c.client_port_address = value
        elif canon == "tickTime":
            c.tick_time = self.at_least(key, value, self.int32(key, value), 1)
        elif canon == "maxClientCnxns":
            c.max_client_cnxns = self.at_least(key, value, self.int32(key, value), 0)
        elif canon == "minSessionTimeout":
            c.min_session_timeout = self.session_timeout(key, value)
        elif canon == "maxSessionTimeout":
            c.max_session_timeout = self.session_timeout(key, value)
        elif canon == "initLimit":
            c.init_limit = self.at_least(key, value, self.int32(key, value), 0)
        elif canon == "syncLimit":
            c.sync_limit = self.at_least(key, value, self.int32(key, value), 0)
        elif canon == "peerType":
            low = value.lower()
            if low not in (PARTICIPANT, OBSERVER):
                raise self.error(key, value, "is not a peer type ('participant' or 'observer')")
            c.peer_type = low
        elif canon == "standaloneEnabled":
            c.standalone_enabled = self.boolean(key, value)
        elif canon == "reconfigEnabled":
            c.reconfig_enabled = self.boolean(key, value)
        elif canon == "multiAddress.enabled":
            c.multi_address_enabled = self.boolean(key, value)
        elif canon == "dynamicConfigFile":
            if not value:
                raise self.error(key, value, "is empty")
        elif canon == "autopurge.snapRetainCount":
            n = self.int32(key, value)
            if n < 3:
                log.warning("%s: invalid %s: %d; using 3", self.where, key, n)
                n = 3
            c.autopurge_snap_retain_count = n
        elif canon == "autopurge.purgeInterval":
            c.autopurge_purge_interval = self.at_least(key, value, self.int32(key, value), 0)
        elif canon == _JUTE_MAXBUFFER:
            c.max_buffer = self.at_least(key, value, self.decoded_int(key, value), 1)
        elif canon == "4lw.commands.whitelist":
            c.four_letter_words = self.whitelist(key, value)
        elif canon == "extendedTypesEnabled":
            c.extended_types_enabled = self.boolean(key, value)
        elif canon == _READONLY_MODE:
            c.readonly_mode = self.boolean(key, value)
        elif canon == "zabby.keeperExtensions":
            c.keeper_extensions = self.boolean(key, value)
        elif canon == "localSessionsEnabled":
            c.local_sessions = self.boolean(key, value)
        elif canon == "localSessionsUpgradingEnabled":
            c.local_sessions_upgrading = self.boolean(key, value)
        elif canon == "snapshot.trust.empty":
            c.snapshot_trust_empty = self.boolean(key, value)
        elif canon == "db.autocreate":
            c.db_autocreate = self.boolean(key, value)
        elif canon == "enforceQuota":
            c.enforce_quota = self.boolean(key, value)
        elif canon == "digest.enabled":
            c.digest_enabled = self.boolean(key, value)
        elif canon == "DigestAuthenticationProvider.superDigest":
            c.super_digest = self.super_digest(key, value)
        elif canon == "snapshot.compression.method":
            method = value.strip().lower()
            if method not in ("", "gz", "snappy"):
                raise self.error(key, value, "is not a compression method (gz or snappy)")
            c.snapshot_compression = method
        elif canon == "snapCount":
            n = self.decoded_int(key, value)
            if n < 2:
                log.warning("%s: %s should be 2 or more; using 2", self.where, key)
                n = 2
            c.snap_count = n
        elif canon == "forceSync":
            low = value.lower()
            if low in ("yes", "true"):
                c.force_sync = True
            elif low in ("no", "false"):
                c.force_sync = False
            else:
                raise self.error(key, value, "is not 'yes' or 'no'")
        elif canon == "preAllocSize":
            c.pre_alloc_size_kb = self.at_least(key, value, self.int64(key, value), 0)
        elif canon == "admin.enableServer":
            c.admin_enable_server = self.boolean(key, value)
        elif canon == "admin.serverPort":
            c.admin_server_port = self.port(key, value, self.decoded_int(key, value))
        elif canon == "admin.serverAddress":
            if not value:
                raise self.error(key, value, "is empty")
            c.admin_server_address = value
        elif canon == "admin.commandURL":
            # Jetty's context path: it must start with "/"; a trailing one is dropped
            if not value.startswith("/"):
                raise self.error(key, value, "does not start with '/'")
            c.admin_command_url = value.rstrip("/") or "/"
        elif canon == "admin.idleTimeout":
            c.admin_idle_timeout = self.at_least(key, value, self.decoded_int(key, value), 0)
        elif canon == "admin.rateLimiterIntervalInMS":
            c.admin_rate_limiter_interval = self.at_least(
                key, value, self.decoded_int(key, value), 0)
        elif canon == "admin.snapshot.enabled":
            c.admin_snapshot_enabled = self.boolean(key, value)
        elif canon == "admin.restore.enabled":
            c.admin_restore_enabled = self.boolean(key, value)
        elif canon.startswith(_AUTH_PROVIDER):
            if not value:
                raise self.error(key, value, "is empty")
            c.auth_providers[canon[len(_AUTH_PROVIDER) :]] = value
        elif canon == "maxCnxns":
            c.max_cnxns = self.at_least(key, value, self.int32(key, value), 0)
        elif canon == "globalOutstandingLimit":
            c.global_outstanding_limit = self.at_least(key, value, self.int32(key, value), 1)
        elif canon == "nio.sessionlessCnxnTimeout":
            c.sessionless_cnxn_timeout = self.at_least(key, value, self.int32(key, value), 1)
        elif canon == "serverCnxnFactory":
            if value not in SERVER_CNXN_FACTORIES:
                raise self.error(key, value, "is not a server connection factory zabby knows "
                                 f"({', '.join(sorted(SERVER_CNXN_FACTORIES))})")
        elif canon.startswith(_METRICS_PREFIX):
            self.metrics_provider(canon, key, value)
        elif is_security_key(canon):
            c.security[canon] = value
        else:  # pragma: no cover - _canonical and this table disagree
            raise AssertionError(canon)

    def metrics_provider(self, canon: str, key: str, value: str) -> None:
        c = self.cfg
        value = value.strip()
        if canon == "metricsProvider.className":
            if value == PROMETHEUS_PROVIDER:
                c.metrics_provider = value
            elif value in QUIET_METRICS_PROVIDERS:
                c.metrics_provider = None
            else:
                # fail closed: an operator who configured an exporter expects it to run
                raise self.error(key, value, "is not a metrics provider zabby has (use "
                                 f"{PROMETHEUS_PROVIDER}, or leave it unset)")
        elif canon == "metricsProvider.httpHost":
            if not value:
                raise self.error(key, value, "is empty")
            c.metrics_http_host = value
        elif canon == "metricsProvider.httpPort":
            c.metrics_http_port = self.port(key, value, self.int32(key, value))
        elif canon == "metricsProvider.exportJvmInfo":
            c.metrics_export_jvm_info = self.boolean(key, value)
        else:  # the Jetty pool's numWorkerThreads / maxQueueSize / workerShutdownTimeoutMs
            self.int32(key, value)
            log.info("%s: %s has no effect on zabby (its /metrics server is one thread)",
                     self.where, key)

    def session_timeout(self, key: str, value: str) -> int:
        n = self.int32(key, value)
        if n != -1 and n <= 0:
            raise self.error(key, value, "must be a positive number of milliseconds (or -1)")
        return n

    def whitelist(self, key: str, value: str) -> frozenset[str]:
        words: set[str] = set()
        for item in value.split(","):
            word = item.strip()
            if not word:
                continue
            if word == "*":
                words |= ALL_FOUR_LETTER_WORDS  # (Keeper's words too: ops/fourletter)
            elif word in ALL_FOUR_LETTER_WORDS or word in KEEPER_FOUR_LETTER_WORDS:
                words.add(word)
            else:
                # ZooKeeper accepts any name silently; a name it does not know can never
                # match a command, so we drop it, but say so.
                log.warning("%s: %s: %r is not a four-letter word command; ignored",
                            self.where, key, word)
        return frozenset(words | DEFAULT_FOUR_LETTER_WORDS)

    def super_digest(self, key: str, value: str) -> str:
        # DigestAuthenticationProvider compares "<user>:<base64(sha1(user:password))>"
        # against this string; a malformed one could never match, so refuse it.
        user, sep, digest = value.partition(":")
        ok = bool(sep and user and _BASE64.fullmatch(digest))
        if ok:
            try:
                ok = len(base64.b64decode(digest, validate=True)) == 20
            except (binascii.Error, ValueError):
                ok = False
        if not ok:
            raise self.error(key, value, "is not of the form <user>:<base64 sha1 digest>")
        return value

    def read_dynamic(self, key: str, value: str) -> dict[str, str]:
        path = value
        if not os.path.isabs(path):
            base = os.path.dirname(self.source) if self.source else ""
            path = os.path.join(base, path)
        try:
            with open(path, "rb") as f:
                text = _decode(f.read())
        except OSError as e:
            raise self.error(key, value, f"cannot be read: {e.strerror or e}") from e
        self.cfg.dynamic_config_file = path
        from .dynconfig import version_from_filename

        self.cfg.config_version = version_from_filename(path)
        sub = _Parser(path)
        lines: dict[str, str] = {}
        for k, v in sub.properties(text).items():
            if k.startswith("server."):
                lines[k] = v
            elif k == "version":
                raise sub.error(k, v, "must not be in the dynamic config file")
            elif k.startswith(("group.", "weight.")):
                self.dynamic_quorum_lines[k] = v
            else:
                raise sub.error(k, v, "is not allowed in a dynamic config file (only server.N)")
        self.servers_source = path  # errors in server lines name the dynamic file
        return lines

    def quorum_system(self, lines: dict[str, str]) -> None:
        """group.N / weight.N: hierarchical quorums, checked as QuorumHierarchical does."""
        p = self if self.servers_source is None else _Parser(self.servers_source)
        c = self.cfg
        in_group: dict[int, int] = {}
        for key, value in lines.items():
            kind, _, num = key.partition(".")
            if kind not in ("group", "weight") or not _PARSE_INT.fullmatch(num):
                raise p.error(key, value, "is not group.N or weight.N with a numeric N")
            n = int(num)
            if kind == "group":
                ids = []
                for part in value.split(":"):
                    if not _PARSE_INT.fullmatch(part.strip()):
                        raise p.error(key, value, "is not a list of server ids (a:b:c)")
                    sid = int(part)
                    if sid in in_group:
                        raise p.error(key, value, f"server {sid} is in several groups")
                    in_group[sid] = n
                    ids.append(sid)
                c.groups[n] = tuple(ids)
            else:
                w = self.int64(key, value)
                if w < 0:
                    raise p.error(key, value, "must not be negative")
                c.weights[n] = w
        if not c.groups:
            if c.weights:
                log.warning("%s: weight.N without group.N has no effect", p.where)
                c.weights = {}
            return
        for sid, spec in sorted(c.servers.items()):
            if spec.role == PARTICIPANT:
                if sid not in in_group:
                    raise p.error(f"server.{sid}", None, "is not in any group.N")
                c.weights.setdefault(sid, 1)

    def server_spec(self, key: str, value: str) -> ServerSpec:
        p = self if self.servers_source is None else _Parser(self.servers_source)
        sid_text = key[len("server.") :]
        if not _PARSE_INT.fullmatch(sid_text) or sid_text.startswith(("+", "-")):
            raise p.error(key, value, "has a server id that is not a non-negative integer")
        sid = int(sid_text)
        # Session ids carry the server id in their top byte; with extended types (TTL
        # nodes) the value 255 is reserved.
        limit = 254 if self.cfg.extended_types_enabled else 255
        if sid > limit and not self.any_server_id:
            raise p.error(key, value, f"has server id {sid}; ids must be 0..{limit}")
        fmt = ("is not host:quorumPort:electionPort[:participant|observer]"
               "[;[clientHost:]clientPort]")
        halves = value.split(";")
        if len(halves) > 2:
            raise p.error(key, value, fmt)
        addresses = halves[0].split("|")
        if len(addresses) > 1 and not self.cfg.multi_address_enabled:
            raise p.error(key, value, "lists several addresses, but multiAddress.enabled is "
                          "not true")
        role = PARTICIPANT
        found: list[tuple[str, int, int]] = []
        for address in addresses:
            parts = p.host_and_port(key, value, address)
            if len(parts) not in (3, 4) or not parts[0]:
                raise p.error(key, value, fmt)
            quorum_port = p.port(key, value, p.server_int(key, value, parts[1]))
            election_port = p.port(key, value, p.server_int(key, value, parts[2]))
            if quorum_port == election_port:
                raise p.error(key, value, "uses the same port for quorum and election")
            if len(parts) == 4:
                role = parts[3].strip().lower()
                if role not in (PARTICIPANT, OBSERVER):
                    raise p.error(key, value, f"{parts[3]!r} is not 'participant' or 'observer'")
            found.append((parts[0], quorum_port, election_port))
        host, quorum_port, election_port = found[0]
        client_host = client_port = None
        if len(halves) == 2:
            cparts = p.host_and_port(key, value, halves[1])
            if len(cparts) == 1:
                client_host, cport = "0.0.0.0", cparts[0]
            elif len(cparts) == 2 and cparts[0]:
                client_host, cport = cparts
            else:
                raise p.error(key, value, fmt)
            client_port = p.port(key, value, p.server_int(key, value, cport))
        return ServerSpec(sid, host, quorum_port, election_port, role, client_host, client_port,
                          tuple(found[1:]))

    def server_int(self, key: str, value: str, text: str) -> int:
        if not _PARSE_INT.fullmatch(text):
            raise self.error(key, value, f"port {text!r} is not an integer")
        return int(text)

    def host_and_port(self, key: str, value: str, s: str) -> list[str]:
        # ConfigUtils.getHostAndPort: "[v6]:rest" or a plain ":"-split.
        if s.startswith("["):
            end = s.find("]")
            if end < 0 or s[end + 1 : end + 2] != ":" or end + 2 == len(s):
                raise self.error(key, value, f"{s!r} is not [ipv6address]:port...")
            return [s[1:end], *s[end + 2 :].split(":")]
        return s.split(":")

    def read_myid(self) -> None:
        path = os.path.join(self.cfg.data_dir, "myid")
        if not os.path.isfile(path):
            return
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                first = f.readline().strip()
        except OSError as e:
            raise self.error(None, None, f"{path}: cannot read: {e.strerror or e}") from e
        if not _PARSE_INT.fullmatch(first):
            raise ConfigError(f"{path}: server id {first!r} is not a number", source=path,
                              key="myid", value=first)
        self.cfg.server_id = int(first)

    def validate(self, settings: dict[str, tuple[str, str]]) -> None:
        c = self.cfg
        lo, hi = c.effective_min_session_timeout, c.effective_max_session_timeout
        if lo > hi:
            if "minSessionTimeout" in settings:
                key, value = settings["minSessionTimeout"]
                reason = f"must not be larger than maxSessionTimeout ({hi} ms)"
            else:
                key, value = settings["maxSessionTimeout"]
                reason = f"must not be smaller than minSessionTimeout ({lo} ms = 2 * tickTime)"
            raise self.error(key, value, reason)

        participants, observers = len(c.participants), len(c.observers)
        if c.servers:
            if participants == 0:
                if not c.standalone_enabled:
                    raise self.error("standaloneEnabled", "false",
                                     "needs at least one participant server.N line")
                raise self.error(f"server.{min(c.servers)}", None,
                                 "observers without participants is not a valid configuration")
            if participants == 1 and c.standalone_enabled:
                if observers:
                    raise self.error(f"server.{min(c.observers)}", None,
                                     "observers without a quorum is not a valid configuration")
                log.warning("%s: only one server specified; running standalone", self.where)
            elif participants <= 2:
                log.warning("%s: no server failure will be tolerated; use at least 3 servers",
                            self.where)
            elif participants % 2 == 0:
                log.warning("%s: an even number of participants; consider an odd number",
                            self.where)

        if c.is_distributed:
            for name, n in (("initLimit", c.init_limit), ("syncLimit", c.sync_limit)):
                if n == 0:
                    raise self.error(name, "0", "must be set for an ensemble")

        # This server's own server.N line (known only when <dataDir>/myid exists) may carry
        # the client address; it wins over clientPort/clientPortAddress, which must agree.
        me = c.servers.get(c.server_id) if c.server_id is not None else None
        if me is not None and me.client_port is not None:
            if "clientPort" in settings and c.client_port != me.client_port:
                key, value = settings["clientPort"]
                raise self.error(key, value, f"differs from the client port in server.{me.id}")
            if "clientPortAddress" in settings and c.client_port_address not in (
                "0.0.0.0",
                me.client_host,
            ):
                key, value = settings["clientPortAddress"]
                raise self.error(key, value, f"differs from the client address in server.{me.id}")
            assert me.client_host is not None
            c.client_port, c.client_port_address = me.client_port, me.client_host
        elif "clientPortAddress" in settings and "clientPort" not in settings:
            key, value = settings["clientPortAddress"]
            raise self.error(key, value, "is set but clientPort is not set")
        elif me is not None:
            me = replace(me, client_host=c.client_port_address, client_port=c.client_port)
            c.servers[me.id] = me
            c.static_client_ids = frozenset({me.id})
        c.client_port_given = "clientPort" in settings or (
            me is not None and me.client_port is not None)
        if me is not None and me.role != c.peer_type:
            log.warning("%s: peerType %s does not match server.%d (%s); using the server list",
                        self.where, c.peer_type, me.id, me.role)
            c.peer_type = me.role
