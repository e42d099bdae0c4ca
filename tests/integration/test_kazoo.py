"""kazoo against a real zabby server process (the `zabby_client` fixtures)."""

from __future__ import annotations

import threading

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import EventType

from zabby.testing import ServerStartError, ZabbyServer


def test_crud(zabby_client):
    c = zabby_client
    assert c.create("/a", b"1") == "/a"
    data, stat = c.get("/a")
    assert data == b"1" and stat.version == 0 and stat.dataLength == 1
    st = c.set("/a", b"22", version=0)
    assert st.version == 1 and st.mzxid > st.czxid
    with pytest.raises(BadVersionError):
        c.set("/a", b"x", version=0)
    c.create("/a/b")
    with pytest.raises(NotEmptyError):
        c.delete("/a")
    with pytest.raises(NodeExistsError):
        c.create("/a")
    assert c.get_children("/a") == ["b"]
    c.delete("/a", recursive=True)
    assert c.exists("/a") is None
    with pytest.raises(NoNodeError):
        c.get("/a")


def test_sequence_and_makepath(zabby_client):
    c = zabby_client
    p1 = c.create("/q/item-", b"", sequence=True, makepath=True)
    p2 = c.create("/q/item-", b"", sequence=True)
    assert p1 == "/q/item-0000000000" and p2 == "/q/item-0000000001"


def test_fixture_cleans_the_tree(zabby_client):
    assert sorted(zabby_client.get_children("/")) == ["zookeeper"]
    zabby_client.create("/left-over")


def test_watches_fire_once_in_order(zabby_client, zabby_client_factory):
    c = zabby_client
    other = zabby_client_factory()
    events = []
    done = threading.Event()

    def watcher(ev):
        events.append((ev.type, ev.path))
        done.set()

    c.create("/w", b"")
    c.get("/w", watch=watcher)
    other.set("/w", b"1")
    assert done.wait(10)
    other.set("/w", b"2")
    c.sync("/w")
    assert events == [(EventType.CHANGED, "/w")]


def test_data_and_children_watch_recipes(zabby_client, zabby_client_factory):
    c = zabby_client
    other = zabby_client_factory()
    c.ensure_path("/dw")
    seen_data, seen_children = [], []
    got = threading.Event()

    @c.DataWatch("/dw")
    def _d(data, stat):
        seen_data.append(data)
        if data == b"v2":
            got.set()

    @c.ChildrenWatch("/dw")
    def _c(children):
        seen_children.append(sorted(children))

    other.set("/dw", b"v1")
    other.create("/dw/x")
    other.set("/dw", b"v2")
    assert got.wait(10)
    c.sync("/dw")
    assert seen_data[0] == b"" and seen_data[-1] == b"v2"
    assert ["x"] in seen_children


def test_ephemerals_go_with_their_session(zabby_client, zabby_client_factory):
    other = zabby_client_factory()
    other.create("/eph", b"", ephemeral=True)
    assert zabby_client.exists("/eph").ephemeralOwner == other.client_id[0]
    gone = threading.Event()
    zabby_client.exists("/eph", watch=lambda ev: gone.set())
    other.stop()
    assert gone.wait(10)
    assert zabby_client.exists("/eph") is None


def test_transaction(zabby_client):
    c = zabby_client
    t = c.transaction()
    t.create("/t", b"x")
    t.create("/t/1")
    t.set_data("/t", b"y")
    t.check("/t", 1)
    results = t.commit()
    assert results[:2] == ["/t", "/t/1"]
    t = c.transaction()
    t.delete("/t/1")
    t.check("/t", 7)
    results = t.commit()
    assert isinstance(results[1], BadVersionError)
    assert c.exists("/t/1") is not None


def test_lock_and_counter_recipes(zabby_client, zabby_client_factory):
    c = zabby_client
    other = zabby_client_factory()
    lock = c.Lock("/lock", "me")
    assert lock.acquire(timeout=10)
    other_lock = other.Lock("/lock", "you")
    assert not other_lock.acquire(blocking=False)
    lock.release()
    assert other_lock.acquire(timeout=10)
    other_lock.release()
    counter = c.Counter("/counter")
    counter += 5
    counter -= 2
    assert counter.value == 3


def test_acl_and_auth(zabby_client, zabby_client_factory):
    from kazoo.security import make_digest_acl

    c = zabby_client
    acl = make_digest_acl("alice", "secret", all=True)
    c.add_auth("digest", "alice:secret")
    c.create("/secret", b"s", acl=[acl])
    other = zabby_client_factory()
    from kazoo.exceptions import NoAuthError

    with pytest.raises(NoAuthError):
        other.get("/secret")
    other.add_auth("digest", "alice:secret")
    assert other.get("/secret")[0] == b"s"
    c.set_acls("/secret", [make_digest_acl("alice", "secret", all=True)])
    c.delete("/secret")


def test_server_launcher(tmp_path):
    with ZabbyServer(tmp_path / "s", tickTime=500) as srv:
        assert srv.ruok()
        assert srv.hosts == f"127.0.0.1:{srv.port}"
        assert srv.pid and srv.proc.poll() is None
        cfg = (tmp_path / "s" / "zoo.cfg").read_text()
        assert "tickTime=500" in cfg and "4lw.commands.whitelist=*" in cfg
    assert srv.proc.poll() is not None


def test_server_launcher_reports_a_failed_start(tmp_path):
    with pytest.raises(ServerStartError) as info:
        ZabbyServer(tmp_path / "bad", tickTime="not-a-number")
    assert "server.log" in str(info.value)
