"""Numbers of the ZooKeeper 3.8 client protocol: opcodes, error codes, events, states.

Values follow `zookeeper.jute`, `ZooDefs.OpCode`, `KeeperException.Code`,
`Watcher.Event.EventType` and `Watcher.Event.KeeperState`.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final


class Op(IntEnum):
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    # ClickHouse Keeper's extensions (wire/keeper.py; zabby.keeperExtensions)
    FILTERED_LIST = 500
    CHECK_NOT_EXISTS = 501
    CREATE_IF_NOT_EXISTS = 502
    REMOVE_RECURSIVE = 503
    LIST_RECURSIVE = 507
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


class Err(IntEnum):
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class EventType(IntEnum):
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4
    DATA_WATCH_REMOVED = 5
    CHILD_WATCH_REMOVED = 6
    PERSISTENT_WATCH_REMOVED = 7


class KeeperState(IntEnum):
    DISCONNECTED = 0
    SYNC_CONNECTED = 3
    AUTH_FAILED = 4
    CONNECTED_READ_ONLY = 5
    SASL_AUTHENTICATED = 6
    CLOSED = 7
    EXPIRED = -112


class Perm(IntFlag):
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class CreateMode(IntEnum):
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6

    @property
    def ephemeral(self) -> bool:
        return self in (CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL)

    @property
    def sequential(self) -> bool:
        return self in (
            CreateMode.PERSISTENT_SEQUENTIAL,
            CreateMode.EPHEMERAL_SEQUENTIAL,
            CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
        )

    @property
    def container(self) -> bool:
        return self is CreateMode.CONTAINER

    @property
    def ttl(self) -> bool:
        return self in (
            CreateMode.PERSISTENT_WITH_TTL,
            CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
        )


class WatcherType(IntEnum):
    """`removeWatches` / `checkWatches` type argument."""

    CHILDREN = 1
    DATA = 2
    ANY = 3


class AddWatchMode(IntEnum):
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


# The opcodes, error codes, permissions and create modes that the request path
# compares, as plain `Final` ints beside their enums: mypyc folds them into the
# compiled code, where comparing with an IntEnum member costs a module-global and a
# class-attribute lookup (~60-90 ns a comparison). tests/wire/test_constants.py
# checks each against its member.
OP_CREATE: Final = 1
OP_DELETE: Final = 2
OP_EXISTS: Final = 3
OP_GET_DATA: Final = 4
OP_SET_DATA: Final = 5
OP_SET_ACL: Final = 7
OP_GET_CHILDREN: Final = 8
OP_SYNC: Final = 9
OP_GET_CHILDREN2: Final = 12
OP_CHECK: Final = 13
OP_MULTI: Final = 14
OP_CREATE2: Final = 15
OP_RECONFIG: Final = 16
OP_CREATE_CONTAINER: Final = 19
OP_DELETE_CONTAINER: Final = 20
OP_CREATE_TTL: Final = 21
OP_MULTI_READ: Final = 22
OP_AUTH: Final = 100
OP_SASL: Final = 102
OP_CREATE_SESSION: Final = -10
OP_CLOSE_SESSION: Final = -11
OP_ERROR: Final = -1
ERR_OK: Final = 0
ERR_NONODE: Final = -101
ERR_NOAUTH: Final = -102
ERR_NODEEXISTS: Final = -110
ERR_SESSIONMOVED: Final = -118
PERM_READ: Final = 1
PERM_WRITE: Final = 2
PERM_CREATE: Final = 4
PERM_DELETE: Final = 8
PERM_ADMIN: Final = 16
CM_EPHEMERAL: Final = 1
CM_PERSISTENT_SEQUENTIAL: Final = 2
CM_EPHEMERAL_SEQUENTIAL: Final = 3
CM_CONTAINER: Final = 4
CM_PERSISTENT_WITH_TTL: Final = 5
CM_PERSISTENT_SEQUENTIAL_WITH_TTL: Final = 6


# Special xids the client uses for out-of-band traffic.
XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8

# Default jute.maxbuffer: the largest frame (and znode data) accepted.
DEFAULT_MAX_BUFFER = 0xFFFFF  # 1 MiB - 1, as ZooKeeper's default
# The protocol version a 3.x client sends in its ConnectRequest.
PROTOCOL_VERSION = 0
