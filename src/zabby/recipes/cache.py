"""TreeCache: a local copy of a subtree, kept current by one persistent recursive watch.

``await cache.start()`` adds a single persistent recursive watch on the root (ZooKeeper
3.6+ ``addWatch``; no per-node watches to re-arm, so no missed-change windows between
fire and re-arm), then reads the subtree. Every CREATED / DELETED / CHANGED event
below the root updates the copy and is passed to the listeners as a TreeEvent
(NODE_ADDED / NODE_REMOVED / NODE_UPDATED); INITIALIZED follows the first full read.
``get_data(path)`` and ``get_children(path)`` answer from memory.

Guarantee: the copy converges to the server's subtree; events for one node reach the
listeners in the order the server applied them. Connection loss: the listeners get
CONNECTION_SUSPENDED; the copy may be stale until CONNECTION_RECONNECTED, when the
subtree is read again and the differences are reported as ordinary events (so nothing
changed during the disconnection is missed). Session expiry: CONNECTION_LOST, then the
watch is added again on the new session and the subtree re-read the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from ._util import RETRYABLE, NoNodeError, SessionExpiredError, StateWatcher, call

__all__ = ["NodeData", "TreeCache", "TreeEvent"]


class NodeData(NamedTuple):
    data: bytes
    stat: Any


class TreeEvent(NamedTuple):
    NODE_ADDED = 0
    NODE_UPDATED = 1
    NODE_REMOVED = 2
    CONNECTION_SUSPENDED = 3
    CONNECTION_RECONNECTED = 4
    CONNECTION_LOST = 5
    INITIALIZED = 6

    event_type: int
    path: str | None
    event_data: NodeData | None


class TreeCache:
    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path.rstrip("/") or "/"
        self._nodes: dict[str, NodeData] = {}
        self._children: dict[str, set[str]] = {}
        self._listeners: list[Callable[[TreeEvent], Any]] = []
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._watch: Any = None
        self._states = StateWatcher(client, self._on_state)
        self.initialized = asyncio.Event()
        self._closed = False

    # ------------------------------------------------------------- reading
    def get_data(self, path: str) -> NodeData | None:
        return self._nodes.get(path.rstrip("/") or "/")

    def get_children(self, path: str) -> frozenset[str] | None:
        kids = self._children.get(path.rstrip("/") or "/")
        return None if kids is None else frozenset(kids)

    def listen(self, fn: Callable[[TreeEvent], Any]) -> None:
        self._listeners.append(fn)

    listen_fault = listen

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._task is not None:
            return
        self._states.add()
        self._task = asyncio.ensure_future(self._run())

    async def wait_initialized(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.initialized.wait(), timeout)

    async def close(self) -> None:
        self._closed = True
        self._states.remove()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._unwatch()

    async def __aenter__(self) -> TreeCache:
        await self.start()
        await self.wait_initialized()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ internals
    def _on_state(self, state: str) -> None:
        self._events.put_nowait(("state", state))

    def _on_event(self, event: Any) -> None:
        self._events.put_nowait(("watch", event))

    async def _unwatch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            try:
                await self.client.remove_watches(self.path, self._on_event,
                                                 watcher_type="any")
            except Exception:  # best effort: it dies with the session anyway
                pass

    async def _emit(self, kind: int, path: str | None, data: NodeData | None) -> None:
        ev = TreeEvent(kind, path, data)
        for fn in list(self._listeners):
            try:
                await call(fn, ev)
            except Exception:  # a listener's bug must not stop the cache
                pass

    async def _resync(self) -> None:
        """Add the watch (if needed), read the whole subtree, report the differences."""
        while True:
            try:
                if self._watch is None:
                    await self.client.add_watch(self.path, self._on_event,
                                                mode="persistent_recursive")
                    self._watch = True
                nodes: dict[str, NodeData] = {}
                children: dict[str, set[str]] = {}
                await self._walk(self.path, nodes, children)
                break
            except (*RETRYABLE, SessionExpiredError):
                self._watch = None if not self._watch else self._watch
                await asyncio.sleep(0.1)
        old = self._nodes
        self._nodes, self._children = nodes, children
        for p in sorted(old):
            if p not in nodes:
                await self._emit(TreeEvent.NODE_REMOVED, p, old[p])
        for p in sorted(nodes):
            if p not in old:
                await self._emit(TreeEvent.NODE_ADDED, p, nodes[p])
            elif old[p].stat.mzxid != nodes[p].stat.mzxid:
                await self._emit(TreeEvent.NODE_UPDATED, p, nodes[p])

    async def _walk(self, path: str, nodes: dict[str, NodeData],
                    children: dict[str, set[str]]) -> None:
        try:
            data, stat = await self.client.get(path)
            kids = await self.client.get_children(path)
        except NoNodeError:
            return
        nodes[path] = NodeData(data or b"", stat)
        children[path] = set(kids)
        for kid in kids:
            await self._walk(self._join(path, kid), nodes, children)

    @staticmethod
    def _join(parent: str, name: str) -> str:
        return f"{parent}/{name}" if parent != "/" else f"/{name}"

    def _attach(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        parent = parent or "/"
        if path != self.path and parent in self._children:
            self._children[parent].add(name)

    def _detach(self, path: str) -> None:
        for p in [p for p in self._nodes if p == path or p.startswith(path.rstrip("/") + "/")]:
            self._nodes.pop(p, None)
            self._children.pop(p, None)
        parent, _, name = path.rpartition("/")
        self._children.get(parent or "/", set()).discard(name)

    async def _apply(self, event: Any) -> None:
        kind = str(getattr(event, "type", ""))
        path = getattr(event, "path", None)
        if not path:
            return
        if "DELETED" in kind:
            gone = self._nodes.get(path)
            removed = sorted((p for p in self._nodes
                              if p == path or p.startswith(path.rstrip("/") + "/")),
                             reverse=True)
            self._detach(path)
            for p in removed:
                await self._emit(TreeEvent.NODE_REMOVED, p, gone if p == path else None)
            return
        if "CREATED" not in kind and "CHANGED" not in kind:
            return
        try:
            data, stat = await self.client.get(path)
            kids = await self.client.get_children(path)
        except NoNodeError:
            return  # deleted since: its DELETED event follows
        new = NodeData(data or b"", stat)
        old = self._nodes.get(path)
        if old is not None and old.stat.mzxid >= stat.mzxid and old.stat.czxid == stat.czxid:
            self._children[path] = set(kids)
            return
        self._nodes[path] = new
        self._children[path] = set(kids) | self._children.get(path, set())
        self._children[path] &= set(kids)
        self._attach(path)
        await self._emit(TreeEvent.NODE_ADDED if old is None or old.stat.czxid != stat.czxid
                         else TreeEvent.NODE_UPDATED, path, new)

    async def _run(self) -> None:
        await self._resync()
        self.initialized.set()
        await self._emit(TreeEvent.INITIALIZED, None, None)
        suspended = False
        while not self._closed:
            kind, item = await self._events.get()
            if kind == "state":
                if item == "SUSPENDED":
                    suspended = True
                    await self._emit(TreeEvent.CONNECTION_SUSPENDED, None, None)
                elif item == "LOST":
                    self._watch = None
                    suspended = True
                    await self._emit(TreeEvent.CONNECTION_LOST, None, None)
                elif suspended:
                    suspended = False
                    await self._emit(TreeEvent.CONNECTION_RECONNECTED, None, None)
                    await self._resync()
                continue
            try:
                await self._apply(item)
            except (*RETRYABLE, SessionExpiredError):
                pass  # the resync after reconnecting catches it up
