"""Apache ZooKeeper's on-disk formats (3.4 to 3.9): read its data directory into a
DataTree, and write a DataTree as a snapshot ZooKeeper starts from.

Both directions work in memory and touch the target only at the end, so a damaged
input leaves nothing behind. The formats, as ZooKeeper writes them (big-endian jute)::

    version-2/snapshot.<hex zxid>[.gz|.snappy]     (the suffix names the compression:
        gzip, or snappy-java's stream: b"\\x82SNAPPY\\x00", two ints, then blocks of
        int length + raw snappy; the checksum below covers the *uncompressed* stream)
      file header   int magic "ZKSN" | int version 2 | long dbid
      sessions      int count, then count x (long id, int timeout)
      ACL cache     int count, then count x (long key, int n, n x ACL(int perms,
                    string scheme, string id)); key -1 means world:anyone/ALL
      nodes         (string path, buffer data, long acl key, StatPersisted(long czxid,
                    mzxid, ctime, mtime, int version, cversion, aversion,
                    long ephemeralOwner, long pzxid)) ..., parents first, the root as
                    "" -- ended by the path "/"
      seal          long adler32 of every byte before it | string "/"
      (3.6+, digest enabled) long zxid | int digest version | long digest (a hex
                    string before version 2) | seal again (over everything before)

    version-2/log.<hex zxid of its first txn>
      file header   int magic "ZKLG" | int version 2 | long dbid
      records       long adler32 of the txn bytes | int length | txn bytes | byte 'B'
                    txn bytes: TxnHeader, the body of its type, and (3.6+, digest
                    enabled) int digest version | long tree digest after the txn
      then zeros    (files are preallocated; a record of length 0 ends the log)

A snapshot is fuzzy: it is written while txns are applied, so the log is replayed
from its zxid on, through `DataTree.apply` (which tolerates what fuzziness leaves, as
ZooKeeper's DataTree does). The digest is DigestCalculator's: the sum of CRC32s of
every znode's path, data and persisted stat, /zookeeper/ excluded.

Damage: bad magic, a failed checksum, an undecodable or truncated record raise
`CorruptDataError` naming the file and offset. A torn last record (cut off by the
end of the file, or missing its end-of-record byte), followed only by zeros, is what
a crash leaves in a preallocated log: like ZooKeeper, we stop reading that file
there (and say so). Unlike ZooKeeper, a torn record followed by more non-zero bytes
is refused, since txns after it would be silently dropped; and a gap in the zxids
of one epoch after the snapshot is refused too.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..tree import DataTree, Txn, TxnHeader
from ..tree import znode as zn
from ..tree.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, intern_acl
from ..tree.digest import node_digest
from ..tree.javaorder import grow_cap
from ..tree.snapshot import RestoreError, restore
from ..tree.txn import TXN_BODY, CloseSessionTxn
from ..tree.znode import ZNode, restored
from ..wire.constants import DEFAULT_MAX_BUFFER, Op
from ..wire.jute import ProtocolError
from ..wire.records import ACL, Id
from .errors import CorruptDataError

__all__ = [
    "DigestMismatchError",
    "ImportReport",
    "ZkSnapshot",
    "find_version2",
    "list_zk_logs",
    "list_zk_snapshots",
    "load_zookeeper",
    "read_zk_log",
    "read_zk_snapshot",
    "tree_digest",
    "zk_snapshot_bytes",
    "write_zk_snapshot",
]

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
FORMAT_VERSION = 2
SNAPPY_MAGIC = b"\x82SNAPPY\x00"
SNAPPY_BLOCK = 32 * 1024
DIGEST_VERSION = 2
OPEN_ACL_KEY = -1

_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_HDR = struct.Struct(">iiq")
_SESSION = struct.Struct(">qi")
_STAT = struct.Struct(">qqqqiiiqq")
_REC = struct.Struct(">qi")  # crc, length
_ZXID_DIGEST = struct.Struct(">qiq")
_TXN_DIGEST = struct.Struct(">iq")

# progress(phase, done, total), as zabby.storage.Progress: "zk-snapshot" (bytes of the
# snapshot parsed), "zk-logs" (bytes of log files read and replayed), "zk-export"
# (znodes written); called every 16k znodes or once a file, never per item
Progress = Callable[[str, int, int], None]


def _u64(v: int) -> int:
    return v & 0xFFFFFFFFFFFFFFFF


def _s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


# ------------------------------------------------------------------ the files
def find_version2(d: str) -> str:
    """`d`/version-2, or `d` itself if it is a version-2 directory."""
    v2 = os.path.join(d, "version-2")
    if os.path.isdir(v2):
        return v2
    if os.path.basename(os.path.normpath(d)) == "version-2" and os.path.isdir(d):
        return d
    raise FileNotFoundError(f"{d}: no version-2 directory (is it a ZooKeeper dataDir?)")


def _zxid_of(name: str, prefix: str) -> int | None:
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    for suffix in (".gz", ".snappy"):
        if rest.endswith(suffix):
            rest = rest[: -len(suffix)]
            break
    try:
        return int(rest, 16)
    except ValueError:
        return None


def list_zk_snapshots(v2: str) -> list[tuple[int, str]]:
    """(zxid, path) of ZooKeeper's snapshot files, newest first."""
    out = []
    for name in os.listdir(v2):
        z = _zxid_of(name, "snapshot.")
        if z is not None:
            out.append((z, os.path.join(v2, name)))
    return sorted(out, reverse=True)


