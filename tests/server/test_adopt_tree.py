"""A tree the server starts serving mid-life (a follower's SNAP from the leader, an
admin restore) is served with the server's own settings, like the tree it started
with: the settings belong to the server, not to the data."""

from __future__ import annotations

from zabby.server.config import parse_config
from zabby.server.core import ZabbyServer
from zabby.tree import DataTree

CONF = (
    "dataDir=/nonexistent\nclientPort=2181\n"
    "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
    "zookeeper.enforceQuota=true\ndigest.enabled=false\n"
)


def settings(tree: DataTree) -> tuple:
    return (tree.acl_providers.get("sasl"), tree.enforce_quota, tree.digest_enabled,
            tree.keeper_extensions)


def test_an_adopted_tree_gets_the_servers_settings():
    server = ZabbyServer(parse_config(CONF))
    first = settings(server.tree)
    assert first == (True, True, False, False)
    fresh = DataTree()
    assert settings(fresh) != first  # a tree on its own has the defaults
    server.adopt_tree(fresh)
    assert server.tree is fresh and server.watches is fresh.watches
    assert settings(fresh) == first
