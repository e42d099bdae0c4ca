"""Lock, ReadLock / WriteLock and Semaphore: kazoo's node naming, no herd.

**Lock.** Each contender creates an ephemeral sequential child of the lock path named
``<32 hex>__lock__<10-digit sequence>`` (readers: ``__rlock__``) — exactly kazoo's
naming, so a zabby Lock and a kazoo Lock on the same path exclude each other. The
contender with the lowest sequence among those it conflicts with holds the lock;
every other contender watches only the next lower conflicting node (no herd). A
writer conflicts with every reader and writer; a reader only with writers.

Guarantee: while the session is alive and connected, at most one holder (one writer
or any number of readers). On connection loss the client's listeners report
SUSPENDED: the holder is told (``on_state("SUSPENDED")``, ``lock.maybe_lost``) that
it may have lost the lock, since its session may expire while it cannot hear about
it; it should stop touching the guarded resource until ``on_state("CONNECTED")``
confirms its node is still there. On session expiry the ephemeral node is gone, so
the lock is released by the server: the holder gets ``on_state("LOST")``,
``is_acquired`` becomes False and ``lock.lost`` is set. A waiter whose session
expires retries from the start with a new node (kazoo does the same).

**Semaphore.** kazoo's layout: the semaphore path holds ``max_leases`` as its data;
a lease is an ephemeral child ``<32 hex>`` holding the identifier; contenders queue
on the Lock ``<path>-__lock__`` and only its holder watches the lease pool. At most
``max_leases`` leases exist at once while sessions are alive; an expired session's
lease vanishes with it (same state reporting as Lock).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from ._util import (
    RETRYABLE,
    CancelledError,
    Deadline,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
    StateWatcher,
    bounded,
    call,
    new_id,
    remove_orphan,
    retrying,
    waker,
)

__all__ = ["Lock", "LockTimeout", "ReadLock", "Semaphore", "WriteLock"]


class _Holder:
    """State reporting shared by everything that holds an ephemeral node."""

    client: Any

    def _init_holder(self, on_state: Callable[[str], Any] | None) -> None:
        self.on_state = on_state
        self.is_acquired = False
        self.maybe_lost = False
        self.lost = asyncio.Event()
        self._wake: asyncio.Event | None = None
        self._states = StateWatcher(self.client, self._on_client_state)

    async def _node_exists(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def _on_client_state(self, state: str) -> Any:
        if self._wake is not None:
            self._wake.set()  # a waiter re-checks after any state change
        if not self.is_acquired:
            return None
        if state == "SUSPENDED":
            self.maybe_lost = True
            return call(self.on_state, "SUSPENDED")
        if state == "LOST":
            return self._mark_lost()
        if self.maybe_lost:
            return self._confirm()
        return None

    async def _confirm(self) -> None:
        try:
            still = await self._node_exists()
        except (*RETRYABLE, SessionExpiredError):
            return  # the next state change decides
        if not self.is_acquired:
            return
        if still:
            self.maybe_lost = False
            await call(self.on_state, "CONNECTED")
        else:
            await self._mark_lost()

    async def _mark_lost(self) -> None:
        if self.is_acquired:
            self.is_acquired = False
            self.maybe_lost = False
            self.lost.set()
            self._states.remove()
            await call(self.on_state, "LOST")


class Lock(_Holder):
    """An exclusive lock (kazoo's ``Lock``); ``async with zk.Lock(path, ident):``."""

    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES: tuple[str, ...] = ("__lock__",)

    def __init__(self, client: Any, path: str, identifier: str | None = None,
                 extra_lock_patterns: tuple[str, ...] = (), *,
                 on_state: Callable[[str], Any] | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/") or "/"
        self.data = str(identifier or "").encode("utf-8")
        names = set(self._EXCLUDE_NAMES) | set(extra_lock_patterns)
        self._conflict_re = self._seq_re(names)
        self._all_re = self._seq_re(names | {self._NODE_NAME})
        # A fresh prefix per Lock object: finding it among the children tells us
        # whether a create whose reply was lost did happen (Curator's trick).
        self.prefix = new_id() + self._NODE_NAME
        self.node: str | None = None
        self._create_tried = False
        self._cancelled = False
        self._busy = asyncio.Lock()
        self._init_holder(on_state)

    @staticmethod
    def _seq_re(names: set[str]) -> re.Pattern[str]:
        alts = "|".join(re.escape(n) for n in sorted(names))
        return re.compile(rf"(?:{alts})(-?\d{{10}})$")

    def _child(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path != "/" else f"/{name}"

    async def _node_exists(self) -> bool:
        return self.node is not None and await self.client.exists(self._child(self.node)) is not None

    def cancel(self) -> None:
        """Make a pending ``acquire`` give up (it raises CancelledError)."""
        self._cancelled = True
        if self._wake is not None:
            self._wake.set()

    async def acquire(self, blocking: bool = True, timeout: float | None = None,
                      ephemeral: bool = True) -> bool:
        """Wait for the lock; False if ``blocking`` is False and it is taken.

        Raises LockTimeout after ``timeout`` seconds. Not re-entrant: acquiring a lock
        this object already holds returns False at once.
        """
        if self.is_acquired:
            return False
        deadline = Deadline(timeout)
        self._cancelled = False
        async with self._busy:
            try:
                got = await bounded(
                    retrying(lambda: self._attempt(blocking, deadline, ephemeral),
                             deadline, on_expired=self._forget_node),
                    deadline, f"lock {self.path}")
            except BaseException:
                await self._cleanup()
                raise
            if not got:
                await self._cleanup()
                return False
            self.is_acquired = True
            self.maybe_lost = False
            self.lost.clear()
            self._states.add()
            return True

    def _forget_node(self) -> None:
        # the session that owned our node expired: the node is (or will be) gone
        self.node = None
        self._create_tried = False

    async def _find_node(self, prefix: str) -> str | None:
        """Our node made by a create whose reply was lost, if that create happened.

        Sync first: the create may have reached the leader before we reconnected
        and yet not be applied on the member we now read from (a leader that was
        paused proposes it once resumed, and commits it only once its followers ack).
        A plain read would miss it, and we would create a second node and queue
        behind our first one, which nobody deletes while our session lives: every
        contender after it waits until the session ends. The sync is answered only
        once everything proposed before it is applied here."""
        await self.client.sync(self.path)
        for child in await self.client.get_children(self.path):
            if child.startswith(prefix):
                return child
        return None

    async def _attempt(self, blocking: bool, deadline: Deadline, ephemeral: bool) -> bool:
        await self.client.ensure_path(self.path)
        if self.node is None:
            node = await self._find_node(self.prefix) if self._create_tried else None
            if node is None:
                self._create_tried = True
                created = await self.client.create(self._child(self.prefix), self.data,
                                                   ephemeral=ephemeral, sequence=True)
                node = created.rsplit("/", 1)[-1]
            self.node = node
        while True:
            if self._cancelled:
                raise CancelledError("lock acquire cancelled")
            pred = await self._predecessor(self.node)
            if pred is None:
                return True
            if not blocking:
                return False
            wake = self._wake = asyncio.Event()
            self._states.add()
            try:
                await self.client.get(self._child(pred), watch=waker(wake))
            except NoNodeError:
                continue
            try:
                await asyncio.wait_for(wake.wait(), deadline.left())
            except TimeoutError:
                raise LockTimeout(f"lock {self.path} not acquired within the timeout") from None
            finally:
                self._wake = None
                self._states.remove()

    async def _predecessor(self, node: str) -> str | None:
        """The next lower conflicting contender, or None when we hold the lock."""
        match = self._all_re.search(node)
        mine = match.group(1) if match else node[len(self.prefix):]
        children = await self.client.get_children(self.path)
        if node not in children:
            # our node vanished: our session expired under us (or someone deleted it)
            self._forget_node()
            raise SessionExpiredError()
        best: tuple[str, str] | None = None
        for child in children:
            m = self._conflict_re.search(child)
            if m is None or m.group(1) >= mine:
                continue
            if best is None or m.group(1) > best[0]:
                best = (m.group(1), child)
        return None if best is None else best[1]

    async def _cleanup(self) -> None:
        """Remove the node of an attempt that gave up (now, or once reconnected)."""
        node, tried, prefix = self.node, self._create_tried, self.prefix
        self.node = None
        self._create_tried = False
        if node is None and not tried:
            return
        # the next attempt gets a prefix of its own, so a late cleanup of this one
        # can never find (and delete) the node of the next
        self.prefix = new_id() + self._NODE_NAME

        async def find() -> str | None:
            if node is not None:
                return self._child(node)
            found = await self._find_node(prefix)
            return None if found is None else self._child(found)

        await remove_orphan(find, self.client)

    async def _abandon(self) -> None:
        """Give the lock up without waiting for a lost connection to come back."""
        self._states.remove()
        self.is_acquired = False
        await self._cleanup()

    async def release(self) -> bool:
        """Give the lock up (delete our node). False if it was not held."""
        self._states.remove()
        if not self.is_acquired and self.node is None:
            return False
        node = self.node

        async def delete() -> None:
            if node is not None:
                try:
                    await self.client.delete(self._child(node))
                except NoNodeError:
                    pass

        was = self.is_acquired
        self.is_acquired = False
        try:
            await retrying(delete)
        except SessionExpiredError:
            pass  # the ephemeral node went with the session
        self.node = None
        self._create_tried = False
        return was

    async def contenders(self) -> list[str]:
        """The identifiers of every contender (readers and writers), in queue order."""
        await retrying(lambda: self.client.ensure_path(self.path))
        children = await retrying(lambda: self.client.get_children(self.path))
        ordered = sorted((m.group(1), c) for c in children
                         if (m := self._all_re.search(c)) is not None)
        out = []
        for _, child in ordered:
            try:
                data, _stat = await self.client.get(self._child(child))
            except NoNodeError:
                continue
            out.append((data or b"").decode("utf-8"))
        return out

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class WriteLock(Lock):
    """The exclusive side of a read/write lock (kazoo's ``WriteLock``)."""

    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES = ("__lock__", "__rlock__")


class ReadLock(Lock):
    """The shared side of a read/write lock (kazoo's ``ReadLock``)."""

    _NODE_NAME = "__rlock__"
    _EXCLUDE_NAMES = ("__lock__",)


class Semaphore(_Holder):
    """At most ``max_leases`` holders at once (kazoo's ``Semaphore``, same layout)."""

    def __init__(self, client: Any, path: str, identifier: str | None = None,
                 max_leases: int = 1, *,
                 on_state: Callable[[str], Any] | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.data = str(identifier or "").encode("utf-8")
        self.max_leases = max_leases
        self.create_path = f"{self.path}/{new_id()}"
        self.lock_path = f"{self.path}-__lock__"
        self._checked = False
        self._cancelled = False
        self._init_holder(on_state)

    async def _node_exists(self) -> bool:
        return await self.client.exists(self.create_path) is not None

    async def _check_path(self) -> None:
        if self._checked:
            return
        try:
            await self.client.create(self.path, str(self.max_leases).encode(), makepath=True)
        except NodeExistsError:
            data, _ = await self.client.get(self.path)
            try:
                leases = int((data or b"").decode("utf-8"))
            except ValueError:
                leases = None  # not ours to interpret (kazoo ignores it too)
            if leases is not None and leases != self.max_leases:
                raise ValueError(f"Inconsistent max leases: {leases}, "
                                 f"expected: {self.max_leases}") from None
        self._checked = True

    def cancel(self) -> None:
        self._cancelled = True
        if self._wake is not None:
            self._wake.set()

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if self.is_acquired:
            return False
        self._cancelled = False
        deadline = Deadline(timeout)
        try:
            got = await bounded(
                retrying(lambda: self._attempt(blocking, deadline), deadline,
                         on_expired=lambda: None),
                deadline, f"semaphore {self.path}")
        except BaseException:
            await self._best_effort_delete()
            raise
        if got:
            self.is_acquired = True
            self.maybe_lost = False
            self.lost.clear()
            self._states.add()
        return got

    async def _attempt(self, blocking: bool, deadline: Deadline) -> bool:
        await self._check_path()
        if await self.client.exists(self.create_path) is not None:
            return True  # a create whose reply we lost did happen
        lock = Lock(self.client, self.lock_path, self.data.decode("utf-8"))
        if not await lock.acquire(blocking=blocking, timeout=deadline.left()):
            return False
        try:
            while True:
                if self._cancelled:
                    raise CancelledError("semaphore acquire cancelled")
                wake = self._wake = asyncio.Event()
                children = await self.client.get_children(self.path, watch=waker(wake))
                if len(children) < self.max_leases:
                    try:
                        await self.client.create(self.create_path, self.data, ephemeral=True)
                    except NodeExistsError:
                        pass
                    return True
                if not blocking:
                    return False
                # only the holder of the semaphore's lock waits here: no herd
                self._states.add()
                try:
                    await asyncio.wait_for(wake.wait(), deadline.left())
                except TimeoutError:
                    raise LockTimeout(f"semaphore {self.path} not acquired "
                                      "within the timeout") from None
                finally:
                    self._states.remove()
                    self._wake = None
        finally:
            await lock._abandon()  # never outwaits the caller's timeout

    async def _best_effort_delete(self) -> None:
        path = self.create_path
        self.create_path = f"{self.path}/{new_id()}"  # a late delete never hits the next lease

        async def find() -> str:
            return path

        await remove_orphan(find, self.client)

    async def release(self) -> bool:
        self._states.remove()
        if not self.is_acquired:
            return False
        self.is_acquired = False

        async def delete() -> None:
            try:
                await self.client.delete(self.create_path)
            except NoNodeError:
                pass

        try:
            await retrying(delete)
        except SessionExpiredError:
            pass
        return True

    async def lease_holders(self) -> list[str]:
        if await self.client.exists(self.path) is None:
            return []
        out = []
        for child in await self.client.get_children(self.path):
            try:
                data, _ = await self.client.get(f"{self.path}/{child}")
            except NoNodeError:
                continue
            out.append((data or b"").decode("utf-8"))
        return out

    async def __aenter__(self) -> Semaphore:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