def list_zk_logs(v2: str) -> list[tuple[int, str]]:
    """(first zxid, path) of ZooKeeper's txn log files, oldest first."""
    out = []
    for name in os.listdir(v2):
        if name.startswith("log.") and not name.endswith((".gz", ".snappy")):
            z = _zxid_of(name, "log.")
            if z is not None:
                out.append((z, os.path.join(v2, name)))
    return sorted(out)


# --------------------------------------------------------------- compression
def _snappy_stream_decompress(buf: bytes, path: str) -> bytes:
    import cramjam

    if buf[: len(SNAPPY_MAGIC)] != SNAPPY_MAGIC or len(buf) < 16:
        raise CorruptDataError(f"{path}: offset 0: not a snappy stream (bad magic)",
                               path=path, offset=0)
    pos = 16
    parts = []
    n = len(buf)
    while pos < n:
        if buf[pos : pos + len(SNAPPY_MAGIC)] == SNAPPY_MAGIC and pos + 16 <= n:
            pos += 16  # concatenated streams: another header
            continue
        if pos + 4 > n:
            raise CorruptDataError(f"{path}: offset {pos}: truncated snappy block header",
                                   path=path, offset=pos)
        (ln,) = _I.unpack_from(buf, pos)
        if ln < 0 or pos + 4 + ln > n:
            raise CorruptDataError(
                f"{path}: offset {pos}: truncated snappy block ({ln} bytes announced, "
                f"{n - pos - 4} left)", path=path, offset=pos)
        try:
            parts.append(bytes(cramjam.snappy.decompress_raw(buf[pos + 4 : pos + 4 + ln])))
        except Exception as e:  # cramjam raises its own DecompressionError
            raise CorruptDataError(f"{path}: offset {pos}: bad snappy block: {e}",
                                   path=path, offset=pos) from e
        pos += 4 + ln
    return b"".join(parts)


def _snappy_stream_compress(data: bytes) -> bytes:
    import cramjam

    out = [SNAPPY_MAGIC, struct.pack(">ii", 1, 1)]
    for i in range(0, len(data), SNAPPY_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[i : i + SNAPPY_BLOCK]))
        out.append(_I.pack(len(block)))
        out.append(block)
    return b"".join(out)


def _read_stream(path: str) -> tuple[bytes, str]:
    """The uncompressed bytes of a snapshot file and how offsets in it are named."""
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        try:
            return gzip.decompress(raw), "offset {} of the uncompressed stream"
        except (OSError, EOFError, zlib.error) as e:
            raise CorruptDataError(f"{path}: offset 0: bad gzip stream: {e}", path=path,
                                   offset=0) from e
    if path.endswith(".snappy"):
        return _snappy_stream_decompress(raw, path), "offset {} of the uncompressed stream"
    return raw, "offset {}"


