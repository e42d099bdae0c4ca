"""Hypothesis, the wider mix: random sequences with ACLs, persistent and recursive
watches, TTL nodes and multi, on both servers through zabby's own SyncClient (kazoo
2.11 has no addWatch and no TTL creates), compared.

Three sessions per server: an actor (writes, set/getACL, some watched reads), a
watcher (watched reads, persistent watches), and an admin with the super digest, who
clears each example's subtree whatever its ACLs say. After each op every session
syncs and its callbacks run, so the events the op caused are recorded with it.

TTLs are long (a minute): whether the expiry sweep has run is timing, not behaviour.
HYPOTHESIS_MAX_EXAMPLES bounds the examples (default 25: CI time).
"""

from __future__ import annotations

import itertools
import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zabby.client import KazooException, SyncClient
from zabby.testing.differential import Normaliser, digest_acl
from zabby.wire import ACL, Id

from .conftest import SUPER_PASSWORD, SUPER_USER
from .test_random_ops import EXAMPLES, _norm, assert_agree, side_pair

pytestmark = pytest.mark.differential

MAX_EXAMPLES = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "25"))
REL_PATHS = ["/a", "/a/b", "/a/b/c", "/d"]
ANYONE = Id("world", "anyone")
ACLS = {
    "open": [ACL(31, ANYONE)],
    "read": [ACL(1, ANYONE)],
    "no-delete": [ACL(31 & ~8, ANYONE)],
    "no-create": [ACL(31 & ~4, ANYONE)],
    "write-only": [ACL(2, ANYONE)],
    "other-user": [digest_acl("someone", "pw")],
}
TTL_MS = 60_000
_counter = itertools.count()


class Side:
    """One server's three sessions."""

    def __init__(self, server) -> None:
        self.actor = self._client(server)
        self.watcher = self._client(server)
        self.admin = self._client(server, auth_data=[("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")])
        self.cleaner = self.admin
        self.lock = threading.Lock()
        self.events: list[str] = []

    @staticmethod
    def _client(server, **kw) -> SyncClient:
        c = SyncClient(server.hosts, timeout=10.0, **kw)
        c.start(timeout=15)
        return c

    def close(self) -> None:
        for c in (self.actor, self.watcher, self.admin):
            c.stop()
            c.close()

    def watch_fn(self, who: str, kind: str):
        def fn(event) -> None:
            with self.lock:
                self.events.append(f"{who}/{kind}:{event.type}:{event.path}")

        return fn

    def drain(self, base: str) -> list[str]:
        for c in (self.actor, self.watcher):
            c.sync(base)  # notifications queued before the sync reply are now read
            assert c.flush_callbacks(10), "callbacks did not run"
        with self.lock:
            evs, self.events = self.events, []
        # order within a session is the contract; across sessions it is not
        return sorted(evs, key=lambda e: e.split("/", 1)[0])


@pytest.fixture(scope="module")
def sides(diff_pair):
    yield from side_pair(diff_pair, Side, "/hypx")


paths = st.sampled_from(REL_PATHS)
datas = st.sampled_from([b"", b"x", b"\x00\xff"])
versions = st.sampled_from([-1, 0, 1])
acls = st.sampled_from(sorted(ACLS))
who = st.sampled_from(["none", "actor", "watcher"])
create = st.tuples(st.just("create"), paths, datas, acls,
                   st.sampled_from(["persistent", "ephemeral", "sequential", "ttl"]))
ops = st.one_of(
    create,
    st.tuples(st.just("delete"), paths, versions),
    st.tuples(st.just("set"), paths, datas, versions),
    st.tuples(st.just("get"), paths, who),
    st.tuples(st.just("children"), paths, who),
    st.tuples(st.just("set_acls"), paths, acls, versions),
    st.tuples(st.just("get_acls"), paths),
    st.tuples(st.just("add_watch"), st.sampled_from(["", *REL_PATHS]),
              st.sampled_from(["actor", "watcher"]),
              st.sampled_from(["persistent", "persistent_recursive"])),
    st.tuples(st.just("remove_watches"), st.sampled_from(["", *REL_PATHS]),
              st.sampled_from(["actor", "watcher"]), st.sampled_from(["any", "data"])),
    st.tuples(st.just("multi"), st.lists(st.one_of(
        create,
        st.tuples(st.just("delete"), paths, versions),
        st.tuples(st.just("set"), paths, datas, versions),
        st.tuples(st.just("check"), paths, versions),
    ), min_size=1, max_size=3)),
)


def _create_kw(acl: str, mode: str) -> dict:
    return {"acl": ACLS[acl], "ephemeral": mode == "ephemeral",
            "sequence": mode == "sequential", "ttl": TTL_MS if mode == "ttl" else 0}


def _one(side: Side, base: str, op) -> object:
    kind = op[0]
    a = side.actor
    if kind == "create":
        _, p, data, acl, mode = op
        return a.create(base + p, data, include_data=True, **_create_kw(acl, mode))
    if kind == "delete":
        return a.delete(base + op[1], version=op[2])
    if kind == "set":
        return a.set(base + op[1], op[2], version=op[3])
    if kind in ("get", "children"):
        client = side.watcher if op[2] == "watcher" else a
        watch = None if op[2] == "none" else side.watch_fn(op[2], "once")
        if kind == "get":
            return client.get(base + op[1], watch=watch)
        return sorted(client.get_children(base + op[1], watch=watch))
    if kind == "set_acls":
        return a.set_acls(base + op[1], ACLS[op[2]], version=op[3])
    if kind == "get_acls":
        return a.get_acls(base + op[1])
    if kind == "add_watch":
        _, p, w, mode = op
        client = side.watcher if w == "watcher" else a
        return client.add_watch(base + p, side.watch_fn(w, mode), mode)
    if kind == "remove_watches":
        _, p, w, wtype = op
        client = side.watcher if w == "watcher" else a
        return client.remove_watches(base + p, watcher_type=wtype)
    t = a.transaction()  # multi
    for sub in op[1]:
        if sub[0] == "create":
            _, p, data, acl, mode = sub
            t.create(base + p, data, **_create_kw(acl, mode))
        elif sub[0] == "delete":
            t.delete(base + sub[1], version=sub[2])
        elif sub[0] == "set":
            t.set_data(base + sub[1], sub[2], version=sub[3])
        else:
            t.check(base + sub[1], sub[2])
    return t.commit()


def run_ops(side: Side, base: str, seq) -> list[str]:
    n = Normaliser()
    for name in ("actor", "watcher", "admin"):
        n.sessions[getattr(side, name).client_id[0]] = "@" + name
    side.admin.create(base)
    side.drain(base)
    lines = []
    for i, op in enumerate(seq):
        try:
            out = _norm(n, _one(side, base, op))
        except KazooException as e:
            out = f"raised {type(e).__name__}"
        lines.append(f"#{i} {op!r} -> {out!r}")
        lines.extend(f"   event {ev}" for ev in side.drain(base))
    for c in (side.actor, side.watcher):  # persistent watches end with the example
        for p in ["", *REL_PATHS]:
            try:
                c.remove_watches(base + p, watcher_type="any", local=True)
            except KazooException:
                pass
    side.admin.delete(base, recursive=True)
    side.drain("/hypx")
    return lines


@EXAMPLES
@given(seq=st.lists(ops, min_size=1, max_size=12))
def test_random_ops_with_acls_persistent_watches_and_ttls_agree(sides, seq):
    assert_agree(*sides, run_ops, f"/hypx/e{next(_counter)}", seq)
