"""ZooKeeper's four-letter words (``ruok``, ``srvr``, ``stat``, ``mntr``, ...).

A new connection whose first four bytes spell a known command gets a plain-text
answer and is closed, exactly as Apache ZooKeeper 3.8 does (``NIOServerCnxn.
checkFourLetterWord`` and ``server/command/*.java``).  Monitoring tools parse these
answers, so the layout is ZooKeeper's line for line; the values are this server's.

Deliberate differences, each because ZooKeeper's value would be wrong or meaningless
here (none changes a line's format):

* ``wchs``/``wchc``/``wchp`` list every kind of watch (data, exist, child, persistent);
  ZooKeeper 3.8 lists only its data/exist watch table, so a child watch set with
  ``getChildren`` never appears there although ``mntr``'s ``zk_watch_count`` counts it.
* ``conf``'s ``dataDirSize``/``dataLogSize`` and ``dirs`` measure the directory they
  name (ZooKeeper swaps the two), and report our directories as they are.
* ``envi`` replaces the ``java.*`` keys by their Python equivalents (``python.version``
  ...), and the ``os.memory.*`` keys describe this process and machine, not a JVM heap.
* ``mntr`` prints only the values this server really measures; keys for machinery we do
  not have (TLS, JVM pauses, request throttling, per-processor queues...) are left out
  rather than printed as a misleading 0.  Its figures come from ``ops.monitor`` (the
  one monitoring model; the key-by-key decisions are in its docstring).
* ``hash`` prints the tree-digest history as ZooKeeper (``digest.enabled``): a line
  ``<hex zxid>: <digest>`` for every 128th zxid applied since the start, the last 1024.

The version string lives here: :data:`ZK_VERSION` (``3.8.0-zabby-<version>``).  It must
start with ``3.8.0`` -- kazoo's ``server_version()`` and Curator parse the leading
numbers of ``srvr``/``envi`` to decide which opcodes they may use.
"""

from __future__ import annotations

import datetime
import getpass
import logging
import os
import platform
import resource
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..server.config import ALL_FOUR_LETTER_WORDS
from .monitor import monitor_values  # mntr's figures (also re-exported)

if TYPE_CHECKING:
    from ..server.connection import ClientConnection
    from ..server.core import ZabbyServer
    from ..server.metrics import ServerMetrics

__all__ = [
    "BUILD_DATE",
    "FULL_VERSION",
    "KNOWN_COMMANDS",
    "ZK_VERSION",
    "handle_four_letter_word",
    "monitor_values",
    "render",
]

# the logger keeps the name it had in zabby.server, so log filters keep working
log = logging.getLogger("zabby.server.fourletter")

# The Apache ZooKeeper release whose client protocol we speak, then our own version.
ZK_VERSION = f"3.8.0-zabby-{__version__}"