# ------------------------------------------------------------------ snapshots
@dataclass
class ZkSnapshot:
    path: str
    zxid: int  # from the file name, as ZooKeeper takes it
    sessions: dict[int, int]
    nodes: list[tuple[str, ZNode]]
    digest: tuple[int, int, int] | None  # (zxid, version, digest) or None


class _Reader:
    """Bounds-checked big-endian jute reads over one buffer, errors naming file+offset."""

    __slots__ = ("buf", "pos", "path", "where", "n")

    def __init__(self, buf: bytes, path: str, where: str) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path
        self.where = where
        self.n = len(buf)

    def fail(self, msg: str, at: int | None = None) -> CorruptDataError:
        at = self.pos if at is None else at
        return CorruptDataError(f"{self.path}: {self.where.format(at)}: {msg}",
                                path=self.path, offset=at)

    def need(self, k: int, what: str) -> None:
        if self.pos + k > self.n:
            raise self.fail(f"truncated snapshot: {what} needs {k} bytes, "
                            f"{self.n - self.pos} left")

    def int(self, what: str) -> int:
        self.need(4, what)
        (v,) = _I.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def long(self, what: str) -> int:
        self.need(8, what)
        (v,) = _Q.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def buffer(self, what: str) -> bytes | None:
        at = self.pos
        n = self.int(what)
        if n < 0:
            return None
        if n > self.n - self.pos:
            raise self.fail(f"truncated snapshot: {what} of {n} bytes, {self.n - self.pos} left",
                            at)
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def string(self, what: str) -> str | None:
        at = self.pos
        b = self.buffer(what)
        if b is None:
            return None
        try:
            return b.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise self.fail(f"{what} is not UTF-8: {e}", at) from e

    def seal(self) -> None:
        """The stream's seal: adler32 of all bytes so far, then the string "/"."""
        at = self.pos
        expect = zlib.adler32(memoryview(self.buf)[:at])
        val = self.long("checksum")
        end = self.string("checksum trailer")
        if val != expect:
            raise self.fail(f"snapshot checksum mismatch (stored {val:#x}, computed "
                            f"{expect:#x} over bytes 0..{at})", at)
        if end != "/":
            raise self.fail(f"bad checksum trailer {end!r} (expected '/')", at + 8)


_NODE_TAIL = struct.Struct(">qqqqqiiiqq")  # ACL key, then StatPersisted


def _quick_nodes(buf: bytes, pos: int, acls: dict, nodes: list, progress) -> int:
    """Nodes from `pos` while each is whole and well-formed; returns where it stopped:
    at the end marker (the path "/"), or at a node the careful reader must look at."""
    make = restored
    unpack_i = _I.unpack_from
    unpack_tail = _NODE_TAIL.unpack_from
    tail = _NODE_TAIL.size
    n = len(buf)
    append = nodes.append
    get_acl = acls.get
    while True:
        start = pos
        try:
            (ln,) = unpack_i(buf, pos)
            pos += 4
            if ln < 0 or pos + ln > n:
                return start
            pb = buf[pos : pos + ln]
            pos += ln
            if ln == 1 and pb == b"/":
                return start
            p = pb.decode("utf-8", "surrogatepass") if ln else "/"
            (dl,) = unpack_i(buf, pos)
            pos += 4
            if dl < 0:
                data = None
            else:
                if pos + dl > n:
                    return start
                data = buf[pos : pos + dl]
                pos += dl
            (key, czxid, mzxid, ctime, mtime, ver, cver, aver, owner,
             pzxid) = unpack_tail(buf, pos)
            pos += tail
        except (struct.error, UnicodeDecodeError):
            return start
        acl = get_acl(key)
        if acl is None:
            return start
        append((p, make(data, acl, czxid, mzxid, ctime, mtime, ver, cver, aver, owner,
                         pzxid)))
        if progress is not None and not len(nodes) & 0x3FFF:
            progress("zk-snapshot", pos, n)


