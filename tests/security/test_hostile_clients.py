"""Hostile clients against a real zabby process on loopback.

Each test reproduces one attack as a hostile client would (raw sockets), and
checks behaviour, never speed: the server stays up, its RSS stays under a stated
bound, a well-behaved kazoo client keeps being served and loses nothing. Time
bounds are generous liveness bounds only. Servers are child processes that the
launcher stops by process group.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import signal
import socket
import struct
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient

from zabby.testing import ZabbyServer
from zabby.testing.hostile import (
    auth_flood,
    closed_by_peer,
    create_node,
    freeze,
    handshake,
    idle_sockets,
    non_reader,
    random_frames,
    rss_kb,
    watch_flood,
)
from zabby.testing.rawclient import RawClient
from zabby.wire import Op

pytestmark = pytest.mark.timeout(180) if hasattr(pytest.mark, "timeout") else []

MB = 1024


def _kazoo(hosts: str, timeout: float = 10.0) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=timeout)
    c.start(timeout=15)
    return c


def _close(c: KazooClient) -> None:
    with contextlib.suppress(Exception):
        c.stop()
        c.close()


class _Worker:
    """A kazoo client doing set/get in a loop on its own node; counts what worked."""

    def __init__(self, hosts: str) -> None:
        self.c = _kazoo(hosts)
        self.path = f"/worker-{uuid.uuid4().hex[:8]}"
        self.c.create(self.path, b"0")
        self.ok = 0
        self.failed: list[BaseException] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                self.c.set(self.path, str(i).encode())
                assert self.c.get(self.path)[0] == str(i).encode()
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - recorded for the assertion
                self.failed.append(e)
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(20)
        _close(self.c)


@pytest.fixture
def zabby(tmp_path):
    with ZabbyServer(tmp_path / "zabby", tickTime=500) as srv:
        yield srv


def _log(srv) -> str:
    return srv.log_path.read_text(errors="replace")


# ---------------------------------------------------------------------------- 1
def test_clients_that_never_read_cost_bounded_memory(zabby):
    """2,000 pipelined getData of a 500 KB znode on each of three connections whose
    clients never read: without a cap this buffers ~3 GB of replies."""
    create_node(zabby.host, zabby.port, "/big", b"x" * 500_000)
    base = rss_kb(zabby.pid)
    worker = _Worker(zabby.hosts)
    socks = [non_reader(zabby.host, zabby.port, "/big", 2000) for _ in range(3)]
    try:
        peak = 0
        ok_before = worker.ok
        for _ in range(30):
            peak = max(peak, rss_kb(zabby.pid))
            time.sleep(0.1)
        print(f"\nnon-readers: RSS {base // MB} MB -> peak {peak // MB} MB")
        assert peak < base + 150 * MB, f"RSS grew to {peak // MB} MB"
        assert worker.ok > ok_before + 10, "a well-behaved client stopped being served"
        assert not worker.failed
    finally:
        worker.stop()
        for s in socks:
            s.close()
    assert zabby.ruok()


def test_pipelined_requests_are_throttled_never_dropped(tmp_path):
    """A client pipelining far past the per-connection and global bounds gets every
    reply, in order: back-pressure by not reading, never by dropping."""
    with ZabbyServer(tmp_path / "z", globalOutstandingLimit=5) as srv:
        n = 5000
        sock = handshake(srv.host, srv.port, io_timeout=60.0)
        from zabby.testing.hostile import OPEN_ACL, recv_exact
        from zabby.wire import CreateRequest, encode_request

        frames = b"".join(
            encode_request(i + 1, Op.CREATE, CreateRequest(f"/p{i}", b"v", OPEN_ACL, 0))
            for i in range(n))
        sender = threading.Thread(target=sock.sendall, args=(frames,), daemon=True)
        sender.start()
        worker = _Worker(srv.hosts)
        try:
            for i in range(n):
                (length,) = struct.unpack(">i", recv_exact(sock, 4))
                xid, _zxid, err = struct.unpack_from(">iqi", recv_exact(sock, length))
                assert (xid, err) == (i + 1, 0)
            sender.join(30)
            assert not worker.failed
        finally:
            worker.stop()
            sock.close()
        c = _kazoo(srv.hosts)
        try:
            assert len([p for p in c.get_children("/") if p.startswith("p")]) == n
        finally:
            _close(c)


# ---------------------------------------------------------------------------- 2
@pytest.mark.parametrize("how", ["busy-loop", "sigstop"])
def test_sessions_survive_a_server_freeze_longer_than_their_timeout(tmp_path, monkeypatch, how):
    """Freeze the server's loop for 3 s -- busy (a test hook: SIGUSR2 makes the loop
    sleep in a callback, as a huge request would) or stopped (SIGSTOP, a GC pause):
    sessions with a 1 s timeout whose pings wait in the sockets meanwhile must not
    expire, and their ephemerals stay."""
    monkeypatch.setenv("ZABBY_TEST_FREEZE_ON_SIGUSR2", "3.0")
    with ZabbyServer(tmp_path / "z", tickTime=200) as srv:
        clients = []
        raws = []
        try:
            for i in range(3):
                c = _kazoo(srv.hosts, timeout=1.0)
                c.create(f"/eph-k{i}", ephemeral=True)
                clients.append(c)
            for i in range(3):
                r = RawClient(srv.host, srv.port, timeout_ms=1000)
                r.connect()
                from zabby.testing.rawclient import OPEN_ACL_UNSAFE
                from zabby.wire import CreateRequest

                assert r.request(Op.CREATE, CreateRequest(f"/eph-r{i}", b"", OPEN_ACL_UNSAFE,
                                                          1)).err == 0
                raws.append(r)
            stop = threading.Event()

            def ping_raws():  # pings keep being sent (and queue) while the server is stopped
                while not stop.is_set():
                    for r in raws:
                        with contextlib.suppress(OSError):
                            r.send_request(Op.PING, xid=-2)
                    time.sleep(0.25)

            t = threading.Thread(target=ping_raws, daemon=True)
            t.start()
            if how == "sigstop":
                freeze(srv.pid, 3.0)
            else:
                os.kill(srv.pid, signal.SIGUSR2)
                time.sleep(3.0)
            time.sleep(2.5)  # > the session timeout after the pause, with pings flowing
            stop.set()
            t.join(5)
            for r in raws:
                assert r.ping().err == 0
            check = _kazoo(srv.hosts)
            try:
                kids = set(check.get_children("/"))
            finally:
                _close(check)
            assert {f"eph-k{i}" for i in range(3)} <= kids, kids
            assert {f"eph-r{i}" for i in range(3)} <= kids, kids
            for c in clients:
                assert c.exists("/eph-k0") is not None
        finally:
            for c in clients:
                _close(c)
            for r in raws:
                with contextlib.suppress(Exception):
                    r.drop()


def test_a_dead_session_still_expires(tmp_path):
    """The stall-free clock does not stop expiry: a client that vanished expires."""
    with ZabbyServer(tmp_path / "z", tickTime=200) as srv:
        r = RawClient(srv.host, srv.port, timeout_ms=1000)
        r.connect()
        from zabby.testing.rawclient import OPEN_ACL_UNSAFE
        from zabby.wire import CreateRequest

        assert r.request(Op.CREATE, CreateRequest("/gone", b"", OPEN_ACL_UNSAFE, 1)).err == 0
        r.drop()
        c = _kazoo(srv.hosts)
        try:
            deadline = time.monotonic() + 15
            while c.exists("/gone") is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.exists("/gone") is None
        finally:
            _close(c)


# ---------------------------------------------------------------------------- 3
def test_addauth_flood_is_linear(zabby):
    """8,000 distinct addauth packets (~330 KB): answered in one pass (was 21 s)."""
    sock, sent, secs = auth_flood(zabby.host, zabby.port, 8000)
    sock.close()
    print(f"\naddauth flood: {sent} bytes answered in {secs:.2f} s")
    assert secs < 10.0
    assert zabby.ruok()
    assert "password" not in _log(zabby)


# ---------------------------------------------------------------------------- 4
def test_half_open_handshakes_are_closed(tmp_path):
    with ZabbyServer(tmp_path / "z", tickTime=200,
                     jvm_flags=["-Dzookeeper.nio.sessionlessCnxnTimeout=1000"]) as srv:
        idle = idle_sockets(srv.host, srv.port, 20)
        partial = idle_sockets(srv.host, srv.port, 20, partial=True)
        try:
            for s in idle + partial:
                assert closed_by_peer(s, timeout=10.0)
        finally:
            for s in idle + partial:
                s.close()
        assert "no session established" in _log(srv)
        c = _kazoo(srv.hosts)
        _close(c)


def test_connect_flood_is_capped_by_max_cnxns(tmp_path):
    with ZabbyServer(tmp_path / "z", tickTime=200, maxCnxns=50, maxClientCnxns=0,
                     jvm_flags=["-Dzookeeper.nio.sessionlessCnxnTimeout=2000"]) as srv:
        socks = idle_sockets(srv.host, srv.port, 200)
        try:
            time.sleep(0.5)
            refused = sum(closed_by_peer(s, timeout=0.05) for s in socks)
            assert refused >= 150, refused
            n_fds = len(os.listdir(f"/proc/{srv.pid}/fd"))
            assert n_fds < 100, n_fds
            assert "Too many connections - max is 50" in _log(srv)
        finally:
            for s in socks:
                s.close()
        c = _kazoo(srv.hosts)
        try:
            c.create("/after-flood")
        finally:
            _close(c)


def test_file_descriptor_exhaustion_neither_spins_nor_stops_listening(tmp_path):
    """The server at its fd limit: accepting pauses, the listener survives, and once
    handshake timeouts free descriptors new clients are served."""
    with ZabbyServer(tmp_path / "z", tickTime=200, maxClientCnxns=0,
                     jvm_flags=["-Dzookeeper.nio.sessionlessCnxnTimeout=1500"]) as srv:
        resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (96, 96))
        socks = idle_sockets(srv.host, srv.port, 300)
        try:
            time.sleep(1.0)
            cpu0 = _cpu_seconds(srv.pid)
            time.sleep(1.0)
            assert _cpu_seconds(srv.pid) - cpu0 < 0.7, "accept loop spinning"
        finally:
            for s in socks:
                s.close()
        time.sleep(2.0)
        c = _kazoo(srv.hosts)
        try:
            c.create("/after-emfile")
        finally:
            _close(c)
        assert srv.ruok()
        assert "error accepting a client connection" in _log(srv)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- frames
@pytest.mark.parametrize("after_handshake", [False, True])
def test_oversized_frame_length_closes_the_connection(zabby, after_handshake):
    if after_handshake:
        s = handshake(zabby.host, zabby.port)
    else:
        s = socket.create_connection((zabby.host, zabby.port))
    try:
        s.sendall(struct.pack(">i", 0x7FFFFFF0) + b"\0" * 64)
        assert closed_by_peer(s, timeout=10.0)
    finally:
        s.close()
    assert "out of range" in _log(zabby)
    assert zabby.ruok()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    with ZabbyServer(tmp_path_factory.mktemp("fuzz"), maxClientCnxns=0) as srv:
        yield srv


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), handshake_first=st.booleans())
def test_random_bytes_never_crash_the_server(fuzz_server, data, handshake_first):
    srv = fuzz_server
    s = (handshake(srv.host, srv.port) if handshake_first
         else socket.create_connection((srv.host, srv.port)))
    try:
        with contextlib.suppress(OSError):
            s.sendall(data)
    finally:
        s.close()
    assert srv.proc.poll() is None


def test_random_frames_never_crash_the_server(fuzz_server):
    """Well-framed garbage: random opcodes, xids and bodies after a handshake."""
    srv = fuzz_server
    rng = random.Random(1234)
    for _ in range(50):
        s = handshake(srv.host, srv.port)
        with contextlib.suppress(OSError):
            s.sendall(random_frames(rng, 200))
        s.close()
    assert srv.ruok()
    c = _kazoo(srv.hosts)
    try:
        c.ensure_path("/still/fine")
    finally:
        _close(c)


# ---------------------------------------------------------------------------- 7
def test_watch_flood_memory_is_measured(zabby):
    n = 200_000
    base = rss_kb(zabby.pid)
    s = watch_flood(zabby.host, zabby.port, n)
    try:
        grown = rss_kb(zabby.pid) - base
        print(f"\nwatch flood: {n} exist watches, RSS +{grown // MB} MB, "
              f"{grown * 1024 / n:.0f} bytes per watch")
        assert grown < 400 * MB
        assert zabby.ruok()
    finally:
        s.close()


def test_ensemble_leader_freeze_does_not_expire_sessions(tmp_path):
    """The leader tracks expiry from the touches members relay. Stopped for 2.5 s
    (less than syncLimit, so it stays leader) with 1 s sessions on the followers:
    the touches queued in its sockets meanwhile; no session may expire."""
    from zabby.testing import ZabbyEnsemble

    with ZabbyEnsemble(tmp_path / "ens", 3, tickTime=200, syncLimit=25, initLimit=25) as ens:
        leader = ens.leader(timeout=30)
        followers = [m for i, m in ens.members.items() if i != leader]
        clients = []
        try:
            for i, m in enumerate(followers):
                c = _kazoo(m.hosts, timeout=1.0)
                c.create(f"/eph-f{i}", ephemeral=True)
                clients.append(c)
            freeze(ens.members[leader].pid, 2.5)
            time.sleep(2.5)
            assert ens.leader(timeout=10) == leader
            check = _kazoo(followers[0].hosts)
            try:
                check.sync("/")
                kids = set(check.get_children("/"))
            finally:
                _close(check)
            assert {f"eph-f{i}" for i in range(len(followers))} <= kids, kids
        finally:
            for c in clients:
                _close(c)
