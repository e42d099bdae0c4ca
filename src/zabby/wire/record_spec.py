"""Every record of the ZooKeeper 3.8 client protocol (see `zookeeper.jute`): the spec.

`wire/records.py`, which the server and the client import, is written from these
declarations by `python -m zabby.cli.gen_records` (`make records`): the same classes as
plain source, which mypyc compiles into native classes. The classes here, built by
jute's metaclass, are the reference: tests/wire/test_records_generated.py checks that
records.py is what the generator writes now, and that both encode and decode alike.
Edit this file, then regenerate.
"""

from __future__ import annotations

from .jute import Record, vector


class Id(Record):
    FIELDS = (("scheme", "ustring"), ("id", "ustring"))


class ACL(Record):
    FIELDS = (("perms", "int"), ("id", Id))


class Stat(Record):
    FIELDS = (
        ("czxid", "long"),
        ("mzxid", "long"),
        ("ctime", "long"),
        ("mtime", "long"),
        ("version", "int"),
        ("cversion", "int"),
        ("aversion", "int"),
        ("ephemeralOwner", "long"),
        ("dataLength", "int"),
        ("numChildren", "int"),
        ("pzxid", "long"),
    )


class ClientInfo(Record):
    FIELDS = (("authScheme", "ustring"), ("user", "ustring"))


# ------------------------------------------------------------------ session
class ConnectRequest(Record):
    """The first frame of a connection. `readOnly` is optional on the wire."""

    FIELDS = (
        ("protocolVersion", "int"),
        ("lastZxidSeen", "long"),
        ("timeOut", "int"),
        ("sessionId", "long"),
        ("passwd", "buffer"),
    )


class ConnectResponse(Record):
    FIELDS = (
        ("protocolVersion", "int"),
        ("timeOut", "int"),
        ("sessionId", "long"),
        ("passwd", "buffer"),
    )


class RequestHeader(Record):
    FIELDS = (("xid", "int"), ("type", "int"))


class ReplyHeader(Record):
    FIELDS = (("xid", "int"), ("zxid", "long"), ("err", "int"))


class MultiHeader(Record):
    FIELDS = (("type", "int"), ("done", "bool"), ("err", "int"))


class AuthPacket(Record):
    FIELDS = (("type", "int"), ("scheme", "ustring"), ("auth", "buffer"))


class WatcherEvent(Record):
    FIELDS = (("type", "int"), ("state", "int"), ("path", "ustring"))


class SetWatches(Record):
    FIELDS = (
        ("relativeZxid", "long"),
        ("dataWatches", vector("ustring")),
        ("existWatches", vector("ustring")),
        ("childWatches", vector("ustring")),
    )


class SetWatches2(Record):
    FIELDS = (
        ("relativeZxid", "long"),
        ("dataWatches", vector("ustring")),
        ("existWatches", vector("ustring")),
        ("childWatches", vector("ustring")),
        ("persistentWatches", vector("ustring")),
        ("persistentRecursiveWatches", vector("ustring")),
    )


# ------------------------------------------------------------------ requests
class PathRequest(Record):
    """Requests that carry only a path (getACL, sync, getAllChildrenNumber, ...)."""

    FIELDS = (("path", "ustring"),)


class PathWatchRequest(Record):
    """exists / getData / getChildren / getChildren2: a path and a watch flag."""

    FIELDS = (("path", "ustring"), ("watch", "bool"))


class CreateRequest(Record):
    FIELDS = (
        ("path", "ustring"),
        ("data", "buffer"),
        ("acl", vector(ACL)),
        ("flags", "int"),
    )


class CreateTTLRequest(Record):
    FIELDS = (
        ("path", "ustring"),
        ("data", "buffer"),
        ("acl", vector(ACL)),
        ("flags", "int"),
        ("ttl", "long"),
    )


class DeleteRequest(Record):
    FIELDS = (("path", "ustring"), ("version", "int"))


class SetDataRequest(Record):
    FIELDS = (("path", "ustring"), ("data", "buffer"), ("version", "int"))


class SetACLRequest(Record):
    FIELDS = (("path", "ustring"), ("acl", vector(ACL)), ("version", "int"))


class CheckVersionRequest(Record):
    FIELDS = (("path", "ustring"), ("version", "int"))


class ReconfigRequest(Record):
    FIELDS = (
        ("joiningServers", "ustring"),
        ("leavingServers", "ustring"),
        ("newMembers", "ustring"),
        ("curConfigId", "long"),
    )


class AddWatchRequest(Record):
    FIELDS = (("path", "ustring"), ("mode", "int"))


class WatchTypeRequest(Record):
    """checkWatches / removeWatches: a path and a WatcherType."""

    FIELDS = (("path", "ustring"), ("type", "int"))


class GetEphemeralsRequest(Record):
    FIELDS = (("prefixPath", "ustring"),)


class SaslToken(Record):
    FIELDS = (("token", "buffer"),)


class Empty(Record):
    """A request or response without a body (ping, closeSession, delete reply...)."""

    FIELDS = ()


# ----------------------------------------------------------------- responses
class PathResponse(Record):
    """create (path only) and sync replies."""

    FIELDS = (("path", "ustring"),)


class Create2Response(Record):
    FIELDS = (("path", "ustring"), ("stat", Stat))


class StatResponse(Record):
    """exists, setData, setACL replies."""

    FIELDS = (("stat", Stat),)


class GetDataResponse(Record):
    FIELDS = (("data", "buffer"), ("stat", Stat))


class GetChildrenResponse(Record):
    FIELDS = (("children", vector("ustring")),)


class GetChildren2Response(Record):
    FIELDS = (("children", vector("ustring")), ("stat", Stat))


class GetACLResponse(Record):
    FIELDS = (("acl", vector(ACL)), ("stat", Stat))


class GetAllChildrenNumberResponse(Record):
    FIELDS = (("totalNumber", "int"),)


class GetEphemeralsResponse(Record):
    FIELDS = (("ephemerals", vector("ustring")),)


class WhoAmIResponse(Record):
    FIELDS = (("clientInfo", vector(ClientInfo)),)


class ErrorResponse(Record):
    FIELDS = (("err", "int"),)
