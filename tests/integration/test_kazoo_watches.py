"""Watches through kazoo (one-shot, ordering, recipes) and persistent watches.

kazoo 2.11 has no ``add_watch`` / ``remove_watches``: persistent, persistent-recursive
watches and watch removal are set with the raw-frame client (``zabby.testing.rawclient``)
while kazoo makes the changes.

Set ZABBY_IT_TARGET=zookeeper to run this module against Apache ZooKeeper 3.8.
"""

from __future__ import annotations

import queue
import threading

import pytest
from kazoo.protocol.serialization import GetData, SetData
from kazoo.protocol.states import EventType
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo_common import TIMEOUT, client_factory, empty_tree, target_server

from zabby.testing.rawclient import RawClient
from zabby.wire import (
    ACL,
    AddWatchMode,
    AddWatchRequest,
    CreateRequest,
    Err,
    Id,
    Op,
    PathWatchRequest,
    WatcherType,
    WatchTypeRequest,
)

QUIET = 0.3  # how long "no further event" is watched for

# WatcherEvent.type on the wire
CREATED, DELETED, CHANGED, CHILD = 1, 2, 3, 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with target_server(tmp_path_factory.mktemp("kazoo-watches"), tickTime=200) as srv:
        yield srv


@pytest.fixture
def clients(server):
    yield from client_factory(server.hosts, timeout=5.0)


@pytest.fixture
def zk(clients):
    return empty_tree(clients())


@pytest.fixture
def raw(server):
    c = RawClient(server.host, server.port, timeout_ms=5000, io_timeout=TIMEOUT)
    c.connect()
    try:
        yield c
    finally:
        c.close()


