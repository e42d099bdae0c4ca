"""Sessions through kazoo against a real zabby process: ephemerals and expiry,
reconnecting to the same session (a TCP proxy between kazoo and the server is cut),
watch re-registration with setWatches, wrong passwords, concurrent sequential
creates, and the maxClientCnxns limit.

The server runs with tickTime=200 so the smallest session timeout is 400 ms.
Set ZABBY_IT_TARGET=zookeeper to run this module against Apache ZooKeeper 3.8.
"""

from __future__ import annotations

import queue
import socket
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.watchers import DataWatch
from kazoo_common import TARGET, TIMEOUT, client_factory, close_quietly, empty_tree
from kazoo_common import target_server as _server

from zabby.testing.rawclient import ConnectionClosed, RawClient
from zabby.wire import (
    XID_SET_WATCHES,
    CreateRequest,
    Op,
    PathWatchRequest,
    SetWatches,
    SetWatches2,
)
from zabby.wire.records import ACL, Id

OPEN_ACL = [ACL(31, Id("world", "anyone"))]
ERR_NONODE = -101
CREATED, DELETED, CHANGED, CHILD = 1, 2, 3, 4  # WatcherEvent.type
# Reconnect quickly: kazoo's default backoff grows to a minute.
FAST_RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 1.5, "max_delay": 0.3}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _server(tmp_path_factory.mktemp("kazoo-sessions"), tickTime=200) as srv:
        yield srv


@pytest.fixture
def clients(server):
    """Factory: a started KazooClient on `server` (or on hosts=...), closed after the test."""
    yield from client_factory(server.hosts, timeout=5.0, connection_retry=dict(FAST_RETRY))


@pytest.fixture
def zk(clients):
    return empty_tree(clients())


