"""`zabby import` / `export` on ZooKeeper-format files built here (no ZooKeeper needed):
plain / gz / snappy snapshots, logs with checksums and digests, and damage of every
kind: each refusal names the file and the offset and leaves the target empty."""

from __future__ import annotations

import gzip
import os
import re
import struct
import sys
import zlib

import pytest

from zabby.cli.main import main
from zabby.storage import recover
from zabby.storage.zookeeper import (
    _snappy_stream_compress,
    load_zookeeper,
    read_zk_snapshot,
    tree_digest,
    write_zk_snapshot,
    zk_snapshot_bytes,
)
from zabby.tree import CreateSessionTxn, CreateTxn, DataTree, DeleteTxn, SetDataTxn, Txn, TxnHeader
from zabby.tree.acl import OPEN_ACL_UNSAFE
from zabby.wire.constants import Op
from zabby.wire.records import ACL, Id

pytestmark = pytest.mark.timeout(60)

SID = 0x1000_0000_0000_0001
DIGEST_ACL = [ACL(31, Id("digest", "u:Pq8zKT1mIS0P3kGdSCFKtGmwgCM="))]


def _txns(n: int) -> list[Txn]:
    """A session, then creates, sets and deletes (zxid 1..n)."""
    out = [Txn(TxnHeader(SID, 0, 1, 1000, int(Op.CREATE_SESSION)), CreateSessionTxn(30000))]
    z = 1
    while len(out) < n:
        z += 1
        k = z % 5
        if k == 4 and z > 10:
            t = Txn(TxnHeader(SID, z, z, 1000 + z, int(Op.SET_DATA)),
                    SetDataTxn(f"/n{z - 4}", b"set", 1))
        elif k == 3 and z > 10:
            t = Txn(TxnHeader(SID, z, z, 1000 + z, int(Op.DELETE)), DeleteTxn(f"/n{z - 8}"))
        else:
            acl = DIGEST_ACL if z % 7 == 0 else list(OPEN_ACL_UNSAFE)
            t = Txn(TxnHeader(SID, z, z, 1000 + z, int(Op.CREATE)),
                    CreateTxn(f"/n{z}", b"d%d" % z, acl, z % 11 == 0, -1))
        out.append(t)
    return out


def _record(txn: Txn, digest: int | None) -> bytes:
    b = txn.encode()
    if digest is not None:
        b += struct.pack(">iq", 2, digest - (1 << 64) if digest >= 1 << 63 else digest)
    return struct.pack(">qi", zlib.adler32(b), len(b)) + b + b"B"


LOG_HDR = struct.pack(">iiq", 0x5A4B4C47, 2, 0)


def make_zk(tmp_path, *, snaps=(20,), n=40, compression="", prealloc=4096, digests=True,
            snap_digest=True):
    """A ZooKeeper dataDir: snapshots at the zxids in `snaps`, one log of txns 1..n.
    Returns (data dir, the final tree, record offsets in the log)."""
    d = tmp_path / "zkdata"
    v2 = d / "version-2"
    v2.mkdir(parents=True)
    tree = DataTree(extended_types=True)
    log = bytearray(LOG_HDR)
    offsets = []
    for t in _txns(n):
        tree.apply(t)
        offsets.append(len(log))
        log += _record(t, tree_digest(tree) if digests else None)
        if tree.last_zxid in snaps:
            write_zk_snapshot(tree, str(d), compression=compression, digest=snap_digest)
    log += b"\0" * prealloc
    (v2 / "log.1").write_bytes(bytes(log))
    return d, tree, offsets


def _cfg(tmp_path, name="zabby") -> str:
    p = tmp_path / f"{name}.cfg"
    p.write_text(f"dataDir={tmp_path / name}\nclientPort=2181\nextendedTypesEnabled=true\n")
    return str(p)


def _state(tree):
    return ({p: (n.data, n.acl, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version,
                 n.cversion, n.aversion, n.ephemeral_owner) for p, n in tree.iter_nodes()},
            dict(tree.sessions), tree.last_zxid)


def _files_under(d) -> list[str]:
    return [os.path.join(r, f) for r, _ds, fs in os.walk(d) for f in fs]


def refuse(tmp_path, capsys, zkdir, *extra) -> str:
    cfg = _cfg(tmp_path)
    rc = main(["import", "--config", cfg, "--from-zookeeper", str(zkdir), *extra])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert _files_under(tmp_path / "zabby") == []  # nothing written
    return err


