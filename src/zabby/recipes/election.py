"""Election (kazoo's) and LeaderLatch: leader election on Lock's contender nodes.

Both queue on a :class:`~zabby.recipes.Lock` at the election path, so a zabby
Election, a zabby LeaderLatch and a kazoo Election on the same path elect one leader
among all of them. The leader is the contender with the lowest sequence number; each
other contender watches only its predecessor.

Guarantee: at most one leader while sessions are alive; when the leader's session
ends (it leaves, dies or expires), the next contender becomes leader — the election
always converges to one leader among the live contenders.

On connection loss (SUSPENDED) the leader is told it may no longer be leader
(``on_state("SUSPENDED")``; LeaderLatch: ``maybe_lost``) and should pause leader work;
``CONNECTED`` confirms it kept leadership. On session expiry it has lost leadership:
Election cancels the leader's function task (``run`` then returns) and LeaderLatch
drops ``has_leadership`` and queues again with a new node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..client.core import wait_cancelled
from ._util import LockTimeout, call
from .lock import Lock

__all__ = ["Election", "LeaderLatch"]


class Election:
    """``await zk.Election(path, ident).run(func, *args)``: run func while leader."""

    def __init__(self, client: Any, path: str, identifier: str | None = None, *,
                 on_state: Callable[[str], Any] | None = None) -> None:
        self.client = client
        self.path = path
        self.lock = Lock(client, path, identifier, on_state=self._state)
        self._user_on_state = on_state
        self._leader_task: asyncio.Task[Any] | None = None

    async def _state(self, state: str) -> None:
        await call(self._user_on_state, state)
        if state == "LOST" and self._leader_task is not None:
            self._leader_task.cancel()

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Wait to be elected, run ``func`` (sync or async) as leader, then step down.

        If leadership is lost (session expiry) while an async ``func`` runs, it is
        cancelled and ``run`` returns None.
        """
        if not await self.lock.acquire():
            return None
        try:
            self._leader_task = asyncio.ensure_future(_call_kw(func, args, kwargs))
            try:
                return await self._leader_task
            except asyncio.CancelledError:
                if self.lock.lost.is_set():
                    return None
                raise
        finally:
            self._leader_task = None
            await self.lock.release()

    def cancel(self) -> None:
        """Stop waiting to be elected (a pending ``run`` raises CancelledError)."""
        self.lock.cancel()

    async def contenders(self) -> list[str]:
        """Identifiers of every contender; the first is the leader."""
        return await self.lock.contenders()


async def _call_kw(func: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
    res = func(*args, **kwargs)
    if asyncio.iscoroutine(res) or isinstance(res, asyncio.Future):
        res = await res
    return res


class LeaderLatch:
    """Join an election and stay in it; ``has_leadership`` tells whether we lead.

    ``await latch.start()`` queues; ``await latch.wait(timeout)`` waits to lead;
    ``await latch.close()`` leaves (the next contender leads). ``listeners`` (sync or
    async callables) get True when we become leader and False when we stop.
    """

    def __init__(self, client: Any, path: str, identifier: str | None = None) -> None:
        self.client = client
        self.path = path
        self.identifier = identifier
        self.has_leadership = False
        self.maybe_lost = False
        self.listeners: list[Callable[[bool], Any]] = []
        self._leading = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock: Lock | None = None
        self._closed = False

    def add_listener(self, fn: Callable[[bool], Any]) -> None:
        self.listeners.append(fn)

    async def _set(self, leading: bool) -> None:
        if leading == self.has_leadership:
            return
        self.has_leadership = leading
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        for fn in list(self.listeners):
            await call(fn, leading)

    async def _on_state(self, state: str) -> None:
        self.maybe_lost = state == "SUSPENDED"

    async def _loop(self) -> None:
        while not self._closed:
            lock = self._lock = Lock(self.client, self.path, self.identifier,
                                     on_state=self._on_state)
            try:
                await lock.acquire()
            except LockTimeout:  # pragma: no cover - no timeout given
                continue
            if self._closed:
                break
            await self._set(True)
            await lock.lost.wait()  # held until our session expires (or close())
            await self._set(False)

    async def start(self) -> None:
        if self._task is None:
            self._closed = False
            self._task = asyncio.ensure_future(self._loop())

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until we lead; False after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._leading.wait(), timeout)
        except TimeoutError:
            return False
        return True

    await_leadership = wait

    async def close(self) -> None:
        self._closed = True
        await self._set(False)  # we stop leading before anyone else can start
        cancelled = False
        if self._task is not None:
            self._task.cancel()
            cancelled = await wait_cancelled(self._task)
            self._task = None
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.cancel()
            await lock.release()
            await lock._cleanup()
        await self._set(False)
        if cancelled:  # our caller's cancellation, kept for after the cleanup
            raise asyncio.CancelledError

    async def __aenter__(self) -> LeaderLatch:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
