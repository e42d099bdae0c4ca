"""Launch a zabby or an Apache ZooKeeper 3.8 server as a child process on loopback.

Both launchers write a ``zoo.cfg`` in a directory of their own, pick a free port,
start the process in its own process group with stdout/stderr in ``server.log``,
and wait until the ``ruok`` four-letter word answers ``imok``.

    with ZabbyServer(tmp_path) as srv:
        client = KazooClient(hosts=srv.hosts); client.start()
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "ServerStartError",
    "ZabbyEnsemble",
    "ZabbyServer",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "find_zookeeper",
    "four_letter_word",
    "free_port",
    "free_port_run",
    "free_ports",
]

HOST = "127.0.0.1"

# Where Debian's `zookeeper` package puts things. zookeeper.jar's manifest lists
# its own dependencies (netty, jetty, jackson, ...); we add a logging binding.
ZK_JAR_DIR = Path(os.environ.get("ZABBY_ZK_JAR_DIR", "/usr/share/java"))
ZK_LOG_JARS = ("slf4j-log4j12.jar", "log4j-1.2.jar")
# Netty jars zookeeper.jar's manifest leaves out but its TLS (NettyServerCnxnFactory with
# an SslHandler, ClientCnxnSocketNetty) needs; Debian's libnetty-java, which the
# zookeeper package pulls in, ships them.
ZK_NETTY_JARS = ("netty-codec.jar", "netty-resolver.jar",
                 "netty-transport-native-unix-common.jar")
# The servlet API its AdminServer (Jetty) needs and the manifest leaves out (Debian's
# libservlet-api-java); without it ZooKeeper logs "Unable to load jetty" and runs
# without an AdminServer.
ZK_ADMIN_JARS = ("servlet-api.jar",)
# Flags that make the JVM start quickly and stay small; ZooKeeper start time is most
# of the differential suite's fixed cost.
JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-XX:-UsePerfData",
    "-Xms32m",
    "-Xmx256m",
    "-Xss512k",
)

_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
"""


class ServerStartError(RuntimeError):
    """The server process exited or did not answer ``ruok`` in time."""


# Ports for test servers come from below the kernel's ephemeral range, in one block
# per pytest-xdist worker. Port 0 would hand out an ephemeral port, and between the
# check and the server's bind any outgoing connection on the machine (a client, a
# JVM, the other worker) may be given that same port as its local end: the server
# then fails with EADDRINUSE. Outside the ephemeral range only listeners compete,
# and each worker walks its own block, so none of ours do.
_PORT_FLOOR = 10000
_PORT_BLOCKS = 8
_port_cursor: int | None = None


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@functools.lru_cache(maxsize=1)
def _port_block() -> tuple[int, int]:
    """[low, high) of the ports this process hands out."""
    top = max(_ephemeral_floor(), _PORT_FLOOR + _PORT_BLOCKS * 100)
    size = (top - _PORT_FLOOR) // _PORT_BLOCKS
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker[:2] == "gw" and worker[2:].isdigit() else 0
    low = _PORT_FLOOR + (index % _PORT_BLOCKS) * size
    return low, low + size


