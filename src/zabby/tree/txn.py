"""Transactions: what `DataTree.prepare` produces and `DataTree.apply` consumes.

The records follow the txn section of ZooKeeper's `zookeeper.jute`, so a txn log
written by zabby has the same shape as ZooKeeper's: a `TxnHeader` followed by
a body whose type depends on the header's `type`.

`SubTxn` is jute's `Txn` (a type and the serialized body), used inside
`MultiTxn`; the name `Txn` here is the whole (header, body) pair.
"""

from __future__ import annotations

from typing import Any

from ..wire.constants import Op
from ..wire.jute import ProtocolError, Record, vector
from .txn_records import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateIfNotExistsTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    RemoveRecursiveTxn,
    SetACLTxn,
    SetDataTxn,
    SubTxn,
    TxnHeader,
)

__all__ = [
    "CheckVersionTxn",
    "CloseSessionTxn",
    "CreateContainerTxn",
    "CreateIfNotExistsTxn",
    "CreateSessionTxn",
    "CreateTTLTxn",
    "CreateTxn",
    "DeleteTxn",
    "ErrorTxn",
    "MultiTxn",
    "RemoveRecursiveTxn",
    "SetACLTxn",
    "SetDataTxn",
    "SubTxn",
    "TXN_BODY",
    "Txn",
    "TxnHeader",
]


class MultiTxn(Record):
    FIELDS = (("txns", vector(SubTxn)),)
    # `_ops`: the (type, body) pairs a leader's prepare built this txn from, so
    # applying it locally does not decode every body again (a 58k-op multi spent
    # a third of its apply there). Txns read from a log or a peer decode as before.
    __slots__ = ("txns", "_ops")
    _ops: list[tuple[int, Any]]

    @classmethod
    def of(cls, ops: list[tuple[int, Any]]) -> MultiTxn:
        txn = cls([SubTxn(t, body.to_bytes()) for t, body in ops])
        txn._ops = ops
        return txn

    def ops(self) -> list[tuple[int, Any]]:
        """The (type, body) pairs, bodies decoded."""
        try:
            return self._ops
        except AttributeError:
            pass
        out = []
        get = MULTI_SUB_BODY.get
        for sub in self.txns or ():
            body_type = get(sub.type)
            if body_type is None:
                raise ProtocolError(f"invalid type of op in multi txn: {sub.type}")
            out.append((sub.type, body_type.decode(sub.data or b"")))
        return out


# Body record of each txn type (header.type). Session creation/close and
# errors included; a closeSession txn may also have no body (older logs).
TXN_BODY: dict[int, Any] = {
    Op.CREATE: CreateTxn,
    Op.CREATE2: CreateTxn,
    Op.CREATE_TTL: CreateTTLTxn,
    Op.CREATE_CONTAINER: CreateContainerTxn,
    Op.DELETE: DeleteTxn,
    Op.DELETE_CONTAINER: DeleteTxn,
    Op.SET_DATA: SetDataTxn,
    Op.RECONFIG: SetDataTxn,
    Op.SET_ACL: SetACLTxn,
    Op.CHECK: CheckVersionTxn,
    Op.MULTI: MultiTxn,
    Op.CREATE_SESSION: CreateSessionTxn,
    Op.CLOSE_SESSION: CloseSessionTxn,
    Op.ERROR: ErrorTxn,
}

# Sub-txn types a MultiTxn may hold (create2 included: prepare emits it, and
# ZooKeeper 3.8's apply stops at it -- see DataTree.apply).
MULTI_SUB_BODY: dict[int, Any] = {
    Op.CREATE: CreateTxn,
    Op.CREATE2: CreateTxn,
    Op.CREATE_TTL: CreateTTLTxn,
    Op.CREATE_CONTAINER: CreateContainerTxn,
    Op.DELETE: DeleteTxn,
    Op.DELETE_CONTAINER: DeleteTxn,
    Op.SET_DATA: SetDataTxn,
    Op.CHECK: CheckVersionTxn,
    Op.ERROR: ErrorTxn,
    # ClickHouse Keeper's multi ops (zabby.keeperExtensions): checkNotExists,
    # createIfNotExists, removeRecursive
    501: CheckVersionTxn,
    502: CreateIfNotExistsTxn,
    503: RemoveRecursiveTxn,
}


class Txn:
    """A transaction: header plus a body record chosen by `header.type`."""

    __slots__ = ("header", "body")

    def __init__(self, header: TxnHeader, body: Any) -> None:  # a record or None
        self.header = header
        self.body = body

    @property
    def type(self) -> int:
        return self.header.type

    @property
    def zxid(self) -> int:
        return self.header.zxid

    @property
    def is_error(self) -> bool:
        return self.header.type == Op.ERROR

    def encode(self) -> bytes:
        out = bytearray()
        self.header.encode(out)
        if self.body is not None:
            self.body.encode(out)
        return bytes(out)

    @classmethod
    def decode(cls, buf) -> Txn:
        header, pos = TxnHeader.decode_from(buf, 0)
        body_type = TXN_BODY.get(header.type)
        if body_type is None:
            raise ProtocolError(f"unknown txn type {header.type}")
        body = None
        if pos < len(buf) or header.type != Op.CLOSE_SESSION:
            body, pos = body_type.decode_from(buf, pos)
        return cls(header, body)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Txn):
            return NotImplemented
        return self.header == other.header and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.header, self.body))

    def __repr__(self) -> str:
        return f"Txn({self.header!r}, {self.body!r})"