def read_zk_snapshot(path: str, *, progress: Progress | None = None) -> ZkSnapshot:
    """Parse one ZooKeeper snapshot file (checksums verified)."""
    zxid = _zxid_of(os.path.basename(path), "snapshot.")
    if zxid is None:
        raise CorruptDataError(f"{path}: not a snapshot file name", path=path)
    buf, where = _read_stream(path)
    r = _Reader(buf, path, where)
    magic = r.int("file header")
    version = r.int("file header")
    r.long("file header")
    if magic != SNAP_MAGIC:
        raise r.fail(f"bad magic {magic:#010x} (a ZooKeeper snapshot starts with 'ZKSN')", 0)
    if version != FORMAT_VERSION:
        raise r.fail(f"unsupported snapshot version {version}", 4)
    count = r.int("session count")
    if count < 0 or count * _SESSION.size > r.n - r.pos:
        raise r.fail(f"bad session count {count}", r.pos - 4)
    sessions = dict(_SESSION.unpack_from(buf, r.pos + i * _SESSION.size) for i in range(count))
    r.pos += count * _SESSION.size
    # the ACL cache
    acls: dict[int, object] = {OPEN_ACL_KEY: OPEN_ACL_UNSAFE}
    n_acls = r.int("ACL cache size")
    if n_acls < 0:
        raise r.fail(f"bad ACL cache size {n_acls}", r.pos - 4)
    for _ in range(n_acls):
        key = r.long("ACL key")
        n = r.int("ACL list length")
        items = []
        for _ in range(max(n, 0)):
            perms = r.int("ACL perms")
            scheme = r.string("ACL scheme")
            ident = r.string("ACL id")
            items.append(ACL(perms, Id(scheme, ident)))
        acls[key] = intern_acl(items)
    # the nodes: a quick pass, then (at the end marker, or at the first thing the
    # quick pass cannot take) the careful one, which names what is wrong and where
    nodes: list[tuple[str, ZNode]] = []
    r.pos = _quick_nodes(buf, r.pos, acls, nodes, progress)
    unpack_stat = _STAT.unpack_from
    stat_size = _STAT.size
    while True:
        at = r.pos
        p = r.string("node path")
        if p == "/":
            break
        if p is None:
            raise r.fail("null node path", at)
        data = r.buffer("node data")
        key = r.long("node ACL key")
        r.need(stat_size, "node stat")
        (czxid, mzxid, ctime, mtime, ver, cver, aver, owner, pzxid) = unpack_stat(buf, r.pos)
        r.pos += stat_size
        acl = acls.get(key)
        if acl is None:
            raise r.fail(f"node {p or '/'!r} refers to ACL {key}, which the ACL cache "
                         "does not hold", at)
        nodes.append((p or "/", restored(data, acl, czxid, mzxid, ctime, mtime, ver, cver,
                                         aver, owner, pzxid)))
    r.seal()
    digest = None
    if r.pos < r.n:
        dz = r.long("digest zxid")
        dv = r.int("digest version")
        if dv < 2:
            s = r.string("digest")
            try:
                dval = int(s, 16) if s else 0
            except ValueError as e:
                raise r.fail(f"bad digest {s!r}", r.pos) from e
        else:
            dval = r.long("digest")
        r.seal()
        if dz > 0:
            digest = (dz, dv, _u64(dval))
    if r.pos != r.n:
        raise r.fail(f"{r.n - r.pos} unexpected bytes after the snapshot's end")
    if progress is not None:
        progress("zk-snapshot", r.n, r.n)
    return ZkSnapshot(path, zxid, sessions, nodes, digest)


class DigestMismatchError(CorruptDataError):
    """The imported tree's digest differs from the one ZooKeeper recorded."""


# ---------------------------------------------------------------------- logs
@dataclass
class LogEntry:
    txn: Txn
    digest: tuple[int, int] | None  # (version, tree digest after the txn)
    offset: int


@dataclass
class ZkLog:
    path: str
    entries: list[LogEntry]
    torn: tuple[int, str] | None = None  # (offset, why) of a torn last record