def _bindable(port: int) -> bool:
    # No SO_REUSEADDR: a port with a connection still in TIME_WAIT counts as taken.
    # The wildcard address covers servers that listen on every interface.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A TCP port that is free now and that this process has not handed out lately.

    Successive calls walk this worker's block (see ``_port_block``) from a start
    that depends on the pid, so consecutive runs do not meet each other's
    TIME_WAIT leftovers, and skip ports that cannot be bound. ``host`` is kept
    for callers; the check binds the wildcard address.
    """
    global _port_cursor
    low, high = _port_block()
    size = high - low
    if _port_cursor is None or not low <= _port_cursor < high:
        _port_cursor = low + (os.getpid() * 7919) % size
    for _ in range(size):
        port = _port_cursor
        _port_cursor = low + (port + 1 - low) % size
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # block exhausted
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports from ``free_port``."""
    return [free_port() for _ in range(n)]


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free ports, none of which ``free_port`` will
    hand out next (for harnesses that count ports up from an offset)."""
    global _port_cursor
    for _ in range(64):
        first = free_port()
        if first + n > _port_block()[1]:
            continue
        if all(_bindable(p) for p in range(first + 1, first + n)):
            _port_cursor = first + n
            return first
    raise RuntimeError(f"no run of {n} free ports in {_port_block()}")


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a four-letter word and return everything the server answers before closing."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def find_zookeeper() -> str | None:
    """Why Apache ZooKeeper cannot be started here, or None when it can."""
    if shutil.which(os.environ.get("ZABBY_JAVA", "java")) is None:
        return "java is not installed"
    if not (ZK_JAR_DIR / "zookeeper.jar").exists():
        return f"{ZK_JAR_DIR / 'zookeeper.jar'} is missing (apt-get install zookeeper)"
    return None


# zoo.cfg keys every server made here gets unless its caller sets them. Empty by
# default, so benchmarks run production settings; the pytest plugin adds a small
# preAllocSize (see TEST_PREALLOC_KB there): a test server that writes anything
# otherwise preallocates a 64 MB log segment, and a suite of hundreds of servers
# fills tens of GB of disk.
CFG_DEFAULTS: dict[str, Any] = {}


def _cfg_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class _Server:
    """Common part: config, process group, readiness, stop."""

    kind = "server"
    start_timeout = 30.0

    def __init__(
        self, tmpdir: str | os.PathLike[str], *, start: bool = True,
        jvm_flags: list[str] | tuple[str, ...] = (), **cfg: Any,
    ) -> None:
        # Java system properties (-Dkey=value), given to ZooKeeper's JVM and to
        # `zabby serve` alike, the way zkServer.sh passes $SERVER_JVMFLAGS
        self.jvm_flags = list(jvm_flags)
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = int(cfg.pop("clientPort", 0)) or free_port()
        self.data_dir = Path(cfg.pop("dataDir", self.dir / "data"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cfg: dict[str, Any] = {
            "tickTime": 2000,
            "dataDir": str(self.data_dir),
            "clientPort": self.port,
            "clientPortAddress": self.host,
            "4lw.commands.whitelist": "*",
        }
        self.cfg.update(CFG_DEFAULTS)
        self.cfg.update(cfg)
        self.cfg_path = self.dir / "zoo.cfg"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        if start:
            self.start()

    # -------------------------------------------------------------- public
    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def write_config(self) -> None:
        lines = [f"{k}={_cfg_value(v)}" for k, v in self.cfg.items()]
        self.cfg_path.write_text("\n".join(lines) + "\n")

    def start(self, wait: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.write_config()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        finally:
            log.close()
        if not wait:
            return
        try:
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            assert self.proc is not None
            rc = self.proc.poll()
            if rc is not None:
                raise ServerStartError(
                    f"{self.kind} exited with status {rc} before answering ruok\n"
                    f"command: {' '.join(self.command())}\n{self.log_tail()}"
                )
            try:
                last = four_letter_word(self.host, self.port, "ruok", timeout=1.0)
                if last == "imok" and self.serving():
                    return
            except OSError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.kind} did not answer ruok with imok within {timeout}s "
                    f"(last answer: {last!r})\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def serving(self) -> bool:
        """Extra readiness check after imok (ZooKeeper answers ruok before it serves)."""
        return True

    def ruok(self) -> bool:
        try:
            return four_letter_word(self.host, self.port, "ruok") == "imok"
        except OSError:
            return False

    def four_letter_word(self, word: str, timeout: float = 2.0) -> str:
        return four_letter_word(self.host, self.port, word, timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    @property
    def running(self) -> bool:
        """The process was started and has not exited (paused counts as running)."""
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP the process group: the server stops answering but keeps its sockets
        open (a hung server, a long GC pause), unlike ``kill``."""
        if self.running:
            assert self.proc is not None
            self._signal(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT what ``pause`` stopped."""
        if self.proc is not None:
            self._signal(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group (its id is the child's pid), then SIGKILL.
        A paused process is resumed first (SIGCONT), so SIGTERM is not left pending."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            # whether or not pause() stopped it: a test may have SIGSTOPped it itself
            self.resume()
            self._signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Always: also reaps anything the server left in its group.
        self._signal(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self.paused = False
        self._wait_group_gone(proc.pid, timeout)

    @staticmethod
    def _wait_group_gone(pgid: int, timeout: float) -> bool:
        """Until no process of the group is left (zabby's fsync helpers outlive the
        server by a moment, until init reaps them), at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:  # pragma: no cover - not ours
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL at once (a crash)."""
        if self.proc is not None:
            self._signal(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            self.paused = False

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hosts}, pid={self.pid}, dir={str(self.dir)!r})"


class ZabbyServer(_Server):
    """``zabby serve --config zoo.cfg`` (this checkout's Python, so the venv's zabby)."""

    kind = "zabby"
    start_timeout = 20.0

    def __init__(self, tmpdir, *, python: str | None = None, **cfg: Any) -> None:
        self.python = python or os.environ.get("ZABBY_PYTHON", sys.executable)
        # the AdminServer (on by default, port 8080, as in ZooKeeper) only when a test
        # asks for it, with its own free port: admin.enableServer=True, admin.serverPort
        cfg.setdefault("admin.enableServer", False)
        if cfg["admin.enableServer"]:
            cfg.setdefault("admin.serverAddress", HOST)
            cfg.setdefault("admin.serverPort", free_port())
        super().__init__(tmpdir, **cfg)

    @property
    def admin_url(self) -> str:
        """The AdminServer's command URL (admin.enableServer=True)."""
        return (f"http://{self.cfg['admin.serverAddress']}:{self.cfg['admin.serverPort']}"
                f"{self.cfg.get('admin.commandURL', '/commands')}")

    def command(self) -> list[str]:
        return [self.python, "-m", "zabby.cli.main", "serve", "--config", str(self.cfg_path),
                *self.jvm_flags]

    def env(self) -> dict[str, str]:
        env = super().env()
        # The server runs in its own directory: a relative PYTHONPATH (`PYTHONPATH=src`
        # in a worktree) would silently import the editable install's zabby instead.
        pp = env.get("PYTHONPATH")
        if pp:
            env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) if p else p for p in pp.split(os.pathsep))
        return env

    def serving(self) -> bool:
        if not any(str(k).startswith("server.") for k in self.cfg):
            return True
        try:
            out = self.four_letter_word("srvr")
        except OSError:
            return False
        return "Mode: " in out and "not currently serving" not in out

    @property
    def mode(self) -> str:
        """leader / follower / observer / standalone, or "" while not serving."""
        return _mode_of(self)


