"""SetPartitioner: divide a set of items among the live members of a group.

Members join a ShallowParty at ``<path>/party`` (kazoo's layout: a kazoo
SetPartitioner and this one on the same path divide the set between them). When membership has been still for
``time_boundary`` seconds, each member computes its share with ``partition_func
(identifier, members, items)`` (default: items sorted, dealt round-robin over the
sorted members) and takes a Lock ``<path>/locks/<item>`` per item; then its state
is ACQUIRED and iterating it yields its items. When membership changes, the state
becomes RELEASE: the member finishes with its items and calls ``release_set()``
(locks released, back to ALLOCATING for a new division). ``finish()`` leaves.

Guarantee: no item is held by two members at once (each item is behind a Lock),
and every item is held by some member once membership is stable. Connection loss:
the partitioner reports nothing new while SUSPENDED (its locks may be lost; the
lock objects say so through ``maybe_lost``). Session expiry: the state becomes
FAILURE (locks and membership are gone); create a new SetPartitioner.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._util import RETRYABLE, LockTimeout, SessionExpiredError, StateWatcher, call, new_id, waker
from .lock import Lock
from .party import ShallowParty

__all__ = ["PartitionState", "SetPartitioner"]


class PartitionState:
    ALLOCATING = "ALLOCATING"
    ACQUIRED = "ACQUIRED"
    RELEASE = "RELEASE"
    FAILURE = "FAILURE"


def _round_robin(identifier: str, members: list[str], items: list[Any]) -> list[Any]:
    """kazoo's division: the items in their natural order (by str only when they do
    not compare, as a mix of types), dealt over the sorted members."""
    members = sorted(members)
    if identifier not in members:
        return []
    try:
        ordered = sorted(items)
    except TypeError:
        ordered = sorted(items, key=str)
    return ordered[members.index(identifier)::len(members)]


class SetPartitioner:
    def __init__(self, client: Any, path: str, set: Iterable[Any],  # noqa: A002 - kazoo's name
                 partition_func: Callable[[str, list[str], list[Any]], list[Any]] | None = None,
                 identifier: str | None = None, time_boundary: float = 30,
                 max_reaction_time: float = 1,
                 state_change_event: Callable[[str], Any] | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.items = list(set)
        self.partition_func = partition_func or _round_robin
        self.identifier = identifier or f"{socket.getfqdn()}-{os.getpid()}-{new_id()[:8]}"
        self.time_boundary = time_boundary
        self.max_reaction_time = max_reaction_time
        self.state_change_event = state_change_event
        self.state = PartitionState.ALLOCATING
        self._party = ShallowParty(client, f"{self.path}/party", self.identifier)
        self._locks: list[Lock] = []
        self._set: list[Any] = []
        self._changed = asyncio.Event()
        self._state_ev = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._states = StateWatcher(client, self._on_client_state)

    # --------------------------------------------------------------- public
    @property
    def allocating(self) -> bool:
        return self.state == PartitionState.ALLOCATING

    @property
    def acquired(self) -> bool:
        return self.state == PartitionState.ACQUIRED

    @property
    def release(self) -> bool:
        return self.state == PartitionState.RELEASE

    @property
    def failed(self) -> bool:
        return self.state == PartitionState.FAILURE

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._set))

    async def start(self) -> None:
        if self._task is None:
            self._states.add()
            await self._party.join()
            self._task = asyncio.ensure_future(self._allocate())

    async def wait_for_acquire(self, timeout: float | None = None) -> str:
        """Wait while ALLOCATING; returns the state reached."""
        await self.start()
        async with self._state_ev:
            try:
                await asyncio.wait_for(self._state_ev.wait_for(
                    lambda: self.state != PartitionState.ALLOCATING), timeout)
            except TimeoutError:
                pass
        return self.state

    async def wait_for_state(self, state: str, timeout: float | None = None) -> bool:
        async with self._state_ev:
            try:
                await asyncio.wait_for(self._state_ev.wait_for(lambda: self.state == state),
                                       timeout)
            except TimeoutError:
                return False
        return True

    async def release_set(self) -> None:
        """Let go of our items (after RELEASE) and take part in a new division."""
        await self._release_locks()
        if self.state != PartitionState.FAILURE:
            await self._set_state(PartitionState.ALLOCATING)
            if self._task is not None:
                self._task.cancel()
            self._task = asyncio.ensure_future(self._allocate())

    async def finish(self) -> None:
        """Release everything and leave the group."""
        self._states.remove()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._release_locks()
        await self._party.leave()

    # ------------------------------------------------------------ internals
    async def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        async with self._state_ev:
            self._state_ev.notify_all()
        await call(self.state_change_event, state)

    def _on_client_state(self, state: str) -> Any:
        if state == "LOST":
            return self._fail()
        return None

    async def _fail(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._locks = []
        self._set = []
        await self._set_state(PartitionState.FAILURE)

    async def _release_locks(self) -> None:
        locks, self._locks = self._locks, []
        self._set = []
        for lock in locks:
            try:
                await lock.release()
            except Exception:  # best effort: ephemeral nodes go with the session
                pass

    @staticmethod
    async def _let_go(locks: list[Lock]) -> None:
        for lock in locks:
            try:
                await lock.release()
            except Exception:  # best effort: ephemeral nodes go with the session
                pass

    async def _members(self) -> list[str]:
        self._changed = ev = asyncio.Event()
        await self.client.get_children(self._party.path, watch=waker(ev))
        return await self._party.members()

    async def _allocate(self) -> None:
        while True:
            try:
                await self._divide()
                return
            except RETRYABLE:
                await self._release_locks()
                await asyncio.sleep(0.2)  # the client is reconnecting: divide again
            except SessionExpiredError:
                await self._fail()
                return

    async def _divide(self) -> None:
        # wait for membership to be still for time_boundary seconds
        while True:
            members = await self._members()
            try:
                await asyncio.wait_for(self._changed.wait(), self.time_boundary)
            except TimeoutError:
                break
        mine = list(await call(self.partition_func, self.identifier, members, self.items))
        locks = []
        try:
            for item in mine:
                lock = Lock(self.client, f"{self.path}/locks/{item}", self.identifier)
                # the previous owner gives an item up once it notices the change
                while not await self._try(lock):
                    if self._changed.is_set():
                        raise _Restart
                locks.append(lock)
        except _Restart:
            await self._let_go(locks)
            return await self._divide()
        except BaseException:
            await self._let_go(locks)
            raise
        self._locks, self._set = locks, mine
        await self._set_state(PartitionState.ACQUIRED)
        await self._changed.wait()
        await self._set_state(PartitionState.RELEASE)

    async def _try(self, lock: Lock) -> bool:
        try:
            return await lock.acquire(timeout=self.max_reaction_time)
        except LockTimeout:
            return False


class _Restart(Exception):
    pass
