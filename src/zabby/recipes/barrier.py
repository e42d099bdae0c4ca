"""Barrier, DoubleBarrier (kazoo's) and CountDownLatch.

**Barrier**: a gate node; ``wait`` blocks while it exists, ``remove`` opens it.
Guarantee: every waiter returns once the node is deleted. Connection loss: waiting
resumes after reconnecting (the node is checked again, so a removal during the
disconnection is not missed). Session expiry does not matter (persistent node).

**DoubleBarrier**: ``num_clients`` participants ``enter`` (each an ephemeral child;
the one that sees the count reached creates ``ready``, which releases everyone)
and ``leave`` (the standard ZooKeeper recipe: everyone leaves only when all have
left; the lowest waits on the highest, the others on the lowest). Guarantee: no
participant passes ``enter`` before ``num_clients`` have entered, none passes
``leave`` before every one of them has left. ``ready`` is removed only by the last
to leave, so a slow participant is never stranded. Connection loss: retried. Session
expiry: the participant's node is gone; ``enter`` creates it again, and a
participant that expires between enter and leave counts as having left.

**CountDownLatch**: ``count_down`` records one arrival (a persistent child named by
a unique id, so a retried arrival is not counted twice); ``wait`` returns once
``count`` arrivals exist. Guarantee: every waiter is released once ``count``
distinct arrivals happened, whoever made them and whatever happened to their
sessions since. Connection loss: retried; expiry: irrelevant (persistent nodes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._util import (
    Deadline,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
    new_id,
    retrying,
    wait_change,
    waker,
)

__all__ = ["Barrier", "CountDownLatch", "DoubleBarrier"]


async def _wait(event: asyncio.Event, deadline: Deadline) -> bool:
    try:
        await asyncio.wait_for(event.wait(), deadline.left())
    except TimeoutError:
        return False
    return True


class Barrier:
    """``await b.create()`` closes the gate, ``await b.wait()`` blocks until ``remove``."""

    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path

    async def create(self) -> None:
        await retrying(lambda: self.client.ensure_path(self.path))

    async def remove(self) -> bool:
        async def attempt() -> bool:
            try:
                await self.client.delete(self.path)
            except NoNodeError:
                return False
            return True
        return await retrying(attempt)

    async def wait(self, timeout: float | None = None) -> bool:
        """True once the barrier is gone; False after ``timeout`` seconds."""
        deadline = Deadline(timeout)

        async def attempt() -> bool:
            while True:
                ev = asyncio.Event()
                if await self.client.exists(self.path, watch=waker(ev)) is None:
                    return True
                if not await wait_change(self.client, ev, deadline):
                    return False
        try:
            return await retrying(attempt, deadline)
        except LockTimeout:
            return False


class DoubleBarrier:
    """``await db.enter()`` ... ``await db.leave()``, or ``async with db:``."""

    def __init__(self, client: Any, path: str, num_clients: int,
                 identifier: str | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.num_clients = num_clients
        self.data = str(identifier or "").encode("utf-8")
        self.node_name = new_id()
        self.create_path = f"{self.path}/{self.node_name}"
        self.ready_path = f"{self.path}/ready"
        self.participating = False

    async def _members(self) -> list[str]:
        return sorted(c for c in await self.client.get_children(self.path) if c != "ready")

    async def enter(self, timeout: float | None = None) -> None:
        deadline = Deadline(timeout)

        async def attempt() -> None:
            await self.client.ensure_path(self.path)
            try:
                await self.client.create(self.create_path, self.data, ephemeral=True)
            except NodeExistsError:
                pass
            while True:
                ev = asyncio.Event()
                if await self.client.exists(self.ready_path, watch=waker(ev)):
                    return
                if len(await self._members()) >= self.num_clients:
                    try:
                        await self.client.create(self.ready_path)
                    except NodeExistsError:
                        pass
                    return
                if not await wait_change(self.client, ev, deadline):
                    raise LockTimeout(f"double barrier {self.path}: too few entered")

        await retrying(attempt, deadline, on_expired=lambda: None)
        self.participating = True

    async def leave(self, timeout: float | None = None) -> None:
        deadline = Deadline(timeout)

        async def attempt() -> None:
            while True:
                members = await self._members()
                if not members:
                    await self._drop_ready()  # the last one out re-arms the barrier
                    return
                if members == [self.node_name]:
                    await self._delete_self()
                    await self._drop_ready()
                    return
                if members[0] == self.node_name:
                    watched = members[-1]  # the lowest waits for the highest to go
                else:
                    await self._delete_self()
                    watched = members[0]  # everyone else waits for the lowest
                ev = asyncio.Event()
                stat = await self.client.exists(f"{self.path}/{watched}",
                                                watch=waker(ev))
                if stat is None:
                    continue
                if not await wait_change(self.client, ev, deadline):
                    raise LockTimeout(f"double barrier {self.path}: others still inside")

        await retrying(attempt, deadline, on_expired=lambda: None)
        self.participating = False

    async def _delete_self(self) -> None:
        try:
            await self.client.delete(self.create_path)
        except NoNodeError:
            pass

    async def _drop_ready(self) -> None:
        try:
            await self.client.delete(self.ready_path)
        except NoNodeError:
            pass

    async def __aenter__(self) -> DoubleBarrier:
        await self.enter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()


class CountDownLatch:
    """``await latch.count_down()`` by each of ``count`` parties; ``await latch.wait()``."""

    def __init__(self, client: Any, path: str, count: int) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self.client = client
        self.path = path.rstrip("/")
        self.count = count
        self._checked = False

    async def _check(self) -> None:
        if self._checked:
            return
        try:
            await self.client.create(self.path, str(self.count).encode(), makepath=True)
        except NodeExistsError:
            data, _ = await self.client.get(self.path)
            if (data or b"").decode("utf-8").strip() != str(self.count):
                raise ValueError(f"latch {self.path} has count {data!r}, "
                                 f"expected {self.count}") from None
        self._checked = True

    async def count_down(self) -> None:
        """Record one arrival (retried safely: it is never counted twice)."""
        node = f"{self.path}/{new_id()}"

        async def attempt() -> None:
            await self._check()
            try:
                await self.client.create(node)
            except NodeExistsError:
                pass
        await retrying(attempt)

    async def get_count(self) -> int:
        """Arrivals still missing (0 once the latch is open)."""
        async def attempt() -> int:
            await self._check()
            return max(0, self.count - len(await self.client.get_children(self.path)))
        return await retrying(attempt)

    async def wait(self, timeout: float | None = None) -> bool:
        """True once ``count`` arrivals happened; False after ``timeout`` seconds."""
        deadline = Deadline(timeout)

        async def attempt() -> bool:
            await self._check()
            while True:
                ev = asyncio.Event()
                children = await self.client.get_children(self.path, watch=waker(ev))
                if len(children) >= self.count:
                    return True
                if not await wait_change(self.client, ev, deadline):
                    return False
        try:
            return await retrying(attempt, deadline)
        except LockTimeout:
            return False
