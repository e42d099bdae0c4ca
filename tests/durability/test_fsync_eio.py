"""fsync fails with EIO: an in-process server whose txn log lives on a SimulatedFS.

The server runs in a thread with its own event loop; kazoo clients pipeline
creates. After N good fsyncs every fsync (or just one) fails with EIO. Then:
no write is acknowledged that is not durable; the writers in flight see an
error or a dropped connection (never a hang); later writes get NOTREADONLY
(kazoo's NotReadOnlyCallError); reads keep working. Finally the machine
"crashes" (SimulatedFS.crash: only fsynced bytes and directory entries
survive, optionally a torn last write), the fault is gone, and a fresh server
recovered from that disk holds every acknowledged write and no refused one.
"""

from __future__ import annotations

import asyncio
import errno
import random
import threading
import time
from collections import deque

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NotReadOnlyCallError,
)

from zabby.ops.fourletter import handle_four_letter_word
from zabby.server.config import ServerConfig
from zabby.server.core import ZabbyServer
from zabby.server.durability import GroupCommitter
from zabby.storage import TxnLog, recover
from zabby.storage.fs import SimulatedFS

DATA = "/disk/data"
LOG = "/disk/log"
WRITERS = 4
MAX_OPS = 3000  # per writer; the fault comes long before


class FaultyFS(SimulatedFS):
    """A SimulatedFS whose `op` ("fsync", "fsync_dir", "write") fails with EIO after
    `good` successful calls (every call from then on, or just `count`); a failing
    write first writes `partial` bytes."""

    def __init__(self, good: int, count: int = 1_000_000, op: str = "fsync", partial: int = 0) -> None:
        super().__init__()
        self.good = good
        self.count = count
        self.op = op
        self.partial = partial
        self.armed = True

    def _arm(self, op: str) -> None:
        if self.armed and op == self.op and self.calls[op] >= self.good:
            self.armed = False
            self.inject(op, errno.EIO, count=self.count, partial=self.partial)

    def fsync(self, h, data_only: bool = False) -> None:
        self._arm("fsync")
        super().fsync(h, data_only)

    def fsync_dir(self, path: str) -> None:
        self._arm("fsync_dir")
        super().fsync_dir(path)

    def write(self, h, data, offset: int | None = None) -> None:
        self._arm("write")
        super().write(h, data, offset)


class LoopSyncer:
    """The fast path's syncer on a SimulatedFS: the loop writes the batch, this
    fsyncs it a little later (as the helper processes do, asynchronously, and
    -- two batches may be syncing -- not always in the order asked)."""

    def __init__(self, fs: SimulatedFS, loop) -> None:
        self.fs = fs
        self.loop = loop
        self.syncs = 0
        self.rng = random.Random(7)

    def sync(self, h, data_only: bool, callback, key=None) -> None:
        def run() -> None:
            try:
                self.fs.fsync(h, data_only)
            except OSError as e:
                callback(e.errno)
                return
            self.syncs += 1
            callback(0)

        self.loop.call_later(self.rng.choice((0, 0, 0.003)), run)

    def close(self) -> None:
        pass


class InProcessServer:
    """build_server's wiring, on an injected file layer, served from a thread.
    With `fast`, batches are written on the loop and fsynced by a LoopSyncer."""

    def __init__(self, fs: SimulatedFS, fast: bool = False) -> None:
        self.config = ServerConfig(
            tick_time=500, data_dir=DATA, data_log_dir=LOG, client_port=0,
            client_port_address="127.0.0.1", max_client_cnxns=0,
        )
        tree, self.report = recover(DATA, LOG, fs=fs)
        txn_log = TxnLog(LOG, fs=fs, prealloc_bytes=16 * 1024, force_sync=True)
        txn_log.open_for_append(tree.last_zxid)
        # no snapshots: they are written with fork() to the real filesystem
        self.syncer: LoopSyncer | None = None

        def make_syncer(loop) -> LoopSyncer:
            self.syncer = LoopSyncer(fs, loop)
            return self.syncer

        committer = GroupCommitter(txn_log, snap_dir=DATA, snap_count=1 << 30, tree_getter=None,
                                   syncer=make_syncer if fast else None)
        self.server = ZabbyServer(self.config, committer=committer, tree=tree,
                                  four_letter_handler=handle_four_letter_word)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="zabby-in-process", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:  # noqa: BLE001 - re-raised by start()
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> InProcessServer:
        self.thread.start()
        assert self.ready.wait(10), "in-process server did not start"
        if self.error is not None:
            raise self.error
        return self

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def failure(self) -> str | None:
        return self.server.committer.failure

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            assert not self.thread.is_alive(), "in-process server thread did not stop"
            self.loop.close()


def _kazoo(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=15)
    return c


def _close(c: KazooClient) -> None:
    try:
        c.stop()
    finally:
        c.close()


def _nodes(c: KazooClient) -> set[str]:
    return {f"/{x}" for x in c.get_children("/") if x != "zookeeper"}


def data_of(path: str) -> bytes:
    return path.encode() * 8


