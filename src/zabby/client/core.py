"""`Client`: zabby's asyncio ZooKeeper client, on the sans-IO codec in `zabby.wire`.

One connection at a time to one server of the host list; many requests in flight on
it (pipelining: the server answers a session's requests in order, so replies are
matched to requests first-in first-out). On a silent or closed server the client
moves to the next host and asks for the same session (id, password, last zxid seen:
a server behind that zxid refuses us and we try the next), then sends SetWatches2 so
the server holds every watch again, and the auth it was given. Watch notifications
are dispatched as their frame is read, so a watcher sees an event before the caller
of any later request sees its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl
import struct
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from zabby.wire import (
    ACL,
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    AddWatchMode,
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    ConnectRequest,
    Create2Response,
    CreateMode,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    Empty,
    Err,
    FrameDecoder,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    Id,
    MultiRequest,
    MultiResponse,
    Op,
    PathRequest,
    PathResponse,
    PathWatchRequest,
    ProtocolError,
    ReconfigRequest,
    ReplyHeader,
    SaslToken,
    SetACLRequest,
    SetDataRequest,
    SetWatches2,
    StatResponse,
    WatcherEvent,
    WatchTypeRequest,
    WhoAmIResponse,
    decode_connect_response,
    encode_connect_request,
    encode_request,
)
from zabby.wire import keeper as _keeper

from .exceptions import (
    AuthFailedError,
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooTimeoutError,
    NodeExistsError,
    NoNodeError,
    NoWatcherError,
    OperationTimeoutError,
    RolledBackError,
    SASLException,
    SessionExpiredError,
    ZookeeperError,
    error_for,
)
from .states import (
    EVENT_NAMES,
    ConnectionState,
    EventType,
    KeeperState,
    WatchedEvent,
    ZnodeStat,
)

__all__ = ["OPEN_ACL_UNSAFE", "AddWatch", "Client", "StateStream", "Transaction", "WatchStream",
           "parse_hosts"]

log = logging.getLogger("zabby.client")

OPEN_ACL_UNSAFE = [ACL(31, Id("world", "anyone"))]
_NO_PASSWD = b"\x00" * 16
_RW_PROBE_FIRST, _RW_PROBE_MAX = 0.1, 60.0  # seconds between isro rounds, read-only
_MAX_FRAME = 64 * 1024 * 1024
_INT = struct.Struct(">i")

# kinds of watches a client holds, as SetWatches2 names them
_DATA, _EXIST, _CHILD, _PERSISTENT, _RECURSIVE = "data", "exist", "child", "persistent", "recursive"
_KINDS = (_DATA, _EXIST, _CHILD, _PERSISTENT, _RECURSIVE)
# remove_watches' watcher_type -> (wire WatcherType, our kinds)
_WATCHER_TYPES = {
    "children": (1, (_CHILD,)),
    "data": (2, (_DATA, _EXIST)),
    "any": (3, _KINDS),
}


# ------------------------------------------------------------------ hosts
def parse_hosts(spec: str) -> tuple[list[tuple[str, int]], str]:
    """``"h1:2181,h2:2182/app"`` -> ([(h1, 2181), (h2, 2182)], "/app")."""
    if not isinstance(spec, str):
        spec = ",".join(spec)
    hosts_part, slash, root = spec.partition("/")
    chroot = ""
    if slash:
        root = "/" + root.rstrip("/")
        if root != "/":
            if "//" in root or any(p in (".", "..") for p in root.split("/")):
                raise ConfigurationError(f"invalid chroot path {root!r}")
            chroot = root
    hosts: list[tuple[str, int]] = []
    for part in hosts_part.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [ipv6]:port
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
        elif part.count(":") == 1:
            host, _, port = part.partition(":")
        else:
            host, port = part, ""
        try:
            hosts.append((host, int(port) if port else 2181))
        except ValueError:
            raise ConfigurationError(f"bad port in {part!r}") from None
    if not hosts:
        raise ConfigurationError(f"no host in {spec!r}")
    return hosts, chroot


def chroot_in(root: str, path: str) -> str:
    """A client's path -> the server's, under the chroot `root` ("" for none)."""
    if not root:
        return path
    return root if path == "/" else root + path


def chroot_out(root: str, path: str) -> str:
    """A server's path -> the client's under the chroot `root` (a path outside the
    chroot, as a persistent watch above it may report, stays as it is)."""
    if not root or not path.startswith(root):
        return path
    if len(path) == len(root):
        return "/"
    return path[len(root):] if path[len(root)] == "/" else path


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must be a string starting with '/': {path!r}")
    if len(path) > 1 and path.endswith("/"):
        raise ValueError(f"path must not end with '/': {path!r}")


def _call_watcher(watcher: Callable[[WatchedEvent], Any], event: WatchedEvent) -> None:
    try:
        r = watcher(event)
        if inspect.isawaitable(r):
            asyncio.ensure_future(r)
    except Exception:  # noqa: BLE001 - a watcher's failure is its own
        log.exception("watcher %r failed on %r", watcher, event)



def _now() -> float:
    """Seconds on the running event loop's clock (the machine's monotonic clock on a
    real loop; virtual time in the simulation), so that the session's deadlines and
    the loop's timers agree."""
    return asyncio.get_running_loop().time()

class WatchStream:
    """A watcher that is also an async iterator of its events.

    Pass it as ``watch=`` (``w = zk.watcher(); await zk.get(path, watch=w);
    event = await w.next(timeout=5)``); ``add_watch`` hands one out too. Iteration
    ends (StopAsyncIteration) when the client stops, and raises SessionExpiredError
    when the session (and so the watch) is lost.
    """

    _END = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._done: BaseException | object | None = None

    def __call__(self, event: WatchedEvent) -> None:
        self._queue.put_nowait(event)

    def _finish(self, exc: BaseException | None) -> None:
        self._queue.put_nowait(exc if exc is not None else self._END)

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchedEvent:
        if self._done is not None:
            if isinstance(self._done, BaseException):
                raise self._done
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is self._END:
            self._done = item
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = item
            raise item
        return item

    async def next(self, timeout: float | None = None) -> WatchedEvent:
        """The next event; TimeoutError after ``timeout`` seconds."""
        if timeout is None:
            return await self.__anext__()
        return await asyncio.wait_for(self.__anext__(), timeout)

    def pending(self) -> list[WatchedEvent]:
        """Events already received and not yet taken (without waiting)."""
        out = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, WatchedEvent):
                out.append(item)
            else:
                self._queue.put_nowait(item)
                break
        return out


class _Req:
    __slots__ = ("xid", "op", "fut", "watch", "kind", "wpath")

    def __init__(self, xid, op, fut, watch=None, kind=None, wpath=None) -> None:
        self.xid, self.op, self.fut = xid, op, fut
        self.watch, self.kind, self.wpath = watch, kind, wpath


