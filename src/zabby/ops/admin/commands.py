"""The AdminServer's commands: ZooKeeper 3.8's set (``Commands.java``), same names,
aliases, JSON field names and status codes, plus 3.9's ``snapshot`` and ``restore``.

Every command runs in a worker thread of the AdminServer, never on the server's loop:
it reads the server through ``ctx.bridge`` in short calls (large tables -- watches,
ephemerals -- a bounded chunk per call) and does everything slow (directory walks,
JSON encoding, file I/O) where it is.

A command answers a :class:`Response`: its data (a dict) becomes the JSON document
``{...data, "command": <primary name>, "error": <null or message>}``, as ZooKeeper's
``CommandResponse.toMap`` does; or it streams a file (``snapshot``).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import fourletter as fl
from ..fourletter import FULL_VERSION
from ..monitor import monitor_values

if TYPE_CHECKING:
    from . import AdminContext

log = logging.getLogger("zabby.ops.admin")

__all__ = ["COMMANDS", "PRIMARY_NAMES", "Response", "run_command"]

ZK_NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
# how many keys (watchers, paths, sessions) one call on the server's loop handles
CHUNK = 2000
_MASK64 = (1 << 64) - 1


@dataclass
class Response:
    """CommandResponse: the command's primary name, its data, the HTTP status, extra
    headers and, for a stream, the file to send instead of JSON."""

    command: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    file: str | None = None  # a file streamed as application/octet-stream
    cleanup: Callable[[], None] | None = None

    def to_map(self) -> dict[str, Any]:
        out = dict(self.data)
        out["command"] = self.command
        out.setdefault("error", self.error)
        if self.error is not None:
            out["error"] = self.error
        return out


Kwargs = dict[str, str]
Handler = Callable[["AdminContext", Response, Kwargs], None]


@dataclass
class Command:
    names: tuple[str, ...]
    handler: Handler
    server_required: bool = True
    auth: bool = False  # needs an identity with ALL on "/" (3.9's AuthRequest)
    post: bool = False  # a POST command (restore); the others are GET

    @property
    def primary(self) -> str:
        return self.names[0]


COMMANDS: dict[str, Command] = {}
PRIMARY_NAMES: list[str] = []


def command(*names: str, server_required: bool = True, auth: bool = False,
            post: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        cmd = Command(names, fn, server_required, auth, post)
        PRIMARY_NAMES.append(names[0])
        for n in names:
            COMMANDS[n] = cmd
        return fn
    return register


# ------------------------------------------------------------------------ helpers
def _call(ctx: AdminContext, fn: Callable[..., Any], *args: Any) -> Any:
    return ctx.bridge.call(fn, *args)


def _chunked(ctx: AdminContext, keys: list, read: Callable[[Any, list], list]) -> Iterator[Any]:
    """read(server, part) on the loop for each CHUNK of keys, results in order."""
    server = ctx.server
    for i in range(0, len(keys), CHUNK):
        yield from ctx.bridge.call(read, server, keys[i:i + CHUNK])


def _signed(n: int) -> int:
    """A 64-bit id as Java's long (what Jackson prints)."""
    n &= _MASK64
    return n - (1 << 64) if n >= 1 << 63 else n


def _is_ensemble(server: Any) -> bool:
    return hasattr(server, "peer") and hasattr(server, "leader_id")