def _decode_txn(b: bytes) -> tuple[Txn, tuple[int, int] | None]:
    hdr, pos = TxnHeader.decode_from(b, 0)
    body_type = TXN_BODY.get(hdr.type)
    if body_type is None:
        raise ProtocolError(f"unknown txn type {hdr.type}")
    rest = len(b) - pos
    body = None
    if hdr.type == Op.CLOSE_SESSION and (
            rest == 0 or (rest == _TXN_DIGEST.size and _I.unpack_from(b, pos)[0] == 2)):
        body = CloseSessionTxn(None) if rest == 0 else None  # 3.5 style: no body
    else:
        body, pos = body_type.decode_from(b, pos)
    digest = None
    rest = len(b) - pos
    if rest >= _TXN_DIGEST.size:
        digest = _TXN_DIGEST.unpack_from(b, pos)
        digest = (digest[0], _u64(digest[1]))
    elif rest:
        raise ProtocolError(f"{rest} stray bytes after the txn")
    if hdr.type == Op.CLOSE_SESSION and body is None:
        body = CloseSessionTxn(None)
    return Txn(hdr, body), digest


def _zeros_from(buf: bytes, pos: int) -> bool:
    return buf.count(0, pos) == len(buf) - pos


def read_zk_log(path: str, *, after_zxid: int = -1,
                max_buffer: int = DEFAULT_MAX_BUFFER) -> ZkLog:
    """Parse one txn log file: every record's checksum verified, the txns with zxid >
    `after_zxid` decoded. A torn last record (see the module docstring) ends it."""
    with open(path, "rb") as f:
        buf = f.read()
    n = len(buf)
    out = ZkLog(path, [])
    if n < _HDR.size:
        if _zeros_from(buf, 0):
            out.torn = (0, f"file of {n} bytes has no header (created as the server stopped)")
            return out
        raise CorruptDataError(f"{path}: offset 0: truncated log file header ({n} bytes)",
                               path=path, offset=0)
    magic, version, _dbid = _HDR.unpack_from(buf, 0)
    if magic != LOG_MAGIC:
        raise CorruptDataError(
            f"{path}: offset 0: bad magic {magic:#010x} (a ZooKeeper txn log starts with 'ZKLG')",
            path=path, offset=0)
    if version != FORMAT_VERSION:
        raise CorruptDataError(f"{path}: offset 4: unsupported log version {version}",
                               path=path, offset=4)
    pos = _HDR.size
    adler = zlib.adler32
    max_record = max_buffer + 1024  # as BinaryInputArchive.readBuffer allows
    while True:
        if pos + _REC.size > n:
            if not _zeros_from(buf, pos):
                out.torn = (pos, "record header cut off by the end of the file")
            break
        crc, ln = _REC.unpack_from(buf, pos)
        if ln == 0 and crc == 0:
            if not _zeros_from(buf, pos):
                raise CorruptDataError(
                    f"{path}: offset {pos}: empty record followed by non-zero bytes",
                    path=path, offset=pos)
            break  # preallocated space: the end of the log
        end = pos + _REC.size + ln
        if ln == 0 and _zeros_from(buf, pos + _REC.size):
            out.torn = (pos, "record header without its length (a partial write)")
            break
        if ln <= 0 or ln > max_record:
            raise CorruptDataError(
                f"{path}: offset {pos}: unreasonable record length {ln} (jute.maxbuffer is "
                f"{max_buffer}: raise it in zoo.cfg if ZooKeeper ran with a bigger one)",
                path=path, offset=pos)
        if end + 1 > n:
            out.torn = (pos, f"record of {ln} bytes cut off by the end of the file")
            break
        if buf[end] != 0x42:  # 'B'
            if _zeros_from(buf, end):
                out.torn = (pos, "record without its end-of-record byte (a partial write)")
                break
            raise CorruptDataError(
                f"{path}: offset {end}: bad end-of-record byte {buf[end]:#04x} (expected 'B')",
                path=path, offset=end)
        body = buf[pos + _REC.size : end]
        if adler(body) != crc:
            raise CorruptDataError(
                f"{path}: offset {pos}: txn checksum mismatch (stored {crc:#x}, computed "
                f"{adler(body):#x})", path=path, offset=pos)
        (zxid,) = _Q.unpack_from(body, 12) if ln >= 20 else (None,)
        if zxid is None:
            raise CorruptDataError(f"{path}: offset {pos}: record too short for a txn header",
                                   path=path, offset=pos)
        if zxid > after_zxid:
            try:
                txn, digest = _decode_txn(body)
            except (ProtocolError, ValueError, struct.error, IndexError) as e:
                raise CorruptDataError(f"{path}: offset {pos}: zxid {zxid:#x}: undecodable "
                                       f"txn: {e}", path=path, offset=pos, zxid=zxid) from e
            out.entries.append(LogEntry(txn, digest, pos))
        pos = end + 1
    return out


