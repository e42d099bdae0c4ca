"""DataWatch and ChildrenWatch (kazoo's): call a function with every new state.

``DataWatch(client, path, func)`` calls ``func(data, stat)`` (or ``func(data, stat,
event)`` if it takes three arguments) now and after every change of the node —
``(None, None)`` while it does not exist. ``ChildrenWatch(client, path, func)`` calls
``func(children)`` (or ``func(children, event)`` with ``send_event=True``). A function
returning False stops the watch. Functions may be sync or async; calls never overlap
and come in the order of the changes.

Guarantee: the function always ends up seeing the latest state; intermediate
states between two reads may be skipped (a one-shot watch is re-armed on each read,
as in kazoo). Connection loss: the client keeps the watches across reconnects to the
same session; after a reconnect the node is read again anyway, so nothing is missed.
Session expiry: the watch is re-armed on the new session and the function called with
the current state. ChildrenWatch of a node that is deleted stops (kazoo's behaviour).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ._util import RETRYABLE, NoNodeError, SessionExpiredError, StateWatcher, call

__all__ = ["ChildrenWatch", "DataWatch"]


def _arity(func: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 3
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


class _Watch:
    def __init__(self, client: Any, path: str, func: Callable[..., Any] | None) -> None:
        self.client = client
        self.path = path
        self._func: Callable[..., Any] | None = None
        self._stopped = False
        self._kick = asyncio.Event()
        self._event: Any = None
        self._task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()  # set after the first call of func
        self._states = StateWatcher(client, self._on_state)
        if func is not None:
            self(func)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Usable as a decorator: ``@zk.DataWatch("/path")``."""
        self._func = func
        self._states.add()
        self._task = asyncio.ensure_future(self._run())
        return func

    def _on_state(self, state: str) -> None:
        if state == "CONNECTED":  # reconnected or a new session: read again
            self._kick.set()

    def _fire(self, event: Any) -> None:
        self._event = event
        self._kick.set()

    async def _read(self) -> tuple[Any, ...] | None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def _run(self) -> None:
        try:
            while not self._stopped:
                self._kick.clear()
                event, self._event = self._event, None
                try:
                    args = await self._read()
                except (*RETRYABLE, SessionExpiredError):
                    await asyncio.sleep(0.1)
                    self._kick.set()
                    continue
                if args is None:
                    break
                keep = await self._deliver(args, event)
                self.started.set()
                if keep is False:
                    break
                await self._kick.wait()
        finally:
            self._stopped = True
            self.started.set()
            self._states.remove()

    async def _deliver(self, args: tuple[Any, ...], event: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    async def wait_started(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.started.wait(), timeout)

    async def stop(self) -> None:
        self._stopped = True
        self._kick.set()
        if self._task is not None and self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)


class DataWatch(_Watch):
    def __init__(self, client: Any, path: str, func: Callable[..., Any] | None = None,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(client, path, func)

    async def _read(self) -> tuple[Any, ...] | None:
        try:
            data, stat = await self.client.get(self.path, watch=self._fire)
        except NoNodeError:
            stat = await self.client.exists(self.path, watch=self._fire)
            if stat is not None:
                self._kick.set()  # created in between: read it next round
            return (None, None)
        return (data, stat)

    async def _deliver(self, args: tuple[Any, ...], event: Any) -> Any:
        assert self._func is not None
        if _arity(self._func) >= 3:
            return await call(self._func, args[0], args[1], event)
        return await call(self._func, args[0], args[1])


class ChildrenWatch(_Watch):
    def __init__(self, client: Any, path: str, func: Callable[..., Any] | None = None,
                 allow_session_lost: bool = True, send_event: bool = False) -> None:
        self.send_event = send_event
        self.allow_session_lost = allow_session_lost
        super().__init__(client, path, func)

    async def _read(self) -> tuple[Any, ...] | None:
        try:
            children = await self.client.get_children(self.path, watch=self._fire)
        except NoNodeError:
            return None  # the node is gone: stop, as kazoo does
        return (children,)

    def _on_state(self, state: str) -> None:
        if state == "LOST" and not self.allow_session_lost:
            self._stopped = True
        super()._on_state(state)

    async def _deliver(self, args: tuple[Any, ...], event: Any) -> Any:
        assert self._func is not None
        if self.send_event:
            return await call(self._func, args[0], event)
        return await call(self._func, args[0])
