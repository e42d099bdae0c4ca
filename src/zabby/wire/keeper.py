"""ClickHouse Keeper's extension opcodes (500-507): numbers and request records.

Layouts as ClickHouse Keeper puts them on the wire (``ZooKeeperCommon``):

* FilteredList (500): path, watch (bool), list type (one byte: 0 all, 1 persistent
  only, 2 ephemeral only; older clients sent a 4-byte int, also read); answered with
  getChildren2's body (names, Stat).
* CheckNotExists (501): check's body (path, version); no reply body. Also a multi op.
* CreateIfNotExists (502): create's body (path, data, acl, flags); reply: the path.
* RemoveRecursive (503): path, remove_nodes_limit (uint32); no reply body.
* ListRecursive (507): path, children_nodes_limit (uint32); reply: every descendant's
  full path (a vector of strings), breadth first.

A server answers them only with ``zabby.keeperExtensions=true``; otherwise they are
unknown opcodes, exactly as Apache ZooKeeper 3.8 treats them.
"""

from __future__ import annotations

from .constants import Op
from .jute import (
    INT,
    ProtocolError,
    Record,
    read_bool,
    read_int,
    read_ustring,
    vector,
    write_ustring,
)

__all__ = [
    "CHECK_NOT_EXISTS",
    "CREATE_IF_NOT_EXISTS",
    "FILTERED_LIST",
    "KEEPER_OPS",
    "LIST_ALL",
    "LIST_EPHEMERAL_ONLY",
    "LIST_PERSISTENT_ONLY",
    "LIST_RECURSIVE",
    "REMOVE_RECURSIVE",
    "FilteredListRequest",
    "ListRecursiveRequest",
    "ListRecursiveResponse",
    "RemoveRecursiveRequest",
]

FILTERED_LIST = Op.FILTERED_LIST
CHECK_NOT_EXISTS = Op.CHECK_NOT_EXISTS
CREATE_IF_NOT_EXISTS = Op.CREATE_IF_NOT_EXISTS
REMOVE_RECURSIVE = Op.REMOVE_RECURSIVE
LIST_RECURSIVE = Op.LIST_RECURSIVE
KEEPER_OPS = frozenset({FILTERED_LIST, CHECK_NOT_EXISTS, CREATE_IF_NOT_EXISTS,
                        REMOVE_RECURSIVE, LIST_RECURSIVE})

# ListRequestType
LIST_ALL = 0
LIST_PERSISTENT_ONLY = 1
LIST_EPHEMERAL_ONLY = 2


class FilteredListRequest(Record):
    """path, watch, list type (a single unsigned byte, not a jute int)."""

    __slots__ = ("path", "watch", "listType")
    # hand-written codec (jute has no byte type); no FIELDS, so the metaclass keeps it

    def __init__(self, path=None, watch=False, listType=LIST_ALL):  # noqa: N803 - wire name
        self.path = path
        self.watch = watch
        self.listType = listType

    def encode(self, out: bytearray) -> None:
        write_ustring(out, self.path)
        out += b"\x01" if self.watch else b"\x00"
        out.append(self.listType & 0xFF)

    @classmethod
    def decode_from(cls, buf, pos: int):
        path, pos = read_ustring(buf, pos)
        watch, pos = read_bool(buf, pos)
        n = len(buf)
        if pos >= n:
            raise ProtocolError("truncated FilteredListRequest")
        if n - pos == 4 and buf[pos] == 0 and buf[pos + 1] == 0 and buf[pos + 2] == 0:
            # older ClickHouse clients wrote the type as a jute int (4 bytes)
            return cls(path, watch, buf[pos + 3]), n
        return cls(path, watch, buf[pos]), pos + 1

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and self.path == other.path
                and self.watch == other.watch and self.listType == other.listType)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FilteredListRequest(path={self.path!r}, watch={self.watch!r}, listType={self.listType!r})"


class _PathLimit(Record):
    """path, then an unsigned 32-bit limit (Keeper's uint32_t)."""

    __slots__ = ("path", "limit")

    def __init__(self, path=None, limit=0xFFFFFFFF):
        self.path = path
        self.limit = limit

    def encode(self, out: bytearray) -> None:
        write_ustring(out, self.path)
        out += INT.pack(self.limit - 0x100000000 if self.limit >= 0x80000000 else self.limit)

    @classmethod
    def decode_from(cls, buf, pos: int):
        path, pos = read_ustring(buf, pos)
        limit, pos = read_int(buf, pos)
        return cls(path, limit & 0xFFFFFFFF), pos

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.path == other.path and self.limit == other.limit

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, limit={self.limit!r})"


class RemoveRecursiveRequest(_PathLimit):
    __slots__ = ()


class ListRecursiveRequest(_PathLimit):
    __slots__ = ()


class ListRecursiveResponse(Record):
    FIELDS = (("children", vector("ustring")),)
