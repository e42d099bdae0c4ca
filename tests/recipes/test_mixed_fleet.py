"""Mixed fleets: zabby's recipes and kazoo's on the same paths exclude each other
(same node naming), and kazoo's queue items are zabby's and vice versa."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient

from zabby import recipes
from zabby.client import SyncClient

from .test_faults import max_overlap

_n = itertools.count()

# zk.Lock(...) on a SyncClient: the client classes inherit these methods once
# zabby.client takes the mixins in; until then the tests add them themselves.
if hasattr(SyncClient, "Lock"):
    ZabbySync = SyncClient
else:
    class ZabbySync(recipes.SyncRecipeMethods, SyncClient):  # type: ignore[no-redef]
        pass


def unique(name: str) -> str:
    return f"/mixed-{name}-{next(_n)}"


class Fleet:
    """Clients of both kinds, each in a thread of its own, recording holdings."""

    def __init__(self, hosts: str) -> None:
        self.hosts = hosts
        self.clients: list[Any] = []
        self.history: list[tuple[float, float, str]] = []
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []

    def kazoo(self) -> KazooClient:
        zk = KazooClient(hosts=self.hosts, timeout=10)
        zk.start(timeout=15)
        self.clients.append(zk)
        return zk

    def zabby(self) -> SyncClient:
        zk = ZabbySync(self.hosts, timeout=10)
        zk.start()
        self.clients.append(zk)
        return zk

    def hold(self, name: str) -> None:
        t0 = time.monotonic()
        time.sleep(random.uniform(0.002, 0.01))
        with self.lock:
            self.history.append((t0, time.monotonic(), name))

    def run(self, bodies: list[Callable[[], None]]) -> None:
        def guard(body: Callable[[], None]) -> None:
            try:
                body()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)
        threads = [threading.Thread(target=guard, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a contender hung"
        assert not self.errors, self.errors

    def close(self) -> None:
        for zk in self.clients:
            zk.stop()
            if isinstance(zk, KazooClient):
                zk.close()


def test_mixed_locks_semaphores_and_rw_locks(zabby_server):
    fleet = Fleet(zabby_server.hosts)
    lock_path, sem_path = unique("lock"), unique("sem")
    try:
        def locker(kind: str, i: int) -> Callable[[], None]:
            zk = fleet.kazoo() if kind == "kazoo" else fleet.zabby()

            def body() -> None:
                for _ in range(8):
                    with zk.Lock(lock_path, f"{kind}{i}"):
                        fleet.hold(f"lock {kind}{i}")
            return body

        fleet.run([locker(k, i) for i in range(3) for k in ("kazoo", "zabby")])
        assert len(fleet.history) == 48
        assert max_overlap(fleet.history)[0] == 1

        fleet.history.clear()

        def sem(kind: str, i: int) -> Callable[[], None]:
            zk = fleet.kazoo() if kind == "kazoo" else fleet.zabby()

            def body() -> None:
                for _ in range(6):
                    with zk.Semaphore(sem_path, f"{kind}{i}", max_leases=2):
                        fleet.hold(f"sem {kind}{i}")
                        time.sleep(0.005)
            return body

        fleet.run([sem(k, i) for i in range(3) for k in ("kazoo", "zabby")])
        assert len(fleet.history) == 36
        assert max_overlap(fleet.history)[0] <= 2  # never 3

        # read/write: a zabby writer waits for a kazoo reader and the other way round
        kz, zb = fleet.clients[0], fleet.clients[1]
        rw = unique("rw")
        kread = kz.ReadLock(rw, "kazoo-reader")
        assert kread.acquire(timeout=5)
        zread = zb.ReadLock(rw, "zabby-reader")
        assert zread.acquire(timeout=5)  # readers share across implementations
        assert not zb.WriteLock(rw, "zabby-writer").acquire(blocking=False)
        assert not kz.WriteLock(rw, "kazoo-writer").acquire(blocking=False)
        kread.release()
        zread.release()
        zw = zb.WriteLock(rw, "zabby-writer")
        assert zw.acquire(timeout=5)
        assert not kz.ReadLock(rw, "kazoo-reader").acquire(blocking=False)
        assert kz.Lock(rw).contenders() == ["zabby-writer"]
        zw.release()
    finally:
        fleet.close()


def test_mixed_election(zabby_server):
    fleet = Fleet(zabby_server.hosts)
    path = unique("election")
    try:
        def candidate(kind: str, i: int) -> Callable[[], None]:
            zk = fleet.kazoo() if kind == "kazoo" else fleet.zabby()

            def body() -> None:
                for _ in range(3):
                    zk.Election(path, f"{kind}{i}").run(fleet.hold, f"leader {kind}{i}")
            return body

        fleet.run([candidate(k, i) for i in range(3) for k in ("kazoo", "zabby")])
        assert len(fleet.history) == 18
        assert max_overlap(fleet.history)[0] == 1
        # each side sees the other's contenders in the same order
        kz, zb = fleet.clients[0], fleet.clients[1]
        k_lock = kz.Lock(path, "kazoo-first")
        k_lock.acquire()
        z_el = zb.Election(path, "zabby-second")
        t = threading.Thread(target=z_el.run, args=(lambda: None,))
        t.start()
        time.sleep(0.3)
        assert kz.Election(path).contenders() == ["kazoo-first", "zabby-second"]
        assert z_el.contenders() == ["kazoo-first", "zabby-second"]
        k_lock.release()
        t.join(10)
        assert not t.is_alive()
    finally:
        fleet.close()


def test_mixed_queues(zabby_server):
    fleet = Fleet(zabby_server.hosts)
    qpath, lqpath = unique("queue"), unique("lq")
    try:
        kz, zb = fleet.kazoo(), fleet.zabby()
        kz.Queue(qpath).put(b"from-kazoo", priority=50)
        zb.Queue(qpath).put(b"from-zabby", priority=10)
        assert zb.Queue(qpath).get() == b"from-zabby"  # priorities mean the same
        assert zb.Queue(qpath).get() == b"from-kazoo"
        kz.Queue(qpath).put(b"k2")
        assert kz.Queue(qpath).get() == b"k2"

        kq, zq = kz.LockingQueue(lqpath), zb.LockingQueue(lqpath)
        kq.put_all([b"k1", b"k2"])
        zq.put(b"z0", priority=1)
        assert kq.get(1) == b"z0"  # kazoo takes zabby's urgent item...
        assert zq.get(1) == b"k1"  # ...and zabby skips it while kazoo holds it
        assert kq.consume() and zq.consume()
        assert len(kq) == 1 and len(zq) == 1
        assert zq.get(1) == b"k2" and zq.consume()
    finally:
        fleet.close()


def test_mixed_party_counter_and_lease(zabby_server):
    import datetime as dt
    fleet = Fleet(zabby_server.hosts)
    base = unique("misc")
    try:
        kz, zb = fleet.kazoo(), fleet.zabby()
        kp, zp = kz.Party(base + "/party", "kazoo"), zb.Party(base + "/party", "zabby")
        kp.join()
        zp.join()
        assert sorted(kz.Party(base + "/party")) == ["kazoo", "zabby"]
        assert sorted(zb.Party(base + "/party")) == ["kazoo", "zabby"]
        ks, zs = kz.ShallowParty(base + "/sp", "k-1"), zb.ShallowParty(base + "/sp", "z-1")
        ks.join()
        zs.join()
        assert sorted(kz.ShallowParty(base + "/sp")) == ["k-1", "z-1"]
        assert sorted(zb.ShallowParty(base + "/sp")) == ["k-1", "z-1"]

        kc, zc = kz.Counter(base + "/count"), zb.Counter(base + "/count")
        kc += 3
        zc += 4
        assert kc.value == 7 and zc.value == 7

        when = dt.datetime(2031, 1, 1)
        assert kz.NonBlockingLease(base + "/lease", dt.timedelta(seconds=30), "kazoo",
                                   utcnow=lambda: when)
        assert not zb.NonBlockingLease(base + "/lease", 30.0, "zabby", utcnow=lambda: when)
        later = when + dt.timedelta(seconds=31)
        assert zb.NonBlockingLease(base + "/lease", 30.0, "zabby", utcnow=lambda: later)
        assert not kz.NonBlockingLease(base + "/lease", dt.timedelta(seconds=30), "kazoo",
                                       utcnow=lambda: later)
    finally:
        fleet.close()


def test_mixed_set_partitioner_and_double_barrier(zabby_server):
    """A kazoo SetPartitioner and a zabby one on one path see each other (kazoo's
    ShallowParty layout) and divide the set as kazoo does; a DoubleBarrier for four
    lets two kazoo and two zabby members in together and out together."""
    fleet = Fleet(zabby_server.hosts)
    base = unique("partition")
    items = list(range(12))  # numbers: kazoo orders them as numbers, not as strings
    try:
        kz, zb = fleet.kazoo(), fleet.zabby()
        kp = kz.SetPartitioner(base + "/p", set=items, identifier="k", time_boundary=0.3)
        zp = zb.SetPartitioner(base + "/p", set=items, identifier="z", time_boundary=0.3)
        deadline = time.monotonic() + 30
        while not (kp.acquired and zp.acquired):
            assert time.monotonic() < deadline, (kp.state, zp.state)
            for p in (kp, zp):
                if p.release:
                    p.release_set()
            kp.wait_for_acquire(0.5)
            zp.wait_for_acquire(0.5)
        assert list(kp) == items[0::2] and list(zp) == items[1::2], (list(kp), list(zp))
        kp.finish()
        zp.finish()

        path = base + "/db"
        inside: list[str] = []
        out_together = threading.Barrier(4, timeout=30)

        def member(kind: str) -> Callable[[], None]:
            def body() -> None:
                zk = fleet.kazoo() if kind == "kazoo" else fleet.zabby()
                db = zk.DoubleBarrier(path, 4)
                db.enter()
                # in only once all four are: nobody leaves before out_together, so
                # all four nodes are there the moment any enter() returns
                present = [c for c in zk.get_children(path) if c != "ready"]
                assert len(present) == 4, present
                with fleet.lock:
                    inside.append(kind)
                out_together.wait()
                db.leave()
            return body

        fleet.run([member("kazoo"), member("kazoo"), member("zabby"), member("zabby")])
        assert sorted(inside) == ["kazoo", "kazoo", "zabby", "zabby"]
        assert zb.get_children(path) == []  # the last one out re-armed the barrier
    finally:
        fleet.close()