class Events:
    """A kazoo watcher that queues (type, path) for the test thread."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def __call__(self, ev) -> None:
        self.q.put((ev.type, ev.path))

    def next(self, timeout: float = TIMEOUT):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s") from None

    def none(self, timeout: float = QUIET) -> bool:
        try:
            ev = self.q.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected extra watch event {ev}")


# ------------------------------------------------------------------ one-shot watches
def test_exists_watch_fires_once_on_create(zk, clients):
    other = clients()
    w = Events()
    assert zk.exists("/w", watch=w) is None
    other.create("/w")
    assert w.next() == (EventType.CREATED, "/w")
    other.set("/w", b"1")
    other.delete("/w")
    w.none()


def test_data_watch_fires_once(zk, clients):
    other = clients()
    zk.create("/w", b"0")
    w = Events()
    zk.get("/w", watch=w)
    other.set("/w", b"1")
    other.set("/w", b"2")
    assert w.next() == (EventType.CHANGED, "/w")
    w.none()
    # Re-armed by a new read, it fires again; a delete is NodeDeleted.
    zk.get("/w", watch=w)
    other.delete("/w")
    assert w.next() == (EventType.DELETED, "/w")
    w.none()


def test_exists_watch_on_existing_node_sees_change(zk, clients):
    zk.create("/w")
    w = Events()
    assert zk.exists("/w", watch=w) is not None
    clients().set("/w", b"x")
    assert w.next() == (EventType.CHANGED, "/w")
    w.none()


def test_child_watch_fires_once(zk, clients):
    other = clients()
    zk.create("/p")
    w = Events()
    assert zk.get_children("/p", watch=w) == []
    other.create("/p/a")
    other.create("/p/b")
    assert w.next() == (EventType.CHILD, "/p")
    w.none()
    # Data changes of the parent or of a child are not child events.
    zk.get_children("/p", watch=w)
    other.set("/p", b"x")
    other.set("/p/a", b"x")
    w.none()
    other.delete("/p/a")
    assert w.next() == (EventType.CHILD, "/p")
    # A child watch on a node that is deleted gets NodeDeleted.
    zk.get_children("/p", watch=w)
    other.delete("/p", recursive=True)
    assert w.next() == (EventType.CHILD, "/p")
    w.none()
    zk.create("/q")
    zk.get_children("/q", watch=w)
    other.delete("/q")
    assert w.next() == (EventType.DELETED, "/q")
    w.none()


def test_watches_of_one_change_fire_in_order_on_each_client(zk, clients):
    """One change triggers both the data and the child watches; a series of changes
    is seen in zxid order."""
    other = clients()
    zk.create("/o")
    w = Events()
    zk.get_children("/o", watch=w)
    zk.exists("/o/a", watch=w)
    other.create("/o/a")
    got = {w.next(), w.next()}
    assert got == {(EventType.CHILD, "/o"), (EventType.CREATED, "/o/a")}
    # Several paths, each armed once, changed in a known order.
    paths = [f"/o/n{i}" for i in range(5)]
    for p in paths:
        zk.exists(p, watch=w)
    for p in paths:
        other.create(p)
    assert [w.next() for _ in paths] == [(EventType.CREATED, p) for p in paths]
    w.none()


def test_transaction_fires_watches_in_op_order(zk, clients):
    other = clients()
    zk.create("/tx")
    zk.create("/tx/b", b"0")
    w = Events()
    zk.exists("/tx/a", watch=w)
    zk.get("/tx/b", watch=w)
    zk.get_children("/tx", watch=w)
    # A failed transaction fires nothing.
    tx = other.transaction()
    tx.create("/tx/a")
    tx.set_data("/tx/b", b"1")
    tx.check("/tx/b", 99)
    tx.commit()
    w.none()
    tx = other.transaction()
    tx.create("/tx/a")
    tx.set_data("/tx/b", b"1")
    tx.commit()
    assert [w.next(), w.next(), w.next()] == [
        (EventType.CREATED, "/tx/a"),
        (EventType.CHILD, "/tx"),
        (EventType.CHANGED, "/tx/b"),
    ]
    w.none()


def test_expired_owner_fires_deleted_and_child_events(zk, server):
    zk.create("/owner")
    raw = RawClient(server.host, server.port, timeout_ms=400, io_timeout=TIMEOUT)
    raw.connect()
    try:
        acl = [ACL(31, Id("world", "anyone"))]
        assert raw.request(Op.CREATE, CreateRequest("/owner/e", b"", acl, 1)).err == 0
        w = Events()
        zk.exists("/owner/e", watch=w)
        zk.get_children("/owner", watch=w)
        # The raw client goes quiet; its session expires.
        assert {w.next(), w.next()} == {(EventType.DELETED, "/owner/e"), (EventType.CHILD, "/owner")}
    finally:
        raw.drop()


# ------------------------------------------------- notifications before later replies
class WireOrder:
    """Records, in kazoo's reader thread, the order of notifications and replies."""

    def __init__(self, client) -> None:
        self.log: list[tuple] = []
        conn = client._connection
        orig_event = conn._read_watch_event
        orig_response = conn._read_response

        def read_watch_event(buffer, offset):
            from kazoo.protocol.serialization import Watch

            watch, _ = Watch.deserialize(buffer, offset)
            self.log.append(("event", watch.type, watch.path))
            return orig_event(buffer, offset)

        def read_response(header, buffer, offset):
            request = client._pending[0][0] if client._pending else None
            self.log.append(("reply", type(request).__name__, getattr(request, "path", None)))
            return orig_response(header, buffer, offset)

        conn._read_watch_event = read_watch_event
        conn._read_response = read_response

    def index(self, entry) -> int:
        return self.log.index(entry)


def test_own_write_notification_precedes_the_write_reply(zk):
    zk.create("/ord", b"0")
    order = WireOrder(zk)
    fired = threading.Event()
    zk.get("/ord", watch=lambda ev: fired.set())
    zk.set("/ord", b"1")
    assert fired.wait(TIMEOUT)
    ev = order.index(("event", CHANGED, "/ord"))
    rep = order.index(("reply", SetData.__name__, "/ord"))
    assert ev < rep, order.log


def test_notification_precedes_a_read_that_sees_the_change(zk, clients):
    """A client that reads a value written by another session has already been sent
    the event for it (ZooKeeper's "see the event before the new data")."""
    other = clients()
    zk.create("/ord", b"0")
    for i in range(1, 21):
        order = WireOrder(zk)
        fired = threading.Event()
        data, _ = zk.get("/ord", watch=lambda ev, fired=fired: fired.set())
        assert data == str(i - 1).encode()
        # The writer's change is acknowledged before our read is sent.
        other.set("/ord", str(i).encode())
        seen, _ = zk.get("/ord")
        assert seen == str(i).encode()
        assert fired.wait(TIMEOUT), "watch never fired"
        ev = order.index(("event", CHANGED, "/ord"))
        reads = [k for k, e in enumerate(order.log) if e == ("reply", GetData.__name__, "/ord")]
        assert len(reads) == 2 and reads[0] < ev < reads[1], order.log