@pytest.mark.parametrize("compression", ["", "gz", "snappy"])
def test_import_matches_the_tree(tmp_path, capsys, compression):
    d, tree, _ = make_zk(tmp_path, compression=compression)
    assert _files_under(d / "version-2")[0]  # the snapshot has the suffix
    names = os.listdir(d / "version-2")
    assert f"snapshot.14{'.' + compression if compression else ''}" in names
    cfg = _cfg(tmp_path)
    assert main(["import", "--config", cfg, "--from-zookeeper", str(d)]) == 0
    out = capsys.readouterr().out
    assert "+ 20 txns" in out and "matches ZooKeeper's" in out and "last zxid: 0x28" in out
    got, _rep = recover(str(tmp_path / "zabby"), extended_types=True)
    assert _state(got) == _state(tree)
    assert got.ephemerals_of(SID) == tree.ephemerals_of(SID) != set()


def test_export_then_read_back(tmp_path, capsys):
    d, tree, _ = make_zk(tmp_path)
    cfg = _cfg(tmp_path)
    assert main(["import", "--config", cfg, "--from-zookeeper", str(d)]) == 0
    for comp in ("none", "gz", "snappy"):
        out = tmp_path / f"export-{comp}"
        assert main(["export", "--config", cfg, "--to-zookeeper", str(out),
                     "--compression", comp]) == 0
        (snap,) = _files_under(out)
        back = read_zk_snapshot(snap)
        assert back.zxid == tree.last_zxid and back.sessions == tree.sessions
        assert back.digest == (tree.last_zxid, 2, tree_digest(tree))
        t2, _ = load_zookeeper(str(out))
        assert _state(t2) == _state(tree)
    assert "znodes:" in capsys.readouterr().out


def test_target_must_be_empty(tmp_path, capsys):
    d, _tree, _ = make_zk(tmp_path)
    (tmp_path / "zabby").mkdir()
    (tmp_path / "zabby" / "stray").write_text("x")
    rc = main(["import", "--config", _cfg(tmp_path), "--from-zookeeper", str(d)])
    assert rc == 1 and "must be empty" in capsys.readouterr().err


def test_snapshot_bad_magic(tmp_path, capsys):
    d, _t, _ = make_zk(tmp_path)
    snap = d / "version-2" / "snapshot.14"
    b = bytearray(snap.read_bytes())
    b[0:4] = b"XXXX"
    snap.write_bytes(bytes(b))
    err = refuse(tmp_path, capsys, d)
    assert f"{snap}: offset 0: bad magic" in err


def test_snapshot_bad_checksum(tmp_path, capsys):
    d, _t, _ = make_zk(tmp_path)
    snap = d / "version-2" / "snapshot.14"
    b = bytearray(snap.read_bytes())
    i = b.index(b"d12")  # a znode's data
    b[i + 1] ^= 1
    snap.write_bytes(bytes(b))
    err = refuse(tmp_path, capsys, d)
    seal = len(b) - 8 - 5 - (8 + 4 + 8 + 8 + 5)  # before the digest and its seal
    assert f"{snap}: offset {seal}: snapshot checksum mismatch" in err


