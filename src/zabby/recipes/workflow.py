"""Workflow: tasks that workers claim, report progress on and complete exactly once.

Layout under the workflow path::

    tasks/<id>     persistent: the task's payload (``submit``)
    claims/<id>    ephemeral:  the worker holding it (its token); dies with its session
    progress/<id>  persistent: the latest progress record of the task
    done/<id>      persistent: the completion record (worker token, result)

``task = await wf.claim()`` picks a task that is neither done nor claimed and creates
its claim; ``await task.progress(data)`` and ``await task.complete(result)`` each run
as one transaction that first checks the claim is still ours. Completion creates
``done/<id>`` and deletes the claim together, and a node can be created once only.

Guarantee: each task is completed exactly once — there is never a second completion
record, and ``complete`` returns True to exactly one worker (also when its reply is
lost and the call is retried: the retry recognises its own record). A task is held
by one worker at a time while sessions are alive. Connection loss: a worker is
SUSPENDED and may lose its claim if its session expires; ``task.holds()`` tells.
Session expiry: the claim vanishes and the task is claimed again by another worker
(the earlier worker's ``progress`` / ``complete`` then fail: TaskLost / False).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._util import (
    RETRYABLE,
    ConnectionClosedError,
    Deadline,
    LockTimeout,
    NodeExistsError,
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

__all__ = ["Task", "TaskLost", "Workflow"]


class TaskLost(Exception):
    """The worker's claim on the task is gone (its session expired, or abandoned)."""


class Task:
    def __init__(self, wf: Workflow, task_id: str, payload: bytes, progress: bytes | None) -> None:
        self.wf = wf
        self.id = task_id
        self.payload = payload
        self.last_progress = progress  # what an earlier holder recorded, if anything
        self.completed = False

    @property
    def _claim(self) -> str:
        return f"{self.wf.path}/claims/{self.id}"

    async def _claim_version(self) -> int | None:
        try:
            data, stat = await self.wf.client.get(self._claim)
        except NoNodeError:
            return None
        if data != self.wf.token or stat.ephemeralOwner != session_id(self.wf.client):
            return None
        return stat.version

    async def holds(self) -> bool:
        """Is the claim still ours (as of now, on the leader: ``sync`` first)?"""
        async def attempt() -> bool:
            await self.wf.client.sync(self._claim)
            return await self._claim_version() is not None
        return await retrying(attempt)

    async def progress(self, data: bytes) -> None:
        """Record progress; raises TaskLost if the claim is no longer ours."""
        path = f"{self.wf.path}/progress/{self.id}"
        sent = False

        async def attempt() -> None:
            nonlocal sent
            if sent:
                # a retry after a lost reply may run on a member that has not yet
                # applied our record: catch up first, or we would create it again,
                # take the failure for a lost claim and drop a task we still hold
                await self.wf.client.sync(path)
            version = await self._claim_version()
            if version is None:
                raise TaskLost(self.id)
            exists = await self.wf.client.exists(path) is not None
            txn = self.wf.client.transaction()
            txn.check(self._claim, version)
            if exists:
                txn.set_data(path, data)
            else:
                txn.create(path, data)
            sent = True
            try:
                await commit(txn)
            except (NoNodeError, NodeExistsError):
                raise TaskLost(self.id) from None  # raced: claim gone
        await retrying(attempt)

    async def complete(self, result: bytes = b"") -> bool:
        """Complete the task; True exactly once over all workers."""
        done = f"{self.wf.path}/done/{self.id}"
        record = self.wf.token + b"\n" + result
        sent = False

        async def attempt() -> bool:
            nonlocal sent
            if sent:
                # a retry after a lost reply may run on a member that has not yet
                # applied our commit: catch up first, or we would take our own
                # completion for another's
                await self.wf.client.sync(done)
            try:
                data, _ = await self.wf.client.get(done)
                # done already: by us only if this is the retry of our own commit
                return sent and data.split(b"\n", 1)[0] == self.wf.token
            except NoNodeError:
                pass
            version = await self._claim_version()
            if version is None:
                return False
            txn = self.wf.client.transaction()
            txn.check(self._claim, version)
            txn.create(done, record)
            txn.delete(self._claim)
            sent = True
            try:
                await commit(txn)
            except (NoNodeError, NodeExistsError):
                return False
            return True

        async def ours() -> bool:
            try:
                data, _ = await self.wf.client.get(done)
            except NoNodeError:
                return False
            return data.split(b"\n", 1)[0] == self.wf.token

        try:
            self.completed = await retrying(attempt)
        except SessionExpiredError as exc:
            if isinstance(exc, ConnectionClosedError):
                raise
            # our session ended under us: the record (on the new session) tells
            # whether our commit landed first
            self.completed = sent and await retrying(ours)
        return self.completed

    async def abandon(self) -> None:
        """Give the task back unfinished (another worker may claim it)."""
        async def attempt() -> None:
            if await self._claim_version() is not None:
                try:
                    await self.wf.client.delete(self._claim)
                except NoNodeError:
                    pass
        await retrying(attempt)