# -------------------------------------------------------------------- digest
def tree_digest(tree: DataTree) -> int:
    """ZooKeeper's tree digest (unsigned 64-bit) of the whole tree."""
    return _u64(sum(node_digest(p, n) for p, n in tree.iter_nodes()))


# -------------------------------------------------------------------- import
@dataclass
class ImportReport:
    snapshot: str | None
    snapshot_zxid: int
    replayed: int
    last_zxid: int
    znodes: int
    sessions: int
    ephemerals: int
    logs: list[str] = field(default_factory=list)
    torn: list[tuple[str, int, str]] = field(default_factory=list)
    skipped_snapshots: list[str] = field(default_factory=list)
    digest: str = "not in the input"
    dead_sessions: int = 0
    warnings: list[str] = field(default_factory=list)


def _tree_from_snapshot(snap: ZkSnapshot, max_buffer: int, extended: bool) -> DataTree:
    items = snap.nodes + _missing_system_nodes(snap.nodes)
    try:
        tree = restore(iter(items), snap.sessions, snap.zxid, max_buffer=max_buffer,
                       extended_types=extended)
    except RestoreError as e:
        raise CorruptDataError(f"{snap.path}: the snapshot's nodes do not form a tree: {e}",
                               path=snap.path) from e
    for _p, node in items:
        if node.children:
            node.child_cap = grow_cap(0, len(node.children))  # HashSet(8), as loaded
    return tree


def _missing_system_nodes(nodes: list[tuple[str, ZNode]]) -> list[tuple[str, ZNode]]:
    """A 3.4 snapshot has no /zookeeper/config (3.5+ adds it when loading one)."""
    have = {p for p, _n in nodes if p.startswith("/zookeeper")}
    out = []
    for path, acl in (("/zookeeper", OPEN_ACL_UNSAFE), ("/zookeeper/quota", OPEN_ACL_UNSAFE),
                      ("/zookeeper/config", READ_ACL_UNSAFE)):
        if path not in have:
            node = ZNode(b"", acl, 0, 0)
            if path == "/zookeeper/config":
                node.aversion = -1  # as DataTree's constructor leaves it
            out.append((path, node))
    return out


def _follows(prev: int, zxid: int) -> bool:
    if zxid >> 32 == prev >> 32:
        return zxid == prev + 1
    return zxid >> 32 > prev >> 32


