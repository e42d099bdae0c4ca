"""`zabby shell`: an interactive ZooKeeper shell with zkCli.sh 3.8's commands and output.

    zabby shell -server 127.0.0.1:2181            # interactive (prompt_toolkit)
    zabby shell -server 127.0.0.1:2181 -c "create /a x; get /a"
    echo "ls /" | zabby shell --server 127.0.0.1:2181
    zabby shell -server h1:2181,h2:2181/app       # every path below /app

Scripted use (``-c``, a command after the options, or commands on a pipe) stops at
the first failing command and exits 1 (zkCli.sh reading a pipe goes on and exits 0).
Results go to stdout and errors to stderr; unlike zkCli.sh, "Created /path" is a
result (stdout). Tab completes command names and znode paths (children of the typed
prefix, asked of the server). History is kept in ~/.zabby_history, or in the file
$ZABBY_SHELL_HISTORY names. Watch events and connection changes are printed above the
prompt as they arrive.

The client is `zabby.client.SyncClient`: a lost connection is made again in the
background, with the same session, its watches and its auth; a command given while
there is none waits a few seconds for it (CONNECT_WAIT) and then fails with
ConnectionLoss. The shell applies the chroot itself (the client gets the bare host
list): quota and config commands must reach /zookeeper past it on the same session.

setquota / listquota / delquota write and read ZooKeeper's quota nodes
(/zookeeper/quota/<path>/zookeeper_limits and zookeeper_stats) in ZooKeeper 3.8's
format; with a chroot they name the real path (zkCli would put them below the
chroot).

TLS and SASL: ``-client-configuration FILE`` with ZooKeeper's client keys
(zookeeper.client.secure=true, zookeeper.ssl.keyStore.* and trustStore.* as JKS,
PKCS12 or PEM, zookeeper.ssl.hostnameVerification; java.security.auth.login.config
naming a JAAS file whose section -- zookeeper.sasl.clientconfig, default Client --
holds username and password for DIGEST-MD5, redone on every connection).
reconfig: zkCli's options (-add / -remove incremental, -members / -file
non-incremental, -v the hex version the change applies to, -s the stat).
Not here: Kerberos (GSSAPI).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zabby.client import (
    AuthFailedError,
    BadArgumentsError,
    ConfigurationError,
    ConnectionLoss,
    ConnectionState,
    EventType,
    KazooTimeoutError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SyncClient,
    WatchedEvent,
    ZnodeStat,
    ZookeeperError,
    parse_hosts,
)
from zabby.client.core import chroot_in, chroot_out
from zabby.wire import ACL, AddWatchMode, Err, Id

__all__ = ["COMMANDS", "Shell", "format_stat", "main"]

HISTORY_ENV = "ZABBY_SHELL_HISTORY"
# seconds a command waits for a lost connection to come back before ConnectionLoss
CONNECT_WAIT = 3.0
# seconds the first connection may take (every host tried, again and again)
START_TIMEOUT = 5.0


# name -> usage, as zkCli.sh 3.8 prints them
COMMANDS: dict[str, str] = {
    "addWatch": "addWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    "addauth": "addauth scheme auth",
    "close": "close ",
    "config": "config [-c] [-w] [-s]",
    "connect": "connect host:port",
    "create": "create [-s] [-e] [-c] [-t ttl] path [data] [acl]",
    "delete": "delete [-v version] path",
    "deleteall": "deleteall path [-b batch size]",
    "delquota": "delquota [-n|-b|-N|-B] path",
    "get": "get [-s] [-w] path",
    "getAcl": "getAcl [-s] path",
    "getAllChildrenNumber": "getAllChildrenNumber path",
    "getEphemerals": "getEphemerals path",
    "history": "history ",
    "listquota": "listquota path",
    "printwatches": "printwatches on|off",
    "ls": "ls [-s] [-w] [-R] path",
    "quit": "quit ",
    "reconfig": "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    "redo": "redo cmdno",
    "removewatches": "removewatches path [-c|-d|-a] [-l]",
    "set": "set [-s] [-v version] path data",
    "setAcl": "setAcl [-s] [-v version] [-R] path acl",
    "setquota": "setquota -n|-b|-N|-B val path",
    "stat": "stat [-w] path",
    "sync": "sync path",
    "version": "version ",
    "whoami": "whoami ",
}

_ERR_TEXT = {
    Err.NONODE: "Node does not exist: {}",
    Err.NODEEXISTS: "Node already exists: {}",
    Err.NOAUTH: "Insufficient permission : {}",
    Err.NOTEMPTY: "Node not empty: {}",
    Err.BADVERSION: "version No is not valid : {}",
    Err.NOCHILDRENFOREPHEMERALS: "Ephemerals cannot have children: {}",
    Err.INVALIDACL: "Acl is not valid : {}",
    Err.NOWATCHER: "KeeperErrorCode = No such watcher for {}",
    Err.AUTHFAILED: "KeeperErrorCode = AuthFailed for {}",
    Err.BADARGUMENTS: "KeeperErrorCode = BadArguments for {}",
    Err.UNIMPLEMENTED: "KeeperErrorCode = Unimplemented for {}",
    Err.CONNECTIONLOSS: "KeeperErrorCode = ConnectionLoss for {}",
    Err.OPERATIONTIMEOUT: "KeeperErrorCode = OperationTimeout for {}",
    Err.SESSIONEXPIRED: "KeeperErrorCode = Session expired for {}",
    Err.QUOTAEXCEEDED: "KeeperErrorCode = Quota has exceeded for {}",
}

# zabby.client's event types and states -> zkCli's words
_EVENT_NAMES = {
    EventType.NONE: "None", EventType.CREATED: "NodeCreated",
    EventType.DELETED: "NodeDeleted", EventType.CHANGED: "NodeDataChanged",
    EventType.CHILD: "NodeChildrenChanged",
    EventType.DATA_WATCH_REMOVED: "DataWatchRemoved",
    EventType.CHILD_WATCH_REMOVED: "ChildWatchRemoved",
    EventType.PERSISTENT_WATCH_REMOVED: "PersistentWatchRemoved",
}
_CONNECTION_STATES = {
    ConnectionState.CONNECTED: "SyncConnected", ConnectionState.RECONNECTED: "SyncConnected",
    ConnectionState.SUSPENDED: "Disconnected", ConnectionState.READ_ONLY: "ConnectedReadOnly",
    ConnectionState.LOST: "Expired",
}
_PERM_CHARS = (("c", 4), ("d", 8), ("r", 1), ("w", 2), ("a", 16))
OPEN_ACL = [ACL(31, Id("world", "anyone"))]
# commands that work without a session
_OFFLINE = {"connect", "history", "redo", "quit", "close", "printwatches", "version"}


# quotas, kept as ZooKeeper keeps them: /zookeeper/quota/<path>/zookeeper_limits and
# .../zookeeper_stats hold StatsTrack strings (the server's enforcement is its business)
QUOTA_ROOT = "/zookeeper/quota"
QUOTA_LIMITS, QUOTA_STATS = "zookeeper_limits", "zookeeper_stats"
_QUOTA_FLAGS = (("n", "count"), ("b", "bytes"), ("N", "countHardLimit"),
                ("B", "byteHardLimit"))


def parse_stats(text: str) -> dict[str, int]:
    """A StatsTrack string: ``key=value`` pairs split on ``,`` or ``;``."""
    out: dict[str, int] = {}
    for pair in re.split("[,;]+", text):
        parts = pair.split("=")
        if len(parts) >= 2 and parts[0]:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def format_stats(stats: dict[str, int]) -> str:
    """StatsTrack's form: count and bytes first, any other key after a stray ``=``
    and ``;`` separators, which parsers older than ZooKeeper 3.7 skip."""
    text = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        text += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return text


class ShellError(Exception):
    """A command failed; the message is what zkCli would print."""


def error_text(code: int, path: str) -> str:
    tmpl = _ERR_TEXT.get(code)
    if tmpl is None:
        try:
            name = Err(code).name
        except ValueError:
            name = str(code)
        tmpl = f"KeeperErrorCode = {name} for {{}}"
    return tmpl.format(path)


# what zkCli prints for the errors a reconfig gets (no path to name)
_RECONFIG_ERRORS = {
    Err.NOAUTH: "Insufficient permission : ",
    Err.BADARGUMENTS: "Arguments are not valid : ",
    Err.BADVERSION: "version No is not valid : ",
    Err.RECONFIGINPROGRESS: "Another reconfiguration is in progress -- concurrent reconfigs "
                            "not supported (yet)",
    Err.NEWCONFIGNOQUORUM: "No quorum of new config is connected and up-to-date with the "
                           "leader of last committed config - try invoking reconfiguration "
                           "after new servers are connected and synced",
}


def _membership_file(path: str) -> str:
    """The membership lines (server.N, group.N, weight.N) of a dynamic config file,
    comma-separated as ``-members`` takes them."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except OSError as e:
        raise ShellError(f"Error processing {path}{e.strerror}") from None
    keep = [ln.replace(" ", "") for ln in lines
            if ln.startswith(("server.", "group.", "weight."))]
    if not keep:
        raise ShellError(f"Error processing {path}: no server lines")
    return ",".join(keep).lower()


