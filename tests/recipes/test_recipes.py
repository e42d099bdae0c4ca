"""Every recipe against one zabby server: the behaviour each one promises."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zabby import recipes
from zabby.client import Client, ConnectionLoss, SyncClient
from zabby.recipes import LockTimeout

_n = itertools.count()


def unique(name: str) -> str:
    return f"/recipes-{name}-{next(_n)}"


def run(zabby_server, body: Callable[..., Awaitable[Any]], clients: int = 1) -> Any:
    async def main() -> Any:
        zks = [Client(zabby_server.hosts, timeout=10.0) for _ in range(clients)]
        for zk in zks:
            await zk.start()
        try:
            return await asyncio.wait_for(body(*zks), 60)
        finally:
            for zk in zks:
                await zk.stop()
    return asyncio.run(main())


# ------------------------------------------------------------------------ locks
def test_lock_excludes_and_queues_fifo(zabby_server):
    path = unique("lock")

    async def body(a, b, c):
        held: list[str] = []
        order: list[str] = []
        la = recipes.Lock(a, path, "a")
        await la.acquire()

        async def contender(zk, name):
            async with recipes.Lock(zk, path, name):
                held.append(name)
                assert len(held) == 1, held
                order.append(name)
                await asyncio.sleep(0.05)
                held.remove(name)

        tb = asyncio.ensure_future(contender(b, "b"))
        await asyncio.sleep(0.2)
        tc = asyncio.ensure_future(contender(c, "c"))
        await asyncio.sleep(0.2)
        assert await la.contenders() == ["a", "b", "c"]
        assert not await recipes.Lock(c, path, "x").acquire(blocking=False)
        with pytest.raises(LockTimeout):
            await recipes.Lock(c, path, "y").acquire(timeout=0.3)
        await la.release()
        await asyncio.gather(tb, tc)
        assert order == ["b", "c"]
        # nothing left behind by the non-blocking and timed-out attempts
        assert await a.get_children(path) == []
    run(zabby_server, body, clients=3)


def test_lock_waiters_watch_only_their_predecessor(zabby_server):
    path = unique("herd")

    async def body(zk):
        locks = [recipes.Lock(zk, path, str(i)) for i in range(5)]
        await locks[0].acquire()
        tasks = [asyncio.ensure_future(lk.acquire()) for lk in locks[1:]]
        await asyncio.sleep(0.3)
        watched = zk.watched_paths()
        data_watches = [p for p in watched.get("data", []) if p.startswith(path + "/")]
        assert len(data_watches) == 4 and len(set(data_watches)) == 4  # one each, no herd
        for i, lk in enumerate(locks[:-1]):
            await lk.release()
            await tasks[i]
            assert locks[i + 1].is_acquired
        await locks[-1].release()
    run(zabby_server, body)


def test_read_write_lock(zabby_server):
    path = unique("rw")

    async def body(a, b):
        r1, r2 = recipes.ReadLock(a, path, "r1"), recipes.ReadLock(b, path, "r2")
        assert await r1.acquire(timeout=2)
        assert await r2.acquire(timeout=2)  # readers share
        w = recipes.WriteLock(b, path, "w")
        assert not await w.acquire(blocking=False)
        task = asyncio.ensure_future(w.acquire())
        await asyncio.sleep(0.2)
        r3 = recipes.ReadLock(a, path, "r3")
        t3 = asyncio.ensure_future(r3.acquire())  # queued behind the writer
        await r1.release()
        await asyncio.sleep(0.1)
        assert not task.done()
        await r2.release()
        await task
        await asyncio.sleep(0.1)
        assert not t3.done()
        await w.release()
        await t3
        await r3.release()
    run(zabby_server, body, clients=2)


def test_lock_holder_told_on_suspension_and_loss(zabby_server):
    path = unique("lost")

    async def body(zk):
        states: list[str] = []
        lock = recipes.Lock(zk, path, "me", on_state=states.append)
        await lock.acquire()

        async def state(s):  # what the client's listener call does
            lock._states._listener(s)
            await asyncio.sleep(0.1)
        await state("SUSPENDED")
        assert lock.maybe_lost and states == ["SUSPENDED"]
        await state("RECONNECTED")  # node still there: confirmed
        assert not lock.maybe_lost and states[-1] == "CONNECTED"
        await zk.delete(f"{path}/{lock.node}")  # as if the session had expired
        await state("SUSPENDED")
        await state("CONNECTED")
        assert states[-1] == "LOST" and not lock.is_acquired and lock.lost.is_set()
    run(zabby_server, body)


def test_semaphore(zabby_server):
    path = unique("sem")

    async def body(a, b):
        sems = [recipes.Semaphore(a if i % 2 else b, path, f"s{i}", max_leases=2)
                for i in range(4)]
        assert await sems[0].acquire()
        assert await sems[1].acquire()
        assert not await sems[2].acquire(blocking=False)
        task = asyncio.ensure_future(sems[2].acquire())
        await asyncio.sleep(0.2)
        assert sorted(await sems[0].lease_holders()) == ["s0", "s1"]
        await sems[0].release()
        await asyncio.wait_for(task, 5)
        assert sorted(await sems[0].lease_holders()) == ["s1", "s2"]
        with pytest.raises(ValueError):
            await recipes.Semaphore(a, path, "bad", max_leases=3).acquire()
        with pytest.raises(LockTimeout):
            await sems[3].acquire(timeout=0.3)
        await sems[1].release()
        await sems[2].release()
    run(zabby_server, body, clients=2)


# --------------------------------------------------------------------- election
def test_election_and_leader_latch(zabby_server):
    path = unique("elect")

    async def body(a, b):
        leaders: list[str] = []
        gate = asyncio.Event()

        async def lead(name):
            leaders.append(name)
            await gate.wait()

        e1 = recipes.Election(a, path, "e1")
        t1 = asyncio.ensure_future(e1.run(lead, "e1"))
        await asyncio.sleep(0.2)
        latch = recipes.LeaderLatch(b, path, "latch")
        changes: list[bool] = []
        latch.add_listener(changes.append)
        await latch.start()
        assert not await latch.wait(0.3)
        assert await e1.contenders() == ["e1", "latch"]
        gate.set()
        await t1
        assert await latch.wait(5) and latch.has_leadership
        assert leaders == ["e1"] and changes == [True]
        await latch.close()
        assert changes == [True, False]
        assert await a.get_children(path) == []
    run(zabby_server, body, clients=2)


# ---------------------------------------------------------------- counter, party
def test_counter_concurrent_adds(zabby_server):
    path = unique("counter")

    async def body(a, b):
        ca, cb = recipes.Counter(a, path), recipes.Counter(b, path)
        await asyncio.gather(*(c.add(1) for c in [ca, cb] * 20),
                             *(ca.add(1, exactly_once=True) for _ in range(5)))
        assert await ca.get() == 45
        assert await cb.subtract(5) == 40 and cb.pre_value == 45
        f = recipes.Counter(a, path + "f", default=0.5)
        assert await f.add(1.0) == 1.5
        with pytest.raises(TypeError):
            await f.add(1)
    run(zabby_server, body, clients=2)


def test_party_and_shallow_party(zabby_server):
    path = unique("party")

    async def body(a, b):
        for cls in (recipes.Party, recipes.ShallowParty):
            p = f"{path}-{cls.__name__}"
            pa, pb = cls(a, p, "alpha"), cls(b, p, "beta")
            await pa.join()
            async with pb:
                assert sorted(await pa.members()) == ["alpha", "beta"]
                assert [m async for m in pa] != []
            assert await pa.members() == ["alpha"]
            await b.stop()
            await b.start()
            await pa.leave()
            assert await pa.count() == 0
    run(zabby_server, body, clients=2)


# --------------------------------------------------------------------- barriers
def test_barrier(zabby_server):
    path = unique("barrier")

    async def body(a, b):
        bar = recipes.Barrier(a, path)
        await bar.create()
        waiter = asyncio.ensure_future(recipes.Barrier(b, path).wait())
        assert not await recipes.Barrier(b, path).wait(0.2)
        assert not waiter.done()
        assert await bar.remove()
        assert await asyncio.wait_for(waiter, 5)
    run(zabby_server, body, clients=2)


def test_double_barrier(zabby_server):
    path = unique("dbar")

    async def body(*zks):
        log: list[tuple[str, int]] = []

        async def member(i, zk):
            db = recipes.DoubleBarrier(zk, path, 3, f"m{i}")
            await asyncio.sleep(0.1 * i)
            await db.enter(timeout=10)
            log.append(("in", i))
            await asyncio.sleep(0.1 * (3 - i))
            await db.leave(timeout=10)
            log.append(("out", i))

        await asyncio.gather(*(member(i, zk) for i, zk in enumerate(zks)))
        kinds = [k for k, _ in log]
        assert kinds == ["in"] * 3 + ["out"] * 3, log
        assert await zks[0].get_children(path) == []
    run(zabby_server, body, clients=3)


def test_count_down_latch(zabby_server):
    path = unique("latch")

    async def body(a, b):
        latch = recipes.CountDownLatch(a, path, 3)
        waiters = [asyncio.ensure_future(recipes.CountDownLatch(zk, path, 3).wait(10))
                   for zk in (a, b, b)]
        assert await latch.get_count() == 3
        for _ in range(3):
            await asyncio.sleep(0.05)
            assert not any(w.done() for w in waiters)
            await recipes.CountDownLatch(b, path, 3).count_down()
        assert all(await asyncio.gather(*waiters))
        assert await latch.get_count() == 0
        assert await latch.wait(0)
        with pytest.raises(ValueError):
            await recipes.CountDownLatch(a, path, 4).wait(0)
    run(zabby_server, body, clients=2)


# ----------------------------------------------------------------------- queues
def test_queue_priority_and_single_delivery(zabby_server):
    path = unique("queue")

    async def body(a, b):
        q = recipes.Queue(a, path)
        for i in range(10):
            await q.put(f"{i}".encode(), priority=100 if i else 5)
        assert await q.length() == 10
        assert await q.get() == b"0"  # the high-priority one first
        got = await asyncio.gather(*(recipes.Queue(zk, path).get() for zk in (a, b) * 6))
        items = [g for g in got if g is not None]
        assert sorted(items) == [f"{i}".encode() for i in range(1, 10)]
        assert await q.get() is None
        later = asyncio.ensure_future(recipes.Queue(b, path).get(timeout=5))
        await asyncio.sleep(0.1)
        await q.put(b"late")
        assert await later == b"late"
    run(zabby_server, body, clients=2)


def test_locking_queue_hand_back_on_death(zabby_server):
    path = unique("lq")

    async def body(a, b, c):
        qa = recipes.LockingQueue(a, path)
        await qa.put_all([b"x", b"y"])
        await qa.put(b"urgent", priority=1)
        assert await qa.length() == 3
        qb = recipes.LockingQueue(b, path)
        assert await qb.get(1) == b"urgent"
        assert await qb.get(1) == b"urgent"  # the same until consumed
        qc = recipes.LockingQueue(c, path)
        assert await qc.get(1) == b"x"  # urgent is taken: c gets the next
        assert await qc.release()
        assert await qb.holds_lock()
        await b.stop()  # b dies holding "urgent": its lock goes with its session
        qa2 = recipes.LockingQueue(a, path)
        assert await qa2.get(5) == b"urgent"
        assert await qa2.consume()
        assert not await qb.consume()  # b's claim is gone
        assert sorted([await qc.get(1), await qa.get(1)]) == [b"x", b"y"]
        assert await qc.consume() and await qa.consume()
        assert await qa.length() == 0
        assert await qa.get(0.2) is None
    run(zabby_server, body, clients=3)


# ---------------------------------------------------------------------- watches
def test_data_and_children_watch(zabby_server):
    path = unique("watch")

    async def body(zk):
        seen: list[Any] = []
        kids: list[list[str]] = []

        def on_data(data, stat):
            seen.append(data)
            return data != b"stop"

        dw = recipes.DataWatch(zk, path, on_data)
        await dw.wait_started(5)
        assert seen == [None]
        await zk.create(path, b"v1")
        cw = recipes.ChildrenWatch(zk, path, lambda c: kids.append(sorted(c)))
        await cw.wait_started(5)
        await zk.set(path, b"v2")
        await zk.create(path + "/a")
        await zk.create(path + "/b")
        await asyncio.sleep(0.3)
        assert seen[-1] == b"v2" and b"v1" in seen
        assert kids[0] == [] and kids[-1] == ["a", "b"]
        await zk.set(path, b"stop")
        await asyncio.sleep(0.2)
        await zk.set(path, b"after")
        await asyncio.sleep(0.2)
        assert seen[-1] == b"stop"
        await cw.stop()
    run(zabby_server, body)


def test_tree_cache(zabby_server):
    path = unique("tree")

    async def body(zk):
        await zk.create(path + "/a/b", b"ab", makepath=True)
        events: list[tuple[int, str | None]] = []
        cache = recipes.TreeCache(zk, path)
        cache.listen(lambda e: events.append((e.event_type, e.path)))
        await cache.start()
        await cache.wait_initialized(5)
        assert cache.get_data(path + "/a/b").data == b"ab"
        assert cache.get_children(path + "/a") == {"b"}
        await zk.create(path + "/a/c/d", b"d", makepath=True)
        await zk.set(path + "/a/b", b"ab2")
        for _ in range(50):
            if cache.get_data(path + "/a/b").data == b"ab2":
                break
            await asyncio.sleep(0.05)
        await zk.delete(path + "/a/b")
        for _ in range(50):
            if cache.get_data(path + "/a/c/d") and cache.get_data(path + "/a/b") is None:
                break
            await asyncio.sleep(0.05)
        assert cache.get_data(path + "/a/c/d").data == b"d"
        assert cache.get_data(path + "/a/b") is None
        assert cache.get_children(path + "/a") == {"c"}
        T = recipes.TreeEvent
        assert (T.INITIALIZED, None) in events
        assert (T.NODE_ADDED, path + "/a/c/d") in events
        assert (T.NODE_UPDATED, path + "/a/b") in events
        assert (T.NODE_REMOVED, path + "/a/b") in events
        # one persistent recursive watch, nothing else
        watched = zk.watched_paths()
        assert sum(len(v) for v in watched.values()) == 1, watched
        await cache.close()
    run(zabby_server, body)


# ------------------------------------------------------- partitioner, lease, config
def test_set_partitioner(zabby_server):
    path = unique("part")

    async def body(a, b):
        items = list(range(6))
        pa = recipes.SetPartitioner(a, path, items, identifier="a", time_boundary=0.2)
        assert await pa.wait_for_acquire(10) == "ACQUIRED"
        assert sorted(pa) == items
        pb = recipes.SetPartitioner(b, path, items, identifier="b", time_boundary=0.2)
        await pb.start()
        assert await pa.wait_for_state("RELEASE", 10)
        await pa.release_set()
        assert await pa.wait_for_state("ACQUIRED", 10)
        assert await pb.wait_for_state("ACQUIRED", 10)
        assert sorted(list(pa) + list(pb)) == items and not set(pa) & set(pb)
        await pb.finish()
        await pa.finish()
    run(zabby_server, body, clients=2)


def test_lease(zabby_server):
    import datetime as dt
    path = unique("lease")

    async def body(zk):
        now = [dt.datetime(2030, 1, 1)]
        mk = lambda ident: recipes.Lease(zk, path, dt.timedelta(seconds=10), ident,  # noqa: E731
                                         utcnow=lambda: now[0])
        assert await mk("a").obtain()
        assert not await mk("b").obtain()
        assert await mk("a").obtain()  # renewal
        now[0] += dt.timedelta(seconds=11)
        b = mk("b")
        assert await b.obtain() and bool(b)
        data, _ = await zk.get(path + "/lease_holder")  # kazoo's layout
        assert json.loads(data)["holder"] == "b"
        assert await zk.get_children(path) == ["lease_holder"]  # its lock is let go
        multi = recipes.MultiLease(zk, 2, path + "m", 10.0, "x")
        assert await multi.obtain()
        assert await recipes.MultiLease(zk, 2, path + "m", 10.0, "y").obtain()
        assert not await recipes.MultiLease(zk, 2, path + "m", 10.0, "z").obtain()
    run(zabby_server, body)


def test_config(zabby_server):
    path = unique("config")

    async def body(a, b):
        cfg = recipes.Config(a, path, default={"workers": 1})
        seen: list[dict[str, Any]] = []
        cfg.listen(lambda v, ver: seen.append(v))
        await cfg.start()
        assert cfg.value == {"workers": 1} and cfg.version == -1

        def bump(doc):
            doc["workers"] = doc.get("workers", 1) + 1
            return doc
        other = recipes.Config(b, path, default={"workers": 1})
        await asyncio.gather(*(c.update(bump) for c in [cfg, other] * 5))
        assert (await other.read())[0] == {"workers": 11}
        await cfg.wait_for(lambda v: v.get("workers") == 11, 5)
        assert seen[-1] == {"workers": 11}
        from zabby.client import BadVersionError
        with pytest.raises(BadVersionError):
            await other.set({"workers": 0}, version=0)
        await cfg.close()
    run(zabby_server, body, clients=2)


def test_workflow(zabby_server):
    path = unique("wf")

    async def body(a, b, c):
        wf = recipes.Workflow(a, path, "boss")
        ids = [await wf.submit(f"job{i}".encode()) for i in range(4)]
        assert await wf.submit(b"named", task_id="named") == "named"
        assert await wf.submit(b"again", task_id="named") == "named"
        wb, wc = recipes.Workflow(b, path, "b"), recipes.Workflow(c, path, "c")
        t1 = await wb.claim(1)
        await t1.progress(b"half")
        assert await wf.status(t1.id) == "claimed"
        await b.stop()  # worker b dies mid-task: its claim goes with its session
        for _ in range(10):
            t = await wc.claim(1)
            if t.id == t1.id:
                break
            assert await t.complete(b"ok")
        assert t.last_progress == b"half"
        assert await t.complete(b"done")
        assert not await t.complete(b"twice")  # never a second completion
        await b.start()  # b comes back with a new session: its claim is not its own
        assert not await t1.holds()
        assert not await t1.complete(b"late")
        assert not await wf.wait_all(0.1)
        while (rest := await wc.claim(0.2)) is not None:
            assert await rest.complete(b"ok")
        assert await wf.wait_all(5)
        assert await wf.result(t1.id) == b"done"
        assert await wf.pending() == []
        assert sorted(ids + ["named"]) == sorted(await a.get_children(path + "/done"))
    run(zabby_server, body, clients=3)


# --------------------------------------------------------- the methods, blocking
def test_factories_and_sync_client(zabby_server):
    path = unique("sync")

    # the client classes inherit the recipe methods (until zabby.client takes the
    # mixins in, the test adds them itself)
    def lazy(sync: bool) -> Any:  # what the clients' __getattr__ would be
        def __getattr__(self: Any, name: str) -> Any:
            return recipes.recipe_method(self, name, sync=sync)
        return __getattr__
    AClient = type("AClient", (Client,), {"__getattr__": lazy(False)})
    SClient = type("SClient", (SyncClient,), {"__getattr__": lazy(True)})

    async def body(_zk):
        zk = AClient(zabby_server.hosts)
        await zk.start()
        try:
            async with zk.Lock(path + "/lock", "async") as lock:
                assert lock.is_acquired
            assert isinstance(zk.Counter(path + "/c"), recipes.Counter)
            with pytest.raises(AttributeError):
                zk.NoSuchRecipe  # noqa: B018
            mixed = type("M", (recipes.RecipeMethods, Client), {})(zabby_server.hosts)
            assert isinstance(mixed.Lock("/x"), recipes.Lock)  # the mixin way
        finally:
            await zk.stop()
    run(zabby_server, body)

    zk = SClient(zabby_server.hosts)
    zk.start()
    try:
        lock = zk.Lock(path + "/lock", "sync")
        with lock:
            assert lock.is_acquired
            assert lock.contenders() == ["sync"]
        assert not lock.is_acquired
        counter = zk.Counter(path + "/counter")
        counter += 5
        counter -= 2
        assert counter.value == 3
        q = zk.LockingQueue(path + "/q")
        q.put(b"item")
        assert len(q) == 1
        assert q.get(timeout=5) == b"item"
        assert q.consume()
        seen = []

        @zk.DataWatch(path + "/data")
        def watcher(data, stat):
            seen.append(data)
            if data is not None:
                zk.get(path + "/data")  # blocking calls work inside callbacks
        assert seen == [None]
        zk.create(path + "/data", b"x")
        for _ in range(50):
            if seen[-1] == b"x":
                break
            import time
            time.sleep(0.05)
        assert seen[-1] == b"x"
        election = zk.Election(path + "/elect", "me")
        assert election.run(lambda: zk.exists(path) is not None)
        import datetime as dt
        lease = zk.NonBlockingLease(path + "/lease", 10.0, "me",
                                    utcnow=lambda: dt.datetime(2030, 1, 1))
        assert lease  # tried when made, as kazoo's
        assert not zk.NonBlockingLease(path + "/lease", 10.0, "other",
                                       utcnow=lambda: dt.datetime(2030, 1, 1))
        part = zk.SetPartitioner(path + "/part", set=[1, 2, 3], time_boundary=0.1,
                                 partition_func=lambda me, members, items: items[:2])
        assert part.wait_for_acquire(10) == "ACQUIRED" and sorted(part) == [1, 2]
        part.finish()
        party = zk.ShallowParty(path + "/party", "me")
        party.join()
        assert list(party) == ["me"] and len(party) == 1
        party.leave()
    finally:
        zk.stop()


# -------------------------------------------------------------- lost replies
class LosesReplies:
    """A Client whose next N writes of a kind take effect but lose their reply
    (ConnectionLoss), as when the connection drops between request and reply."""

    def __init__(self, zk: Client) -> None:
        self._zk = zk
        self.lose: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._zk, name)
        if name not in ("create", "set", "delete", "transaction", "get", "exists"):
            return attr
        if name == "transaction":
            def txn() -> Any:
                t = attr()
                real_commit = t.commit

                async def commit() -> Any:
                    res = await real_commit()
                    if self.lose.get("commit"):
                        self.lose["commit"] -= 1
                        raise ConnectionLoss("reply lost")
                    return res
                t.commit = commit
                return t
            return txn

        async def call(*args: Any, **kwargs: Any) -> Any:
            res = await attr(*args, **kwargs)
            if self.lose.get(name):
                self.lose[name] -= 1
                raise ConnectionLoss("reply lost")
            return res
        return call


def test_writes_whose_reply_is_lost_are_recognised(zabby_server):
    path = unique("lost-replies")

    async def body(real, other):
        zk = LosesReplies(real)
        # Lock: the contender node created by a lost create is found, not duplicated
        zk.lose["create"] = 1
        lock = recipes.Lock(zk, path + "/lock", "me")
        assert await lock.acquire(timeout=5)
        assert len(await real.get_children(path + "/lock")) == 1
        await lock.release()
        # Semaphore: the same for the lease
        zk.lose["create"] = 1
        sem = recipes.Semaphore(zk, path + "/sem", "me", max_leases=1)
        assert await sem.acquire(timeout=5)
        assert await sem.lease_holders() == ["me"]
        await sem.release()
        # Counter: an add whose reply was lost is not applied twice
        counter = recipes.Counter(zk, path + "/counter")
        await counter.get()
        zk.lose["set"] = 1
        assert await counter.add(5, exactly_once=True) == 5
        assert await recipes.Counter(other, path + "/counter").get() == 5
        # LockingQueue: an item taken by a lost create is ours, not stuck
        q = recipes.LockingQueue(zk, path + "/q")
        await q.put(b"only")
        zk.lose["create"] = 1
        assert await q.get(5) == b"only"
        zk.lose["commit"] = 1
        assert await q.consume()
        assert await q.length() == 0
        # ... and one taken whose value could not be read (the connection dropped
        # right after the claim) is looked at again, not left locked for nobody
        await q.put(b"second")
        zk.lose["get"] = 1
        assert await q.get(5) == b"second"
        assert await q.consume() and await q.length() == 0
        # Workflow: a claim made by a lost create is ours; a completion whose reply
        # was lost is recognised as ours (and only once)
        wf = recipes.Workflow(zk, path + "/wf", "me")
        await wf.submit(b"p", task_id="t")
        zk.lose["create"] = 1
        task = await wf.claim(5)
        assert task is not None and task.id == "t"
        zk.lose["commit"] = 1
        assert await task.complete(b"r")
        assert await wf.result("t") == b"r"
        assert await recipes.Workflow(other, path + "/wf").pending() == []
        # a claim whose next read lost its reply is taken up again, not orphaned
        await wf.submit(b"p2", task_id="t2")
        zk.lose["exists"] = 1
        task = await wf.claim(5)
        assert task is not None and task.id == "t2" and task.payload == b"p2"
        assert await task.complete(b"r2")
    run(zabby_server, body, clients=2)


class CommitsLate:
    """A Client whose next N creates (or transactions: "commit") lose their reply
    and take effect late, the way the ensemble did it under a leader pause (recipe
    fault test, seed 168454498): a follower forwarded the create to the paused
    leader, the client lost its connection and reconnected, and the leader, once
    resumed, proposed the create before the client's next requests but committed it
    only after the client's first read had been answered. So a read does not show
    it yet; a sync or a later write of the session (both ordered after it at the
    leader) does."""

    def __init__(self, zk: Client) -> None:
        self._zk = zk
        self.late: dict[str, int] = {}
        self.pending: list[Callable[[], Awaitable[Any]]] = []
        self.made: list[str] = []

    async def _commit_pending(self) -> None:
        pending, self.pending = self.pending, []
        for write in pending:
            await write()

    def _defer(self, kind: str, write: Callable[[], Awaitable[Any]]) -> None:
        if self.late.get(kind):
            self.late[kind] -= 1
            self.pending.append(write)
            raise ConnectionLoss("connection lost (the write is on its way)")

    async def create(self, *args: Any, **kwargs: Any) -> str:
        await self._commit_pending()

        async def write() -> str:
            self.made.append(await self._zk.create(*args, **kwargs))
            return self.made[-1]
        self._defer("create", write)
        return await write()

    def transaction(self) -> Any:
        txn = self._zk.transaction()
        real_commit = txn.commit

        async def commit() -> Any:
            await self._commit_pending()
            self._defer("commit", real_commit)
            return await real_commit()
        txn.commit = commit
        return txn

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._zk, name)
        if name not in ("delete", "set", "sync"):
            return attr  # reads: answered before the late write commits

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._commit_pending()
            return await attr(*args, **kwargs)
        return call


def test_lock_finds_its_lost_create_that_commits_after_a_read(zabby_server):
    """A Lock whose create lost its reply looks for its node before creating
    another. If that look is a plain read on a member that has not applied the
    create yet, the Lock makes a second node and queues behind its first, which
    nobody deletes while the session lives: the lock is stuck for every contender
    (the recipe fault test's stall: 5 holdings in 12 s). It must sync first."""
    path = unique("late-create")

    async def body(real, other):
        zk = CommitsLate(real)
        zk.late["create"] = 1
        lock = recipes.Lock(zk, path, "me")
        assert await lock.acquire(timeout=5)  # LockTimeout: waiting on its own node
        assert len(zk.made) == 1, zk.made  # found, not made twice
        assert await real.get_children(path) == [zk.made[0].rsplit("/", 1)[-1]]
        await lock.release()
        assert await real.get_children(path) == []
        assert await recipes.Lock(other, path, "other").acquire(timeout=5)
    run(zabby_server, body, clients=2)


def test_workflow_progress_retried_after_a_late_commit_keeps_the_task(zabby_server):
    """A progress record whose transaction lost its reply and commits after the
    retry's first read: the retry must not take its own record for a lost claim
    (TaskLost), or the worker drops a task its live session still claims, and
    nobody completes it (the recipe fault test: a task never completed)."""
    path = unique("late-progress")

    async def body(real, other):
        zk = CommitsLate(real)
        wf = recipes.Workflow(zk, path, "me")
        await wf.submit(b"p", task_id="t")
        task = await wf.claim(5)
        assert task is not None and task.id == "t"
        zk.late["commit"] = 1
        await task.progress(b"started")  # TaskLost: the task would be stuck
        assert await task.holds()
        assert await task.complete(b"r")
        assert await recipes.Workflow(other, path).result("t") == b"r"
        assert await recipes.Workflow(other, path).pending() == []
    run(zabby_server, body, clients=2)


class GoesDown:
    """A client whose connection is down (every request: ConnectionLoss) while
    ``down`` is set; listeners and everything else go to the real client."""

    def __init__(self, zk: Client) -> None:
        self._zk = zk
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._zk, name)
        if name not in ("create", "get", "set", "delete", "exists", "get_children",
                        "ensure_path"):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionLoss("connection down")
            return await attr(*args, **kwargs)
        return call


