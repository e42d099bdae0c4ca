"""Dynamic reconfiguration (ZooKeeper 3.5+), against real zabby ensembles.

kazoo's TestReconfig scenarios (no super auth, add and remove an observer, version
check, bad input) and more: a participant joins, becomes an observer and a participant
again, the leader removes itself, a removed member stops serving, the dynamic config
files, a one-member ensemble (standaloneEnabled=false) that grows. Every process is
stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConnectionLoss,
    NewConfigNoQuorumError,
    NoAuthError,
    ZookeeperError,
)

from zabby.testing import ZabbyEnsemble
from zabby.testing.differential import digest_acl
from zabby.testing.servers import HOST, ZabbyServer, free_port

pytestmark = pytest.mark.timeout(180)

SUPER = "super:test"
CFG = {
    "tickTime": 200,
    "reconfigEnabled": True,
    "DigestAuthenticationProvider.superDigest": digest_acl("super", "test").id.id,
}


def _wait(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - a member between states
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _client(hosts: str, auth: bool = True) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=6.0,
                    auth_data=[("digest", SUPER)] if auth else None)
    c.start(timeout=15)
    return c


def _config(c: KazooClient) -> tuple[dict[str, str], int]:
    data, _ = c.get("/zookeeper/config")
    lines = data.decode().split("\n")
    assert lines[-1].startswith("version=")
    servers = dict(line.split("=", 1) for line in lines[:-1])
    return servers, int(lines[-1].split("=")[1], 16)


def _reconfig(c: KazooClient, **kw):
    """A reconfig; ConnectionLoss when this very change made our server stop serving
    (ZooKeeper does the same), then the outcome is read back."""
    kw.setdefault("joining", None)
    kw.setdefault("leaving", None)
    kw.setdefault("new_members", None)
    try:
        return c.reconfig(**kw)
    except ConnectionLoss:
        _wait(lambda: c.connected, what="the client to reconnect")
        return None


def _server_lines(ens: ZabbyEnsemble) -> dict[str, str]:
    return {k: v for k, v in ens.members[1].cfg.items() if str(k).startswith("server.")}


def _joiner(ens: ZabbyEnsemble, sid: int, role: str = "participant", **extra):
    """A new server started with the ensemble's server lines plus its own."""
    cp, qp, ep = free_port(), free_port(), free_port()
    spec = f"{HOST}:{qp}:{ep}:{role};{HOST}:{cp}"
    lines = _server_lines(ens)
    lines[f"server.{sid}"] = spec
    cfg = {**CFG, "initLimit": 10, "syncLimit": 5, **extra, **lines}
    if role == "observer":
        cfg["peerType"] = "observer"
    j = ZabbyServer(ens.dir / f"server{sid}", start=False, clientPort=cp, **cfg)
    (j.data_dir / "myid").write_text(f"{sid}\n")
    return j, f"server.{sid}={spec}"


@pytest.fixture
def ensemble(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 3, **CFG)
    try:
        yield ens
    finally:
        ens.stop()


def test_config_node_errors_and_an_observer_added_and_removed(ensemble):
    anon = _client(ensemble.hosts, auth=False)
    c = _client(ensemble.hosts)
    try:
        servers, version = _config(anon)
        assert servers == _server_lines(ensemble)
        assert version == 0x100000000  # the first leader's NEWLEADER zxid
        _, st = anon.get("/zookeeper/config")
        assert (st.mzxid, st.version, st.aversion, st.czxid) == (version, -1, -1, 0)

        # kazoo's TestReconfig
        with pytest.raises(NoAuthError):
            anon.reconfig(joining="server.999=0.0.0.0:1234:2345:observer;3456",
                          leaving=None, new_members=None)
        with pytest.raises(BadArgumentsError):
            c.reconfig(joining="some thing", leaving=None, new_members=None)
        with pytest.raises(BadArgumentsError):  # no client port
            c.reconfig(joining="server.9=127.0.0.1:1234:2345", leaving=None, new_members=None)
        with pytest.raises(BadArgumentsError):  # fewer than 2 voters (standaloneEnabled)
            c.reconfig(joining=None, leaving="1,2", new_members=None)
        with pytest.raises(NewConfigNoQuorumError):  # no quorum of {1,2,3,7,8,9} in sync
            c.reconfig(joining="server.7=127.0.0.1:1:2;3,server.8=127.0.0.1:4:5;6,"
                       "server.9=127.0.0.1:7:8;9", leaving=None, new_members=None)

        joining = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"
        fired = []
        anon.get("/zookeeper/config", watch=fired.append)  # Curator's EnsembleTracker
        data, st = c.reconfig(joining=joining, leaving=None, new_members=None)
        _wait(lambda: fired, what="the data watch on /zookeeper/config")
        assert fired[0].type == "CHANGED"
        assert joining.encode() in data
        assert data.endswith(f"version={st.mzxid:x}".encode()) and st.version == -1
        anon.sync("/zookeeper/config")
        assert anon.get("/zookeeper/config")[0] == data  # committed on every member

        data, _ = c.reconfig(joining=None, leaving="100", new_members=None)
        assert joining.encode() not in data
        curver = int(data.decode().split("\n")[-1].split("=")[1], base=16)
        with pytest.raises(BadVersionError):
            c.reconfig(joining=joining, leaving=None, new_members=None, from_config=curver + 1)
        data, _ = c.reconfig(joining=None, leaving="77", new_members=None, from_config=curver)
        assert _config(c)[1] > curver

        # the dynamic config file of the newest version, and zoo.cfg pointing at it
        m = ensemble.members[2]
        _, version = _config(c)
        dyn = m.dir / f"zoo.cfg.dynamic.{version:x}"
        _wait(lambda: f"dynamicConfigFile={dyn}" in m.cfg_path.read_text(), what=str(dyn))
        assert dyn.read_text() == "\n".join(sorted(f"{k}={v}" for k, v in
                                                   _server_lines(ensemble).items()))
        assert "server.1=" not in m.cfg_path.read_text()
    finally:
        anon.stop()
        c.stop()