class Workflow:
    """``wf = zk.Workflow("/jobs")``; ``await wf.submit(b"payload")``;
    ``task = await wf.claim(timeout=5)``; ``await task.complete(b"result")``."""

    def __init__(self, client: Any, path: str, worker: str | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.worker = worker or ""
        self.token = f"{new_id()}:{self.worker}".encode()
        self._ensured = False
        self._uncertain: set[str] = set()  # claims whose create reply was lost

    async def _ensure(self) -> None:
        if not self._ensured:
            for sub in ("tasks", "claims", "progress", "done"):
                await retrying(lambda s=sub: self.client.ensure_path(f"{self.path}/{s}"))
            self._ensured = True

    async def submit(self, payload: bytes = b"", task_id: str | None = None) -> str:
        """Add a task (``task_id`` makes a re-submission idempotent); returns its id."""
        await self._ensure()

        async def attempt() -> str:
            if task_id is None:
                created = await self.client.create(f"{self.path}/tasks/task-", payload,
                                                   sequence=True)
                return created.rsplit("/", 1)[-1]
            try:
                await self.client.create(f"{self.path}/tasks/{task_id}", payload)
            except NodeExistsError:
                pass
            return task_id
        return await retrying(attempt)

    async def claim(self, timeout: float | None = None) -> Task | None:
        """Claim a pending task; None after ``timeout`` seconds without one."""
        await self._ensure()
        deadline = Deadline(timeout)

        async def attempt() -> Task | None:
            while self._uncertain:
                task = await self._try_claim(self._uncertain.pop())
                if task is not None:
                    return task
            while True:
                ev = asyncio.Event()
                tasks = await self.client.get_children(f"{self.path}/tasks",
                                                       watch=waker(ev))
                claims = set(await self.client.get_children(f"{self.path}/claims",
                                                            watch=waker(ev)))
                done = set(await self.client.get_children(f"{self.path}/done"))
                for tid in sorted(set(tasks) - claims - done):
                    task = await self._try_claim(tid)
                    if task is not None:
                        return task
                if not await wait_change(self.client, ev, deadline):
                    return None
        try:
            return await retrying(attempt, deadline, on_expired=lambda: None)
        except LockTimeout:
            return None

    async def _try_claim(self, tid: str) -> Task | None:
        claim = f"{self.path}/claims/{tid}"
        if not await claim_ephemeral(self.client, claim, self.token, self._uncertain, tid):
            return None
        try:
            if await self.client.exists(f"{self.path}/done/{tid}") is not None:
                # completed between our listing and our claim
                await delete_quietly(self.client, claim)
                return None
            try:
                payload, _ = await self.client.get(f"{self.path}/tasks/{tid}")
            except NoNodeError:
                await delete_quietly(self.client, claim)
                return None
            try:
                progress, _ = await self.client.get(f"{self.path}/progress/{tid}")
            except NoNodeError:
                progress = None
        except RETRYABLE:
            # claimed, but not read: listings skip claimed tasks, so this one is
            # looked at again first (else our live session holds it for nobody)
            self._uncertain.add(tid)
            raise
        return Task(self, tid, payload, progress)

    async def status(self, task_id: str) -> str:
        """"done", "claimed", "pending" or "unknown"."""
        for state, sub in (("done", "done"), ("claimed", "claims"), ("pending", "tasks")):
            if await retrying(lambda s=sub: self.client.exists(
                    f"{self.path}/{s}/{task_id}")) is not None:
                return state
        return "unknown"

    async def result(self, task_id: str) -> bytes | None:
        """The result a task was completed with (None while it is not done)."""
        try:
            data, _ = await retrying(lambda: self.client.get(f"{self.path}/done/{task_id}"))
        except NoNodeError:
            return None
        return data.split(b"\n", 1)[1] if b"\n" in data else b""

    async def pending(self) -> list[str]:
        await self._ensure()
        tasks = await retrying(lambda: self.client.get_children(f"{self.path}/tasks"))
        done = await retrying(lambda: self.client.get_children(f"{self.path}/done"))
        return sorted(set(tasks) - set(done))

    async def wait_all(self, timeout: float | None = None) -> bool:
        """Wait until every submitted task is done; False after ``timeout``."""
        await self._ensure()
        deadline = Deadline(timeout)

        async def attempt() -> bool:
            while True:
                ev = asyncio.Event()
                done = await self.client.get_children(f"{self.path}/done",
                                                      watch=waker(ev))
                tasks = await self.client.get_children(f"{self.path}/tasks")
                if not set(tasks) - set(done):
                    return True
                if not await wait_change(self.client, ev, deadline):
                    return False
        try:
            return await retrying(attempt, deadline)
        except LockTimeout:
            return False
