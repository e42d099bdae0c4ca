"""A znode: data, ACL, children and the persisted stat fields."""

from __future__ import annotations

from typing import Any, Final

from ..wire.records import Stat

__all__ = ["CONTAINER_OWNER", "TTL_MAX", "ZNode", "client_ephemeral_owner", "ephemeral_kind", "ttl_owner", "ttl_of"]

# EphemeralType encodings of ephemeralOwner (signed 64-bit).
CONTAINER_OWNER: Final = -0x8000000000000000
_EXTENDED_MASK: Final = -0x100000000000000  # 0xff00000000000000 as a signed long
_RESERVED_MASK: Final = 0x00FFFF0000000000
_VALUE_MASK: Final = ~(_EXTENDED_MASK | _RESERVED_MASK)  # low 40 bits
TTL_MAX = _VALUE_MASK  # 0xffffffffff ms, about 34 years

VOID: Final = 0
NORMAL: Final = 1
CONTAINER: Final = 2
TTL: Final = 3


def ttl_owner(ttl: int) -> int:
    """EphemeralType.TTL.toEphemeralOwner (the caller has checked 0 < ttl <= TTL_MAX)."""
    return _EXTENDED_MASK | ttl


def ttl_of(owner: int) -> int:
    return owner & _VALUE_MASK


def ephemeral_kind(owner: int, extended: bool) -> int:
    """EphemeralType.get: VOID, NORMAL (a session), CONTAINER or TTL."""
    if extended and (owner & _EXTENDED_MASK) == _EXTENDED_MASK:
        if (owner & _RESERVED_MASK) >> 40 == 0:
            return TTL
        # ZooKeeper throws IllegalArgumentException here; such owners cannot be
        # created through the API (session ids never have the top byte 0xff).
        return NORMAL
    if owner == CONTAINER_OWNER:
        return CONTAINER
    return VOID if owner == 0 else NORMAL


def client_ephemeral_owner(owner: int, extended: bool) -> int:
    """The ephemeralOwner clients see: 0 for containers and TTL nodes."""
    return owner if ephemeral_kind(owner, extended) == NORMAL else 0


class ZNode:
    """One znode. `cversion` is ZooKeeper's *persisted* cversion: it counts
    child creations only; the reported Stat.cversion is ``2 * cversion -
    numChildren`` (creations plus deletions), exactly as DataNode.copyStat.

    `children` is None for a leaf (most znodes) or a dict of child names in
    insertion order (used as an ordered set); a value is None or, once the
    parent has been listed, the name's spread Java hash (see javaorder).
    """

    __slots__ = (
        "data",
        "acl",
        "children",
        "czxid",
        "mzxid",
        "ctime",
        "mtime",
        "version",
        "cversion",
        "aversion",
        "ephemeral_owner",
        "pzxid",
        "child_cap",
    )
    # Any, not int: compiled (mypyc), an int attribute is a C integer boxed again on
    # every read from Python or into a record (stat() boxes eight of them per read)
    czxid: Any
    mzxid: Any
    ctime: Any
    mtime: Any
    version: Any
    cversion: Any
    aversion: Any
    ephemeral_owner: Any
    pzxid: Any
    child_cap: Any

    # Every argument has a default: compiled (mypyc), ZNode.__new__(ZNode) runs
    # __init__ without arguments (storage's readers use `restored` below instead).
    def __init__(self, data=None, acl=None, zxid: int = 0, time: int = 0,
                 ephemeral_owner: int = 0) -> None:
        self.data = data
        self.acl = acl
        self.children: dict[str, int | None] | None = None
        # boxed once, shared by the fields (as interpreted): compiled, each assignment
        # of the C int `zxid` to an Any field would box a new int (~100 B a node)
        z: Any = zxid
        t: Any = time
        self.czxid = z
        self.mzxid = z
        self.pzxid = z
        self.ctime = t
        self.mtime = t
        self.version = 0
        self.cversion = 0
        self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        # capacity of the Java HashSet ZooKeeper would hold the children in
        # (0: never had children); decides getChildren order (see javaorder)
        self.child_cap = 0

    @property
    def data_length(self) -> int:
        d = self.data
        return 0 if d is None else len(d)

    @property
    def num_children(self) -> int:
        c = self.children
        return 0 if c is None else len(c)

    def stat(self, extended: bool = False) -> Stat:
        """The wire Stat (DataNode.copyStat)."""
        n = self.num_children
        owner = self.ephemeral_owner
        if owner:
            owner = client_ephemeral_owner(owner, extended)
        d = self.data
        cv = (self.cversion * 2 - n) & 0xFFFFFFFF
        if cv >= 0x80000000:
            cv -= 0x100000000
        return Stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            cv,
            self.aversion,
            owner,
            0 if d is None else len(d),
            n,
            self.pzxid,
        )

    def __repr__(self) -> str:
        return f"ZNode(data={self.data!r}, stat={self.stat()!r})"


def restored(data: Any, acl: Any, czxid: Any, mzxid: Any, ctime: Any, mtime: Any,
             version: Any, cversion: Any, aversion: Any, owner: Any, pzxid: Any,
             child_cap: Any = 0) -> ZNode:
    """A node as a snapshot (zabby's or ZooKeeper's) stores it: every stat field
    given, no children (the reader attaches them once the whole tree is read)."""
    node = ZNode(data, acl)
    node.czxid = czxid
    node.mzxid = mzxid
    node.pzxid = pzxid
    node.ctime = ctime
    node.mtime = mtime
    node.version = version
    node.cversion = cversion
    node.aversion = aversion
    node.ephemeral_owner = owner
    node.child_cap = child_cap
    return node
