"""Read-only mode across a real network partition (network namespaces, faults.NetLab).

Three members with ``readonlymode.enabled=true``, each in its own namespace; the
clients live in the lab's bridge namespace. Member A (a follower) and the clients are
cut off from the other two (neighbour entries to a MAC that does not exist: established
connections stall, nothing is refused). Then:

* A notices it has no quorum, looks for a leader and, after ZooKeeper's delay of
  max(2 s, tickTime), serves read-only: ``isro`` says ``ro``, srvr / stat / mntr report
  ``read-only``;
* at the byte level, a client without canBeReadOnly is disconnected, a reconnect with
  a global session is refused (ZOOKEEPER-3863), and a canBeReadOnly client gets a
  local session with readOnly=true in its connect response;
* a kazoo client (read_only=True) and zabby's client (read_only=True) connect: the
  states CONNECTED_RO / READ_ONLY, reads answered from A's copy, writes and sync
  refused with NotReadOnlyCallError;
* meanwhile the majority elects (or keeps) a leader and commits a write;
* on healing, A rejoins as a follower and drops its read-only clients; both clients
  come back read-write by themselves (kazoo: CONNECTED, zabby: CONNECTED), writes
  work, and the majority's write made during the partition is visible.

The same scenario runs against Apache ZooKeeper 3.8 (``-Dreadonlymode.enabled=true``
and, as kazoo's harness does, ``localSessionsEnabled``: a ZooKeeper read-only server
makes no other sessions), with the same assertions.

Skips only when network namespaces cannot be made here (EPERM) and CI is not "true";
the namespaces are deleted at the end whatever happens.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
import time

import pytest

from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient
from zabby.wire import Err
from zabby.wire import Op as Opcode
from zabby.wire.protocol import decode_connect_response
from zabby.wire.records import (
    CheckVersionRequest,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    PathRequest,
    PathWatchRequest,
    SetDataRequest,
)

from .faults import (
    NetLab,
    NetnsEnsemble,
    NetnsZooKeeperServer,
    NsRawClient,
    four_letter_word_in,
    running,
    set_up_or_skip,
    wait_for,
)

pytestmark = pytest.mark.timeout(150)

TICK_MS = 200
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_INT = struct.Struct(">i")


def run_in_netns(ns: str, fn, timeout: float):
    """Run ``fn()`` on a thread that lives in namespace ``ns``; every thread it starts
    (kazoo's, the zabby client's loop) is created there too. Returns fn's result."""
    out: dict = {}

    def target() -> None:
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["error"] = e

    t = threading.Thread(target=target, name=f"in-{ns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"the scenario did not finish within {timeout}s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _handshake(host: str, port: int, sid: int, passwd: bytes, tail: bytes):
    """A raw ConnectRequest (+ ``tail``, the readOnly byte); returns (response,
    readOnly) or None when the server closes the connection without an answer."""
    body = bytearray()
    ConnectRequest(0, 0, 10000, sid, passwd).encode(body)
    body += tail
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(_INT.pack(len(body)) + bytes(body))
        buf = b""
        try:
            while len(buf) < 4 or len(buf) < 4 + _INT.unpack_from(buf)[0]:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                buf += chunk
        except ConnectionResetError:
            return None
    return decode_connect_response(buf[4:])


def _state_log(client):
    seen: list = []
    client.add_listener(seen.append)
    return seen


def _ensemble(kind: str, tmp_path, lab: NetLab) -> NetnsEnsemble:
    common = {"tickTime": TICK_MS, "maxSessionTimeout": 30000}
    if kind == "zookeeper":
        return NetnsEnsemble(tmp_path, lab, member_cls=NetnsZooKeeperServer,
                             jvm_flags=["-Dreadonlymode.enabled=true"],
                             localSessionsEnabled="true", localSessionsUpgradingEnabled="true",
                             **common)
    return NetnsEnsemble(tmp_path, lab, **{"readonlymode.enabled": "true"}, **common)


@pytest.mark.parametrize("kind", ["zabby", pytest.param("zookeeper", marks=pytest.mark.differential)])
def test_read_only_member_in_a_partition(tmp_path, kind):
    from kazoo.client import KazooClient
    from kazoo.exceptions import NotReadOnlyCallError as KazooNotReadOnly
    from kazoo.protocol.states import KazooState, KeeperState

    from zabby.client import ConnectionState, NotReadOnlyCallError, SyncClient

    if kind == "zookeeper":
        require_zookeeper()
    lab = NetLab(3)
    set_up_or_skip(lab)
    ens = None
    t0 = time.monotonic()
    timeline: list[str] = []

    def note(what: str) -> None:
        timeline.append(f"{time.monotonic() - t0:6.2f}s {what}")

    try:
        ens = _ensemble(kind, tmp_path, lab)
        ens.start(timeout=60)
        leader = ens.leader(timeout=20)
        note(f"started, leader {leader}")
        a = next(i for i in ens.members if i != leader)
        others = [i for i in ens.members if i != a]
        ma = ens.members[a]
        hosts = ",".join(f"{m.host}:{m.port}" for m in
                         [ma, *(ens.members[i] for i in others)])  # A first

        def word(w: str) -> str:
            try:
                return four_letter_word_in(lab.br, ma.host, ma.port, w)
            except OSError:
                return ""

        # a global session on A, left open (its client vanishes with the partition); its
        # ephemeral makes it global where sessions start local (ZooKeeper's upgrade)
        c = NsRawClient(ma.host, ma.port, timeout_ms=20000, io_timeout=5, ns=lab.br)
        c.connect()
        assert c.request(Opcode.CREATE2, CreateRequest("/ro", b"before", OPEN_ACL_UNSAFE, 0)
                         ).err == 0
        assert c.request(Opcode.CREATE2, CreateRequest("/eph", b"", OPEN_ACL_UNSAFE, 1)
                         ).err == 0
        assert c.request(Opcode.SYNC, PathRequest("/ro")).err == 0
        global_sid, global_pw = c.session_id, c.passwd
        c.drop()
        assert word("isro") == "rw"

        lab.partition([a, "C"], others)
        note(f"partition: {a} and the clients | {others}")
        t_cut = time.monotonic()
        wait_for(lambda: word("isro") == "ro", 20, f"member {a} to go read-only")
        note(f"{a} is read-only")
        assert time.monotonic() - t_cut >= 2.0  # ZooKeeper's delay: max(2 s, tickTime)
        assert "Mode: read-only" in word("srvr")
        assert "READ-ONLY mode; serving only read-only clients" in word("stat")
        assert "zk_server_state\tread-only" in word("mntr")

        def raw_checks():
            # a local session that is left to expire (checked later: it lives 400 ms)
            short = RawClient(ma.host, ma.port, timeout_ms=400, read_only=True, io_timeout=5)
            short.connect()
            short.drop()
            # a client that cannot be read-only: disconnected without an answer
            assert _handshake(ma.host, ma.port, 0, bytes(16), b"\x00") is None
            assert _handshake(ma.host, ma.port, 0, bytes(16), b"") is None
            # a global session: refused, the quorum may be expiring it meanwhile
            assert _handshake(ma.host, ma.port, global_sid, global_pw, b"\x01") is None
            # canBeReadOnly: a local session, readOnly=true
            resp, ro = _handshake(ma.host, ma.port, 0, bytes(16), b"\x01")
            assert ro is True and resp.timeOut > 0 and resp.sessionId != 0
            # a local session: reads and watches; writes, check and sync refused;
            # it can be resumed, and once closed it is gone
            r = RawClient(ma.host, ma.port, timeout_ms=10000, read_only=True, io_timeout=5)
            r.connect()
            sid = r.session_id
            assert r.request(Opcode.EXISTS, PathWatchRequest("/ro", True)).err == Err.OK
            for op, body in ((Opcode.SET_DATA, SetDataRequest("/ro", b"x", -1)),
                             (Opcode.CREATE2, CreateRequest("/x", b"", OPEN_ACL_UNSAFE, 0)),
                             (Opcode.DELETE, DeleteRequest("/ro", -1)),
                             (Opcode.CHECK, CheckVersionRequest("/ro", 0)),
                             (Opcode.SYNC, PathRequest("/ro"))):
                assert r.request(op, body).err == Err.NOTREADONLY, op
            r.drop()
            assert r.connect().timeOut > 0 and r.session_id == sid  # resumed
            assert r.request(Opcode.GET_DATA, PathWatchRequest("/ro", False)).err == Err.OK
            assert r.close().err == Err.OK
            assert _handshake(ma.host, ma.port, sid, r.passwd, b"\x01")[0].timeOut == 0
            return short, time.monotonic()
        short, dropped = run_in_netns(lab.br, raw_checks, 30)

        # the majority side has a leader and commits a write during the partition
        mb = ens.members[others[0]]

        def majority_write() -> bool:
            c = NsRawClient(mb.host, mb.port, timeout_ms=10000, io_timeout=3, ns=lab.ns[others[0]])
            try:
                c.connect()
                r = c.request(Opcode.CREATE2,
                              CreateRequest("/during", b"majority", OPEN_ACL_UNSAFE, 0))
                c.close()
                return r.err == 0
            except OSError:
                c.drop()
                return False
        wait_for(majority_write, 20, "a write on the majority side")
        note("the majority committed a write")

        kz = KazooClient(hosts=hosts, timeout=10, read_only=True, randomize_hosts=False)
        zz = SyncClient(hosts, timeout=6.0, read_only=True, randomize_hosts=False)

        def in_partition():
            kz_states = _state_log(kz)
            zz_states = _state_log(zz)
            kz.start(timeout=20)
            zz.start(timeout=20)
            assert kz.client_state == KeeperState.CONNECTED_RO
            assert zz.state == ConnectionState.READ_ONLY
            for c in (kz, zz):
                assert c.get("/ro")[0] == b"before"  # A's copy
                assert c.exists("/during") is None  # the majority's write is not here
            with pytest.raises(KazooNotReadOnly):
                kz.create("/kazoo-ro")
            with pytest.raises(KazooNotReadOnly):
                kz.set("/ro", b"x")
            with pytest.raises(NotReadOnlyCallError):
                zz.create("/zabby-ro")
            with pytest.raises(NotReadOnlyCallError):
                zz.sync("/ro")
            return kz_states, zz_states
        kz_states, zz_states = run_in_netns(lab.br, in_partition, 60)

        def expired() -> None:
            time.sleep(max(0.0, dropped + 1.5 - time.monotonic()))
            resp = _handshake(ma.host, ma.port, short.session_id, short.passwd, b"\x01")
            assert resp is not None and resp[0].timeOut == 0, resp
        note("clients read-only")
        run_in_netns(lab.br, expired, 10)

        lab.heal()
        note("healed")

        def after_heal():
            wait_for(lambda: kz.client_state == KeeperState.CONNECTED, 30,
                     "kazoo back on a read-write server")
            note("kazoo read-write")
            wait_for(lambda: zz.state == ConnectionState.CONNECTED, 30,
                     "zabby's client back on a read-write server")
            note("zabby's client read-write")
            for c, path in ((kz, "/kazoo-rw"), (zz, "/zabby-rw")):
                c.sync("/")
                assert c.get("/during")[0] == b"majority"
                assert c.create(path, b"w") == path
            assert kz.state == KazooState.CONNECTED
            kz.stop()
            kz.close()
            zz.stop()
        run_in_netns(lab.br, after_heal, 80)
        note("both clients read-write again")
        wait_for(lambda: word("isro") == "rw", 30, f"member {a} read-write again")
        assert ens.mode(a) in ("follower", "leader")
        print("\n".join(timeline) + f"\nkazoo states {kz_states}, zabby states "
              f"{[str(s) for s in zz_states]}")
        assert KazooState.SUSPENDED in kz_states or KazooState.LOST in kz_states
        assert ConnectionState.READ_ONLY in zz_states
    finally:
        if ens is not None:
            for m in ens.members.values():
                if running(m):
                    m.stop()
        errors = lab.cleanup()
    assert not errors, f"could not delete namespaces: {errors}"
