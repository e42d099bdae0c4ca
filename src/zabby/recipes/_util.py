"""What every recipe shares: error names, retry on connection loss, state listeners.

Recipes talk to :class:`zabby.client.Client` only through its public, kazoo-shaped
coroutines. The few points where a recipe depends on the client's shape (its
exception classes, connection-state listeners, the session id) are kept here, so
the recipes themselves read as the algorithm.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from zabby.client.exceptions import (  # noqa: F401  (re-exported for the recipes)
    BadVersionError,
    CancelledError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)

__all__ = [
    "BadVersionError",
    "CancelledError",
    "ConnectionLoss",
    "Deadline",
    "LockTimeout",
    "NoNodeError",
    "NodeExistsError",
    "NotEmptyError",
    "RETRYABLE",
    "SessionExpiredError",
    "StateWatcher",
    "call",
    "commit",
    "join",
    "new_id",
    "retrying",
    "session_id",
    "state_name",
    "waker",
]

# Retry pauses while the client looks for another server; bounded by the caller's
# deadline (or forever without one, the way kazoo's recipes retry).
_BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8)


# Errors after which the same request may simply be sent again once reconnected.
RETRYABLE = (ConnectionLoss, ConnectionDropped, OperationTimeoutError)


def waker(event: asyncio.Event) -> Callable[[Any], None]:
    """A watch callback that sets ``event`` (a fresh one per wait)."""
    def wake(_watched: Any = None) -> None:
        event.set()
    return wake


async def wait_change(client: Any, ev: asyncio.Event, deadline: Deadline) -> bool:
    """Until `ev` is set (a watch fired) or the connection changes state (a watch may
    have been lost with it): True, or False when `deadline` passes first."""
    def listener(_s: Any) -> None:
        ev.set()
    client.add_listener(listener)
    try:
        await asyncio.wait_for(ev.wait(), deadline.left())
        return True
    except TimeoutError:
        return False
    finally:
        try:
            client.remove_listener(listener)
        except (KeyError, ValueError):
            pass


def new_id() -> str:
    return uuid.uuid4().hex


def join(*parts: str) -> str:
    path = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return "/" + path


class Deadline:
    """Seconds left until a timeout (None: wait forever)."""

    def __init__(self, timeout: float | None) -> None:
        self.end = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end


async def call(fn: Callable[..., Any] | None, *args: Any) -> Any:
    """Call a user callback, sync or async; await its result if it is awaitable."""
    if fn is None:
        return None
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def retrying(op: Callable[[], Awaitable[Any]], deadline: Deadline | None = None,
                   *, on_expired: Callable[[], Any] | None = None) -> Any:
    """Run ``op`` until it gets an answer, retrying on connection loss.

    A lost connection says nothing about whether the request took effect, so ``op``
    must be idempotent (recipes make it so: they look for what they may have
    created before creating it again). A session expiry is retried only when
    ``on_expired`` is given (it resets the recipe's state); otherwise it propagates.
    """
    attempt = 0
    while True:
        try:
            return await op()
        except RETRYABLE:
            pass
        except SessionExpiredError as exc:
            if on_expired is None or isinstance(exc, ConnectionClosedError):
                raise
            await call(on_expired)
        pause = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
        attempt += 1
        if deadline is not None and deadline.end is not None:
            left = deadline.left()
            if not left:
                raise LockTimeout("timed out while the connection was lost")
            pause = min(pause, left)
        await asyncio.sleep(pause)


async def commit(txn: Any) -> list[Any]:
    """Commit a transaction; raise the error of the op that failed (if one did).

    Like kazoo, ``commit`` reports failures as exception instances in its results;
    the ops after the failing one come back as RolledBackError.
    """
    results = await txn.commit()
    errors = [r for r in results if isinstance(r, BaseException)]
    for err in errors:
        if type(err).__name__ != "RolledBackError":
            raise err
    if errors:
        raise errors[0]
    return results


def state_name(state: Any) -> str:
    """A connection state as one of CONNECTED, SUSPENDED, LOST (kazoo's names).

    zabby's client reports more states (reconnected, read-only, expired); for a
    recipe they reduce to these three: usable, maybe usable again soon, gone.
    """
    name = str(getattr(state, "name", state)).upper()
    if "SUSPEND" in name or "DISCONNECT" in name:
        return "SUSPENDED"
    if "LOST" in name or "EXPIRE" in name or "CLOSED" in name or "AUTH_FAILED" in name:
        return "LOST"
    return "CONNECTED"


def session_id(client: Any) -> int | None:
    """The client's current session id (None before the first connect)."""
    cid = getattr(client, "client_id", None)
    if callable(cid):
        cid = cid()
    if isinstance(cid, tuple):
        cid = cid[0]
    if cid is None:
        cid = getattr(client, "session_id", None)
    return cid


class StateWatcher:
    """Forwards the client's connection states to a recipe while it is registered."""

    def __init__(self, client: Any, fn: Callable[[str], Any]) -> None:
        self.client = client
        self.fn = fn
        self.registered = False

    def _listener(self, state: Any) -> None:
        res = self.fn(state_name(state))
        if inspect.isawaitable(res):
            asyncio.ensure_future(res)

    def add(self) -> None:
        if not self.registered:
            self.client.add_listener(self._listener)
            self.registered = True

    def remove(self) -> None:
        if self.registered:
            self.registered = False
            try:
                self.client.remove_listener(self._listener)
            except (KeyError, ValueError):
                pass


async def claim_ephemeral(client: Any, path: str, token: bytes, uncertain: set[str],
                          key: str) -> bool:
    """Claim an item by creating the ephemeral `path` holding `token`: True when we hold
    it, including when an earlier create of ours took effect but its reply was lost (the
    node holds our token and belongs to our session).  On a retryable error `key` goes to
    `uncertain` before the error propagates: listings skip claimed items, so the caller
    must look at this one again first, or it stays claimed by nobody."""
    try:
        await client.create(path, token, ephemeral=True)
        return True
    except RETRYABLE:
        uncertain.add(key)
        raise
    except NoNodeError:
        return False
    except NodeExistsError:
        try:
            data, stat = await client.get(path)
        except NoNodeError:
            return False  # released meanwhile: the next listing sees it again
        return data == token and stat.ephemeralOwner == session_id(client)


async def delete_quietly(client: Any, path: str) -> None:
    """Delete `path`; already gone is fine."""
    try:
        await client.delete(path)
    except NoNodeError:
        pass


_ORPHANS: set[asyncio.Task[Any]] = set()


# How long a recipe that gives up waits to delete its node before leaving that to a
# background task (remove_orphan), and how far past its timeout an acquire may run
# while a request of its attempt hangs on a server that stopped answering (bounded).
INLINE_CLEANUP = 0.5
TIMEOUT_GRACE = 0.25


async def bounded(aw: Awaitable[Any], deadline: Deadline, what: str) -> Any:
    """``await aw``, but raise LockTimeout once ``deadline`` (plus TIMEOUT_GRACE) has
    passed, even while one of its requests waits on a server that stopped answering:
    the client gives such a server up only after 2/3 of the session timeout, so an
    acquire(timeout=3) took up to 11 s in the recipe fault test. Only for attempts
    whose interruption is safe: each request of it is idempotent or found again by
    the caller's cleanup (a Lock's create is: its node carries the attempt's prefix)."""
    left = deadline.left()
    if left is None:
        return await aw
    try:
        return await asyncio.wait_for(aw, left + TIMEOUT_GRACE)
    except TimeoutError:
        raise LockTimeout(f"{what} not acquired within the timeout") from None


async def remove_orphan(find: Callable[[], Awaitable[str | None]], client: Any) -> None:
    """Delete the node ``find()`` names, now if the connection allows, else later.

    A contender that gives up (timeout, cancel) while the connection is down cannot
    delete its ephemeral node then, and the node would outlive the attempt for as
    long as the session lives, blocking every contender queued behind it. So a
    failed delete is finished by a background task once the client reconnects;
    it ends when the node is gone, the session expired (the server removed the
    node) or the client was closed. ``find`` must name a node no later attempt
    reuses (recipes give each attempt its own name prefix).
    """
    async def remove() -> None:
        node = await find()
        if node is not None:
            await delete_quietly(client, node)

    try:
        # bounded: on a connection that hangs (a paused server) a request waits until
        # the client gives the server up (2/3 of the session timeout), and the caller
        # is usually returning a timeout of its own
        await asyncio.wait_for(remove(), INLINE_CLEANUP)
        return
    except (*RETRYABLE, TimeoutError):
        pass
    except Exception:  # noqa: BLE001 - expired or closed: the node dies with the session
        return

    async def later() -> None:
        with contextlib.suppress(Exception):
            await retrying(remove)

    task = asyncio.ensure_future(later())
    _ORPHANS.add(task)
    task.add_done_callback(_ORPHANS.discard)
