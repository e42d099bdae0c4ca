"""The replicated state machine: znodes, ACLs, sessions' ephemerals, watches.

Pure and deterministic: time and zxids come in as arguments.
"""

from .acl import check_perm, digest_id
from .datatree import SPECIAL_PATHS, ApplyResult, DataTree, RequestContext
from .paths import is_valid_path
from .txn import (
    TXN_BODY,
    CheckVersionTxn,
    CloseSessionTxn,
    CreateContainerTxn,
    CreateSessionTxn,
    CreateTTLTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    SubTxn,
    Txn,
    TxnHeader,
)
from .watches import WatchManager
from .znode import ZNode

__all__ = [
    "SPECIAL_PATHS",
    "TXN_BODY",
    "ApplyResult",
    "CheckVersionTxn",
    "CloseSessionTxn",
    "CreateContainerTxn",
    "CreateSessionTxn",
    "CreateTTLTxn",
    "CreateTxn",
    "DataTree",
    "DeleteTxn",
    "ErrorTxn",
    "MultiTxn",
    "RequestContext",
    "SetACLTxn",
    "SetDataTxn",
    "SubTxn",
    "Txn",
    "TxnHeader",
    "WatchManager",
    "ZNode",
    "check_perm",
    "digest_id",
    "is_valid_path",
]
