"""Disk and clock faults for tests (and, later, `zabby verify`).

Corruption at rest (the server is stopped): `flip_bit` and `truncate` act on a file;
`log_entries` and `newest_segment` / `snapshots` say where things are in a data
directory, so a test can aim at "the last txn", "a txn in the middle" or "the newest
snapshot".

A slow disk: `FsyncStall` controls the test-only hook of zabby.storage.fs
(``ZABBY_TEST_FSYNC_STALL_FILE``): while its file holds N > 0, every fsync of that
server -- in its fsync helper processes and on its log thread -- first sleeps N
seconds. `SlowDiskServer` is a ZabbyServer started with that variable pointing at a
file of its own (``<server dir>/fsync-stall``), so ``ZabbyEnsemble(...,
member_cls=SlowDiskServer)`` gives every member a disk a test can slow down.

A clock jumped forward: `SlowDiskServer(..., clock_offset_ms=N)` starts the server
with ``ZABBY_TEST_CLOCK_OFFSET_MS=N``: its wall clock and its monotonic clock read N ms
ahead of the machine's (server/app.py installs the offset before anything reads
the time).

`tree_dump` reads a member's whole tree through the client protocol (sync first),
so two members can be compared znode by znode.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..storage.fs import default_fs
from ..storage.snapshot import PREFIX as SNAP_PREFIX
from ..storage.snapshot import TMP_SUFFIX
from ..storage.txnlog import ENTRY_HEADER, list_segments, parse_name, scan_segment
from .servers import ZabbyServer

__all__ = [
    "CLOCK_OFFSET_ENV",
    "FSYNC_STALL_ENV",
    "CORRUPTIONS",
    "Damage",
    "FsyncStall",
    "SlowDiskServer",
    "damage",
    "flip_bit",
    "log_entries",
    "middle_entry",
    "newest_segment",
    "read_segments",
    "segments",
    "snapshots",
    "tree_diff",
    "tree_dump",
    "truncate",
    "wipe",
]

FSYNC_STALL_ENV = "ZABBY_TEST_FSYNC_STALL_FILE"  # = zabby.storage.fs.FSYNC_STALL_ENV
CLOCK_OFFSET_ENV = "ZABBY_TEST_CLOCK_OFFSET_MS"  # read by zabby.server.app


# ------------------------------------------------------------------ corruption
def flip_bit(path: str | os.PathLike[str], offset: int, bit: int = 0) -> int:
    """Flip one bit of the byte at `offset` (fsynced); returns the byte's old value."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)
        if len(old) != 1:
            raise ValueError(f"{path}: no byte at offset {offset}")
        f.seek(offset)
        f.write(bytes([old[0] ^ (1 << bit)]))
        f.flush()
        os.fsync(f.fileno())
    return old[0]


