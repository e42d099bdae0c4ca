"""Snapshots: the whole tree and the live sessions at one zxid, in one file.

Layout: ``<dataDir>/version-2/snapshot.<hex zxid>``, written as
``snapshot.<hex zxid>.tmp``, fsynced, renamed, directory fsynced.

File (little-endian)::

    header (48 bytes): magic "ZABBYSNP" | version u32 (1) | flags u32 (bit 0: zlib)
                       | zxid i64 | node count i64 | session count i64 | crc32 u32 | 4 zero bytes
    body (zlib stream when flag 0 is set)
    trailer (16 bytes): body length u64 (as stored) | crc32 of the stored body u32 | "ZEND"

The header's crc32 covers its first 44 bytes. Body (uncompressed)::

    sessions: session count x (id i64, timeout i32)
    chunks, each: n_nodes u32 | n_acls u32 | acl bytes u64 | path bytes u64 | data bytes u64
                  then the new ACL lists (referenced by index from here on):
                       each: count u32, then (perms i32, scheme, id) with strings as
                       i32 length (-1 = null) + UTF-8
                  then n_nodes fixed records (72 bytes):
                       data length i32 (-1 = null) | acl index u32 | czxid | mzxid | ctime | mtime
                       | version i32 | cversion i32 | aversion i32 | ephemeralOwner | pzxid
                       | child capacity i32
                  then the chunk's paths, UTF-8, joined by NUL; then the data, concatenated
    an empty chunk (all zero) ends the nodes

Nodes come parents first, each parent's children in insertion order, so the
tree (getChildren order included) is rebuilt exactly: written in the order the
nodes were created (`DataTree.nodes_in_creation_order`), which is both; a reader
takes any order that is. `cversion` is the
persisted one (child creations), as in ZNode; `child capacity` is ZNode.child_cap.

Writing is plain synchronous code (usable in a forked child), batched
`struct` packing and multi-megabyte writes; loading reads the file once,
checks both checksums, then unpacks each chunk's records with `iter_unpack`.
"""

from __future__ import annotations

import gc
import os
import struct
import zlib

from ..tree.snapshot import RestoreError, restore
from ..wire.constants import DEFAULT_MAX_BUFFER
from .errors import CorruptDataError, StorageError
from .fs import default_fs
from .snapcodec import CHUNK as _CHUNK
from .snapcodec import decode_nodes, encode_nodes

__all__ = [
    "SnapshotInfo",
    "snapshot_bytes",
    "snapshot_from_bytes",
    "load_snapshot",
    "read_snapshot_info",
    "snapshot_path",
    "write_snapshot",
]

MAGIC = b"ZABBYSNP"
END = b"ZEND"
VERSION = 1
FLAG_ZLIB = 1
PREFIX = "snapshot."
TMP_SUFFIX = ".tmp"

_HDR = struct.Struct("<8sIIqqqI4x")
_HDR_CRC = struct.Struct("<8sIIqqq")
HEADER_SIZE = _HDR.size  # 48
_TRAILER = struct.Struct("<QI4s")
TRAILER_SIZE = _TRAILER.size  # 16
_SESSION = struct.Struct("<qi")

CHUNK_NODES = 4096
CHUNK_DATA = 4 << 20
WRITE_BUFFER = 4 << 20
# write_snapshot fdatasyncs the file every SYNC_EVERY bytes: the final fsync then has
# little left to flush. One fsync of a whole 1M-znode snapshot (180 MiB) took ~90 ms
# at the end, and for as long every fdatasync of the txn log waited behind it (ext4,
# one journal): the server's writes stalled 85-95 ms (issue 14 item 6)
SYNC_EVERY = 8 << 20


# bulk_load_gc: after a bulk load, move what it made into the oldest GC generation
# (module globals: benchmarks/recovery_gc.py A/Bs them) ...
SETTLE_GC = True
# ... or out of the cyclic GC for good (gc.freeze(), kept): a full collection then
# never walks the loaded tree again (at 1M znodes each took 315-400 ms, about one per
# 20 s under creates). None: on in a server's own process (server.app.run sets it, as
# server.durability.GroupCommitter.keep_frozen), off where others share the process
KEEP_FROZEN: bool | None = None


class bulk_load_gc:
    """Context manager for building a million objects (a snapshot load, a log replay):
    the cyclic GC is off meanwhile (it would walk the growing heap again and again:
    at 1M znodes a replay ran a dozen full collections of 10-240 ms each), and at the
    end everything the load made joins the oldest generation (gc.freeze() then
    gc.unfreeze(), both O(1)) instead of waiting in the youngest: otherwise the first
    collections after the load walk those million objects three times in a row (a
    gen0, a gen1 and a full collection: 178 + 208 + 239 ms, seen in a server right
    after it loaded a 1M-znode snapshot). With KEEP_FROZEN (a server's own process)
    what it made stays frozen instead, joining what is frozen already. Nested uses,
    and a process where GC is off, are left as they are; without KEEP_FROZEN, objects
    someone else froze stay frozen."""

    __slots__ = ("was_enabled",)

    def __enter__(self) -> bulk_load_gc:
        self.was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc) -> None:
        if self.was_enabled:
            if SETTLE_GC and KEEP_FROZEN:
                gc.freeze()
            elif SETTLE_GC and gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def snapshot_path(snap_dir: str, zxid: int) -> str:
    return os.path.join(snap_dir, "version-2", f"{PREFIX}{zxid:x}")