def _build_date() -> str:
    """When this copy of zabby was built or installed (its package's mtime), in
    ZooKeeper's ``yyyy-MM-dd HH:mm UTC`` form."""
    try:
        mtime = os.path.getmtime(
            os.path.join(os.path.dirname(os.path.dirname(__file__)), "__init__.py")
        )
    except OSError:
        return "unknown"
    return datetime.datetime.fromtimestamp(mtime, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


BUILD_DATE = _build_date()
# Version.getFullVersion(): what srvr, stat, envi and mntr print.
FULL_VERSION = f"{ZK_VERSION}, built on {BUILD_DATE}"

ZK_NOT_SERVING = "This ZooKeeper instance is not currently serving requests"

# The control sequence telnet sends when it closes: ZooKeeper knows it so as not to log
# it as a bad length; we just close.
_TELNET_CLOSE = b"\xff\xf4\xff\xfd"
# ClickHouse Keeper's words: known only to a server with zabby.keeperExtensions=true
_KEEPER_WORDS = frozenset({"apiv", "ftfl"})

# ZooTrace's default text trace mask (CLIENT_REQUEST | SERVER_PACKET | CLIENT_PING ...),
# what gtmk answers until stmk changes it.
DEFAULT_TRACE_MASK = 306

_MASK64 = (1 << 64) - 1
_LONG = struct.Struct(">q")


# --------------------------------------------------------------------- formatting
def _hex(n: int) -> str:
    """Java's Long.toHexString: two's complement, lower case, no padding."""
    return format(n & _MASK64, "x")


def java_double(x: float) -> str:
    """Java's Double.toString for the values we print (``0.0``, ``2.125``, ``1.0E7``)."""
    x = float(x)
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    a = abs(x)
    if 1e-3 <= a < 1e7:
        s = repr(x)
        if "e" in s or "E" in s:  # not expected in this range, but be safe
            s = f"{x:.17f}".rstrip("0")
        if "." not in s:
            s += ".0"
        if s.endswith("."):
            s += "0"
        return s
    mant, _, exp = repr(x).partition("e")
    if not exp:  # repr gave a plain number (e.g. 12345678.0)
        mant, _, exp = f"{x:.16e}".partition("e")
        mant = mant.rstrip("0")
    if "." not in mant:
        mant += ".0"
    if mant.endswith("."):
        mant += "0"
    return f"{mant}E{int(exp)}"


def java_address(peer: Any) -> str:
    """InetSocketAddress.toString for an unresolved peer: ``/127.0.0.1:2181``; IPv6 as
    Java prints it, uncompressed and without brackets (``/0:0:0:0:0:0:0:1:2181``)."""
    if not peer:
        return "null"
    host, port = peer[0], peer[1]
    if ":" in host:
        import ipaddress

        base, pct, scope = host.partition("%")
        try:
            ip = ipaddress.IPv6Address(base)
            if ip.ipv4_mapped is not None:
                host = str(ip.ipv4_mapped)
            else:
                host = (
                    ":".join(format(int(g, 16), "x") for g in ip.exploded.split(":")) + pct + scope
                )
        except ValueError:
            pass
    return f"/{host}:{port}"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def java_date(epoch_s: float) -> str:
    """java.util.Date.toString in the local zone: ``Wed Nov 25 00:12:35 UTC 2026``."""
    t = time.localtime(epoch_s)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_zone or 'GMT'} {t.tm_year}"
    )


# --------------------------------------------------------------------- server facts
def _mode(server: ZabbyServer) -> str:
    return getattr(server, "mode", None) or "standalone"


def _serving(server: ZabbyServer) -> bool:
    """ZooKeeperServer.isRunning(): an ensemble member that is electing a leader is not
    (unless it serves read-only clients meanwhile)."""
    return bool(getattr(server, "serving", True)) or _read_only(server)


def _read_only(server: ZabbyServer) -> bool:
    return bool(getattr(server, "read_only", False))


def _session_id(conn: ClientConnection) -> int:
    s = getattr(conn, "session", None)
    return s.id if s is not None else 0


def _sessions(server: ZabbyServer) -> dict:
    tracker = server.sessions
    return getattr(tracker, "sessions", None) or {}


def _ephemerals(server: ZabbyServer) -> dict[int, list[str]]:
    """Session id -> its ephemeral nodes (sessions that own at least one), sorted."""
    return {sid: sorted(paths) for sid, paths in server.tree.ephemerals().items() if paths}


# wchs/wchc/wchp show data, exist, child and persistent watches alike, one entry per
# (connection, path); ZooKeeper 3.8 shows only its data-watch table there.


# --------------------------------------------------------------------- connections
def _interest_ops(conn: ClientConnection) -> int:
    """What NIO's interest set would be: 1 (read) while reading, |4 while output waits."""
    t = getattr(conn, "transport", None)
    if t is None or conn.closed or conn.closing:
        return 0
    ops = 0
    try:
        if t.is_reading():
            ops |= 1
        if t.get_write_buffer_size() > 0:
            ops |= 4
    except Exception:  # a transport being torn down
        return 0
    return ops


def _queued(conn: ClientConnection) -> int:
    return len(getattr(conn, "backlog", ())) + int(getattr(conn, "inflight", 0))