class Writer:
    """Pipelined kazoo creates until a write is refused."""

    def __init__(self, wid: int, client: KazooClient) -> None:
        self.wid = wid
        self.client = client
        self.ok: dict[str, int] = {}
        self.refused: set[str] = set()
        self.unknown: set[str] = set()
        self.other: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"kazoo-writer-{wid}", daemon=True)

    def _run(self) -> None:
        try:
            self._load()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def _load(self) -> None:
        inflight: deque = deque()
        n = 0
        refused = False
        while (n < MAX_OPS and not refused) or inflight:
            while len(inflight) < 8 and n < MAX_OPS and not refused:
                path = f"/w{self.wid}-{n:05d}"
                n += 1
                inflight.append((path, self.client.create_async(path, data_of(path))))
            path, ar = inflight.popleft()
            try:
                ar.get(timeout=15)
            except NotReadOnlyCallError:
                self.refused.add(path)
                refused = True
            except (ConnectionLoss, ConnectionClosedError):
                self.unknown.add(path)
            except Exception as e:  # noqa: BLE001 - a hang is a KazooTimeoutError
                self.other.append(f"{path}: {e!r}")
                if type(e).__name__ == "KazooTimeoutError":
                    raise AssertionError(f"writer {self.wid}: {path} had no outcome in 15 s") from e
            else:
                self.ok[path] = 1


@pytest.mark.parametrize(
    "good,count,crash,op",
    [
        (0, 1_000_000, {}, "fsync"),  # the first fsync fails: even the sessions' creation
        (6, 1, {}, "fsync"),  # one EIO, the disk then "works" again: still refuse writes
        (40, 1_000_000, {"tear_at": 7}, "fsync"),
        (90, 1_000_000, {"keep_dir_entries": True, "tear_at": 30}, "fsync"),
        (0, 1_000_000, {}, "fsync_dir"),  # the new segment's directory entry is not durable
        (25, 1, {"tear_at": 100}, "write"),  # a short write (EIO after 50 bytes)
    ],
    ids=["first-fsync", "one-eio", "eio-after-40", "eio-after-90-keep-dirs", "first-fsync-dir",
         "short-write"],
)
@pytest.mark.parametrize("fast", [False, True], ids=["thread", "loop-write+syncer"])
def test_fsync_eio(good, count, crash, op, fast):
    fs = FaultyFS(good, count, op=op, partial=50 if op == "write" else 0)
    srv = InProcessServer(fs, fast).start()
    clients: list[KazooClient] = []
    try:
        admin = _kazoo(srv.hosts)
        clients.append(admin)
        writers = [Writer(i, _kazoo(srv.hosts)) for i in range(WRITERS)]
        clients += [w.client for w in writers]
        for w in writers:
            w.thread.start()
        deadline = time.monotonic() + 60
        for w in writers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(w.thread.is_alive() for w in writers), "writers still running after 60 s"
        for w in writers:
            if w.error is not None:
                raise AssertionError(f"writer {w.wid}: {w.error!r}") from w.error
            assert not w.other, f"writer {w.wid}: unexpected outcomes {w.other[:5]}"
            assert w.refused, f"writer {w.wid} was never refused"
        assert srv.failure is not None and "Input/output error" in srv.failure, srv.failure
        assert not fs.armed, "the fault never fired"
        if fast and good > 10:
            assert srv.syncer is not None and srv.syncer.syncs > 0, "the fast path was not taken"
        acked = {p for w in writers for p in w.ok}
        refused = set().union(*(w.refused for w in writers))
        unknown = set().union(*(w.unknown for w in writers))

        # writes are refused, reads work
        with pytest.raises(NotReadOnlyCallError):
            admin.create("/wlate", b"x")
        refused.add("/wlate")
        if acked:
            with pytest.raises(NotReadOnlyCallError):
                admin.set(min(acked), b"x")
        children = _nodes(admin)
        assert acked <= children, sorted(acked - children)[:5]
        for p in sorted(acked)[:: max(1, len(acked) // 30)]:
            assert admin.get(p)[0] == data_of(p)
        # a new session can still read
        reader = _kazoo(srv.hosts)
        clients.append(reader)
        assert _nodes(reader) == children
        print(f"{op} EIO after {good}: {len(acked)} acked, {len(refused)} refused, "
              f"{len(unknown)} unknown")
    finally:
        for c in clients:
            try:
                _close(c)
            except Exception:  # noqa: BLE001 - teardown is best effort
                pass
        srv.stop()

    # power loss; the disk is healthy again
    fs.crash(**crash)
    fs.clear_faults()
    srv2 = InProcessServer(fs, fast).start()
    try:
        c = _kazoo(srv2.hosts)
        try:
            present = _nodes(c)
            lost = sorted(acked - present)
            assert not lost, f"{len(lost)} acknowledged writes lost after the crash: {lost[:5]}"
            assert not (refused & present), sorted(refused & present)[:5]
            assert present <= acked | unknown, sorted(present - acked - unknown)[:5]
            for p in sorted(acked)[:: max(1, len(acked) // 30)]:
                assert c.get(p)[0] == data_of(p), p
            c.create("/after-recovery", b"ok")  # the log works again
        finally:
            _close(c)
    finally:
        srv2.stop()
