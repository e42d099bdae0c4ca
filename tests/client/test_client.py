"""zabby.client.Client against zabby and Apache ZooKeeper 3.8: the same tests on both."""

from __future__ import annotations

import asyncio
import socket

import pytest

from zabby.client import (
    ACL,
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    Client,
    ConnectionLoss,
    ConnectionState,
    EventType,
    Id,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NoWatcherError,
    ReconfigDisabledError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
    UnimplementedError,
    ZnodeStat,
    ZookeeperError,
    make_digest_acl,
)
from zabby.wire import (
    ConnectRequest,
    Empty,
    FrameDecoder,
    Op,
    decode_connect_response,
    encode_connect_request,
    encode_request,
)

from .conftest import arun


async def _client(server, suffix: str = "", **kw) -> Client:
    zk = Client(server.hosts + suffix, timeout=kw.pop("timeout", 10.0), **kw)
    await zk.start(timeout=15)
    return zk


def test_crud_and_stat(server, base):
    async def body():
        async with Client(server.hosts) as zk:
            assert zk.connected and zk.state == ConnectionState.CONNECTED
            assert await zk.create(base, b"v0") == base
            data, stat = await zk.get(base)
            assert data == b"v0" and isinstance(stat, ZnodeStat)
            assert stat.version == 0 and stat.dataLength == 2 and stat.data_length == 2
            assert stat.owner_session_id is None and stat.created > 1e9
            st = await zk.set(base, b"v1", version=0)
            assert st.version == 1 and st.mzxid > st.czxid
            assert st.last_modified_transaction_id == st.mzxid
            assert (await zk.exists(base)).version == 1
            assert await zk.exists(base + "/nope") is None
            path, st = await zk.create(base + "/c", b"", include_data=True)
            assert path == base + "/c" and st.version == 0
            assert await zk.get_children(base) == ["c"]
            kids, pst = await zk.get_children(base, include_data=True)
            assert kids == ["c"] and pst.numChildren == 1 and pst.children_count == 1
            assert await zk.get_all_children_number(base) == 1
            await zk.create(base + "/a/b/c", b"deep", makepath=True)
            assert (await zk.get(base + "/a/b/c"))[0] == b"deep"
            await zk.ensure_path(base + "/x/y")
            assert await zk.exists(base + "/x/y") is not None
            assert await zk.sync(base) == base
            assert await zk.delete(base, recursive=True)
            assert await zk.exists(base) is None
    arun(body())


def test_create_modes(server, base):
    async def body():
        async with Client(server.hosts) as zk:
            await zk.create(base)
            s1 = await zk.create(base + "/s-", sequence=True)
            s2 = await zk.create(base + "/s-", sequence=True)
            assert s1 == base + "/s-0000000000" and s2 == base + "/s-0000000001"
            e = await zk.create(base + "/e", ephemeral=True)
            st = await zk.exists(e)
            assert st.ephemeralOwner == zk.session_id == st.owner_session_id
            assert await zk.get_ephemerals(base) == [e]
            c, cst = await zk.create(base + "/cont", container=True, include_data=True)
            assert c == base + "/cont" and cst.ephemeralOwner == 0
            t = await zk.create(base + "/ttl", b"t", ttl=60000)
            assert t == base + "/ttl"
            ts = await zk.create(base + "/ttl-", ttl=60000, sequence=True)
            assert ts.startswith(base + "/ttl-00")
            with pytest.raises(TypeError):
                await zk.create(base + "/bad", ephemeral=True, ttl=1000)
            with pytest.raises(ValueError):
                await zk.create("relative")
    arun(body())


def test_every_error(server, base):
    async def body():
        async with Client(server.hosts) as zk:
            await zk.create(base)
            with pytest.raises(NoNodeError) as ei:
                await zk.get(base + "/none")
            assert ei.value.code == -101 and ei.value.path == base + "/none"
            with pytest.raises(NodeExistsError):
                await zk.create(base)
            with pytest.raises(BadVersionError):
                await zk.set(base, b"x", version=7)
            await zk.create(base + "/kid")
            with pytest.raises(NotEmptyError):
                await zk.delete(base)
            await zk.create(base + "/eph", ephemeral=True)
            with pytest.raises(NoChildrenForEphemeralsError):
                await zk.create(base + "/eph/x")
            with pytest.raises(InvalidACLError):
                await zk.create(base + "/acl", acl=[ACL(31, Id("digest", "no-colon"))])
            with pytest.raises(BadArgumentsError):
                await zk.create(base + "/ttl", ttl=1 << 50)
            with pytest.raises(NoWatcherError):
                await zk.remove_watches(base)
            with pytest.raises(NoNodeError):
                await zk.create(base + "/no/parent")
            with pytest.raises(ZookeeperError) as ei:  # standalone: reconfig is refused
                await zk.reconfig(None, None, "server.9=127.0.0.1:1:2;3")
            assert type(ei.value) in (ReconfigDisabledError, UnimplementedError), ei.value
            # a request in flight when the connection drops: ConnectionLoss
            inflight = asyncio.ensure_future(zk.get(base))
            await asyncio.sleep(0)
            zk._conn.abort()
            with pytest.raises(ConnectionLoss):
                await inflight
            assert (await zk.retry(zk.get, base))[1].version == 0
            assert isinstance(NoNodeError(), ZookeeperError)
    arun(body())


