"""Hostile clients: each attack against zabby and Apache ZooKeeper 3.8 in one run.

Not a test. For every attack, a fresh server of each kind (the test launchers:
ZooKeeper with their small JVM, -Xmx256m; zabby as `zabby serve`), a well-behaved
client (one getData at a time, 5 ms apart, raw socket) measures latency during a
quiet phase and during the attack; we sample the server's VmRSS every 100 ms.

Printed per attack and server: peak RSS, whether the server survived (ruok after),
the probe's p50/p99 during the attack next to its quiet p99, its errors, and what
the attack itself observed. Then a fuzz run of random and mutated frames through
zabby's decode + dispatch path *in process* (a ClientConnection on a fake
transport; over a socket 1M inputs would take too long on 2 cores), counting inputs
and crashes (an exception out of data_received, or an "internal error" log record).

    python benchmarks/hostile.py [--fuzz 1000000] [--only non_reader,auth_flood]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import resource
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.hostile import (
    LatencyProbe,
    auth_flood,
    closed_by_peer,
    create_node,
    freeze,
    handshake,
    idle_sockets,
    non_reader,
    percentile,
    random_frames,
    rss_kb,
    watch_flood,
)

KINDS = {"zabby": ZabbyServer, "zookeeper": ZooKeeperServer}


class Sampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


# ----------------------------------------------------------------------------- attacks
# Each takes the server and returns a short string of what it observed.

def a_non_reader(srv) -> str:
    create_node(srv.host, srv.port, "/big", b"x" * 500_000)
    socks = [non_reader(srv.host, srv.port, "/big", 2000) for _ in range(3)]
    time.sleep(6)
    for s in socks:
        s.close()
    return "3 conns x 2000 getData(500 KB), never read"


def a_pipeline(srv) -> str:
    """50,000 pipelined creates from one connection, replies read as they come."""
    from zabby.testing.hostile import OPEN_ACL, recv_exact
    from zabby.wire import CreateRequest, Op, encode_request

    n = 50_000
    sock = handshake(srv.host, srv.port, io_timeout=120.0)
    frames = b"".join(encode_request(i + 1, Op.CREATE, CreateRequest(f"/p{i}", b"v" * 100,
                                                                     OPEN_ACL, 0))
                      for i in range(n))
    t = threading.Thread(target=sock.sendall, args=(frames,), daemon=True)
    t0 = time.monotonic()
    t.start()
    ok = 0
    try:
        for _ in range(n):
            (length,) = struct.unpack(">i", recv_exact(sock, 4))
            ok += struct.unpack_from(">iqi", recv_exact(sock, length))[2] == 0
    except OSError as e:
        return f"{ok}/{n} answered before {e!r}"
    finally:
        sock.close()
    return f"{ok}/{n} creates answered OK in {time.monotonic() - t0:.1f} s"


def a_freeze(srv) -> str:
    """3 raw sessions (timeout 4 s, the minimum at tickTime 2000) pinging every 0.5 s,
    ephemerals; SIGSTOP the server 6 s; after SIGCONT and 5 s: how many survived."""
    from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
    from zabby.wire import CreateRequest, Op

    raws = []
    for i in range(3):
        r = RawClient(srv.host, srv.port, timeout_ms=4000)
        r.connect()
        r.request(Op.CREATE, CreateRequest(f"/eph{i}", b"", OPEN_ACL_UNSAFE, 1))
        raws.append(r)
    stop = threading.Event()

    def pinger():
        while not stop.is_set():
            for r in raws:
                with contextlib.suppress(OSError):
                    r.send_request(Op.PING, xid=-2)
            time.sleep(0.5)

    t = threading.Thread(target=pinger, daemon=True)
    t.start()
    freeze(srv.pid, 6.0)
    time.sleep(5.0)
    stop.set()
    t.join()
    probe = RawClient(srv.host, srv.port)
    probe.connect()
    from zabby.wire import PathWatchRequest

    alive = sum(probe.request(Op.EXISTS, PathWatchRequest(f"/eph{i}", False)).err == 0
                for i in range(3))
    probe.drop()
    for r in raws:
        with contextlib.suppress(Exception):
            r.drop()
    return f"ephemerals of live sessions after a 6 s stop: {alive}/3 kept"


def a_auth_flood(srv) -> str:
    sock, sent, secs = auth_flood(srv.host, srv.port, 8000)
    sock.close()
    return f"8000 addauth ({sent // 1024} KB) answered in {secs:.2f} s"


def a_idle(srv) -> str:
    """1,100 idle sockets against a server limited to 1,024 descriptors; can a new
    client get a session, and when are the idle ones closed?"""
    resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (1024, 1024))
    t0 = time.monotonic()
    socks = idle_sockets(srv.host, srv.port, 1100)
    connected_at = None
    while time.monotonic() - t0 < 30:
        try:
            handshake(srv.host, srv.port, io_timeout=2.0).close()
            connected_at = time.monotonic() - t0
            break
        except OSError:
            time.sleep(0.5)
    closed = 0
    deadline = time.monotonic() + max(0.0, 30 - (time.monotonic() - t0))
    for s in socks:
        closed += closed_by_peer(s, timeout=max(0.01, deadline - time.monotonic()))
        s.close()
    took = time.monotonic() - t0
    new = f"new client served after {connected_at:.1f} s" if connected_at is not None else \
        "new clients locked out for 30 s"
    return f"{len(socks)} idle sockets; {new}; {closed} closed by the server within {took:.0f} s"


def a_connect_flood(srv) -> str:
    socks = idle_sockets(srv.host, srv.port, 1000)
    time.sleep(1.0)
    refused = sum(closed_by_peer(s, timeout=0.02) for s in socks)
    for s in socks:
        s.close()
    return f"maxCnxns=100: {len(socks)} opened, {refused} closed at once, " \
           f"{len(socks) - refused} held"


def a_watch_flood(srv) -> str:
    n = 200_000
    time.sleep(1.0)
    base = rss_kb(srv.pid)
    s = watch_flood(srv.host, srv.port, n)
    time.sleep(1.0)
    grown = rss_kb(srv.pid) - base
    s.close()
    return f"{n} exist watches: +{grown // 1024} MB, {grown * 1024 / n:.0f} bytes/watch"


def a_garbage(srv) -> str:
    """Oversized lengths, then 200 connections of random bytes and random frames."""
    rng = random.Random(7)
    s = handshake(srv.host, srv.port)
    s.sendall(struct.pack(">i", 0x7FFFFFF0))
    closed = closed_by_peer(s, timeout=10)
    s.close()
    for i in range(200):
        try:
            c = handshake(srv.host, srv.port) if i % 2 else socket.create_connection(
                (srv.host, srv.port))
            c.sendall(rng.randbytes(rng.randrange(1, 4096)) if i % 4 < 2
                      else random_frames(rng, 100))
            c.close()
        except OSError:
            pass
    return f"oversized frame length closed the connection: {closed}; 200 garbage conns sent"


ATTACKS = {
    "non_reader": (a_non_reader, {}),
    "pipeline": (a_pipeline, {}),
    "freeze": (a_freeze, {}),
    "auth_flood": (a_auth_flood, {}),
    "idle_1100_at_fd_1024": (a_idle, {}),
    "connect_flood": (a_connect_flood, {"maxCnxns": 100}),
    "watch_flood": (a_watch_flood, {}),
    "garbage": (a_garbage, {}),
}


def run_attack(name: str, kind: str, base: Path) -> dict:
    fn, cfg = ATTACKS[name]
    cfg = {"maxClientCnxns": 0, **cfg}
    srv = KINDS[kind](base / f"{name}-{kind}", **cfg)
    try:
        quiet = LatencyProbe(srv.host, srv.port).start()
        time.sleep(3.0)
        q = quiet.stop()
        probe = LatencyProbe(srv.host, srv.port).start()
        with Sampler(srv.pid) as sampler:
            try:
                note = fn(srv)
            except Exception as e:  # noqa: BLE001 - reported, not raised
                note = f"attack failed: {e!r}"
            lat = probe.stop()
        alive = srv.proc.poll() is None and srv.ruok()
        return {
            "attack": name, "server": kind, "peak_rss_mb": sampler.peak // 1024,
            "survived": alive, "quiet_p99_ms": percentile(q, 99) * 1e3,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
            "max_ms": max(lat) * 1e3 if lat else float("nan"), "probe_ops": len(lat),
            "probe_errors": probe.errors, "note": note,
        }
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- fuzz
class _FakeTransport:
    def __init__(self) -> None:
        self.closed = False
        self.out = 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data) -> None:
        self.out += len(data)

    def abort(self) -> None:
        self.closed = True

    close = abort

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(self, high=None, low=None) -> None: ...
    def get_write_buffer_size(self) -> int:
        return 0


class _CrashCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record) -> None:
        self.records.append(record)


def _seed_frames() -> list[bytes]:
    """Valid request frames of every kind, to mutate."""
    from zabby.wire import (
        ACL,
        AddWatchRequest,
        AuthPacket,
        CheckVersionRequest,
        CreateRequest,
        CreateTTLRequest,
        DeleteRequest,
        Id,
        Op,
        PathWatchRequest,
        SetACLRequest,
        SetDataRequest,
        SetWatches,
        encode_request,
    )
    from zabby.wire.records import PathRequest

    acl = [ACL(31, Id("world", "anyone"))]
    reqs = [
        (Op.CREATE, CreateRequest("/f/a", b"data", acl, 0)),
        (Op.CREATE, CreateRequest("/f", b"", acl, 0)),
        (Op.CREATE2, CreateRequest("/f/s", b"x", acl, 2)),
        (Op.CREATE_TTL, CreateTTLRequest("/f/t", b"x", acl, 5, 1000)),
        (Op.DELETE, DeleteRequest("/f/a", -1)),
        (Op.SET_DATA, SetDataRequest("/f", b"y" * 30, -1)),
        (Op.GET_DATA, PathWatchRequest("/f", True)),
        (Op.EXISTS, PathWatchRequest("/f/a", True)),
        (Op.GET_CHILDREN, PathWatchRequest("/", True)),
        (Op.GET_CHILDREN2, PathWatchRequest("/f", False)),
        (Op.SET_ACL, SetACLRequest("/f", acl, -1)),
        (Op.GET_ACL, PathRequest("/f")),
        (Op.SYNC, PathRequest("/")),
        (Op.CHECK, CheckVersionRequest("/f", 0)),
        (Op.ADD_WATCH, AddWatchRequest("/f", 1)),
        (Op.SET_WATCHES, SetWatches(0, ["/f"], ["/g"], ["/"])),
        (Op.AUTH, AuthPacket(0, "digest", b"u:p")),
        (Op.PING, None),
        (Op.GET_EPHEMERALS, PathRequest("/")),
        (Op.WHO_AM_I, None),
    ]
    return [encode_request(i + 1, op, body) for i, (op, body) in enumerate(reqs)]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    kind = rng.randrange(6)
    if kind == 0:  # flip bits in the body
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(4, len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # random opcode
        struct.pack_into(">i", b, 8, rng.randrange(-130, 120))
    elif kind == 2:  # a random int somewhere (lengths, versions, flags)
        if len(b) >= 16:
            struct.pack_into(">i", b, rng.randrange(12, len(b) - 3), rng.choice(
                [-1, 0, 1, 0x7FFFFFFF, -0x80000000, rng.randrange(-1 << 31, 1 << 31)]))
    elif kind == 3:  # truncate the body, fix the length
        b = b[: rng.randrange(4, len(b) + 1)]
        struct.pack_into(">i", b, 0, len(b) - 4)
    elif kind == 4:  # append junk, fix the length
        b += rng.randbytes(rng.randrange(1, 40))
        struct.pack_into(">i", b, 0, len(b) - 4)
    else:  # wrong frame length
        struct.pack_into(">i", b, 0, rng.choice([-1, 0, 3, len(b), 1 << 30]))
    return bytes(b)


async def _fuzz(n: int, seed: int) -> tuple[int, int, list[str]]:
    from zabby.ops.fourletter import handle_four_letter_word
    from zabby.server.config import ServerConfig
    from zabby.server.connection import ClientConnection
    from zabby.server.core import ZabbyServer as Core
    from zabby.wire import ConnectRequest, encode_connect_request

    counter = _CrashCounter()
    logging.getLogger("zabby").addHandler(counter)
    logging.getLogger("zabby").setLevel(logging.ERROR)
    logging.getLogger("zabby").propagate = False
    rng = random.Random(seed)
    seeds = _seed_frames()
    connect = encode_connect_request(ConnectRequest(0, 0, 30000, 0, b"\0" * 16))
    crashes: list[str] = []
    done = 0
    server = None
    while done < n:
        if server is None or done % 100_000 < 50:
            server = Core(ServerConfig(max_client_cnxns=0, four_letter_words=frozenset()),
                          four_letter_handler=handle_four_letter_word)
        conn = ClientConnection(server)
        conn.connection_made(_FakeTransport())
        conn.data_received(connect)
        await asyncio.sleep(0)
        for _ in range(50):
            r = rng.random()
            if r < 0.7:
                data = _mutate(rng, rng.choice(seeds))
            elif r < 0.85:
                data = random_frames(rng, 1)
            else:
                data = rng.randbytes(rng.randrange(1, 64))
            try:
                conn.data_received(data)
            except Exception as e:  # noqa: BLE001 - a crash, counted
                crashes.append(f"{type(e).__name__}: {e} on {data[:40].hex()}")
            done += 1
            if conn.closed:
                break
        await asyncio.sleep(0)  # flushes, commits
        if not conn.closed:
            conn.connection_lost(None)
    for rec in counter.records:
        crashes.append(f"log {rec.levelname}: {rec.getMessage()[:200]}")
    return done, len(crashes), crashes[:10]


def fuzz(n: int, seed: int = 1) -> tuple[int, int, list[str], float]:
    from zabby.server.app import install_uvloop

    install_uvloop()
    t0 = time.monotonic()
    done, ncrash, sample = asyncio.run(_fuzz(n, seed))
    return done, ncrash, sample, time.monotonic() - t0


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated attacks")
    ap.add_argument("--servers", default="zabby,zookeeper")
    ap.add_argument("--fuzz", type=int, default=1_000_000, help="inputs (0 = skip)")
    args = ap.parse_args()
    names = [a for a in args.only.split(",") if a] or list(ATTACKS)
    kinds = [k for k in args.servers.split(",") if k]
    rows = []
    with tempfile.TemporaryDirectory(prefix="zabby-hostile-") as d:
        for name in names:
            for kind in kinds:
                r = run_attack(name, kind, Path(d))
                rows.append(r)
                print(f"{r['attack']:<22} {r['server']:<9} peak RSS {r['peak_rss_mb']:>5} MB  "
                      f"survived {'yes' if r['survived'] else 'NO ':<3}  probe p50/p99 "
                      f"{r['p50_ms']:7.2f}/{r['p99_ms']:8.2f} ms (max {r['max_ms']:7.0f}, "
                      f"quiet p99 {r['quiet_p99_ms']:5.2f}) ops {r['probe_ops']:>5} "
                      f"err {r['probe_errors']:>3} | {r['note']}", flush=True)
    if args.fuzz:
        done, ncrash, sample, secs = fuzz(args.fuzz)
        print(f"fuzz (in process: ClientConnection.data_received on a fake transport -> "
              f"decode -> handle_request/pump -> tree): {done} inputs in {secs:.0f} s, "
              f"{ncrash} crashes")
        for s in sample:
            print("   ", s)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
