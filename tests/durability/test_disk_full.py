"""The transaction log's disk fills up (a real, small tmpfs as dataLogDir).

Writers keep creating nodes until the log cannot grow. From then on a write
gets NOTREADONLY (refused, never applied) or loses its connection (outcome
unknown) -- never an OK that is not on disk. Reads keep working during the
outage. After the operator stops the server and makes room, a restart holds
every acknowledged write and none that was refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import deque

import pytest

from zabby.testing.pytest_plugin import in_ci
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from zabby.testing.servers import ZabbyServer
from zabby.wire import Err, Op
from zabby.wire.records import CreateRequest, PathWatchRequest

WRITERS = 3
PAYLOAD = 2000
MAX_OPS = 20000  # per writer: 4 MB fills long before


def _mount_tmpfs(path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        denied = os.geteuid() != 0 or "permission denied" in r.stderr.lower() or \
            "must be superuser" in r.stderr.lower() or "operation not permitted" in r.stderr.lower()
        if denied and not in_ci():
            pytest.skip(f"cannot mount a tmpfs here (EPERM, not root?): {r.stderr.strip()}")
        raise AssertionError(f"mount tmpfs on {path} failed: {r.returncode} {r.stderr.strip()}")


def _umount(path) -> None:
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:  # something still holds a file open: detach it anyway
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True, timeout=30)


class Writer:
    """Pipelined creates of unique nodes; records ok / refused / unknown per path."""

    def __init__(self, wid: int, srv: ZabbyServer) -> None:
        self.wid = wid
        self.srv = srv
        self.ok: dict[str, int] = {}  # path -> zxid
        self.refused: set[str] = set()
        self.unknown: set[str] = set()
        self.other: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"writer-{wid}", daemon=True)

    def data(self, path: str) -> bytes:
        return (path.encode() + b"|") * (PAYLOAD // (len(path) + 1))

    def _run(self) -> None:
        try:
            self._load()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def _load(self) -> None:
        """Write until refused; after a dropped connection, reconnect and go on."""
        self.n = 0
        for _ in range(5):
            if self._connection():
                return

    def _connection(self) -> bool:
        """One connection's worth of writes; True once a write was refused."""
        c = RawClient(self.srv.host, self.srv.port, timeout_ms=10000, io_timeout=10.0)
        c.connect()
        pending: deque[tuple[int, str]] = deque()
        refused = False
        try:
            while self.n < MAX_OPS and not refused:
                while len(pending) < 8 and self.n < MAX_OPS:
                    path = f"/full/w{self.wid}-{self.n:06d}"
                    self.n += 1
                    pending.append((c.send_request(Op.CREATE, CreateRequest(
                        path, self.data(path), OPEN_ACL_UNSAFE, 0)), path))
                refused = self._settle(c, pending.popleft())
            while pending:  # replies to what is in flight still come, in order
                refused = self._settle(c, pending.popleft()) or refused
        except TimeoutError:
            raise AssertionError(f"writer {self.wid}: no reply within 10 s") from None
        except (ConnectionClosed, OSError):
            pass  # dropped: the in-flight writes' outcome is unknown
        finally:
            c.drop()
            self.unknown.update(path for _, path in pending)
        return refused

    def _settle(self, c: RawClient, item: tuple[int, str]) -> bool:
        xid, path = item
        try:
            r = c.wait_reply(xid, Op.CREATE)
        except BaseException:
            self.unknown.add(path)
            raise
        if r.err == Err.OK:
            self.ok[path] = r.zxid
        elif r.err == Err.NOTREADONLY:
            self.refused.add(path)
            return True
        else:
            self.other.append(f"{path}: err {r.err}")
        return False