def test_acl_and_auth(server, base):
    async def body():
        async with Client(server.hosts) as owner, Client(server.hosts) as other:
            acl = [make_digest_acl("alice", "secret", all=True)]
            await owner.create(base, b"private", acl=acl)
            with pytest.raises(NoAuthError):
                await other.get(base)
            with pytest.raises(NoAuthError):  # reading an ACL needs READ or ADMIN
                await other.get_acls(base)
            await other.add_auth("digest", "alice:wrong")
            with pytest.raises(NoAuthError):
                await other.get(base)
            await other.add_auth("digest", "alice:secret")
            assert (await other.get(base))[0] == b"private"
            acls, st = await other.get_acls(base)
            assert acls[0].id.scheme == "digest" and acls[0].perms == 31 and st.aversion == 0
            assert ("digest", "alice") in await other.whoami()
            # the auth is sent again on a new connection
            other._conn.abort()
            assert (await other.retry(other.get, base))[0] == b"private"
            st = await other.set_acls(base, [ACL(31, Id("world", "anyone"))], version=0)
            assert st.aversion == 1
            assert (await owner.get(base))[0] == b"private"
            with pytest.raises(AuthFailedError):
                await owner.add_auth("no-such-scheme", "x")
    arun(body())


def test_transaction(server, base):
    async def body():
        async with Client(server.hosts) as zk:
            await zk.create(base, b"0")
            t = zk.transaction()
            t.create(base + "/a", b"a")
            t.create(base + "/s-", sequence=True)
            t.set_data(base, b"1", version=0)
            t.check(base + "/a", 0)
            t.delete(base + "/a")
            res = await t.commit()
            assert res[0] == base + "/a" and res[1] == base + "/s-0000000001"
            assert isinstance(res[2], ZnodeStat) and res[2].version == 1
            assert res[3] is True and res[4] is True
            t = zk.transaction()
            t.create(base + "/b")
            t.delete(base + "/missing")
            t.set_data(base, b"2")
            res = await t.commit()
            assert isinstance(res[0], RolledBackError)
            assert isinstance(res[1], NoNodeError)
            assert isinstance(res[2], RuntimeInconsistency)
            assert await zk.exists(base + "/b") is None
            async with zk.transaction() as t:
                t.create(base + "/c")
            assert await zk.exists(base + "/c") is not None
            reads = await zk.multi_read([("get", base), ("get_children", base),
                                         ("get", base + "/none")])
            assert reads[0][0] == b"1" and reads[0][1].version == 1
            assert sorted(reads[1]) == ["c", "s-0000000001"]
            assert isinstance(reads[2], NoNodeError)
    arun(body())


def test_one_shot_watches(server, base):
    async def body():
        async with Client(server.hosts) as zk, Client(server.hosts) as other:
            await zk.create(base)
            seen = []
            data_w, exist_w, child_w = zk.watcher(), zk.watcher(), zk.watcher()
            await zk.get(base, watch=data_w)
            await zk.get(base, watch=seen.append)
            assert await zk.exists(base + "/n", watch=exist_w) is None
            await zk.get_children(base, watch=child_w)
            assert await zk.check_watches(base, "data")
            assert await zk.check_watches(base, "children")
            await other.create(base + "/n")
            ev = await exist_w.next(5)
            assert (ev.type, ev.path) == (EventType.CREATED, base + "/n")
            ev = await child_w.next(5)
            assert (ev.type, ev.path) == (EventType.CHILD, base)
            await other.set(base, b"x")
            ev = await data_w.next(5)
            assert (ev.type, ev.path) == (EventType.CHANGED, base)
            assert seen == [ev]
            await other.set(base, b"y")  # one-shot: nothing more
            await zk.sync(base)
            await asyncio.sleep(0.05)
            assert data_w.pending() == [] and len(seen) == 1
            assert not await zk.check_watches(base, "data")
            # a watch removed: the watcher is told
            w2 = zk.watcher()
            await zk.get(base, watch=w2)
            await zk.remove_watches(base, w2)
            assert (await w2.next(5)).type == EventType.DATA_WATCH_REMOVED
            assert not await zk.check_watches(base, "data")
    arun(body())