def test_snapshot_truncated(tmp_path, capsys):
    d, _t, _ = make_zk(tmp_path)
    snap = d / "version-2" / "snapshot.14"
    b = snap.read_bytes()
    snap.write_bytes(b[: len(b) // 2])
    err = refuse(tmp_path, capsys, d)
    assert re.search(rf"{snap}: offset \d+: truncated snapshot", err), err


def test_gz_snapshot_truncated(tmp_path, capsys):
    d, _t, _ = make_zk(tmp_path, compression="gz")
    snap = d / "version-2" / "snapshot.14.gz"
    b = snap.read_bytes()
    snap.write_bytes(b[: len(b) - 30])
    err = refuse(tmp_path, capsys, d)
    assert f"{snap}: offset 0: bad gzip stream" in err


def test_snappy_snapshot_truncated(tmp_path, capsys):
    d, _t, _ = make_zk(tmp_path, compression="snappy")
    snap = d / "version-2" / "snapshot.14.snappy"
    b = snap.read_bytes()
    snap.write_bytes(b[:-10])
    err = refuse(tmp_path, capsys, d)
    assert f"{snap}: offset 16: truncated snappy block" in err


def test_damaged_newest_snapshot_falls_back_to_an_older_one(tmp_path, capsys):
    d, tree, _ = make_zk(tmp_path, snaps=(10, 20))
    newest = d / "version-2" / "snapshot.14"
    newest.write_bytes(newest.read_bytes()[:100])
    cfg = _cfg(tmp_path)
    assert main(["import", "--config", cfg, "--from-zookeeper", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"skipped a damaged snapshot: {newest}" in out and "+ 30 txns" in out
    got, _ = recover(str(tmp_path / "zabby"), extended_types=True)
    assert _state(got) == _state(tree)


def test_log_bad_magic(tmp_path, capsys):
    d, _t, _ = make_zk(tmp_path)
    log = d / "version-2" / "log.1"
    b = bytearray(log.read_bytes())
    b[0] = 0
    log.write_bytes(bytes(b))
    err = refuse(tmp_path, capsys, d)
    assert f"{log}: offset 0: bad magic" in err


def test_log_bad_checksum(tmp_path, capsys):
    d, _t, offs = make_zk(tmp_path)
    log = d / "version-2" / "log.1"
    b = bytearray(log.read_bytes())
    b[offs[30] + 30] ^= 0xFF
    log.write_bytes(bytes(b))
    err = refuse(tmp_path, capsys, d)
    assert f"{log}: offset {offs[30]}: txn checksum mismatch" in err


def test_torn_last_record_is_tolerated(tmp_path, capsys):
    d, _t, offs = make_zk(tmp_path, prealloc=0)
    log = d / "version-2" / "log.1"
    b = log.read_bytes()
    log.write_bytes(b[: offs[-1] + 25] + b"\0" * 100)  # the last txn half written
    cfg = _cfg(tmp_path)
    assert main(["import", "--config", cfg, "--from-zookeeper", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"torn tail tolerated: {log} at offset {offs[-1]}" in out
    assert "last zxid: 0x27" in out and "+ 19 txns" in out
    # the record without its end-of-record byte (a partial write), too
    (tmp_path / "zabby" / "version-2").joinpath(os.listdir(tmp_path / "zabby" / "version-2")[0]).unlink()
    log.write_bytes(b[:-1] + b"\0" * 50)
    assert main(["import", "--config", cfg, "--from-zookeeper", str(d)]) == 0
    assert "end-of-record" in capsys.readouterr().out


def test_torn_record_followed_by_data_is_refused(tmp_path, capsys):
    d, _t, offs = make_zk(tmp_path, prealloc=0)
    log = d / "version-2" / "log.1"
    b = bytearray(log.read_bytes())
    end = offs[31] - 1
    b[end] = 0  # record 30 loses its 'B', record 31 follows
    log.write_bytes(bytes(b))
    err = refuse(tmp_path, capsys, d)
    assert f"{log}: offset {end}: bad end-of-record byte" in err


def test_missing_txns_are_refused(tmp_path, capsys):
    d, _t, offs = make_zk(tmp_path)
    log = d / "version-2" / "log.1"
    b = log.read_bytes()
    log.write_bytes(b[: offs[25]] + b[offs[26]:])  # zxid 0x1a lost
    err = refuse(tmp_path, capsys, d)
    assert f"{log}: offset {offs[25]}: zxid 0x1b does not follow 0x19" in err


def test_digest_mismatch_is_refused_unless_ignored(tmp_path, capsys):
    d, _t, offs = make_zk(tmp_path, digests=False)
    log = d / "version-2" / "log.1"
    b = log.read_bytes()
    txn = Txn.decode(b[offs[-1] + 12 : -4096 - 1])
    log.write_bytes(b[: offs[-1]] + _record(txn, 12345) + b"\0" * 64)
    err = refuse(tmp_path, capsys, d)
    assert f"{log}: the tree's digest after zxid 0x28" in err
    assert main(["import", "--config", _cfg(tmp_path), "--from-zookeeper", str(d),
                 "--ignore-digest"]) == 0
    assert "MISMATCH" in capsys.readouterr().out


def test_snapshot_bytes_layout():
    """The header, the empty ACL cache of a fresh tree and both seals, by hand."""
    tree = DataTree()
    b = zk_snapshot_bytes(tree)
    assert b[:16] == struct.pack(">iiq", 0x5A4B534E, 2, -1)
    assert b[16:20] == b"\0\0\0\0"  # no sessions
    end = struct.pack(">i", 1) + b"/"
    seal = len(b) - 13 - 20 - 13  # seal | digest (zxid, version, value) | seal
    assert b[seal - 5 : seal] == end  # the path "/" that ends the nodes
    assert struct.unpack_from(">q", b, seal)[0] == zlib.adler32(b[:seal])
    assert struct.unpack_from(">qiq", b, seal + 13) == (0, 2, tree_digest(tree))
    assert struct.unpack_from(">q", b, len(b) - 13)[0] == zlib.adler32(b[: len(b) - 13])
    assert b[-5:] == end
    assert gzip.decompress(gzip.compress(b)) == b
    assert _snappy_stream_compress(b)[:8] == b"\x82SNAPPY\x00"



def test_no_digest_as_zookeeper_35_writes(tmp_path, capsys):
    """3.4 / 3.5 (or digest.enabled=false): no digest after the snapshot or the txns."""
    d, tree, _ = make_zk(tmp_path, digests=False, snap_digest=False)
    assert main(["import", "--config", _cfg(tmp_path), "--from-zookeeper", str(d)]) == 0
    assert "digest: not in the input" in capsys.readouterr().out
    got, _ = recover(str(tmp_path / "zabby"), extended_types=True)
    assert _state(got) == _state(tree)


def test_ephemerals_of_unknown_sessions_go_as_zookeeper_loads(tmp_path, capsys):
    tree = DataTree(extended_types=True)
    for z, (path, owner) in enumerate([("/a", 0), ("/a/e1", 77), ("/a/e2", 77), ("/b", 0)], 1):
        tree.apply(Txn(TxnHeader(owner or SID, z, z, 5000 + z, int(Op.CREATE)),
                       CreateTxn(path, b"", list(OPEN_ACL_UNSAFE), bool(owner), -1)))
    assert tree.sessions == {}  # session 77 was never created: ZooKeeper lost track of it
    d = tmp_path / "zkdata"
    write_zk_snapshot(tree, str(d))
    assert main(["import", "--config", _cfg(tmp_path), "--from-zookeeper", str(d)]) == 0
    assert "dropped the ephemerals of 1 session(s)" in capsys.readouterr().out
    got, _ = recover(str(tmp_path / "zabby"), extended_types=True)
    assert got.get_node("/a/e1") is None and got.get_node("/a").pzxid == 4
    assert got.get_node("/a").stat().cversion == 2 * 2 - 0


def test_import_draws_progress_on_a_terminal(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    d, _tree, _ = make_zk(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("ZABBY_NO_PROGRESS", "CI")}
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    env.update(PYTHONPATH=os.path.abspath(src), TERM="xterm", COLUMNS="100",
               ZABBY_PROGRESS_DELAY="0")
    out, rc = pexpect.run(f"{sys.executable} -m zabby.cli.main import --config "
                          f"{_cfg(tmp_path)} --from-zookeeper {d}", env=env, timeout=60,
                          withexitstatus=True)
    out = out.decode()
    assert rc == 0, out
    assert "reading ZooKeeper snapshot" in out and "replaying ZooKeeper txn logs" in out


def test_a_34_snapshot_gets_the_config_node(tmp_path):
    """ZooKeeper 3.4 had no /zookeeper/config; 3.5+ adds it when it loads such data."""
    tree = DataTree()
    tree.apply(Txn(TxnHeader(SID, 1, 1, 1, int(Op.DELETE)), DeleteTxn("/zookeeper/config")))
    assert tree.get_node("/zookeeper/config") is None
    write_zk_snapshot(tree, str(tmp_path / "zk34"), digest=False)
    got, rep = load_zookeeper(str(tmp_path / "zk34"))
    node = got.get_node("/zookeeper/config")
    assert node is not None and node.aversion == -1
    assert [(a.perms, a.id.scheme, a.id.id) for a in node.acl] == [(1, "world", "anyone")]
    assert rep.znodes == DataTree().node_count


def test_damaged_record_length_is_refused_not_taken_for_a_torn_tail(tmp_path, capsys):
    d, _t, offs = make_zk(tmp_path)
    log = d / "version-2" / "log.1"
    b = bytearray(log.read_bytes())
    b[offs[10] + 8 : offs[10] + 12] = struct.pack(">i", 50_000_000)  # past the end
    log.write_bytes(bytes(b))
    err = refuse(tmp_path, capsys, d)
    assert f"{log}: offset {offs[10]}: unreasonable record length 50000000" in err