# ------------------------------------------------------------------------ commands
@command("configuration", "conf", "config")
def _configuration(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data.update(_call(ctx, fl.configuration, ctx.server))


@command("connection_stat_reset", "crst")
def _crst(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    def reset(server: Any) -> None:
        for c in list(server.connections):
            c.reset_stats()
    _call(ctx, reset, ctx.server)


def _connection_lists(server: Any, brief: bool) -> tuple[list, list]:
    plain, secure = [], []
    for c in fl._connections(server):
        (secure if _is_tls(c) else plain).append(fl.connection_stats(c, brief))
    return plain, secure


def _is_tls(conn: Any) -> bool:
    t = getattr(conn, "transport", None)
    try:
        return t is not None and t.get_extra_info("ssl_object") is not None
    except Exception:  # a transport being torn down
        return False


@command("connections", "cons")
def _connections(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    plain, secure = _call(ctx, _connection_lists, ctx.server, False)
    r.data["connections"] = plain
    r.data["secure_connections"] = secure


@command("dirs")
def _dirs(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    data, logd = _call(ctx, fl._dirs, ctx.server)  # the walk happens here, off the loop
    r.data["datadir_size"] = fl.dir_size(data)
    r.data["logdir_size"] = fl.dir_size(logd)


def _ephemeral_keys(server: Any) -> list[int]:
    return [sid for sid, paths in server.tree._ephemerals.items() if paths]


def _ephemerals_of(server: Any, sids: list[int]) -> list[tuple[int, list[str]]]:
    table = server.tree._ephemerals
    return [(sid, list(table.get(sid, ()))) for sid in sids]


@command("dump")
def _dump(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    sets = _call(ctx, fl.session_sets, ctx.server)
    r.data["expiry_time_to_session_ids"] = {
        str(t): [_signed(s) for s in sids] for t, sids in sets.items()}
    sids = _call(ctx, _ephemeral_keys, ctx.server)
    eph = {}
    for sid, paths in sorted(_chunked(ctx, sids, _ephemerals_of), key=lambda x: x[0] & _MASK64):
        if paths:
            eph[str(_signed(sid))] = sorted(paths)
    r.data["session_id_to_ephemeral_paths"] = eph


@command("environment", "env", "envi", server_required=False)
def _environment(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data.update(fl.environment())


@command("get_trace_mask", "gtmk", server_required=False)
def _gtmk(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data["tracemask"] = _call(ctx, fl.trace_mask, ctx.server)


@command("hash")
def _hash(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    # DataTree.ZxidDigest as Jackson writes the bean
    r.data["digests"] = [{"zxid": z, "digest_version": 2, "digest": d}
                         for z, d in _call(ctx, fl.digest_history, ctx.server)]


@command("initial_configuration", "icfg")
def _icfg(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data["initial_configuration"] = ctx.initial_configuration


@command("is_read_only", "isro")
def _isro(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data["read_only"] = bool(_call(ctx, fl._read_only, ctx.server))


def _snap_dir(server: Any) -> str:
    committer = getattr(server, "committer", None)
    return getattr(committer, "snap_dir", None) or server.config.data_dir


@command("last_snapshot", "lsnp")
def _lsnp(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    from ...storage.recovery import list_snapshots

    snaps = list_snapshots(_call(ctx, _snap_dir, ctx.server))
    zxid, ts = -1, -1
    for z, path in snaps:  # newest first; a file purged meanwhile is skipped
        try:
            ts = int(os.path.getmtime(path))
        except OSError:
            continue
        zxid = z
        break
    r.data["zxid"] = format(zxid & _MASK64, "x")
    r.data["timestamp"] = ts


def _leader_info(server: Any) -> dict[str, Any] | None:
    if not _is_ensemble(server):
        return None
    lid = server.leader_id
    spec = server.config.servers.get(lid) if lid is not None else None
    return {
        "is_leader": server.role == "leading",
        "leader_id": lid if lid is not None else -1,
        "leader_ip": spec.host if spec is not None else "",
    }


@command("leader", "lead")
def _leader(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    info = _call(ctx, _leader_info, ctx.server)
    if info is None:
        r.data["error"] = "server is not initialized"
    else:
        r.data.update(info)


@command("monitor", "mntr", server_required=False)
def _monitor(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data.update(_call(ctx, monitor_values, ctx.server))


@command("observer_connection_stat_reset", "orst")
def _orst(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    pass  # no per-observer connection statistics are kept


@command("observers", "obsr")
def _observers(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data["synced_observers"] = 0
    r.data["observers"] = []


@command("ruok")
def _ruok(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    pass


@command("set_trace_mask", "stmk", server_required=False)
def _stmk(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    if "traceMask" not in kw:
        r.data["error"] = "setTraceMask requires long traceMask argument"
        return
    raw = kw["traceMask"]
    try:
        mask = _java_long(raw)
    except ValueError:
        r.data["error"] = f"setTraceMask requires long traceMask argument, got {raw}"
        return
    r.data["tracemask"] = _call(ctx, fl.set_trace_mask, ctx.server, mask)


def _java_long(s: str) -> int:
    """Long.parseLong: optional sign, ASCII decimal digits, 64-bit range."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(s)
    n = int(s)
    if not -(1 << 63) <= n < 1 << 63:
        raise ValueError(s)
    return n


def _stats_parts(server: Any, with_connections: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": FULL_VERSION,
        "read_only": fl._read_only(server),
        "server_stats": fl.server_stats(server, dir_sizes=False),
        "client_response": fl.client_response_stats(server),
        "node_count": server.metrics.node_count,
    }
    if with_connections:
        out["connections"], out["secure_connections"] = _connection_lists(server, True)
    return out


def _stats(ctx: AdminContext, r: Response, with_connections: bool) -> None:
    parts = _call(ctx, _stats_parts, ctx.server, with_connections)
    data, logd = _call(ctx, fl._dirs, ctx.server)
    parts["server_stats"]["data_dir_size"] = fl.dir_size(data)
    parts["server_stats"]["log_dir_size"] = fl.dir_size(logd)
    r.data.update(parts)


@command("server_stats", "srvr")
def _srvr(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    _stats(ctx, r, False)


@command("stat_reset", "srst")
def _srst(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    _call(ctx, lambda: ctx.server.metrics.reset())


@command("stats", "stat")
def _stat(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    _stats(ctx, r, True)


@command("system_properties", "sysp", server_required=False)
def _sysp(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data.update(system_properties(ctx))


def _voting_view(server: Any) -> dict[str, Any]:
    if not _is_ensemble(server):
        return {}
    view = {}
    for sid, spec in sorted(server.config.servers.items()):
        if spec.is_observer:
            continue
        client = ""
        if spec.client_port:
            client = f"{spec.client_host or '0.0.0.0'}:{spec.client_port}"
        view[str(sid)] = {
            "server_addresses": [f"{spec.host}:{spec.quorum_port}"],
            "election_addresses": [f"{spec.host}:{spec.election_port}"],
            "client_address": client,
            "learner_type": spec.role,
        }
    return view


@command("voting_view")
def _voting(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data["current_config"] = _call(ctx, _voting_view, ctx.server)


@command("watch_summary", "wchs")
def _wchs(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    conns, paths, total = _call(ctx, lambda: ctx.server.watches.summary_all())
    r.data.update(num_connections=conns, num_paths=paths, num_total_watches=total)


def _watchers(server: Any) -> list:
    w = server.watches
    return list(w.data.by_watcher.keys() | w.child.by_watcher.keys())


def _paths_of_watchers(server: Any, watchers: list) -> list[tuple[int, list[str]]]:
    w = server.watches
    dw, cw = w.data.by_watcher, w.child.by_watcher
    out = []
    for watcher in watchers:
        paths = [*dw.get(watcher, ()), *cw.get(watcher, ())]
        if paths:
            out.append((fl._watcher_sid(watcher), paths))
    return out


@command("watches", "wchc")
def _wchc(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    watchers = _call(ctx, _watchers, ctx.server)
    by_sid: dict[int, set[str]] = {}
    for sid, paths in _chunked(ctx, watchers, _paths_of_watchers):
        by_sid.setdefault(sid, set()).update(paths)
    r.data["session_id_to_watched_paths"] = {
        str(_signed(sid)): sorted(by_sid[sid]) for sid in sorted(by_sid, key=lambda s: s & _MASK64)}


def _watched_paths(server: Any) -> list[str]:
    w = server.watches
    return list(w.data.table.keys() | w.child.table.keys())


def _watchers_of_paths(server: Any, paths: list[str]) -> list[tuple[str, list[int]]]:
    w = server.watches
    at_d, at_c = w.data.watchers_at, w.child.watchers_at
    out = []
    for p in paths:
        ws = [*(at_d(p) or ()), *(at_c(p) or ())]
        if ws:
            out.append((p, [fl._watcher_sid(x) for x in ws]))
    return out


@command("watches_by_path", "wchp")
def _wchp(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    paths = sorted(_call(ctx, _watched_paths, ctx.server))
    r.data["path_to_session_ids"] = {
        p: sorted({_signed(s) for s in sids}, key=lambda s: s & _MASK64)
        for p, sids in _chunked(ctx, paths, _watchers_of_paths)}


def _multiple_addresses(host: str, port: int) -> dict[str, Any]:
    """QuorumPeer's MultipleAddresses as Jackson writes the bean (its getters)."""
    a = f"{host}:{port}"
    return {
        "empty": False,
        "all_addresses": [a],
        "all_reachable_addresses": [a],
        "one": a,
        "reachable_address": a,
        "wildcard_addresses": [f"0.0.0.0:{port}"],
        "all_ports": [port],
        "all_host_strings": [host],
        "all_reachable_addresses_or_all": [a],
        "reachable_or_one": a,
    }


def _zab_state(server: Any) -> dict[str, Any]:
    if not _is_ensemble(server):
        return {"voting": False, "zabstate": ""}
    cfg = server.config
    me = cfg.servers.get(cfg.server_id)
    zxid = server.tree.last_zxid
    phase = getattr(server.peer, "phase", "") or "election"
    return {
        "myid": cfg.server_id,
        "is_leader": server.role == "leading",
        "quorum_address": _multiple_addresses(me.host, me.quorum_port) if me else None,
        "election_address": _multiple_addresses(me.host, me.election_port) if me else None,
        "client_address": f"{cfg.client_port_address}:{getattr(server, 'port', cfg.client_port)}",
        "voting": me is not None and not me.is_observer,
        "last_zxid": f"0x{zxid:x}",
        "zab_epoch": zxid >> 32,
        "zab_counter": zxid & 0xFFFFFFFF,
        "zabstate": {"sync": "synchronization", "epoch": "discovery"}.get(phase, phase),
    }


@command("zabstate", server_required=False)
def _zabstate(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    r.data.update(_call(ctx, _zab_state, ctx.server))


# ------------------------------------------------------------ system properties
def system_properties(ctx: AdminContext) -> dict[str, str]:
    """System.getProperties with this process's facts where the JVM would give its own,
    and the ``zookeeper.*`` settings the configuration gave, as ZooKeeper turns them
    into properties; sorted, as ZooKeeper prints them."""
    props: dict[str, str] = {
        "file.encoding": sys.getfilesystemencoding().upper().replace("UTF8", "UTF-8"),
        "file.separator": os.sep,
        "line.separator": os.linesep,
        "path.separator": os.pathsep,
        "os.arch": platform.machine(),
        "os.name": platform.system(),
        "os.version": platform.release(),
        "python.version": platform.python_version(),
        "python.implementation": platform.python_implementation(),
        "python.executable": sys.executable,
        "sun.java.command": " ".join(sys.argv),
        "user.dir": os.getcwd(),
        "user.home": os.path.expanduser("~"),
        "user.timezone": time.tzname[0],
    }
    try:
        import getpass

        props["user.name"] = getpass.getuser()
    except Exception:  # no user name
        pass
    props.update(ctx.zookeeper_properties)
    return dict(sorted(props.items()))


# ------------------------------------------------------------ snapshot / restore
from .snapshot import register as _register_snapshot  # noqa: E402

_register_snapshot(command)


# ------------------------------------------------------------------ dispatch
def run_command(ctx: AdminContext, name: str, kwargs: Kwargs, *, post: bool = False,
                auth_info: str | None = None, client_ip: str = "",
                body: Any = None, peer_dn: str | None = None) -> Response:
    """Commands.runCommand: the command's answer (in the calling thread)."""
    cmd = COMMANDS.get(name)
    if cmd is None:
        log.warning("Unknown command")
        return Response(name, error=f"Unknown command: {name}")
    r = Response(cmd.primary)
    if cmd.server_required and not _serving(ctx):
        r.error = ZK_NOT_SERVING
        return r
    if cmd.auth:
        from .snapshot import authorize

        denied = authorize(ctx, r, auth_info, client_ip, peer_dn)
        if denied is not None:
            return denied
    try:
        if post:
            cmd.handler(ctx, r, {"__body__": body} if body is not None else {})
        else:
            cmd.handler(ctx, r, kwargs)
    except fl_errors() as e:  # the server did not answer: say so, do not hang
        r.error = f"the server did not answer: {e}"
        r.status = 503
    except Exception as e:
        log.exception("Error in running command %s", cmd.primary)
        r.error = f"{type(e).__name__}: {e}"
        r.status = 500
    return r


def refuse_early(ctx: AdminContext, name: str, auth_info: str | None,
                 client_ip: str, peer_dn: str | None = None) -> Response | None:
    """The refusal a request gets before its body is read (unknown server state,
    missing or insufficient identity), so no one uploads without the right to."""
    cmd = COMMANDS.get(name)
    if cmd is None:
        return None
    r = Response(cmd.primary)
    if cmd.server_required and not _serving(ctx):
        r.error = ZK_NOT_SERVING
        return r
    if cmd.auth:
        from .snapshot import authorize

        return authorize(ctx, r, auth_info, client_ip, peer_dn)
    return None


def fl_errors() -> tuple[type[BaseException], ...]:
    from ..bridge import ServerBusy

    return (ServerBusy,)


def _serving(ctx: AdminContext) -> bool:
    try:
        return bool(ctx.bridge.call(fl._serving, ctx.server))
    except Exception:
        return False


def initial_configuration(config: Any) -> str | None:
    """The configuration file's text as it was when the server started."""
    if config.source is None:
        return None
    try:
        with open(config.source, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def zookeeper_properties(config: Any) -> dict[str, str]:
    """The ``zookeeper.<name>`` properties a zoo.cfg sets (QuorumPeerConfig makes the
    system-property keys it reads from the file into properties)."""
    from ...server.config import _SYSPROP_KEYS, parse_properties

    text = initial_configuration(config)
    out: dict[str, str] = {}
    if not text:
        return out
    try:
        entries = parse_properties(text)
    except Exception:
        return out
    for key, value, _ in entries:
        name = key.strip()
        bare = name[len("zookeeper."):] if name.startswith("zookeeper.") else name
        if bare in _SYSPROP_KEYS:
            out["zookeeper." + bare] = value.strip()
    return out


def iter_links(url: str, names: Iterable[str]) -> Iterator[str]:
    """The command list ZooKeeper prints at the command URL."""
    for n in sorted(names):
        yield f'<a href="{url}/{n}">{n}</a>\n<br/>\n'
