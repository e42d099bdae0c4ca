"""read_only=True: a member cut off from its quorum serves reads (Apache ZooKeeper's
read-only mode, ``readonlymode.enabled``). The client reports READ_ONLY; a write fails
with NotReadOnlyCallError. These run on ZooKeeper (the client against the reference);
zabby's read-only server, with this client and kazoo, is in
tests/ensemble/test_read_only_partition.py and kazoo's own TestReadOnlyMode
(tests/external/test_kazoo_own_suite.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from zabby.client import Client, ConnectionState, NotReadOnlyCallError
from zabby.testing import ZooKeeperEnsemble
from zabby.testing.pytest_plugin import require_zookeeper

from .conftest import arun


def test_read_only_member(tmp_path):
    require_zookeeper()
    # a read-only server makes local sessions only (a global one is a write)
    ens = ZooKeeperEnsemble(tmp_path, 3, tickTime=500, localSessionsEnabled=True,
                            jvm_flags=["-Dreadonlymode.enabled=true"])
    try:
        async def setup():
            async with Client(ens.hosts) as zk:
                await zk.create("/ro", b"kept")
                await zk.sync("/ro")
        arun(setup())
        survivor = 1
        for i in (2, 3):
            ens.kill(i)

        async def body():
            zk = Client(ens.members[survivor].hosts, timeout=4.0, read_only=True)
            await zk.start(timeout=30)
            try:
                assert zk.state == ConnectionState.READ_ONLY and zk.connected_read_only
                assert (await zk.get("/ro"))[0] == b"kept"
                with pytest.raises(NotReadOnlyCallError):
                    await zk.create("/nope")
            finally:
                await zk.stop()
        arun(body())
    finally:
        ens.stop()


def _wait_read_only(member, timeout: float = 20.0) -> None:
    """Until ``member`` answers ``isro`` with ``ro`` (it has noticed its quorum is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", member.port), 1.0) as s:
                s.sendall(b"isro")
                if s.recv(16).startswith(b"ro"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{member} did not go read-only in {timeout}s")


def test_read_only_client_moves_to_read_write(tmp_path):
    """With 2 of 3 members down the client gets a read-only session; once the members
    are back it is on a read-write server by itself (it probes the others with
    ``isro``; the survivor, rejoining the quorum, also drops its read-only clients).

    The session does not survive the move: a read-only server makes a local session
    that the quorum never learns of (resuming it would be refused as expired), so, as
    ZooKeeper's Java client does until it has seen a read-write server, the client
    asks for a new session. The state goes READ_ONLY -> SUSPENDED -> CONNECTED (not
    LOST: nothing of the read-only session was global), and watches are set again."""
    require_zookeeper()
    ens = ZooKeeperEnsemble(tmp_path, 3, tickTime=500, localSessionsEnabled=True,
                            jvm_flags=["-Dreadonlymode.enabled=true"])
    try:
        async def setup():
            async with Client(ens.hosts) as zk:
                await zk.create("/ro", b"kept")
                await zk.sync("/ro")
        arun(setup())
        for i in (2, 3):
            ens.kill(i)
        _wait_read_only(ens.members[1])

        async def body():
            zk = Client(ens.hosts, timeout=4.0, read_only=True, randomize_hosts=False)
            await zk.start(timeout=30)
            try:
                assert zk.state == ConnectionState.READ_ONLY
                assert zk.current_host[1] == ens.members[1].port
                ro_sid = zk.session_id
                states = zk.states()
                seen = []
                fired = asyncio.get_running_loop().create_future()
                await zk.exists("/later", watch=lambda ev: fired.done() or fired.set_result(ev))
                for i in (2, 3):
                    await asyncio.to_thread(ens.restart, i)

                async def until_rw():
                    while (st := await states.next()) != ConnectionState.CONNECTED:
                        seen.append(st)
                await asyncio.wait_for(until_rw(), 30)
                assert zk.state == ConnectionState.CONNECTED and not zk.connected_read_only
                assert ConnectionState.LOST not in seen, seen
                assert zk.session_id not in (0, ro_sid)  # a new, global session
                # a write (this ensemble makes local sessions, so no ephemeral here)
                assert await zk.create("/rw", b"w") == "/rw"
                assert (await zk.get("/ro"))[0] == b"kept"
                assert zk.watched_paths() == {"exist": ["/later"]}
                await zk.create("/later")  # the watch was set again on the new session
                assert (await asyncio.wait_for(fired, 10)).path == "/later"
            finally:
                await zk.stop()
        arun(body())
    finally:
        ens.stop()


def test_read_only_client_probes_for_read_write(tmp_path, caplog):
    """The background probe on its own: the read-only survivor stays read-only (its
    peers stay dead), and the client's list also names a read-write server of another
    deployment (a 1-member quorum-mode ensemble, written to enough that its zxid is
    ahead of ours). The client finds it with ``isro`` and moves there by itself."""
    require_zookeeper()
    caplog.set_level(logging.INFO, logger="zabby.client")
    ens = ZooKeeperEnsemble(tmp_path / "e", 3, tickTime=500, localSessionsEnabled=True,
                            jvm_flags=["-Dreadonlymode.enabled=true"])
    rw = None
    try:
        rw = ZooKeeperEnsemble(tmp_path / "rw", 1, tickTime=500,
                               **{"4lw.commands.whitelist": "*"})

        async def setup():
            async with Client(ens.hosts) as zk:
                await zk.create("/ro", b"kept")
                await zk.sync("/ro")
            async with Client(rw.hosts) as zk:
                for i in range(50):
                    await zk.create(f"/w{i}")
        arun(setup())
        for i in (2, 3):
            ens.kill(i)
        _wait_read_only(ens.members[1])

        async def body():
            zk = Client(f"{ens.members[1].hosts},{rw.hosts}", timeout=4.0, read_only=True,
                        randomize_hosts=False)
            await zk.start(timeout=30)
            try:
                assert zk.state == ConnectionState.READ_ONLY
                assert zk.current_host[1] == ens.members[1].port
                ro_sid = zk.session_id
                states = zk.states()

                async def until_rw():
                    while await states.next() != ConnectionState.CONNECTED:
                        pass
                await asyncio.wait_for(until_rw(), 30)
                assert zk.current_host[1] == rw.members[1].port
                assert zk.session_id not in (0, ro_sid)
                assert await zk.create("/moved", b"w") == "/moved"
                assert any("read-write server" in r.getMessage() for r in caplog.records)
            finally:
                await zk.stop()
        arun(body())
    finally:
        ens.stop()
        if rw is not None:
            rw.stop()
