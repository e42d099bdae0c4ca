"""Hypothesis: random operation sequences through kazoo, on both servers, compared.

Two kazoo sessions per server: an actor (writes, some watched reads) and a watcher
(watched reads). Every example works in a fresh subtree. After each op both
sessions are synced and their kazoo callback queues drained, so every watch event
the op caused is recorded with it, in arrival order.

HYPOTHESIS_MAX_EXAMPLES bounds the examples (default 25: CI time).
"""

from __future__ import annotations

import itertools
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zabby.testing.differential import Normaliser
from zabby.testing.pytest_plugin import kazoo_client
from zabby.wire import Stat

pytestmark = pytest.mark.differential

MAX_EXAMPLES = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "25"))
REL_PATHS = ["/a", "/a/b", "/a/b/c", "/d", "/a/e"]
_counter = itertools.count()


class Side:
    """One server's pair of kazoo sessions."""

    def __init__(self, server) -> None:
        self.actor = kazoo_client(server.hosts)
        self.watcher = kazoo_client(server.hosts)
        self.cleaner = self.actor
        self.lock = threading.Lock()
        self.events: list[str] = []

    def close(self) -> None:
        for c in (self.actor, self.watcher):
            c.stop()
            c.close()

    def watch_fn(self, who: str):
        def fn(event) -> None:
            with self.lock:
                self.events.append(f"{who}:{event.type}:{event.state}:{event.path}")

        return fn

    def drain(self, base: str) -> list[str]:
        for c in (self.actor, self.watcher):
            c.sync(base)  # notifications queued before the sync reply are now read
            done = threading.Event()
            c.handler.callback_queue.put(done.set)  # FIFO behind watch callbacks
            assert done.wait(10), "kazoo callback queue did not drain"
        with self.lock:
            evs, self.events = self.events, []
        # Order within a session is the contract; across two sessions it is not.
        return sorted(evs, key=lambda e: e.split(":", 1)[0])


def side_pair(diff_pair, make, root: str):
    """A module fixture's body: one side per server (``make(server)``, whose
    ``cleaner`` client may delete anything), each with ``root`` made; closed after."""
    a, b = (make(srv) for srv in diff_pair)
    for s in (a, b):
        s.cleaner.ensure_path(root)
    try:
        yield a, b
    finally:
        for s in (a, b):
            try:
                s.cleaner.delete(root, recursive=True)
            except Exception:  # noqa: BLE001 - best effort
                pass
            s.close()


def assert_agree(ref: Side, cand: Side, run, base: str, seq) -> None:
    """Run `seq` on both sides under `base`; fail with the diff when they disagree."""
    a = run(ref, base, seq)
    b = run(cand, base, seq)
    if a != b:
        import difflib

        diff = "\n".join(difflib.unified_diff(a, b, "zookeeper", "candidate", lineterm=""))
        pytest.fail(f"servers disagree on a random op sequence:\n{diff}", pytrace=False)


# the examples' settings (the servers are module fixtures, kept across examples)
EXAMPLES = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def sides(diff_pair):
    yield from side_pair(diff_pair, Side, "/hyp")


paths = st.sampled_from(REL_PATHS)
datas = st.sampled_from([b"", b"x", b"hello", b"\x00\xff"])
versions = st.sampled_from([-1, 0, 1, 2])
ops = st.one_of(
    st.tuples(st.just("create"), paths, datas, st.booleans(), st.booleans()),
    st.tuples(st.just("delete"), paths, versions),
    st.tuples(st.just("set"), paths, datas, versions),
    st.tuples(st.just("get"), paths, st.sampled_from(["none", "actor", "watcher"])),
    st.tuples(st.just("children"), paths, st.sampled_from(["none", "actor", "watcher"])),
    st.tuples(st.just("exists"), paths, st.sampled_from(["none", "actor", "watcher"])),
    st.tuples(
        st.just("multi"),
        st.lists(
            st.one_of(
                st.tuples(st.just("create"), paths, datas, st.booleans(), st.booleans()),
                st.tuples(st.just("delete"), paths, versions),
                st.tuples(st.just("set"), paths, datas, versions),
                st.tuples(st.just("check"), paths, versions),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)


def _norm(n: Normaliser, v):
    if hasattr(v, "czxid") and hasattr(v, "numChildren"):  # kazoo ZnodeStat
        return n.stat(Stat(*[getattr(v, f) for f, _ in Stat.FIELDS]))
    if hasattr(v, "perms") and hasattr(v, "id"):  # an ACL (kazoo's or zabby's)
        return f"{v.perms}:{v.id.scheme}:{v.id.id}"
    if isinstance(v, Exception):
        return type(v).__name__
    if isinstance(v, tuple | list):
        return [_norm(n, x) for x in v]
    if isinstance(v, bytes):
        return repr(v)
    return v


def run_ops(side: Side, base: str, seq) -> list[str]:
    from kazoo.exceptions import KazooException

    n = Normaliser()
    n.sessions[side.actor.client_id[0]] = "@actor"
    n.sessions[side.watcher.client_id[0]] = "@watcher"
    side.actor.create(base)
    side.drain(base)
    lines = []
    for i, op in enumerate(seq):
        kind = op[0]
        try:
            if kind == "create":
                _, p, data, eph, seqf = op
                res = side.actor.create(base + p, data, ephemeral=eph, sequence=seqf, include_data=True)
            elif kind == "delete":
                res = side.actor.delete(base + op[1], version=op[2])
            elif kind == "set":
                res = side.actor.set(base + op[1], op[2], version=op[3])
            elif kind in ("get", "children", "exists"):
                who = op[2]
                client = side.watcher if who == "watcher" else side.actor
                watch = None if who == "none" else side.watch_fn(who)
                if kind == "get":
                    res = client.get(base + op[1], watch=watch)
                elif kind == "children":
                    res = sorted(client.get_children(base + op[1], watch=watch))
                else:
                    res = client.exists(base + op[1], watch=watch)
            else:  # multi
                t = side.actor.transaction()
                for sub in op[1]:
                    if sub[0] == "create":
                        _, p, data, eph, seqf = sub
                        t.create(base + p, data, ephemeral=eph, sequence=seqf)
                    elif sub[0] == "delete":
                        t.delete(base + sub[1], version=sub[2])
                    elif sub[0] == "set":
                        t.set_data(base + sub[1], sub[2], version=sub[3])
                    else:
                        t.check(base + sub[1], sub[2])
                res = t.commit()
            out = _norm(n, res)
        except KazooException as e:
            out = f"raised {type(e).__name__}"
        lines.append(f"#{i} {op!r} -> {out!r}")
        for ev in side.drain(base):
            lines.append(f"   event {ev}")
    side.actor.delete(base, recursive=True)
    side.drain("/hyp")
    return lines


@EXAMPLES
@given(seq=st.lists(ops, min_size=1, max_size=12))
def test_random_ops_agree(sides, seq):
    assert_agree(*sides, run_ops, f"/hyp/e{next(_counter)}", seq)