def _java_date(ms: int) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(ms / 1000))


def format_stat(st: ZnodeStat) -> list[str]:
    return [
        f"cZxid = {st.czxid:#x}",
        f"ctime = {_java_date(st.ctime)}",
        f"mZxid = {st.mzxid:#x}",
        f"mtime = {_java_date(st.mtime)}",
        f"pZxid = {st.pzxid:#x}",
        f"cversion = {st.cversion}",
        f"dataVersion = {st.version}",
        f"aclVersion = {st.aversion}",
        f"ephemeralOwner = {st.ephemeralOwner & 0xFFFFFFFFFFFFFFFF:#x}",
        f"dataLength = {st.dataLength}",
        f"numChildren = {st.numChildren}",
    ]


def perm_string(perms: int) -> str:
    return "".join(c for c, bit in _PERM_CHARS if perms & bit)


def parse_acl(text: str) -> list[ACL]:
    """zkCli's AclParser: ``scheme:id:perms[,scheme:id:perms...]``."""
    acls = []
    for part in text.split(","):
        first, last = part.find(":"), part.rfind(":")
        if first < 0 or first == last:
            raise ShellError(f"{part} does not have the form scheme:id:perm")
        perms = 0
        for ch in part[last + 1:]:
            bits = dict(_PERM_CHARS).get(ch.lower())
            if bits is None:
                raise ShellError(f"Unknown perm type: {ch}")
            perms |= bits
        acls.append(ACL(perms, Id(part[:first], part[first + 1:last])))
    return acls


def format_event(state: str, etype: str = "None", path: str | None = None) -> str:
    """A watch or session event as zkCli prints it (state and type in zkCli's words)."""
    return f"\nWATCHER::\n\nWatchedEvent state:{state} type:{etype} path:{path or 'null'}"


def _check_path(path: str) -> str:
    if not path.startswith("/"):
        raise ShellError("Path must start with / character")
    if len(path) > 1 and path.endswith("/"):
        raise ShellError("Path must not end with / character")
    return path


