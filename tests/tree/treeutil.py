"""Helpers for the tree tests: a tiny driver that plays the server's role."""

from __future__ import annotations

from zabby.tree import ApplyResult, DataTree, RequestContext, Txn
from zabby.wire.constants import Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    Id,
    PathRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
)

OPEN = [ACL(31, Id("world", "anyone"))]
IP = Id("ip", "127.0.0.1")


class Driver:
    """Assigns zxids and times like a server and applies each write at once."""

    def __init__(self, tree: DataTree | None = None, **kw) -> None:
        self.tree = tree if tree is not None else DataTree(**kw)
        self.zxid = self.tree.last_zxid
        self.time = 1_000

    def ctx(self, sid: int = 1, auth=None) -> RequestContext:
        self.zxid += 1
        self.time += 1
        return RequestContext(sid, self.zxid, self.zxid, self.time, [IP] if auth is None else auth)

    def prepare(self, op, body, sid: int = 1, auth=None) -> Txn:
        return self.tree.prepare(op, body, self.ctx(sid, auth))

    def write(self, op, body, sid: int = 1, auth=None) -> ApplyResult:
        return self.tree.apply(self.prepare(op, body, sid, auth))

    def read(self, op, body, sid: int = 1, auth=None):
        return self.tree.read(op, body, [IP] if auth is None else auth, sid)

    # shorthands
    def create(self, path, data=b"", flags=0, acl=None, sid=1, auth=None, op=Op.CREATE):
        return self.write(op, CreateRequest(path, data, OPEN if acl is None else acl, flags), sid, auth)

    def create_ttl(self, path, ttl, flags=5, data=b"", sid=1):
        return self.write(Op.CREATE_TTL, CreateTTLRequest(path, data, OPEN, flags, ttl), sid)

    def delete(self, path, version=-1, sid=1, auth=None):
        return self.write(Op.DELETE, DeleteRequest(path, version), sid, auth)

    def set_data(self, path, data, version=-1, sid=1, auth=None):
        return self.write(Op.SET_DATA, SetDataRequest(path, data, version), sid, auth)

    def set_acl(self, path, acl, version=-1, sid=1, auth=None):
        return self.write(Op.SET_ACL, SetACLRequest(path, acl, version), sid, auth)

    def check(self, path, version):
        return CheckVersionRequest(path, version)

    def multi(self, ops, sid=1, auth=None):
        return self.write(Op.MULTI, MultiRequest(ops), sid, auth)

    def open_session(self, sid: int, timeout: int = 30_000):
        return self.write(Op.CREATE_SESSION, timeout, sid)

    def close_session(self, sid: int):
        return self.write(Op.CLOSE_SESSION, None, sid)

    def get(self, path, sid=1, auth=None):
        return self.read(Op.GET_DATA, PathWatchRequest(path, False), sid, auth)

    def stat(self, path):
        return self.tree.stat(path)

    def children(self, path, auth=None):
        err, resp = self.read(Op.GET_CHILDREN, PathWatchRequest(path, False), auth=auth)
        return err, (resp.children if resp is not None else None)

    def acl(self, path, auth=None):
        return self.read(Op.GET_ACL, PathRequest(path), auth=auth)


def cr(path, data=b"", flags=0, acl=None):
    return (Op.CREATE, CreateRequest(path, data, OPEN if acl is None else acl, flags))
