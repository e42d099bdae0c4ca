"""Peer message codec: round trips, and nothing but MalformedMessage for bad bytes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.consensus import messages as m

SAMPLES = [
    (m.NOTIFICATION, m.Notification(3, 0x500000002, 5, 9, 0)),
    (m.FOLLOWERINFO, m.FollowerInfo(4, False, 2)),
    (m.ACKEPOCH, m.AckEpoch(3, 0x300000007)),
    (m.ACK, m.Ack(0x400000001, True)),
    (m.LEADERINFO, m.Empty()),
    (m.SYNC, m.Sync(m.SYNC_SNAP, 0x200000001, b"state")),
    (m.SYNC, m.Sync(m.SYNC_TRUNC, 0x100000004, None)),
    (m.ENTRIES, m.Entries([m.Entry(1, b""), m.Entry(2, b"x" * 300)])),
    (m.NEWLEADER, m.Zxid(7)),
    (m.UPTODATE, m.Zxid(7)),
    (m.COMMIT, m.Zxid(7)),
    (m.PING, m.Zxid(0)),
]


@pytest.mark.parametrize("t,body", SAMPLES)
def test_round_trip(t, body):
    data = m.encode(t, body, epoch=4, session=99, seq=12)
    head, got = m.decode(data)
    assert (head.type, head.epoch, head.session, head.seq) == (t, 4, 99, 12)
    assert got == body
    for i in range(len(data)):
        with pytest.raises(m.MalformedMessage):
            m.decode(data[:i])
    with pytest.raises(m.MalformedMessage):
        m.decode(data + b"\x00")


@pytest.mark.parametrize("t,body", [
    (99, m.Empty()),
    (m.SYNC, m.Sync(7, 1, None)),
    (m.SYNC, m.Sync(m.SYNC_DIFF, 1, b"data only with SNAP")),
    (m.ENTRIES, m.Entries([])),
    (m.ENTRIES, m.Entries([m.Entry(5, b"a"), m.Entry(4, b"b")])),
    (m.NOTIFICATION, m.Notification(1, 1, 1, 1, 9)),
    (m.ACK, m.Ack(-1, False)),
])
def test_invalid_messages_are_malformed(t, body):
    with pytest.raises(m.MalformedMessage):
        m.decode(m.encode(t, body))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_malformed(data):
    try:
        m.decode(data)
    except m.MalformedMessage:
        pass


def test_a_notification_of_a_release_before_reconfiguration_is_understood():
    from zabby.consensus.messages import NotificationV1

    old = m.Header(m.NOTIFICATION, 0, 0, 0).to_bytes() + NotificationV1(3, 7, 1, 2, 0).to_bytes()
    head, body = m.decode(old)
    assert head.type == m.NOTIFICATION
    assert (body.leader, body.zxid, body.peer_epoch, body.election_epoch, body.state) == (
        3, 7, 1, 2, 0)
    assert body.config_version == 0 and body.config is None
    new = m.encode(m.NOTIFICATION, m.Notification(3, 7, 1, 2, 0, 5, b"cfg"))
    assert int.from_bytes(new[:4], "big") == m.NOTIFICATION_CFG  # an old release drops it
    head, body = m.decode(new)
    assert head.type == m.NOTIFICATION and body.config == b"cfg"
    for i in range(len(old)):
        with pytest.raises(m.MalformedMessage):
            m.decode(old[:i])