def test_watch_before_reply(server, base):
    """A watcher sees the event before the reply of a request that reflects it."""
    async def body():
        async with Client(server.hosts) as zk, Client(server.hosts) as other:
            await zk.create(base)
            for i in range(20):
                w = zk.watcher()
                await zk.get(base, watch=w)
                await other.set(base, str(i).encode())
                data, _ = await zk.get(base)  # reflects the set: the event came first
                assert data == str(i).encode()
                assert [e.type for e in w.pending()] == [EventType.CHANGED]
    arun(body())


def test_persistent_watches(server, base):
    async def body():
        async with Client(server.hosts) as zk, Client(server.hosts) as other:
            # (the server keeps one mode per path and session: the two watches are on
            # different paths)
            r = base + "/r"
            await zk.create(r, makepath=True)
            calls = []
            await zk.add_watch(base, calls.append, mode="persistent")
            rec = zk.add_watch(r, mode="persistent_recursive")
            await rec
            await other.create(r + "/a")
            await other.create(r + "/a/b")
            await other.set(r + "/a/b", b"1")
            await other.set(r, b"2")
            await other.delete(r + "/a/b")
            await other.create(base + "/x")
            await other.set(base, b"3")
            got = [await rec.next(5) for _ in range(5)]
            assert [(e.type, e.path) for e in got] == [
                (EventType.CREATED, r + "/a"), (EventType.CREATED, r + "/a/b"),
                (EventType.CHANGED, r + "/a/b"), (EventType.CHANGED, r),
                (EventType.DELETED, r + "/a/b")]
            await zk.sync(base)
            assert [(e.type, e.path) for e in calls] == [
                (EventType.CHILD, base), (EventType.CHANGED, base)]
            assert rec.stream.pending() == []  # no CHILD event for a recursive watch
            assert zk.watched_paths() == {"persistent": [base], "recursive": [r]}
            await rec.remove()  # the iteration tells the removal, then ends
            assert (await rec.next(5)).type == EventType.PERSISTENT_WATCH_REMOVED
            with pytest.raises(StopAsyncIteration):
                await rec.__anext__()
            await zk.remove_watches(base, calls.append)
            assert calls[-1].type == EventType.PERSISTENT_WATCH_REMOVED
            assert zk.watched_paths() == {}
            assert not await zk.check_watches(base)
    arun(body())


def test_pipelining_fifo(server, base):
    async def body():
        async with Client(server.hosts) as zk:
            await zk.create(base)
            paths = await asyncio.gather(*(
                zk.create(base + "/n-", str(i).encode(), sequence=True) for i in range(300)))
            assert paths == sorted(paths) and len(set(paths)) == 300
            datas = await asyncio.gather(*(zk.get(p) for p in paths))
            assert [d for d, _ in datas] == [str(i).encode() for i in range(300)]
    arun(body())


def test_chroot(server, base):
    async def body():
        async with Client(server.hosts) as root, Client(server.hosts + base + "/app") as zk:
            assert zk.chroot == base + "/app"
            await zk.ensure_path("/")
            assert await root.exists(base + "/app") is not None
            assert await zk.create("/x", b"1") == "/x"
            assert await zk.create("/s-", sequence=True) == "/s-0000000001"
            assert (await root.get(base + "/app/x"))[0] == b"1"
            assert sorted(await zk.get_children("/")) == ["s-0000000001", "x"]
            e = await zk.create("/e", ephemeral=True)
            assert await zk.get_ephemerals() == [e]
            assert await zk.sync("/x") == "/x"
            w = zk.watcher()
            await zk.get("/x", watch=w)
            await root.set(base + "/app/x", b"2")
            assert (await w.next(5)).path == "/x"
            t = zk.transaction()
            t.create("/t")
            assert await t.commit() == ["/t"]
            rec = zk.add_watch("/", mode="persistent_recursive")
            await rec
            await root.create(base + "/app/y")
            assert (await rec.next(5)).path == "/y"
    arun(body())