class ZooKeeperServer(_Server):
    """Apache ZooKeeper 3.8 (standalone) from Debian's ``zookeeper`` package."""

    kind = "zookeeper"
    start_timeout = 60.0

    def __init__(self, tmpdir, **cfg: Any) -> None:
        why = find_zookeeper()
        if why is not None:
            raise ServerStartError(f"cannot start Apache ZooKeeper: {why}")
        cfg.setdefault("admin.enableServer", False)
        if cfg["admin.enableServer"]:
            cfg.setdefault("admin.serverAddress", HOST)
            cfg.setdefault("admin.serverPort", free_port())
        super().__init__(tmpdir, **cfg)

    admin_url = ZabbyServer.admin_url

    def serving(self) -> bool:
        try:
            if "Mode:" not in four_letter_word(self.host, self.port, "srvr", timeout=1.0):
                return False
            secure = self.cfg.get("secureClientPort")
            if secure:
                # ZooKeeper answers on clientPort before its secure port listens
                socket.create_connection((self.host, int(secure)), timeout=1.0).close()
            return True
        except OSError:
            return False

    def classpath(self) -> str:
        override = os.environ.get("ZABBY_ZK_CLASSPATH")
        if override:
            return f"{override}:{self.dir}"
        jars = [ZK_JAR_DIR / "zookeeper.jar"] + [
            ZK_JAR_DIR / j for j in (*ZK_LOG_JARS, *ZK_NETTY_JARS, *ZK_ADMIN_JARS)]
        return ":".join([*(str(j) for j in jars), str(self.dir)])

    def command(self) -> list[str]:
        (self.dir / "log4j.properties").write_text(_LOG4J)
        java = os.environ.get("ZABBY_JAVA", "java")
        return [
            java,
            *JVM_FLAGS,
            "-Dzookeeper.jmx.log4j.disable=true",
            *self.jvm_flags,
            "-cp",
            self.classpath(),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.cfg_path),
        ]


def _mode_of(member: _Server) -> str:
    """leader / follower / observer / standalone from ``srvr``, or "" while not serving."""
    try:
        out = member.four_letter_word("srvr", timeout=1.0)
    except OSError:
        return ""
    for line in out.splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return ""