def connection_stats(conn: ClientConnection, brief: bool) -> dict[str, Any]:
    """ServerCnxn.getConnectionInfo: one connection's figures under the AdminServer's
    JSON names; ``cons``/``stat`` print the same figures (:func:`connection_info`)."""
    peer = conn.peer
    info: dict[str, Any] = {
        # the AdminServer prints "host:port"; the text form is java_address(peer)
        "remote_socket_address": java_address(peer)[1:] if peer else None,
        "interest_ops": _interest_ops(conn),
        "outstanding_requests": _queued(conn),
        "packets_received": conn.packets_received,
        "packets_sent": conn.packets_sent,
    }
    if not brief:
        s = getattr(conn, "session", None)
        info.update(
            session_id=_session_id(conn),
            last_operation=conn.last_op,
            established=int(conn.established * 1000),
            session_timeout=getattr(s, "timeout", 0) if s is not None else 0,
            last_cxid=conn.last_cxid,
            last_zxid=conn.last_zxid,
            last_response_time=int(conn.last_response * 1000),
            last_latency=conn.last_latency,
            min_latency=conn.min_latency,
            avg_latency=conn.total_latency // conn.latency_count if conn.latency_count else 0,
            max_latency=conn.max_latency,
        )
    return info


def connection_info(conn: ClientConnection, brief: bool) -> str:
    """ServerCnxn.dumpConnectionInfo (no trailing newline)."""
    i = connection_stats(conn, brief)
    parts = [
        f" {java_address(conn.peer)}[{i['interest_ops']:x}](queued={i['outstanding_requests']},"
        f"recved={i['packets_received']},sent={i['packets_sent']}"
    ]
    sid = _session_id(conn)
    if not brief and sid != 0:
        parts.append(f",sid=0x{_hex(sid)},lop={i['last_operation']},est={i['established']}")
        parts.append(f",to={i['session_timeout']}")
        if i["last_cxid"] >= 0:
            parts.append(f",lcxid=0x{_hex(i['last_cxid'])}")
        parts.append(f",lzxid=0x{_hex(i['last_zxid'])},lresp={i['last_response_time']}")
        parts.append(
            f",llat={i['last_latency']},minlat={i['min_latency']},avglat={i['avg_latency']},"
            f"maxlat={i['max_latency']}"
        )
    parts.append(")")
    return "".join(parts)


def _connections(server: ZabbyServer) -> list[ClientConnection]:
    return sorted(server.connections, key=lambda c: (c.established, c.peer))


# ------------------------------------------------------------------------ commands
def server_stats(server: ZabbyServer, *, dir_sizes: bool = True) -> dict[str, Any]:
    """ServerStats as the AdminServer's ``server_stats`` prints it; srvr/stat print the
    same figures (:func:`_server_stats`).  `dir_sizes=False` leaves the directory sizes
    (a walk of the data directory) for the caller to add off the server's loop."""
    m: ServerMetrics = server.metrics
    out: dict[str, Any] = {
        "packets_sent": m.packets_sent,
        "packets_received": m.packets_received,
        "fsync_threshold_exceed_count": getattr(m, "fsync_threshold_exceed_count", 0),
        # we do not measure response sizes: ZooKeeper's "none yet" value
        "client_response_stats": client_response_stats(server),
        "data_dir_size": 0,
        "log_dir_size": 0,
        "provider_null": False,
        "server_state": _mode(server),
        "last_processed_zxid": m.last_zxid,
        "outstanding_requests": m.outstanding,
        "avg_latency": float(m.avg_latency),
        "max_latency": m.max_latency,
        "min_latency": m.min_latency,
        "num_alive_client_connections": m.connections,
        "uptime": m.uptime_ms,
        "auth_failed_count": getattr(m, "auth_failed_count", 0),
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
    }
    if dir_sizes:
        out["data_dir_size"], out["log_dir_size"] = dir_sizes_of(server)
    return out


def client_response_stats(server: ZabbyServer) -> dict[str, int]:
    """BufferStats of the responses (last/min/max size); -1 until measured."""
    m = server.metrics
    return {
        "last_buffer_size": getattr(m, "last_client_response_size", -1),
        "min_buffer_size": getattr(m, "min_client_response_size", -1),
        "max_buffer_size": getattr(m, "max_client_response_size", -1),
    }


