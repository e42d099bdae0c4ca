"""The data-tree digest of ZooKeeper 3.6+ (``digest.enabled``, digest version 2).

Each znode's digest is a CRC32 of its path (UTF-8; "/" counts as "", the root's alias),
its data, and 60 bytes of its persisted stat, big-endian: czxid, mzxid, pzxid, ctime,
mtime (longs), version, cversion (the persisted one: child creations), aversion (ints),
ephemeralOwner (long, as stored: containers and TTL nodes keep their markers).  Nodes
below "/zookeeper/" count 0 ("/zookeeper" itself counts).  The tree's digest is the sum
of its nodes' digests as a Java long (an AdHash: wraps at 64 bits, signed).

`DataTree` keeps the sum current lazily: a changed node's old digest is taken out at its
first change and the new one added when the digest is next needed (every 128th zxid, for
the ``hash`` history), so a node changed many times in between costs two CRCs.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from .znode import ZNode

__all__ = ["DIGEST_LOG_INTERVAL", "DIGEST_LOG_LIMIT", "DIGEST_VERSION", "node_digest", "signed"]

DIGEST_VERSION = 2
DIGEST_LOG_INTERVAL = 128  # DataTree.DIGEST_LOG_INTERVAL: a history entry every 0x80 zxids
DIGEST_LOG_LIMIT = 1024  # DataTree.DIGEST_LOG_LIMIT: entries kept
MASK: Final = (1 << 64) - 1
_EXCLUDED: Final = "/zookeeper/"  # ZooDefs.ZOOKEEPER_NODE_SUBTREE
_STAT: Final = struct.Struct(">qqqqqiiiq")
_crc: Final = zlib.crc32
_pack: Final = _STAT.pack


def node_digest(path: str, node: ZNode) -> int:
    """DigestCalculator.calculateDigest(path, node) (0 below /zookeeper/)."""
    if path.startswith(_EXCLUDED):
        return 0
    st = _pack(node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime,
               node.version, node.cversion, node.aversion, node.ephemeral_owner)
    data = node.data
    # one CRC over the three parts joined: a CRC call costs more than copying a small
    # node's bytes (a node with big data: two calls, no copy of the data)
    if path == "/":
        return _crc(st, _crc(data)) if data else _crc(st)
    pb = path.encode("utf-8", "surrogatepass")
    if not data:
        return _crc(pb + st)
    if len(data) > 4096:
        return _crc(st, _crc(data, _crc(pb)))
    return _crc(pb + data + st)


def stat_digest(path: str, data: bytes, czxid: int, mzxid: int, pzxid: int, ctime: int,
                mtime: int, version: int, cversion: int, aversion: int, owner: int) -> int:
    """The same from a node's fields (cversion: the persisted count of child creations)."""
    if path.startswith(_EXCLUDED):
        return 0
    crc = _crc(path.encode("utf-8", "surrogatepass")) if path != "/" else 0
    if data:
        crc = _crc(data, crc)
    return _crc(_pack(czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, owner), crc)


def signed(v: int) -> int:
    """A 64-bit sum as the Java long ZooKeeper prints."""
    v &= MASK
    return v - (1 << 64) if v >= (1 << 63) else v