class _Ensemble:
    """N voters (+ observers) on loopback: each member a ``member_cls`` process with
    its own directory, ``myid`` and the same ``server.N=host:quorum:election:role;
    host:client`` lines (initLimit 10, syncLimit 5 unless given).

    Members are numbered 1..n (voters), then n+1..n+observers (observers), as in
    ``server.N`` and ``myid``; ``members[i]`` is the member's server object (its
    ``pid``, ``port``, ``log_path``, ...). Controlling them, for failure tests:

    ``kill(i)``          SIGKILL the member (a crash: its connections close at once)
    ``pause(i)``         SIGSTOP it (hung: its sockets stay open, nothing answers,
                         like a long GC pause or a frozen VM); ``resume(i)`` SIGCONTs it
    ``restart(i)``       stop it (resumed first if paused) and start it again on the
                         same ports and data directory
    ``leader()``         the leader's id, waiting (bounded) for an election
    ``followers()``      the ids of the members following it
    ``hosts``            connection string of every member; ``member_hosts(i, ...)``
                         of the given ones
    ``stop()``           every member, paused ones resumed first: nothing is left running

    Signals go to the member's process group (its id is the member's pid). The
    ensemble is a context manager: ``with ZabbyEnsemble(tmp_path) as ens: ...``
    stops every member on the way out.
    """

    member_cls: type[_Server]
    start_timeout = 30.0

    def __init__(self, tmpdir, n: int = 3, *, observers: int = 0, start: bool = True,
                 member_cls: type[_Server] | None = None, **cfg: Any) -> None:
        self.dir = Path(tmpdir)
        cls = member_cls or self.member_cls
        cfg.setdefault("initLimit", 10)
        cfg.setdefault("syncLimit", 5)
        self.n = n
        self.members: dict[int, Any] = {}
        for i in range(1, n + observers + 1):
            extra = dict(cfg)
            if i > n:
                extra["peerType"] = "observer"
            m = cls(self.dir / f"server{i}", start=False, **extra)
            (m.data_dir / "myid").write_text(f"{i}\n")
            self.members[i] = m
        self._assign_ports()
        if start:
            self.start_or_stop()

    def start_or_stop(self) -> None:
        """Start every member; when they do not all come up, stop what started and
        raise ServerStartError. Free ports are picked before the members bind them and
        another socket can take one in between: then the ports are picked again, once."""
        try:
            self.start()
        except ServerStartError as e:
            self.stop()
            if "address already in use" not in str(e).lower():
                raise
            self._assign_ports()
            try:
                self.start()
            except BaseException:
                self.stop()
                raise
        except BaseException:
            self.stop()
            raise

    def _assign_ports(self) -> None:
        """Fresh client/quorum/election ports for every member, and the server lines."""
        ports = {i: (free_port(), free_port(), free_port()) for i in self.members}
        lines = {}
        for i, (cp, qp, ep) in ports.items():
            role = "observer" if i > self.n else "participant"
            lines[f"server.{i}"] = f"{HOST}:{qp}:{ep}:{role};{HOST}:{cp}"
        for i, m in self.members.items():
            m.port = ports[i][0]
            m.cfg["clientPort"] = m.port
            m.cfg.update(lines)

    # ------------------------------------------------------------ addresses
    @property
    def hosts(self) -> str:
        """``host:port,host:port,...`` of every member (a client connection string)."""
        return ",".join(m.hosts for m in self.members.values())

    def member_hosts(self, *ids: int) -> str:
        """``host:port`` of member ``i``; of several, comma-separated in the order given."""
        if not ids:
            raise TypeError("member_hosts() needs at least one member id")
        return ",".join(self.members[i].hosts for i in ids)

    @property
    def voters(self) -> list[int]:
        """The participants' ids (1..n)."""
        return [i for i, m in self.members.items() if m.cfg.get("peerType") != "observer"]

    @property
    def observers(self) -> list[int]:
        """The observers' ids (n+1..)."""
        return [i for i, m in self.members.items() if m.cfg.get("peerType") == "observer"]

    @property
    def pids(self) -> dict[int, int]:
        """{id: pid} of the members whose process is running (paused ones included)."""
        return {i: m.pid for i, m in self.members.items() if m.running}

    def _up(self, i: int) -> bool:
        """Running and not paused: it can answer."""
        m = self.members[i]
        return m.running and not m.paused

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float | None = None) -> None:
        for m in self.members.values():
            m.start(wait=False)
        self.wait_serving(timeout=timeout)

    def wait_serving(self, ids=None, timeout: float | None = None) -> None:
        """Until every given (default: running, not paused) member serves clients."""
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        ids = list(ids) if ids is not None else [i for i in self.members if self._up(i)]
        while True:
            for i in ids:
                m = self.members[i]
                if m.proc is not None and m.proc.poll() is not None:
                    raise ServerStartError(f"member {i} exited with status "
                                           f"{m.proc.returncode}\n{m.log_tail(20)}")
            waiting = [i for i in ids if not self.members[i].serving()]
            if not waiting:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(self.members[i].log_tail(20) for i in waiting)
                raise ServerStartError(f"members {waiting} not serving after {timeout}s\n{tails}")
            time.sleep(0.05)

    def mode(self, i: int) -> str:
        """leader / follower / observer as member ``i`` reports it, "" while it does not
        serve (down, paused, electing)."""
        if not self._up(i):
            return ""
        return _mode_of(self.members[i])

    def leader(self, timeout: float | None = None) -> int:
        """The id of the member that is leader now; waits for one (an election after
        a kill or pause) up to ``timeout`` seconds (default ``start_timeout``), then
        raises ServerStartError. Paused and dead members are not asked."""
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        while True:
            for i in self.members:
                if self.mode(i) == "leader":
                    return i
            if time.monotonic() > deadline:
                modes = {i: self.mode(i) or "-" for i in self.members}
                raise ServerStartError(f"no leader after {timeout}s (modes: {modes})")
            time.sleep(0.05)

    def followers(self, timeout: float | None = None) -> list[int]:
        """The ids of the members following the leader. Waits (bounded by ``timeout``)
        for a leader, then until every running, unpaused voter but the leader follows
        it (a restarted member takes a moment to sync); returns those that do."""
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        lead = self.leader(timeout)
        while True:
            want = [i for i in self.voters if i != lead and self._up(i)]
            got = [i for i in want if self.mode(i) == "follower"]
            if len(got) == len(want) or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (a crash). ``restart(i)`` brings it back."""
        self.members[i].kill()

    def pause(self, i: int) -> None:
        """SIGSTOP member ``i``: it stops answering, its connections stay open, until
        ``resume(i)``. ``stop()`` resumes it before stopping it."""
        self.members[i].pause()

    def resume(self, i: int) -> None:
        """SIGCONT member ``i`` after ``pause(i)``."""
        self.members[i].resume()

    def restart(self, i: int, wait: bool = False) -> None:
        """Stop member ``i`` (resumed first if paused; SIGTERM, then SIGKILL) and start
        it again with the same ports and data. ``wait=True``: until it serves again
        (needs a quorum of the others up)."""
        m = self.members[i]
        m.stop()
        m.start(wait=wait)

    def stop(self) -> None:
        """Stop every member: SIGCONT and SIGTERM to all at once (paused ones resumed,
        so none is left behind stopped), then each is waited for and SIGKILLed."""
        for m in self.members.values():
            if m.running:
                m.resume()
                m._signal(m.pid, signal.SIGTERM)
        for m in self.members.values():
            m.stop()

    def __enter__(self):
        if not any(m.proc is not None for m in self.members.values()):
            self.start_or_stop()  # a port taken meanwhile: new ports, once
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hosts}, dir={str(self.dir)!r})"


class ZabbyEnsemble(_Ensemble):
    """zabby members (ZabbyServer processes).

        with ZabbyEnsemble(tmp_path, 3) as ens:
            KazooClient(hosts=ens.hosts)   # every member
            ens.kill(ens.leader())         # kill -9 the leader
    """

    member_cls = ZabbyServer
    start_timeout = 30.0


class ZooKeeperEnsemble(_Ensemble):
    """Apache ZooKeeper 3.8 members (``member_cls``, default ZooKeeperServer)."""

    member_cls = ZooKeeperServer
    start_timeout = 90.0

    def __init__(self, tmpdir, n: int = 3, **kw: Any) -> None:
        why = find_zookeeper()
        if why is not None:
            raise ServerStartError(f"cannot start Apache ZooKeeper: {why}")
        super().__init__(tmpdir, n, **kw)