def test_four_letter_words_and_version(server):
    async def body():
        async with Client(server.hosts) as zk:
            assert await zk.command(b"ruok") == "imok"
            assert "Mode:" in await zk.command("srvr")
            v = await zk.server_version()
            assert len(v) >= 2 and v[0] == 3
            assert ("ip", "127.0.0.1") in await zk.whoami()
    arun(body())


def test_states_and_reconnect_same_server(server, base):
    async def body():
        states = []
        zk = Client(server.hosts)
        zk.add_listener(states.append)
        await zk.start()
        stream = zk.states()
        nxt = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        sid = zk.session_id
        w = zk.watcher()
        await zk.create(base)
        await zk.get(base, watch=w)
        zk._conn.abort()  # the connection drops: the session survives
        assert await asyncio.wait_for(nxt, 5) == ConnectionState.SUSPENDED
        assert await asyncio.wait_for(stream.__anext__(), 10) == ConnectionState.RECONNECTED
        assert zk.session_id == sid
        async with Client(server.hosts) as other:
            await other.set(base, b"after")
        assert (await w.next(5)).type == EventType.CHANGED  # the watch was set again
        await zk.stop()
        assert states == [ConnectionState.CONNECTED, ConnectionState.SUSPENDED,
                          ConnectionState.RECONNECTED, ConnectionState.LOST]
        with pytest.raises(SessionExpiredError):  # ConnectionClosedError is one
            await zk.get(base)
    arun(body())