def wait_until(pred, timeout=TIMEOUT, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Proxy:
    """A loopback TCP proxy whose connections can be cut (and new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.hosts = f"127.0.0.1:{self.port}"
        self.blocked = False
        self.accepted = 0
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                down, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.blocked:
                down.close()
                continue
            try:
                up = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                down.close()
                continue
            down.settimeout(None)
            up.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._socks += [down, up]
            for a, b in ((down, up), (up, down)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self, block: bool = False) -> None:
        """Break every current connection (both ends see it); optionally refuse new ones."""
        self.blocked = block
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def unblock(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self.listener.close()
        for t in self._threads:
            t.join(timeout=2)


@pytest.fixture
def proxy(server):
    p = Proxy(server.host, server.port)
    try:
        yield p
    finally:
        p.close()


class States:
    """A kazoo connection listener that keeps the states it went through."""

    def __init__(self, client) -> None:
        self.seen: list[str] = []
        self.cond = threading.Condition()
        client.add_listener(self)

    def __call__(self, state) -> None:
        with self.cond:
            self.seen.append(state)
            self.cond.notify_all()

    def wait_for(self, state, timeout=TIMEOUT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: state in self.seen, timeout)

    def wait_last(self, state, timeout=TIMEOUT) -> bool:
        """True once `state` is the newest state heard. kazoo sets `connected` before
        it calls its listeners, so a test that saw `connected` waits here for them."""
        with self.cond:
            return self.cond.wait_for(lambda: self.seen[-1:] == [state], timeout)


# ----------------------------------------------------------------------- ephemerals
def test_ephemerals_vanish_when_the_session_closes(zk, clients):
    owner = clients()
    owner.create("/eph/a", ephemeral=True, makepath=True)
    owner.create("/eph/b-", ephemeral=True, sequence=True)
    gone = threading.Event()
    assert zk.exists("/eph/a", watch=lambda ev: ev.type == EventType.DELETED and gone.set())
    owner.stop()
    assert gone.wait(TIMEOUT)
    assert zk.get_children("/eph") == []


def test_ephemerals_vanish_when_the_session_expires(zk, clients, proxy):
    owner = clients(hosts=proxy.hosts, timeout=1.0)
    states = States(owner)
    sid = owner.client_id[0]
    owner.create("/exp", ephemeral=True)
    gone = threading.Event()
    zk.exists("/exp", watch=lambda ev: ev.type == EventType.DELETED and gone.set())
    t0 = time.monotonic()
    proxy.cut(block=True)  # the client can no longer reach the server
    assert gone.wait(TIMEOUT), "ephemeral outlived its session"
    # Not before the negotiated timeout (1 s), and not much later (ticks are 200 ms).
    assert time.monotonic() - t0 >= 0.8
    assert zk.exists("/exp") is None
    proxy.unblock()
    # Coming back, kazoo learns the session is gone and starts a new one.
    assert states.wait_for(KazooState.LOST)
    assert wait_until(lambda: owner.connected and owner.client_id[0] != sid)
    assert owner.exists("/exp") is None


def test_raw_session_that_stops_pinging_expires(zk, server):
    raw = RawClient(server.host, server.port, timeout_ms=400, io_timeout=TIMEOUT)
    resp = raw.connect()
    try:
        assert resp.timeOut == 400
        r = raw.request(Op.CREATE, CreateRequest("/silent", b"", OPEN_ACL, 1))
        assert r.err == 0
        assert zk.exists("/silent").ephemeralOwner == raw.session_id
        # Say nothing: the server expires the session and closes the connection.
        assert raw.wait_closed(timeout=5.0)
        assert wait_until(lambda: zk.exists("/silent") is None, timeout=5.0)
        # The session cannot be resumed any more.
        resp = raw.connect()
        assert resp.timeOut == 0 and resp.sessionId == 0
    finally:
        raw.drop()


# ----------------------------------------------------------- reconnect, same session
def test_reconnect_keeps_session_ephemerals_and_recipes(zk, clients, proxy):
    """The TCP connection breaks; kazoo comes back to the SAME session.

    (kazoo 2.11 does not send setWatches: on a disconnect it fires its one-shot
    watchers with EventType.NONE and its recipes re-read; setWatches itself is
    covered with the raw client below.)
    """
    client = clients(hosts=proxy.hosts, timeout=4.0)
    states = States(client)
    sid, passwd = client.client_id
    client.create("/live", ephemeral=True)
    zk.create("/w", b"0")
    seen: queue.Queue = queue.Queue()
    DataWatch(client, "/w", func=lambda data, stat: seen.put(data))
    assert seen.get(timeout=TIMEOUT) == b"0"
    before = proxy.accepted

    proxy.cut(block=True)
    assert states.wait_for(KazooState.SUSPENDED)
    zk.set("/w", b"changed while away")
    proxy.unblock()
    assert wait_until(lambda: client.connected and proxy.accepted > before)
    assert states.wait_last(KazooState.CONNECTED) and KazooState.LOST not in states.seen
    assert client.client_id == (sid, passwd)
    assert zk.exists("/live").ephemeralOwner == sid
    assert seen.get(timeout=TIMEOUT) == b"changed while away"
    zk.set("/w", b"after")
    assert seen.get(timeout=TIMEOUT) == b"after"
    # The session keeps working and is still the same one.
    client.create("/live2", ephemeral=True)
    assert zk.exists("/live2").ephemeralOwner == sid


def _set_watches(raw, body):
    op = Op.SET_WATCHES if isinstance(body, SetWatches) else Op.SET_WATCHES2
    raw.send_request(op, body, xid=XID_SET_WATCHES)
    r = raw.wait_reply(XID_SET_WATCHES, op)
    assert r.err == 0, r


def _events(raw):
    raw.ping()
    return [(e.type, e.path) for e in raw.take_events()]


def test_set_watches_after_reconnect(zk, server):
    """A client that comes back to its session re-registers its watches with
    setWatches(relativeZxid); changes it missed fire at once, the rest later."""
    zk.create("/a", b"0")
    zk.create("/c")
    zk.create("/w", b"0")
    zk.create("/gone")
    raw = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT)
    raw.connect()
    try:
        sid = raw.session_id
        assert raw.request(Op.GET_DATA, PathWatchRequest("/a", True)).err == 0
        assert raw.request(Op.GET_DATA, PathWatchRequest("/w", True)).err == 0
        assert raw.request(Op.GET_DATA, PathWatchRequest("/gone", True)).err == 0
        assert raw.request(Op.EXISTS, PathWatchRequest("/b", True)).err == ERR_NONODE
        assert raw.request(Op.GET_CHILDREN, PathWatchRequest("/c", True)).err == 0
        raw.drop()
        # While the client is away:
        zk.set("/a", b"1")
        zk.create("/b")
        zk.create("/c/kid")
        zk.delete("/gone")
        resp = raw.connect()
        assert resp.sessionId == sid
        _set_watches(raw, SetWatches(raw.last_zxid, ["/a", "/w", "/gone"], ["/b"], ["/c"]))
        got = _events(raw)
        assert sorted(got) == sorted(
            [(CHANGED, "/a"), (CREATED, "/b"), (CHILD, "/c"), (DELETED, "/gone")]
        )
        # Unchanged /w was re-armed and fires on the next change, once.
        zk.set("/w", b"1")
        zk.set("/w", b"2")
        zk.set("/a", b"2")  # already fired: not armed any more
        assert _events(raw) == [(CHANGED, "/w")]
    finally:
        raw.close()


def test_set_watches2_rearms_persistent_watches(zk, server):
    zk.create("/p")
    zk.create("/r")
    raw = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT)
    raw.connect()
    try:
        raw.drop()
        raw.connect()
        _set_watches(raw, SetWatches2(raw.last_zxid, [], [], [], ["/p"], ["/r"]))
        zk.set("/p", b"1")
        zk.set("/p", b"2")
        zk.create("/r/x/y", makepath=True)
        assert _events(raw) == [
            (CHANGED, "/p"),
            (CHANGED, "/p"),
            (CREATED, "/r/x"),
            (CREATED, "/r/x/y"),
        ]
    finally:
        raw.close()


def test_reconnect_many_times(zk, clients, proxy):
    client = clients(hosts=proxy.hosts, timeout=4.0)
    sid = client.client_id[0]
    client.create("/persist", ephemeral=True)
    for i in range(5):
        before = proxy.accepted
        proxy.cut()
        assert wait_until(lambda before=before: proxy.accepted > before and client.connected)
        client.set("/persist", str(i).encode())
    assert client.client_id[0] == sid
    assert zk.get("/persist")[0] == b"4"
    assert zk.exists("/persist").ephemeralOwner == sid


def test_raw_resume_same_session(zk, server):
    raw = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT)
    first = raw.connect()
    try:
        assert raw.request(Op.CREATE, CreateRequest("/r", b"", OPEN_ACL, 1)).err == 0
        assert raw.request(Op.GET_DATA, PathWatchRequest("/r", True)).err == 0
        raw.drop()
        again = raw.connect()
        assert again.sessionId == first.sessionId and again.timeOut == first.timeOut
        assert again.passwd == first.passwd
        assert zk.exists("/r").ephemeralOwner == first.sessionId
        assert raw.ping().err == 0
    finally:
        raw.close()
    assert wait_until(lambda: zk.exists("/r") is None, timeout=5.0)


def test_resuming_a_session_elsewhere_closes_the_old_connection(zk, server):
    a = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT)
    a.connect()
    b = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT,
                  session_id=a.session_id, passwd=a.passwd)
    try:
        assert a.request(Op.CREATE, CreateRequest("/moved", b"", OPEN_ACL, 1)).err == 0
        assert b.connect().sessionId == a.session_id
        assert a.wait_closed(timeout=5.0)  # the stale connection is dropped
        assert b.ping().err == 0
        assert zk.exists("/moved").ephemeralOwner == b.session_id
    finally:
        a.drop()
        b.close()
    assert wait_until(lambda: zk.exists("/moved") is None, timeout=5.0)


def test_client_that_has_seen_a_newer_zxid_is_refused(zk, server):
    zk.create("/z")
    raw = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=5.0,
                    last_zxid=zk.exists("/z").czxid + 1000)
    try:
        with pytest.raises(ConnectionClosed):
            raw.connect()
    finally:
        raw.drop()


def test_wrong_password_is_session_expired(zk, clients, server):
    owner = clients()
    owner.create("/mine", ephemeral=True)
    sid, passwd = owner.client_id
    bad = bytes(b ^ 0xFF for b in passwd)
    raw = RawClient(server.host, server.port, timeout_ms=4000, session_id=sid, passwd=bad)
    try:
        resp = raw.connect()
        assert resp.timeOut == 0 and resp.sessionId == 0
        assert raw.wait_closed(timeout=5.0)
    finally:
        raw.drop()
    # The real owner keeps its session (ZooKeeper drops its connection, see below:
    # kazoo reconnects to the same session, hence the retry).
    assert owner.retry(owner.exists, "/mine").ephemeralOwner == sid
    owner.retry(owner.set, "/mine", b"still here")
    assert owner.client_id[0] == sid

    # kazoo given the wrong password ends up with a brand-new session.
    imposter = clients(client_id=(sid, bad))
    assert wait_until(lambda: imposter.connected and imposter.client_id[0] not in (0, sid))
    assert owner.retry(owner.exists, "/mine").ephemeralOwner == sid


def test_wrong_password_reconnect_leaves_the_owner_alone(server):
    """A stranger presenting a live session's id with a wrong password is refused.

    ZooKeeper 3.8 also drops the owner's connection (it closes the session's
    connection before checking the password), so anyone who reads an
    ephemeralOwner can keep kicking a client; zabby deliberately keeps the
    owner connected (docs/COMPATIBILITY.md). Both keep the session alive.
    """
    owner = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT)
    owner.connect()
    bad = bytes(b ^ 0xFF for b in owner.passwd)
    intruder = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT,
                         session_id=owner.session_id, passwd=bad)
    try:
        resp = intruder.connect()
        assert resp.sessionId == 0 and resp.timeOut == 0
        assert intruder.wait_closed(timeout=5.0)
        closed = owner.wait_closed(timeout=1.0)
        if TARGET == "zookeeper":
            assert closed, "ZooKeeper 3.8 drops the owner's connection"
        else:
            assert not closed, "zabby must not let a wrong password kick the owner off"
        # Either way the session itself survives: the owner can resume it.
        again = RawClient(server.host, server.port, timeout_ms=4000, io_timeout=TIMEOUT,
                          session_id=owner.session_id, passwd=owner.passwd)
        assert again.connect().sessionId == owner.session_id
        again.close()
    finally:
        owner.drop()
        intruder.drop()


def test_session_timeout_is_negotiated_within_bounds(server):
    # tickTime=200: minSessionTimeout 400 ms, maxSessionTimeout 4000 ms.
    for asked, granted in ((100, 400), (1000, 1000), (60000, 4000)):
        raw = RawClient(server.host, server.port, timeout_ms=asked, io_timeout=TIMEOUT)
        try:
            assert raw.connect().timeOut == granted
        finally:
            raw.close()


# --------------------------------------------------------------------- concurrency
def test_concurrent_sequential_creates(zk, clients):
    zk.create("/seq")
    n_clients, per_client = 10, 20
    workers = [clients() for _ in range(n_clients)]
    results: list[list[str]] = [[] for _ in range(n_clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(n_clients, timeout=TIMEOUT)

    def work(i):
        try:
            start.wait()
            for _ in range(per_client):
                results[i].append(workers[i].create("/seq/n-", sequence=True))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    every = [int(p.rsplit("-", 1)[1]) for r in results for p in r]
    assert sorted(every) == list(range(n_clients * per_client))
    for r in results:
        nums = [int(p.rsplit("-", 1)[1]) for p in r]
        assert nums == sorted(nums) and len(set(nums)) == len(nums)
    assert len(zk.get_children("/seq")) == n_clients * per_client


def test_concurrent_async_pipelining_keeps_fifo_order(zk):
    """A session's requests are answered in the order sent."""
    zk.create("/fifo", b"")
    asyncs = []
    for i in range(200):
        asyncs.append(("set", zk.set_async("/fifo", str(i).encode())))
        asyncs.append(("get", zk.get_async("/fifo")))
    for i in range(200):
        _, s = asyncs[2 * i]
        _, g = asyncs[2 * i + 1]
        assert s.get(timeout=TIMEOUT).version == i + 1
        assert g.get(timeout=TIMEOUT)[0] == str(i).encode()


