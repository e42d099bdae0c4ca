"""kazoo's recipes on a real zabby server, as a smoke test of real usage:
Lock, Election, Counter, Barrier, DoubleBarrier, Queue, LockingQueue, Party.

Set ZABBY_IT_TARGET=zookeeper to run this module against Apache ZooKeeper 3.8.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest
from kazoo.exceptions import LockTimeout
from kazoo_common import TIMEOUT, client_factory, empty_tree, target_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with target_server(tmp_path_factory.mktemp("kazoo-recipes"), tickTime=200) as srv:
        yield srv


@pytest.fixture
def clients(server):
    yield from client_factory(server.hosts, timeout=4.0)


@pytest.fixture
def zk(clients):
    return empty_tree(clients())


def run(target, *args):
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


def test_lock_two_clients_contend(zk, clients):
    a, b = clients(), clients()
    lock_a = a.Lock("/lock", "a")
    lock_b = b.Lock("/lock", "b")
    assert lock_a.acquire(timeout=TIMEOUT)
    assert not lock_b.acquire(blocking=False)
    with pytest.raises(LockTimeout):
        lock_b.acquire(timeout=0.3)
    assert lock_b.contenders() == ["a"]

    got = threading.Event()
    order: list[str] = []

    def waiter():
        if lock_b.acquire(timeout=TIMEOUT):
            order.append("b acquired")
            got.set()

    t = run(waiter)
    time.sleep(0.2)
    assert not got.is_set()
    order.append("a releases")
    lock_a.release()
    assert got.wait(TIMEOUT)
    assert order == ["a releases", "b acquired"]
    assert lock_a.contenders() == ["b"]
    lock_b.release()
    t.join(TIMEOUT)
    assert zk.get_children("/lock") == []


def test_lock_is_released_when_the_holder_dies(zk, clients):
    a, b = clients(), clients()
    assert a.Lock("/lock2", "a").acquire(timeout=TIMEOUT)
    lock_b = b.Lock("/lock2", "b")
    assert not lock_b.acquire(blocking=False)
    a.stop()  # session closes, the lock node is ephemeral
    assert lock_b.acquire(timeout=TIMEOUT)
    lock_b.release()


def test_lock_mutual_exclusion_under_contention(zk, clients):
    workers = [clients() for _ in range(4)]
    inside = 0
    max_inside = 0
    total = 0
    guard = threading.Lock()
    errors: list[BaseException] = []

    def work(c):
        nonlocal inside, max_inside, total
        try:
            lock = c.Lock("/mutex")
            for _ in range(5):
                with lock:
                    with guard:
                        inside += 1
                        max_inside = max(max_inside, inside)
                    time.sleep(0.005)
                    with guard:
                        inside -= 1
                        total += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [run(work, c) for c in workers]
    for t in threads:
        t.join(TIMEOUT * 2)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert max_inside == 1 and total == 20


def test_election(zk, clients):
    a, b = clients(), clients()
    leaders: queue.Queue = queue.Queue()
    release_a = threading.Event()

    def lead_a():
        leaders.put("a")
        release_a.wait(TIMEOUT)

    def lead_b():
        leaders.put("b")

    el_a = a.Election("/election", "a")
    el_b = b.Election("/election", "b")
    ta = run(el_a.run, lead_a)
    assert leaders.get(timeout=TIMEOUT) == "a"
    tb = run(el_b.run, lead_b)
    time.sleep(0.2)
    assert leaders.empty()  # b waits while a leads
    assert el_b.contenders() == ["a", "b"]
    release_a.set()  # a steps down
    assert leaders.get(timeout=TIMEOUT) == "b"
    ta.join(TIMEOUT)
    tb.join(TIMEOUT)
    assert not ta.is_alive() and not tb.is_alive()


def test_counter(zk, clients):
    a, b = clients(), clients()
    ca, cb = a.Counter("/counter"), b.Counter("/counter")
    assert ca.value == 0
    ca += 5
    assert cb.value == 5
    cb -= 2
    assert ca.value == 3

    def bump(counter):
        for _ in range(25):
            counter += 1

    threads = [run(bump, ca), run(bump, cb)]
    for t in threads:
        t.join(TIMEOUT * 2)
    assert ca.value == 53 and cb.value == 53
    fc = a.Counter("/fcounter", default=0.0)
    fc += 1.5
    assert b.Counter("/fcounter", default=0.0).value == 1.5


def test_barrier(zk, clients):
    a, b = clients(), clients()
    barrier = a.Barrier("/barrier")
    barrier.create()
    passed = threading.Event()
    waiter_barrier = b.Barrier("/barrier")
    t = run(lambda: waiter_barrier.wait(timeout=TIMEOUT) and passed.set())
    time.sleep(0.2)
    assert not passed.is_set()
    assert not b.Barrier("/barrier").wait(timeout=0.1)  # times out while it stands
    barrier.remove()
    assert passed.wait(TIMEOUT)
    t.join(TIMEOUT)
    assert b.Barrier("/barrier").wait(timeout=0.1)  # gone: no wait


def test_double_barrier(zk, clients):
    members = [clients() for _ in range(3)]
    entered: queue.Queue = queue.Queue()
    left: queue.Queue = queue.Queue()

    def member(c, name):
        db = c.DoubleBarrier("/dbarrier", 3, identifier=name)
        db.enter()
        entered.put(name)
        db.leave()
        left.put(name)

    threads = [run(member, members[0], "m0"), run(member, members[1], "m1")]
    time.sleep(0.3)
    assert entered.empty()  # two of three: nobody gets in
    threads.append(run(member, members[2], "m2"))
    assert {entered.get(timeout=TIMEOUT) for _ in range(3)} == {"m0", "m1", "m2"}
    assert {left.get(timeout=TIMEOUT) for _ in range(3)} == {"m0", "m1", "m2"}
    for t in threads:
        t.join(TIMEOUT)


def test_queue(zk, clients):
    a, b = clients(), clients()
    qa, qb = a.Queue("/queue"), b.Queue("/queue")
    for i in range(5):
        qa.put(str(i).encode())
    qa.put(b"urgent", priority=10)  # lower number = earlier
    qa.put(b"first", priority=0)
    assert len(qb) == 7
    out = [qb.get() for _ in range(7)]
    assert out == [b"first", b"urgent", b"0", b"1", b"2", b"3", b"4"]
    assert qb.get() is None and len(qa) == 0


def test_locking_queue(zk, clients):
    a, b = clients(), clients()
    producer, consumer = a.LockingQueue("/lq"), b.LockingQueue("/lq")
    producer.put_all([b"x", b"y"])
    assert consumer.get(timeout=TIMEOUT) == b"x"
    # x is held by the consumer until consumed; another consumer sees y.
    other = a.LockingQueue("/lq")
    assert other.get(timeout=TIMEOUT) == b"y"
    assert consumer.consume() and other.consume()
    assert len(producer) == 0
    got: queue.Queue = queue.Queue()
    t = run(lambda: got.put(consumer.get(timeout=TIMEOUT)))
    time.sleep(0.1)
    producer.put(b"late")
    assert got.get(timeout=TIMEOUT) == b"late"
    t.join(TIMEOUT)
    assert consumer.consume()


def test_party(zk, clients):
    a, b, c = clients(), clients(), clients()
    pa = a.Party("/party", "alice")
    pb = b.Party("/party", "bob")
    pa.join()
    pb.join()
    watcher = c.Party("/party")
    assert sorted(watcher) == ["alice", "bob"] and len(watcher) == 2
    pa.leave()
    assert list(watcher) == ["bob"]
    # A member whose session ends leaves the party.
    b.stop()
    assert len(watcher) == 0
    sp = c.ShallowParty("/shallow", "carol")
    sp.join()
    assert list(c.ShallowParty("/shallow")) == ["carol"]
