"""The txn records of ZooKeeper's `zookeeper.jute` (and ClickHouse Keeper's two multi
sub-txns): the spec from which `python -m zabby.cli.gen_records` writes
`tree/txn_records.py`, as `wire/record_spec.py` is for `wire/records.py`. `MultiTxn`
stays in txn.py (a jute `Record`: it keeps the ops a leader built it from).
"""

from __future__ import annotations

from ..wire.jute import Record, vector
from ..wire.record_spec import ACL


class TxnHeader(Record):
    FIELDS = (
        ("clientId", "long"),
        ("cxid", "int"),
        ("zxid", "long"),
        ("time", "long"),
        ("type", "int"),
    )


class CreateTxn(Record):
    FIELDS = (
        ("path", "ustring"),
        ("data", "buffer"),
        ("acl", vector(ACL)),
        ("ephemeral", "bool"),
        ("parentCVersion", "int"),
    )


class CreateTTLTxn(Record):
    FIELDS = (
        ("path", "ustring"),
        ("data", "buffer"),
        ("acl", vector(ACL)),
        ("parentCVersion", "int"),
        ("ttl", "long"),
    )


class CreateContainerTxn(Record):
    FIELDS = (
        ("path", "ustring"),
        ("data", "buffer"),
        ("acl", vector(ACL)),
        ("parentCVersion", "int"),
    )


class DeleteTxn(Record):
    FIELDS = (("path", "ustring"),)


class SetDataTxn(Record):
    FIELDS = (("path", "ustring"), ("data", "buffer"), ("version", "int"))


class CheckVersionTxn(Record):
    FIELDS = (("path", "ustring"), ("version", "int"))


class SetACLTxn(Record):
    FIELDS = (("path", "ustring"), ("acl", vector(ACL)), ("version", "int"))


class CreateSessionTxn(Record):
    FIELDS = (("timeOut", "int"),)


class CloseSessionTxn(Record):
    FIELDS = (("paths2Delete", vector("ustring")),)


class CreateIfNotExistsTxn(Record):
    """ClickHouse Keeper's createIfNotExists inside a multi (sub-txn 502): a create's
    fields, and whether it created (False: the node was there, nothing applies)."""

    FIELDS = (
        ("path", "ustring"),
        ("data", "buffer"),
        ("acl", vector(ACL)),
        ("ephemeral", "bool"),
        ("parentCVersion", "int"),
        ("created", "bool"),
    )


class RemoveRecursiveTxn(Record):
    """ClickHouse Keeper's removeRecursive inside a multi (sub-txn 503): the paths to
    delete, children before parents. (On its own it is logged as a multi of deletes.)"""

    FIELDS = (("paths", vector("ustring")),)


class ErrorTxn(Record):
    FIELDS = (("err", "int"),)


class SubTxn(Record):
    """jute `Txn`: one op of a multi, its body serialized."""

    FIELDS = (("type", "int"), ("data", "buffer"))