# ------------------------------------------------------------------- maxClientCnxns
def test_max_client_cnxns(tmp_path):
    srv = _server(tmp_path, tickTime=200, maxClientCnxns=3)
    made = []
    try:
        for _ in range(3):
            c = KazooClient(hosts=srv.hosts, timeout=4.0, connection_retry=dict(FAST_RETRY))
            made.append(c)
            c.start(timeout=TIMEOUT)
        for i, c in enumerate(made):
            c.create(f"/c{i}", ephemeral=True)
        # A 4th connection from 127.0.0.1 is closed before it gets a session.
        raw = RawClient(srv.host, srv.port, timeout_ms=4000, io_timeout=5.0)
        with pytest.raises((ConnectionClosed, ConnectionError)):
            raw.connect()
        raw.drop()
        # So is a four-letter word: it is a connection from the same address too.
        try:
            answer = srv.four_letter_word("ruok")
        except OSError:
            answer = ""
        assert answer == ""
        fourth = KazooClient(hosts=srv.hosts, timeout=4.0, connection_retry=dict(FAST_RETRY))
        with pytest.raises(KazooTimeoutError):
            fourth.start(timeout=1.5)
        close_quietly(fourth)
        # The first three still work.
        for i, c in enumerate(made):
            assert sorted(c.get_children("/")) == ["c0", "c1", "c2", "zookeeper"]
            c.set(f"/c{i}", b"ok")
        # Freeing a slot lets a new client in.
        close_quietly(made.pop())
        late = KazooClient(hosts=srv.hosts, timeout=4.0, connection_retry=dict(FAST_RETRY))
        made.append(late)
        late.start(timeout=TIMEOUT)
        assert late.exists("/c0") is not None
    finally:
        for c in made:
            close_quietly(c)
        srv.stop()