class _Writer:
    """Buffered, optionally compressing, checksumming sequential writer."""

    def __init__(self, fs, h, compress: bool, sync_every: int = 0) -> None:
        self.fs = fs
        self.h = h
        self.sync_every = sync_every  # fdatasync after this many bytes written (0: never)
        self.unsynced = 0
        self.z = zlib.compressobj(1) if compress else None
        self.crc = 0
        self.stored = 0
        self.parts: list[bytes] = []
        self.pending = 0

    def body(self, data) -> None:
        if self.z is not None:
            data = self.z.compress(data)
            if not data:
                return
        self.crc = zlib.crc32(data, self.crc)
        self.stored += len(data)
        self.parts.append(data)
        self.pending += len(data)
        if self.pending >= WRITE_BUFFER:
            self.flush()

    def raw(self, data) -> None:
        self.parts.append(data)
        self.pending += len(data)

    def flush(self) -> None:
        if self.parts:
            self.fs.write(self.h, b"".join(self.parts))
            self.parts = []
            self.unsynced += self.pending
            self.pending = 0
            if self.sync_every and self.unsynced >= self.sync_every:
                self.fs.fsync(self.h, True)
                self.unsynced = 0

    def finish(self) -> None:
        if self.z is not None:
            tail = self.z.flush()
            self.z = None
            if tail:
                self.body(tail)
        self.raw(_TRAILER.pack(self.stored, self.crc, END))
        self.flush()


def _write_body(tree, w: _Writer) -> None:
    sess = tree.sessions
    if sess:
        w.body(b"".join([_SESSION.pack(sid, to) for sid, to in sess.items()]))
    # the node chunks: the loop over every znode, compiled (storage/snapcodec.py)
    written = encode_nodes(tree, w.body, CHUNK_NODES, CHUNK_DATA)
    w.body(_CHUNK.pack(0, 0, 0, 0, 0))
    if written != tree.node_count:
        raise ValueError(f"wrote {written} nodes, the tree has {tree.node_count}")


def _encode(tree, w: _Writer) -> None:
    compress = w.z is not None
    zxid = tree.last_zxid
    pre = _HDR_CRC.pack(MAGIC, VERSION, FLAG_ZLIB if compress else 0, zxid,
                        tree.node_count, len(tree.sessions))
    w.raw(_HDR.pack(MAGIC, VERSION, FLAG_ZLIB if compress else 0, zxid, tree.node_count,
                    len(tree.sessions), zlib.crc32(pre)))
    _write_body(tree, w)
    w.finish()


class _Collect:
    """A file layer of one in-memory file, for `snapshot_bytes`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, h, data) -> None:
        self.parts.append(bytes(data))


def snapshot_bytes(tree, *, compress: bool = True) -> bytes:
    """The snapshot file's bytes, in memory: what a leader sends a follower (SNAP)."""
    sink = _Collect()
    _encode(tree, _Writer(sink, None, compress))
    return b"".join(sink.parts)


def write_snapshot(tree, snap_dir: str, *, fs=None, compress: bool = False) -> str:
    """Write `tree` (at tree.last_zxid) as `<snap_dir>/version-2/snapshot.<hex zxid>`.

    Synchronous and thread-free: callable from a forked child. Returns the
    path. Raises StorageError when a file operation fails (the temporary file
    is removed, no snapshot is left half-written under the final name)."""
    fs = default_fs(fs)
    d = os.path.join(snap_dir, "version-2")
    zxid = tree.last_zxid
    final = snapshot_path(snap_dir, zxid)
    tmp = final + TMP_SUFFIX
    h = None
    try:
        fs.makedirs(d)
        h = fs.open(tmp, create=True)
        fs.truncate(h, 0)
        _encode(tree, _Writer(fs, h, compress, SYNC_EVERY))
        fs.fsync(h)
        fs.close(h)
        h = None
        fs.rename(tmp, final)
        fs.fsync_dir(d)
    except BaseException as e:
        if h is not None:
            try:
                fs.close(h)
            except OSError:
                pass
        try:
            if fs.exists(tmp):
                fs.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise StorageError(f"cannot write snapshot {final}: {e}") from e
        raise
    return final


# -------------------------------------------------------------------- read
class SnapshotInfo:
    __slots__ = ("path", "zxid", "node_count", "session_count", "compressed", "size")

    def __init__(self, path, zxid, node_count, session_count, compressed, size) -> None:
        self.path = path
        self.zxid = zxid
        self.node_count = node_count
        self.session_count = session_count
        self.compressed = compressed
        self.size = size

    def __repr__(self) -> str:
        return (f"SnapshotInfo({self.path!r}, zxid={self.zxid:#x}, nodes={self.node_count}, "
                f"sessions={self.session_count}, compressed={self.compressed})")


