"""zabby's ZooKeeper client: `Client` (asyncio) and `SyncClient` (blocking).

    from zabby.client import Client
    async with Client("127.0.0.1:2181/app") as zk:
        await zk.create("/jobs/j-", b"x", sequence=True, ephemeral=True, makepath=True)
        data, stat = await zk.get("/jobs")

Method names, arguments, results and exception names follow kazoo's, so kazoo users
feel at home; what kazoo lacks (persistent and recursive watches, TTL and container
nodes, multi_read, get_ephemerals, whoami, watch re-registration) is here too.
"""

from .core import (
    OPEN_ACL_UNSAFE,
    AddWatch,
    Client,
    StateStream,
    Transaction,
    WatchStream,
    parse_hosts,
)
from .exceptions import *  # noqa: F403
from .exceptions import __all__ as _exc_all
from .security import (
    CREATOR_ALL_ACL,
    READ_ACL_UNSAFE,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)
from .states import (
    ACL,
    ConnectionState,
    EventType,
    Id,
    KazooState,
    KeeperState,
    WatchedEvent,
    ZnodeStat,
)
from .sync import SyncClient, SyncTransaction

__all__ = [
    "ACL", "AddWatch", "CREATOR_ALL_ACL", "Client", "ConnectionState", "EventType", "Id",
    "KazooState", "KeeperState", "OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE", "StateStream", "SyncClient",
    "SyncTransaction", "Transaction", "WatchStream", "WatchedEvent", "ZnodeStat",
    "make_acl", "make_digest_acl", "make_digest_acl_credential", "parse_hosts",
    *_exc_all,
]
