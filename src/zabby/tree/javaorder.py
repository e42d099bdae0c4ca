"""The iteration order of a Java HashSet<String>, so listings match ZooKeeper's.

ZooKeeper keeps a znode's children in a `HashSet<String>` (created with
capacity 8, load factor 0.75, never shrunk) and returns them in that set's
iteration order: by bucket ``spread(String.hashCode()) & (capacity - 1)``,
then by insertion order within a bucket (resizes keep relative order).
Treeified buckets (8+ colliding names in a table of 64+) are not modelled.
"""

from __future__ import annotations

import sys
from array import array

__all__ = ["children_order", "grow_cap", "java_hash", "java_order", "spread_hash", "table_size_for"]

_LITTLE = sys.byteorder == "little"


def java_hash(s: str) -> int:
    """String.hashCode as an unsigned 32-bit value."""
    h = 0
    if s.isascii():
        for ch in s.encode("ascii"):
            h = (31 * h + ch) & 0xFFFFFFFF
        return h
    units = array("H", s.encode("utf-16-le" if _LITTLE else "utf-16-be", "surrogatepass"))
    for u in units:
        h = (31 * h + u) & 0xFFFFFFFF
    return h


def _spread(h: int) -> int:
    return h ^ (h >> 16)


def grow_cap(cap: int, size: int, initial: int = 8) -> int:
    """Capacity after the set has grown to `size` elements (from `cap`, 0 = no set yet)."""
    if cap == 0:
        cap = initial
    while size > (cap * 3) // 4:
        cap *= 2
    return cap


def table_size_for(n: int) -> int:
    """HashMap.tableSizeFor: the power of two at least n (minimum 1)."""
    cap = 1
    while cap < n:
        cap *= 2
    return cap


def java_order(names, cap: int) -> list[str]:
    """`names` (an iterable in insertion order) in HashSet iteration order."""
    if cap <= 1:
        return list(names)
    m = cap - 1
    return sorted(names, key=lambda s: _spread(java_hash(s)) & m)


def spread_hash(s: str) -> int:
    """HashMap's spread(String.hashCode()): what picks the bucket."""
    h = java_hash(s)
    return h ^ (h >> 16)


def children_order(children: dict, cap: int) -> list[str]:
    """A znode's child names (dict: name -> spread hash or None, in insertion
    order) in HashSet iteration order.

    A name's hash is computed the first time its parent is listed and kept as
    the dict value (Java caches String.hashCode the same way), so listing a
    parent costs O(n) C-level steps plus a sort of small ints, and a name added
    since the last listing costs one hash.
    """
    if cap <= 1:
        return list(children)
    if None in children.values():
        for name in [k for k, v in children.items() if v is None]:
            h = java_hash(name)
            children[name] = h ^ (h >> 16)
    m = cap - 1
    keys = [h & m for h in children.values()]
    names = list(children)
    return list(map(names.__getitem__, sorted(range(len(names)), key=keys.__getitem__)))