def test_async_reads_pipeline_after_a_notification(zk, clients):
    """Pipelined reads issued after a change all come back after its notification."""
    zk.create("/pipe", b"0")
    order = WireOrder(zk)
    zk.get("/pipe", watch=lambda ev: None)
    clients().set("/pipe", b"1")
    results = [zk.get_async("/pipe") for _ in range(10)]
    assert all(r.get(timeout=TIMEOUT)[0] == b"1" for r in results)
    ev = order.index(("event", CHANGED, "/pipe"))
    first_read_after = [k for k, e in enumerate(order.log) if e[0] == "reply"][1]
    assert ev < first_read_after, order.log


# --------------------------------------------------------------------- kazoo recipes
def test_data_watch_recipe(zk, clients):
    other = clients()
    seen: queue.Queue = queue.Queue()

    @DataWatch(zk, "/dw")
    def watcher(data, stat, event=None):  # noqa: ARG001 - kazoo's signature
        seen.put((data, stat.version if stat else None, event.type if event else None))

    assert seen.get(timeout=TIMEOUT) == (None, None, None)
    other.create("/dw", b"a")
    assert seen.get(timeout=TIMEOUT) == (b"a", 0, EventType.CREATED)
    other.set("/dw", b"b")
    assert seen.get(timeout=TIMEOUT) == (b"b", 1, EventType.CHANGED)
    other.delete("/dw")
    assert seen.get(timeout=TIMEOUT) == (None, None, EventType.DELETED)
    other.create("/dw", b"c")
    assert seen.get(timeout=TIMEOUT) == (b"c", 0, EventType.CREATED)


def test_children_watch_recipe(zk, clients):
    other = clients()
    zk.create("/cw")
    seen: queue.Queue = queue.Queue()
    ChildrenWatch(zk, "/cw", func=lambda children: seen.put(sorted(children)))
    assert seen.get(timeout=TIMEOUT) == []
    other.create("/cw/a")
    assert seen.get(timeout=TIMEOUT) == ["a"]
    other.create("/cw/b", ephemeral=True)
    assert seen.get(timeout=TIMEOUT) == ["a", "b"]
    # The ephemeral child goes with its session.
    other.stop()
    assert seen.get(timeout=TIMEOUT) == ["a"]
    zk.delete("/cw/a")
    assert seen.get(timeout=TIMEOUT) == []


# ---------------------------------------------------- persistent watches (raw client)
def add_watch(raw, path, mode):
    r = raw.request(Op.ADD_WATCH, AddWatchRequest(path, int(mode)))
    assert r.err == 0, r
    return r


def events(raw):
    """Everything the server has sent so far (a ping flushes the connection)."""
    raw.ping()
    return [(e.type, e.path) for e in raw.take_events()]


def test_persistent_watch_fires_every_time(zk, raw):
    zk.create("/pw", b"0")
    add_watch(raw, "/pw", AddWatchMode.PERSISTENT)
    zk.set("/pw", b"1")
    zk.set("/pw", b"2")
    zk.create("/pw/kid")
    zk.set("/pw/kid", b"x")  # not the watched node
    zk.delete("/pw/kid")
    assert events(raw) == [(CHANGED, "/pw"), (CHANGED, "/pw"), (CHILD, "/pw"), (CHILD, "/pw")]
    zk.delete("/pw")
    zk.create("/pw")
    # It survives the delete and sees the node come back.
    assert events(raw) == [(DELETED, "/pw"), (CREATED, "/pw")]


def test_persistent_watch_on_a_missing_node(zk, raw):
    add_watch(raw, "/later", AddWatchMode.PERSISTENT)
    zk.create("/later")
    zk.set("/later", b"x")
    assert events(raw) == [(CREATED, "/later"), (CHANGED, "/later")]