def test_a_waiter_that_gives_up_while_disconnected_leaves_no_node(zabby_server):
    """A contender that times out while its connection is down cannot delete its
    node then; its session lives on, so a node left behind would block everyone
    queued after it. It is deleted once the connection is back."""
    path = unique("orphan")

    async def body(real, holder_zk, third_zk):
        zk = GoesDown(real)
        holder = recipes.Lock(holder_zk, path, "holder")
        assert await holder.acquire(timeout=5)
        for kind in ("lock", "semaphore"):
            if kind == "lock":
                waiter = recipes.Lock(zk, path, "waiter")
            else:
                waiter = recipes.Semaphore(zk, path + "-sem", "waiter", max_leases=1)
                sem_holder = recipes.Semaphore(holder_zk, path + "-sem", "h", max_leases=1)
                assert await sem_holder.acquire(timeout=5)
            task = asyncio.ensure_future(waiter.acquire(timeout=1.0))
            await asyncio.sleep(0.3)  # queued behind the holder
            zk.down = True
            with pytest.raises(LockTimeout):
                await task
            zk.down = False
            if kind == "lock":
                # the waiter's node goes once the connection is back ...
                for _ in range(50):
                    if len(await real.get_children(path)) == 1:
                        break
                    await asyncio.sleep(0.1)
                assert len(await real.get_children(path)) == 1
                # ... so the next contender gets the lock when the holder leaves
                third = recipes.Lock(third_zk, path, "third")
                pending = asyncio.ensure_future(third.acquire(timeout=5))
                await asyncio.sleep(0.2)
                await holder.release()
                assert await pending
                await third.release()
            else:
                for _ in range(50):
                    if await real.get_children(path + "-sem-__lock__") == []:
                        break
                    await asyncio.sleep(0.1)
                assert await real.get_children(path + "-sem-__lock__") == []
                await sem_holder.release()
                third = recipes.Semaphore(third_zk, path + "-sem", "third", max_leases=1)
                assert await third.acquire(timeout=5)
                await third.release()
    run(zabby_server, body, clients=3)