def test_a_participant_joins_changes_role_and_the_leader_removes_itself(ensemble):
    c = _client(ensemble.hosts)
    j, line = _joiner(ensemble, 4)
    try:
        j.start(wait=False)
        # it syncs from the leader as a non-voting learner before the reconfig
        _wait(lambda: j.mode == "follower", what="the joiner to sync")
        leader = ensemble.members[ensemble.leader()]
        _wait(lambda: "zk_synced_non_voting_followers\t1" in leader.four_letter_word("mntr"),
              what="the leader to count a non-voting follower")
        data, _ = c.reconfig(joining=line, leaving=None, new_members=None)
        assert line.encode() in data
        _wait(lambda: "zk_synced_followers\t3" in leader.four_letter_word("mntr"),
              what="the leader to count server 4 as a voter")
        c.create("/r", b"1")
        c4 = _client(j.hosts, auth=False)
        try:
            c4.sync("/r")
            assert c4.get("/r")[0] == b"1"
            c4.set("/r", b"2")
        finally:
            c4.stop()
        # participant -> observer -> participant
        _reconfig(c, joining=line.replace(":participant;", ":observer;"))
        _wait(lambda: j.mode == "observer", what="server 4 to observe")
        _reconfig(c, joining=line)
        _wait(lambda: j.mode == "follower" or j.mode == "leader", what="server 4 to vote")

        # the leader removes itself: another leads, it stops serving
        old = ensemble.leader()
        servers, _ = _reconfig_get(c, leaving=str(old))
        assert f"server.{old}" not in servers and "server.4" in servers
        _wait(lambda: ensemble.members[old].mode == "", what="the removed leader to stop")
        _wait(lambda: [j.mode, *(ensemble.mode(i) for i in (1, 2, 3) if i != old)].count(
            "leader") == 1, what="a new leader")
        c.set("/r", b"3")
        assert c.get("/r")[0] == b"3"
    finally:
        c.stop()
        j.stop()


def _reconfig_get(c: KazooClient, **kw) -> tuple[dict[str, str], int]:
    """A reconfig that may end our server's service (the leader removing itself): the
    reply may come just before the connection closes; then read it back once the
    client is connected again."""
    _reconfig(c, **kw)
    deadline = time.monotonic() + 20
    while True:
        try:
            _wait(lambda: c.connected, what="the client to reconnect")
            c.sync("/zookeeper/config")
            return _config(c)
        except ConnectionLoss:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_reconfig_disabled_answers_as_zookeeper(tmp_path):
    with ZabbyEnsemble(tmp_path, 3, tickTime=200) as ens:
        c = _client(ens.hosts)
        try:
            servers, version = _config(c)  # filled without reconfig too, version 0
            assert set(servers) == {"server.1", "server.2", "server.3"}
            assert version == 0 and c.get("/zookeeper/config")[1].mzxid == 0
            with pytest.raises(ZookeeperError) as ei:
                c.reconfig(joining=None, leaving="1", new_members=None)
            assert type(ei.value).__name__ == "ReconfigDisabledError"
            assert not list(ens.members[1].dir.glob("zoo.cfg.dynamic.*"))
        finally:
            c.stop()


