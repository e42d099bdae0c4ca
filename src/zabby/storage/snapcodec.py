"""The snapshot body's node chunks, encoded (compiled with mypyc; storage/snapshot.py
has the file format and everything around it).

Why a module of its own: writing a snapshot is one loop over every znode (1M of them
in issue 14's measurement), packing its fixed fields and gathering its path and data.
Interpreted, each field read of a znode is a Python attribute lookup; compiled, with
`ZNode` a native class (tree/znode.py), it is a read of a C struct field, and the loop
itself runs without the interpreter. The loop runs in the forked snapshot child, so
the time it takes is the time copy-on-write faults and the child's CPU cost the server.
Loading is the same loop the other way (recovery, and a follower taking a SNAP).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any, Final

from ..tree.acl import intern_acl
from ..tree.datatree import DataTree
from ..tree.znode import ZNode, restored
from ..wire.records import ACL, Id

__all__ = ["CHUNK", "I32", "NODE", "U32", "decode_nodes", "encode_acl", "encode_nodes"]

# the body's fixed-width parts (storage/snapshot.py reads them back with the same)
CHUNK: Final = struct.Struct("<IIQQQ")
NODE: Final = struct.Struct("<iIqqqqiiiqqi")
I32: Final = struct.Struct("<i")
U32: Final = struct.Struct("<I")


def encode_acl(acl: Any, out: bytearray) -> None:
    """count u32, then (perms i32, scheme, id) with strings as i32 length (-1 = null)
    and UTF-8 (lone surrogates kept, as Java writes them)."""
    out += U32.pack(len(acl))
    for a in acl:
        out += I32.pack(a.perms)
        for s in (a.id.scheme, a.id.id):
            if s is None:
                out += I32.pack(-1)
            else:
                b = s.encode("utf-8", "surrogatepass")
                out += I32.pack(len(b))
                out += b


class _Chunks:
    """The chunk being gathered: its fixed records, paths, data and new ACL lists."""

    def __init__(self, body: Callable[[bytes], None]) -> None:
        self.body = body
        self.recs: list[bytes] = []
        self.paths: list[str] = []
        self.datas: list[bytes] = []
        self.new_acls = bytearray()
        self.n_new = 0
        self.dsize = 0
        self.written = 0

    def flush(self) -> None:
        paths = self.paths
        joined = "\0".join(paths)
        if joined.count("\0") != len(paths) - 1:
            raise ValueError("a znode path contains NUL")
        pb = joined.encode("utf-8", "surrogatepass")
        db = b"".join(self.datas)
        recs = self.recs
        body = self.body
        body(CHUNK.pack(len(recs), self.n_new, len(self.new_acls), len(pb), len(db)))
        if self.new_acls:
            body(bytes(self.new_acls))
        body(b"".join(recs))
        body(pb)
        if db:
            body(db)
        self.written += len(recs)
        self.recs = []
        self.paths = []
        self.datas = []
        self.new_acls = bytearray()
        self.n_new = 0
        self.dsize = 0


def encode_nodes(tree: DataTree, body: Callable[[bytes], None], chunk_nodes: int,
                 chunk_data: int) -> int:
    """Hand `body` the node chunks of `tree` (in creation order: parents first, each
    parent's children in the order of its children dict, which is what restore needs to
    rebuild them; not the empty chunk that ends them), a chunk once it holds `chunk_nodes`
    nodes or `chunk_data` bytes of data; return how many nodes were written."""
    c = _Chunks(body)
    pack = NODE.pack
    acl_index: dict[int, int] = {}
    acl_keep: list[Any] = []  # keeps the ACL objects (and so their ids) alive
    for path, node in tree.nodes_in_creation_order():
        acl = node.acl
        ai = acl_index.get(id(acl))
        if ai is None:
            ai = len(acl_keep)
            acl_index[id(acl)] = ai
            acl_keep.append(acl)
            encode_acl(acl, c.new_acls)
            c.n_new += 1
        d = node.data
        dl = -1
        if d is not None:
            dl = len(d)
            if dl:
                c.datas.append(d)
                c.dsize += dl
        c.recs.append(pack(dl, ai, node.czxid, node.mzxid, node.ctime, node.mtime,
                           node.version, node.cversion, node.aversion,
                           node.ephemeral_owner, node.pzxid, node.child_cap))
        c.paths.append(path)
        if len(c.recs) >= chunk_nodes or c.dsize >= chunk_data:
            c.flush()
    if c.recs:
        c.flush()
    return c.written


def _decode_str(body: Any, pos: int) -> tuple[str | None, int]:
    (n,) = I32.unpack_from(body, pos)
    pos += 4
    if n < 0:
        return None, pos
    end = pos + n
    if end > len(body):
        raise ValueError("string beyond the end")
    return bytes(body[pos:end]).decode("utf-8", "surrogatepass"), end


def decode_nodes(body: Any, pos: int, acls: list[Any], counter: list[int],
                 progress: Any = None, total: int = 0) -> Iterator[tuple[str, ZNode]]:
    """(path, ZNode) from the chunks at `pos`; counter[0] = nodes, counter[1] = end.
    `progress("snapshot", nodes so far, total)` after each chunk (4,096 nodes)."""
    rec = NODE.size
    done = 0
    while True:
        counter[1] = pos
        n_nodes, n_acls, acl_len, path_len, data_len = CHUNK.unpack_from(body, pos)
        pos += CHUNK.size
        if n_nodes == 0 and n_acls == 0:
            break
        end_acl = pos + acl_len
        for _ in range(n_acls):
            (cnt,) = U32.unpack_from(body, pos)
            pos += 4
            items = []
            for _ in range(cnt):
                (perms,) = I32.unpack_from(body, pos)
                scheme, pos = _decode_str(body, pos + 4)
                ident, pos = _decode_str(body, pos)
                items.append(ACL(perms, Id(scheme, ident)))
            acls.append(intern_acl(items))
        if pos != end_acl:
            raise ValueError("ACL section length mismatch")
        end_rec = pos + n_nodes * rec
        end_path = end_rec + path_len
        end_data = end_path + data_len
        if end_data > len(body):
            raise ValueError("chunk beyond the end of the snapshot")
        paths = body[end_rec:end_path].decode("utf-8", "surrogatepass").split("\0")
        if len(paths) != n_nodes:
            raise ValueError(f"chunk has {len(paths)} paths for {n_nodes} nodes")
        dp = end_path
        i = 0
        for (dl, ai, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid,
             cap) in NODE.iter_unpack(body[pos:end_rec]):
            data = None
            if dl >= 0:
                data = body[dp:dp + dl]
                dp += dl
            yield paths[i], restored(data, acls[ai], czxid, mzxid, ctime, mtime, version,
                                     cversion, aversion, owner, pzxid, cap)
            i += 1
        if dp != end_data:
            raise ValueError("data section length mismatch")
        done += n_nodes
        counter[0] = done
        if progress is not None:
            progress("snapshot", min(done, total), total)
        pos = end_data
