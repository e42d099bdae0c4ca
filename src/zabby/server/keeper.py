"""ClickHouse Keeper's extension opcodes on a server (``zabby.keeperExtensions=true``).

The requests are decoded by ``wire`` always; a server without the key treats them as
unknown opcodes (UNIMPLEMENTED, connection closed), as Apache ZooKeeper 3.8 does. With
it, `KeeperExtensions` answers them: the reads (FilteredList, CheckNotExists,
ListRecursive) from the local tree, the writes (CreateIfNotExists, RemoveRecursive)
through the ordinary write path -- prepared by the tree (``tree/keeper.py`` says how
they are logged), replicated like any write, and answered in Keeper's shape by
`keeper_reply`.

Feature discovery as Keeper offers it: ``/keeper/api_version`` (data ``"2"``, what
Keeper shows older clients) and ``/keeper/feature_flags`` (a bit set, most significant
bit first: filtered_list, multi_read, check_not_exists, create_if_not_exists,
remove_recursive) read like znodes (virtual: not in the tree, so not in snapshots), and
the four-letter words ``apiv`` and ``ftfl``.
"""

from __future__ import annotations

from ..tree.keeper import KEEPER_WRITES, SYSTEM_PATH, keeper_read
from ..wire.constants import Err, Op
from ..wire.keeper import CREATE_IF_NOT_EXISTS, REMOVE_RECURSIVE
from ..wire.protocol import MultiResponse
from ..wire.records import (
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    PathResponse,
    Stat,
    StatResponse,
)

__all__ = ["API_VERSION", "FEATURE_FLAGS", "KeeperExtensions", "feature_flags_bytes",
           "ftfl_text", "keeper_reply"]

API_VERSION = 2  # KeeperApiVersion::WITH_MULTI_READ, what Keeper answers older clients
# KeeperFeatureFlag, in Keeper's order (never reordered: the bit index is the value)
FEATURE_FLAGS = ("filtered_list", "multi_read", "check_not_exists", "create_if_not_exists",
                 "remove_recursive")
API_VERSION_PATH = SYSTEM_PATH + "/api_version"
FEATURE_FLAGS_PATH = SYSTEM_PATH + "/feature_flags"
KEEPER_WORDS = frozenset({"apiv", "ftfl"})


def feature_flags_bytes(enabled=FEATURE_FLAGS) -> bytes:
    """Keeper's bit set: flag i is bit 7 - i % 8 of byte i // 8."""
    out = bytearray((len(FEATURE_FLAGS) - 1) // 8 + 1)
    for i, name in enumerate(FEATURE_FLAGS):
        if name in enabled:
            out[i // 8] |= 1 << (7 - i % 8)
    return bytes(out)


def ftfl_text() -> str:
    """The ``ftfl`` four-letter word: one ``name<TAB>0|1`` line per flag."""
    return "".join(f"{name}\t1\n" for name in FEATURE_FLAGS)


def keeper_reply(op: int, res):
    """(err, body) of an applied Keeper write, in Keeper's reply shape."""
    if op == REMOVE_RECURSIVE:
        if isinstance(res.response, MultiResponse):
            return res.multi_err, None
        return res.err, None
    if op == CREATE_IF_NOT_EXISTS and res.err == 0 and res.response is None:
        return 0, PathResponse(res.path)  # the node was there: its path
    return res.err, res.response


def _stat(data: bytes) -> Stat:
    return Stat(0, 0, 0, 0, 0, 0, 0, 0, len(data), 0, 0)


class KeeperExtensions:
    """What a server with ``zabby.keeperExtensions=true`` adds."""

    def __init__(self, server) -> None:
        self.server = server
        self._system = {
            API_VERSION_PATH: str(API_VERSION).encode(),
            FEATURE_FLAGS_PATH: feature_flags_bytes(),
        }

    def handle(self, conn, xid: int, op: int, body, t0: int) -> None:
        """A Keeper request taken from the connection's backlog in order."""
        server = self.server
        if op in KEEPER_WRITES:
            server._write(conn, xid, op, body, t0)
            return
        s = conn.session
        err, resp = keeper_read(server.tree, op, body, conn.auth,
                                conn if s is not None else None)
        server._reply(conn, xid, op, err, resp, t0)

    def system_read(self, op: int, body):
        """A read of a node the tree lacks: Keeper's /keeper nodes, else NONODE."""
        path = getattr(body, "path", None)
        if path == SYSTEM_PATH:
            names = sorted(p.rsplit("/", 1)[1] for p in self._system)
            stat = Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, len(names), 0)
            if op == Op.GET_CHILDREN:
                return 0, GetChildrenResponse(names)
            if op == Op.GET_CHILDREN2:
                return 0, GetChildren2Response(names, stat)
            if op == Op.EXISTS:
                return 0, StatResponse(stat)
            if op == Op.GET_DATA:
                return 0, GetDataResponse(b"", stat)
            return int(Err.NONODE), None
        data = self._system.get(path)
        if data is None:
            return int(Err.NONODE), None
        if op == Op.GET_DATA:
            return 0, GetDataResponse(data, _stat(data))
        if op == Op.EXISTS:
            return 0, StatResponse(_stat(data))
        if op == Op.GET_CHILDREN:
            return 0, GetChildrenResponse([])
        if op == Op.GET_CHILDREN2:
            return 0, GetChildren2Response([], _stat(data))
        return int(Err.NONODE), None

    def four_letter_word(self, cmd: str) -> str:
        if cmd == "apiv":
            return str(API_VERSION)
        return ftfl_text()