def _verify(buf, path: str) -> tuple[SnapshotInfo, memoryview]:
    """Check header and trailer checksums; return the info and the raw body."""
    n = len(buf)
    if n < HEADER_SIZE + TRAILER_SIZE:
        raise CorruptDataError(f"{path}: offset 0: snapshot too short ({n} bytes)", path=path, offset=0)
    magic, version, flags, zxid, nodes, sessions, crc = _HDR.unpack_from(buf, 0)
    if magic != MAGIC or zlib.crc32(buf[: _HDR_CRC.size]) != crc:
        raise CorruptDataError(f"{path}: offset 0: bad snapshot header (magic/checksum)",
                               path=path, offset=0)
    if version != VERSION:
        raise CorruptDataError(f"{path}: offset 0: unsupported snapshot format version {version}",
                               path=path, offset=0, zxid=zxid)
    blen, bcrc, end = _TRAILER.unpack_from(buf, n - TRAILER_SIZE)
    if end != END or blen != n - HEADER_SIZE - TRAILER_SIZE:
        raise CorruptDataError(
            f"{path}: offset {n - TRAILER_SIZE}: bad snapshot trailer (file truncated or extended)",
            path=path, offset=n - TRAILER_SIZE, zxid=zxid)
    body = memoryview(buf)[HEADER_SIZE : n - TRAILER_SIZE]
    if zlib.crc32(body) != bcrc:
        raise CorruptDataError(
            f"{path}: offset {HEADER_SIZE}: snapshot checksum mismatch over bytes "
            f"{HEADER_SIZE}..{n - TRAILER_SIZE}", path=path, offset=HEADER_SIZE, zxid=zxid)
    info = SnapshotInfo(path, zxid, nodes, sessions, bool(flags & FLAG_ZLIB), n)
    return info, body


def read_snapshot_info(path: str, *, fs=None, verify: bool = True) -> SnapshotInfo:
    """The header of a snapshot (checksums verified unless verify=False)."""
    fs = default_fs(fs)
    try:
        buf = fs.read_file(path)
    except OSError as e:
        raise CorruptDataError(f"{path}: cannot read snapshot: {e}", path=path) from e
    if verify:
        return _verify(buf, path)[0]
    magic, version, flags, zxid, nodes, sessions, _crc = _HDR.unpack_from(buf, 0)
    return SnapshotInfo(path, zxid, nodes, sessions, bool(flags & FLAG_ZLIB), len(buf))


def load_snapshot(path: str, *, fs=None, max_buffer: int = DEFAULT_MAX_BUFFER,
                  extended_types: bool = False, progress=None):
    """Read a snapshot into a new DataTree; CorruptDataError if it is damaged.

    `progress`, if given, is called as ``progress("snapshot", done, total)`` with
    the znodes restored so far: (0, total) first, then after every chunk, rising,
    ending at (total, total) when the snapshot is whole. None costs nothing."""
    fs = default_fs(fs)
    try:
        buf = fs.read_file(path)
    except OSError as e:
        raise CorruptDataError(f"{path}: cannot read snapshot: {e}", path=path) from e
    return snapshot_from_bytes(buf, path, max_buffer=max_buffer, extended_types=extended_types,
                               progress=progress)


def snapshot_from_bytes(buf, path: str = "<snapshot>", *, max_buffer: int = DEFAULT_MAX_BUFFER,
                        extended_types: bool = False, progress=None):
    """A DataTree from a snapshot's bytes (a file's, or a leader's SNAP); `progress`
    as for `load_snapshot`."""
    info, raw = _verify(buf, path)
    if progress is not None:
        progress("snapshot", 0, max(info.node_count, 0))
    try:
        body = zlib.decompress(raw) if info.compressed else bytes(raw)
    except zlib.error as e:
        raise CorruptDataError(f"{path}: offset {HEADER_SIZE}: cannot decompress snapshot: {e}",
                               path=path, offset=HEADER_SIZE, zxid=info.zxid) from e
    del buf, raw
    counter = [0, 0]
    # a million new objects would set off the cyclic GC again and again
    with bulk_load_gc():
        try:
            ns = info.session_count
            if ns < 0 or ns * _SESSION.size > len(body):
                raise ValueError(f"bad session count {ns}")
            sessions = dict(_SESSION.iter_unpack(body[: ns * _SESSION.size]))
            acls: list = []
            tree = restore(decode_nodes(body, ns * _SESSION.size, acls, counter, progress,
                                       max(info.node_count, 0)),
                           sessions, info.zxid, max_buffer=max_buffer, extended_types=extended_types)
            if counter[0] != info.node_count or tree.node_count != info.node_count:
                raise ValueError(f"snapshot holds {counter[0]} nodes, header says {info.node_count}")
        except (ValueError, struct.error, IndexError, UnicodeDecodeError, RestoreError) as e:
            where = "" if info.compressed else f"offset {HEADER_SIZE + counter[1]}: "
            extra = f" (uncompressed body offset {counter[1]})" if info.compressed else ""
            raise CorruptDataError(f"{path}: {where}malformed snapshot{extra}: {e}",
                                   path=path, offset=HEADER_SIZE + counter[1], zxid=info.zxid) from e
    return tree