def _close_session(host: str, port: int, sid: int, passwd: bytes) -> None:
    """Attach to a session from a raw socket and close it (as another client would)."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(encode_connect_request(ConnectRequest(0, 0, 10000, sid, passwd)))
        dec = FrameDecoder()
        frames: list[bytes] = []
        while not frames:
            data = s.recv(65536)
            assert data, "closed during the handshake"
            frames += dec.feed(data)
        resp, _ = decode_connect_response(frames.pop(0))
        assert resp.timeOut > 0
        s.sendall(encode_request(1, Op.CLOSE_SESSION, Empty()))
        while not frames:
            data = s.recv(65536)
            if not data:
                break
            frames += dec.feed(data)


def test_session_expiry(server, base):
    async def body():
        async with Client(server.hosts) as zk, Client(server.hosts) as other:
            await zk.create(base)
            await zk.create(base + "/eph", ephemeral=True)
            rec = zk.add_watch(base, mode="persistent_recursive")
            await rec
            stream = zk.states()
            first = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0)
            old = zk.session_id
            host, port = zk.current_host
            # while the session is closed under it the client may not take it back: keep
            # it away from the server until then (the server drops its connection)
            from zabby.testing import free_port
            order, zk._order = zk._order, [("127.0.0.1", free_port())]
            await asyncio.to_thread(_close_session, host, port, old, zk.client_id[1])
            seen = [await asyncio.wait_for(first, 10)]
            assert seen == [ConnectionState.SUSPENDED]
            waiting = asyncio.ensure_future(zk.exists(base))  # waits for a connection
            await asyncio.sleep(0.05)
            zk._order = order
            with pytest.raises(SessionExpiredError):  # not a hang, not a new session's reply
                await asyncio.wait_for(waiting, 10)
            while seen[-1] != ConnectionState.CONNECTED:
                seen.append(await asyncio.wait_for(stream.__anext__(), 10))
            assert ConnectionState.LOST in seen
            assert zk.session_id not in (0, old)
            with pytest.raises(SessionExpiredError):  # the watch is gone with the session
                await rec.next(5)
            assert zk.watched_paths() == {}
            assert await other.exists(base + "/eph") is None
            assert await zk.get_ephemerals(base) == []
            # a session id the server no longer knows: SessionExpiredError, a new session
            stale = Client(server.hosts, client_id=(old, b"\x00" * 16))
            await stale.start()
            assert stale.session_id not in (0, old)
            await stale.stop()
    arun(body())


def test_no_server_is_bounded():
    async def body():
        from zabby.testing import free_port
        zk = Client(f"127.0.0.1:{free_port()}", timeout=2.0)
        with pytest.raises(TimeoutError):
            await zk.start(timeout=1.0)
    arun(body(), timeout=20)


def test_stop_ends_even_when_the_connect_in_flight_loses_its_cancellation(client_zabby):
    # Python 3.11's wait_for drops a cancellation that arrives as the awaited connect
    # completes; the run task then held a healthy connection and stop() waited on it
    # for ever (seen under CPU load: test_acl_and_auth took 60 s, its arun bound)
    async def body():
        zk = Client(client_zabby.hosts)
        await zk.start()
        connect = zk._connect_one
        in_connect = asyncio.Event()

        async def loses_the_cancel(host, port):
            in_connect.set()
            try:
                await asyncio.sleep(0.5)  # stop() cancels us here ...
            except asyncio.CancelledError:
                pass  # ... and the cancel is lost, as in wait_for's race
            return await connect(host, port)

        zk._connect_one = loses_the_cancel
        zk._conn.abort()  # the connection drops: the run task connects again
        await asyncio.wait_for(in_connect.wait(), 5)
        stopping = asyncio.ensure_future(zk.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10)  # (wait() cancels nothing)
        if not done:
            stopping.cancel()
            zk._conn.abort()  # (ends the run task, and stop() with it)
            await asyncio.wait({stopping}, timeout=5)
        assert done, "stop() waited on the connection made after its cancel was lost"
        assert zk.state == ConnectionState.LOST and zk._conn is None
    arun(body(), timeout=30)


def test_stop_keeps_its_callers_cancellation(client_zabby):
    # stop() swallowed every CancelledError while it waited for the run task, its
    # caller's too: a timeout around it returned as if stop() had finished in time
    async def body():
        zk = Client(client_zabby.hosts)
        await zk.start()
        in_connect = asyncio.Event()

        async def loses_one_cancel(host, port):
            in_connect.set()
            try:
                await asyncio.sleep(30)  # stop()'s cancel is lost here ...
            except asyncio.CancelledError:
                pass
            await asyncio.sleep(30)  # ... the timeout's ends the run task
            raise AssertionError("not cancelled")

        zk._connect_one = loses_one_cancel
        zk._conn.abort()
        await asyncio.wait_for(in_connect.wait(), 5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(zk.stop(), 0.5)
        assert zk.state == ConnectionState.LOST and zk._conn is None  # cleaned up anyway
    arun(body(), timeout=30)


def test_set_watches_split_in_batches():
    """Thousands of watches are set again in SetWatches2 frames a server accepts."""
    zk = Client("127.0.0.1:1/root")
    for i in range(3000):
        zk._add_watch("data", f"/some/rather/long/path/to/a/node/number/{i:06d}", print)
    zk._add_watch("recursive", "/r", print)
    batches = zk._set_watches_batches()
    assert len(batches) > 1
    assert sum(len(b.dataWatches) for b in batches) == 3000
    assert [p for b in batches for p in b.persistentRecursiveWatches] == ["/root/r"]
    for b in batches:
        out = bytearray()
        b.encode(out)
        assert len(out) < 140 * 1024


def test_null_data(server, base):
    """A node made with value=None has null data (zkCli's ``create /x``): ``get``
    reads it as b"" unless asked for ``null=None``; empty data stays b""."""
    async def body():
        async with Client(server.hosts) as zk:
            await zk.create(base, None)
            await zk.create(base + "/empty", b"")
            data, stat = await zk.get(base)
            assert data == b"" and stat.dataLength == 0
            assert (await zk.get(base, null=None))[0] is None
            assert (await zk.get(base + "/empty", null=None))[0] == b""
            assert (await zk.get(base, null=b"-"))[0] == b"-"
    arun(body())
    from zabby.client import SyncClient
    with SyncClient(server.hosts) as zk:
        assert zk.get(base, null=None)[0] is None and zk.get(base)[0] == b""
        zk.delete(base, recursive=True)


def test_connect_wait(server, base):
    """``connect_wait``: a request made while there is no connection fails with
    ConnectionLoss after that long, not after the session timeout; once a server is
    back the same session serves requests again."""
    async def body():
        from zabby.testing import free_port
        zk = Client(server.hosts, timeout=30.0, connect_wait=0.5)
        await zk.start()
        try:
            sid = zk.session_id
            await zk.create(base)
            stream = zk.states()
            order, zk._order = zk._order, [("127.0.0.1", free_port())]
            zk._conn.abort()
            assert await stream.next(5) == ConnectionState.SUSPENDED
            with pytest.raises(ConnectionLoss):  # bounded well below the 30 s session
                await asyncio.wait_for(zk.exists(base), 10)
            zk._order = order
            assert await stream.next(10) == ConnectionState.RECONNECTED
            assert zk.session_id == sid and await zk.exists(base) is not None
            await zk.delete(base)
        finally:
            await zk.stop()
    arun(body())