def load_zookeeper(data_dir: str, log_dir: str | None = None, *,
                   max_buffer: int = DEFAULT_MAX_BUFFER, extended_types: bool = True,
                   progress: Progress | None = None,
                   check_digest: bool = True) -> tuple[DataTree, ImportReport]:
    """ZooKeeper's state from its dataDir (and dataLogDir): the newest snapshot that
    loads (an older one when the newest is damaged and the logs cover the gap), then
    the logs after it. Raises CorruptDataError (file + offset) on damage,
    FileNotFoundError when there is no ZooKeeper data."""
    snap_v2 = find_version2(data_dir)
    log_v2 = find_version2(log_dir) if log_dir else snap_v2
    snaps = list_zk_snapshots(snap_v2)
    logs = list_zk_logs(log_v2)
    if not snaps and not logs:
        raise FileNotFoundError(f"{snap_v2}: no ZooKeeper snapshot or txn log")
    errors: list[CorruptDataError] = []
    skipped: list[str] = []
    for szxid, spath in snaps[:100] or [(0, None)]:
        try:
            if spath is None:
                tree = DataTree(max_buffer=max_buffer, extended_types=extended_types)
                snap = None
            else:
                snap = read_zk_snapshot(spath, progress=progress)
                tree = _tree_from_snapshot(snap, max_buffer, extended_types)
            report = ImportReport(spath, szxid, 0, szxid, 0, 0, 0)
            report.skipped_snapshots = list(skipped)
            _replay(tree, snap, szxid, logs, report, progress, check_digest)
        except CorruptDataError as e:
            if spath is not None and e.path == spath and not isinstance(e, DigestMismatchError):
                errors.append(e)
                skipped.append(str(e))
                continue  # a damaged snapshot: try the one before it
            if errors:
                raise CorruptDataError(f"{errors[0]}; the older snapshot {spath} cannot be "
                                       f"used instead: {e}", path=e.path, offset=e.offset,
                                       zxid=e.zxid) from e
            raise
        break
    else:
        first = errors[0]
        raise CorruptDataError(f"{first} (and no older valid snapshot)", path=first.path,
                               offset=first.offset, zxid=first.zxid)
    # ZooKeeperServer.loadData: ephemerals of sessions it no longer knows go away
    dead = [sid for sid, paths in tree.ephemerals().items() if sid not in tree.sessions
            and paths]
    for sid in dead:
        tree.apply(Txn(TxnHeader(sid, 0, tree.last_zxid, 0, int(Op.CLOSE_SESSION)),
                       CloseSessionTxn(None)))
        tree.sessions.pop(sid, None)
    report.dead_sessions = len(dead)
    report.last_zxid = tree.last_zxid
    report.znodes = tree.node_count
    report.sessions = len(tree.sessions)
    report.ephemerals = tree.ephemerals_count()
    if not extended_types and any(
            zn.ephemeral_kind(n.ephemeral_owner, True) == zn.TTL for _p, n in tree.iter_nodes()
            if n.ephemeral_owner):
        report.warnings.append("the data holds TTL znodes: set extendedTypesEnabled=true in "
                               "zoo.cfg, or zabby takes them for ephemerals")
    return tree, report


def _replay(tree: DataTree, snap: ZkSnapshot | None, szxid: int, logs, report: ImportReport,
            progress: Progress | None, check_digest: bool) -> None:
    # the newest log starting at or before the snapshot, and every later one
    start = 0
    for i, (z, _p) in enumerate(logs):
        if z <= szxid:
            start = i
    chosen = logs[start:]
    expect = snap.digest if snap is not None else None  # (zxid, version, digest)
    prev = szxid
    total = sum(os.path.getsize(p) for _z, p in chosen)
    done = 0
    for _z, lpath in chosen:
        zlog = read_zk_log(lpath, after_zxid=szxid, max_buffer=tree.max_buffer)
        report.logs.append(lpath)
        if zlog.torn is not None:
            report.torn.append((lpath, *zlog.torn))
        for e in zlog.entries:
            zxid = e.txn.zxid
            if zxid <= prev:
                continue  # already applied (overlapping files)
            if not _follows(prev, zxid):
                raise CorruptDataError(
                    f"{lpath}: offset {e.offset}: zxid {zxid:#x} does not follow {prev:#x}: "
                    f"txns are missing (a log file purged or lost?)", path=lpath,
                    offset=e.offset, zxid=zxid)
            tree.apply(e.txn)
            report.replayed += 1
            prev = zxid
            if e.digest is not None and e.digest[0] == DIGEST_VERSION:
                expect = (zxid, e.digest[0], e.digest[1])
        done += os.path.getsize(lpath)
        if progress is not None:
            progress("zk-logs", done, total)
    report.last_zxid = tree.last_zxid
    if expect is not None and expect[0] == tree.last_zxid and expect[1] == DIGEST_VERSION:
        got = tree_digest(tree)
        if got != expect[2]:
            msg = (f"the tree's digest after zxid {tree.last_zxid:#x} is {got:#x}, ZooKeeper "
                   f"recorded {expect[2]:#x}: the import does not reproduce ZooKeeper's tree")
            if check_digest:
                src = report.logs[-1] if report.replayed else (snap.path if snap else "")
                raise DigestMismatchError(f"{src}: {msg}", path=src, zxid=tree.last_zxid)
            report.warnings.append(msg)
            report.digest = f"MISMATCH ({got:#x} != {expect[2]:#x})"
        else:
            report.digest = f"{got:#x} at zxid {tree.last_zxid:#x}, matches ZooKeeper's"
    elif expect is not None:
        report.digest = "present, but not for the last zxid (not checked)"