def _server_stats(server: ZabbyServer) -> str:
    """ServerStats.toString plus the node count, as srvr/stat print them."""
    m: ServerMetrics = server.metrics
    st = server_stats(server, dir_sizes=False)
    return (
        f"Latency min/avg/max: {st['min_latency']}/{java_double(st['avg_latency'])}/"
        f"{st['max_latency']}\n"
        f"Received: {st['packets_received']}\n"
        f"Sent: {st['packets_sent']}\n"
        f"Connections: {st['num_alive_client_connections']}\n"
        f"Outstanding: {st['outstanding_requests']}\n"
        f"Zxid: 0x{_hex(st['last_processed_zxid'])}\n"
        f"Mode: {st['server_state']}\n"
        f"Node count: {m.node_count}\n"
    )


def _stat(server: ZabbyServer, conn: ClientConnection, full: bool) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    out = [f"Zookeeper version: {FULL_VERSION}\n"]
    if _read_only(server):
        out.append("READ-ONLY mode; serving only read-only clients\n")
    if full:
        out.append("Clients:\n")
        for c in _connections(server):
            out.append(connection_info(c, brief=True) + "\n")
        out.append("\n")
    out.append(_server_stats(server))
    return "".join(out)


def cmd_srvr(server: ZabbyServer, conn: ClientConnection) -> str:
    return _stat(server, conn, full=False)


def cmd_stat(server: ZabbyServer, conn: ClientConnection) -> str:
    return _stat(server, conn, full=True)


def cmd_ruok(server: ZabbyServer, conn: ClientConnection) -> str:
    return "imok"


