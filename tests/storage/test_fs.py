"""SimulatedFS semantics: what survives a crash, torn writes, injected faults."""

from __future__ import annotations

import errno

import pytest

from zabby.storage.fs import RealFS, SimulatedFS


def _new(fs, path, data, *, sync=True, dir_sync=True):
    h = fs.open(path, create=True)
    fs.write(h, data, 0)
    if sync:
        fs.fsync(h)
    if dir_sync:
        fs.fsync_dir(path.rsplit("/", 1)[0])
    fs.close(h)


def test_unsynced_data_and_entries_are_lost():
    fs = SimulatedFS()
    fs.makedirs("/d")
    _new(fs, "/d/synced", b"abc")
    _new(fs, "/d/no-file-sync", b"y", sync=False)
    _new(fs, "/d/no-dir-sync", b"x", dir_sync=False)
    h = fs.open("/d/synced")
    fs.write(h, b"ZZ", 1)
    assert fs.content("/d/synced") == b"aZZ"
    fs.crash()
    assert fs.listdir("/d") == ["no-file-sync", "synced"]
    assert fs.content("/d/synced") == b"abc"
    assert fs.content("/d/no-file-sync") == b""  # entry durable, content not
    with pytest.raises(OSError):
        fs.write(h, b"q", 0)  # handles do not survive


def test_rename_and_unlink_need_a_directory_fsync():
    fs = SimulatedFS()
    fs.makedirs("/d")
    _new(fs, "/d/a", b"1")
    _new(fs, "/d/b", b"2")
    fs.rename("/d/a", "/d/c")
    fs.unlink("/d/b")
    assert fs.listdir("/d") == ["c"]
    fs.crash()
    assert fs.listdir("/d") == ["a", "b"]
    fs.rename("/d/a", "/d/c")
    fs.unlink("/d/b")
    fs.fsync_dir("/d")
    fs.crash()
    assert fs.listdir("/d") == ["c"] and fs.content("/d/c") == b"1"


def test_tear_keeps_a_prefix_of_the_last_unsynced_write():
    fs = SimulatedFS()
    fs.makedirs("/d")
    _new(fs, "/d/f", b"head")
    h = fs.open("/d/f")
    fs.write(h, b"first", 4)  # lost: not the last write
    fs.write(h, b"0123456789", 9)
    assert fs.last_write() == ("/d/f", 9, 10)
    fs.crash(tear_at=3)
    assert fs.content("/d/f") == b"head" + bytes(5) + b"012"


def test_injected_faults_and_call_counts():
    fs = SimulatedFS()
    fs.makedirs("/d")
    h = fs.open("/d/f", create=True)
    fs.inject("write", errno.ENOSPC, partial=2, count=1)
    with pytest.raises(OSError) as e:
        fs.write(h, b"abcdef", 0)
    assert e.value.errno == errno.ENOSPC
    assert fs.content("/d/f") == b"ab"
    fs.write(h, b"abcdef", 0)  # count was 1
    fs.inject("fsync", errno.EIO, path="/d/f")
    with pytest.raises(OSError) as e:
        fs.fsync(h)
    assert e.value.errno == errno.EIO
    assert fs.durable_content("/d/f") is None  # neither data nor entry durable
    fs.fsync(h)
    fs.fsync_dir("/d")
    assert fs.durable_content("/d/f") == b"abcdef"
    assert fs.calls["write"] == 2 and fs.calls["fsync"] == 2 and fs.calls["fsync_dir"] == 1


def test_real_fs_basic_operations(tmp_path):
    fs = RealFS()
    d = str(tmp_path / "x")
    fs.makedirs(d)
    h = fs.open(d + "/f", create=True)
    fs.allocate(h, 0, 8192)
    fs.write(h, b"hello", 10)
    fs.fsync(h, data_only=True)
    assert fs.size(h) == 8192 and fs.read(h, 10, 5) == b"hello"
    fs.truncate(h, 12)
    fs.close(h)
    fs.rename(d + "/f", d + "/g")
    fs.fsync_dir(d)
    assert fs.listdir(d) == ["g"] and fs.read_file(d + "/g") == bytes(10) + b"he"
    fs.unlink(d + "/g")
    assert not fs.exists(d + "/g")


@pytest.mark.parametrize("cls", [RealFS, SimulatedFS])
def test_every_method_of_the_interface_is_implemented(cls):
    # FS declares the interface (the txn log is typed against it); a method an
    # implementation forgot would raise NotImplementedError only when first used
    from zabby.storage.fs import FS

    declared = [n for n, v in vars(FS).items() if callable(v) and not n.startswith("_")]
    assert len(declared) == 16
    missing = [n for n in declared if getattr(cls, n) is getattr(FS, n)]
    assert missing == []