def _opts(args: list[str], flags: str, valued: str = "") -> tuple[dict[str, str | bool], list[str]]:
    """Split ``-x`` flags (and ``-v value`` options) from positional arguments."""
    opts: dict[str, str | bool] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if len(a) == 2 and a[0] == "-" and a[1] in flags + valued:
            if a[1] in valued:
                if i + 1 >= len(args):
                    raise ShellError(f"Missing argument for option {a[1]}")
                opts[a[1]] = args[i + 1]
                i += 2
                continue
            opts[a[1]] = True
        elif a.startswith("-") and len(a) == 2 and not rest:
            raise ShellError(f"Unrecognized option: {a}")
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _int(text: str | bool, what: str) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise ShellError(f"{what} must be a number: {text}") from None


class Shell:
    """Runs zkCli commands on one session of a `zabby.client.SyncClient`; ``out``
    receives each output line, ``notify`` each watch and connection event.

    ``connect(hosts)`` makes a started client for a host list (no chroot: the shell
    adds ``chroot`` to every path it sends and takes it off every path it shows)."""

    def __init__(self, connect: Callable[[str], SyncClient], hosts: str, chroot: str = "",
                 out: Callable[[str], None] = print,
                 err: Callable[[str], None] | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        self._connect = connect
        self.hosts, self.chroot = hosts, chroot
        self._out_line = out
        self._err_line = err or (lambda s: print(s, file=sys.stderr, flush=True))
        self.notify = notify or out  # watch and session events, from the client's thread
        self.history: list[str] = []
        self.quit = False
        self.print_watches = True
        self.zk: SyncClient | None = None
        self.closed = True  # no session until open()
        self._address: tuple[str, int] | None = None

    # ------------------------------------------------------------ output
    def _in_order(self) -> None:
        """Events that came before the reply a command is about to print are printed
        first: the client queues them for its handler thread before it hands over the
        reply, so wait for that thread to get to them."""
        if self.zk is not None:
            self.zk.flush_callbacks(5.0)

    def out(self, line: str) -> None:
        self._in_order()
        self._out_line(line)

    def err(self, line: str) -> None:
        self._in_order()
        self._err_line(line)

    # ------------------------------------------------------------ session
    def open(self) -> None:
        """A new session (the client raises when no server takes it)."""
        zk = self._connect(self.hosts)
        self.zk, self.closed = zk, False
        zk.add_listener(self._on_state)

    def close(self) -> None:
        """End the session (its ephemerals go) and the client's threads."""
        zk, self.zk = self.zk, None
        self.closed = True
        if zk is not None:
            zk.close()

    @property
    def connected(self) -> bool:
        return not self.closed and self.zk is not None and self.zk.connected

    @property
    def address(self) -> tuple[str, int] | None:
        """The server of the session (the last one while there is none)."""
        if self.zk is not None and self.zk.current_host is not None:
            self._address = self.zk.current_host
        return self._address

    def _on_state(self, state: ConnectionState) -> None:
        if self.closed:  # our own close: "Closed" is printed by the command
            return
        self.event(_CONNECTION_STATES.get(state, str(state)))

    def _on_watch(self, ev: WatchedEvent) -> None:
        self.event("SyncConnected", _EVENT_NAMES.get(ev.type, str(ev.type)),
                   self._out(ev.path) if ev.path else None)

    def _watch(self, on: Any) -> Callable[[WatchedEvent], None] | None:
        return self._on_watch if on else None

    def event(self, state: str, etype: str = "None", path: str | None = None) -> None:
        """A watch or session event, printed as zkCli prints it (unless printwatches off)."""
        if self.print_watches:
            self.notify(format_event(state, etype, path))

    # ------------------------------------------------------------- chroot
    def _in(self, path: str) -> str:
        """A path of ours -> the server's."""
        return chroot_in(self.chroot, path)

    def _out(self, path: str) -> str:
        """A path from the server -> ours (one outside the chroot stays as it is)."""
        return chroot_out(self.chroot, path)

    # ------------------------------------------------------------- driver
    def execute(self, line: str, record: bool = True) -> bool:
        """Run one command line; False when it failed (the error is printed)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        if record:
            self.history.append(line)
        try:
            words = shlex.split(line)
        except ValueError as e:
            self.err(f"Command parse error: {e}")
            return False
        name, args = words[0], words[1:]
        fn = getattr(self, f"cmd_{name}", None) if name in COMMANDS else None
        if fn is None:
            self.err(f"Command not found: Command not found {name}")
            self.usage()
            return False
        if self.closed and name not in _OFFLINE:
            self.err("Not connected")
            return False
        try:
            fn(args)
            return True
        except ShellError as e:
            self.err(str(e))
        except ZookeeperError as e:
            # the error names the path the command was about (ours, not the server's)
            path = e.path if e.path else next((a for a in args if a.startswith("/")), "")
            self.err(error_text(e.code, self._out(path)))
        except Exception as e:  # noqa: BLE001 - a message, never a traceback
            self.err(f"{type(e).__name__}: {e}")
        return False

    def usage(self) -> None:
        self.err("ZooKeeper -server host:port -client-configuration properties-file cmd args")
        for name in sorted(COMMANDS):
            self.err(f"\t{COMMANDS[name]}")

    def _need(self, args: list[str], n: int, name: str) -> None:
        if len(args) < n:
            raise ShellError(COMMANDS[name])

    @property
    def _zk(self) -> SyncClient:
        if self.zk is None:
            raise ConnectionLoss("not connected")
        return self.zk

    # ------------------------------------------------------------ helpers
    def children(self, path: str, watch: bool = False) -> list[str]:
        return sorted(self._zk.get_children(self._in(path), self._watch(watch)))

    def exists(self, path: str, watch: bool = False) -> ZnodeStat:
        real = self._in(path)
        st = self._zk.exists(real, self._watch(watch))
        if st is None:
            raise NoNodeError(path=real)
        return st

    def _subtree(self, path: str) -> list[str]:
        """Breadth first, the path itself first (ZKUtil.listSubTreeBFS)."""
        out, queue = [path], [path]
        while queue:
            node = queue.pop(0)
            for c in self.children(node):
                child = f"{node.rstrip('/')}/{c}"
                out.append(child)
                queue.append(child)
        return out

    def _stat_lines(self, st: ZnodeStat) -> None:
        for s in format_stat(st):
            self.out(s)

    # ----------------------------------------------------------- commands
    def cmd_ls(self, args: list[str]) -> None:
        o, rest = _opts(args, "swR")
        self._need(rest, 1, "ls")
        path = _check_path(rest[0])
        if o.get("R"):
            for p in self._subtree(path):
                self.out(p)
            return
        if o.get("s"):
            kids, st = self._zk.get_children(self._in(path), self._watch(o.get("w")),
                                             include_data=True)
            self.out("[" + ", ".join(sorted(kids)) + "]")
            self._stat_lines(st)
            return
        self.out("[" + ", ".join(self.children(path, bool(o.get("w")))) + "]")

    def cmd_get(self, args: list[str]) -> None:
        o, rest = _opts(args, "sw")
        self._need(rest, 1, "get")
        path = _check_path(rest[0])
        data, st = self._zk.get(self._in(path), self._watch(o.get("w")), null=None)
        self.out("null" if data is None else bytes(data).decode("utf-8", "replace"))
        if o.get("s"):
            self._stat_lines(st)

    def cmd_set(self, args: list[str]) -> None:
        o, rest = _opts(args, "s", "v")
        self._need(rest, 2, "set")
        path = _check_path(rest[0])
        version = _int(o["v"], "version") if "v" in o else -1
        st = self._zk.set(self._in(path), rest[1].encode(), version)
        if o.get("s"):
            self._stat_lines(st)

    def cmd_create(self, args: list[str]) -> None:
        o, rest = _opts(args, "sec", "t")
        self._need(rest, 1, "create")
        path = _check_path(rest[0])
        data = rest[1].encode() if len(rest) > 1 else None  # null data, as zkCli
        acl = parse_acl(rest[2]) if len(rest) > 2 else OPEN_ACL
        seq, eph, cont = bool(o.get("s")), bool(o.get("e")), bool(o.get("c"))
        if cont and (seq or eph):
            raise ShellError("-c cannot be combined with -s or -e. Containers cannot be "
                             "ephemeral or sequential.")
        if "t" in o and (eph or cont):
            raise ShellError("TTLs cannot be used with Ephemeral or Container nodes")
        real = self._in(path)
        ttl = 0
        if "t" in o:
            ttl = _int(o["t"], "ttl")
            if ttl <= 0:  # the server's answer to a TTL create without a TTL
                raise BadArgumentsError(path=real)
        created = self._zk.create(real, data, acl, ephemeral=eph, sequence=seq,
                                  container=cont, ttl=ttl)
        self.out(f"Created {self._out(created)}")

    def cmd_delete(self, args: list[str]) -> None:
        o, rest = _opts(args, "", "v")
        self._need(rest, 1, "delete")
        path = _check_path(rest[0])
        version = _int(o["v"], "version") if "v" in o else -1
        self._zk.delete(self._in(path), version)

    def cmd_deleteall(self, args: list[str]) -> None:
        _o, rest = _opts(args, "", "b")
        self._need(rest, 1, "deleteall")
        path = _check_path(rest[0])
        for p in reversed(self._subtree(path)):
            try:
                self._zk.delete(self._in(p))
            except NoNodeError:
                pass

    def cmd_stat(self, args: list[str]) -> None:
        o, rest = _opts(args, "w")
        self._need(rest, 1, "stat")
        path = _check_path(rest[0])
        self._stat_lines(self.exists(path, bool(o.get("w"))))

    def cmd_getAcl(self, args: list[str]) -> None:  # noqa: N802 - zkCli's name
        o, rest = _opts(args, "s")
        self._need(rest, 1, "getAcl")
        path = _check_path(rest[0])
        acls, st = self._zk.get_acls(self._in(path))
        for a in acls:
            self.out(f"'{a.id.scheme},'{a.id.id}")
            self.out(f": {perm_string(a.perms)}")
        if o.get("s"):
            self._stat_lines(st)

    def cmd_setAcl(self, args: list[str]) -> None:  # noqa: N802 - zkCli's name
        o, rest = _opts(args, "sR", "v")
        self._need(rest, 2, "setAcl")
        path = _check_path(rest[0])
        acl = parse_acl(rest[1])
        version = _int(o["v"], "version") if "v" in o else -1
        paths = self._subtree(path) if o.get("R") else [path]
        st = None
        for p in paths:
            st = self._zk.set_acls(self._in(p), acl, version)
        if o.get("s") and st is not None:
            self._stat_lines(st)

    def cmd_addauth(self, args: list[str]) -> None:
        self._need(args, 1, "addauth")
        auth = args[1].encode() if len(args) > 1 else b""
        self._zk.add_auth(args[0], auth)

    def cmd_sync(self, args: list[str]) -> None:
        self._need(args, 1, "sync")
        path = _check_path(args[0])
        self._zk.sync(self._in(path))
        self.out("Sync is OK")

    def cmd_addWatch(self, args: list[str]) -> None:  # noqa: N802 - zkCli's name
        o, rest = _opts(args, "", "m")
        self._need(rest, 1, "addWatch")
        path = _check_path(rest[0])
        mode = AddWatchMode.PERSISTENT_RECURSIVE
        if "m" in o:
            try:
                mode = AddWatchMode[str(o["m"]).upper()]
            except KeyError:
                raise ShellError(COMMANDS["addWatch"]) from None
        self._zk.add_watch(self._in(path), self._on_watch, mode=int(mode))

    def cmd_removewatches(self, args: list[str]) -> None:
        o, rest = _opts(args, "cdal")
        self._need(rest, 1, "removewatches")
        path = _check_path(rest[0])
        wtype = "children" if o.get("c") else "data" if o.get("d") else "any"
        real = self._in(path)
        try:
            self._zk.remove_watches(real, None, wtype)
        except ConnectionLoss:
            if not o.get("l"):
                raise
            # -l: no server to ask, so remove them here (not set again on reconnect)
            self._zk.remove_watches(real, None, wtype, local=True)

    def cmd_reconfig(self, args: list[str]) -> None:
        usage = "reconfig " + COMMANDS["reconfig"].split(" ", 1)[1]
        opts: dict[str, str | bool] = {}
        i = 0
        while i < len(args):
            name = args[i][1:] if args[i].startswith("-") else ""
            if name == "s":
                opts["s"] = True
            elif name in ("v", "file", "members", "add", "remove"):
                if i + 1 >= len(args):
                    raise ShellError(f"Missing argument for option: {name}")
                opts[name] = args[i + 1]
                i += 1
            elif name:
                raise ShellError(f"Unrecognized option: {args[i]}")
            i += 1
        whole = "file" in opts or "members" in opts
        if not whole and "add" not in opts and "remove" not in opts:
            raise ShellError(usage)
        version = -1
        if "v" in opts:
            try:
                version = int(str(opts["v"]), 16)
            except ValueError:
                raise ShellError("-v must be followed by a long (configuration version)") from None
        if whole and ("add" in opts or "remove" in opts):
            raise ShellError("Can't use -file or -members together with -add or -remove "
                             "(mixing incremental and non-incremental modes is not allowed)")
        if "file" in opts and "members" in opts:
            raise ShellError("Can't use -file and -members together "
                             "(conflicting non-incremental modes)")
        members = str(opts["members"]).lower() if "members" in opts else None
        if "file" in opts:
            members = _membership_file(str(opts["file"]))

        def low(key: str) -> str | None:
            return str(opts[key]).lower() if key in opts else None
        try:
            data, st = self._zk.reconfig(low("add"), low("remove"), members, version)
        except ZookeeperError as e:
            raise ShellError(_RECONFIG_ERRORS.get(e.code) or error_text(e.code, "")) from None
        self.out("Committed new configuration:\n" + bytes(data).decode("utf-8", "replace"))
        if opts.get("s"):
            self._stat_lines(st)

    def cmd_whoami(self, args: list[str]) -> None:
        ids = self._zk.whoami()
        self.out("Auth scheme: User")
        for scheme, user in ids:
            self.out(f"{scheme}: {user}")

    def cmd_getEphemerals(self, args: list[str]) -> None:  # noqa: N802 - zkCli's name
        path = _check_path(args[0]) if args else "/"
        root = self.chroot
        paths = [self._out(p) for p in self._zk.get_ephemerals(self._in(path))
                 if not root or p == root or p.startswith(root + "/")]
        self.out("[" + ", ".join(paths) + "]")

    def cmd_getAllChildrenNumber(self, args: list[str]) -> None:  # noqa: N802 - zkCli's name
        self._need(args, 1, "getAllChildrenNumber")
        path = _check_path(args[0])
        self.out(str(self._zk.get_all_children_number(self._in(path))))

    def cmd_config(self, args: list[str]) -> None:
        o, _rest = _opts(args, "cws")
        # /zookeeper/config is read past the chroot, as ZooKeeper's getConfig does
        data, st = self._zk.get("/zookeeper/config", self._watch(o.get("w")))
        text = bytes(data).decode("utf-8", "replace")
        if o.get("c"):
            lines = [ln for ln in text.splitlines() if ln.startswith("server.")]
            version = [ln.split("=", 1)[1] for ln in text.splitlines()
                       if ln.startswith("version=")]
            text = ",".join(ln.split("=", 1)[1].split(";")[-1] for ln in lines)
            if version:
                text += f"\nversion={version[0]}" if text else f"version={version[0]}"
        self.out(text)
        if o.get("s"):
            self._stat_lines(st)

    # -------------------------------------------------------------- quotas
    # (quota nodes are named by real paths: they are read and written past the chroot)
    def _quota_dir(self, path: str) -> str:
        """The quota node of a path (below the chroot: quotas count real paths)."""
        return QUOTA_ROOT + self._in(path)

    def _get(self, path: str) -> bytes | None:
        """The data of a node outside the chroot, None when it does not exist."""
        try:
            return bytes(self._zk.get(path)[0])
        except NoNodeError:
            return None

    def _create_raw(self, path: str, data: bytes | None) -> bool:
        """Create a persistent node outside the chroot; False when it was there."""
        try:
            self._zk.create(path, data, OPEN_ACL)
        except NodeExistsError:
            return False
        return True

    def _raw_children(self, path: str) -> list[str]:
        try:
            return self._zk.get_children(path)
        except NoNodeError:
            return []

    def cmd_setquota(self, args: list[str]) -> None:
        o, rest = _opts(args, "", "nbNB")
        if not any(flag in o for flag, _ in _QUOTA_FLAGS):
            raise ShellError("setquota needs one of -n (count soft quota), -b (bytes soft "
                             "quota), -N (count hard quota), -B (bytes hard quota)")
        self._need(rest, 1, "setquota")
        path = _check_path(rest[0])
        wanted = {key: _int(o[flag], f"-{flag} value") for flag, key in _QUOTA_FLAGS
                  if flag in o}
        real = self._in(path)
        if real.startswith(QUOTA_ROOT):
            raise ShellError(f"cannot set a quota under the path: {QUOTA_ROOT}")
        try:
            self.exists(path)
        except NoNodeError:
            raise ShellError(f"{path} does not exist.") from None
        mine = QUOTA_ROOT + real
        # one quota per branch: none below this path, none above it
        queue = [mine]
        while queue:
            node = queue.pop(0)
            kids = self._raw_children(node)
            if node != mine and QUOTA_LIMITS in kids:
                below = self._out(node[len(QUOTA_ROOT):])
                raise ShellError(f"{path} has a child {below} which has a quota")
            queue.extend(f"{node}/{k}" for k in kids if k not in (QUOTA_LIMITS, QUOTA_STATS))
        parts = real.strip("/").split("/")
        for i in range(1, len(parts)):
            above = "/" + "/".join(parts[:i])
            if self._get(QUOTA_ROOT + above + "/" + QUOTA_LIMITS) is not None:
                raise ShellError(f"{path} has a parent {self._out(above)} which has a quota")
        node = QUOTA_ROOT
        for part in parts:
            node += "/" + part
            self._create_raw(node, None)
        old = self._get(mine + "/" + QUOTA_LIMITS)
        if old is None:
            limits = {k: -1 for _, k in _QUOTA_FLAGS}
            limits.update(wanted)
            if self._create_raw(mine + "/" + QUOTA_LIMITS, format_stats(limits).encode()):
                self._create_raw(mine + "/" + QUOTA_STATS,
                                 format_stats({"count": 0, "bytes": 0}).encode())
                return
            old = self._get(mine + "/" + QUOTA_LIMITS) or b""
        limits = parse_stats(old.decode("utf-8", "replace"))
        limits.update(wanted)
        self._zk.set(mine + "/" + QUOTA_LIMITS, format_stats(limits).encode())

    def cmd_listquota(self, args: list[str]) -> None:
        self._need(args, 1, "listquota")
        path = _check_path(args[0])
        mine = self._quota_dir(path)
        self.err(f"absolute path is {mine}/{QUOTA_LIMITS}")
        limits = self._get(f"{mine}/{QUOTA_LIMITS}")
        if limits is None:
            raise ShellError(f"quota for {path} does not exist.")
        self.out(f"Output quota for {path} "
                 + format_stats(parse_stats(limits.decode("utf-8", "replace"))))
        stats = self._get(f"{mine}/{QUOTA_STATS}")
        if stats is not None:
            self.out(f"Output stat for {path} "
                     + format_stats(parse_stats(stats.decode("utf-8", "replace"))))

    def cmd_delquota(self, args: list[str]) -> None:
        o, rest = _opts(args, "nbNB")
        self._need(rest, 1, "delquota")
        path = _check_path(rest[0])
        mine = self._quota_dir(path)
        lp = f"{mine}/{QUOTA_LIMITS}"
        old = self._get(lp)
        if old is None:
            self.out(f"Quota does not exist for {path}")
            return
        flags = [key for flag, key in _QUOTA_FLAGS if o.get(flag)]
        if flags:  # only these limits go
            limits = parse_stats(old.decode("utf-8", "replace"))
            limits.update(dict.fromkeys(flags, -1))
            self._zk.set(lp, format_stats(limits).encode())
            return
        for leaf in (QUOTA_LIMITS, QUOTA_STATS):
            try:
                self._zk.delete(f"{mine}/{leaf}")
            except NoNodeError:
                pass
        node = mine  # and the quota branch, up to the first node still in use
        while node != QUOTA_ROOT and not self._raw_children(node):
            try:
                self._zk.delete(node)
            except (NoNodeError, NotEmptyError):
                break
            node = node.rsplit("/", 1)[0]

    def cmd_history(self, args: list[str]) -> None:
        start = max(0, len(self.history) - 11)
        for i in range(start, len(self.history)):
            self.out(f"{i} - {self.history[i]}")

    def cmd_redo(self, args: list[str]) -> None:
        self._need(args, 1, "redo")
        n = _int(args[0], "cmdno")
        # `redo N` itself was recorded last; N refers to an earlier command
        if n < 0 or n >= len(self.history) - 1:
            raise ShellError("Command index out of range")
        line = self.history[n]
        self.history[-1] = line
        if not self.execute(line, record=False):
            raise ShellError(f"redo of command {n} failed")

    def cmd_quit(self, args: list[str]) -> None:
        self.close()
        self.quit = True

    def cmd_close(self, args: list[str]) -> None:
        if not self.closed:
            self.close()
            self.event("Closed")

    def cmd_connect(self, args: list[str]) -> None:
        if not self.closed:
            self.cmd_close([])
        if args:
            try:
                parse_hosts(args[0])
            except ConfigurationError:
                raise ShellError(COMMANDS["connect"]) from None
            self.hosts = args[0].partition("/")[0]
            self.chroot = parse_hosts(args[0])[1]
        try:
            self.open()
        except (KazooTimeoutError, AuthFailedError) as e:
            raise ConnectionLoss(str(e), path="") from None
        self.event("SyncConnected")

    def cmd_printwatches(self, args: list[str]) -> None:
        if not args:
            self.out("printwatches is " + ("on" if self.print_watches else "off"))
        elif args[0] in ("on", "off"):
            self.print_watches = args[0] == "on"
        else:
            raise ShellError(COMMANDS["printwatches"])

    def cmd_version(self, args: list[str]) -> None:
        from zabby import __version__

        self.out(f"ZooKeeper CLI version: zabby {__version__}")


# ------------------------------------------------------------- completion
def _completer(shell: Shell):
    from prompt_toolkit.completion import Completer, Completion

    class ShellCompleter(Completer):
        def get_completions(self, document, complete_event) -> Iterable[Completion]:
            text = document.text_before_cursor
            words = text.split(" ")
            word = words[-1]
            if len(words) == 1:
                for name in sorted(COMMANDS):
                    if name.startswith(word):
                        yield Completion(name + " ", start_position=-len(word), display=name)
                return
            if not word.startswith("/") or not shell.connected:
                return
            parent, _, prefix = word.rpartition("/")
            try:
                kids = shell.children(parent or "/")
            except Exception:  # noqa: BLE001 - no completions on error
                return
            for k in kids:
                if k.startswith(prefix):
                    full = f"{parent}/{k}"
                    yield Completion(full, start_position=-len(word), display=k)

    return ShellCompleter()


# ------------------------------------------------------------------ main
def history_file() -> Path:
    env = os.environ.get(HISTORY_ENV)
    return Path(env) if env else Path.home() / ".zabby_history"


class Console:
    """The interactive shell's output: command results in order, watch events as they come.

    Results are written by the main thread while no prompt is up, so they always
    precede the next prompt. Events come from the client's handler thread at any time:
    while no prompt is up they are written at once; while one is, they are queued and
    the prompt's own event loop writes them above it (``in_terminal``), so the prompt
    is redrawn after them. An event that the prompt did not get to write before it
    ended is written by the main thread once ``prompt()`` returns; none is lost.

    (prompt_toolkit's ``patch_stdout`` was used before: its flush thread hands text to
    whichever prompt is running *when it wakes up*, so a command's output could land
    after the next prompt was drawn, or be written while that prompt was starting and
    never be followed by a redraw; a script driving the shell then took the prompt for
    "the command is done" too early.)
    """

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._queue: list[str] = []
        self._prompting = False
        self._loop = None
        self._wake = None

    def write(self, text: str, stream=None) -> None:
        with self._lock:
            stream = stream or self.stream
            stream.write(text + "\n")
            stream.flush()

    def error(self, text: str) -> None:
        self.write(text, sys.stderr)

    def event(self, text: str) -> None:
        with self._lock:
            if not self._prompting:
                self.stream.write(text + "\n")
                self.stream.flush()
                return
            self._queue.append(text)
            loop, wake = self._loop, self._wake
        if loop is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that prompt's loop has closed: prompt() writes it
                pass

    def _drain(self) -> None:
        with self._lock:
            items, self._queue = self._queue, []
            for text in items:
                self.stream.write(text + "\n")
            self.stream.flush()

    def prompt(self, session, message: str) -> str:
        """``session.prompt(message)`` with queued events written above the prompt."""
        import asyncio

        from prompt_toolkit.application import in_terminal

        async def pump() -> None:
            wake = asyncio.Event()
            with self._lock:
                self._loop, self._wake = asyncio.get_running_loop(), wake
                pending = bool(self._queue)
            while True:
                if not pending:
                    await wake.wait()
                wake.clear()
                async with in_terminal():
                    self._drain()
                pending = False

        def pre_run() -> None:
            session.app.create_background_task(pump())

        with self._lock:
            self._prompting = True
        try:
            return session.prompt(message, pre_run=pre_run)
        finally:
            with self._lock:
                self._prompting, self._loop, self._wake = False, None, None
            self._drain()


def _interactive(shell: Shell, console: Console) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    session: PromptSession = PromptSession(
        history=FileHistory(str(history_file())), completer=_completer(shell),
        complete_while_typing=False)
    while not shell.quit:
        host = "{}:{}".format(*shell.address) if shell.address else "?"
        state = ("CLOSED" if shell.closed
                 else "CONNECTED" if shell.connected else "CONNECTING")
        try:
            line = console.prompt(session, f"[zk: {host}({state}) {len(shell.history)}] ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            shell.execute(line)
        except KeyboardInterrupt:
            continue
    shell.close()
    return 0


def _scripted(shell: Shell, lines: Iterable[str]) -> int:
    status = 0
    for line in lines:
        if not shell.execute(line):
            status = 1
            break
        if shell.quit:
            break
    shell.close()
    return status


def read_properties(path: str) -> dict[str, str]:
    """A Java properties file, as far as client configurations need: ``key=value``,
    ``key: value`` or ``key value`` lines, ``#`` and ``!`` comments."""
    props: dict[str, str] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if m:
            props[m.group(1)] = m.group(2).strip()
        else:
            props[line] = ""
    return props


def tls_context(props: dict[str, str]):
    """The client's SSLContext from ZooKeeper's client keys, or None without
    ``zookeeper.client.secure=true``. Key and trust stores may be JKS, PKCS12 or PEM."""
    import ssl

    from cryptography.hazmat.primitives import serialization

    from zabby.server.tls import (
        load_cert_chain,
        load_key_store,
        load_trust_store,
        store_type_of,
    )

    if props.get("zookeeper.client.secure", "false").strip().lower() != "true":
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    p = "zookeeper.ssl."
    trust = props.get(p + "trustStore.location")
    if trust:
        certs = load_trust_store(trust, props.get(p + "trustStore.password", ""),
                                 store_type_of(props.get(p + "trustStore.type"), trust))
        ctx.load_verify_locations(cadata="".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in certs))
    else:
        ctx.load_default_certs()
    keys = props.get(p + "keyStore.location")
    if keys:
        load_cert_chain(ctx, load_key_store(
            keys, props.get(p + "keyStore.password", ""),
            store_type_of(props.get(p + "keyStore.type"), keys)))
    if props.get(p + "hostnameVerification", "true").strip().lower() == "false":
        ctx.check_hostname = False
    return ctx