def cmd_isro(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return "null"
    return "ro" if _read_only(server) else "rw"


def cmd_cons(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    return "".join(connection_info(c, brief=False) + "\n" for c in _connections(server)) + "\n"


def cmd_crst(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    for c in list(server.connections):
        c.reset_stats()
    return "Connection stats reset.\n"


def cmd_srst(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    server.metrics.reset()
    return "Server stats reset.\n"


def _dirs(server: ZabbyServer) -> tuple[str, str]:
    """(snapshot dir, log dir) as absolute paths: the storage layer's if it says, else
    the configured ones."""
    cfg = server.config
    storage = getattr(server, "storage", None)
    data = getattr(storage, "snap_dir", None) or cfg.data_dir
    logd = getattr(storage, "log_dir", None) or getattr(cfg, "effective_data_log_dir", None)
    logd = logd or cfg.data_log_dir or cfg.data_dir
    return os.path.abspath(os.fspath(data)), os.path.abspath(os.fspath(logd))


def dir_size(path: str) -> int:
    """ZooKeeperServer.getDirSize: the total length of the files below path."""
    total = 0
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return 0
    if not os.path.isdir(path):
        return st.st_size
    for root, _subdirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f), follow_symlinks=False).st_size
            except OSError:
                pass
    return total


def dir_sizes_of(server: ZabbyServer) -> tuple[int, int]:
    """(data dir size, log dir size): what dirs, conf and server_stats report."""
    data, logd = _dirs(server)
    return dir_size(data), dir_size(logd)


def configuration(server: ZabbyServer) -> dict[str, Any]:
    """ZooKeeperServer.getConf (ZooKeeperServerConf) under the AdminServer's JSON names;
    conf prints the same figures plus the directory sizes and the secure port."""
    cfg = server.config
    data, logd = _dirs(server)
    return {
        "client_port": getattr(server, "port", None) or cfg.client_port,
        "data_dir": data,
        "data_log_dir": logd,
        "tick_time": cfg.tick_time,
        "max_client_cnxns": cfg.max_client_cnxns,
        "min_session_timeout": cfg.effective_min_session_timeout,
        "max_session_timeout": cfg.effective_max_session_timeout,
        "server_id": getattr(cfg, "server_id", None) or 0,
        "client_port_listen_backlog": getattr(server, "listen_backlog", -1),
    }


def cmd_conf(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    c = configuration(server)
    data_size, log_size = dir_sizes_of(server)
    lines = [
        ("clientPort", c["client_port"]),
        ("secureClientPort", getattr(server, "secure_port", None) or -1),
        ("dataDir", c["data_dir"]),
        ("dataDirSize", data_size),
        ("dataLogDir", c["data_log_dir"]),
        ("dataLogSize", log_size),
        ("tickTime", c["tick_time"]),
        ("maxClientCnxns", c["max_client_cnxns"]),
        ("minSessionTimeout", c["min_session_timeout"]),
        ("maxSessionTimeout", c["max_session_timeout"]),
        ("clientPortListenBacklog", c["client_port_listen_backlog"]),
        ("serverId", c["server_id"]),
    ]
    # an ensemble member adds its quorum settings and membership (QuorumZooKeeperServer)
    extra = getattr(server, "conf_extra", None)
    return "".join(f"{k}={v}\n" for k, v in lines) + (extra() if extra is not None else "")


def cmd_dirs(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    data_size, log_size = dir_sizes_of(server)
    return f"datadir_size: {data_size}\nlogdir_size: {log_size}\n"


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if parts:
                    out[k] = int(parts[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # ru_maxrss: peak, kB on Linux, bytes on macOS
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024
    except (OSError, ValueError):
        return None


def environment() -> list[tuple[str, str]]:
    """Environment.list with Python's facts in place of the JVM's."""
    na = "<NA>"
    try:
        host = socket.getfqdn()
    except OSError:
        host = na
    try:
        user = getpass.getuser()
    except Exception:
        user = na
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = na
    mb = 1024 * 1024
    mem = _meminfo()
    rss = _rss_bytes()
    limit = None
    try:
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limit = soft
    except (OSError, ValueError, AttributeError):
        pass
    total_ram = mem.get("MemTotal")
    max_mem = min(x for x in (limit, total_ram) if x is not None) if (limit or total_ram) else None
    free = mem.get("MemAvailable")
    impl = platform.python_implementation()
    env = [
        ("zookeeper.version", FULL_VERSION),
        ("host.name", host or na),
        ("python.version", platform.python_version()),
        ("python.implementation", impl),
        ("python.executable", sys.executable or na),
        ("python.prefix", sys.prefix or na),
        ("python.path", os.pathsep.join(p for p in sys.path if p) or na),
        ("python.compiler", platform.python_compiler() or na),
        ("python.io.tmpdir", tempfile.gettempdir()),
        ("os.name", platform.system() or na),
        ("os.arch", platform.machine() or na),
        ("os.version", platform.release() or na),
        ("user.name", user),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", cwd),
        # the JVM reports its heap; we report the machine's available memory, the most
        # this process may use (address-space limit or physical memory) and its RSS
        ("os.memory.free", f"{free // mb}MB" if free is not None else na),
        ("os.memory.max", f"{max_mem // mb}MB" if max_mem is not None else na),
        ("os.memory.total", f"{rss // mb}MB" if rss is not None else na),
    ]
    return env


def cmd_envi(server: ZabbyServer, conn: ClientConnection) -> str:
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in environment())


def cmd_wchs(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    conns, paths, total = server.watches.summary_all()
    return f"{conns} connections watching {paths} paths\nTotal watches:{total}\n"


def _watcher_sid(w: Any) -> int:
    return _session_id(w) if hasattr(w, "session") else int(getattr(w, "id", 0) or 0)


def cmd_wchc(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    out = []
    items = sorted(
        server.watches.by_watcher_merged().items(), key=lambda kv: _watcher_sid(kv[0]) & _MASK64
    )
    for w, paths in items:
        out.append(f"0x{_hex(_watcher_sid(w))}\n\t")
        out.append("\n\t".join(sorted(paths)))
        out.append("\n")
    out.append("\n")
    return "".join(out)


def cmd_wchp(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    # one "\t0x<sid>\n" string per watcher, made once: a flood of watches comes
    # from few sessions, so a path costs a dict lookup, not a format
    lines: dict[Any, tuple[int, str]] = {}
    alone: dict[Any, str] = {}  # watcher -> "\n\t0x<sid>\n", for a path only it watches

    def line_of(w: Any) -> tuple[int, str]:
        got = lines.get(w)
        if got is None:
            sid = _watcher_sid(w) & _MASK64
            got = lines[w] = (sid, f"\t0x{_hex(sid)}\n")
            alone[w] = "\n" + got[1]
        return got

    out = []
    append = out.append
    # an entry is a dict of watchers, or the one watcher of that path
    for path, entry in server.watches.by_path_sorted():
        if type(entry) is not dict:
            s = alone.get(entry)
            if s is None:
                line_of(entry)
                s = alone[entry]
            append(path)
            append(s)
        elif entry:
            append(path)
            append("\n")
            by_sid = dict(line_of(w) for w in entry)
            out.extend(by_sid[sid] for sid in sorted(by_sid))
    append("\n")
    return "".join(out)


def session_sets(server: ZabbyServer) -> dict[int, list[int]]:
    """The session tracker's expiry queue: deadline (server-monotonic ms) -> session ids,
    both in order.  dump prints it; the AdminServer's dump is
    ``expiry_time_to_session_ids``."""
    buckets: dict[int, list[int]] = {}
    for s in _sessions(server).values():
        buckets.setdefault(s.expire_at, []).append(s.id)
    return {t: sorted(buckets[t], key=lambda sid: sid & _MASK64) for t in sorted(buckets)}


def _wall_ms_of_monotonic(server: ZabbyServer, mono_ms: int) -> float:
    """Time.elapsedTimeToDate: a monotonic deadline as wall-clock seconds."""
    return (time.time() * 1000 - server.monotonic_ms() + mono_ms) / 1000.0


def cmd_dump(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    out = ["SessionTracker dump:\n"]
    buckets = session_sets(server)
    out.append(f"Session Sets ({len(buckets)})/({sum(map(len, buckets.values()))}):\n")
    for t, group in buckets.items():
        out.append(f"{len(group)} expire at {java_date(_wall_ms_of_monotonic(server, t))}:\n")
        out.extend(f"\t0x{_hex(sid)}\n" for sid in group)
    out.append("ephemeral nodes dump:\n")
    eph = _ephemerals(server)
    out.append(f"Sessions with Ephemerals ({len(eph)}):\n")
    for sid in sorted(eph, key=lambda x: x & _MASK64):
        out.append(f"0x{_hex(sid)}:\n")
        out.extend(f"\t{p}\n" for p in eph[sid])
    # ZooKeeper's connection expiry queue: a connection lives as long as its session's
    # deadline; one without a session yet, until minSessionTimeout after it was opened
    out.append("Connections dump:\n")
    conns = _connections(server)
    cbuckets: dict[float, list] = {}
    tick = max(1, server.config.tick_time)
    for c in conns:
        s = c.session
        if s is not None and s.expire_at:
            wall = _wall_ms_of_monotonic(server, s.expire_at)
        else:
            due_ms = c.established * 1000 + server.min_session_timeout
            wall = (due_ms // tick + 1) * tick / 1000.0
        cbuckets.setdefault(round(wall, 3), []).append(c)
    out.append(f"Connections Sets ({len(cbuckets)})/({len(conns)}):\n")
    for t in sorted(cbuckets):
        group = cbuckets[t]
        out.append(f"{len(group)} expire at {java_date(t)}:\n")
        out.extend(
            f"\tip: {java_address(c.peer)} sessionId: 0x{_hex(_session_id(c))}\n" for c in group
        )
    return "".join(out)


def _mntr_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return java_double(v)
    return str(v)


def cmd_mntr(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING + "\n"
    return "".join(f"zk_{k}\t{_mntr_value(v)}\n" for k, v in monitor_values(server))


def trace_mask(server: ZabbyServer) -> int:
    """ZooTrace's text trace mask: gtmk answers it, stmk sets it."""
    mask = server.trace_mask
    return DEFAULT_TRACE_MASK if mask is None else mask


def set_trace_mask(server: ZabbyServer, mask: int) -> int:
    server.trace_mask = mask
    return mask


_trace_mask = trace_mask


def cmd_gtmk(server: ZabbyServer, conn: ClientConnection) -> str:
    return str(_trace_mask(server))


def cmd_hash(server: ZabbyServer, conn: ClientConnection) -> str:
    if not _serving(server):
        return ZK_NOT_SERVING
    # DigestCommand: "<hex zxid>: <digest>" per entry of the digest history
    return "".join(f"{_hex(z)}: {d}\n" for z, d in digest_history(server))


def digest_history(server: ZabbyServer) -> list[tuple[int, int]]:
    """(zxid, tree digest) pairs the server remembers (hash): DataTree.digest_log."""
    log_ = getattr(server.tree, "digest_log", None)
    return list(log_() if callable(log_) else (log_ or ()))


COMMANDS: dict[str, Callable[[Any, Any], str]] = {
    "conf": cmd_conf,
    "cons": cmd_cons,
    "crst": cmd_crst,
    "dirs": cmd_dirs,
    "dump": cmd_dump,
    "envi": cmd_envi,
    "gtmk": cmd_gtmk,
    "ruok": cmd_ruok,
    "srst": cmd_srst,
    "srvr": cmd_srvr,
    "stat": cmd_stat,
    "wchc": cmd_wchc,
    "wchp": cmd_wchp,
    "wchs": cmd_wchs,
    "mntr": cmd_mntr,
    "isro": cmd_isro,
    "hash": cmd_hash,
}
# stmk is known too; it needs the 8 bytes that follow it (see handle_four_letter_word)
KNOWN_COMMANDS: frozenset[str] = frozenset(COMMANDS) | {"stmk"}


def render(server: ZabbyServer, conn: ClientConnection, cmd: str) -> str:
    """The answer to an enabled command (not stmk)."""
    return COMMANDS[cmd](server, conn)


def _enabled(server: ZabbyServer, cmd: str) -> bool:
    words = server.config.four_letter_words
    if cmd in _KEEPER_WORDS and words >= ALL_FOUR_LETTER_WORDS:
        return True  # "*" enables ClickHouse Keeper's words as well
    # zkServer.sh depends on srvr: ZooKeeper always enables it
    return cmd == "srvr" or cmd in words or "*" in words


def handle_four_letter_word(server: ZabbyServer, conn: ClientConnection, head: bytes) -> bool:
    """Answer the four-letter word `head` on a new connection and close it.

    Returns False if `head` is no known command: then it is the length of the first
    frame and the connection goes on with the normal protocol.
    """
    head = bytes(head)
    if head == _TELNET_CLOSE:
        conn.close_after_flush()
        return True
    if not head.isascii():
        return False
    cmd = head.decode("ascii")
    if cmd not in KNOWN_COMMANDS and (
            cmd not in _KEEPER_WORDS or getattr(server, "keeper", None) is None):
        return False
    server.metrics.packets_received += 1
    conn.packets_received += 1
    # ZooKeeper stops reading a command connection (it cancels its selection key), so
    # it lists itself with interest ops 0; so do we
    transport = getattr(conn, "transport", None)
    if transport is not None:
        try:
            transport.pause_reading()
        except Exception:  # already closing
            pass
    if not _enabled(server, cmd):
        log.debug("Command %s is not executed because it is not in the whitelist.", cmd)
        answer = f"{cmd} is not executed because it is not in the whitelist.\n"
    else:
        log.info("Processing %s command from %s", cmd, java_address(conn.peer))
        try:
            if cmd == "stmk":
                answer = _stmk(server, conn)
            elif cmd in _KEEPER_WORDS:  # ClickHouse Keeper's apiv / ftfl
                answer = server.keeper.four_letter_word(cmd)
            else:
                answer = render(server, conn, cmd)
        except Exception:
            log.exception("Error in running command %s", cmd)
            answer = None
    if answer:
        conn.send(answer.encode("utf-8"))
        server.metrics.packets_sent += 1
    conn.close_after_flush()
    return True


def _stmk(server: ZabbyServer, conn: ClientConnection) -> str | None:
    """Set the trace mask from the 8-byte long that follows ``stmk`` in the same read,
    and answer it; like ZooKeeper, close without an answer when it is not there."""
    rest = getattr(conn, "head_rest", b"")
    if len(rest) < 8:
        log.warning("stmk from %s without its 8-byte mask; closing", java_address(conn.peer))
        return None
    (mask,) = _LONG.unpack_from(rest)
    return str(set_trace_mask(server, mask))
