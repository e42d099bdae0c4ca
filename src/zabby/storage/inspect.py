"""Human-readable dumps of txn log segments and snapshots.

`log_lines(path)` renders each entry as ZooKeeper's LogFormatter does (time,
session, cxid, zxid, type name, a short body); `snapshot_lines(path)` renders
the tree as ZooKeeper's SnapshotFormatter (each znode's stat, then sessions).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..tree import Txn
from ..tree.txn import MultiTxn
from ..wire.constants import Op
from ..wire.jute import RECORD_TYPES, ProtocolError, Record
from .fs import default_fs
from .snapshot import load_snapshot, read_snapshot_info
from .txnlog import ENTRY_HEADER, PREFIX, parse_name, scan_segment

__all__ = ["LogEntry", "format_body", "log_entries", "log_lines", "snapshot_lines", "type_name"]

_TYPE_NAMES = {
    Op.CREATE: "create",
    Op.CREATE2: "create2",
    Op.DELETE: "delete",
    Op.SET_DATA: "setData",
    Op.SET_ACL: "setACL",
    Op.CHECK: "check",
    Op.MULTI: "multi",
    Op.RECONFIG: "reconfig",
    Op.CREATE_CONTAINER: "createContainer",
    Op.DELETE_CONTAINER: "deleteContainer",
    Op.CREATE_TTL: "createTTL",
    Op.CREATE_SESSION: "createSession",
    Op.CLOSE_SESSION: "closeSession",
    Op.ERROR: "error",
}

BODY_LIMIT = 200


def type_name(t: int) -> str:
    try:
        return _TYPE_NAMES[Op(t)]
    except (ValueError, KeyError):
        return f"unknown {t}"


def _render(v) -> str:
    """jute's CsvOutputArchive style: 'string, #hex buffer, T/F, v{...}, s{...}."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return "'" + v
    if isinstance(v, (bytes, bytearray)):
        h = bytes(v[:32]).hex()
        return "#" + h + ("..." if len(v) > 32 else "")
    if isinstance(v, (list, tuple)):
        return "v{" + ",".join(_render(x) for x in v) + "}"
    if isinstance(v, RECORD_TYPES):
        return "s{" + ",".join(_render(getattr(v, n)) for n, _ in v.FIELDS) + "}"
    return repr(v)


def format_body(txn: Txn) -> str:
    body = txn.body
    if body is None:
        return ""
    if isinstance(body, MultiTxn):
        try:
            ops = body.ops()
        except ProtocolError as e:
            return f"<undecodable multi: {e}>"
        return "v{" + ",".join(type_name(t) + ":" + format_record(b) for t, b in ops) + "}"
    return format_record(body)


def format_record(rec: Record) -> str:
    out = ",".join(_render(getattr(rec, n)) for n, _ in rec.FIELDS)
    return out if len(out) <= BODY_LIMIT else out[:BODY_LIMIT] + "..."


def _time(ms: int) -> str:
    try:
        t = _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d} UTC"


@dataclass
class LogEntry:
    zxid: int
    offset: int
    time: int
    session: int
    cxid: int
    type: int
    type_name: str
    body: str

    def line(self) -> str:
        return (f"{_time(self.time)} session 0x{self.session & 0xFFFFFFFFFFFFFFFF:x} "
                f"cxid 0x{self.cxid & 0xFFFFFFFF:x} zxid 0x{self.zxid:x} {self.type_name} {self.body}"
                ).rstrip()


def log_entries(path: str, *, fs=None) -> tuple[list[LogEntry], str | None]:
    """Every valid entry of one segment, and a note about its tail (torn) if any.
    Raises CorruptDataError for damage that is not a torn tail."""
    fs = default_fs(fs)
    name_zxid = parse_name(os.path.basename(path), PREFIX)
    buf = fs.read_file(path)
    if name_zxid is None:
        name_zxid = int.from_bytes(buf[16:24], "little", signed=True) if len(buf) >= 24 else 0
    scan = scan_segment(buf, path, name_zxid)
    out = []
    for zxid, s, e in scan.entries:
        try:
            txn = Txn.decode(buf[s:e])
        except (ProtocolError, ValueError) as err:
            out.append(LogEntry(zxid, s - ENTRY_HEADER, 0, 0, 0, 0, "undecodable", str(err)))
            continue
        h = txn.header
        out.append(LogEntry(zxid, s - ENTRY_HEADER, h.time, h.clientId, h.cxid, h.type,
                            type_name(h.type), format_body(txn)))
    note = None
    if scan.torn_at is not None:
        note = f"torn tail at offset {scan.torn_at}: {scan.torn_reason}"
    return out, note


def log_lines(path: str, *, fs=None) -> Iterator[str]:
    entries, note = log_entries(path, fs=fs)
    yield f"zabby txn log segment {path}"
    for e in entries:
        yield e.line()
    if note:
        yield f"WARNING: {note}"
    yield f"EOF reached after {len(entries)} txns."


def snapshot_lines(path: str, *, fs=None, extended_types: bool = True) -> Iterator[str]:
    """SnapshotFormatter-like dump: every znode with its stat, then the sessions."""
    info = read_snapshot_info(path, fs=fs)
    tree = load_snapshot(path, fs=fs, extended_types=extended_types)
    yield f"zabby snapshot {path} (zxid 0x{info.zxid:x}, {'zlib' if info.compressed else 'uncompressed'})"
    yield f"ZNode Details (count={tree.node_count}):"
    for p, node in tree.iter_nodes():
        yield "----"
        yield p
        yield f"  cZxid = 0x{node.czxid:016x}"
        yield f"  ctime = {_time(node.ctime)}"
        yield f"  mZxid = 0x{node.mzxid:016x}"
        yield f"  mtime = {_time(node.mtime)}"
        yield f"  pZxid = 0x{node.pzxid:016x}"
        st = node.stat(extended_types)
        yield f"  cversion = {st.cversion}"
        yield f"  dataVersion = {node.version}"
        yield f"  aclVersion = {node.aversion}"
        yield f"  ephemeralOwner = 0x{node.ephemeral_owner & 0xFFFFFFFFFFFFFFFF:016x}"
        yield f"  dataLength = {node.data_length}"
        acl = ",".join(f"{a.id.scheme}:{a.id.id}:{a.perms}" for a in node.acl)
        yield f"  acl = [{acl}]"
        if node.data:
            yield f"  data = {_render(node.data)}"
    yield "----"
    eph = tree.ephemerals()
    yield f"Session Details (sid, timeout, ephemeralCount): count={len(tree.sessions)}"
    for sid, timeout in tree.sessions.items():
        yield f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}, {timeout}, {len(eph.get(sid, ()))}"
    yield "----"
    yield f"Last zxid: 0x{tree.last_zxid:x}"


