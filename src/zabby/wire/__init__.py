"""The ZooKeeper client protocol, sans-IO: records, framing, opcodes and codes."""

from .constants import (
    DEFAULT_MAX_BUFFER,
    XID_AUTH,
    XID_NOTIFICATION,
    XID_PING,
    XID_SET_WATCHES,
    AddWatchMode,
    CreateMode,
    Err,
    EventType,
    KeeperState,
    Op,
    Perm,
    WatcherType,
)
from .jute import ProtocolError, Record
from .protocol import *  # noqa: F403
from .records import *  # noqa: F403

__all__ = [  # noqa: F405 - the star imports above fill in the rest
    "DEFAULT_MAX_BUFFER", "XID_AUTH", "XID_NOTIFICATION", "XID_PING", "XID_SET_WATCHES",
    "AddWatchMode", "CreateMode", "Err", "EventType", "KeeperState", "Op", "Perm",
    "WatcherType", "ProtocolError", "Record", "Id", "ACL", "Stat",
]
