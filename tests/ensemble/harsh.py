"""Shared by the test_harsh_* ensemble tests: a session that must not expire."""

from __future__ import annotations

import threading
import time

from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from zabby.wire import CreateMode, Err, Op
from zabby.wire.records import CreateRequest, PathWatchRequest


class Bystander:
    """A session that owns an ephemeral node and pings every `interval` seconds from a
    thread of its own. When its member drops it (stopped, electing) it reconnects with
    the same session -- its home member first, then the others -- as a ZooKeeper client
    does; a reconnect answered "expired" is recorded in `expired`."""

    def __init__(self, name: str, members: list, home: int, *, timeout_ms: int,
                 interval: float = 0.3) -> None:
        self.members = members  # [(host, port)], home first
        self.order = [members[home]] + [m for i, m in enumerate(members) if i != home]
        self.path = f"/bystander-{name}"
        self.timeout_ms = timeout_ms
        self.interval = interval
        self.c = RawClient(*self.order[0], timeout_ms=timeout_ms, io_timeout=2)
        self.c.connect()
        r = self.c.request(Op.CREATE2, CreateRequest(self.path, b"x", OPEN_ACL_UNSAFE,
                                                     int(CreateMode.EPHEMERAL)))
        assert r.err == Err.OK, r
        self.owner = self.c.session_id
        self.passwd = self.c.passwd
        self.negotiated = self.c.connect_response.timeOut
        self.stop = threading.Event()
        self.expired: list[str] = []
        self.pings = 0
        self.reconnects = 0
        self.t = threading.Thread(target=self._run, daemon=True, name=f"bystander-{name}")
        self.t.start()

    def _reconnect(self) -> bool:
        last = self.c.last_zxid
        self.c.drop()
        while not self.stop.is_set():
            for host, port in self.order:
                c = RawClient(host, port, timeout_ms=self.timeout_ms, io_timeout=1,
                              session_id=self.owner, passwd=self.passwd, last_zxid=last)
                try:
                    resp = c.connect()
                except (ConnectionClosed, OSError, TimeoutError):
                    c.drop()
                    continue
                if resp.timeOut <= 0 or resp.sessionId == 0:
                    c.drop()
                    self.expired.append(f"session {self.owner:#x} expired (reconnect to {port})")
                    return False
                c.io_timeout = 2
                self.c = c
                self.reconnects += 1
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                r = self.c.ping()
                if r.err == Err.SESSIONEXPIRED:
                    self.expired.append(f"ping: session {self.owner:#x} expired")
                    return
                self.pings += 1
            except (ConnectionClosed, OSError, TimeoutError):
                if not self._reconnect():
                    return

    def owns_its_node(self, host: str, port: int) -> bool:
        with RawClient(host, port, timeout_ms=4000) as c:
            r = c.request(Op.GET_DATA, PathWatchRequest(self.path, False))
            return r.err == Err.OK and r.body.stat.ephemeralOwner == self.owner

    def close(self) -> None:
        self.stop.set()
        self.t.join(15)
        self.c.drop()