def test_one_member_without_standalone_grows_to_two(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 1, standaloneEnabled=False, **CFG)
    j = None
    try:
        assert ens.mode(1) == "leader"
        c = _client(ens.hosts)
        try:
            c.create("/g", b"1")
            j, line = _joiner(ens, 2, standaloneEnabled=False)
            j.start(wait=False)
            _wait(lambda: j.mode == "follower", what="the joiner to sync")
            data, _ = c.reconfig(joining=line, leaving=None, new_members=None)
            assert line.encode() in data
            c.set("/g", b"2")  # now needs both
            c2 = _client(j.hosts, auth=False)
            try:
                c2.sync("/g")
                assert c2.get("/g")[0] == b"2"
                assert _config(c2)[0].keys() == {"server.1", "server.2"}
            finally:
                c2.stop()
        finally:
            c.stop()
    finally:
        if j is not None:
            j.stop()
        ens.stop()


def test_zabby_client_reconfig(ensemble):
    from zabby.client import Client
    from zabby.client.exceptions import BadVersionError as ZBadVersion

    async def go():
        async with Client(ensemble.hosts, auth_data=[("digest", SUPER)]) as zk:
            line = "server.50=127.0.0.1:1111:2222:observer;127.0.0.1:3333"
            data, st = await zk.reconfig(line, None, None)
            assert line.encode() in data and st.version == -1
            with pytest.raises(ZBadVersion):
                await zk.reconfig(None, "50", None, st.mzxid + 1)
            data, _ = await zk.reconfig(None, "50", None, st.mzxid)
            assert b"server.50" not in data

    asyncio.run(asyncio.wait_for(go(), 60))
    assert os.path.exists(ensemble.members[1].dir / "zoo.cfg")


def test_non_incremental_reconfig_adds_and_removes_an_observer(ensemble):
    c = _client(ensemble.hosts)
    j, line = _joiner(ensemble, 5, role="observer")
    try:
        j.start(wait=False)
        _wait(lambda: j.mode == "observer", what="the observer to sync")
        members = [f"{k}={v}" for k, v in sorted(_server_lines(ensemble).items())]
        data, _ = c.reconfig(joining=None, leaving=None, new_members=",".join([*members, line]))
        assert line.encode() in data
        c.create("/o", b"1")
        c5 = _client(j.hosts, auth=False)
        try:
            c5.sync("/o")
            assert c5.get("/o")[0] == b"1"
            with pytest.raises(BadArgumentsError):
                c.reconfig(joining=None, leaving=None, new_members="server.1=nonsense")
            # newline-separated works too; the observer left stops serving
            data, _ = c.reconfig(joining=None, leaving=None, new_members="\n".join(members))
            assert b"server.5" not in data
            _wait(lambda: j.mode == "", what="the removed observer to stop serving")
        finally:
            c5.stop()
    finally:
        c.stop()
        j.stop()


def test_hierarchical_quorums_decide_by_group_majorities(tmp_path):
    # group 1 = {1, 2}; server 3 alone in a group of weight 0, which does not count:
    # every decision needs both 1 and 2 (a plain majority would take {2, 3})
    ens = ZabbyEnsemble(tmp_path, 3, tickTime=200, **{"group.1": "1:2", "group.2": "3",
                                                      "weight.3": 0})
    try:
        c = _client(ens.hosts, auth=False)
        try:
            servers, _ = _config(c)
            data = c.get("/zookeeper/config")[0].decode()
            assert "group.1=1:2\ngroup.2=3\nweight.1=1\nweight.2=1\nweight.3=0\nversion=" in data
            c.create("/h", b"1")
        finally:
            c.stop()
        ens.kill(3)
        c = _client(ens.member_hosts(1, 2), auth=False)
        try:
            c.set("/h", b"2")  # {1, 2} is a quorum
        finally:
            c.stop()
        ens.members[3].start(wait=False)
        ens.wait_serving(timeout=20)
        ens.kill(1)
        # {2, 3} is not: nobody may serve
        time.sleep(2.0)
        assert ens.mode(2) == "" and ens.mode(3) == ""
        ens.members[1].start(wait=False)
        ens.wait_serving(timeout=20)
        c = _client(ens.hosts, auth=False)
        try:
            c.sync("/h")
            assert c.get("/h")[0] == b"2"
        finally:
            c.stop()
    finally:
        ens.stop()


def test_multi_address_server_lines(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 3, start=False, tickTime=200, **{"multiAddress.enabled": True})
    try:
        lines = {}
        for i, m in ens.members.items():
            first = m.cfg[f"server.{i}"]
            lines[f"server.{i}"] = f"{HOST}:{free_port()}:{free_port()}|{first}"
        for m in ens.members.values():
            m.cfg.update(lines)
        ens.start()
        c = _client(ens.hosts, auth=False)
        try:
            c.create("/m", b"1")
            servers, _ = _config(c)
            assert servers == lines  # as written (ZooKeeper sorts the addresses by host)
        finally:
            c.stop()
    finally:
        ens.stop()
