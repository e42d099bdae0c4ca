"""Config: a JSON document in one znode, read and watched, updated by compare-and-set.

``cfg = zk.Config(path, default={})``; ``await cfg.start()`` reads it and keeps
``cfg.value`` (a dict) and ``cfg.version`` current through a persistent watch;
listeners get ``(value, version)`` after every change. ``await cfg.update(fn)``
applies ``fn(current) -> new`` with a CAS on the version, retrying on a concurrent
change, so no update is lost; ``await cfg.set(value, version=...)`` writes if the
version still matches (BadVersionError otherwise).

Guarantee: ``value`` converges to the latest committed document; every ``update``
is applied exactly once on top of the document it read. Connection loss: ``value``
may be stale while SUSPENDED (``cfg.stale`` is True) and is re-read on reconnect.
Session expiry: the watch is re-added on the new session and the value re-read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ._util import (
    RETRYABLE,
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
    StateWatcher,
    call,
    new_id,
    retrying,
)

__all__ = ["Config"]

# The key under which an update's id is kept in the document (hidden from ``value``),
# so an update retried after a lost reply recognises its own write.
_TAG = "__zabby_update__"


class Config:
    def __init__(self, client: Any, path: str, default: dict[str, Any] | None = None) -> None:
        self.client = client
        self.path = path
        self.default = dict(default or {})
        self.value: dict[str, Any] = dict(self.default)
        self.version = -1
        self.stale = True
        self._listeners: list[Callable[[dict[str, Any], int], Any]] = []
        self._states = StateWatcher(client, self._on_state)
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watching = False
        self._notified: int | None = None
        self._changed = asyncio.Condition()

    def listen(self, fn: Callable[[dict[str, Any], int], Any]) -> None:
        self._listeners.append(fn)

    def _decode(self, raw: bytes | None) -> tuple[dict[str, Any], str | None]:
        if not raw:
            return dict(self.default), None
        doc = json.loads(raw.decode("utf-8"))
        return doc, doc.pop(_TAG, None)

    async def _read(self) -> tuple[dict[str, Any], int, str | None]:
        async def attempt() -> tuple[dict[str, Any], int, str | None]:
            try:
                raw, stat = await self.client.get(self.path)
            except NoNodeError:
                return dict(self.default), -1, None
            doc, tag = self._decode(raw)
            return doc, stat.version, tag
        return await retrying(attempt)

    async def read(self) -> tuple[dict[str, Any], int]:
        """The document and its version, from the server (-1: it does not exist)."""
        doc, version, _ = await self._read()
        return doc, version

    async def set(self, value: dict[str, Any], version: int = -1,
                  _tag: str | None = None) -> int:
        """Write ``value`` if the node is still at ``version`` (-1 with no node:
        create it). Returns the new version."""
        doc = dict(value)
        if _tag is not None:
            doc[_TAG] = _tag
        body = json.dumps(doc, sort_keys=True).encode("utf-8")
        if version == -1:
            try:
                await self.client.create(self.path, body, makepath=True)
                return 0
            except NodeExistsError:
                raise BadVersionError(path=self.path) from None
        stat = await self.client.set(self.path, body, version=version)
        return stat.version

    async def update(self, fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        """Apply ``fn`` (sync or async; it gets a copy, returns the new document)."""
        tag = new_id()

        async def attempt() -> dict[str, Any]:
            while True:
                cur, version, last = await self._read()
                if last == tag:
                    return cur  # our write landed before its reply was lost
                new = dict(await call(fn, dict(cur)))
                try:
                    written = await self.set(new, version, _tag=tag)
                except BadVersionError:
                    continue
                if self._task is not None:
                    # our own write: visible in ``value`` at once (the watch confirms)
                    await self._publish(dict(new), written)
                return new
        return await retrying(attempt)

    # ------------------------------------------------------------- watching
    async def start(self) -> None:
        if self._task is None:
            self._states.add()
            self._task = asyncio.ensure_future(self._run())
            await self.wait_fresh()

    async def wait_fresh(self, timeout: float | None = None) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: not self.stale), timeout)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float | None = None) -> dict[str, Any]:
        """Wait until ``predicate(value)`` holds; returns that value."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.value)),
                                   timeout)
        return self.value

    async def _publish(self, value: dict[str, Any], version: int, fresh: bool = False) -> None:
        """Take a newer (or, re-read from the server, any) version; tell the listeners
        once per version."""
        if not fresh and version <= self.version:
            return
        self.value, self.version = value, version
        if fresh:
            self.stale = False
        async with self._changed:
            self._changed.notify_all()
        if version != self._notified:
            self._notified = version
            for fn in list(self._listeners):
                await call(fn, dict(value), version)

    def _on_state(self, state: str) -> None:
        if state != "CONNECTED":
            self.stale = True
        if state == "LOST":
            self._watching = False
        self._kick.set()

    def _on_event(self, _event: Any) -> None:
        self._kick.set()

    async def _run(self) -> None:
        while True:
            self._kick.clear()
            try:
                if not self._watching:
                    await self.client.add_watch(self.path, self._on_event, mode="persistent")
                    self._watching = True
                value, version = await self.read()
            except (*RETRYABLE, SessionExpiredError):
                await asyncio.sleep(0.1)
                continue
            await self._publish(value, version, fresh=True)
            await self._kick.wait()

    async def close(self) -> None:
        self._states.remove()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._watching:
            self._watching = False
            try:
                await self.client.remove_watches(self.path, self._on_event)
            except Exception:
                pass

    async def __aenter__(self) -> Config:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
