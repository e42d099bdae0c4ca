"""Peer messages: a compact binary format built from jute records.

Every message is a `Header` (type, epoch, session, seq) followed by the body
record of its type. `epoch` is the Zab epoch the sender is acting in (0 where it
does not apply); `session` names one learner<->leader connection attempt (chosen
by the learner, random); `seq` numbers the leader's messages within a session so
the learner can see loss, duplication and reordering (the transport is allowed to
do all three; Zab itself needs FIFO, which the session + seq rebuild).

A checksum is the transport's business, not this module's.
"""

from __future__ import annotations

from typing import Any, Final

from zabby.wire.jute import ProtocolError

from .message_records import (
    Ack,
    AckEpoch,
    Empty,
    Entries,
    Entry,
    FollowerInfo,
    Header,
    Notification,
    NotificationV1,
    Sync,
    Zxid,
)

__all__ = [
    "ACK", "ACKEPOCH", "COMMIT", "ENTRIES", "FOLLOWERINFO", "LEADERINFO", "NEWLEADER",
    "NOTIFICATION", "NOTIFICATION_CFG", "PEER_ACK", "PEER_ACK_WANT", "PING", "SYNC", "UPTODATE",
    "MalformedMessage",
    "decode", "encode",
    "SYNC_DIFF", "SYNC_TRUNC", "SYNC_SNAP",
    # the records (consensus/message_records.py, generated)
    "Ack", "AckEpoch", "Empty", "Entries", "Entry", "FollowerInfo", "Header",
    "Notification", "NotificationV1", "Sync", "Zxid",
]


class MalformedMessage(ValueError):
    """Bytes that are not a valid peer message."""


NOTIFICATION: Final = 1
FOLLOWERINFO: Final = 2
ACKEPOCH: Final = 3
ACK: Final = 4
LEADERINFO: Final = 5
SYNC: Final = 6
ENTRIES: Final = 7
NEWLEADER: Final = 8
UPTODATE: Final = 9
COMMIT: Final = 10
PING: Final = 11
# a notification with the sender's configuration, sent for NOTIFICATION since
# reconfiguration; type 1 (without it) is still understood, so members of an earlier
# release are heard during a rolling upgrade (they drop this type as unknown)
NOTIFICATION_CFG: Final = 12
# a follower's broadcast ACK sent to the other voting followers as well as the leader:
# a follower that sees a quorum durable (its own log and these) commits without
# waiting for the leader's COMMIT (Peer._on_peer_ack). An earlier release drops it as
# an unknown type, which only costs its receiver the shortcut.
PEER_ACK: Final = 13
# a follower holding client writes asks the other voting followers for their PEER_ACKs
# (for a while: Peer.want_peer_acks); no one else gets them
PEER_ACK_WANT: Final = 14

SYNC_DIFF, SYNC_TRUNC, SYNC_SNAP = 1, 2, 3

BODY: dict[int, Any] = {  # message type -> its body record class
    NOTIFICATION: Notification,
    NOTIFICATION_CFG: Notification,
    FOLLOWERINFO: FollowerInfo,
    ACKEPOCH: AckEpoch,
    ACK: Ack,
    LEADERINFO: Empty,
    SYNC: Sync,
    ENTRIES: Entries,
    NEWLEADER: Zxid,
    UPTODATE: Zxid,
    COMMIT: Zxid,
    PING: Zxid,
    PEER_ACK: Ack,
    PEER_ACK_WANT: Zxid,
}

NAMES = {
    NOTIFICATION: "NOTIFICATION", FOLLOWERINFO: "FOLLOWERINFO", ACKEPOCH: "ACKEPOCH",
    ACK: "ACK", LEADERINFO: "LEADERINFO", SYNC: "SYNC", ENTRIES: "ENTRIES",
    NEWLEADER: "NEWLEADER", UPTODATE: "UPTODATE", COMMIT: "COMMIT", PING: "PING",
    NOTIFICATION_CFG: "NOTIFICATION", PEER_ACK: "PEER_ACK", PEER_ACK_WANT: "PEER_ACK_WANT",
}

_ZXID_MAX = (1 << 63) - 1


def encode(mtype: int, body: Any, *, epoch: int = 0, session: int = 0, seq: int = 0) -> bytes:
    if mtype == NOTIFICATION:
        mtype = NOTIFICATION_CFG
    out = bytearray()
    Header(mtype, epoch, session, seq).encode(out)
    body.encode(out)
    return bytes(out)


def decode(data: bytes) -> tuple[Header, Any]:
    """Decode one message; raise MalformedMessage for anything not exactly valid."""
    body: Any  # (declared: mypyc would type it by the first assignment, a Notification)
    try:
        head, pos = Header.decode_from(data, 0)
        cls = BODY.get(head.type)
        if cls is None:
            raise MalformedMessage(f"unknown message type {head.type}")
        if head.type == NOTIFICATION:
            # a release before reconfiguration: no configuration in it
            old, pos = NotificationV1.decode_from(data, pos)
            body = Notification(*(getattr(old, n) for n, _ in NotificationV1.FIELDS))
        else:
            body, pos = cls.decode_from(data, pos)
            if head.type == NOTIFICATION_CFG:
                head.type = NOTIFICATION  # one kind of vote for the peer
    except ProtocolError as e:
        raise MalformedMessage(str(e)) from None
    if pos != len(data):
        raise MalformedMessage(f"{len(data) - pos} trailing bytes after {NAMES[head.type]}")
    if head.epoch < 0 or head.seq < 0:
        raise MalformedMessage("negative epoch or seq")
    if head.epoch > 0xFFFFFFFF:
        raise MalformedMessage("epoch out of range")
    _validate(head.type, body)
    return head, body


def _validate(mtype: int, body) -> None:
    if mtype == NOTIFICATION:
        if body.state not in (0, 1, 2, 3) or body.election_epoch < 0 or body.peer_epoch < 0 \
                or body.config_version < 0:
            raise MalformedMessage("bad notification")
    elif mtype == SYNC:
        if body.mode not in (SYNC_DIFF, SYNC_TRUNC, SYNC_SNAP) or body.zxid < 0:
            raise MalformedMessage("bad sync")
        if (body.mode == SYNC_SNAP) != (body.data is not None):
            raise MalformedMessage("snapshot data only with SNAP")
    elif mtype == ENTRIES:
        if not body.entries:
            raise MalformedMessage("empty entries")
        prev = 0
        for e in body.entries:
            if e.zxid <= prev or e.payload is None:
                raise MalformedMessage("entries out of order")
            prev = e.zxid
    elif mtype == FOLLOWERINFO:
        if body.accepted_epoch < 0:
            raise MalformedMessage("bad followerinfo")
    elif mtype == ACKEPOCH:
        if body.current_epoch < 0 or body.last_zxid < 0:
            raise MalformedMessage("bad ackepoch")
    elif mtype in (ACK, NEWLEADER, UPTODATE, COMMIT, PING, PEER_ACK, PEER_ACK_WANT):
        if body.zxid < 0:
            raise MalformedMessage("negative zxid")
