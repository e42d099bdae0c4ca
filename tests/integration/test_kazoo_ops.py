"""Every opcode kazoo can send, against a real zabby server process.

kazoo 2.11 has no public API for createContainer, createTTL, getEphemerals,
getAllChildrenNumber, whoAmI or multiRead; the first five go through kazoo's own
connection here as small request classes (``_call``), multiRead is left to the
differential suite.

Set ZABBY_IT_TARGET=zookeeper to run this module against Apache ZooKeeper 3.8 instead
(the expectations here are ZooKeeper's behaviour; that is how they were checked).
"""

from __future__ import annotations

import struct
import time
from collections import namedtuple

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.serialization import (
    Create2,
    int_struct,
    read_string,
    write_string,
)
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)
from kazoo_common import TARGET, TIMEOUT, client_factory, empty_tree
from kazoo_common import target_server as _server

SUPER_PASSWORD = "sup3r"
# "super:<base64 sha1>" -- the form DigestAuthenticationProvider.superDigest takes.
SUPER_DIGEST = make_digest_acl_credential("super", SUPER_PASSWORD)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _server(
            tmp_path_factory.mktemp("kazoo-ops"),
            tickTime=200,
            extendedTypesEnabled=True,
            **{"DigestAuthenticationProvider.superDigest": SUPER_DIGEST},
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def no_ttl_server(tmp_path_factory):
    with _server(tmp_path_factory.mktemp("kazoo-ops-nottl"), tickTime=200) as srv:
        yield srv


def _connect(srv, **kw):
    kw.setdefault("timeout", 5.0)
    c = KazooClient(hosts=srv.hosts, **kw)
    c.start(timeout=TIMEOUT)
    return c


@pytest.fixture
def clients(server):
    """Factory of connected kazoo clients on `server`, all closed after the test."""
    yield from client_factory(server.hosts, timeout=5.0)


@pytest.fixture
def zk(server, clients):
    """A connected client; the tree is emptied (with super rights) before the test."""
    empty_tree(clients(auth_data=[("digest", f"super:{SUPER_PASSWORD}")]))
    return clients()


# ---------------------------------------------------------------- raw requests via kazoo
class CreateContainer(Create2):
    type = 19


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = Create2(self.path, self.data, self.acl, self.flags).serialize()
        b.extend(struct.pack(">q", self.ttl))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return Create2.deserialize(buf, offset)


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self):
        return bytearray(write_string(self.prefix))

    @classmethod
    def deserialize(cls, buf, offset):
        n = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(max(n, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        return out


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


class WhoAmI:
    type = 107  # (not an empty namedtuple: kazoo drops replies to falsy requests)

    def serialize(self):
        return bytearray()

    @classmethod
    def deserialize(cls, buf, offset):
        n = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(max(n, 0)):
            scheme, offset = read_string(buf, offset)
            ident, offset = read_string(buf, offset)
            out.append((scheme, ident))
        return out


def call(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=TIMEOUT)


# CreateMode flags
PERSISTENT, EPHEMERAL, SEQUENTIAL, EPHEMERAL_SEQUENTIAL, CONTAINER = 0, 1, 2, 3, 4
PERSISTENT_WITH_TTL, PERSISTENT_SEQUENTIAL_WITH_TTL = 5, 6


def wait_until(pred, timeout=TIMEOUT, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ------------------------------------------------------------------------------ create
def test_create_persistent_and_create2_stat(zk):
    path, stat = zk.create("/p", b"data", include_data=True)
    assert path == "/p"
    assert stat.version == 0 and stat.cversion == 0 and stat.aversion == 0
    assert stat.dataLength == 4 and stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid and stat.czxid > 0
    data, stat2 = zk.get("/p")
    assert data == b"data" and stat2 == stat
    # The parent's cversion and pzxid moved.
    pstat = zk.exists("/")
    assert pstat.pzxid == stat.czxid
    with pytest.raises(NodeExistsError):
        zk.create("/p")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")


def test_create_ephemeral(zk, clients):
    other = clients()
    path, stat = zk.create("/e", b"x", ephemeral=True, include_data=True)
    assert path == "/e"
    assert stat.ephemeralOwner == zk.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/e/child")
    # Visible to other sessions while the owner lives.
    assert other.exists("/e").ephemeralOwner == zk.client_id[0]


def test_create_sequential_and_ephemeral_sequential(zk):
    zk.create("/s")
    a = zk.create("/s/n-", sequence=True)
    b = zk.create("/s/n-", ephemeral=True, sequence=True)
    c = zk.create("/s/", sequence=True)
    assert (a, b, c) == ("/s/n-0000000000", "/s/n-0000000001", "/s/0000000002")
    assert zk.exists(b).ephemeralOwner == zk.client_id[0]
    assert zk.exists(a).ephemeralOwner == 0
    # Deleting a child does not hand its number out again.
    zk.delete(a)
    assert zk.create("/s/n-", sequence=True) == "/s/n-0000000003"


def test_makepath(zk):
    assert zk.create("/m/a/b/c", b"leaf", makepath=True) == "/m/a/b/c"
    assert zk.get("/m/a/b/c")[0] == b"leaf"
    assert zk.get("/m/a")[0] == b""
    zk.ensure_path("/m/a/b/c/d/e")
    assert zk.exists("/m/a/b/c/d/e") is not None


def test_create_container(zk):
    path, stat = call(zk, CreateContainer("/c", b"box", OPEN_ACL_UNSAFE, CONTAINER))
    assert path == "/c" and stat.version == 0
    assert zk.get("/c")[0] == b"box"
    zk.create("/c/child")
    zk.delete("/c/child")
    if TARGET == "zookeeper":
        return  # ZooKeeper's ContainerManager checks once a minute
    # An emptied container is removed by the server (zabby checks every tick).
    assert wait_until(lambda: zk.exists("/c") is None, timeout=5)


def test_create_ttl(zk):
    path, stat = call(zk, CreateTTL("/ttl", b"t", OPEN_ACL_UNSAFE, PERSISTENT_WITH_TTL, 300))
    assert path == "/ttl" and stat.version == 0
    spath, _ = call(
        zk, CreateTTL("/ttls-", b"", OPEN_ACL_UNSAFE, PERSISTENT_SEQUENTIAL_WITH_TTL, 300)
    )
    assert spath.startswith("/ttls-") and len(spath) == len("/ttls-") + 10
    # ttl <= 0 or a non-TTL mode with a ttl is BADARGUMENTS.
    with pytest.raises(BadArgumentsError):
        call(zk, CreateTTL("/bad", b"", OPEN_ACL_UNSAFE, PERSISTENT_WITH_TTL, 0))
    with pytest.raises(BadArgumentsError):
        call(zk, CreateTTL("/bad", b"", OPEN_ACL_UNSAFE, PERSISTENT, 300))
    assert zk.exists("/bad") is None
    if TARGET == "zookeeper":
        return
    # Unmodified for longer than its TTL and childless: removed by the server.
    assert wait_until(lambda: zk.exists("/ttl") is None and zk.exists(spath) is None, timeout=5)


def test_ttl_and_container_edge_cases(zk):
    # Only the two TTL modes take a TTL; ephemeral or container modes are refused.
    for flags in (EPHEMERAL, EPHEMERAL_SEQUENTIAL, CONTAINER):
        with pytest.raises(BadArgumentsError):
            call(zk, CreateTTL("/bad", b"", OPEN_ACL_UNSAFE, flags, 1000))
    # A TTL is at most 2^40 - 1 ms.
    with pytest.raises(BadArgumentsError):
        call(zk, CreateTTL("/bad", b"", OPEN_ACL_UNSAFE, PERSISTENT_WITH_TTL, 1 << 40))
    assert zk.exists("/bad") is None
    call(zk, CreateTTL("/long", b"", OPEN_ACL_UNSAFE, PERSISTENT_WITH_TTL, (1 << 40) - 1))
    # A TTL node's stat does not show the TTL as an ephemeral owner.
    assert zk.exists("/long").ephemeralOwner == 0
    # Children of a container and a TTL node are allowed, ephemeral ones too.
    call(zk, CreateContainer("/box", b"", OPEN_ACL_UNSAFE, CONTAINER))
    zk.create("/box/e", ephemeral=True)
    zk.create("/long/child")
    if TARGET == "zookeeper":
        return
    # Nodes with children stay; an unused (never had a child) container stays too.
    call(zk, CreateContainer("/unused", b"", OPEN_ACL_UNSAFE, CONTAINER))
    call(zk, CreateTTL("/parent", b"", OPEN_ACL_UNSAFE, PERSISTENT_WITH_TTL, 200))
    zk.create("/parent/kid")
    time.sleep(1.0)  # five ticks
    assert zk.exists("/unused") is not None
    assert zk.exists("/parent") is not None and zk.exists("/box") is not None
    zk.delete("/parent/kid")
    assert wait_until(lambda: zk.exists("/parent") is None, timeout=5)


def test_create_ttl_needs_extended_types(no_ttl_server):
    c = _connect(no_ttl_server)
    try:
        with pytest.raises(UnimplementedError):
            call(c, CreateTTL("/ttl", b"", OPEN_ACL_UNSAFE, PERSISTENT_WITH_TTL, 1000))
        assert c.exists("/ttl") is None
    finally:
        c.stop()
        c.close()


# ------------------------------------------------------------------- delete / set / get
def test_delete_with_versions(zk):
    zk.create("/d", b"0")
    zk.set("/d", b"1")
    with pytest.raises(BadVersionError):
        zk.delete("/d", version=0)
    assert zk.exists("/d") is not None
    zk.delete("/d", version=1)
    assert zk.exists("/d") is None
    with pytest.raises(NoNodeError):
        zk.delete("/d")
    zk.create("/d2/child", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete("/d2")
    zk.delete("/d2", recursive=True)
    assert zk.exists("/d2") is None


def test_set_with_versions(zk):
    _, created = zk.create("/v", b"a", include_data=True)
    st = zk.set("/v", b"bb", version=0)
    assert st.version == 1 and st.dataLength == 2
    assert st.mzxid > created.mzxid and st.czxid == created.czxid
    assert st.mtime >= created.mtime
    with pytest.raises(BadVersionError):
        zk.set("/v", b"c", version=0)
    assert zk.get("/v")[0] == b"bb"
    st = zk.set("/v", b"", version=-1)
    assert st.version == 2 and st.dataLength == 0
    with pytest.raises(NoNodeError):
        zk.set("/nope", b"x")


def test_exists_and_get(zk):
    assert zk.exists("/x") is None
    with pytest.raises(NoNodeError):
        zk.get("/x")
    zk.create("/x", b"\x00\xffbinary")
    data, stat = zk.get("/x")
    assert data == b"\x00\xffbinary" and stat.dataLength == 8
    assert zk.exists("/x") == stat
    # The root and the /zookeeper subtree are there.
    assert zk.exists("/") is not None
    assert "quota" in zk.get_children("/zookeeper")


def test_large_value_up_to_the_limit(zk):
    big = bytes(range(256)) * 4000  # ~1 MB - 24 KiB: under jute.maxbuffer
    zk.create("/big", big)
    assert zk.get("/big")[0] == big


def test_get_children_include_data(zk):
    zk.create("/kids")
    for name in ("b", "a", "c"):
        zk.create("/kids/" + name)
    assert sorted(zk.get_children("/kids")) == ["a", "b", "c"]
    children, stat = zk.get_children("/kids", include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert stat.numChildren == 3 and stat.cversion == 3
    assert stat == zk.exists("/kids")
    assert zk.get_children("/kids/a") == []
    with pytest.raises(NoNodeError):
        zk.get_children("/nokids")


def test_sync(zk, clients):
    other = clients()
    other.create("/synced", b"1")
    assert zk.sync("/synced") == "/synced"
    assert zk.get("/synced")[0] == b"1"
    # sync of a missing path still succeeds in ZooKeeper (it is a no-op barrier).
    assert zk.sync("/not-there") == "/not-there"


# ---------------------------------------------------------------------- transactions
def test_transaction_success(zk):
    zk.create("/t", b"0")
    tx = zk.transaction()
    tx.check("/t", 0)
    tx.create("/t/a", b"a")
    tx.create("/t/s-", b"", sequence=True)
    tx.set_data("/t", b"1", version=0)
    tx.delete("/t/a")
    results = tx.commit()
    assert results[0] is True
    assert results[1] == "/t/a"
    assert results[2] == "/t/s-0000000001"
    assert results[3].version == 1
    assert results[4] is True
    assert zk.get("/t")[0] == b"1"
    assert zk.get_children("/t") == ["s-0000000001"]
    # All ops of a multi share one zxid.
    assert results[3].mzxid == zk.exists("/t/s-0000000001").czxid


def test_transaction_failure_rolls_back(zk):
    zk.create("/t", b"0")
    before = zk.exists("/t")
    tx = zk.transaction()
    tx.create("/t/new", b"")
    tx.set_data("/t", b"1")
    tx.check("/t", 7)  # fails
    tx.delete("/t")
    results = tx.commit()
    assert [type(r) for r in results] == [
        RolledBackError,
        RolledBackError,
        BadVersionError,
        RuntimeInconsistency,
    ]
    assert zk.exists("/t/new") is None
    assert zk.get("/t") == (b"0", before)
    # A failed multi is not a change to the tree: nothing moved.
    tx = zk.transaction()
    tx.create("/t/x")
    tx.create("/nope/y")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError) and isinstance(results[1], NoNodeError)
    assert zk.exists("/t").cversion == before.cversion


def test_empty_transaction(zk):
    assert zk.transaction().commit() == []


# ------------------------------------------------------------------------ ACLs & auth
def test_get_and_set_acls_with_versions(zk):
    zk.create("/a", b"")
    acls, stat = zk.get_acls("/a")
    assert list(acls) == OPEN_ACL_UNSAFE and stat.aversion == 0
    st = zk.set_acls("/a", READ_ACL_UNSAFE + [make_acl("world", "anyone", admin=True)], 0)
    assert st.aversion == 1 and st.version == 0
    with pytest.raises(BadVersionError):
        zk.set_acls("/a", OPEN_ACL_UNSAFE, version=0)
    acls, _ = zk.get_acls("/a")
    assert sorted(a.perms for a in acls) == [Permissions.READ, Permissions.ADMIN]
    # READ but no WRITE/CREATE/DELETE for anyone
    with pytest.raises(NoAuthError):
        zk.set("/a", b"x")
    with pytest.raises(NoAuthError):
        zk.create("/a/child")
    assert zk.get("/a")[0] == b""
    # ADMIN lets us put it back.
    zk.set_acls("/a", OPEN_ACL_UNSAFE)
    zk.set("/a", b"x")
    with pytest.raises(NoNodeError):
        zk.get_acls("/nope")
    with pytest.raises(NoNodeError):
        zk.set_acls("/nope", OPEN_ACL_UNSAFE)


def test_invalid_acls(zk):
    zk.create("/a")
    with pytest.raises(InvalidACLError):
        zk.set_acls("/a", [])
    with pytest.raises(InvalidACLError):
        zk.create("/b", acl=[ACL(Permissions.ALL, Id("nosuchscheme", "x"))])
    # auth scheme without any authenticated identity
    with pytest.raises(InvalidACLError):
        zk.create("/b", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    # malformed digest id (no colon)
    with pytest.raises(InvalidACLError):
        zk.create("/b", acl=[ACL(Permissions.ALL, Id("digest", "nocolon"))])
    assert zk.exists("/b") is None


def test_digest_acl(zk, clients):
    acl = make_digest_acl("alice", "pw", all=True)
    zk.add_auth("digest", "alice:pw")
    zk.create("/secret", b"s", acl=[acl])
    assert zk.get("/secret")[0] == b"s"
    acls, _ = zk.get_acls("/secret")
    assert list(acls) == [acl]

    stranger = clients()
    for op in (
        lambda: stranger.get("/secret"),
        lambda: stranger.set("/secret", b"x"),
        lambda: stranger.create("/secret/c"),
        lambda: stranger.get_children("/secret"),
        lambda: stranger.set_acls("/secret", OPEN_ACL_UNSAFE),
    ):
        with pytest.raises(NoAuthError):
            op()
    # exists is not ACL-checked; getACL needs READ or ADMIN
    assert stranger.exists("/secret") is not None
    with pytest.raises(NoAuthError):
        stranger.get_acls("/secret")

    # A wrong password is accepted as an identity, but a different one.
    wrong = clients(auth_data=[("digest", "alice:wrong")])
    with pytest.raises(NoAuthError):
        wrong.get("/secret")
    right = clients(auth_data=[("digest", "alice:pw")])
    assert right.get("/secret")[0] == b"s"
    # add_auth on a live session works too.
    stranger.add_auth("digest", "alice:pw")
    assert stranger.get("/secret")[0] == b"s"


def test_delete_checks_the_parents_acl(zk, clients):
    zk.add_auth("digest", "bob:pw")
    # The parent lets anyone read/create but only bob delete.
    zk.create(
        "/dir",
        acl=[
            make_acl("world", "anyone", read=True, create=True),
            make_digest_acl("bob", "pw", delete=True),
        ],
    )
    other = clients()
    other.create("/dir/f", acl=OPEN_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        other.delete("/dir/f")
    zk.delete("/dir/f")
    assert zk.exists("/dir/f") is None


def test_auth_scheme_acl(zk, clients):
    zk.add_auth("digest", "carol:pw")
    zk.create("/mine", b"m", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _ = zk.get_acls("/mine")
    # "auth" is replaced by the creator's authenticated identities.
    assert list(acls) == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("carol", "pw")))]
    with pytest.raises(NoAuthError):
        clients().get("/mine")
    assert clients(auth_data=[("digest", "carol:pw")]).get("/mine")[0] == b"m"


def test_ip_acl(zk, clients):
    zk.create("/local", b"l", acl=[make_acl("ip", "127.0.0.1", all=True)])
    zk.create("/subnet", b"n", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    zk.create("/far", b"f", acl=[make_acl("ip", "10.1.2.3", all=True)])
    other = clients()
    assert other.get("/local")[0] == b"l"
    assert other.get("/subnet")[0] == b"n"
    with pytest.raises(NoAuthError):
        other.set("/subnet", b"x")
    with pytest.raises(NoAuthError):
        other.get("/far")
    with pytest.raises(InvalidACLError):
        zk.create("/bad", acl=[make_acl("ip", "not-an-address", all=True)])


def test_super_digest(zk, clients):
    zk.create("/locked", b"l", acl=[make_digest_acl("dave", "pw", read=True)])
    with pytest.raises(NoAuthError):
        zk.get("/locked")
    su = clients(auth_data=[("digest", f"super:{SUPER_PASSWORD}")])
    assert su.get("/locked")[0] == b"l"
    su.set("/locked", b"changed")
    su.set_acls("/locked", OPEN_ACL_UNSAFE)
    assert zk.get("/locked")[0] == b"changed"
    # super with the wrong password is just another digest identity.
    fake = clients(auth_data=[("digest", "super:wrong")])
    fake_node = fake.create("/fake", acl=[make_digest_acl("dave", "pw", read=True)])
    with pytest.raises(NoAuthError):
        fake.get(fake_node)


def test_unknown_auth_scheme_fails_the_session(server):
    c = KazooClient(hosts=server.hosts, timeout=5.0)
    c.start(timeout=TIMEOUT)
    try:
        with pytest.raises(AuthFailedError):
            c.add_auth("nosuchscheme", "x")
    finally:
        c.stop()
        c.close()


# ----------------------------------------------------------- whoAmI, ephemerals, counts
def test_whoami(zk, clients):
    assert call(zk, WhoAmI()) == [("ip", "127.0.0.1")]
    authed = clients(auth_data=[("digest", "erin:pw")])
    assert sorted(call(authed, WhoAmI())) == [("digest", "erin"), ("ip", "127.0.0.1")]


def test_get_ephemerals(zk, clients):
    zk.create("/eph/a", ephemeral=True, makepath=True)
    zk.create("/eph/b", ephemeral=True)
    zk.create("/other", ephemeral=True)
    clients().create("/eph/not-mine", ephemeral=True)
    assert sorted(call(zk, GetEphemerals("/"))) == ["/eph/a", "/eph/b", "/other"]
    assert sorted(call(zk, GetEphemerals("/eph"))) == ["/eph/a", "/eph/b"]
    assert call(zk, GetEphemerals("/nothing")) == []


def test_get_all_children_number(zk):
    zk.create("/n/a/b", makepath=True)
    zk.create("/n/c")
    assert call(zk, GetAllChildrenNumber("/n")) == 3
    assert call(zk, GetAllChildrenNumber("/n/a/b")) == 0
    with pytest.raises(NoNodeError):
        call(zk, GetAllChildrenNumber("/absent"))


def test_server_version(server, zk):
    assert zk.server_version() == (3, 8, 0)
    assert zk.command(b"ruok") == "imok"
