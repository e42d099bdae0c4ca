"""Real servers on loopback for tests: zabby, and Apache ZooKeeper 3.8 to compare with.

    from zabby.testing import ZabbyServer
    with ZabbyServer(tmp_path) as srv:
        ...  # connect any ZooKeeper client to srv.hosts

pytest users get fixtures by adding ``pytest_plugins = ["zabby.testing.pytest_plugin"]``
to their conftest.py (see README.md).
"""

from .rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient, Reply
from .servers import (
    ServerStartError,
    ZabbyEnsemble,
    ZabbyServer,
    ZooKeeperEnsemble,
    ZooKeeperServer,
    find_zookeeper,
    four_letter_word,
    free_port,
)

__all__ = [
    "OPEN_ACL_UNSAFE",
    "ConnectionClosed",
    "RawClient",
    "Reply",
    "ServerStartError",
    "ZabbyEnsemble",
    "ZabbyServer",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "find_zookeeper",
    "four_letter_word",
    "free_port",
]
