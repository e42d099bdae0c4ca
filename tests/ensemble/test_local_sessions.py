"""localSessionsEnabled / localSessionsUpgradingEnabled on a 3-member ensemble: the same
steps on Apache ZooKeeper 3.8 and on zabby, with the same expected answers.

Members 2 and 3 run with upgrading off, member 1 with it on (ZooKeeper decides on the
member the client is connected to; the leader is usually 3). Checked:

* a new session makes no txn (the ensemble's zxid, read after a sync on another
  member, does not move), and neither does closing it;
* without upgrading, an ephemeral create is refused EPHEMERALONLOCALSESSION; in a multi
  on a follower the op fails SESSIONEXPIRED (the leader's answer), as ZooKeeper; other
  writes work;
* a local session reconnecting to another member is told it expired; to its own
  member it resumes; one left silent past its timeout expires there;
* with upgrading, the first ephemeral create upgrades the session transparently: the
  node is on every member, the session may then move, and closing it removes the node.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from zabby.testing.pytest_plugin import started_ensemble
from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from zabby.wire import Empty, Err, Op
from zabby.wire.protocol import MultiRequest, MultiResponse
from zabby.wire.records import CreateRequest, PathRequest, PathWatchRequest, SetDataRequest

EPHEMERAL = 1
UPGRADING = 1  # the member with localSessionsUpgradingEnabled


@pytest.fixture(params=["zabby", pytest.param("zookeeper", marks=pytest.mark.differential)])
def ensemble(request, tmp_path):
    def upgrading(ens):
        ens.members[UPGRADING].cfg["localSessionsUpgradingEnabled"] = True

    with started_ensemble(request.param, tmp_path, prepare=upgrading, tickTime=500,
                          localSessionsEnabled=True) as ens:
        ens.kind = request.param
        yield ens


class Clients:
    def __init__(self, ens) -> None:
        self.ens = ens
        self.open: list[RawClient] = []

    def __call__(self, i: int, *, like: RawClient | None = None, timeout_ms: int = 10000):
        m = self.ens.members[i]
        kw = {}
        if like is not None:
            kw = {"session_id": like.session_id, "passwd": like.passwd,
                  "last_zxid": like.last_zxid}
        deadline = time.monotonic() + 10.0
        while True:
            c = RawClient("127.0.0.1", m.port, timeout_ms=timeout_ms, io_timeout=10.0, **kw)
            try:
                c.connect()
                break
            except ConnectionClosed:
                # a member behind the client's last zxid refuses it: try again
                c.drop()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.open.append(c)
        return c

    def drop_all(self) -> None:
        for c in self.open:
            with contextlib.suppress(ConnectionClosed, OSError):
                c.drop()


def _zxid_after_sync(c: RawClient) -> int:
    assert c.request(Op.SYNC, PathRequest("/")).err == 0
    return c.request(Op.EXISTS, PathWatchRequest("/", False)).zxid


def _leader_zxid(ens, leader: int) -> int:
    """The leader's last zxid (srvr) once it stops moving: every txn reaches the leader,
    which may apply it a moment after the followers. (Not a sync: zabby's sync commits
    a no-op txn.)"""
    def srvr() -> int:
        line = next(ln for ln in ens.members[leader].four_letter_word("srvr").splitlines()
                    if ln.startswith("Zxid:"))
        return int(line.split()[1], 16)

    seen = [srvr()]
    deadline = time.monotonic() + 5.0
    while len(seen) < 3 or len(set(seen[-3:])) > 1:
        assert time.monotonic() < deadline, f"the leader's zxid kept moving: {seen}"
        time.sleep(0.1)
        seen.append(srvr())
    return seen[-1]


def _create(c: RawClient, path: str, flags: int = 0) -> int:
    return c.request(Op.CREATE, CreateRequest(path, b"", OPEN_ACL_UNSAFE, flags)).err


def _exists_everywhere(clients: Clients, path: str) -> list[bool]:
    out = []
    for i in (1, 2, 3):
        c = clients(i)
        _zxid_after_sync(c)
        out.append(c.request(Op.EXISTS, PathWatchRequest(path, False)).err == 0)
        c.close()
    return out


def _expired(c: RawClient) -> bool:
    r = c.connect_response
    return r.sessionId == 0 and r.timeOut == 0


def test_local_sessions(ensemble):
    leader = ensemble.leader()
    follower = 2 if leader != 2 else 3  # a follower with upgrading off
    other = next(i for i in (1, 2, 3) if i not in (leader, follower))
    clients = Clients(ensemble)
    try:
        z0 = _leader_zxid(ensemble, leader)

        # a new session on a follower: no txn, and reads work
        local = clients(follower)
        assert local.request(Op.EXISTS, PathWatchRequest("/", False)).err == 0
        assert _leader_zxid(ensemble, leader) == z0, "creating a local session made a txn"
        if ensemble.kind == "zabby":
            mntr = ensemble.members[follower].four_letter_word("mntr")
            assert "zk_local_sessions\t" in mntr
            n = int(mntr.split("zk_local_sessions\t")[1].split()[0])
            assert n >= 1

        # no upgrading here: no ephemeral, alone or in a multi; other writes work
        assert _create(local, "/ls", 0) == 0
        assert _create(local, "/ls/eph", EPHEMERAL) == Err.EPHEMERALONLOCALSESSION
        multi = MultiRequest([(Op.CREATE, CreateRequest("/ls/m", b"", OPEN_ACL_UNSAFE, 0)),
                              (Op.CREATE, CreateRequest("/ls/meph", b"", OPEN_ACL_UNSAFE,
                                                        EPHEMERAL))])
        r = local.request(Op.MULTI, multi)
        body = r.body if r.err == 0 else MultiResponse.decode_from(r.raw, 0)[0]
        # ops before the failed one report OK (rolled back), as every failed multi
        assert [e for _, e, _ in body.results] == [Err.OK, Err.SESSIONEXPIRED]
        assert local.request(Op.EXISTS, PathWatchRequest("/ls/m", False)).err == Err.NONODE

        # it cannot move: another member does not know it; its own member does
        moved = clients(other, like=local)
        assert _expired(moved), "a local session moved to another member"
        back = clients(follower, like=local)
        assert back.connect_response.sessionId == local.session_id
        assert local.wait_closed(5.0), "the re-opened session's older connection stayed"
        assert back.request(Op.EXISTS, PathWatchRequest("/ls", False)).err == 0

        # a close sent right after a write is answered after it (FIFO)
        pipe = clients(follower)
        x1 = pipe.send_request(Op.SET_DATA, SetDataRequest("/ls", b"p", -1))
        x2 = pipe.send_request(Op.CLOSE_SESSION, Empty())
        assert pipe.wait_reply(x1, Op.SET_DATA).err == 0
        assert pipe.wait_reply(x2, Op.CLOSE_SESSION).err == 0
        assert pipe.wait_closed(5.0)

        # closing it makes no txn either
        z1 = _leader_zxid(ensemble, leader)
        closed = back.close()
        assert closed is not None and closed.err == 0
        assert _leader_zxid(ensemble, leader) == z1, "closing a local session made a txn"

        # on the leader (upgrading off there) the refusal is its own, in a multi too
        if leader != UPGRADING:
            on_leader = clients(leader)
            assert _create(on_leader, "/ls/leph", EPHEMERAL) == Err.EPHEMERALONLOCALSESSION
            r = on_leader.request(Op.MULTI, multi)
            body = r.body if r.err == 0 else MultiResponse.decode_from(r.raw, 0)[0]
            assert [e for _, e, _ in body.results] == [Err.OK, Err.EPHEMERALONLOCALSESSION]
            on_leader.close()

        # with upgrading: the first ephemeral makes the session global
        up = clients(UPGRADING)
        assert _create(up, "/ls/up", EPHEMERAL) == 0
        assert _exists_everywhere(clients, "/ls/up") == [True, True, True]
        elsewhere = clients(follower, like=up)
        assert elsewhere.connect_response.sessionId == up.session_id, "no move after upgrade"
        assert _create(elsewhere, "/ls/up2", EPHEMERAL) == 0
        elsewhere.close()
        assert _exists_everywhere(clients, "/ls/up") == [False, False, False]
        assert _exists_everywhere(clients, "/ls/up2") == [False, False, False]

        # a silent local session expires on its member (timeout 1000 ms = 2 ticks)
        short = clients(follower, timeout_ms=1000)
        short.drop()
        time.sleep(3.0)
        assert _expired(clients(follower, like=short)), "the silent local session lived on"
    finally:
        clients.drop_all()
