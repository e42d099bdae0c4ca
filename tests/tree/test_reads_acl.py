"""Reads and ACLs: permission checks, redaction, schemes, ordering of children."""

from __future__ import annotations

import pytest
from treeutil import IP, OPEN, Driver

from zabby.tree import CreateTxn
from zabby.tree.acl import (
    OPEN_ACL_UNSAFE,
    ACLError,
    check_perm,
    digest_id,
    fixup_acl,
    ip_matches,
    ip_valid,
)
from zabby.wire.constants import Err, Op, Perm
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import (
    ACL,
    GetEphemeralsRequest,
    Id,
    PathRequest,
    PathWatchRequest,
)

WORLD = Id("world", "anyone")


@pytest.fixture
def d():
    return Driver()


def test_digest_id_matches_zookeeper():
    # values printed by org.apache.zookeeper.server.auth.DigestAuthenticationProvider
    assert digest_id("foo:bar") == "foo:VNy+Z9IdXrOUk9Rtia4fQS071t4="
    assert digest_id("super:secret") == "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
    assert digest_id("nocolon").startswith("nocolon:")


@pytest.mark.parametrize(
    "expr,valid",
    [
        ("127.0.0.1", True),
        ("10.0.0.0/8", True),
        ("10.0.0.0/0", True),
        ("10.0.0.0/32", True),
        ("10.0.0.0/33", False),
        ("10.0.0.0/-1", False),
        ("10.0.0.0/", False),
        ("10.0.0", False),
        ("10.0.0.256", False),
        ("+10.0.0.01", True),  # Integer.parseInt accepts a sign and leading zeros
        ("::1", False),  # ZooKeeper 3.8.0's IP provider is IPv4 only
        ("fe80::/10", False),
        ("", False),
        ("a.b.c.d", False),
    ],
)
def test_ip_valid(expr, valid):
    assert ip_valid(expr) is valid


@pytest.mark.parametrize(
    "client,expr,match",
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.1", False),
        ("127.0.0.2", "127.0.0.0/24", True),
        ("127.0.1.2", "127.0.0.0/24", False),
        ("192.168.5.9", "192.168.4.0/23", True),
        ("192.168.6.9", "192.168.4.0/23", False),
        ("8.8.8.8", "1.2.3.4/0", True),
        ("10.1.2.3", "10.255.255.255/8", True),
        ("::1", "127.0.0.1", False),
        ("127.0.0.1", "::1", False),
    ],
)
def test_ip_matches(client, expr, match):
    assert ip_matches(client, expr) is match


def test_check_perm_rules():
    dig = Id("digest", digest_id("u:p"))
    acl = [ACL(Perm.READ, dig), ACL(Perm.WRITE, Id("ip", "10.0.0.0/8"))]
    assert check_perm(acl, Perm.READ, [IP, dig])
    assert not check_perm(acl, Perm.READ, [IP])
    assert check_perm(acl, Perm.WRITE, [Id("ip", "10.1.1.1")])
    assert not check_perm(acl, Perm.WRITE, [dig])
    assert check_perm(acl, Perm.ADMIN, [Id("super", "")])  # super bypasses
    assert check_perm([], Perm.ADMIN, [])  # an empty ACL allows everything
    assert check_perm([ACL(Perm.ALL, WORLD)], Perm.DELETE, [])
    assert not check_perm([ACL(Perm.READ, WORLD)], Perm.DELETE, [])
    # perms are tested per entry: READ|ADMIN passes with either
    assert check_perm([ACL(Perm.ADMIN, WORLD)], Perm.READ | Perm.ADMIN, [])


@pytest.mark.parametrize(
    "acl,err",
    [
        ([], Err.INVALIDACL),
        ([ACL(31, Id("world", "nobody"))], Err.INVALIDACL),
        ([ACL(31, Id("world", None))], Err.MARSHALLINGERROR),
        ([ACL(31, Id(None, "x"))], Err.INVALIDACL),
        ([ACL(31, Id("auth", ""))], Err.INVALIDACL),  # the session has no digest id
        ([ACL(31, Id("digest", "u:p"))], Err.OK),
        ([ACL(31, Id("digest", "u:"))], Err.INVALIDACL),
        ([ACL(31, Id("digest", "u:p:"))], Err.OK),  # Java split drops trailing empties
        ([ACL(31, Id("digest", ":p"))], Err.OK),
        ([ACL(31, Id("digest", "u:p:q"))], Err.INVALIDACL),
        ([ACL(31, Id("digest", None))], Err.MARSHALLINGERROR),
        ([ACL(31, Id("ip", "10.0.0.0/8"))], Err.OK),
        ([ACL(31, Id("ip", "::1"))], Err.INVALIDACL),
        ([ACL(31, Id("super", ""))], Err.INVALIDACL),
        ([ACL(31, Id("sasl", "bob"))], Err.INVALIDACL),
        ([ACL(0, WORLD)], Err.OK),
    ],
)
def test_acl_validation_on_create(d, acl, err):
    assert d.create("/x", acl=acl).err == err