def test_persistent_recursive_watch(zk, raw):
    zk.create("/r")
    add_watch(raw, "/r", AddWatchMode.PERSISTENT_RECURSIVE)
    zk.create("/r/a/b", makepath=True)
    zk.set("/r/a/b", b"x")
    zk.set("/r", b"y")
    zk.delete("/r/a/b")
    zk.create("/rr")  # a sibling with the same prefix is outside the subtree
    zk.set("/rr", b"z")
    # No NodeChildrenChanged from a recursive watch, every node below fires.
    assert events(raw) == [
        (CREATED, "/r/a"),
        (CREATED, "/r/a/b"),
        (CHANGED, "/r/a/b"),
        (CHANGED, "/r"),
        (DELETED, "/r/a/b"),
    ]


def test_persistent_recursive_watch_on_root(zk, raw):
    add_watch(raw, "/", AddWatchMode.PERSISTENT_RECURSIVE)
    zk.create("/x")
    zk.create("/x/y")
    assert events(raw) == [(CREATED, "/x"), (CREATED, "/x/y")]


def test_one_shot_and_persistent_watches_together(zk, raw):
    """ZooKeeper 3.8 keeps one mode per (connection, path): the last registration wins
    (ZOOKEEPER-4466, changed only in 3.9)."""
    zk.create("/both")
    add_watch(raw, "/both", AddWatchMode.PERSISTENT)
    assert raw.request(Op.GET_DATA, PathWatchRequest("/both", True)).err == 0
    zk.set("/both", b"1")
    zk.set("/both", b"2")
    assert events(raw) == [(CHANGED, "/both")]
    # The other way round the persistent mode wins and fires every time.
    zk.create("/both2")
    assert raw.request(Op.GET_DATA, PathWatchRequest("/both2", True)).err == 0
    add_watch(raw, "/both2", AddWatchMode.PERSISTENT)
    zk.set("/both2", b"1")
    zk.set("/both2", b"2")
    assert events(raw) == [(CHANGED, "/both2"), (CHANGED, "/both2")]


def test_remove_persistent_watch(zk, raw):
    zk.create("/rm")
    add_watch(raw, "/rm", AddWatchMode.PERSISTENT)
    assert raw.request(Op.CHECK_WATCHES, WatchTypeRequest("/rm", WatcherType.ANY)).err == 0
    r = raw.request(Op.REMOVE_WATCHES, WatchTypeRequest("/rm", WatcherType.ANY))
    assert r.err == 0
    zk.set("/rm", b"1")
    zk.create("/rm/c")
    assert [e for e in events(raw) if e[0] in (CHANGED, CHILD)] == []
    r = raw.request(Op.REMOVE_WATCHES, WatchTypeRequest("/rm", WatcherType.ANY))
    assert r.err == Err.NOWATCHER
    r = raw.request(Op.CHECK_WATCHES, WatchTypeRequest("/rm", WatcherType.ANY))
    assert r.err == Err.NOWATCHER


def test_remove_one_kind_of_one_shot_watch(zk, raw):
    zk.create("/k")
    assert raw.request(Op.GET_DATA, PathWatchRequest("/k", True)).err == 0
    assert raw.request(Op.GET_CHILDREN, PathWatchRequest("/k", True)).err == 0
    # Remove only the child watch: the data watch still fires.
    assert raw.request(Op.REMOVE_WATCHES, WatchTypeRequest("/k", WatcherType.CHILDREN)).err == 0
    assert (
        raw.request(Op.CHECK_WATCHES, WatchTypeRequest("/k", WatcherType.CHILDREN)).err
        == Err.NOWATCHER
    )
    assert raw.request(Op.CHECK_WATCHES, WatchTypeRequest("/k", WatcherType.DATA)).err == 0
    zk.create("/k/c")
    zk.set("/k", b"x")
    assert [e for e in events(raw) if e[0] in (CHANGED, CHILD)] == [(CHANGED, "/k")]


def test_remove_recursive_watch(zk, raw):
    zk.create("/rw")
    add_watch(raw, "/rw", AddWatchMode.PERSISTENT_RECURSIVE)
    zk.create("/rw/a")
    assert events(raw) == [(CREATED, "/rw/a")]
    assert raw.request(Op.REMOVE_WATCHES, WatchTypeRequest("/rw", WatcherType.ANY)).err == 0
    zk.create("/rw/b")
    zk.set("/rw", b"x")
    assert [e for e in events(raw) if e[0] in (CREATED, CHANGED)] == []
