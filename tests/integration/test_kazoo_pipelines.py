"""One session pipelining reads and writes (kazoo's async calls, all sent before any
answer comes back), against a real server: every answer is the one the session's own
order implies. A read sees every write the session sent before it and none it sent
after it, although the server starts a write behind a waiting read at once
(core._run_ahead); a watch a read leaves fires for the next write.

Set ZABBY_IT_TARGET=zookeeper to run it against Apache ZooKeeper 3.8 instead.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from kazoo.exceptions import BadVersionError
from kazoo_common import TIMEOUT, client_factory, empty_tree, target_server

KEYS = ("/p/a", "/p/b", "/p/c")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = target_server(tmp_path_factory.mktemp("pipelines"))
    yield srv
    srv.stop()


@pytest.fixture
def zk(server):
    yield from client_factory(server.hosts, timeout=TIMEOUT)


@pytest.mark.parametrize("seed", range(6))
def test_pipelined_reads_see_exactly_the_writes_before_them(zk, seed):
    rnd = random.Random(seed)
    c = zk()
    empty_tree(c)
    c.create("/p")
    model = {}
    for k in KEYS:
        c.create(k, b"0")
        model[k] = (b"0", 0)
    events: dict[int, list] = {}
    watching: set[int] = set()
    lock = threading.Lock()

    def watcher_for(i):
        def fire(ev):
            with lock:
                events.setdefault(i, []).append(ev)
        return fire

    sent = []  # (kind, key, expected, async result, index)
    for i in range(300):
        k = rnd.choice(KEYS)
        r = rnd.random()
        if r < 0.4:
            data = f"{seed}-{i}".encode()
            want = model[k][1] + 1
            sent.append(("set", k, want, c.set_async(k, data), i))
            model[k] = (data, want)
        elif r < 0.45:
            # a write that fails on its version: an error in the same order
            sent.append(("badset", k, None, c.set_async(k, b"x", version=10**6), i))
        elif r < 0.55:
            sent.append(("exists", k, model[k][1], c.exists_async(k), i))
        else:
            watch = rnd.random() < 0.2
            if watch:
                watching.add(i)
            sent.append(("get", k, model[k], c.get_async(k, watch=watcher_for(i) if watch
                                                         else None), i))
    for kind, k, want, res, i in sent:
        if kind == "set":
            assert res.get(timeout=TIMEOUT).version == want, (seed, i, k)
        elif kind == "badset":
            with pytest.raises(BadVersionError):
                res.get(timeout=TIMEOUT)
        elif kind == "exists":
            assert res.get(timeout=TIMEOUT).version == want, (seed, i, k)
        else:
            data, stat = res.get(timeout=TIMEOUT)
            assert (data, stat.version) == want, (seed, i, k)
    # a watch left by a read fires once, for the first later write to its key, and
    # only if there is one
    writes_at: dict[str, list[int]] = {}
    for kind, k, _, _, i in sent:
        if kind == "set":
            writes_at.setdefault(k, []).append(i)
    watched = {i: k for kind, k, _, _, i in sent if kind == "get" and i in watching}
    expected = {i for i, k in watched.items() if any(w > i for w in writes_at.get(k, ()))}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with lock:
            if expected <= set(events):
                break
        time.sleep(0.01)
    c.sync("/")
    time.sleep(0.2)  # a notification that should not come has had its chance
    with lock:
        fired = {i: list(evs) for i, evs in events.items()}
    assert set(fired) == expected, seed
    for i, evs in fired.items():
        assert len(evs) == 1 and evs[0].path == watched[i], (seed, i)
