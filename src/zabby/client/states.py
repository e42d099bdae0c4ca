"""Typed results and states of `zabby.client`, shaped like kazoo's."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "ACL", "ConnectionState", "EventType", "Id", "KazooState", "KeeperState",
    "WatchedEvent", "ZnodeStat",
]

from zabby.wire import ACL, Id  # noqa: E402 - re-exported for users' ACL lists


class ConnectionState(StrEnum):
    """The client's connection, as listeners and ``Client.states()`` see it.

    CONNECTED: a new session is up (first start, or a fresh one after expiry).
    SUSPENDED: the connection dropped; the session may be alive, the client is
    reconnecting. A lock holder must assume it may have lost its lock.
    RECONNECTED: connected again, same session: ephemerals and watches kept.
    READ_ONLY: connected to a read-only server (``read_only=True``).
    LOST (alias EXPIRED): the session is gone (expired or closed): its ephemerals
    and watches too. The client then makes a new session (CONNECTED) unless stopped.
    The values are strings, so ``state == "LOST"`` works as with kazoo's KazooState.
    """

    CONNECTED = "CONNECTED"
    SUSPENDED = "SUSPENDED"
    RECONNECTED = "RECONNECTED"
    READ_ONLY = "READ_ONLY"
    LOST = "LOST"
    EXPIRED = "LOST"



KazooState = ConnectionState


class KeeperState:
    """The ``state`` of a WatchedEvent (kazoo's KeeperState values)."""

    AUTH_FAILED = "AUTH_FAILED"
    CONNECTED = "CONNECTED"
    CONNECTED_RO = "CONNECTED_RO"
    CONNECTING = "CONNECTING"
    CLOSED = "CLOSED"
    EXPIRED_SESSION = "EXPIRED_SESSION"


class EventType:
    """The ``type`` of a WatchedEvent (kazoo's names, plus the watch-removed ones)."""

    CREATED = "CREATED"
    DELETED = "DELETED"
    CHANGED = "CHANGED"
    CHILD = "CHILD"
    NONE = "NONE"
    DATA_WATCH_REMOVED = "DATA_WATCH_REMOVED"
    CHILD_WATCH_REMOVED = "CHILD_WATCH_REMOVED"
    PERSISTENT_WATCH_REMOVED = "PERSISTENT_WATCH_REMOVED"


# wire EventType number -> our name
EVENT_NAMES = {
    -1: EventType.NONE, 1: EventType.CREATED, 2: EventType.DELETED, 3: EventType.CHANGED,
    4: EventType.CHILD, 5: EventType.DATA_WATCH_REMOVED, 6: EventType.CHILD_WATCH_REMOVED,
    7: EventType.PERSISTENT_WATCH_REMOVED,
}


class WatchedEvent(NamedTuple):
    """What a watch reports: ``type`` (EventType), ``state`` (KeeperState), ``path``."""

    type: str
    state: str
    path: str | None


class ZnodeStat(NamedTuple):
    """A znode's Stat, with ZooKeeper's (and kazoo's) field names and kazoo's
    friendlier properties."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int

    @classmethod
    def from_wire(cls, s) -> ZnodeStat:
        return cls(s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion,
                   s.ephemeralOwner, s.dataLength, s.numChildren, s.pzxid)

    @property
    def acl_version(self) -> int:
        return self.aversion

    @property
    def children_version(self) -> int:
        return self.cversion

    @property
    def created(self) -> float:
        """Creation time, seconds since the epoch."""
        return self.ctime / 1000.0

    @property
    def last_modified(self) -> float:
        return self.mtime / 1000.0

    @property
    def owner_session_id(self) -> int | None:
        """The session of an ephemeral node; None for any other node."""
        return self.ephemeralOwner or None

    @property
    def creation_transaction_id(self) -> int:
        return self.czxid

    @property
    def last_modified_transaction_id(self) -> int:
        return self.mzxid

    @property
    def data_length(self) -> int:
        return self.dataLength

    @property
    def children_count(self) -> int:
        return self.numChildren
