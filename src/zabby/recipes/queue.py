"""Queue and LockingQueue (kazoo's layouts, so kazoo producers and consumers mix in).

**Queue**: items are persistent sequential children ``entry-<priority 3 digits>-<seq>``;
``get`` takes the lowest (priority first, then arrival) by deleting it — whoever's
delete succeeds owns it. Guarantee: an item is returned to at most one consumer.
Connection loss: a ``get`` whose delete reply is lost cannot tell whether it took the
item, so it moves on (the item may be lost: at most once). Use LockingQueue for
at-least/exactly-once hand-over. Session expiry: irrelevant (persistent nodes).

**LockingQueue**: items are ``<path>/entries/entry-<prio>-<seq>``; ``get`` *locks* one
by creating the ephemeral ``<path>/taken/<same name>`` (holding this consumer's id)
and returns its value without removing it; ``consume`` removes item and lock in one
transaction, only if the lock is still ours; ``release`` gives the item back.
Guarantee: an item is handed to one consumer at a time and is removed exactly once,
by the consumer that holds it; a consumer that dies or whose session expires hands
the item back (its ephemeral lock vanishes) and ``consume`` then returns False.
Connection loss: ``holds_lock()`` tells whether the item is still ours (SUSPENDED
means it may not be); operations are retried after reconnecting, and a take whose
reply was lost is recognised (its lock holds our id). One window stays: if the
session expires while ``consume``'s reply is in flight, the item may be gone yet
``consume`` report False (kazoo's LockingQueue has the same window; the Workflow
recipe closes it with a completion record).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._util import (
    RETRYABLE,
    Deadline,
    LockTimeout,
    NoNodeError,
    SessionExpiredError,
    claim_ephemeral,
    commit,
    delete_quietly,
    new_id,
    retrying,
    session_id,
    wait_change,
    waker,
)

__all__ = ["LockingQueue", "Queue"]


def _check_priority(priority: int) -> None:
    if not isinstance(priority, int):
        raise TypeError("priority must be an int")
    if not 0 <= priority <= 999:
        raise ValueError("priority must be between 0 and 999")


def _check_value(value: Any) -> None:
    if not isinstance(value, bytes):
        raise TypeError("value must be a byte string")


class Queue:
    """``await q.put(b"x")``; ``await q.get()`` (None when empty; ``timeout`` to wait)."""

    prefix = "entry-"

    def __init__(self, client: Any, path: str) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self._ensured = False

    async def _ensure(self) -> None:
        if not self._ensured:
            await retrying(lambda: self.client.ensure_path(self.path))
            self._ensured = True

    async def put(self, value: bytes, priority: int = 100) -> str:
        _check_value(value)
        _check_priority(priority)
        await self._ensure()
        # a lost reply is retried: the item may then be queued twice (at least once)
        return await retrying(lambda: self.client.create(
            f"{self.path}/{self.prefix}{priority:03d}-", value, sequence=True))

    async def length(self) -> int:
        await self._ensure()
        _, stat = await retrying(lambda: self.client.get(self.path))
        return stat.numChildren

    async def get(self, timeout: float | None = 0) -> bytes | None:
        """The next item, removed; None if the queue stays empty for ``timeout``
        seconds (0, the default, as kazoo: don't wait; None: wait forever)."""
        await self._ensure()
        deadline = Deadline(timeout)

        async def attempt() -> bytes | None:
            while True:
                ev = asyncio.Event()
                children = await self.client.get_children(self.path, watch=waker(ev))
                for name in sorted(children):
                    try:
                        data, _ = await self.client.get(f"{self.path}/{name}")
                        await self.client.delete(f"{self.path}/{name}")
                    except NoNodeError:
                        continue  # another consumer took it
                    return data
                if timeout == 0 or not await wait_change(self.client, ev, deadline):
                    return None
        try:
            return await retrying(attempt, deadline)
        except LockTimeout:
            return None


class LockingQueue(Queue):
    """``item = await q.get(timeout)`` ... ``await q.consume()`` (or ``release()``)."""

    lock = "/taken"
    entries = "/entries"
    entry = "entry"

    def __init__(self, client: Any, path: str) -> None:
        super().__init__(client, path)
        self.id = new_id().encode("ascii")
        self.processing_element: tuple[str, bytes] | None = None
        self._uncertain: set[str] = set()  # locks whose create reply was lost
        self._lock_path = self.path + self.lock
        self._entries_path = self.path + self.entries

    async def _ensure(self) -> None:
        if not self._ensured:
            await retrying(lambda: self.client.ensure_path(self._lock_path))
            await retrying(lambda: self.client.ensure_path(self._entries_path))
            self._ensured = True

    async def length(self) -> int:
        """Items in the queue, taken ones included."""
        await self._ensure()
        _, stat = await retrying(lambda: self.client.get(self._entries_path))
        return stat.numChildren

    async def put(self, value: bytes, priority: int = 100) -> str:
        _check_value(value)
        _check_priority(priority)
        await self._ensure()
        return await retrying(lambda: self.client.create(
            f"{self._entries_path}/{self.entry}-{priority:03d}-", value, sequence=True))

    async def put_all(self, values: list[bytes], priority: int = 100) -> None:
        """Queue every value in one transaction (all or none)."""
        if not isinstance(values, list):
            raise TypeError("values must be a list of byte strings")
        for v in values:
            _check_value(v)
        _check_priority(priority)
        await self._ensure()

        async def attempt() -> None:
            txn = self.client.transaction()
            for v in values:
                txn.create(f"{self._entries_path}/{self.entry}-{priority:03d}-", v,
                           sequence=True)
            await commit(txn)
        await retrying(attempt)

    async def get(self, timeout: float | None = None) -> bytes | None:
        """Lock the next item and return its value (it stays queued until
        ``consume``). The item already held, if any, is returned again. None after
        ``timeout`` seconds without an item (None: wait forever)."""
        await self._ensure()
        if self.processing_element is not None:
            return self.processing_element[1]
        deadline = Deadline(timeout)

        async def attempt() -> bytes | None:
            while self._uncertain:
                name = self._uncertain.pop()
                got = await self._take(name)
                if got is not None:
                    self.processing_element = (name, got)
                    return got
            while True:
                ev = asyncio.Event()
                values = await self.client.get_children(self._entries_path,
                                                        watch=waker(ev))
                taken = set(await self.client.get_children(self._lock_path,
                                                           watch=waker(ev)))
                for name in sorted(values):
                    if name in taken:
                        continue
                    got = await self._take(name)
                    if got is not None:
                        self.processing_element = (name, got)
                        return got
                if not await wait_change(self.client, ev, deadline):
                    return None
        try:
            return await retrying(attempt, deadline, on_expired=lambda: None)
        except LockTimeout:
            return None

    async def _take(self, name: str) -> bytes | None:
        lock_path = f"{self._lock_path}/{name}"
        if not await claim_ephemeral(self.client, lock_path, self.id, self._uncertain, name):
            return None
        try:
            value, _ = await self.client.get(f"{self._entries_path}/{name}")
        except NoNodeError:
            # consumed meanwhile by the previous holder: drop our lock, skip it
            await delete_quietly(self.client, lock_path)
            return None
        except RETRYABLE:
            # we hold the lock but could not read the item: listings skip locked
            # items, so look at this one again first, or our live session keeps it
            # locked for nobody
            self._uncertain.add(name)
            raise
        return value

    async def holds_lock(self) -> bool:
        """Is the item we got still locked by us? (False after our session expired.)"""
        if self.processing_element is None:
            return False
        lock_path = f"{self._lock_path}/{self.processing_element[0]}"

        async def attempt() -> bool:
            await self.client.sync(lock_path)
            try:
                data, stat = await self.client.get(lock_path)
            except NoNodeError:
                return False
            return data == self.id and stat.ephemeralOwner == session_id(self.client)
        return await retrying(attempt)

    async def consume(self) -> bool:
        """Remove the item we hold from the queue; False if it is no longer ours."""
        if self.processing_element is None:
            return False
        name = self.processing_element[0]
        lock_path = f"{self._lock_path}/{name}"
        entry_path = f"{self._entries_path}/{name}"
        sent_in = None

        async def attempt() -> bool:
            nonlocal sent_in
            if sent_in is not None:
                # a retry after a lost reply may run on a member that has not yet
                # applied our transaction: catch up first, or we would send it again
                # and take its failure for "not ours"
                await self.client.sync(lock_path)
            try:
                data, stat = await self.client.get(lock_path)
            except NoNodeError:
                data, stat = None, None
            if stat is None or data != self.id or stat.ephemeralOwner != session_id(self.client):
                # not (or no longer) ours; if our own transaction went through
                # before its reply was lost, the same session sees both gone
                if (sent_in is not None and sent_in == session_id(self.client)
                        and await self.client.exists(entry_path) is None):
                    return True
                return False
            txn = self.client.transaction()
            txn.check(lock_path, stat.version)
            txn.delete(entry_path)
            txn.delete(lock_path)
            sent_in = session_id(self.client)
            await commit(txn)
            return True

        try:
            done = await retrying(attempt)
        except (NoNodeError, SessionExpiredError):
            done = False
        self.processing_element = None
        return done

    async def release(self) -> bool:
        """Give the held item back to the queue unconsumed."""
        if self.processing_element is None:
            return False
        if not await self.holds_lock():
            self.processing_element = None
            return False
        lock_path = f"{self._lock_path}/{self.processing_element[0]}"

        async def attempt() -> None:
            try:
                await self.client.delete(lock_path)
            except NoNodeError:
                pass
        await retrying(attempt)
        self.processing_element = None
        return True
