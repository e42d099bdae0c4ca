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

__all__ = ["grow_cap", "java_hash", "java_order", "table_size_for"]

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