def test_null_acl_is_invalid(d):
    from zabby.wire.records import CreateRequest

    assert d.write(Op.CREATE, CreateRequest("/x", b"", None, 0)).err == Err.INVALIDACL


def test_auth_scheme_expands_to_digest_ids(d):
    alice = Id("digest", digest_id("alice:pw"))
    r = d.create("/a", acl=[ACL(31, Id("auth", ""))], auth=[IP, alice])
    assert r.err == 0
    assert d.tree.get_node("/a").acl == (ACL(31, alice),)
    # ip ids are not "authenticated": not added
    assert d.create("/b", acl=[ACL(31, Id("auth", "whatever"))], auth=[IP]).err == Err.INVALIDACL
    # duplicate ACL entries are dropped
    d.create("/c", acl=[ACL(31, WORLD), ACL(31, WORLD)])
    assert d.tree.get_node("/c").acl == (ACL(31, WORLD),)


def test_read_permissions(d):
    d.create("/noread", b"secret", acl=[ACL(Perm.ALL & ~Perm.READ, WORLD)])
    assert d.get("/noread") == (Err.NOAUTH, None)
    assert d.children("/noread") == (Err.NOAUTH, None)
    assert d.read(Op.GET_CHILDREN2, PathWatchRequest("/noread", False))[0] == Err.NOAUTH
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/noread"))[0] == Err.NOAUTH
    # exists checks no ACL
    err, resp = d.read(Op.EXISTS, PathWatchRequest("/noread", False))
    assert err == 0 and resp.stat.dataLength == 6
    # getACL needs READ or ADMIN: ADMIN is there
    assert d.acl("/noread")[0] == 0
    # super sees everything
    assert d.get("/noread", auth=[IP, Id("super", "")])[1].data == b"secret"


def test_reads_missing_and_odd_paths(d):
    assert d.get("/nope") == (Err.NONODE, None)
    # reads do not validate paths: they are just not found
    assert d.get("nope") == (Err.NONODE, None)
    assert d.get("/zookeeper/") == (Err.NONODE, None)
    assert d.read(Op.EXISTS, PathWatchRequest("/a\x00", False)) == (Err.BADARGUMENTS, None)
    assert d.read(Op.EXISTS, PathWatchRequest("/nope", False)) == (Err.NONODE, None)
    assert d.get(None) == (Err.MARSHALLINGERROR, None)
    assert d.read(Op.SYNC, PathRequest("/"))[0] == Err.UNIMPLEMENTED


def test_get_acl_redacts_digest_without_admin(d):
    bob = digest_id("bob:pw")
    alice = Id("digest", digest_id("alice:pw"))
    d.create("/d", acl=[ACL(Perm.READ, Id("digest", bob)), ACL(Perm.ADMIN, alice), ACL(Perm.READ, WORLD)])
    err, resp = d.acl("/d")
    assert err == 0
    assert resp.acl == [ACL(1, Id("digest", "bob:x")), ACL(16, Id("digest", "alice:x")), ACL(1, WORLD)]
    err, resp = d.acl("/d", auth=[IP, alice])
    assert resp.acl[0] == ACL(1, Id("digest", bob))
    d.create("/none", acl=[ACL(Perm.WRITE, WORLD)])
    assert d.acl("/none") == (Err.NOAUTH, None)
    assert d.acl("/missing") == (Err.NONODE, None)


def test_get_all_children_number(d):
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/"))[1].totalNumber == 3
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest(""))[1].totalNumber == 4
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/zookeeper"))[1].totalNumber == 2
    d.create("/a")
    d.create("/a/b")
    d.create("/a/b/c")
    d.create("/ab")
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/a"))[1].totalNumber == 2
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/a/b/c"))[1].totalNumber == 0
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/"))[1].totalNumber == 7
    assert d.read(Op.GET_ALL_CHILDREN_NUMBER, PathRequest("/x"))[0] == Err.NONODE