def sasl_login(props: dict[str, str]) -> dict[str, str] | None:
    """The client's ``sasl_options`` from the JAAS file the configuration names
    (``java.security.auth.login.config``) and its section
    (``zookeeper.sasl.clientconfig``, default Client): DIGEST-MD5 from a
    DigestLoginModule's username and password, GSSAPI from a Krb5LoginModule
    (principal, keyTab with useKeyTab=true, ticketCache with useTicketCache=true;
    ``zookeeper.sasl.client.username`` names the service, default zookeeper,
    ``zookeeper.sasl.client.canonicalize.hostname`` as the Java client's,
    ``java.security.krb5.conf`` sets KRB5_CONFIG). None without a JAAS file or with
    ``zookeeper.sasl.client=false``, as ZooKeeper's client."""
    from zabby.server.jaas import load_jaas

    path = props.get("java.security.auth.login.config")
    if not path or props.get("zookeeper.sasl.client", "true").strip().lower() == "false":
        return None
    section = load_jaas(path).require(props.get("zookeeper.sasl.clientconfig", "Client"))
    if any(c.endswith("Krb5LoginModule") for c in section.module_classes()):
        opts = section.options()
        sasl = {"mechanism": "GSSAPI",
                "service": props.get("zookeeper.sasl.client.username", "zookeeper"),
                "canonicalize": props.get("zookeeper.sasl.client.canonicalize.hostname",
                                          "true")}
        if opts.get("principal"):
            sasl["principal"] = opts["principal"]
        if opts.get("useKeyTab", "false").lower() == "true":
            if not opts.get("keyTab"):
                raise ValueError(f"JAAS section {section.name}: useKeyTab=true needs keyTab")
            sasl["keytab"] = opts["keyTab"]
        if opts.get("useTicketCache", "false").lower() == "true" and opts.get("ticketCache"):
            sasl["ccache"] = opts["ticketCache"]
        if props.get("java.security.krb5.conf"):
            os.environ["KRB5_CONFIG"] = props["java.security.krb5.conf"]
        return sasl
    opts = section.options()
    if "username" not in opts or "password" not in opts:
        raise ValueError(f"JAAS section {section.name} has neither a username and password "
                         "(DIGEST-MD5) nor a Krb5LoginModule (GSSAPI)")
    return {"mechanism": "DIGEST-MD5", "username": opts["username"],
            "password": opts["password"]}