class _Conn(asyncio.Protocol):
    """One TCP (or TLS) connection; frames go to the client once the session is up."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(max_frame=_MAX_FRAME)
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[bytes] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.ready = False
        self.early: list[bytes] = []
        self.address: tuple[str, int] = ("", 0)

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except ProtocolError:
            self.abort()
            return
        client = self.client
        for f in frames:
            if not self.handshake.done():
                self.handshake.set_result(f)
            elif not self.ready:
                self.early.append(f)
            else:
                try:
                    client._on_frame(self, f)
                except Exception:  # noqa: BLE001 - a bad frame: drop this connection
                    log.exception("bad frame from %s:%s, dropping the connection",
                                  *self.address)
                    self.abort()
                    return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection closed"))
            # whoever waited may have given up (a timed-out connect): marked as seen,
            # so asyncio does not log "Future exception was never retrieved"
            self.handshake.exception()
        if not self.lost.done():
            self.lost.set_result(None)
        self.client._on_conn_lost(self)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.client._last_send = _now()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _mode_flags(ephemeral: bool, sequence: bool, container: bool, ttl: int) -> int:
    if container:
        if ephemeral or sequence or ttl:
            raise TypeError("a container node cannot be ephemeral, sequential or have a ttl")
        return CreateMode.CONTAINER
    if ttl:
        if ephemeral:
            raise TypeError("a ttl node cannot be ephemeral")
        return CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else CreateMode.PERSISTENT_WITH_TTL
    return (CreateMode.EPHEMERAL if ephemeral else 0) | (2 if sequence else 0)


def _create_op(flags: int) -> int:
    if flags == CreateMode.CONTAINER:
        return Op.CREATE_CONTAINER
    if flags in (CreateMode.PERSISTENT_WITH_TTL, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL):
        return Op.CREATE_TTL
    return Op.CREATE2


async def wait_cancelled(task: asyncio.Future) -> bool:
    """Wait for `task`, just cancelled, to end: its own cancellation or failure ends
    here. True if our caller was cancelled meanwhile (a timeout around it): the caller
    finishes its cleanup, then raises CancelledError. Swallowing every CancelledError
    instead made a timeout around `Client.stop()` return as if it had finished in time."""
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # noqa: BLE001 - the task's failure ends with it
        pass
    return current is not None and current.cancelling() > before


class Client:
    """An asyncio ZooKeeper client with kazoo's method names, as coroutines.

    ``hosts``: ``"h1:2181,h2:2181/chroot"`` (tried in random order); ``timeout``:
    the session timeout asked for, seconds (the server may change it); ``client_id``:
    (session id, password) to resume a session; ``auth_data``: [(scheme, credential)]
    sent on every connection; ``ssl_context``: TLS to every host; ``sasl_options``:
    ``{"mechanism": "DIGEST-MD5", "username": .., "password": ..}`` or
    ``{"mechanism": "GSSAPI"}`` (Kerberos; options in zabby.client.gssapi_sasl); ``read_only``:
    accept read-only servers; ``default_acl``: the ACL of created nodes when none given;
    ``connect_wait``: how long a request made while there is no connection waits for
    one before it fails with ConnectionLoss, seconds (default: the session timeout; an
    interactive tool wants a short one).
    """

    def __init__(self, hosts: str = "127.0.0.1:2181", timeout: float = 10.0,
                 client_id: tuple[int, bytes] | None = None,
                 read_only: bool = False, auth_data: Iterable[tuple[str, Any]] | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 sasl_options: dict[str, str] | None = None,
                 default_acl: list[ACL] | None = None,
                 connection_timeout: float | None = None,
                 randomize_hosts: bool = True,
                 connect_wait: float | None = None,
                 rng: random.Random | None = None) -> None:
        self._hosts, self.chroot = parse_hosts(hosts)
        # host order and back-off jitter (a seeded one makes a run repeatable: zabby.sim)
        self._rng = rng if rng is not None else random.Random()
        self.hosts = hosts
        self._timeout = float(timeout)
        self._session_timeout_ms = int(timeout * 1000)
        self._connect_timeout = connection_timeout
        self._connect_wait = connect_wait
        self.randomize_hosts = randomize_hosts
        self.read_only = read_only
        self._ssl = ssl_context
        self._sasl = dict(sasl_options) if sasl_options else None
        if self._sasl:
            mech = self._sasl.setdefault("mechanism", "DIGEST-MD5").upper()
            if mech not in ("DIGEST-MD5", "GSSAPI"):
                raise ConfigurationError(f"SASL mechanism {mech} is not supported "
                                         "(DIGEST-MD5, GSSAPI)")
            self._sasl["mechanism"] = mech
        self.default_acl = list(default_acl) if default_acl else OPEN_ACL_UNSAFE
        self._auth: list[tuple[str, bytes]] = [
            (s, c.encode() if isinstance(c, str) else bytes(c)) for s, c in (auth_data or ())]
        if client_id is not None:
            self._session_id, self._passwd = client_id[0], bytes(client_id[1])
        else:
            self._session_id, self._passwd = 0, _NO_PASSWD
        self.last_zxid = 0
        self._xid = 0
        self._conn: _Conn | None = None
        self._pending: deque[_Req] = deque()
        self._auth_waiters: deque[asyncio.Future[None] | None] = deque()
        self._ready_waiters: list[asyncio.Future[_Conn]] = []
        self._watches: dict[str, dict[str, list[Callable[[WatchedEvent], Any]]]] = {
            k: {} for k in _KINDS}
        self._listeners: list[Callable[[ConnectionState], Any]] = []
        self._state_streams: list[asyncio.Queue[ConnectionState | None]] = []
        self.state: ConnectionState = ConnectionState.LOST
        self._had_session = client_id is not None
        self._run_task: asyncio.Task[None] | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closing = False
        self._started = False
        self._last_send = self._last_recv = 0.0
        self._host_index = 0
        self._order: list[tuple[str, int]] = []
        self.current_host: tuple[str, int] | None = None
        self.connected_read_only = False
        # read-only mode: our session was made by a read-only server (a local session
        # the quorum does not know), and a read-write server found in the background
        self._ro_session = False
        self._rw_task: asyncio.Task[None] | None = None
        self._rw_next: tuple[str, int] | None = None

    def __getattr__(self, name: str) -> Any:
        """Recipe factories by kazoo's names (``zk.Lock(path, identifier)``, ``zk.Election``,
        ...) come from ``zabby.recipes``, imported on first use: this layer imports no
        upper one."""
        if name[:1].isupper():
            try:
                from zabby.recipes.methods import recipe_method
            except ImportError:
                pass
            else:
                return recipe_method(self, name, sync=False)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ============================================================ lifecycle
    async def start(self, timeout: float = 15.0) -> None:
        """Connect (a session with one server of the list) within ``timeout`` seconds."""
        if self._run_task is not None and not self._run_task.done():
            if self._conn is not None:
                return
        else:
            self._stopping = False
            self._closing = False
            self._started = True
            self._order = list(self._hosts)
            if self.randomize_hosts:
                self._rng.shuffle(self._order)
            self._host_index = 0
            self._run_task = asyncio.ensure_future(self._run())
        deadline = _now() + timeout
        while True:
            try:
                await self._ready(max(deadline - _now(), 0.001))
                return
            except SessionExpiredError:  # the client_id we were given: a new session follows
                continue
            except AuthFailedError:
                await self.stop()
                raise
            except ConnectionLoss:
                await self.stop()
                raise KazooTimeoutError(f"no connection to {self.hosts} in {timeout}s") from None

    async def stop(self) -> None:
        """Close the session (its ephemeral nodes go) and the connection."""
        if self._stopping or self._run_task is None:
            self._stopping = True
            return
        self._closing = True
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._call(Op.CLOSE_SESSION, Empty(), None), 2.0)
        self._stopping = True
        task, self._run_task = self._run_task, None
        task.cancel()
        if self._ping_task is not None:
            self._ping_task.cancel()
            self._ping_task = None
        if self._rw_task is not None:
            self._rw_task.cancel()
            self._rw_task = None
        cancelled = await wait_cancelled(task)
        if self._conn is not None:
            self._conn.abort()
        self._conn = None
        self._fail_all(ConnectionClosedError("the client was stopped"))
        for kind in self._watches.values():
            for watchers in kind.values():
                for w in watchers:
                    if isinstance(w, WatchStream):
                        w._finish(None)
            kind.clear()
        self._session_id, self._passwd = 0, _NO_PASSWD
        self._ro_session, self._rw_next = False, None
        self._set_state(ConnectionState.LOST)
        for q in self._state_streams:
            q.put_nowait(None)
        if cancelled:
            raise asyncio.CancelledError

    async def close(self) -> None:
        """kazoo's close(): after stop() there is nothing left to free."""
        if not self._stopping:
            await self.stop()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        """(session id, password) of the current session, or None."""
        return (self._session_id, self._passwd) if self._session_id else None

    @property
    def session_id(self) -> int:
        return self._session_id

    @property
    def session_timeout(self) -> float:
        """The session timeout the server granted, seconds."""
        return self._session_timeout_ms / 1000.0

    # ============================================================== states
    def add_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        """Call ``listener(state)`` on every change of connection state."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def states(self) -> StateStream:
        """Every state change from this call on, as an async iterator (it ends when the
        client stops): ``async for state in zk.states(): ...``."""
        return StateStream(self)

    def _set_state(self, state: ConnectionState) -> None:
        if state == self.state and state != ConnectionState.RECONNECTED:
            return
        self.state = state
        for q in self._state_streams:
            q.put_nowait(state)
        for fn in list(self._listeners):
            try:
                r = fn(state)
                if r is True:  # kazoo: a listener returning True is removed
                    self.remove_listener(fn)
                elif inspect.isawaitable(r):
                    asyncio.ensure_future(r)
            except Exception:  # noqa: BLE001
                log.exception("state listener %r failed", fn)

    # ========================================================== connection
    async def _run(self) -> None:
        failures = 0
        while not (self._stopping or self._closing):
            if self._rw_next is not None:  # found while we were read-only: go there
                (host, port), self._rw_next = self._rw_next, None
            else:
                host, port = self._order[self._host_index % len(self._order)]
                self._host_index += 1
            try:
                conn = await self._connect_one(host, port)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure: try the next host
                log.debug("connect to %s:%s failed: %r", host, port, e)
                failures += 1
                if failures % len(self._order) == 0:
                    await asyncio.sleep(min(0.05 * (failures // len(self._order)), 1.0)
                                        * (0.5 + self._rng.random()))
                continue
            if conn is None:  # the session expired: ask for a new one at once
                continue
            failures = 0
            if self._stopping or self._closing:
                # stop() cancelled us while we connected, and the cancellation was lost:
                # Python 3.11's wait_for drops one that arrives as the awaited call
                # completes. Waiting for this healthy connection to drop would hold
                # stop() for ever; the connection is stop()'s to close.
                return
            await conn.lost

    async def _connect_one(self, host: str, port: int) -> _Conn | None:
        loop = asyncio.get_running_loop()
        timeout = self._connect_timeout or max(
            self._session_timeout_ms / 1000.0 / len(self._order), 1.0)
        _, conn = await asyncio.wait_for(loop.create_connection(
            lambda: _Conn(self), host, port, ssl=self._ssl,
            server_hostname=host if self._ssl is not None else None), timeout)
        conn.address = (host, port)
        # A session made by a read-only server is local to it: like ZooKeeper's Java
        # client (which sends session 0 until it has seen a read-write server), ask any
        # other server for a new session rather than resume one it would call expired.
        from_ro = self._ro_session
        sid, passwd = (0, _NO_PASSWD) if from_ro else (self._session_id, self._passwd)
        try:
            resumed = sid != 0
            conn.write(encode_connect_request(ConnectRequest(
                0, self.last_zxid, self._session_timeout_ms, sid, passwd),
                self.read_only))
            first = await asyncio.wait_for(asyncio.shield(conn.handshake), timeout)
            resp, read_only = decode_connect_response(first)
        except BaseException:
            conn.abort()
            raise
        if resp.timeOut <= 0:
            conn.abort()
            self._expire()
            return None
        if resumed and resp.sessionId != self._session_id:  # not ours: a new session
            self._expire()
            resumed = False
        self._session_timeout_ms = resp.timeOut
        self._session_id, self._passwd = resp.sessionId, resp.passwd
        self._last_recv = _now()
        self.current_host = (host, port)
        self.connected_read_only = read_only
        if not read_only:
            self._ro_session = False
        elif not resumed:
            self._ro_session = True
        # before any request of ours: the server's watches again, then our auth
        if (resumed or from_ro) and any(self._watches.values()):
            for batch in self._set_watches_batches():
                conn.write(encode_request(XID_SET_WATCHES, Op.SET_WATCHES2, batch))
        if conn.lost.done():
            # it closed after its connect response arrived but before we ran again:
            # a failed connect. Adopted, it would take requests that no server ever
            # sees, and nothing would fail them (its loss was already reported).
            raise ConnectionLoss(f"connection to {host}:{port} lost during the handshake")
        for scheme, cred in self._auth:
            self._auth_waiters.append(None)
            conn.write(encode_request(XID_AUTH, Op.AUTH, AuthPacket(0, scheme, cred)))
        conn.ready = True
        self._conn = conn
        for f in conn.early:
            self._on_frame(conn, f)
        conn.early.clear()
        if self._ping_task is not None:
            self._ping_task.cancel()
        self._ping_task = asyncio.ensure_future(self._pinger(conn))
        if self._sasl is not None:
            try:
                await self._sasl_login()
            except (ZookeeperError, SASLException) as e:
                conn.abort()
                failed = AuthFailedError(f"SASL login refused: {e}")
                waiters, self._ready_waiters = self._ready_waiters, []
                for f in waiters:
                    if not f.done():
                        f.set_exception(failed)
                raise failed from None
            except BaseException:
                conn.abort()
                raise
        if conn.lost.done():
            return conn
        self._wake(conn)
        if read_only:
            self._set_state(ConnectionState.READ_ONLY)
            if self._rw_task is not None:
                self._rw_task.cancel()
            if len(self._order) > 1:
                self._rw_task = asyncio.ensure_future(self._seek_rw(conn))
        elif resumed:
            self._set_state(ConnectionState.RECONNECTED)
        else:
            self._set_state(ConnectionState.CONNECTED)
        self._had_session = True
        return conn

    def _set_watches_batches(self) -> list[SetWatches2]:
        """SetWatches2 records for every watch we hold, each under ~128 KiB (a server
        refuses a frame above its jute.maxbuffer), as ZooKeeper's client splits them."""
        batches: list[SetWatches2] = []
        cur: dict[str, list[str]] = {k: [] for k in _KINDS}
        size = 0
        for kind in _KINDS:
            for p in sorted(self._watches[kind]):
                sp = self._server_path(p)
                if size and size + len(sp) + 4 > 128 * 1024:
                    batches.append(self._set_watches(cur))
                    cur, size = {k: [] for k in _KINDS}, 0
                cur[kind].append(sp)
                size += len(sp.encode()) + 4
        if size:
            batches.append(self._set_watches(cur))
        return batches

    def _set_watches(self, w: dict[str, list[str]]) -> SetWatches2:
        return SetWatches2(self.last_zxid, w[_DATA], w[_EXIST], w[_CHILD], w[_PERSISTENT],
                           w[_RECURSIVE])

    async def _sasl_login(self) -> None:
        assert self._sasl is not None
        if self._sasl["mechanism"] == "GSSAPI":
            await self._gssapi_login()
            return
        from zabby.server.digest_md5 import DigestMD5Client, SaslError

        cli = DigestMD5Client(self._sasl["username"], self._sasl["password"])
        token = cli.initial()
        for _ in range(4):
            data = await self._call(Op.SASL, SaslToken(token), None, raw=True)
            if data is None:
                return
            try:
                token = cli.step(data)
            except SaslError as e:
                raise SASLException(str(e)) from None
            if cli.complete:
                return
        raise SASLException("SASL login did not complete")

    async def _gssapi_login(self) -> None:
        """SASL GSSAPI (zabby.client.gssapi_sasl); gssapi calls may reach the KDC, so
        they run in a thread, not on this loop."""
        from .gssapi_sasl import GssapiInitiator

        assert self._sasl is not None and self.current_host is not None
        loop = asyncio.get_running_loop()
        cli = await loop.run_in_executor(None, GssapiInitiator, self._sasl,
                                         self.current_host[0])
        token = await loop.run_in_executor(None, cli.initial)
        for _ in range(8):
            data = await self._call(Op.SASL, SaslToken(token or b""), None, raw=True)
            token = await loop.run_in_executor(None, cli.step, data)
            if cli.complete:
                return
        raise SASLException("SASL GSSAPI login did not complete")

    async def _seek_rw(self, conn: _Conn) -> None:
        """While ``conn`` is to a read-only server: probe the other servers with the
        ``isro`` four-letter word, backing off from 0.1 s to 60 s between rounds (as
        ZooKeeper's Java client does); on one answering ``rw``, drop ``conn`` and
        connect there next."""
        delay = _RW_PROBE_FIRST
        while not conn.lost.done():
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RW_PROBE_MAX)
            for addr in [a for a in self._order if a != conn.address]:
                if conn.lost.done():
                    return
                if await self._probe_rw(addr):
                    log.info("read-write server %s:%s found; leaving read-only %s:%s",
                             *addr, *conn.address)
                    self._rw_next = addr
                    conn.abort()
                    return

    async def _probe_rw(self, addr: tuple[str, int]) -> bool:
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), 1.0)
            writer.write(b"isro")
            return (await asyncio.wait_for(reader.read(16), 1.0)).startswith(b"rw")
        except (TimeoutError, OSError):
            return False
        finally:
            if writer is not None:
                writer.close()

    async def _pinger(self, conn: _Conn) -> None:
        read_timeout = self._session_timeout_ms / 1000.0 * 2 / 3
        interval = read_timeout / 3
        ping = encode_request(XID_PING, Op.PING)
        while not conn.lost.done():
            await asyncio.sleep(interval / 2)
            now = _now()
            if now - self._last_recv > read_timeout:
                log.info("no reply from %s:%s in %.1fs, trying another server",
                         *conn.address, read_timeout)
                conn.abort()
                return
            if now - self._last_send >= interval:
                conn.write(ping)

    def _on_conn_lost(self, conn: _Conn) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        self.current_host = None
        exc = ConnectionLoss("connection lost")
        pending, self._pending = self._pending, deque()
        for r in pending:
            if not r.fut.done():
                r.fut.set_exception(ConnectionLoss(f"connection lost (op {r.op})"))
        auth, self._auth_waiters = self._auth_waiters, deque()
        for f in auth:
            if f is not None and not f.done():
                f.set_exception(exc)
        if not (self._stopping or self._closing):
            self._set_state(ConnectionState.SUSPENDED)

    def _expire(self) -> None:
        """The server told us our session is gone."""
        self._session_id, self._passwd = 0, _NO_PASSWD
        exc = SessionExpiredError("the session expired")
        waiters, self._ready_waiters = self._ready_waiters, []
        for f in waiters:
            if not f.done():
                f.set_exception(exc)
        for kind in self._watches.values():
            for watchers in kind.values():
                for w in watchers:
                    if isinstance(w, WatchStream):
                        w._finish(SessionExpiredError("the session expired: watch lost"))
            kind.clear()
        self._set_state(ConnectionState.LOST)

    def _wake(self, conn: _Conn) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(conn)

    def _fail_all(self, exc: BaseException) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for f in waiters:
            if not f.done():
                f.set_exception(exc)
        pending, self._pending = self._pending, deque()
        for r in pending:
            if not r.fut.done():
                r.fut.set_exception(exc)

    async def _ready(self, timeout: float | None = None) -> _Conn:
        if timeout is None:
            timeout = self._connect_wait if self._connect_wait is not None else self._timeout
        deadline = _now() + timeout
        while True:
            if self._stopping or self._run_task is None:
                raise ConnectionClosedError("the client is not started" if not self._started
                                            else "the client was stopped")
            if self._conn is not None:
                return self._conn
            fut: asyncio.Future[_Conn] = asyncio.get_running_loop().create_future()
            self._ready_waiters.append(fut)
            try:
                conn = await asyncio.wait_for(fut, max(deadline - _now(), 0.001))
            except TimeoutError:
                raise ConnectionLoss("no server could be reached in time") from None
            if conn is self._conn:
                return conn
            # Lost between waking us and our turn to run: a request written on it would
            # stay pending with no reply, and the next reply would not match its xid.
            # Wait for the next connection instead.

    # ============================================================== frames
    def _on_frame(self, conn: _Conn, f: bytes) -> None:
        hdr, pos = ReplyHeader.decode_from(f, 0)
        self._last_recv = _now()
        xid = hdr.xid
        if xid == XID_NOTIFICATION:
            ev, _ = WatcherEvent.decode_from(f, pos)
            self._notify(ev)
            return
        if xid == XID_PING or xid == XID_SET_WATCHES:
            return
        if xid == XID_AUTH:
            w = self._auth_waiters.popleft() if self._auth_waiters else None
            if w is not None and not w.done():
                if hdr.err:
                    w.set_exception(error_for(hdr.err))
                else:
                    w.set_result(None)
            elif hdr.err:
                log.warning("the server refused our auth data (%s)", hdr.err)
            return
        if hdr.zxid > 0 and hdr.zxid > self.last_zxid:
            self.last_zxid = hdr.zxid
        if not self._pending:
            raise ProtocolError(f"reply xid {xid} without a request")
        r = self._pending.popleft()
        if r.xid != xid:
            self._pending.appendleft(r)  # failed with the connection, not left waiting
            raise ProtocolError(f"reply xid {xid}, expected {r.xid}")
        err = hdr.err
        if r.watch is not None:
            if err == 0:
                self._add_watch(r.kind, r.wpath, r.watch)
            elif err == Err.NONODE and r.kind == _DATA and r.op == Op.EXISTS:
                self._add_watch(_EXIST, r.wpath, r.watch)
        if not r.fut.done():
            r.fut.set_result((err, f, pos))

    def _add_watch(self, kind: str, path: str, watcher) -> None:
        watchers = self._watches[kind].setdefault(path, [])
        if watcher not in watchers:
            watchers.append(watcher)

    def _notify(self, ev: WatcherEvent) -> None:
        if ev.type == -1 or ev.path is None:  # a state change: the connection code sees it
            return
        path = self._client_path(ev.path)
        t = ev.type
        w = self._watches
        targets: list = []
        if t in (1, 3):  # created, data changed
            targets += w[_DATA].pop(path, [])
            targets += w[_EXIST].pop(path, [])
        elif t == 2:  # deleted
            targets += w[_DATA].pop(path, [])
            targets += w[_EXIST].pop(path, [])
            targets += w[_CHILD].pop(path, [])
        elif t == 4:
            targets += w[_CHILD].pop(path, [])
        targets += w[_PERSISTENT].get(path, ())
        if t != 4 and w[_RECURSIVE]:
            p = path
            while True:
                targets += w[_RECURSIVE].get(p, ())
                if p == "/":
                    break
                p = p.rsplit("/", 1)[0] or "/"
        if not targets:
            return
        event = WatchedEvent(EVENT_NAMES.get(t, str(t)), KeeperState.CONNECTED, path)
        called: list = []
        for watcher in targets:  # one call per watcher, however many watches matched
            if watcher in called:
                continue
            called.append(watcher)
            _call_watcher(watcher, event)

    # =============================================================== paths
    def _server_path(self, path: str) -> str:
        return chroot_in(self.chroot, path)

    def _client_path(self, path: str) -> str:
        return chroot_out(self.chroot, path)

    def _p(self, path: str) -> str:
        _check_path(path)
        return self._server_path(path)

    # ============================================================ requests
    async def _call(self, op: int, body: Any, resp_type: Any, *, path: str | None = None,
                    watch=None, kind: str | None = None, wpath: str | None = None,
                    raw: bool = False) -> Any:
        """Send one request and wait for its reply: the decoded body, or an exception."""
        conn = await self._ready()
        self._xid = self._xid + 1 if self._xid < 0x7FFFFFFF else 1
        xid = self._xid
        fut: asyncio.Future[tuple[int, bytes, int]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Req(xid, op, fut, watch, kind, wpath))
        conn.write(encode_request(xid, op, body))
        err, f, pos = await fut
        if err:
            raise error_for(err, path)
        if raw:  # a SASL token: a buffer, -1 when the server has none
            (n,) = _INT.unpack_from(f, pos) if len(f) >= pos + 4 else (-1,)
            return None if n < 0 else bytes(f[pos + 4:pos + 4 + n])
        if resp_type is None:
            return None
        return resp_type.decode_from(f, pos)[0]

    def _watch_args(self, watch, kind: str, path: str) -> dict[str, Any]:
        if watch is None:
            return {}
        if not callable(watch):
            raise TypeError("watch must be callable")
        return {"watch": watch, "kind": kind, "wpath": path}

    async def retry(self, func: Callable[..., Any], *args: Any, max_tries: int = 20,
                    **kwargs: Any) -> Any:
        """``await func(*args, **kwargs)``, again after ConnectionLoss or
        OperationTimeoutError (the client reconnects meanwhile), at most ``max_tries``
        times. SessionExpiredError is not retried: the session's state is gone."""
        delay = 0.05
        for attempt in range(max_tries):
            try:
                return await func(*args, **kwargs)
            except (ConnectionLoss, OperationTimeoutError):
                if attempt == max_tries - 1:
                    raise
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def watcher(self) -> WatchStream:
        """A watcher to pass as ``watch=`` that is also an async iterator of its events."""
        return WatchStream()

    # ---------------------------------------------------------------- create
    async def create(self, path: str, value: bytes = b"", acl: list[ACL] | None = None,
                     ephemeral: bool = False, sequence: bool = False, makepath: bool = False,
                     container: bool = False, ttl: int = 0, include_data: bool = False) -> Any:
        """Create a node; the path created (with its sequence number), or (path, stat)
        when ``include_data``. ``ttl`` in milliseconds (a TTL node). ``value=None``
        creates a node whose data is null (as ZooKeeper's Java client does with null):
        ``get`` reads it as b"" unless asked for ``null=None``."""
        if value is not None and not isinstance(value, bytes | bytearray):
            raise TypeError("value must be bytes")
        flags = _mode_flags(ephemeral, sequence, container, ttl)
        op = _create_op(flags)
        acl = list(acl) if acl else self.default_acl
        sp = self._p(path)
        data = None if value is None else bytes(value)
        body = (CreateTTLRequest(sp, data, acl, flags, int(ttl)) if op == Op.CREATE_TTL
                else CreateRequest(sp, data, acl, flags))
        try:
            resp = await self._call(op, body, Create2Response, path=path)
        except NoNodeError:
            if not makepath:
                raise
            await self.ensure_path(path.rsplit("/", 1)[0] or "/", acl)
            resp = await self._call(op, body, Create2Response, path=path)
        created = self._client_path(resp.path)
        if include_data:
            return created, ZnodeStat.from_wire(resp.stat)
        return created

    async def ensure_path(self, path: str, acl: list[ACL] | None = None) -> bool:
        """Create ``path`` and any missing parent, ignoring the ones that exist (under a
        chroot, ``ensure_path("/")`` creates the chroot itself)."""
        _check_path(path)
        sp = self._server_path(path)
        if sp == "/":
            return True
        if await self.exists(path) is not None:
            return True
        acl = list(acl) if acl else self.default_acl
        cur = ""
        for part in sp.strip("/").split("/"):
            cur += "/" + part
            try:
                await self._call(Op.CREATE2, CreateRequest(cur, b"", acl, 0), Create2Response,
                                 path=path)
            except NodeExistsError:
                pass
        return True

    # ------------------------------------------------------------------ reads
    async def get(self, path: str, watch=None, *, null: Any = b"") -> tuple[Any, ZnodeStat]:
        """(data, stat). ZooKeeper tells null data (a node created with none, as zkCli's
        ``create /x`` makes) from empty data; ``get`` returns ``null`` for it: b"" by
        default, ``null=None`` to see the difference (kazoo returns None)."""
        sp = self._p(path)
        resp = await self._call(Op.GET_DATA, PathWatchRequest(sp, watch is not None),
                                GetDataResponse, path=path, **self._watch_args(watch, _DATA, path))
        data = null if resp.data is None else resp.data
        return data, ZnodeStat.from_wire(resp.stat)

    async def exists(self, path: str, watch=None) -> ZnodeStat | None:
        sp = self._p(path)
        try:
            resp = await self._call(Op.EXISTS, PathWatchRequest(sp, watch is not None),
                                    StatResponse, path=path,
                                    **self._watch_args(watch, _DATA, path))
        except NoNodeError:
            return None
        return ZnodeStat.from_wire(resp.stat)

    async def get_children(self, path: str, watch=None, include_data: bool = False) -> Any:
        sp = self._p(path)
        wargs = self._watch_args(watch, _CHILD, path)
        if include_data:
            resp = await self._call(Op.GET_CHILDREN2, PathWatchRequest(sp, watch is not None),
                                    GetChildren2Response, path=path, **wargs)
            return list(resp.children or ()), ZnodeStat.from_wire(resp.stat)
        resp = await self._call(Op.GET_CHILDREN, PathWatchRequest(sp, watch is not None),
                                GetChildrenResponse, path=path, **wargs)
        return list(resp.children or ())

    async def get_acls(self, path: str) -> tuple[list[ACL], ZnodeStat]:
        resp = await self._call(Op.GET_ACL, PathRequest(self._p(path)), GetACLResponse,
                                path=path)
        return list(resp.acl or ()), ZnodeStat.from_wire(resp.stat)

    async def get_all_children_number(self, path: str = "/") -> int:
        resp = await self._call(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(self._p(path)),
                                GetAllChildrenNumberResponse, path=path)
        return resp.totalNumber

    async def get_ephemerals(self, prefix: str = "/") -> list[str]:
        """This session's ephemeral nodes whose path starts with ``prefix``."""
        sp = self._server_path(prefix) if prefix.startswith("/") else prefix
        resp = await self._call(Op.GET_EPHEMERALS, GetEphemeralsRequest(sp),
                                GetEphemeralsResponse, path=prefix)
        root = self.chroot
        return [self._client_path(p) for p in resp.ephemerals or ()
                if not root or p == root or p.startswith(root + "/")]

    async def whoami(self) -> list[tuple[str, str]]:
        """The identities this session has: [(scheme, user)]."""
        resp = await self._call(Op.WHO_AM_I, Empty(), WhoAmIResponse)
        return [(c.authScheme, c.user) for c in resp.clientInfo or ()]

    async def sync(self, path: str) -> str:
        """Wait until the server we are on has every write committed before now."""
        resp = await self._call(Op.SYNC, PathRequest(self._p(path)), PathResponse, path=path)
        return self._client_path(resp.path)

    async def multi_read(self, ops: Iterable[tuple[str, str]]) -> list[Any]:
        """Reads in one request: ops are ("get", path) or ("get_children", path); each
        result is (data, stat), a list of children, or the exception of that read."""
        req = MultiRequest()
        for kind, p in ops:
            if kind in ("get", "get_data"):
                req.ops.append((Op.GET_DATA, PathWatchRequest(self._p(p), False)))
            elif kind in ("get_children", "children"):
                req.ops.append((Op.GET_CHILDREN, PathWatchRequest(self._p(p), False)))
            else:
                raise ValueError(f"multi_read op must be 'get' or 'get_children': {kind!r}")
        resp: MultiResponse = await self._call(Op.MULTI_READ, req, MultiResponse)
        out: list[Any] = []
        for op, err, body in resp.results:
            if op == Op.ERROR or err:
                out.append(error_for(err or getattr(body, "err", Err.SYSTEMERROR)))
            elif op == Op.GET_DATA:
                out.append((body.data or b"", ZnodeStat.from_wire(body.stat)))
            else:
                out.append(list(body.children or ()))
        return out

    # ----------------------------------------------------------------- writes
    async def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        if not isinstance(value, bytes | bytearray):
            raise TypeError("value must be bytes")
        resp = await self._call(Op.SET_DATA, SetDataRequest(self._p(path), bytes(value), version),
                                StatResponse, path=path)
        return ZnodeStat.from_wire(resp.stat)

    set_data = set

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        if recursive:
            await self._delete_recursive(path)
            return True
        await self._call(Op.DELETE, DeleteRequest(self._p(path), version), None, path=path)
        return True

    async def _delete_recursive(self, path: str) -> None:
        try:
            children = await self.get_children(path)
        except NoNodeError:
            return
        for child in children:
            await self._delete_recursive(path.rstrip("/") + "/" + child)
        if path == "/":
            return
        with contextlib.suppress(NoNodeError):
            await self._call(Op.DELETE, DeleteRequest(self._p(path), -1), None, path=path)

    async def set_acls(self, path: str, acls: list[ACL], version: int = -1) -> ZnodeStat:
        resp = await self._call(Op.SET_ACL, SetACLRequest(self._p(path), list(acls), version),
                                StatResponse, path=path)
        return ZnodeStat.from_wire(resp.stat)

    async def add_auth(self, scheme: str, credential: str | bytes) -> None:
        """Add an identity to the session (e.g. ``add_auth("digest", "user:pw")``);
        sent again on every reconnect. AuthFailedError when the server refuses it."""
        cred = credential.encode() if isinstance(credential, str) else bytes(credential)
        conn = await self._ready()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._auth_waiters.append(fut)
        conn.write(encode_request(XID_AUTH, Op.AUTH, AuthPacket(0, scheme, cred)))
        try:
            await asyncio.wait_for(fut, self._timeout)
        except TimeoutError:
            raise ConnectionLoss("no reply to add_auth") from None
        if (scheme, cred) not in self._auth:
            self._auth.append((scheme, cred))

    async def reconfig(self, joining: str | None, leaving: str | None,
                       new_members: str | None, from_config: int = -1) -> tuple[bytes, ZnodeStat]:
        """Change the ensemble's membership; the new config and its stat."""
        resp = await self._call(Op.RECONFIG, ReconfigRequest(
            joining, leaving, new_members, from_config), GetDataResponse)
        return resp.data or b"", ZnodeStat.from_wire(resp.stat)

    def transaction(self) -> Transaction:
        """Writes applied all or none: ``t = zk.transaction(); t.create(..);
        t.check(..); results = await t.commit()`` (or ``async with``)."""
        return Transaction(self)

    async def _multi(self, ops: list[tuple[int, Any]], kinds: list[int]) -> list[Any]:
        resp: MultiResponse = await self._call(Op.MULTI, MultiRequest(ops), MultiResponse)
        results = resp.results
        if any(op == Op.ERROR or err for op, err, _ in results):
            out: list[Any] = []
            for op, err, body in results:
                code = err if err else (getattr(body, "err", 0) if op == Op.ERROR else 0)
                out.append(RolledBackError("rolled back") if code == 0 else error_for(code))
            return out
        out = []
        for op, _err, body in results:
            if op in (Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER,
                      Op.CREATE_IF_NOT_EXISTS):
                out.append(self._client_path(body.path))
            elif op == Op.SET_DATA:
                out.append(ZnodeStat.from_wire(body.stat))
            else:
                out.append(True)
        return out

    # ------------------------------------------- ClickHouse Keeper's extensions
    # Answered by ClickHouse Keeper and by zabby with zabby.keeperExtensions=true;
    # ZooKeeper answers them UNIMPLEMENTED and closes the connection.
    async def create_if_not_exists(self, path: str, value: bytes = b"",
                                   acl: list[ACL] | None = None,
                                   ephemeral: bool = False) -> str:
        """Create the node unless it exists (then nothing changes); its path either way."""
        if not isinstance(value, bytes | bytearray):
            raise TypeError("value must be bytes")
        acl = list(acl) if acl else self.default_acl
        body = CreateRequest(self._p(path), bytes(value), acl, 1 if ephemeral else 0)
        resp = await self._call(_keeper.CREATE_IF_NOT_EXISTS, body, PathResponse, path=path)
        return self._client_path(resp.path)

    async def remove_recursive(self, path: str, limit: int = 0xFFFFFFFF) -> bool:
        """Delete the node and its whole subtree in one atomic write (nothing if the
        node does not exist); NotEmptyError when the subtree holds more than ``limit``
        nodes."""
        await self._call(_keeper.REMOVE_RECURSIVE,
                         _keeper.RemoveRecursiveRequest(self._p(path), limit), None, path=path)
        return True

    async def check_not_exists(self, path: str, version: int = -1) -> bool:
        """True when the node does not exist (or not at ``version``); NodeExistsError
        otherwise."""
        await self._call(_keeper.CHECK_NOT_EXISTS, CheckVersionRequest(self._p(path), version),
                         None, path=path)
        return True

    async def filtered_list(self, path: str, list_type: str = "all", watch=None,
                            include_data: bool = False) -> Any:
        """The children that are ``"ephemeral"`` (or ``"persistent"``, or ``"all"``);
        with ``include_data``, (children, the node's stat)."""
        kinds = {"all": _keeper.LIST_ALL, "persistent": _keeper.LIST_PERSISTENT_ONLY,
                 "ephemeral": _keeper.LIST_EPHEMERAL_ONLY}
        if list_type not in kinds:
            raise ValueError(f"list_type must be one of {sorted(kinds)}: {list_type!r}")
        body = _keeper.FilteredListRequest(self._p(path), watch is not None, kinds[list_type])
        resp = await self._call(_keeper.FILTERED_LIST, body, GetChildren2Response, path=path,
                                **self._watch_args(watch, _CHILD, path))
        children = list(resp.children or ())
        if include_data:
            return children, ZnodeStat.from_wire(resp.stat)
        return children

    async def list_recursive(self, path: str, limit: int = 0xFFFFFFFF) -> list[str]:
        """Every descendant's path, breadth first (at most ``limit`` of them)."""
        resp = await self._call(_keeper.LIST_RECURSIVE,
                                _keeper.ListRecursiveRequest(self._p(path), limit),
                                _keeper.ListRecursiveResponse, path=path)
        return [self._client_path(p) for p in resp.children or ()]

    # ---------------------------------------------------------- watches (3.6+)
    def add_watch(self, path: str, watch=None, mode: str | int = "persistent") -> AddWatch:
        """A persistent watch (``mode="persistent"``: the node's events) or a recursive
        one (``"persistent_recursive"``: the node's and every descendant's created,
        deleted and changed events). It stays until removed.

        ``await zk.add_watch(path, callback)`` registers ``callback``;
        ``async for event in zk.add_watch(path, mode=...)`` iterates the events
        (``await w.remove()`` ends it)."""
        _check_path(path)
        if isinstance(mode, str):
            m = {"persistent": AddWatchMode.PERSISTENT,
                 "persistent_recursive": AddWatchMode.PERSISTENT_RECURSIVE,
                 "recursive": AddWatchMode.PERSISTENT_RECURSIVE}.get(mode.lower())
            if m is None:
                raise ValueError(f"unknown watch mode {mode!r}")
        else:
            m = AddWatchMode(mode)
        return AddWatch(self, path, watch, m)

    async def _add_watch_request(self, path: str, watcher, mode: int) -> None:
        kind = _RECURSIVE if mode == AddWatchMode.PERSISTENT_RECURSIVE else _PERSISTENT
        await self._call(Op.ADD_WATCH, AddWatchRequest(self._p(path), int(mode)), None,
                         path=path, watch=watcher, kind=kind, wpath=path)

    async def remove_watches(self, path: str, watch=None, watcher_type: str = "any",
                             local: bool = False) -> bool:
        """Remove watches on ``path``: ``watch`` alone, or all of this session's of
        ``watcher_type`` ("data", "children", "any"). The removed watchers get a
        *_WATCH_REMOVED event. NoWatcherError when there was none."""
        wire_type, kinds = _WATCHER_TYPES[watcher_type]
        _check_path(path)
        found: list[tuple[str, Any]] = []
        for k in kinds:
            for w in self._watches[k].get(path, ()):
                if watch is None or w == watch:
                    found.append((k, w))
        if watch is not None and not found:
            raise NoWatcherError(f"no such watcher on {path}", path=path)
        others_left = watch is not None and any(
            w != watch for k in kinds for w in self._watches[k].get(path, ()))
        if not local and not others_left:
            try:
                await self._call(Op.REMOVE_WATCHES, WatchTypeRequest(self._p(path), wire_type),
                                 None, path=path)
            except NoWatcherError:
                if not found:
                    raise
        elif watch is None and not found:
            raise NoWatcherError(f"no watcher on {path}", path=path)
        removed_events = {_DATA: EventType.DATA_WATCH_REMOVED, _EXIST: EventType.DATA_WATCH_REMOVED,
                          _CHILD: EventType.CHILD_WATCH_REMOVED,
                          _PERSISTENT: EventType.PERSISTENT_WATCH_REMOVED,
                          _RECURSIVE: EventType.PERSISTENT_WATCH_REMOVED}
        for k, w in found:
            lst = self._watches[k].get(path)
            if lst and w in lst:
                lst.remove(w)
                if not lst:
                    del self._watches[k][path]
            _call_watcher(w, WatchedEvent(removed_events[k], KeeperState.CONNECTED, path))
        return True

    async def check_watches(self, path: str, watcher_type: str = "any") -> bool:
        """Whether the server holds a watch of ``watcher_type`` of ours on ``path``."""
        wire_type, _ = _WATCHER_TYPES[watcher_type]
        try:
            await self._call(Op.CHECK_WATCHES, WatchTypeRequest(self._p(path), wire_type), None,
                             path=path)
        except NoWatcherError:
            return False
        return True

    def watched_paths(self) -> dict[str, list[str]]:
        """The paths this client holds watches on, by kind (what it re-registers)."""
        return {k: sorted(v) for k, v in self._watches.items() if v}

    # ------------------------------------------------------- four-letter words
    async def command(self, cmd: bytes | str = b"ruok") -> str:
        """A four-letter word sent to the server we are connected to; its answer."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        if len(cmd) != 4:
            raise ValueError("a four-letter word has four letters")
        host = self.current_host
        if host is None:
            raise ConnectionLoss("not connected")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*host), self._timeout)
        try:
            writer.write(cmd)
            data = await asyncio.wait_for(reader.read(), self._timeout)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return data.decode("utf-8", "replace")

    async def server_version(self, retries: int = 3) -> tuple[int, ...]:
        """The version of the server we are connected to, e.g. (3, 8, 4)."""
        out = await self.command(b"envi")
        for line in out.splitlines():
            if line.startswith("zookeeper.version="):
                ver = line.split("=", 1)[1].split("-", 1)[0].split(",", 1)[0]
                parts = []
                for piece in ver.split("."):
                    digits = "".join(ch for ch in piece if ch.isdigit())
                    if not digits:
                        break
                    parts.append(int(digits))
                return tuple(parts)
        raise ZookeeperError("the server did not report its version")


class StateStream:
    """Connection states as an async iterator; registered when made, so no change
    between making it and iterating it is missed. ``close()`` stops it."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._q: asyncio.Queue[ConnectionState | None] = asyncio.Queue()
        self._ended = False
        client._state_streams.append(self._q)

    def __aiter__(self) -> StateStream:
        return self

    async def __anext__(self) -> ConnectionState:
        if self._ended:
            raise StopAsyncIteration
        s = await self._q.get()
        if s is None:
            self.close()
            raise StopAsyncIteration
        return s

    async def next(self, timeout: float | None = None) -> ConnectionState:
        """The next state; TimeoutError after ``timeout`` seconds."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        self._ended = True
        with contextlib.suppress(ValueError):
            self._client._state_streams.remove(self._q)

    async def aclose(self) -> None:
        self.close()


class AddWatch:
    """What ``Client.add_watch`` returns: awaitable (registers the watch) and an async
    iterator of its events (registers on first use)."""

    def __init__(self, client: Client, path: str, watch, mode: int) -> None:
        self.client, self.path, self.mode = client, path, mode
        self.stream = WatchStream() if watch is None else None
        self.watcher = watch if watch is not None else self.stream
        self.registered = False
        self.removed = False

    async def _register(self) -> AddWatch:
        if not self.registered and not self.removed:
            await self.client._add_watch_request(self.path, self.watcher, self.mode)
            self.registered = True
        return self

    def __await__(self):
        return self._register().__await__()

    def __aiter__(self) -> AddWatch:
        if self.stream is None:
            raise TypeError("add_watch(path, callback) has no events to iterate")
        return self

    async def __anext__(self) -> WatchedEvent:
        await self._register()
        assert self.stream is not None
        return await self.stream.__anext__()

    async def next(self, timeout: float | None = None) -> WatchedEvent:
        await self._register()
        assert self.stream is not None
        return await self.stream.next(timeout)

    async def remove(self) -> None:
        """Remove the watch (the iteration ends)."""
        if self.registered:
            with contextlib.suppress(NoWatcherError):
                await self.client.remove_watches(self.path, self.watcher)
            self.registered = False
        self.removed = True
        if self.stream is not None:
            self.stream._finish(None)

    aclose = remove

    async def __aenter__(self) -> AddWatch:
        return await self._register()

    async def __aexit__(self, *exc: object) -> None:
        await self.remove()


class Transaction:
    """kazoo's TransactionRequest: queue writes, ``await commit()`` sends one multi."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.operations: list[tuple[int, Any]] = []
        self.committed = False

    def create(self, path: str, value: bytes = b"", acl: list[ACL] | None = None,
               ephemeral: bool = False, sequence: bool = False, container: bool = False,
               ttl: int = 0) -> None:
        flags = _mode_flags(ephemeral, sequence, container, ttl)
        op = _create_op(flags)
        acl = list(acl) if acl else self.client.default_acl
        sp = self.client._p(path)
        if op == Op.CREATE_TTL:
            self.operations.append((op, CreateTTLRequest(sp, bytes(value), acl, flags, int(ttl))))
        else:
            self.operations.append((Op.CREATE if op == Op.CREATE2 else op,
                                    CreateRequest(sp, bytes(value), acl, flags)))

    def delete(self, path: str, version: int = -1) -> None:
        self.operations.append((Op.DELETE, DeleteRequest(self.client._p(path), version)))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        self.operations.append((Op.SET_DATA, SetDataRequest(self.client._p(path), bytes(value),
                                                            version)))

    def check(self, path: str, version: int) -> None:
        self.operations.append((Op.CHECK, CheckVersionRequest(self.client._p(path), version)))

    # ClickHouse Keeper's multi ops (a server with zabby.keeperExtensions, or Keeper)
    def check_not_exists(self, path: str, version: int = -1) -> None:
        """The transaction fails (NodeExistsError) if the node exists."""
        self.operations.append((_keeper.CHECK_NOT_EXISTS,
                                CheckVersionRequest(self.client._p(path), version)))

    def create_if_not_exists(self, path: str, value: bytes = b"", acl: list[ACL] | None = None,
                             ephemeral: bool = False) -> None:
        """Creates the node unless it exists; its result is the path either way."""
        acl = list(acl) if acl else self.client.default_acl
        self.operations.append((_keeper.CREATE_IF_NOT_EXISTS,
                                CreateRequest(self.client._p(path), bytes(value), acl,
                                              1 if ephemeral else 0)))

    def remove_recursive(self, path: str, limit: int = 0xFFFFFFFF) -> None:
        """Deletes the node and its subtree (nothing if it does not exist)."""
        self.operations.append((_keeper.REMOVE_RECURSIVE,
                                _keeper.RemoveRecursiveRequest(self.client._p(path), limit)))

    async def commit(self) -> list[Any]:
        """Apply every operation or none. Results in order: a created path, True for
        delete and check, a ZnodeStat for set_data; when the transaction failed, an
        exception instance for each (RolledBackError for the ones that would have
        succeeded)."""
        if self.committed:
            raise ValueError("transaction already committed")
        self.committed = True
        if not self.operations:
            return []
        return await self.client._multi(self.operations, [op for op, _ in self.operations])

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            await self.commit()
