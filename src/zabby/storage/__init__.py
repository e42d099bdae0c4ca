"""Durable storage: the transaction log, snapshots, recovery and retention.

Everything goes through an injectable file layer (`zabby.storage.fs`):
`RealFS` for the server, `SimulatedFS` for tests (crashes, torn writes,
ENOSPC/EIO). Layout, as ZooKeeper's (zabby's own formats inside the files)::

    <dataLogDir>/version-2/log.<hex zxid>        txn log segments
    <dataDir>/version-2/snapshot.<hex zxid>      snapshots

See txnlog.py and snapshot.py for the file formats.
"""

from .errors import CorruptDataError, StorageError
from .fs import RealFS, SimulatedFS
from .recovery import (
    CheckReport,
    Progress,
    RecoveryReport,
    check,
    list_snapshots,
    purge,
    recover,
)
from .snapshot import load_snapshot, read_snapshot_info, write_snapshot
from .txnlog import TxnLog

__all__ = [
    "CheckReport",
    "CorruptDataError",
    "Progress",
    "RealFS",
    "RecoveryReport",
    "SimulatedFS",
    "StorageError",
    "TxnLog",
    "check",
    "list_snapshots",
    "load_snapshot",
    "purge",
    "read_snapshot_info",
    "recover",
    "write_snapshot",
]