def truncate(path: str | os.PathLike[str], size: int) -> None:
    """Cut the file to `size` bytes (fsynced)."""
    with open(path, "r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


def _v2(data_dir) -> str:
    return os.path.join(str(data_dir), "version-2")


def newest_segment(data_dir) -> str:
    """Path of the newest txn log segment of a data directory."""
    segs = list_segments(_v2(data_dir), default_fs(None))
    if not segs:
        raise FileNotFoundError(f"no txn log segment in {_v2(data_dir)}")
    return segs[-1][1]


def segments(data_dir) -> list[str]:
    """Every txn log segment, oldest first."""
    return [p for _z, p in list_segments(_v2(data_dir), default_fs(None))]


def log_entries(path) -> list[tuple[int, int, int]]:
    """(zxid, entry offset, entry length incl. header) of each valid entry of a segment."""
    name = os.path.basename(str(path))
    z = parse_name(name, "log.")
    with open(path, "rb") as f:
        buf = f.read()
    scan = scan_segment(buf, str(path), z if z is not None else 0)
    return [(zxid, s - ENTRY_HEADER, e - s + ENTRY_HEADER) for zxid, s, e in scan.entries]


def read_segments(data_dir) -> list[str]:
    """The segments recovery reads: from the one holding the newest snapshot's zxid on
    (older ones are never read, so damage there is harmless until a fallback)."""
    snaps = snapshots(data_dir)
    snap_zxid = parse_name(os.path.basename(snaps[0]), SNAP_PREFIX) if snaps else 0
    segs = list_segments(_v2(data_dir), default_fs(None))
    start = 0
    for i, (z, _p) in enumerate(segs):
        if z <= snap_zxid:
            start = i
    return [p for _z, p in segs[start:]]


def middle_entry(data_dir, *, not_newest: bool = False) -> tuple[str, tuple[int, int, int]]:
    """(segment, (zxid, offset, length)) of an entry with valid entries after it in a
    segment recovery reads -- damage there is "the middle of the log". With
    `not_newest`, in a segment other than the newest (so even cutting the file there
    leaves data after it). Raises LookupError when there is none."""
    segs = read_segments(data_dir)
    if not_newest:
        segs = segs[:-1]
    for seg in reversed(segs):
        entries = log_entries(seg)
        if not_newest and entries:
            return seg, entries[len(entries) // 2]
        if len(entries) >= 2:
            return seg, entries[(len(entries) - 1) // 2]
    raise LookupError(f"no entry with entries after it in {segs}")


def snapshots(data_dir) -> list[str]:
    """Snapshot files, newest first."""
    d = _v2(data_dir)
    out = []
    for name in os.listdir(d) if os.path.isdir(d) else ():
        if name.endswith(TMP_SUFFIX):
            continue
        z = parse_name(name, SNAP_PREFIX)
        if z is not None:
            out.append((z, os.path.join(d, name)))
    return [p for _z, p in sorted(out, reverse=True)]


# the kinds of damage `damage` does (`zabby verify`'s corrupt fault draws one). Not
# among them: the newest log segment cut short -- a write torn by a power loss looks
# exactly like that, and recovery must accept it (drop the torn entry), so it is no
# corruption a member could detect
CORRUPTIONS = ("log-tail-flip", "log-middle-flip", "snapshot-flip", "snapshot-truncate",
               "old-segment-truncate")


class Damage:
    """What `damage` did: the kind, the file, the offset (of the bit flipped, or where
    the file now ends), the entry or snapshot hit, and the proof that the bytes on disk
    changed (the byte's value before and after, or the file's size before and after)."""

    def __init__(self, kind: str, path: str, offset: int, what: str, before: int,
                 after: int) -> None:
        self.kind, self.path, self.offset, self.what = kind, path, offset, what
        self.before, self.after = before, after

    def __str__(self) -> str:
        if self.kind.endswith("truncate"):
            return (f"{self.kind}: {self.path} cut from {self.before} to {self.after} bytes "
                    f"({self.what})")
        return (f"{self.kind}: {self.path} offset {self.offset} byte {self.before:#04x} -> "
                f"{self.after:#04x} ({self.what})")


def _flip_in(path: str, lo: int, hi: int, rng) -> tuple[int, int, int]:
    """Flip a random bit of a random byte in [lo, hi); (offset, old, new), new read back."""
    off = rng.randrange(lo, hi)
    old = flip_bit(path, off, rng.randrange(8))
    with open(path, "rb") as f:
        f.seek(off)
        new = f.read(1)[0]
    if new == old:
        raise AssertionError(f"{path}: offset {off}: the bit flip did not reach the file")
    return off, old, new


def _cut(path: str, size: int) -> tuple[int, int]:
    before = os.path.getsize(path)
    truncate(path, size)
    after = os.path.getsize(path)
    if after != size or after >= before:
        raise AssertionError(f"{path}: cutting it to {size} bytes left {after} (was {before})")
    return before, after


def damage(data_dir, kind: str, rng) -> Damage:
    """Damage a stopped server's data directory the way `kind` (one of CORRUPTIONS)
    says, aiming with `rng` (a random.Random); raises LookupError when the directory
    has nothing of that kind to aim at (no snapshot, no older segment recovery reads).

      log-tail-flip        a bit in the payload of one of the last 3 entries of the
                           newest log segment
      log-middle-flip      a bit in the payload of an entry with valid entries after it
      snapshot-flip        a bit of the newest snapshot
      snapshot-truncate    the newest snapshot cut short
      old-segment-truncate a log segment other than the newest, one recovery reads, cut
                           inside one of its entries

    Bits are flipped in entry payloads, not in entry headers: a damaged length field can
    make the entry look like a torn tail, which recovery must accept."""
    if kind == "log-tail-flip":
        seg = newest_segment(data_dir)
        entries = log_entries(seg)
        if not entries:
            raise LookupError(f"no entry in {seg}")
        zxid, off, length = rng.choice(entries[-3:])
        if length <= ENTRY_HEADER:
            raise LookupError(f"{seg}: the entry at {off} has no payload")
        at, old, new = _flip_in(seg, off + ENTRY_HEADER, off + length, rng)
        return Damage(kind, seg, at, f"txn {zxid:#x}, entry at offset {off}", old, new)
    if kind == "log-middle-flip":
        seg, (zxid, off, length) = middle_entry(data_dir)
        if length <= ENTRY_HEADER:
            raise LookupError(f"{seg}: the entry at {off} has no payload")
        at, old, new = _flip_in(seg, off + ENTRY_HEADER, off + length, rng)
        return Damage(kind, seg, at, f"txn {zxid:#x}, entry at offset {off}", old, new)
    if kind in ("snapshot-flip", "snapshot-truncate"):
        snaps = snapshots(data_dir)
        if not snaps:
            raise LookupError(f"no snapshot in {data_dir}")
        path = snaps[0]
        size = os.path.getsize(path)
        what = f"the newest of {len(snaps)} snapshots"
        if kind == "snapshot-flip":
            at, old, new = _flip_in(path, 0, size, rng)
            return Damage(kind, path, at, what, old, new)
        at = rng.randrange(size // 4, size - 1) if size > 8 else 0
        before, after = _cut(path, at)
        return Damage(kind, path, at, what, before, after)
    if kind == "old-segment-truncate":
        seg, (zxid, off, length) = middle_entry(data_dir, not_newest=True)
        at = off + rng.randrange(1, length)
        before, after = _cut(seg, at)
        return Damage(kind, seg, at, f"inside txn {zxid:#x}, entry at offset {off}; "
                      f"{os.path.basename(newest_segment(data_dir))} follows", before, after)
    raise ValueError(f"unknown kind of damage {kind!r} (known: {', '.join(CORRUPTIONS)})")


def wipe(data_dir, keep=("myid",)) -> list[str]:
    """Delete everything in a stopped server's data directory but `keep` (its myid);
    returns what is left (raises AssertionError if anything else is)."""
    import shutil

    d = Path(data_dir)
    for p in d.iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    left = sorted(p.name for p in d.iterdir())
    if set(left) - set(keep):
        raise AssertionError(f"{d} still holds {left} after the wipe")
    return left


# ------------------------------------------------------------------ slow disk
class FsyncStall:
    """Control of one server's fsync stall file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def set(self, seconds: float) -> None:
        """From now on every fsync first sleeps `seconds` (an fsync already
        sleeping finishes its own stall)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{seconds}\n")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.set(0)


class SlowDiskServer(ZabbyServer):
    """A zabby server with the fsync-stall hook armed (a file of its own, empty: no
    stall until `stall.set(...)`), and optionally a clock `clock_offset_ms` ahead."""

    def __init__(self, tmpdir, *, clock_offset_ms: int = 0, **cfg) -> None:
        self.stall = FsyncStall(Path(tmpdir) / "fsync-stall")
        self.clock_offset_ms = clock_offset_ms
        Path(tmpdir).mkdir(parents=True, exist_ok=True)
        self.stall.clear()
        super().__init__(tmpdir, **cfg)

    def env(self) -> dict[str, str]:
        env = super().env()
        env[FSYNC_STALL_ENV] = str(self.stall.path)
        if self.clock_offset_ms:
            env[CLOCK_OFFSET_ENV] = str(int(self.clock_offset_ms))
        else:
            env.pop(CLOCK_OFFSET_ENV, None)
        return env


# ------------------------------------------------------------------ a data directory to damage
def data_with_old_segment(srv: ZabbyServer, write, *, sessions: int = 12) -> tuple[str, dict]:
    """Run `srv` (a standalone server, not started) for up to `sessions` start/stop
    rounds, calling ``write(srv, round)`` in each, until its data directory holds a
    log segment before the newest that recovery reads (not so when the last txn
    triggered a snapshot: the log rolls at the next write). Returns (data dir, the
    tree as the last round left it: `tree_dump`). Raises LookupError if it never did.

    A restarted server counts txns towards its next snapshot from zero and appends to
    the newest segment, so a round that logs fewer txns than snapCount cannot mend an
    unlucky round: each round's `write` must log more than snapCount (about 1 round
    in 20 ends on a snapshot with snapCount 40; then only the next round's snapshot,
    and its roll, give recovery an older segment to read)."""
    before: dict = {}
    for i in range(sessions):
        srv.start()
        try:
            write(srv, i)
            before = tree_dump(srv.host, srv.port)
        finally:
            srv.stop()
        try:
            middle_entry(srv.data_dir, not_newest=True)
        except LookupError:
            continue
        return srv.data_dir, before
    middle_entry(srv.data_dir, not_newest=True)  # raises: the data is not usable
    return srv.data_dir, before


# ------------------------------------------------------------------ comparing trees
def tree_dump(host: str, port: int, *, timeout: float = 10.0) -> dict[str, tuple[bytes, tuple]]:
    """path -> (data, Stat fields but dataLength) of every znode a member
    holds, read after a sync (so it has applied everything committed before)."""
    from ..wire import Err, Op
    from ..wire.records import PathRequest, PathWatchRequest
    from .rawclient import RawClient

    c = RawClient(host, port, timeout_ms=10000, io_timeout=timeout)
    c.connect()
    try:
        r = c.request(Op.SYNC, PathRequest("/"))
        if r.err != Err.OK:
            raise RuntimeError(f"sync on {host}:{port}: err {r.err}")
        out: dict[str, tuple[bytes, tuple]] = {}
        todo = ["/"]
        while todo:
            path = todo.pop()
            r = c.request(Op.GET_DATA, PathWatchRequest(path, False))
            if r.err == Err.NONODE:
                continue
            if r.err != Err.OK:
                raise RuntimeError(f"getData {path} on {host}:{port}: err {r.err}")
            st = r.body.stat
            out[path] = (bytes(r.body.data), (st.czxid, st.mzxid, st.ctime, st.mtime, st.version,
                                              st.cversion, st.aversion, st.ephemeralOwner,
                                              st.numChildren, st.pzxid))
            r = c.request(Op.GET_CHILDREN, PathWatchRequest(path, False))
            if r.err == Err.NONODE:
                continue
            if r.err != Err.OK:
                raise RuntimeError(f"getChildren {path} on {host}:{port}: err {r.err}")
            for ch in r.body.children:
                todo.append(("/" if path == "/" else path + "/") + ch)
        return out
    finally:
        c.close()


# written by each member itself when it loads its configuration (its mtime is that
# member's clock), as in ZooKeeper: not part of the replicated state
LOCAL_ZNODES = ("/zookeeper/config",)


def tree_diff(a: dict, b: dict, limit: int = 10) -> list[str]:
    """What differs between two tree_dump results (empty: the same tree), the
    member-local LOCAL_ZNODES aside."""
    out = []
    for p in sorted(set(a) | set(b)):
        if p in LOCAL_ZNODES:
            continue
        if a.get(p) != b.get(p):
            out.append(f"{p}: {a.get(p)!r} != {b.get(p)!r}")
            if len(out) >= limit:
                break
    return out