def test_get_ephemerals(d):
    d.open_session(5)
    d.open_session(6)
    d.create("/a")
    d.create("/a/e1", flags=1, sid=5)
    d.create("/a/e2", flags=1, sid=5)
    d.create("/b", flags=1, sid=5)
    d.create("/a/o", flags=1, sid=6)

    def eph(prefix, sid=5):
        err, resp = d.read(Op.GET_EPHEMERALS, GetEphemeralsRequest(prefix), sid=sid)
        assert err == 0
        return resp.ephemerals

    assert sorted(eph("/")) == ["/a/e1", "/a/e2", "/b"]
    assert sorted(eph(None)) == ["/a/e1", "/a/e2", "/b"]
    assert sorted(eph("  /  ")) == ["/a/e1", "/a/e2", "/b"]
    assert sorted(eph("/a")) == ["/a/e1", "/a/e2"]
    assert eph("/a/e2") == ["/a/e2"]
    assert eph("/b/") == []  # plain string prefix
    assert eph("/", sid=6) == ["/a/o"]
    assert eph("/", sid=7) == []


def test_children_listed_in_zookeeper_order(d):
    # the order Apache ZooKeeper 3.8.0 returned for exactly this history
    d.create("/g")
    for i in range(20):
        d.create(f"/g/node-{i}")
    for i in range(0, 20, 4):
        d.delete(f"/g/node-{i}")
    d.create("/g/node-0")
    d.create("/g/ü")
    assert d.children("/g")[1] == [
        "node-0", "node-1", "node-2", "node-3", "node-15", "node-14", "node-5", "node-13",
        "node-6", "node-7", "node-11", "node-10", "node-9", "node-19", "node-18", "node-17", "ü",
    ]


def test_multi_read(d):
    d.create("/a", b"A")
    d.create("/a/b")
    d.create("/secret", acl=[ACL(Perm.WRITE, WORLD)])
    err, resp = d.read(Op.MULTI_READ, MultiRequest([
        (Op.GET_DATA, PathWatchRequest("/a", False)),
        (Op.GET_CHILDREN, PathWatchRequest("/a", False)),
        (Op.GET_DATA, PathWatchRequest("/nope", False)),
        (Op.GET_CHILDREN, PathWatchRequest("/secret", False)),
    ]))
    assert err == 0
    r = resp.results
    assert r[0][0] == Op.GET_DATA and r[0][1] == 0 and r[0][2].data == b"A"
    assert r[1][0] == Op.GET_CHILDREN and r[1][2].children == ["b"]
    assert r[2][:2] == (Op.ERROR, Err.NONODE) and r[2][2].err == Err.NONODE
    assert r[3][:2] == (Op.ERROR, Err.NOAUTH)
    # a write op in a read multi fails the whole request
    err, resp = d.read(Op.MULTI_READ, MultiRequest([(Op.DELETE, PathRequest("/a"))]))
    assert (err, resp) == (Err.MARSHALLINGERROR, None)


def test_fixup_acl_raises():
    with pytest.raises(ACLError) as e:
        fixup_acl([], [IP])
    assert e.value.err == Err.INVALIDACL
    assert fixup_acl(OPEN, []) == OPEN


def test_fixup_acl_shares_one_list_per_world_anyone_acl():
    # the usual one-entry world:anyone ACL comes back as the interned list (no copy
    # per create); other perms get their own, and anything else takes the long way
    fresh = [ACL(int(Perm.ALL), Id("world", "anyone"))]
    got = fixup_acl(fresh, [])
    assert got == fresh and got is fixup_acl([ACL(int(Perm.ALL), Id("world", "anyone"))], [])
    assert got is OPEN_ACL_UNSAFE
    with pytest.raises(TypeError):
        got.append(ACL(1, Id("ip", "1.2.3.4")))
    read = fixup_acl([ACL(int(Perm.READ), Id("world", "anyone"))], [])
    assert read == [ACL(int(Perm.READ), Id("world", "anyone"))] and read is not got
    with pytest.raises(ACLError) as e:
        fixup_acl([ACL(int(Perm.ALL), Id("world", "someone"))], [])
    assert e.value.err == Err.INVALIDACL
    with pytest.raises(ACLError) as e:
        fixup_acl([ACL(int(Perm.ALL), Id("world", None))], [])
    assert e.value.err == Err.MARSHALLINGERROR


def test_an_interned_acl_list_encodes_as_its_plain_list_does():
    # the interned list keeps its vector encoding after the first txn writes it
    acl = fixup_acl([ACL(int(Perm.READ | Perm.WRITE), Id("world", "anyone"))], [])
    plain = CreateTxn("/a", b"x", [ACL(int(Perm.READ | Perm.WRITE), Id("world", "anyone"))],
                      False, 1)
    first = CreateTxn("/a", b"x", acl, False, 1).to_bytes()
    assert first == plain.to_bytes()
    assert CreateTxn("/b", None, acl, True, 2).to_bytes() == CreateTxn(
        "/b", None, list(acl), True, 2).to_bytes()
    assert CreateTxn.decode(first).acl == acl