@pytest.mark.parametrize("layout", ["log-disk", "shared-disk-with-snapshots"])
def test_disk_full_then_room_again(tmp_path, layout):
    """log-disk: only dataLogDir on the small disk, no snapshots. shared-disk:
    dataDir and dataLogDir both on it, snapshots every ~100 txns (they fail too)."""
    mnt = tmp_path / "logdisk"
    _mount_tmpfs(mnt, "4m")
    srv = None
    try:
        if layout == "log-disk":
            cfg = {"dataLogDir": str(mnt), "snapCount": 1_000_000}
        else:
            cfg = {"dataDir": str(mnt / "data"), "dataLogDir": str(mnt / "log"), "snapCount": 200}
        srv = ZabbyServer(tmp_path / "srv", preAllocSize=64, **cfg)
        setup = RawClient(srv.host, srv.port)
        setup.connect()
        assert setup.request(Op.CREATE, CreateRequest("/full", b"", OPEN_ACL_UNSAFE, 0)).err == Err.OK
        setup.close()

        writers = [Writer(i, srv) for i in range(WRITERS)]
        for w in writers:
            w.thread.start()
        deadline = time.monotonic() + 60
        for w in writers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(w.thread.is_alive() for w in writers), "writers still running after 60 s"
        for w in writers:
            if w.error is not None:
                raise AssertionError(f"writer {w.wid}: {w.error!r}") from w.error
            assert not w.other, f"writer {w.wid}: unexpected errors {w.other[:5]}"
        acked = {p: z for w in writers for p, z in w.ok.items()}
        refused = set().union(*(w.refused for w in writers))
        unknown = set().union(*(w.unknown for w in writers))
        assert acked, "nothing was acknowledged before the disk filled"
        assert refused or unknown, "the disk never filled (no refused or dropped write)"
        print(f"disk full: {len(acked)} acked, {len(refused)} refused, {len(unknown)} unknown")
        if layout == "log-disk":  # (a failed snapshot frees its temporary file again)
            st = os.statvfs(mnt)
            assert st.f_bavail * st.f_frsize < 256 * 1024, "the log disk is not full"

        # reads work during the outage, writes are refused; the server still runs
        c = RawClient(srv.host, srv.port, io_timeout=10.0)
        c.connect()
        try:
            some = sorted(acked)[:: max(1, len(acked) // 50)]
            for p in some:
                r = c.request(Op.GET_DATA, PathWatchRequest(p, False))
                assert r.err == Err.OK, f"read of {p} during the outage: err {r.err}"
                assert r.body.data == writers[0].data(p)
            r = c.request(Op.GET_CHILDREN, PathWatchRequest("/full", False))
            assert r.err == Err.OK
            assert acked.keys() <= {f"/full/{x}" for x in r.body.children}
            r = c.request(Op.CREATE, CreateRequest("/full/late", b"x", OPEN_ACL_UNSAFE, 0))
            assert r.err == Err.NOTREADONLY, f"a write while the disk is full: err {r.err}"
            refused.add("/full/late")
        finally:
            c.close()
        assert srv.proc.poll() is None, "the server died when its disk filled\n" + srv.log_tail()
        assert "No space left on device" in srv.log_path.read_text(errors="replace"), \
            "the server did not log ENOSPC\n" + srv.log_tail()

        # the operator stops the server, makes room, starts it again
        srv.stop()
        r = subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"remount failed: {r.stderr}"
        srv.start()
        c = RawClient(srv.host, srv.port, io_timeout=10.0)
        c.connect()
        try:
            r = c.request(Op.GET_CHILDREN, PathWatchRequest("/full", False))
            assert r.err == Err.OK
            present = {f"/full/{x}" for x in r.body.children}
            lost = sorted(acked.keys() - present)
            assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}\n{srv.log_tail()}"
            resurrected = sorted(refused & present)
            assert not resurrected, f"refused writes present after the restart: {resurrected[:5]}"
            assert present <= acked.keys() | unknown, sorted(present - acked.keys() - unknown)[:5]
            for p in sorted(acked)[:: max(1, len(acked) // 50)]:
                r = c.request(Op.GET_DATA, PathWatchRequest(p, False))
                assert r.err == Err.OK and r.body.data == writers[0].data(p), p
                assert r.body.stat.czxid == acked[p], (p, r.body.stat.czxid, acked[p])
            # and the server writes again
            r = c.request(Op.CREATE, CreateRequest("/full/after", b"x", OPEN_ACL_UNSAFE, 0))
            assert r.err == Err.OK, f"write after making room: err {r.err}"
        finally:
            c.close()
    finally:
        if srv is not None:
            srv.stop()
        _umount(mnt)


def _srvr_zxid(srv: ZabbyServer) -> int:
    m = re.search(r"^Zxid: 0x([0-9a-fA-F]+)$", srv.four_letter_word("srvr"), re.M)
    assert m, "srvr did not report a Zxid"
    return int(m.group(1), 16)


def test_session_survives_disk_full_outage_and_restart(tmp_path):
    """A client whose session (and ephemeral) was durable before the outage, and that
    only read during it, resumes that session after the operator's restart."""
    mnt = tmp_path / "logdisk"
    _mount_tmpfs(mnt, "4m")
    srv = None
    try:
        srv = ZabbyServer(tmp_path / "srv", dataLogDir=str(mnt), preAllocSize=64,
                          snapCount=1_000_000, maxSessionTimeout=60000)
        owner = RawClient(srv.host, srv.port, timeout_ms=30000, io_timeout=10.0)
        owner.connect()
        for p, flags in (("/full", 0), ("/owner-eph", 1)):
            r = owner.request(Op.CREATE, CreateRequest(p, b"", OPEN_ACL_UNSAFE, flags))
            assert r.err == Err.OK
        writers = [Writer(i, srv) for i in range(WRITERS)]
        for w in writers:
            w.thread.start()
        for w in writers:
            w.thread.join(60)
        assert not any(w.thread.is_alive() for w in writers)
        assert all(w.refused for w in writers), "the disk did not fill"
        durable = max(z for w in writers for z in w.ok.values())
        # during the outage the owner only reads (and other clients connect)
        for _ in range(3):
            other = RawClient(srv.host, srv.port, io_timeout=10.0)
            other.connect()
            other.close()
        r = owner.request(Op.GET_DATA, PathWatchRequest("/owner-eph", False))
        assert r.err == Err.OK
        seen = owner.last_zxid
        owner.drop()

        srv.stop()
        r = subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        srv.start()
        recovered = _srvr_zxid(srv)
        assert recovered >= durable
        back = RawClient(srv.host, srv.port, timeout_ms=30000, session_id=owner.session_id,
                         passwd=owner.passwd, last_zxid=seen, io_timeout=10.0)
        try:
            resp = back.connect()
        except ConnectionClosed:
            raise AssertionError(
                f"the restarted server (last zxid {recovered:#x}) refuses the client: during the "
                f"outage it showed zxid {seen:#x}, which was never logged") from None
        assert resp.sessionId == owner.session_id and resp.timeOut > 0, resp
        r = back.request(Op.EXISTS, PathWatchRequest("/owner-eph", False))
        assert r.err == Err.OK, "the resumed session's ephemeral is gone"
        back.close()
    finally:
        if srv is not None:
            srv.stop()
        _umount(mnt)
