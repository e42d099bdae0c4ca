"""`zabby log`, `zabby snapshot`, `zabby check [--repair]`, `zabby purge`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zabby.cli.main import main
from zabby.storage import TxnLog, recover, write_snapshot
from zabby.storage.txnlog import ENTRY_HEADER, SEGMENT_HEADER

from .helpers import Workload, assert_same_tree, entries


def _data_dir(tmp_path, snaps=1, seed=41):
    d = str(tmp_path / "data")
    w = Workload(seed)
    log = TxnLog(d, prealloc_bytes=1 << 16)
    log.open_for_append(0)
    for i in range(snaps + 1):
        log.write_batch(entries(w.txns(10)))
        log.write_batch(entries(w.txns(10)))
        if i < snaps:
            write_snapshot(w.tree, d)
            log.roll()
    log.close()
    return d, w


def _segments(d):
    v2 = os.path.join(d, "version-2")
    return sorted((os.path.join(v2, n) for n in os.listdir(v2) if n.startswith("log.")),
                  key=lambda p: int(p.rsplit(".", 1)[1], 16))


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_log_prints_entries(tmp_path, capsys):
    d, w = _data_dir(tmp_path)
    seg = _segments(d)[0]
    assert main(["log", seg]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "EOF reached after 20 txns."
    lines = out[1:-1]
    assert len(lines) == 20
    assert "zxid 0x1 createSession" in lines[0] and "session 0x1000000000000" in lines[0]
    assert any(" create" in ln and "'/" in ln for ln in lines)


def test_snapshot_prints_tree(tmp_path, capsys):
    d, w = _data_dir(tmp_path)
    snap = os.path.join(d, "version-2", "snapshot.14")
    assert main(["snapshot", snap]) == 0
    out = capsys.readouterr().out
    assert "ZNode Details (count=" in out and "\n/zookeeper/quota\n" in out
    assert "cZxid = 0x" in out and "Session Details" in out and "Last zxid: 0x14" in out


def test_check_good_and_corrupt_and_repair(tmp_path, capsys):
    d, w = _data_dir(tmp_path)
    assert main(["check", "--data-dir", d]) == 0
    assert "ok:" in capsys.readouterr().out
    seg = _segments(d)[-1]  # zxids 0x15..0x28, after the snapshot
    # damage the 5th entry: valid entries follow -> refuse
    with open(seg, "rb") as f:
        data = f.read()
    off = SEGMENT_HEADER
    for _ in range(4):
        off += ENTRY_HEADER + int.from_bytes(data[off : off + 4], "little")
    _flip(seg, off + ENTRY_HEADER + 2)
    assert main(["check", "--data-dir", d]) == 1
    err = capsys.readouterr().err
    assert seg in err and f"offset {off}" in err and "checksum" in err
    # the server would refuse the same way
    r = subprocess.run([sys.executable, "-m", "zabby", "check", "--data-dir", d],
                       capture_output=True, text=True)
    assert r.returncode == 1 and f"offset {off}" in r.stderr
    # repair: says what it drops, then the directory is recoverable
    assert main(["check", "--data-dir", d, "--repair"]) == 0
    out = capsys.readouterr().out
    assert f"truncating {seg} at offset {off}" in out and "ok:" in out
    tree, report = recover(d, extended_types=True)
    assert report.last_zxid == 0x14 + 4
    assert main(["check", "--data-dir", d]) == 0


def test_check_with_config_and_separate_log_dir(tmp_path, capsys):
    data, logs = tmp_path / "data", tmp_path / "logs"
    w = Workload(5)
    log = TxnLog(str(logs))
    log.open_for_append(0)
    log.write_batch(entries(w.txns(10)))
    log.close()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={data}\ndataLogDir={logs}\nclientPort=2181\n"
                   f"extendedTypesEnabled=true\n")
    assert main(["check", "--config", str(cfg)]) == 0
    assert "10 txns replayed" in capsys.readouterr().out
    _flip(str(logs / "version-2" / "log.1"), SEGMENT_HEADER + ENTRY_HEADER + 1)
    assert main(["check", "--config", str(cfg)]) == 1
    assert "log.1" in capsys.readouterr().err


def test_purge_cli(tmp_path, capsys):
    d, w = _data_dir(tmp_path, snaps=5)
    before, _ = recover(d, extended_types=True)
    assert main(["purge", "--data-dir", d, "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("deleted") >= 3
    after, _ = recover(d, extended_types=True)
    assert_same_tree(before, after)
    assert main(["purge", "--data-dir", d, "-n", "2"]) == 2


def test_repair_does_not_touch_a_corrupt_snapshot(tmp_path, capsys):
    d, w = _data_dir(tmp_path)
    snap = os.path.join(d, "version-2", "snapshot.14")
    size = os.path.getsize(snap)
    _flip(snap, 70)
    assert main(["check", "--data-dir", d, "--repair"]) == 1
    err = capsys.readouterr().err
    assert snap in err and "not repairable" in err
    assert os.path.getsize(snap) == size and len(_segments(d)) == 2


@pytest.mark.parametrize("command", ["check", "purge"])
def test_data_dir_commands_refuse_without_a_directory_or_a_readable_config(
        tmp_path, capsys, command):
    assert main([command]) == 2
    assert "give --config zoo.cfg or --data-dir DIR" in capsys.readouterr().err
    bad = tmp_path / "zoo.cfg"
    bad.write_text("tickTime=nope\n")
    assert main([command, "--config", str(bad)]) == 2
    assert "invalid configuration" in capsys.readouterr().err
    assert main([command, "--config", str(tmp_path / "missing.cfg")]) == 2
    assert "invalid configuration" in capsys.readouterr().err
