"""Hostile vector counts and long ACLs, compared with Apache ZooKeeper 3.8.

ZooKeeper 3.8 reads a vector count of -1 as null and any other negative count
as an empty vector (its index is done at once), so a create/setACL whose ACL
count is negative fails INVALIDACL (per op inside a multi); a count larger than
the frame fails MARSHALLINGERROR. Long ACL lists are deduplicated in order.
"""

from __future__ import annotations

import struct

import pytest

from zabby.testing.differential import Runner
from zabby.wire import ACL, Id, Op

pytestmark = pytest.mark.differential

_COUNTS = (-1, -2, -100, -(2**31), 2**31 - 1, 3)
# each raw request is answered with an error (the connection stays open) or closes it:
# whichever comes first, then 0.05 s for a close after the answer (108 requests: a
# fixed 0.3 s wait for each took 23 s)
_ANSWER = {"wait": 3.0, "after_reply": 0.05}


def _us(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _create_body(path: str, count: int, op: int) -> bytes:
    flags = {Op.CREATE_TTL: 5, Op.CREATE_CONTAINER: 4}.get(op, 0)
    body = _us(path) + struct.pack(">i", 1) + b"x" + struct.pack(">i", count) + struct.pack(">i", flags)
    if op == Op.CREATE_TTL:
        body += struct.pack(">q", 60000)
    return body


def _frame(xid: int, op: int, body: bytes) -> bytes:
    p = struct.pack(">ii", xid, op) + body
    return struct.pack(">i", len(p)) + p


def _multi_body(ops: list[tuple[int, bytes]]) -> bytes:
    out = b""
    for op, body in ops:
        out += struct.pack(">i?i", op, False, -1) + body
    return out + struct.pack(">i?i", -1, True, -1)


def scenario_negative_acl_counts(r: Runner) -> None:
    b = r.base
    r.session("a")
    r.create("a", f"{b}/node", b"")
    for i, count in enumerate(_COUNTS):
        # the scenario outlasts the 10 s session timeout: ping every session each
        # round, or the first ones expire (a closeSession txn) just before the last
        # reads on one server and just after them on the other (it failed CI so)
        r.keepalive()
        for op in (Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER):
            name = f"s{i}-{op}"
            r.session(name)
            r.send_raw(name, _frame(5, op, _create_body(f"{b}/c{i}-{op}", count, op)),
                       f"create op {op} acl count {count}", **_ANSWER)
        name = f"s{i}-acl"
        r.session(name)
        body = _us(f"{b}/node") + struct.pack(">i", count) + struct.pack(">i", -1)
        r.send_raw(name, _frame(6, Op.SET_ACL, body), f"setACL acl count {count}", **_ANSWER)
        name = f"s{i}-multi"
        r.session(name)
        body = _multi_body([(Op.CREATE, _create_body(f"{b}/m{i}", count, Op.CREATE)),
                            (Op.CREATE_TTL, _create_body(f"{b}/mt{i}", count, Op.CREATE_TTL))])
        r.send_raw(name, _frame(7, Op.MULTI, body), f"multi acl count {count}", **_ANSWER)
    r.children2("a", b)
    r.get_acl("a", f"{b}/node")


def scenario_long_acl_lists(r: Runner) -> None:
    b = r.base
    r.session("a")
    ids = [ACL(31 - (i % 3), Id("digest", f"user{i % 2500}:h")) for i in range(6000)]
    world = [ACL(31, Id("world", "anyone"))]
    r.create("a", f"{b}/long", b"", acl=ids + world + ids)
    r.get_acl("a", f"{b}/long")
    r.set_acl("a", f"{b}/long", list(reversed(ids)) + world)
    r.get_acl("a", f"{b}/long")
    r.create("a", f"{b}/bad", b"", acl=ids + [ACL(31, Id("digest", "nocolon"))])
    r.delete("a", f"{b}/long")


@pytest.mark.parametrize("scenario", [scenario_negative_acl_counts, scenario_long_acl_lists],
                         ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_hostile_vectors(differential, scenario):
    differential(scenario)
