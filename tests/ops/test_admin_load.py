"""The AdminServer never holds up clients: while an operator pulls dump, watches,
watches_by_path and snapshot over and over on a large tree, a client's reads (and so
its pings) keep being answered promptly.  The bound is generous (a shared 2-core
machine); what it catches is the loop being held for the length of a big answer."""

from __future__ import annotations

import threading
import time
import urllib.request

from kazoo.client import KazooClient

from zabby.testing.servers import ZabbyServer

NODES = 20000
EPHEMERALS = 5000
WATCHES = 5000
READ_BOUND_S = 3.0  # far above a read's normal ~1 ms; a held loop shows as seconds


def _fill(c: KazooClient) -> None:
    c.ensure_path("/big")
    for start in range(0, NODES, 1000):
        t = c.transaction()
        for i in range(start, min(start + 1000, NODES)):
            t.create(f"/big/n{i:06d}", b"v" * 64)
        t.commit()
    for start in range(0, EPHEMERALS, 1000):
        t = c.transaction()
        for i in range(start, start + 1000):
            t.create(f"/big/e{i:06d}", b"", ephemeral=True)
        t.commit()
    asyncs = [c.get_async(f"/big/n{i:06d}", watch=lambda e: None) for i in range(WATCHES)]
    for a in asyncs:
        a.get(timeout=60)


def test_admin_answers_do_not_hold_up_clients(tmp_path):
    s = ZabbyServer(tmp_path, **{"admin.enableServer": True,
                                  "admin.rateLimiterIntervalInMS": 0})
    owner = KazooClient(s.hosts, timeout=30)
    reader = KazooClient(s.hosts, timeout=10)
    stop = threading.Event()
    admin_done: list[tuple[str, int]] = []
    admin_errors: list[BaseException] = []

    def operator() -> None:
        names = ["dump", "watches", "watches_by_path", "snapshot"]
        i = 0
        try:
            while not stop.is_set():
                name = names[i % len(names)]
                i += 1
                req = urllib.request.Request(f"{s.admin_url}/{name}",
                                             headers={"Authorization": "digest op:pw"})
                with urllib.request.urlopen(req, timeout=120) as r:
                    admin_done.append((name, len(r.read())))
        except BaseException as e:  # reported by the test
            admin_errors.append(e)

    try:
        owner.start(30)
        _fill(owner)
        reader.start(10)
        t = threading.Thread(target=operator, daemon=True)
        t.start()
        worst = 0.0
        deadline = time.monotonic() + 8.0
        reads = 0
        while time.monotonic() < deadline and not admin_errors:
            t0 = time.monotonic()
            reader.get("/big/n000001")
            worst = max(worst, time.monotonic() - t0)
            reads += 1
            time.sleep(0.02)
        stop.set()
        t.join(120)
        assert not admin_errors, admin_errors
        done = {n for n, _ in admin_done}
        assert {"dump", "watches", "watches_by_path", "snapshot"} <= done, admin_done
        # the answers were the big ones
        sizes = dict(admin_done)
        assert sizes["dump"] > EPHEMERALS * 10 and sizes["watches_by_path"] > WATCHES * 10
        assert worst < READ_BOUND_S, f"a read waited {worst:.2f} s while the admin worked"
        assert reads > 20
        assert reader.connected and owner.connected
    finally:
        stop.set()
        for c in (reader, owner):
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        s.stop()