def split_commands(text: str) -> list[str]:
    """``-c "create /a 'x;y'; get /a"``: split on ``;`` outside quotes."""
    parts, cur, quote = [], [], ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def run(server: str, command: str | None = None, words: list[str] | None = None,
        timeout_ms: int = 30000, client_config: str | None = None) -> int:
    lock = threading.Lock()
    interactive = command is None and not words and sys.stdin.isatty()

    def out(s: str) -> None:
        with lock:
            print(s, flush=True)

    try:
        props = read_properties(client_config) if client_config else {}
        context, sasl = tls_context(props), sasl_login(props)
    except Exception as e:  # noqa: BLE001 - a message, never a traceback
        print(f"zabby shell: cannot use the client configuration {client_config}: {e}",
              file=sys.stderr)
        return 2
    try:
        chroot = parse_hosts(server)[1]
    except ConfigurationError as e:
        print(f"zabby shell: bad server list: {e}", file=sys.stderr)
        return 2
    sasl_options = sasl

    def connect(hosts: str) -> SyncClient:
        zk = SyncClient(hosts, timeout=timeout_ms / 1000.0, ssl_context=context,
                        sasl_options=sasl_options, connect_wait=CONNECT_WAIT)
        try:
            zk.start(timeout=START_TIMEOUT)
        except BaseException:
            zk.close()
            raise
        return zk

    console = Console() if interactive else None
    if console is not None:
        shell = Shell(connect, server.partition("/")[0], chroot, out=console.write,
                      err=console.error, notify=console.event)
    else:
        shell = Shell(connect, server.partition("/")[0], chroot, out=out)
    try:
        shell.open()
    except AuthFailedError as e:
        print(f"Unable to connect to {server}: authentication failed ({e})", file=sys.stderr)
        return 1
    except (KazooTimeoutError, ZookeeperError):
        print(f"Unable to connect to {server}: no server answered", file=sys.stderr)
        return 1
    try:
        if command is not None:
            return _scripted(shell, split_commands(command))
        if words:
            return _scripted(shell, [shlex.join(words)])
        if console is not None:
            shell.event("SyncConnected")
            return _interactive(shell, console)
        return _scripted(shell, sys.stdin)
    except KeyboardInterrupt:
        return 130
    finally:
        shell.close()


def add_arguments(p) -> None:
    import argparse

    p.add_argument("-server", "--server", dest="server", default="127.0.0.1:2181",
                   help="host:port[,host:port...][/chroot] (default 127.0.0.1:2181)")
    p.add_argument("-timeout", "--timeout", dest="timeout", type=int, default=30000,
                   help="session timeout in ms")
    p.add_argument("-client-configuration", "--client-configuration", dest="client_config",
                   metavar="FILE", help="ZooKeeper client properties: zookeeper.client.secure, "
                   "zookeeper.ssl.keyStore.* / trustStore.* (JKS, PKCS12, PEM), "
                   "zookeeper.ssl.hostnameVerification; java.security.auth.login.config "
                   "(a JAAS file), zookeeper.sasl.clientconfig, zookeeper.sasl.client")
    p.add_argument("-c", dest="command", help='commands separated by ";" (scripted use)')
    p.add_argument("words", nargs=argparse.REMAINDER, help="one command to run, as zkCli.sh takes it")


def main(args) -> int:
    return run(args.server, args.command, args.words, args.timeout, args.client_config)
