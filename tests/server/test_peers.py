"""Peer transport: a full mesh over loopback, checksummed frames, redial after loss."""

import asyncio

import pytest

from zabby.server.peers import FrameReader, PeerMesh, PeerProtocolError, _Link, encode_frame
from zabby.testing.servers import free_ports


def test_frame_reader_splits_and_checks():
    r = FrameReader()
    data = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"x" * 1000)
    got = []
    for i in range(0, len(data), 7):
        got += r.feed(data[i : i + 7])
    assert got == [b"hello", b"", b"x" * 1000]
    bad = bytearray(encode_frame(b"hello"))
    bad[-1] ^= 1
    with pytest.raises(PeerProtocolError):
        FrameReader().feed(bytes(bad))


async def _until(pred, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def test_mesh_delivers_between_all_pairs_and_redials():
    async def main():
        ports = free_ports(3)
        addrs = {i + 1: ("127.0.0.1", p) for i, p in enumerate(ports)}
        inbox = {i: [] for i in addrs}
        meshes = {
            i: PeerMesh(i, addrs, lambda frm, m, i=i: inbox[i].append((frm, m)), min_backoff=0.01)
            for i in addrs
        }
        for m in meshes.values():
            await m.start()
        try:
            await _until(lambda: all(m.connected(j) for i, m in meshes.items() for j in addrs if j != i))
            # exactly one link per pair
            assert all(len(m.links) == 2 for m in meshes.values())
            for i, m in meshes.items():
                for j in addrs:
                    if j != i:
                        assert m.send(j, f"{i}->{j}".encode())
            await _until(lambda: all(len(v) == 2 for v in inbox.values()))
            assert sorted(inbox[1]) == [(2, b"2->1"), (3, b"3->1")]
            # cut the 3-1 link from 1's side: 3 (the larger id) redials
            meshes[1].links[3].close()
            await _until(lambda: meshes[1].connected(3) and meshes[3].connected(1))
            assert meshes[3].send(1, b"again")
            await _until(lambda: (3, b"again") in inbox[1])
            # an unknown sender is refused
            r, w = await asyncio.open_connection("127.0.0.1", ports[0])
            import struct
            w.write(encode_frame(struct.pack(">4sHq", b"ZBPR", 1, 99)))
            await w.drain()
            await asyncio.wait_for(r.read(), 5)  # closed by the mesh
            w.close()
            assert 99 not in meshes[1].links
        finally:
            for m in meshes.values():
                await m.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_link_lost_before_its_dialer_returns_is_dialled_again():
    # The race behind a member that never rejoined: the dialer's connection is made
    # and lost (the peer was still dying) before the dial task got to run again.
    # _detach then saw a dialer "still running" and started none; the task returned
    # and nobody dialled that peer again.
    async def main():
        ports = free_ports(2)
        addrs = {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
        one = PeerMesh(1, addrs, lambda frm, m: None, min_backoff=0.01)
        two = PeerMesh(2, addrs, lambda frm, m: None, min_backoff=0.01)
        loop = asyncio.get_running_loop()
        real = loop.create_connection
        cut = []

        async def connect_then_lose(factory, host, port):
            tr, proto = await real(factory, host, port)
            if not cut:  # the first link breaks before the dialer resumes
                cut.append(proto)
                tr.abort()
                await asyncio.sleep(0.05)  # connection_lost has run: link detached
            return tr, proto

        loop.create_connection = connect_then_lose
        await one.start()
        await two.start()  # 2 dials 1
        try:
            await _until(lambda: cut and cut[0].closed)
            await _until(lambda: two.connected(1) and one.connected(2))
        finally:
            loop.create_connection = real
            await two.stop()
            await one.stop()

    asyncio.run(main())


def test_after_read_runs_once_after_all_messages_of_a_read():
    # the ensemble drains consensus once per read: a read holding N proposals must
    # reach it as N messages followed by one after_read, never interleaved
    events = []
    addrs = {1: ("127.0.0.1", 1), 2: ("127.0.0.1", 2)}
    mesh = PeerMesh(1, addrs, lambda frm, m: events.append((frm, m)),
                    after_read=lambda: events.append("after"))
    link = _Link(mesh, 2)
    link.hello_seen = True
    frames = b"".join(encode_frame(b"m%d" % i) for i in range(3))
    link.data_received(frames + encode_frame(b"tail")[:5])  # + a partial frame
    assert events == [(2, b"m0"), (2, b"m1"), (2, b"m2"), "after"]
    events.clear()
    link.data_received(encode_frame(b"tail")[5:7])  # still partial: nothing delivered
    assert events == []
    link.data_received(encode_frame(b"tail")[7:])
    assert events == [(2, b"tail"), "after"]


def test_mesh_for_reconfiguration_alternates_unknown_joiners_and_new_members():
    async def main():
        p1, p1b, dead, p2, p5 = free_ports(5)
        # server 1 listens on two addresses; 2 knows the first as dead and reaches it
        # through the alternate (a multi-address server line)
        one = PeerMesh(1, {1: ("127.0.0.1", p1)}, lambda frm, m: None, min_backoff=0.01)
        one.alternates = {1: [("127.0.0.1", p1b)]}
        one.accept_unknown = True
        two = PeerMesh(2, {1: ("127.0.0.1", dead), 2: ("127.0.0.1", p2)},
                       lambda frm, m: None, min_backoff=0.01)
        two.alternates = {1: [("127.0.0.1", p1b)]}
        # 5 is not in 1's configuration (a joiner): 1 accepts its link
        five = PeerMesh(5, {1: ("127.0.0.1", p1), 5: ("127.0.0.1", p5)},
                        lambda frm, m: None, min_backoff=0.01)
        for m in (one, two, five):
            await m.start()
        try:
            await _until(lambda: two.connected(1) and five.connected(1) and one.connected(2)
                         and one.connected(5))
            # a new configuration names 7 at an address of nobody: dialled, never linked
            one.update_addresses({1: ("127.0.0.1", p1), 2: ("127.0.0.1", p2),
                                  5: ("127.0.0.1", p5), 7: ("127.0.0.1", dead)})
            await asyncio.sleep(0.1)
            assert one.connected(5) and not one.connected(7)
        finally:
            for m in (one, two, five):
                await m.stop()

    asyncio.run(main())


def test_a_lent_link_holds_its_frames_until_given_back_or_revoked():
    """PeerMesh.lend: a writer thread sends one frame on a dup of the link's socket
    (an ensemble follower's ACK, once durable). The frames the loop queues meanwhile go
    after it (the rest of a partly sent frame before them) -- unless the lease can be
    revoked (the writer has not begun to send): then they go at once and it does not."""
    import errno
    import os

    async def main():
        ports = free_ports(2)
        addrs = {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
        inbox = {1: [], 2: []}
        meshes = {i: PeerMesh(i, addrs, lambda frm, m, i=i: inbox[i].append(m), min_backoff=0.01)
                  for i in addrs}
        for m in meshes.values():
            await m.start()
        try:
            await _until(lambda: meshes[1].connected(2) and meshes[2].connected(1))
            went = []
            lease = meshes[1].lend(2, b"from the writer", went.append)
            assert lease is not None
            assert meshes[1].lend(2, b"x", went.append) is None  # one lease at a time
            lease.bind(lambda: False)  # the writer has begun to send
            assert meshes[1].send(2, b"queued while lent")
            await asyncio.sleep(0.1)
            assert inbox[2] == []  # held: it must not overtake the lent frame
            assert os.write(lease.fd, lease.message[:5]) == 5  # the writer sent part
            os.close(lease.fd)
            lease.sent(5)
            await _until(lambda: len(inbox[2]) == 2)
            assert inbox[2] == [b"from the writer", b"queued while lent"] and went == [True]
            # revoked before the writer began: the loop's frame goes now, the lent one never
            lease = meshes[1].lend(2, b"never", went.append)
            lease.bind(lambda: True)
            assert meshes[1].send(2, b"next")
            await _until(lambda: len(inbox[2]) == 3)
            lease2 = meshes[1].lend(2, b"y", went.append)  # the link is free again
            assert lease2 is not None
            os.close(lease.fd)
            lease.sent(-errno.ECANCELED)  # the cancelled answer comes late
            assert went == [True, False] and meshes[1].links[2].lease is lease2
            os.close(lease2.fd)
            lease2.sent(-errno.EAGAIN)  # nothing sent: the link goes on, the caller sends it
            assert meshes[1].send(2, b"last")
            await _until(lambda: len(inbox[2]) == 4)
            assert inbox[2] == [b"from the writer", b"queued while lent", b"next", b"last"]
            # never lent: a TLS link (the socket carries records, not frames), an
            # unknown peer
            meshes[1].links[2].tls = True
            assert meshes[1].lend(2, b"z", went.append) is None
            meshes[1].links[2].tls = False
            assert meshes[1].lend(3, b"z", went.append) is None
        finally:
            for m in meshes.values():
                await m.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
