"""Bad input never kills the server: bursts of random, truncated and oversized frames
over raw sockets (seeded, bounded), then kazoo still works and ``ruok`` is ``imok``.

Set ZABBY_IT_TARGET=zookeeper to run this module against Apache ZooKeeper 3.8.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo_common import TARGET, TIMEOUT, target_server

SEED = 20240611
OPCODES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
           100, 101, 102, 103, 104, 105, 106, 107, -10, -11, 0, 999, -1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with target_server(tmp_path_factory.mktemp("kazoo-garbage"), tickTime=200, maxClientCnxns=0) as srv:
        yield srv


@pytest.fixture
def zk(server):
    c = KazooClient(hosts=server.hosts, timeout=4.0)
    c.start(timeout=TIMEOUT)
    try:
        for child in c.get_children("/"):
            if child != "zookeeper":
                c.delete("/" + child, recursive=True)
        yield c
    finally:
        c.stop()
        c.close()


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def handshake(timeout_ms: int = 4000) -> bytes:
    # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly
    return frame(struct.pack(">iqiqi", 0, 0, timeout_ms, 0, 16) + b"\x00" * 16 + b"\x00")


def request(rng: random.Random) -> bytes:
    """A frame with a plausible request header and a random (often broken) body."""
    xid = rng.choice([rng.randrange(1, 1 << 20), -2, -4, -8, -1, 0, rng.randrange(-(1 << 31), 0)])
    op = rng.choice(OPCODES)
    body = rng.randbytes(rng.randrange(0, 64))
    if rng.random() < 0.5:
        # a path-shaped prefix so decoding gets further before it fails
        path = rng.choice([b"/", b"/a", b"//", b"/zookeeper", b"", b"\xff\xfe", b"/a/../b"])
        body = struct.pack(">i", rng.choice([len(path), -1, 1 << 30, len(path) + 3])) + path + body
    return frame(struct.pack(">ii", xid, op) + body)


def burst_one(host: str, port: int, rng: random.Random) -> str:
    """Open one connection, send one kind of bad input, close. Returns the kind."""
    kind = rng.choice(
        ["noise", "noise_after_handshake", "requests", "truncated", "oversized",
         "negative_len", "bad_handshake", "pipeline"]
    )
    if kind == "noise":
        data = rng.randbytes(rng.randrange(1, 600))
    elif kind == "noise_after_handshake":
        data = handshake() + rng.randbytes(rng.randrange(1, 600))
    elif kind == "requests":
        data = handshake() + b"".join(request(rng) for _ in range(rng.randrange(1, 6)))
    elif kind == "truncated":
        whole = handshake() + request(rng)
        data = whole[: rng.randrange(1, len(whole))]
    elif kind == "oversized":
        data = handshake() + struct.pack(">i", rng.choice([0x7FFFFFFF, 0x10000000, 0x100001]))
        data += rng.randbytes(rng.randrange(0, 100))
    elif kind == "negative_len":
        data = handshake() + struct.pack(">i", rng.choice([-1, -100, -(1 << 31)])) + b"xx"
    elif kind == "bad_handshake":
        body = struct.pack(">iqiqi", rng.randrange(-5, 5), rng.randrange(-1, 1 << 40),
                           rng.randrange(-1000, 100000), rng.randrange(-1, 1 << 62),
                           rng.choice([16, 0, -1, 1000, 5]))
        data = frame(body + rng.randbytes(rng.randrange(0, 20)))
    else:  # pipeline: many small bad frames in one write, in random chunks
        data = handshake() + b"".join(request(rng) for _ in range(rng.randrange(5, 40)))
    try:
        with socket.create_connection((host, port), timeout=2.0) as s:
            view = memoryview(data)
            while view:
                n = rng.randrange(1, len(view) + 1)
                s.sendall(view[:n])
                view = view[n:]
            # Read a little of whatever comes back (bounded), then hang up.
            s.settimeout(0.05)
            try:
                for _ in range(4):
                    if not s.recv(65536):
                        break
            except OSError:
                pass
    except OSError:
        pass  # the server may reset us mid-send: that is allowed
    return kind


def server_alive(srv) -> bool:
    return srv.proc is not None and srv.proc.poll() is None


def assert_healthy(srv, zk) -> None:
    assert server_alive(srv), srv.log_tail()
    assert srv.four_letter_word("ruok") == "imok"
    # The client that stayed connected through it all is fine, same session.
    zk.set("/canary", b"after")
    assert zk.get("/canary")[0] == b"after"
    fresh = KazooClient(hosts=srv.hosts, timeout=4.0)
    fresh.start(timeout=TIMEOUT)
    try:
        fresh.create("/fresh", b"ok", ephemeral=True)
        assert fresh.get("/fresh")[0] == b"ok"
        assert sorted(fresh.get_children("/")) == ["canary", "fresh", "zookeeper"]
    finally:
        fresh.stop()
        fresh.close()


def test_random_garbage_burst(server, zk):
    zk.create("/canary", b"before")
    sid = zk.client_id[0]
    rng = random.Random(SEED)
    seeds = [rng.randrange(1 << 32) for _ in range(400)]
    kinds: dict[str, int] = {}
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=8) as pool:
        for kind in pool.map(lambda s: burst_one(server.host, server.port, random.Random(s)), seeds):
            kinds[kind] = kinds.get(kind, 0) + 1
    assert time.monotonic() < deadline
    assert len(kinds) == 8, kinds  # every kind was tried
    assert zk.client_id[0] == sid and zk.connected
    assert_healthy(server, zk)


def test_half_open_frames_do_not_block_others(server, zk):
    """Connections that stop mid-frame (and stay open) do not stall anyone else."""
    zk.create("/canary", b"before")
    rng = random.Random(SEED + 1)
    stuck = []
    try:
        for i in range(20):
            s = socket.create_connection((server.host, server.port), timeout=2.0)
            if i % 2:
                s.sendall(handshake()[: rng.randrange(1, 20)])
            else:
                s.sendall(handshake() + struct.pack(">i", 1000) + b"\x00\x00\x00\x01")
            stuck.append(s)
        # every set is answered (a stalled server fails the bounded wait, a hang guard)
        for i in range(20):
            assert zk.set_async("/canary", str(i).encode()).get(timeout=TIMEOUT).version == i + 1
        assert server.four_letter_word("ruok") == "imok"
    finally:
        for s in stuck:
            s.close()
    assert_healthy(server, zk)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(frames=st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=6),
       after_handshake=st.booleans())
def test_hypothesis_frames(server, frames, after_handshake):
    data = (handshake() if after_handshake else b"") + b"".join(frame(f) for f in frames)
    try:
        with socket.create_connection((server.host, server.port), timeout=2.0) as s:
            s.sendall(data)
            s.settimeout(0.02)
            try:
                s.recv(65536)
            except OSError:
                pass
    except OSError:
        pass
    assert server_alive(server), server.log_tail()


def test_healthy_after_hypothesis(server, zk):
    # Runs after test_hypothesis_frames (file order): the server took it all.
    zk.create("/canary", b"before")
    assert_healthy(server, zk)


@pytest.mark.skipif(TARGET != "zabby", reason="reads zabby's log")
def test_garbage_is_handled_without_internal_errors(server):
    """Bad input takes the "malformed frame" paths, never the internal-error one."""
    # Runs after the bursts above (file order) on the same server.
    text = server.log_path.read_text(errors="replace")
    assert "internal error" not in text and "Traceback" not in text, server.log_tail(60)


def test_undecodable_auth_packet_closes_only_that_connection(server, zk):
    zk.create("/canary", b"before")
    for body in (b"\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00\x00\x05dig"):
        with socket.create_connection((server.host, server.port), timeout=2.0) as s:
            s.sendall(handshake())
            s.settimeout(2.0)
            hello = b""
            while len(hello) < 4 or len(hello) < 4 + struct.unpack(">i", hello[:4])[0]:
                chunk = s.recv(65536)
                assert chunk, "no connect response"
                hello += chunk
            s.sendall(frame(struct.pack(">ii", -4, 100) + body))
            rest = b""
            try:
                while chunk := s.recv(65536):
                    rest += chunk
            except ConnectionResetError:
                pass
            # The server hangs up (as ZooKeeper does) without an auth reply.
            assert rest == b""
    assert_healthy(server, zk)
