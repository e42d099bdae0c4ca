"""Hostile clients: raw-socket attacks on a ZooKeeper-protocol server.

Shared by ``tests/security/test_hostile_clients.py`` and ``benchmarks/hostile.py``.
Each helper speaks just enough of the protocol to do harm and nothing more: no
background threads, every socket returned to the caller, who closes it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import threading
import time

from zabby.wire import (
    AuthPacket,
    ConnectRequest,
    CreateRequest,
    Op,
    PathWatchRequest,
    SetWatches,
    encode_connect_request,
    encode_request,
)
from zabby.wire.records import ACL, Id

__all__ = [
    "LatencyProbe",
    "auth_flood",
    "handshake",
    "idle_sockets",
    "non_reader",
    "percentile",
    "rss_kb",
    "watch_flood",
]

OPEN_ACL = [ACL(31, Id("world", "anyone"))]
_INT = struct.Struct(">i")


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in kB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and its direct children (zabby's fsync helpers), in kB."""
    total = rss_kb(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                total += rss_kb(int(child))
    except OSError:
        pass
    return total


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the server")
        buf += chunk
    return bytes(buf)


def handshake(host: str, port: int, timeout_ms: int = 30000,
              io_timeout: float = 10.0) -> socket.socket:
    """A socket with a new session on it (the ConnectResponse read and discarded)."""
    sock = socket.create_connection((host, port), timeout=io_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(encode_connect_request(ConnectRequest(0, 0, timeout_ms, 0, b"\0" * 16)))
    (n,) = _INT.unpack(recv_exact(sock, 4))
    recv_exact(sock, n)
    return sock


def set_recv_buffer(sock: socket.socket, size: int = 4096) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def non_reader(host: str, port: int, path: str, n: int = 2000) -> socket.socket:
    """Pipeline `n` getData of `path` and never read a byte of the replies."""
    sock = handshake(host, port)
    set_recv_buffer(sock)
    req = b"".join(encode_request(i + 1, Op.GET_DATA, PathWatchRequest(path, False))
                   for i in range(n))
    sock.sendall(req)
    return sock


def auth_flood(host: str, port: int, n: int = 8000) -> tuple[socket.socket, int, float]:
    """Send `n` distinct digest addauth packets, then a ping; wait for the ping's reply.

    Returns (socket, bytes sent, seconds until the ping was answered)."""
    sock = handshake(host, port, io_timeout=120.0)
    frames = b"".join(
        encode_request(-4, Op.AUTH, AuthPacket(0, "digest", f"user{i}:password{i}".encode()))
        for i in range(n))
    t0 = time.monotonic()
    # read while writing: the replies must not back up into the server's buffers
    reader = threading.Thread(target=_drain_until_ping, args=(sock, n), daemon=True)
    reader.start()
    sock.sendall(frames + encode_request(-2, Op.PING))
    reader.join(120)
    return sock, len(frames), time.monotonic() - t0


def _drain_until_ping(sock: socket.socket, n: int) -> None:
    seen = 0
    try:
        while True:
            (length,) = _INT.unpack(recv_exact(sock, 4))
            body = recv_exact(sock, length)
            xid = _INT.unpack_from(body, 0)[0]
            if xid == -2:
                return
            seen += 1
    except OSError:
        return


def idle_sockets(host: str, port: int, n: int, partial: bool = False) -> list[socket.socket]:
    """`n` connections that never complete a handshake (or send half of one)."""
    out = []
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), timeout=5.0)
        except OSError:
            break
        if partial:
            s.sendall(b"\x00\x00\x00\x2c\x00\x00\x00")  # a ConnectRequest's first bytes
        out.append(s)
    return out


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True once the server closed `sock` (EOF or reset) within `timeout` s."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def watch_flood(host: str, port: int, n: int, per_frame: int = 20000) -> socket.socket:
    """Register `n` exist watches on distinct absent paths with setWatches frames."""
    sock = handshake(host, port, io_timeout=60.0)
    sent = 0
    while sent < n:
        k = min(per_frame, n - sent)
        paths = [f"/nowatch/{sent + i:09d}" for i in range(k)]
        sock.sendall(encode_request(-8, Op.SET_WATCHES, SetWatches(0, [], paths, [])))
        (length,) = _INT.unpack(recv_exact(sock, 4))
        recv_exact(sock, length)
        sent += k
    return sock


def create_node(host: str, port: int, path: str, data: bytes) -> None:
    sock = handshake(host, port)
    try:
        sock.sendall(encode_request(1, Op.CREATE, CreateRequest(path, data, OPEN_ACL, 0)))
        (length,) = _INT.unpack(recv_exact(sock, 4))
        body = recv_exact(sock, length)
        err = struct.unpack_from(">iqi", body)[2]
        if err not in (0, -110):
            raise RuntimeError(f"create {path}: error {err}")
    finally:
        sock.close()


def freeze(pid: int, seconds: float) -> None:
    """Stop the process (a long GC pause / a busy loop): pings queue in its sockets."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def random_frames(rng: random.Random, n: int) -> bytes:
    """`n` frames with plausible lengths, random headers/opcodes and random bodies."""
    out = bytearray()
    ops = [int(o) for o in Op] + [rng.randrange(-200, 200) for _ in range(4)]
    for _ in range(n):
        body = rng.randbytes(rng.randrange(0, 64))
        hdr = struct.pack(">ii", rng.randrange(-10, 1 << 20), rng.choice(ops))
        out += _INT.pack(len(hdr) + len(body)) + hdr + body
    return bytes(out)


class LatencyProbe:
    """A well-behaved client in a thread: one getData at a time, latencies recorded."""

    def __init__(self, host: str, port: int, path: str = "/") -> None:
        self.host, self.port, self.path = host, port, path
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LatencyProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        sock = None
        xid = 0
        while not self._stop.is_set():
            try:
                if sock is None:
                    sock = handshake(self.host, self.port, io_timeout=5.0)
                xid += 1
                t0 = time.perf_counter()
                sock.sendall(encode_request(xid, Op.GET_DATA, PathWatchRequest(self.path, False)))
                (length,) = _INT.unpack(recv_exact(sock, 4))
                recv_exact(sock, length)
                self.latencies.append(time.perf_counter() - t0)
            except OSError:
                self.errors += 1
                if sock is not None:
                    sock.close()
                sock = None
                time.sleep(0.05)
            time.sleep(0.005)
        if sock is not None:
            sock.close()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(10)
        return self.latencies


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]
