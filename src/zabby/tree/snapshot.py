"""Snapshot/restore of a DataTree (used by `zabby.storage` snapshots).

Kept apart from datatree.py on purpose: these two functions are the only
place outside DataTree that touches its private indexes, and they hold no
file format -- the storage layer decides how the items are laid out on disk.

`snapshot_items(tree)` gives every (path, node), parents before children and
each parent's children in insertion order; `restore(items, ...)` rebuilds a
tree from such a sequence (children are re-attached in the order they come,
so `getChildren` order -- which depends on insertion order and `child_cap` --
is the same as before).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..wire.constants import DEFAULT_MAX_BUFFER
from . import znode as zn
from .datatree import DataTree
from .znode import ZNode

__all__ = ["RestoreError", "restore", "snapshot_items"]


class RestoreError(ValueError):
    """The items do not form a tree (missing parent, duplicate path, no root)."""


def snapshot_items(tree: DataTree) -> Iterator[tuple[str, ZNode]]:
    """Every (path, node): "/" first, parents before children, children in
    insertion order. The nodes are the tree's own objects (do not mutate)."""
    return tree.iter_nodes()


def restore(
    items: Iterable[tuple[str, ZNode]],
    sessions: dict[int, int],
    last_zxid: int,
    *,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    extended_types: bool = False,
    max_never_used_ms: int = 0,
) -> DataTree:
    """A DataTree holding exactly `items` (nodes are adopted, not copied; their
    `children` are rebuilt from the paths), `sessions` and `last_zxid`."""
    tree = DataTree(max_buffer=max_buffer, extended_types=extended_types,
                    max_never_used_ms=max_never_used_ms)
    nodes: dict[str, ZNode] = {}
    ephemerals: dict[int, dict[str, None]] = {}
    containers: dict[str, None] = {}
    ttls: dict[str, None] = {}
    it = iter(items)
    first = next(it, None)
    if first is None or first[0] != "/":
        raise RestoreError("the first node is not the root '/'")
    root = first[1]
    root.children = None
    nodes["/"] = root
    kind_of = zn.ephemeral_kind
    CONTAINER, TTL = zn.CONTAINER, zn.TTL
    for path, node in it:
        i = path.rfind("/")
        parent = nodes.get(path[:i] or "/")
        if parent is None or i < 0:
            raise RestoreError(f"node {path!r} comes before its parent")
        if path in nodes:
            raise RestoreError(f"duplicate node {path!r}")
        node.children = None
        ch = parent.children
        if ch is None:
            ch = parent.children = {}
        ch[path[i + 1 :]] = None
        nodes[path] = node
        owner = node.ephemeral_owner
        if owner:
            kind = kind_of(owner, extended_types)
            if kind == CONTAINER:
                containers[path] = None
            elif kind == TTL:
                ttls[path] = None
            else:
                es = ephemerals.get(owner)
                if es is None:
                    es = ephemerals[owner] = {}
                es[path] = None
    tree._nodes = nodes
    tree._approx_size = None  # recomputed on first use
    tree._ephemerals = ephemerals
    tree._containers = containers
    tree._ttls = ttls
    tree.sessions = dict(sessions)
    tree.last_zxid = last_zxid
    # DataTree.deserialize: the digest of every node, then setupQuota (the quota'd
    # paths, and each zookeeper_stats recounted from the tree)
    tree.reset_digest()
    tree._setup_quotas()
    return tree
