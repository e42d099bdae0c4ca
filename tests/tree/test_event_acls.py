"""Each event of an ApplyResult carries the ACL of the node it is about.

ZooKeeper (3.8.0 with the CVE-2024-23944 fix, as Debian ships it) checks READ on
that ACL before delivering the event to a watcher; the server filters with it.
"""

from __future__ import annotations

from treeutil import OPEN, Driver, cr

from zabby.wire.constants import EventType, Op
from zabby.wire.records import ACL, DeleteRequest, Id, SetDataRequest

SECRET = [ACL(31, Id("digest", "alice:hash"))]
C, D, X, K = EventType.NODE_CREATED, EventType.NODE_DELETED, EventType.NODE_DATA_CHANGED, \
    EventType.NODE_CHILDREN_CHANGED


def acls_of(r):
    return [list(a) for a in r.events.acls]


def test_create_set_delete_carry_node_and_parent_acls():
    d = Driver()
    r = d.create("/p", acl=SECRET, auth=[Id("super", "")])
    assert r.events == [(C, "/p"), (K, "/")]
    assert acls_of(r) == [SECRET, OPEN]
    r = d.create("/p/c", auth=[Id("super", "")])
    assert acls_of(r) == [OPEN, SECRET]
    r = d.set_data("/p", b"x", auth=[Id("super", "")])
    assert r.events == [(X, "/p")] and acls_of(r) == [SECRET]
    r = d.delete("/p/c", auth=[Id("super", "")])
    assert r.events == [(D, "/p/c"), (K, "/p")] and acls_of(r) == [OPEN, SECRET]


def test_multi_and_session_close_events_keep_acls_in_step():
    d = Driver()
    d.open_session(7)
    r = d.multi([
        cr("/a", acl=SECRET),
        (Op.SET_DATA, SetDataRequest("/a", b"1", -1)),
        cr("/e", flags=1),
        (Op.DELETE, DeleteRequest("/a", -1)),
    ], sid=7, auth=[Id("super", "")])
    assert len(r.events) == len(r.events.acls) == 7
    assert acls_of(r) == [SECRET, OPEN, SECRET, OPEN, OPEN, SECRET, OPEN]
    r = d.close_session(7)
    assert r.events == [(D, "/e"), (K, "/")] and acls_of(r) == [OPEN, OPEN]
