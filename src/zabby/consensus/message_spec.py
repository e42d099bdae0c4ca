"""The records of zabby's peer messages (see consensus/messages.py): the spec from which
`python -m zabby.cli.gen_records` writes `consensus/message_records.py`, as
`wire/record_spec.py` is for `wire/records.py`.
"""

from __future__ import annotations

from ..wire.jute import Record, vector
from ..wire.record_spec import Id


class Header(Record):
    FIELDS = (("type", "int"), ("epoch", "long"), ("session", "long"), ("seq", "int"))


class Notification(Record):
    """Fast leader election vote: (peer_epoch, zxid, leader) ordered, plus round and state."""

    FIELDS = (
        ("leader", "long"), ("zxid", "long"), ("peer_epoch", "long"),
        ("election_epoch", "long"), ("state", "int"),
        # the sender's configuration (version, opaque description): a server that
        # sees a newer one while looking adopts it (a joiner or a laggard learns the
        # membership this way, as ZooKeeper's notifications carry the config)
        ("config_version", "long"), ("config", "buffer"),
    )


class NotificationV1(Record):
    """A notification of a release before reconfiguration (no configuration): still
    understood, as version 0 with no description, so that a rolling upgrade works."""

    FIELDS = Notification.FIELDS[:5]


class FollowerInfo(Record):
    FIELDS = (("accepted_epoch", "long"), ("observer", "bool"), ("accepted_leader", "long"))


class AckEpoch(Record):
    FIELDS = (("current_epoch", "long"), ("last_zxid", "long"))


class Ack(Record):
    FIELDS = (("zxid", "long"), ("newleader", "bool"))


class Empty(Record):
    FIELDS = ()


class Sync(Record):
    """Start of synchronisation: mode DIFF (zxid = learner's last, checked), TRUNC
    (truncate to zxid) or SNAP (install `data`, the state at zxid)."""

    FIELDS = (("mode", "int"), ("zxid", "long"), ("data", "buffer"))


class Entry(Record):
    FIELDS = (("zxid", "long"), ("payload", "buffer"))


class Entries(Record):
    FIELDS = (("entries", vector(Entry)),)


class Zxid(Record):
    FIELDS = (("zxid", "long"),)


# The quorum port's forwarded write (server/pipeline.py's K_FORWARD), generated like the
# rest so that a learner's write is encoded and decoded natively. The port's other kinds
# (touches, syncs) are rare and hold vectors of longs, which the generator does not do:
# they stay jute records in pipeline.py.
class Forwarded(Record):
    """A client write a learner passes to the leader."""

    FIELDS = (("session", "long"), ("cxid", "int"), ("op", "int"),
              ("auth", vector(Id)), ("body", "buffer"))
