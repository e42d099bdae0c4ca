"""Lease and MultiLease: a time-bounded claim that needs no live session (kazoo's
NonBlockingLease / MultiNonBlockingLease, same layout, so kazoo and zabby contenders
share leases).

``<path>/lease_holder`` holds JSON ``{"version": 1, "holder": ident, "end":
"%Y-%m-%dT%H:%M:%S"}`` (UTC). Obtaining takes the Lock at ``<path>`` (kazoo's lock
naming), reads the holder record, and if the lease is free, expired or already ours,
writes a new end (compare-and-set on the znode version besides); then lets the lock
go. ``obtain`` never waits for the lease itself, only for that short lock.

Guarantee: at most one holder per lease at any instant *as measured by the clocks of
the contenders* (a lease is a time promise: clocks that disagree by more than the
margin you leave can break it). Holding needs no session, so connection loss and
session expiry do not end a lease; only time does. Renew by obtaining again (same
identifier) before ``end``.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable
from typing import Any

from ._util import BadVersionError, NodeExistsError, NoNodeError, call, retrying
from .lock import Lock

__all__ = ["Lease", "MultiLease"]

_FMT = "%Y-%m-%dT%H:%M:%S"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Lease:
    """``lease = zk.Lease(path, duration, ident); if await lease.obtain(): ...``."""

    _version = 1
    # SyncClient's zk.NonBlockingLease(...) tries at once, as kazoo's does
    _obtain_on_create = True

    def __init__(self, client: Any, path: str, duration: dt.timedelta | float,
                 identifier: str | None = None,
                 utcnow: Callable[[], dt.datetime] = _utcnow) -> None:
        self.client = client
        self.path = path
        self.duration = (duration if isinstance(duration, dt.timedelta)
                         else dt.timedelta(seconds=duration))
        self.identifier = identifier or socket.gethostname()
        self.utcnow = utcnow
        self.obtained = False
        self.end: dt.datetime | None = None

    async def obtain(self) -> bool:
        holder_path = f"{self.path.rstrip('/')}/lease_holder"

        async def attempt() -> bool:
            now = await call(self.utcnow)  # sync or async (SyncClient wraps it)
            try:
                raw, stat = await self.client.get(holder_path)
                version: int | None = stat.version
            except NoNodeError:
                raw, version = b"", None
            if raw:
                try:
                    cur = json.loads(raw.decode("utf-8"))
                    end = dt.datetime.strptime(cur["end"], _FMT)
                    holder = cur["holder"]
                except (ValueError, KeyError, TypeError):
                    return False  # not a lease record we understand: never take it
                if cur.get("version") != self._version:
                    return False  # a newer format: leave it to its writers
                if holder != self.identifier and now < end:
                    return False  # someone else holds it
            new_end = now + self.duration
            body = json.dumps({"version": self._version, "holder": self.identifier,
                               "end": new_end.strftime(_FMT)}).encode("utf-8")
            try:
                if version is None:
                    await self.client.create(holder_path, body, makepath=True)
                else:
                    await self.client.set(holder_path, body, version=version)
            except (BadVersionError, NodeExistsError, NoNodeError):
                return False  # someone else wrote first
            self.end = new_end
            return True

        # kazoo's contenders write under this lock (delete + create): we take it too
        async with Lock(self.client, self.path, self.identifier):
            self.obtained = await retrying(attempt)
        return self.obtained

    def __bool__(self) -> bool:
        return self.obtained


class MultiLease:
    """One of ``count`` leases at ``path/0`` .. ``path/count-1`` (kazoo's
    MultiNonBlockingLease); truthy if obtained."""

    def __init__(self, client: Any, count: int, path: str, duration: dt.timedelta | float,
                 identifier: str | None = None,
                 utcnow: Callable[[], dt.datetime] = _utcnow) -> None:
        self.leases = [Lease(client, f"{path.rstrip('/')}/{i}", duration, identifier, utcnow)
                       for i in range(count)]
        self.obtained = False
        self.lease: Lease | None = None

    _obtain_on_create = True

    async def obtain(self) -> bool:
        for lease in self.leases:
            if await lease.obtain():
                self.obtained, self.lease = True, lease
                return True
        self.obtained, self.lease = False, None
        return False

    def __bool__(self) -> bool:
        return self.obtained
