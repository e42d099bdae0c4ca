"""The ACL matrix: every opcode x every permission x every ACL scheme, differential.

Each scenario runs on Apache ZooKeeper 3.8 and on zabby; the transcripts (error
code, body, Stat, zxid, watch events) must be identical. Nothing here states which
permission an opcode needs: ZooKeeper's answers are the specification.

Shape of the matrix
-------------------
* A **column** is an ACL subject: the id written into a node's ACL (``world:anyone``,
  ``digest:alice:<hash>``, ``auth:`` expanded from its creator, ``ip:`` host / CIDR
  that matches / CIDR that does not, ...) plus the **identities** whose sessions probe
  it (one that the id names and ones it does not).
* A **row** is a permission set: each single bit, ALL, none at all, and (for the
  ``world`` column) ALL minus each bit.
* For every (column, row, probing identity) there is one node
  ``<base>/<column>/<row>-<identity>`` with ACL ``[(row, column id)]``, created by the
  column's creator, with children made by the super user (who passes every check).
  The probing session then sends every opcode against that node (``OPS`` below); the
  super user then writes to the node so any watch the probe was (not) given fires.

Adding a scheme (the hook for x509 and sasl)
--------------------------------------------
Add an ``Identity`` to ``IDENTITIES`` and a ``Column`` to ``COLUMNS``; nothing else
changes. An identity says how a session becomes that principal:

* ``auth``: addauth packets sent right after connecting (digest, ip, ...);
* ``connect``: a function ``(runner, session_name) -> None`` that opens the session
  itself, for a principal fixed at connection time. x509 will use it: build a
  ``RawClient`` subclass whose ``open()`` wraps the socket in TLS with the client's
  certificate and connects to the server's secureClientPort, register it in
  ``runner.sessions[name]`` and call ``runner._connect(name, client, "connect(tls)")``.
  The column is then ``Column("x509", Id("x509", "<subject DN>"), probes=(
  "x509-client", "x509-other", "anon"))``.
* sasl: an ``Identity`` whose ``connect`` opens a plain session and runs the SASL
  DIGEST-MD5 exchange (``Op.SASL`` packets) before the matrix starts; the column is
  ``Column("sasl", Id("sasl", "<user>"), ...)``.
* ``requires``: server configuration the identity needs (TLS keystores, a JAAS file,
  ``authProvider.N``). Both servers must get it identically: add it to ``DIFF_CFG``
  in ``conftest.py`` (the session-scoped pair) if it is harmless for the other
  differential tests, otherwise start a pair for this module with ``start_pair``.
  ``test_identities_are_configured`` fails while a required key is missing.

Until TLS and SASL land, ``x509:`` and ``sasl:`` ids are only exercised as ACL ids a
default server rejects (``scenario_invalid_acls``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from zabby.testing.differential import NULL_ACL, Runner, delete_tree, digest_acl, run_scenario
from zabby.testing.differential import MultiOp as M
from zabby.wire import (
    ACL,
    AddWatchMode,
    Id,
    MultiRequest,
    Op,
    PathWatchRequest,
    Perm,
    ReconfigRequest,
    SetACLRequest,
    SetWatches,
    WatcherType,
)

from .conftest import DIFF_CFG, SUPER_PASSWORD, SUPER_USER, start_pair

pytestmark = pytest.mark.differential

R, W, C, D, A = (int(p) for p in (Perm.READ, Perm.WRITE, Perm.CREATE, Perm.DELETE, Perm.ADMIN))
ALL = int(Perm.ALL)
PERM_NAMES = {R: "r", W: "w", C: "c", D: "d", A: "a", ALL: "all", 0: "none"}

# CreateMode flags
PERSISTENT, EPHEMERAL, SEQ, EPH_SEQ, CONTAINER, TTL = range(6)


def perm_name(p: int) -> str:
    if p in PERM_NAMES:
        return PERM_NAMES[p]
    return "all-" + PERM_NAMES[ALL & ~p]


SINGLE_BITS = (R, W, C, D, A)
ROWS = (*SINGLE_BITS, ALL, 0)
ROWS_WITH_COMPLEMENTS = (*ROWS, *(ALL & ~b for b in SINGLE_BITS))


# ------------------------------------------------------------------ identities
@dataclass(frozen=True)
class Identity:
    """A principal a session can be, and how a session becomes it."""

    name: str
    auth: tuple[tuple[str, bytes], ...] = ()  # addauth (scheme, credential) after connecting
    connect: Callable[[Runner, str], None] | None = None  # opens the session itself (x509)
    requires: dict[str, object] = field(default_factory=dict)  # server config it needs

    def login(self, r: Runner, session: str) -> None:
        if self.connect is not None:
            self.connect(r, session)
        else:
            r.session(session)
        for scheme, cred in self.auth:
            r.add_auth(session, scheme, cred)


IDENTITIES = {
    i.name: i
    for i in (
        Identity("anon"),
        Identity("alice", auth=(("digest", b"alice:secret"),)),
        Identity("alicebad", auth=(("digest", b"alice:wrong"),)),
        Identity("bob", auth=(("digest", b"bob:pw"),)),
        Identity("alicebob", auth=(("digest", b"alice:secret"), ("digest", b"bob:pw"))),
        Identity("ipauth", auth=(("ip", b"127.0.0.1"),)),
        Identity(
            "super",
            auth=(("digest", f"{SUPER_USER}:{SUPER_PASSWORD}".encode()),),
            requires={"DigestAuthenticationProvider.superDigest": ...},
        ),
        # x509 / sasl: see the module docstring.
    )
}

ALICE = digest_acl("alice", "secret").id
BOB = digest_acl("bob", "pw").id
AUTH = Id("auth", "")


@dataclass(frozen=True)
class Column:
    """An ACL subject and the identities that probe nodes guarded by it."""

    name: str
    acl_id: Id  # Id("auth", "") is expanded from the creator's authenticated ids
    probes: tuple[str, ...]
    creator: str = "super"
    rows: tuple[int, ...] = ROWS


COLUMNS = (
    Column("world", Id("world", "anyone"), ("anon",), rows=ROWS_WITH_COMPLEMENTS),
    Column("digest", ALICE, ("alice", "alicebad", "anon")),
    Column("auth", AUTH, ("alice", "bob", "anon"), creator="alice"),
    Column("iphost", Id("ip", "127.0.0.1"), ("anon",)),
    Column("ipcidr", Id("ip", "127.0.0.0/8"), ("anon",)),
    Column("ipmiss", Id("ip", "10.0.0.0/8"), ("anon", "ipauth")),
    # the node names someone else; the super user passes every check anyway
    Column("super", BOB, ("super",)),
)


# --------------------------------------------------------------------- helpers
def _login(r: Runner, identity: str, session: str | None = None) -> str:
    session = session or identity
    if session not in r.sessions:
        IDENTITIES[identity].login(r, session)
    return session


def _probe(r: Runner, s: str, n: str, acl: list[ACL]) -> None:
    """Every opcode from session s against node n (whose ACL is acl)."""
    # reads, with watches (registered only when the read is allowed)
    r.exists(s, n, watch=True)
    r.get(s, n, watch=True)
    r.children(s, n, watch=True)
    r.children2(s, n)
    r.all_children_number(s, n)
    r.get_acl(s, n)
    r.multi_read(s, [M.get(n), M.children(n)])
    r.call(s, Op.MULTI_READ, _multi_read_one(n), label="multiRead(get only)")
    r.sync(s, n)
    # writes on the node itself
    r.set(s, n, b"w")
    r.set_acl(s, n, acl)
    # creates under it, every mode
    r.create(s, f"{n}/p", b"", op=Op.CREATE)
    r.create(s, f"{n}/p2", b"")
    r.create(s, f"{n}/e", b"", flags=EPHEMERAL)
    r.create(s, f"{n}/s-", b"", flags=SEQ, op=Op.CREATE)
    r.create(s, f"{n}/es-", b"", flags=EPH_SEQ)
    r.create(s, f"{n}/k", b"", flags=CONTAINER, op=Op.CREATE_CONTAINER)
    r.create(s, f"{n}/t", b"", flags=TTL, ttl=600000)
    r.delete(s, f"{n}/c1")
    # the same inside multi
    r.multi(s, [M.check(n, -1)])
    r.multi(s, [M.set(n, b"m")])
    r.multi(s, [M.create(f"{n}/m")])
    r.multi(s, [M.create_ttl(f"{n}/mt", ttl=600000)])
    r.multi(s, [M.delete(f"{n}/c2")])
    r.multi(s, [M.check(n, -1), M.create(f"{n}/m2"), M.delete(f"{n}/c3")])
    # watches and session-scoped reads
    r.add_watch(s, n, AddWatchMode.PERSISTENT_RECURSIVE)
    r.check_watches(s, n, WatcherType.ANY)
    r.ephemerals(s, n)


def _multi_read_one(n: str):
    return MultiRequest([(Op.GET_DATA, PathWatchRequest(n, False))])


def _admin_touch(r: Runner, admin: str, n: str, acl: list[ACL]) -> None:
    """The super user changes n and its children: fires whatever watches the probe
    holds (an event reaches only a session that may READ the node it is about)."""
    r.set(admin, n, b"touched")
    r.create(admin, f"{n}/z", b"")  # an open child
    r.delete(admin, f"{n}/z")
    r.create(admin, f"{n}/y", b"", acl=acl)  # a child guarded like n
    r.set(admin, f"{n}/y", b"y")
    r.delete(admin, f"{n}/y")


def _stored_acl(col: Column, perm: int) -> list[ACL]:
    if col.acl_id == AUTH:  # what the creator's auth ids expand to
        creator = IDENTITIES[col.creator]
        ids = [digest_acl(*c.decode().split(":", 1)).id for s, c in creator.auth if s == "digest"]
        return [ACL(perm, i) for i in ids]
    return [ACL(perm, col.acl_id)]


def _cleanup(r: Runner, admin: str) -> None:
    """Unrecorded: the super user empties the base (the runner's probe cannot)."""
    c = r.sessions[admin]
    if not c.connected:
        return
    rep = c.request(Op.GET_CHILDREN, PathWatchRequest(r.base, False))
    for child in rep.body.children if rep.err == 0 else ():
        delete_tree(c, f"{r.base}/{child}")


# ------------------------------------------------------------------- scenarios
def make_column_scenario(col: Column):
    def scenario(r: Runner) -> None:
        b = r.base
        admin = _login(r, "super", "admin")
        r.whoami(admin)
        creator = admin if col.creator == "super" else _login(r, col.creator, "creator")
        probes = [_login(r, p, f"p_{p}") for p in col.probes]
        for s in probes:
            r.whoami(s)
        d = f"{b}/{col.name}"
        r.create(admin, d, b"")
        try:
            for perm in col.rows:
                for p, s in zip(col.probes, probes, strict=True):
                    n = f"{d}/{perm_name(perm)}-{p}"
                    r.note(f"{col.name} perm={perm_name(perm)} probe={p}")
                    r.create(creator, n, b"data", acl=[ACL(perm, col.acl_id)])
                    for child in ("c1", "c2", "c3", "d"):
                        r.create(admin, f"{n}/{child}", b"")
                    _probe(r, s, n, _stored_acl(col, perm))
                    _admin_touch(r, admin, n, _stored_acl(col, perm))
                    r.remove_watches(s, n, WatcherType.ANY)
                    r.children2(admin, n)
        finally:
            _cleanup(r, admin)

    scenario.__name__ = f"scenario_acl_matrix_{col.name}"
    return scenario


BAD_ACLS = {
    "empty": [],
    "null": NULL_ACL,
    "unknown-scheme": [ACL(ALL, Id("bogus", "anyone"))],
    "world-someone": [ACL(ALL, Id("world", "someone"))],
    "auth": [ACL(ALL, AUTH)],
    "auth-with-id": [ACL(ALL, Id("auth", "alice"))],
    "digest-nocolon": [ACL(ALL, Id("digest", "nocolon"))],
    "digest-2colons": [ACL(ALL, Id("digest", "a:b:c"))],
    "digest-empty": [ACL(ALL, Id("digest", ""))],
    "digest-trailing-colon": [ACL(ALL, Id("digest", "alice:"))],
    "digest-plain": [ACL(ALL, Id("digest", "alice:secret"))],  # valid: not a hash, never matches
    "ip-bad": [ACL(ALL, Id("ip", "999.1.1.1"))],
    "ip-bits": [ACL(ALL, Id("ip", "127.0.0.1/33"))],
    "ip-short": [ACL(ALL, Id("ip", "127.0.1"))],
    "ip-v6": [ACL(ALL, Id("ip", "::1"))],
    "ip-name": [ACL(ALL, Id("ip", "localhost"))],
    "ip-empty": [ACL(ALL, Id("ip", ""))],
    "super-id": [ACL(ALL, Id("super", ""))],
    "x509-id": [ACL(ALL, Id("x509", "CN=client"))],
    "sasl-id": [ACL(ALL, Id("sasl", "alice"))],
    "valid-then-bad": [ACL(ALL, Id("world", "anyone")), ACL(ALL, Id("ip", "1.2.3"))],
    "duplicates": [ACL(R, Id("world", "anyone")), ACL(R, Id("world", "anyone"))],
    "perms-0": [ACL(0, Id("world", "anyone"))],
    "perms-32": [ACL(32 | R, Id("world", "anyone"))],
    "perms-neg": [ACL(-1, Id("world", "anyone"))],
    "auth-and-digest": [ACL(R, AUTH), ACL(ALL, BOB)],
}


def scenario_invalid_acls(r: Runner) -> None:
    """Every bad (and borderline) ACL on create, create in multi and setACL, per identity."""
    b = r.base
    admin = _login(r, "super", "admin")
    for who in ("anon", "ipauth", "alice", "alicebob", "super"):
        s = _login(r, who, f"s_{who}") if who != "super" else admin
        r.note(f"invalid ACLs from {who}")
        r.create(admin, f"{b}/{who}", b"")
        for name, acl in BAD_ACLS.items():
            n = f"{b}/{who}/{name}"
            r.create(s, n, b"", acl=acl)
            r.get_acl(admin, n)
            r.create(admin, f"{n}-s", b"")
            if acl is NULL_ACL:
                r.call(s, Op.SET_ACL, SetACLRequest(f"{n}-s", None, -1), label="SET_ACL(null acl)")
            else:
                r.set_acl(s, f"{n}-s", acl)
            r.get_acl(admin, f"{n}-s")
            if acl is not NULL_ACL:
                r.multi(s, [M.create(f"{n}-m", acl=acl)])
    _cleanup(r, admin)


def scenario_parent_vs_node(r: Runner) -> None:
    """Which node's ACL an op consults: a child open to all under a parent with one
    bit, and a locked child under an open parent."""
    b = r.base
    admin = _login(r, "super", "admin")
    s = _login(r, "anon", "anon")
    for perm in ROWS:
        p = f"{b}/par-{perm_name(perm)}"
        r.create(admin, p, b"", acl=[ACL(perm, Id("world", "anyone"))])
        r.create(admin, f"{p}/open", b"")
        r.create(admin, f"{p}/gone", b"")
        r.create(admin, f"{p}/locked", b"", acl=[ACL(0, Id("world", "anyone"))])
        r.create(admin, f"{p}/locked/x", b"")
        r.note(f"parent perm={perm_name(perm)}: open child")
        r.get(s, f"{p}/open")
        r.set(s, f"{p}/open", b"x")
        r.get_acl(s, f"{p}/open")
        r.create(s, f"{p}/open/c", b"")
        r.delete(s, f"{p}/open/c")
        r.delete(s, f"{p}/gone")
        r.delete(s, f"{p}/missing")  # NOAUTH before NONODE?
        r.create(s, f"{p}/open", b"")  # NOAUTH before NODEEXISTS?
        r.note(f"parent perm={perm_name(perm)}: locked child")
        r.get(s, f"{p}/locked")
        r.children(s, f"{p}/locked")
        r.delete(s, f"{p}/locked/x")
        r.delete(s, f"{p}/locked")  # NOTEMPTY or NOAUTH?
        r.set_acl(admin, f"{p}/locked", [ACL(ALL, Id("world", "anyone"))])
        r.delete(s, f"{p}/locked/x")
        r.delete(s, f"{p}/locked")
        # versions are checked after permissions
        r.set(s, p, b"v", 99)
        r.set_acl(s, p, [ACL(perm, Id("world", "anyone"))], 99)
        r.multi(s, [M.set(p, b"v", 99)])
    _cleanup(r, admin)


def scenario_sessions_and_super(r: Runner) -> None:
    """whoAmI, reconfig, auth expansion and the super user, per identity."""
    b = r.base
    admin = _login(r, "super", "admin")
    for who in IDENTITIES:
        s = _login(r, who, f"w_{who}") if who != "super" else admin
        r.whoami(s)
        r.call(s, Op.RECONFIG, ReconfigRequest(None, None, "", -1), label="reconfig")
        # reconfig is answered before or after the /zookeeper/config ACL check?
        r.set(s, "/zookeeper/config", b"x")
        r.get_acl(s, "/zookeeper/config")
        n = f"{b}/{who}"
        # `auth` expands to the session's authenticated (non-ip, non-super) ids
        r.create(s, n, b"", acl=[ACL(R | A, AUTH), ACL(R, Id("world", "anyone"))])
        r.get_acl(s, n)
        r.get_acl(admin, n)
        r.set_acl(s, n, [ACL(ALL, AUTH)])
        r.get_acl(admin, n)
    # adding an identity later grants access on the same session
    _login(r, "anon", "late")
    r.create(admin, f"{b}/late", b"", acl=[ACL(ALL, ALICE)])
    r.get("late", f"{b}/late")
    r.add_auth("late", "digest", b"alice:wrong")
    r.get("late", f"{b}/late")
    r.add_auth("late", "digest", b"alice:secret")
    r.get("late", f"{b}/late")
    r.add_auth("late", "digest", b"alice:secret")
    r.whoami("late")
    # super by digest: the super user's plain digest id is not super on its own
    r.create(admin, f"{b}/su", b"", acl=[ACL(ALL, digest_acl(SUPER_USER, SUPER_PASSWORD).id)])
    r.create(admin, f"{b}/nobody", b"", acl=[ACL(0, Id("world", "anyone"))])
    r.get(admin, f"{b}/nobody")
    r.set_acl(admin, f"{b}/nobody", [ACL(0, Id("world", "anyone"))])
    r.create(admin, f"{b}/nobody/c", b"")
    r.get("w_alice", f"{b}/su")
    _cleanup(r, admin)


def scenario_watch_delivery(r: Runner) -> None:
    """Events reach a watcher only if it may READ the node when the change happens;
    the watch is used up either way. SetWatches (reconnect) answers are not filtered."""
    b = r.base
    admin = _login(r, "super", "admin")
    w = _login(r, "anon", "w")
    for perm in (R, ALL & ~R):
        n = f"{b}/n-{perm_name(perm)}"
        r.note(f"watches set while open, node then locked to world:{perm_name(perm)}")
        r.create(admin, n, b"")
        r.create(admin, f"{n}/c", b"")
        r.exists(w, n, watch=True)
        r.get(w, f"{n}/c", watch=True)
        r.children(w, n, watch=True)
        r.exists(w, f"{n}/new", watch=True)
        r.add_watch(w, n, AddWatchMode.PERSISTENT)
        r.set_acl(admin, n, [ACL(perm, Id("world", "anyone"))])
        r.set_acl(admin, f"{n}/c", [ACL(perm, Id("world", "anyone"))])
        r.set(admin, n, b"1")
        r.set(admin, f"{n}/c", b"1")
        r.create(admin, f"{n}/new", b"", acl=[ACL(perm, Id("world", "anyone"))])
        r.note("unlocked again: the one-shot watches were used up")
        r.set_acl(admin, n, [ACL(ALL, Id("world", "anyone"))])
        r.set_acl(admin, f"{n}/c", [ACL(ALL, Id("world", "anyone"))])
        r.set(admin, n, b"2")
        r.set(admin, f"{n}/c", b"2")
        r.delete(admin, f"{n}/new")
        r.remove_watches(w, n, WatcherType.ANY)
    r.note("the reader's identity is the one at delivery time")
    n = f"{b}/alice-only"
    r.create(admin, n, b"", acl=[ACL(R, ALICE)])
    r.exists(w, n, watch=True)
    r.add_watch(w, n, AddWatchMode.PERSISTENT_RECURSIVE)
    r.set(admin, n, b"1")
    r.add_auth(w, "digest", b"alice:secret")
    r.set(admin, n, b"2")
    r.exists(w, n, watch=True)
    r.set(admin, n, b"3")
    r.remove_watches(w, n, WatcherType.ANY)
    r.note("an ephemeral with a locked ACL, deleted by closing its session")
    # (one ephemeral per session: ZooKeeper deletes a session's ephemerals in
    # hash-set order)
    _login(r, "alice", "owner")
    _login(r, "alice", "owner2")
    r.create("owner", f"{b}/eph", b"", acl=[ACL(ALL, ALICE)], flags=EPHEMERAL)
    r.create("owner2", f"{b}/eph-open", b"", flags=EPHEMERAL)
    _login(r, "anon", "v")
    r.exists("v", f"{b}/eph", watch=True)
    r.exists("v", f"{b}/eph-open", watch=True)
    r.children("v", b, watch=True)
    r.close("owner")
    r.children("v", b, watch=True)
    r.close("owner2")
    r.note("SetWatches after a reconnect: missed changes are reported unfiltered")
    r.create(admin, f"{b}/locked", b"", acl=[ACL(0, Id("world", "anyone"))])
    rep = r.exists("v", f"{b}/locked")
    z = rep.zxid if rep else 0
    r.set(admin, f"{b}/locked", b"changed")
    r.create(admin, f"{b}/locked/k", b"")
    r.call("v", Op.SET_WATCHES, SetWatches(z, [f"{b}/locked"], [], [f"{b}/locked"]), xid=-8)
    _cleanup(r, admin)


COLUMN_SCENARIOS = [make_column_scenario(c) for c in COLUMNS]
OTHER_SCENARIOS = [
    scenario_invalid_acls,
    scenario_parent_vs_node,
    scenario_sessions_and_super,
    scenario_watch_delivery,
]


def _outcomes(transcript) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in transcript.lines:
        m = re.search(r'"err":"([A-Z_]+)"', line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


@pytest.mark.parametrize("col", COLUMNS, ids=lambda c: c.name)
def test_acl_matrix(differential, col):
    ref = differential(make_column_scenario(col))
    seen = _outcomes(ref)
    # the matrix must exercise both sides of the check on the reference server,
    # or an equal diff would prove nothing
    assert seen.get("OK", 0) > 50, seen
    if col.name != "super":
        assert seen.get("NOAUTH", 0) > 50, seen
    else:
        assert "NOAUTH" not in seen, seen
    whoami = [line for line in ref.lines if "admin WHO_AM_I" in line]
    assert whoami and '"authScheme":"super"' in whoami[0], whoami


def _events_for(ref, session: str, etype: str, path_end: str) -> int:
    tail = f"{path_end}'"
    return sum(
        1 for line in ref.lines
        if (line.startswith(f"   event {session}: {etype} ")
            or line.startswith(f"   event {session} (before reply): {etype} "))
        and line.endswith(tail)
    )


def _check_watch_delivery(ref) -> None:
    # set while readable, fired after READ was taken away: not delivered
    assert _events_for(ref, "w", "NODE_DATA_CHANGED", "/n-all-r") == 1  # only after unlocking
    assert _events_for(ref, "w", "NODE_DATA_CHANGED", "/n-r") == 2
    assert _events_for(ref, "w", "NODE_DATA_CHANGED", "/alice-only") == 2  # after addauth only
    assert _events_for(ref, "v", "NODE_DELETED", "/eph") == 0
    assert _events_for(ref, "v", "NODE_DELETED", "/eph-open") == 1
    assert _events_for(ref, "v", "NODE_DATA_CHANGED", "/locked") == 1  # SetWatches


def _check_has_refusals(ref) -> None:
    seen = _outcomes(ref)
    assert seen.get("NOAUTH", 0) + seen.get("INVALIDACL", 0) > 5, seen


SCENARIO_CHECKS = {scenario_watch_delivery: _check_watch_delivery}


@pytest.mark.parametrize("scenario", OTHER_SCENARIOS, ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_acl_scenarios(differential, scenario):
    ref = differential(scenario)
    assert _outcomes(ref).get("OK", 0) > 10
    SCENARIO_CHECKS.get(scenario, _check_has_refusals)(ref)


def scenario_reconfig_enabled(r: Runner) -> None:
    """reconfig on a standalone server with reconfigEnabled=true, with and without
    WRITE on /zookeeper/config (the permission an ensemble checks)."""
    _login(r, "anon", "a")
    admin = _login(r, "super", "admin")
    for s in ("a", admin):
        r.call(s, Op.RECONFIG, ReconfigRequest(None, None, "", -1), label="reconfig")
    r.set_acl(admin, "/zookeeper/config", [ACL(ALL, Id("world", "anyone"))])
    r.call("a", Op.RECONFIG, ReconfigRequest(None, None, "", -1), label="reconfig")
    r.set_acl(admin, "/zookeeper/config", [ACL(R, Id("world", "anyone"))])


def test_reconfig_enabled_standalone(tmp_path_factory):
    ref, cand = start_pair(tmp_path_factory, "reconfig", **dict(DIFF_CFG, reconfigEnabled=True))
    try:
        _a, _b, diff = run_scenario(scenario_reconfig_enabled, ref, cand, base=None)
    finally:
        ref.stop()
        cand.stop()
    assert diff == "", diff


def test_identities_are_configured():
    """Every identity's server requirements are in the shared differential config."""
    for ident in IDENTITIES.values():
        for key in ident.requires:
            assert key in DIFF_CFG, f"identity {ident.name} needs {key} in DIFF_CFG"
