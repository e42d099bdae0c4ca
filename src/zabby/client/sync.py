"""`SyncClient`: the same API as `Client`, blocking, for code that is not async.

The asyncio `Client` runs on one background event-loop thread; each call hands its
coroutine to that loop and waits for the result. Watch callbacks and state listeners
run on a separate handler thread (one, so they run one at a time and in order), as
kazoo runs them on its handler thread: a callback may call the client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .core import Client, Transaction
from .exceptions import ConnectionClosedError, KazooTimeoutError
from .states import ConnectionState, WatchedEvent

__all__ = ["SyncClient", "SyncTransaction", "SyncWatch"]

log = logging.getLogger("zabby.client")

_STOP = object()


class SyncClient:
    """``zk = SyncClient("h1:2181,h2:2181/app"); zk.start(); zk.create(...); zk.stop()``
    (also a context manager). Arguments are `Client`'s."""

    def __init__(self, hosts: str = "127.0.0.1:2181", timeout: float = 10.0, **kwargs: Any) -> None:
        self._client = Client(hosts, timeout, **kwargs)
        self._timeout = float(timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._handler_thread: threading.Thread | None = None
        self._handler_q: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()

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
                return recipe_method(self, name, sync=True)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---------------------------------------------------------------- threads
    def _ensure_threads(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop_thread or not self._loop_thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                t = threading.Thread(target=run, name="zabby-client-loop", daemon=True)
                t.start()
                ready.wait(10)
                self._loop, self._loop_thread = loop, t
            if self._handler_thread is None or not self._handler_thread.is_alive():
                self._handler_q = queue.Queue()
                self._handler_thread = threading.Thread(
                    target=self._handler, args=(self._handler_q,),
                    name="zabby-client-handler", daemon=True)
                self._handler_thread.start()
            return self._loop

    @staticmethod
    def _handler(q: queue.Queue[Any]) -> None:
        while True:
            item = q.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a callback's failure is its own
                log.exception("callback %r failed", fn)

    def _run(self, coro, timeout: float | None = None) -> Any:
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()
            raise ConnectionClosedError("the client is not started")
        if threading.current_thread() is self._loop_thread:
            coro.close()
            raise RuntimeError("SyncClient called from its own loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout if timeout is not None else self._timeout * 3 + 30)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise KazooTimeoutError("no result in time") from None

    def flush_callbacks(self, timeout: float | None = 10.0) -> bool:
        """Wait until the watch callbacks and state listeners queued so far have run.

        The client queues a watch event, or a state change, for the handler thread
        before it hands over the result of any later request, so after a call returns,
        ``flush_callbacks()`` makes sure every event that came before its reply has
        been seen: a tool printing both (``zabby shell``) shows them in order. False
        when ``timeout`` ran out; on the handler thread itself (a callback) it returns
        at once."""
        h = self._handler_thread
        if h is None or not h.is_alive() or threading.current_thread() is h:
            return True
        done = threading.Event()
        self._handler_q.put((done.set, ()))
        return done.wait(timeout)

    def _wrap(self, fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
        """The loop-side stand-in of a user's callback: it queues the call for the
        handler thread, and equals any other stand-in of the same callback (so the
        client dedupes watches and finds them again for remove_watches)."""
        if fn is None:
            return None
        if not callable(fn):
            raise TypeError("watch must be callable")
        return _OnHandler(fn, self._handler_q)

    # -------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 15.0) -> None:
        self._ensure_threads()
        self._run(self._client.start(timeout), timeout + 5)

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._run(self._client.stop(), 10)

    def close(self) -> None:
        """Stop and end the background threads."""
        with contextlib.suppress(Exception):
            self.stop()
        loop, t = self._loop, self._loop_thread
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if t is not None and t is not threading.current_thread():
            t.join(5)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = self._loop_thread = None
        h = self._handler_thread
        if h is not None:
            self._handler_q.put(_STOP)
            if h is not threading.current_thread():
                h.join(5)
        self._handler_thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SyncClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- properties
    @property
    def client(self) -> Client:
        """The asyncio Client underneath (use it only on its loop: ``loop``)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def state(self) -> ConnectionState:
        return self._client.state

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        return self._client.client_id

    @property
    def chroot(self) -> str:
        return self._client.chroot

    @property
    def hosts(self) -> str:
        return self._client.hosts

    @property
    def last_zxid(self) -> int:
        return self._client.last_zxid

    @property
    def current_host(self) -> tuple[str, int] | None:
        return self._client.current_host

    @property
    def session_timeout(self) -> float:
        return self._client.session_timeout

    def add_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        """``listener(state)`` on every state change, called on the handler thread."""
        self._ensure_threads()  # first: it may make the handler queue _wrap binds
        w = self._wrap(listener)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._client.add_listener, w)

    def remove_listener(self, listener: Callable[[ConnectionState], Any]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._client.remove_listener, self._wrap(listener))

    # --------------------------------------------------------------- requests
    def create(self, path: str, value: bytes = b"", acl=None, ephemeral: bool = False,
               sequence: bool = False, makepath: bool = False, container: bool = False,
               ttl: int = 0, include_data: bool = False) -> Any:
        return self._run(self._client.create(path, value, acl, ephemeral, sequence, makepath,
                                             container, ttl, include_data))

    def ensure_path(self, path: str, acl=None) -> bool:
        return self._run(self._client.ensure_path(path, acl))

    def get(self, path: str, watch=None, *, null: Any = b"") -> tuple[Any, Any]:
        return self._run(self._client.get(path, self._wrap(watch), null=null))

    def exists(self, path: str, watch=None) -> Any:
        return self._run(self._client.exists(path, self._wrap(watch)))

    def get_children(self, path: str, watch=None, include_data: bool = False) -> Any:
        return self._run(self._client.get_children(path, self._wrap(watch), include_data))

    def get_acls(self, path: str) -> Any:
        return self._run(self._client.get_acls(path))

    def get_all_children_number(self, path: str = "/") -> int:
        return self._run(self._client.get_all_children_number(path))

    def get_ephemerals(self, prefix: str = "/") -> list[str]:
        return self._run(self._client.get_ephemerals(prefix))

    def whoami(self) -> list[tuple[str, str]]:
        return self._run(self._client.whoami())

    def sync(self, path: str) -> str:
        return self._run(self._client.sync(path))

    # ClickHouse Keeper's extension opcodes (see Client)
    def create_if_not_exists(self, path: str, value: bytes = b"", acl=None,
                             ephemeral: bool = False) -> str:
        return self._run(self._client.create_if_not_exists(path, value, acl, ephemeral))

    def remove_recursive(self, path: str, limit: int = 0xFFFFFFFF) -> bool:
        return self._run(self._client.remove_recursive(path, limit))

    def check_not_exists(self, path: str, version: int = -1) -> bool:
        return self._run(self._client.check_not_exists(path, version))

    def filtered_list(self, path: str, list_type: str = "all", watch=None,
                      include_data: bool = False) -> Any:
        return self._run(self._client.filtered_list(path, list_type, self._wrap(watch),
                                                    include_data))

    def list_recursive(self, path: str, limit: int = 0xFFFFFFFF) -> list[str]:
        return self._run(self._client.list_recursive(path, limit))

    def multi_read(self, ops) -> list[Any]:
        return self._run(self._client.multi_read(list(ops)))

    def set(self, path: str, value: bytes, version: int = -1) -> Any:
        return self._run(self._client.set(path, value, version))

    set_data = set

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        return self._run(self._client.delete(path, version, recursive))

    def set_acls(self, path: str, acls, version: int = -1) -> Any:
        return self._run(self._client.set_acls(path, acls, version))

    def add_auth(self, scheme: str, credential: str | bytes) -> None:
        return self._run(self._client.add_auth(scheme, credential))

    def reconfig(self, joining, leaving, new_members, from_config: int = -1) -> Any:
        return self._run(self._client.reconfig(joining, leaving, new_members, from_config))

    def transaction(self) -> SyncTransaction:
        return SyncTransaction(self)

    def command(self, cmd: bytes | str = b"ruok") -> str:
        return self._run(self._client.command(cmd))

    def server_version(self) -> tuple[int, ...]:
        return self._run(self._client.server_version())

    def check_watches(self, path: str, watcher_type: str = "any") -> bool:
        return self._run(self._client.check_watches(path, watcher_type))

    def remove_watches(self, path: str, watch=None, watcher_type: str = "any",
                       local: bool = False) -> bool:
        return self._run(self._client.remove_watches(path, self._wrap(watch), watcher_type,
                                                     local))

    def add_watch(self, path: str, watch=None, mode: str | int = "persistent") -> SyncWatch | None:
        """A persistent (or ``"persistent_recursive"``) watch: ``add_watch(path, fn)``
        calls ``fn(event)`` on the handler thread; ``add_watch(path)`` returns an
        iterator of events (``for ev in w``, ``w.next(timeout)``, ``w.remove()``)."""
        if watch is not None:
            self._run(self._client.add_watch(path, self._wrap(watch), mode)._register())
            return None
        sw = SyncWatch(self, path)
        self._run(self._client.add_watch(path, sw._put, mode)._register())
        return sw

    def retry(self, func: Callable[..., Any], *args: Any, max_tries: int = 20,
              **kwargs: Any) -> Any:
        """``func(*args, **kwargs)``, again after ConnectionLoss or OperationTimeoutError."""
        import random
        import time

        from .exceptions import ConnectionLoss, OperationTimeoutError

        delay = 0.05
        for attempt in range(max_tries):
            try:
                return func(*args, **kwargs)
            except (ConnectionLoss, OperationTimeoutError):
                if attempt == max_tries - 1:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def watched_paths(self) -> dict[str, list[str]]:
        return self._client.watched_paths()


class _OnHandler:
    """Calls ``fn(*args)`` on the handler thread; equal to another for the same fn."""

    __slots__ = ("fn", "q")

    def __init__(self, fn: Callable[..., Any], q: queue.Queue[Any]) -> None:
        self.fn, self.q = fn, q

    def __call__(self, *args: Any) -> None:
        self.q.put((self.fn, args))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _OnHandler) and other.fn == self.fn

    def __hash__(self) -> int:
        return hash(self.fn)

    def __repr__(self) -> str:
        return f"<on handler thread: {self.fn!r}>"


class SyncWatch:
    """Events of a persistent watch, as a blocking iterator."""

    def __init__(self, zk: SyncClient, path: str) -> None:
        self.zk, self.path = zk, path
        self._q: queue.Queue[Any] = queue.Queue()

    def _put(self, event: WatchedEvent) -> None:  # on the loop thread
        self._q.put(event)

    def next(self, timeout: float | None = None) -> WatchedEvent:
        """The next event; queue.Empty after ``timeout`` seconds."""
        item = self._q.get(timeout=timeout)
        if item is _STOP:
            self._q.put(_STOP)
            raise StopIteration
        return item

    def __iter__(self) -> Iterator[WatchedEvent]:
        while True:
            try:
                yield self.next()
            except StopIteration:
                return

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.zk._run(self.zk._client.remove_watches(self.path, self._put))
        self._q.put(_STOP)


class SyncTransaction:
    """kazoo's TransactionRequest, blocking ``commit()``; a context manager."""

    def __init__(self, zk: SyncClient) -> None:
        self.zk = zk
        self._t = Transaction(zk._client)

    def create(self, path: str, value: bytes = b"", acl=None, ephemeral: bool = False,
               sequence: bool = False, container: bool = False, ttl: int = 0) -> None:
        self._t.create(path, value, acl, ephemeral, sequence, container, ttl)

    def delete(self, path: str, version: int = -1) -> None:
        self._t.delete(path, version)

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        self._t.set_data(path, value, version)

    def check(self, path: str, version: int) -> None:
        self._t.check(path, version)

    def check_not_exists(self, path: str, version: int = -1) -> None:
        self._t.check_not_exists(path, version)

    def create_if_not_exists(self, path: str, value: bytes = b"", acl=None,
                             ephemeral: bool = False) -> None:
        self._t.create_if_not_exists(path, value, acl, ephemeral)

    def remove_recursive(self, path: str, limit: int = 0xFFFFFFFF) -> None:
        self._t.remove_recursive(path, limit)

    @property
    def operations(self) -> list[Any]:
        return self._t.operations

    def commit(self) -> list[Any]:
        return self.zk._run(self._t.commit())

    def __enter__(self) -> SyncTransaction:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            self.commit()
