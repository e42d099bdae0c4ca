"""zabby.client.SyncClient: the same API, blocking, on zabby and Apache ZooKeeper 3.8."""

from __future__ import annotations

import queue
import threading

import pytest

from zabby.client import (
    BadVersionError,
    ConnectionState,
    EventType,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    SyncClient,
    ZnodeStat,
)


def test_sync_basics(server, base):
    with SyncClient(server.hosts) as zk:
        assert zk.connected and zk.state == ConnectionState.CONNECTED
        assert zk.create(base, b"v", makepath=True) == base
        data, stat = zk.get(base)
        assert data == b"v" and isinstance(stat, ZnodeStat)
        assert zk.set(base, b"w", version=0).version == 1
        with pytest.raises(BadVersionError):
            zk.set(base, b"x", version=0)
        zk.create(base + "/e", ephemeral=True)
        assert zk.get_children(base) == ["e"]
        assert zk.get_ephemerals(base) == [base + "/e"]
        with pytest.raises(NotEmptyError):
            zk.delete(base)
        with zk.transaction() as t:
            t.create(base + "/t")
            t.check(base, 1)
        t = zk.transaction()
        t.delete(base + "/t")
        t.delete(base + "/none")
        res = t.commit()
        assert isinstance(res[0], RolledBackError) and isinstance(res[1], NoNodeError)
        assert zk.multi_read([("get", base)])[0][0] == b"w"
        assert zk.command("ruok") == "imok"
        assert zk.delete(base, recursive=True)
        assert zk.exists(base) is None
    assert not zk.connected


def test_sync_watch_callback_may_call_the_client(server, base):
    """Callbacks run on a handler thread, not the loop: they may block on the client."""
    with SyncClient(server.hosts) as zk, SyncClient(server.hosts) as other:
        zk.create(base)
        got: queue.Queue = queue.Queue()
        loop_thread = zk._loop_thread

        def watcher(event):
            assert threading.current_thread() is not loop_thread
            data, _ = zk.get(event.path, watch=watcher)  # set it again, from the callback
            got.put((event.type, data))

        zk.get(base, watch=watcher)
        other.set(base, b"1")
        assert got.get(timeout=5) == (EventType.CHANGED, b"1")
        other.set(base, b"2")
        assert got.get(timeout=5) == (EventType.CHANGED, b"2")
        states: queue.Queue = queue.Queue()
        zk.add_listener(states.put)
        zk.client._conn.abort()  # a dropped connection: SUSPENDED, then RECONNECTED
        assert states.get(timeout=5) == ConnectionState.SUSPENDED
        assert states.get(timeout=10) == ConnectionState.RECONNECTED
        other.set(base, b"3")
        assert got.get(timeout=5) == (EventType.CHANGED, b"3")


def test_sync_persistent_watch(server, base):
    with SyncClient(server.hosts) as zk, SyncClient(server.hosts) as other:
        zk.create(base)
        events = zk.add_watch(base, mode="persistent_recursive")
        calls: queue.Queue = queue.Queue()
        zk.add_watch(base + "/x", calls.put)  # persistent, with a callback
        other.create(base + "/x")
        other.set(base + "/x", b"1")
        assert [(e.type, e.path) for e in (events.next(5), events.next(5))] == [
            (EventType.CREATED, base + "/x"), (EventType.CHANGED, base + "/x")]
        assert [calls.get(timeout=5).type for _ in range(2)] == [
            EventType.CREATED, EventType.CHANGED]
        assert zk.check_watches(base)
        events.remove()
        assert [e.type for e in events] == [EventType.PERSISTENT_WATCH_REMOVED]
        zk.remove_watches(base + "/x", calls.put)
        assert not zk.check_watches(base)


def test_sync_not_started():
    zk = SyncClient("127.0.0.1:1")
    with pytest.raises(Exception, match="not started"):
        zk.get("/")
    zk.close()


def test_sync_flush_callbacks(server, base):
    """After a request returns, flush_callbacks() has run every callback of an event
    that came before its reply (here a slow one, on our own change)."""
    import time

    with SyncClient(server.hosts) as zk:
        zk.create(base)
        seen: list = []
        states: list = []

        def slow(event):
            time.sleep(0.3)
            seen.append(event.type)

        zk.add_listener(states.append)
        zk.get(base, watch=slow)
        zk.set(base, b"1")  # the CHANGED event arrives before this reply
        assert zk.flush_callbacks(5) is True
        assert seen == [EventType.CHANGED]
        zk.loop.call_soon_threadsafe(zk.client._conn.abort)
        zk.exists(base)  # served on the next connection: RECONNECTED came first
        assert zk.flush_callbacks(5) is True
        assert states[-2:] == [ConnectionState.SUSPENDED, ConnectionState.RECONNECTED]

        def calls_flush(event):  # from a callback it does not wait for itself
            seen.append(zk.flush_callbacks(5))

        zk.get(base, watch=calls_flush)
        zk.set(base, b"2")
        assert zk.flush_callbacks(5) and seen[-1] is True
        zk.delete(base)