# -------------------------------------------------------------------- export
def zk_snapshot_bytes(tree: DataTree, *, digest: bool = True,
                      progress: Progress | None = None) -> bytes:
    """`tree` as ZooKeeper snapshot bytes (uncompressed stream)."""
    out = bytearray()
    out += _HDR.pack(SNAP_MAGIC, FORMAT_VERSION, -1)
    out += _I.pack(len(tree.sessions))
    for sid, to in tree.sessions.items():
        out += _SESSION.pack(sid, to)
    # the ACL cache: one key per distinct list
    keys: dict[tuple, int] = {}
    acl_part = bytearray()
    node_part = bytearray()
    pack_stat = _STAT.pack
    total = tree.node_count
    dsum = 0
    for k, (path, node) in enumerate(tree.iter_nodes()):
        acl = node.acl
        ak = tuple((a.perms, a.id.scheme, a.id.id) for a in acl)
        key = keys.get(ak)
        if key is None:
            key = keys[ak] = len(keys) + 1
            acl_part += _Q.pack(key)
            acl_part += _I.pack(len(ak))
            for perms, scheme, ident in ak:
                acl_part += _I.pack(perms)
                _put_string(acl_part, scheme)
                _put_string(acl_part, ident)
        _put_string(node_part, "" if path == "/" else path)
        d = node.data
        if d is None:
            node_part += _I.pack(-1)
        else:
            node_part += _I.pack(len(d))
            node_part += d
        node_part += _Q.pack(key)
        node_part += pack_stat(node.czxid, node.mzxid, node.ctime, node.mtime, node.version,
                               node.cversion, node.aversion, node.ephemeral_owner, node.pzxid)
        if digest:
            dsum += node_digest(path, node)
        if progress is not None and not (k + 1) & 0x3FFF:
            progress("zk-export", k + 1, total)
    out += _I.pack(len(keys))
    out += acl_part
    out += node_part
    _put_string(out, "/")
    _seal(out)
    if digest:
        out += _ZXID_DIGEST.pack(tree.last_zxid, DIGEST_VERSION, _s64(dsum))
        _seal(out)
    if progress is not None:
        progress("zk-export", total, total)
    return bytes(out)


def _put_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out += _I.pack(-1)
        return
    b = s.encode("utf-8", "surrogatepass")
    out += _I.pack(len(b))
    out += b


def _seal(out: bytearray) -> None:
    out += _Q.pack(zlib.adler32(out))
    _put_string(out, "/")


def write_zk_snapshot(tree: DataTree, data_dir: str, *, compression: str = "",
                      digest: bool = True, progress: Progress | None = None) -> str:
    """Write `tree` as `data_dir`/version-2/snapshot.<hex zxid>[.gz|.snappy], fsynced
    (written to a temporary name first). Returns the path."""
    data = zk_snapshot_bytes(tree, digest=digest, progress=progress)
    suffix = ""
    if compression in ("gz", "gzip"):
        data = gzip.compress(data, 6)
        suffix = ".gz"
    elif compression == "snappy":
        data = _snappy_stream_compress(data)
        suffix = ".snappy"
    elif compression:
        raise ValueError(f"unknown snapshot compression {compression!r} (gz, snappy or none)")
    v2 = os.path.join(data_dir, "version-2")
    os.makedirs(v2, exist_ok=True)
    final = os.path.join(v2, f"snapshot.{tree.last_zxid:x}{suffix}")
    tmp = final + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fd = os.open(v2, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final
