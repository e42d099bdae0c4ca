"""Corruption at rest of a standalone server's data directory (issue 15, item 3a).

A real server writes znodes (each acknowledged), is stopped, and one file is damaged
(a bit flipped, or the file cut short) in the txn log's last entry, in an entry in the
middle of the log, or in the newest snapshot. On restart the server either refuses to
start with a message naming the file and the offset, or -- where no acknowledged txn
can be lost -- recovers and serves exactly the tree it had (compared znode by znode).
What each case does is in docs/OPERATING.md ("Damaged data directories").
"""

from __future__ import annotations

import os
import shutil

import pytest

from zabby.testing.diskfaults import (
    data_with_old_segment,
    flip_bit,
    log_entries,
    middle_entry,
    newest_segment,
    segments,
    snapshots,
    tree_diff,
    tree_dump,
    truncate,
)
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.testing.servers import ServerStartError, ZabbyServer
from zabby.wire import Err, Op
from zabby.wire.records import CreateRequest, SetDataRequest

pytestmark = pytest.mark.timeout(120)


def _server(tmp_path) -> ZabbyServer:
    # a small snapCount: several snapshots and log segments after a few hundred writes
    return ZabbyServer(tmp_path, start=False, snapCount=40, preAllocSize=16, tickTime=500)


def _write(srv: ZabbyServer, n: int, tag: str) -> None:
    with RawClient(srv.host, srv.port, timeout_ms=10000) as c:
        for i in range(n):
            r = c.request(Op.CREATE2, CreateRequest(f"/{tag}{i}", f"{tag}-{i}".encode(),
                                                    OPEN_ACL_UNSAFE, 0))
            assert r.err == Err.OK, r
        # the last txn a setData (its encoding does not end in a zero byte)
        r = c.request(Op.SET_DATA, SetDataRequest(f"/{tag}0", b"last", -1))
        assert r.err == Err.OK, r


def _refused(srv: ZabbyServer, path: str, offset: int | None) -> str:
    with pytest.raises(ServerStartError):
        srv.start()
    text = srv.log_path.read_text(errors="replace")
    assert "refusing to start" in text, text[-2000:]
    want = f"{path}: offset {offset}" if offset is not None else path
    assert want in text, f"expected {want!r} in the refusal:\n{text[-2000:]}"
    return text


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One data directory written by a real server (several snapshots and segments),
    copied for each test."""
    d = tmp_path_factory.mktemp("template")
    srv = _server(d)
    data, before = data_with_old_segment(
        srv, lambda srv, i: _write(srv, 120 if i == 0 else 45, f"n{i}-"))  # see its docstring
    assert len(snapshots(srv.data_dir)) >= 3 and len(segments(srv.data_dir)) >= 3
    return data, before


@pytest.fixture
def populated(tmp_path, template):
    data, before = template
    shutil.copytree(data, tmp_path / "data")
    srv = _server(tmp_path)
    yield srv, before
    srv.stop()


def _restarts_with(srv: ZabbyServer, before: dict) -> str:
    srv.start()
    after = tree_dump(srv.host, srv.port)
    assert not tree_diff(before, after), tree_diff(before, after)
    return srv.log_path.read_text(errors="replace")


def test_bit_flip_in_the_last_log_entry_is_refused(populated):
    """The last txn was fsynced and acknowledged: cutting it would lose it."""
    srv, _before = populated
    seg = newest_segment(srv.data_dir)
    zxid, off, length = log_entries(seg)[-1]
    flip_bit(seg, off + length - 5, 3)  # in the payload, its last byte left in place
    text = _refused(srv, seg, off)
    assert "not a torn write" in text and "zabby check --repair" in text


def test_unfinished_last_write_is_truncated_and_nothing_acknowledged_is_lost(populated):
    """A write that stopped part-way (the rest of its entry still the preallocated
    zeros) was never fsynced, so never acknowledged: cut with a warning."""
    srv, before = populated
    seg = newest_segment(srv.data_dir)
    _zxid, off, length = log_entries(seg)[-1]
    # append the start of one more entry, as a crash mid-append leaves it
    with open(seg, "r+b") as f:
        f.seek(off)
        entry = f.read(length)
        f.seek(off + length)
        f.write(entry[: length // 2])
    text = _restarts_with(srv, before)
    assert f"txn log {seg}: torn write at offset {off + length}" in text, text[-2000:]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damage_in_the_middle_of_the_log_is_refused(populated, damage):
    """(a segment cut short that is not the newest: refused too, the log after it
    would not follow on)"""
    srv, _before = populated
    seg, (_zxid, off, length) = middle_entry(srv.data_dir, not_newest=True)
    if damage == "flip":
        flip_bit(seg, off + length // 2, 0)
    else:
        truncate(seg, off + length // 2)
    _refused(srv, seg, off)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_newest_snapshot_falls_back_to_an_older_one(populated, damage):
    srv, before = populated
    snap = snapshots(srv.data_dir)[0]
    size = os.path.getsize(snap)
    if damage == "flip":
        flip_bit(snap, size // 2, 5)
    else:
        truncate(snap, size // 2)
    text = _restarts_with(srv, before)
    assert f"snapshot {snap} is unusable" in text, text[-2000:]


# ---------------------------------------------------------------- the ambiguous tail
def _one_entry_log(payload: bytes):
    from zabby.storage.fs import SimulatedFS
    from zabby.storage.txnlog import encode_entries, encode_header

    fs = SimulatedFS()
    fs.makedirs("/d/version-2")
    buf = bytearray(encode_header(1))
    encode_entries([(1, payload)], buf)
    h = fs.open("/d/version-2/log.1", create=True)
    fs.write(h, bytes(buf) + bytes(4096), 0)
    fs.fsync(h)
    fs.close(h)
    fs.fsync_dir("/d/version-2")
    return fs, len(buf)


# a txn payload ending in zero bytes, as a closeSession that deleted no ephemerals does
ENDS_IN_ZEROS = bytes(range(1, 40)) + b"\x00\x00\x00\x00"


def test_a_flipped_bit_in_a_last_entry_ending_in_zeros_is_refused():
    from zabby.storage import CorruptDataError, recover

    fs, end = _one_entry_log(ENDS_IN_ZEROS)
    h = fs.open("/d/version-2/log.1")
    off = end - 10
    fs.write(h, bytes([fs.read(h, off, 1)[0] ^ 0x08]), off)
    fs.fsync(h)
    with pytest.raises(CorruptDataError, match="not a torn write"):
        recover("/d", fs=fs)


def test_a_last_entry_ending_in_zeros_cut_short_is_a_torn_tail():
    from zabby.storage import recover
    from zabby.storage.txnlog import SEGMENT_HEADER

    fs, end = _one_entry_log(ENDS_IN_ZEROS)
    h = fs.open("/d/version-2/log.1")
    fs.write(h, bytes(12), end - 16)  # the last 16 bytes never reached the disk
    fs.fsync(h)
    _tree, report = recover("/d", fs=fs)
    assert report.truncated == [("/d/version-2/log.1", SEGMENT_HEADER)]
