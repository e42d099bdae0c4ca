"""Client SASL (DIGEST-MD5) and the authentication policy keys against ZooKeeper 3.8.

Each configuration starts Apache ZooKeeper and zabby with the same zoo.cfg, JAAS file and
-D options, runs the same raw-frame sessions against both, and compares what a client
sees: each SASL reply's error code, zxid and kind of token, whether the connection was
closed, and the replies (error codes, whoAmI ids) of requests made afterwards.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

import zabby
from zabby.testing import ServerStartError, ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.rawclient import ConnectionClosed, RawClient
from zabby.testing.sasl import jaas_server_section, sasl_login, token_kind
from zabby.wire import ACL, AuthPacket, Empty, Id, Op, PathWatchRequest
from zabby.wire.constants import XID_AUTH
from zabby.wire.records import CreateRequest, SaslToken

pytestmark = [pytest.mark.differential, pytest.mark.timeout(300)]

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
USERS = {"bob": "bob-pw", "carol": "carol-pw", "super": "super-pw",
         "svc@EXAMPLE.COM": "svc-pw", "zoë": "pässwörd"}


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch):
    # `zabby serve` subprocesses must run this checkout's code
    monkeypatch.setenv("PYTHONPATH", str(Path(zabby.__file__).resolve().parents[1]))


def _jaas(tmp: Path) -> Path:
    f = tmp / "jaas.conf"
    f.write_text("// the same file for both servers\n" + jaas_server_section(USERS))
    return f


def _start(cls, tmp: Path, flags, cfg):
    return cls(tmp, jvm_flags=flags, **cfg)


def _requests(c: RawClient, out: list[str], tag: str) -> None:
    """exists /, whoAmI, ping: what a session may do afterwards."""
    steps = [("exists", Op.EXISTS, PathWatchRequest("/", False)),
             ("whoami", Op.WHO_AM_I, Empty()), ("ping", Op.PING, None)]
    for name, op, body in steps:
        if not c.connected:
            out.append(f"{tag} {name}: not connected")
            return
        try:
            r = c.ping() if op == Op.PING else c.request(op, body, timeout=5)
        except ConnectionClosed:
            out.append(f"{tag} {name}: closed")
            return
        line = f"{tag} {name}: err={r.err} zxid={'0' if r.zxid == 0 else 'n'}"
        if op == Op.WHO_AM_I and r.body is not None:
            line += " " + str(sorted((i.authScheme, i.user) for i in r.body.clientInfo))
        out.append(line)
        if r.err:
            out.append(f"{tag} after error: {'closed' if c.wait_closed(2.0) else 'open'}")
            return


def _session(srv, out, tag, user=None, pw=None, **kw) -> RawClient:
    c = RawClient(srv.host, srv.port, io_timeout=5)
    c.connect()
    if user is not None:
        out.extend(f"{tag} {line}" for line in sasl_login(c, user, pw, **kw))
    return c


def _acl_scenario(srv, out):
    bob = _session(srv, out, "acl-bob", "bob", USERS["bob"])
    r = bob.request(Op.CREATE, CreateRequest("/sasl-acl", b"x", [ACL(31, Id("sasl", "bob"))], 0))
    out.append(f"create sasl:bob ACL: err={r.err}")
    r = bob.request(Op.CREATE, CreateRequest("/auth-acl", b"x", [ACL(31, Id("auth", ""))], 0))
    out.append(f"create auth ACL as bob: err={r.err}")
    for name, c in (("bob", bob),
                    ("carol", _session(srv, out, "acl-carol", "carol", USERS["carol"])),
                    ("super", _session(srv, out, "acl-super", "super", USERS["super"])),
                    ("anonymous", _session(srv, out, "acl-anon"))):
        for path in ("/sasl-acl", "/auth-acl"):
            if not c.connected:
                out.append(f"getData {path} as {name}: not connected")
                continue
            r = c.request(Op.GET_DATA, PathWatchRequest(path, False), timeout=5)
            out.append(f"getData {path} as {name}: err={r.err}")
        c.drop()


def _raw_tokens(srv, out, tag, tokens) -> None:
    """Hand-made SASL tokens (b"" / bytes, or None for a body that does not decode)."""
    c = RawClient(srv.host, srv.port, io_timeout=5)
    c.connect()
    for tok in tokens:
        try:
            if tok is None:  # opcode 102 with a 3-byte body: no buffer length
                c.send_bytes(b"\x00\x00\x00\x0b" + (7).to_bytes(4, "big") +
                             (102).to_bytes(4, "big") + b"\x00\x00\x00")
                r = c.wait_reply(7, Op.SASL, timeout=5)
            else:
                r = c.request(Op.SASL, SaslToken(tok), timeout=5)
        except ConnectionClosed:
            out.append(f"{tag}: closed")
            return
        out.append(f"{tag}: err={r.err} token={token_kind(r.raw)}")
        if r.err:
            out.append(f"{tag}: {'closed' if c.wait_closed(2.0) else 'open'}")
            return
    _requests(c, out, tag)
    c.drop()


def _run(srv, scenario) -> list[str]:
    out: list[str] = []
    for item in scenario:
        if item == "acl":
            _acl_scenario(srv, out)
            continue
        if item[0] == "raw":
            _raw_tokens(srv, out, item[1], item[2])
            continue
        tag, user, pw, kw = item
        c = _session(srv, out, tag, user, pw, **kw)
        _requests(c, out, tag)
        c.drop()
    return out


GOOD = ("good", "bob", USERS["bob"], {})
WRONG = ("wrong-password", "bob", "nope", {})
UNKNOWN = ("unknown-user", "mallory", "x", {})
NONE = ("no-sasl", None, None, {})
SUPER = ("super", "super", USERS["super"], {})
EXTRA = ("token-after-success", "bob", USERS["bob"], {"extra": True})
ALL = [GOOD, WRONG, UNKNOWN, NONE, SUPER, EXTRA]
ODD = [
    # the id is the authentication id, whatever authorization id the client asks for
    ("authzid", "bob", USERS["bob"], {"authzid": "carol"}),
    ("realm-name", "svc@EXAMPLE.COM", USERS["svc@EXAMPLE.COM"], {}),
    ("non-ascii", "zoë", USERS["zoë"], {}),
    ("non-ascii-wrong", "zoë", "passworld", {}),
    ("raw", "initial-response", [b"not-empty", b""]),
    ("raw", "empty-response", [b"", b""]),
    ("raw", "garbage-response", [b"", b"username=,,=\"\xff"]),
    ("raw", "undecodable-body", [None]),
]

CASES = {
    # provider, superUser, sasl ACLs
    "provider": ({"authProvider.1": SASL_PROVIDER}, ["-Dzookeeper.superUser=super"],
                 ALL + ODD + ["acl"]),
    # no SASLAuthenticationProvider: clients authenticate, sasl ACLs are invalid
    "no-provider": ({}, [], [GOOD, WRONG, "acl"]),
    "allow-failed": ({"authProvider.1": SASL_PROVIDER},
                     ["-Dzookeeper.allowSaslFailedClients=true"], ALL + ODD),
    "require-sasl": ({"authProvider.1": SASL_PROVIDER},
                     ["-Dzookeeper.sessionRequireClientSASLAuth=true"], ALL),
    "require-and-allow": ({"authProvider.1": SASL_PROVIDER},
                          ["-Dzookeeper.sessionRequireClientSASLAuth=true",
                           "-Dzookeeper.allowSaslFailedClients=true"], [GOOD, WRONG, NONE]),
    # the password of "super" from a system property (overrides the JAAS file)
    "super-password": ({"authProvider.1": SASL_PROVIDER},
                       ["-Dzookeeper.SASLAuthenticationProvider.superPassword=sp-prop",
                        "-Dzookeeper.superUser=super"],
                       [("super-prop", "super", "sp-prop", {}), SUPER, GOOD]),
    # no JAAS file at all: ZooKeeper has no SASL server and answers OK, no token
    "no-jaas-file": ({}, ["NOJAAS"], [GOOD, NONE]),
    "no-jaas-file-provider": ({"authProvider.1": SASL_PROVIDER}, ["NOJAAS"], [GOOD, NONE]),
    "enforce-sasl": ({"authProvider.1": SASL_PROVIDER, "enforce.auth.enabled": "true",
                      "enforce.auth.schemes": "sasl"}, [], [GOOD, WRONG, NONE]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sasl_matches_zookeeper(case, tmp_path):
    require_zookeeper()
    cfg, flags, scenario = CASES[case]
    if flags == ["NOJAAS"]:
        flags = []
    else:
        flags = [f"-Djava.security.auth.login.config={_jaas(tmp_path)}", *flags]
    results = {}
    for cls in (ZooKeeperServer, ZabbyServer):
        with _start(cls, tmp_path / cls.kind, flags, dict(cfg)) as srv:
            results[cls.kind] = _run(srv, scenario)
    ref, got = results["zookeeper"], results["zabby"]
    if flags:  # the harness logs in at all
        assert any("token=rspauth" in line for line in ref), ref
    assert got == ref, "\n".join(difflib.unified_diff(ref, got, "zookeeper", "zabby",
                                                      lineterm=""))


def test_enforce_digest_scheme_matches_zookeeper(tmp_path):
    """enforce.auth.schemes=digest: addauth digest first, then requests pass."""
    require_zookeeper()
    cfg = {"enforce.auth.enabled": "true", "enforce.auth.schemes": "digest"}
    results = {}
    for cls in (ZooKeeperServer, ZabbyServer):
        out: list[str] = []
        with _start(cls, tmp_path / cls.kind, [], dict(cfg)) as srv:
            c = _session(srv, out, "digest")
            c.send_request(Op.AUTH, AuthPacket(0, "digest", b"u:p"), xid=XID_AUTH)
            r = c.wait_reply(XID_AUTH, Op.AUTH)
            out.append(f"addauth: err={r.err}")
            _requests(c, out, "digest")
            c.drop()
            c = _session(srv, out, "none")
            _requests(c, out, "none")
            c.drop()
            c = _session(srv, out, "ping-first")
            try:
                r = c.ping()
                out.append(f"ping: err={r.err} closed={c.wait_closed(2.0)}")
            except ConnectionClosed:
                out.append("ping: closed")
            c.drop()
            # closeSession from an unauthenticated connection
            c = _session(srv, out, "close")
            try:
                r = c.request(Op.CLOSE_SESSION, Empty(), timeout=5)
                out.append(f"closeSession: err={r.err}")
            except ConnectionClosed:
                out.append("closeSession: closed")
            c.drop()
        results[cls.kind] = out
    assert results["zabby"] == results["zookeeper"], (results["zookeeper"], results["zabby"])


REFUSED = {
    "require-without-provider": ({}, ["-Dzookeeper.sessionRequireClientSASLAuth=true"]),
    "enforce-without-schemes": ({"enforce.auth.enabled": "true"}, []),
    "enforce-unknown-scheme": ({"enforce.auth.enabled": "true",
                                "enforce.auth.schemes": "sasl"}, []),
    "missing-jaas-file": ({"authProvider.1": SASL_PROVIDER},
                          ["-Djava.security.auth.login.config=/nonexistent/jaas.conf"]),
    "malformed-jaas-file": ({"authProvider.1": SASL_PROVIDER}, ["MALFORMED"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_both_refuse_to_start(case, tmp_path):
    require_zookeeper()
    cfg, flags = REFUSED[case]
    if flags == ["MALFORMED"]:
        bad = tmp_path / "bad.conf"
        bad.write_text("Server { org.apache.zookeeper.server.auth.DigestLoginModule required\n")
        flags = [f"-Djava.security.auth.login.config={bad}"]
    for cls in (ZooKeeperServer, ZabbyServer):
        srv = None
        with pytest.raises(ServerStartError, match="exited with status"):
            srv = _start(cls, tmp_path / cls.kind, flags, dict(cfg))
        if srv is not None:  # pragma: no cover - it started after all
            srv.stop()
    if "jaas" in case:
        log = (tmp_path / "zabby" / "server.log").read_text()
        assert "java.security.auth.login.config" in log and ".conf" in log, log
    assert os.path.exists(tmp_path / "zabby" / "server.log")


# ------------------------------------------------------------ the ACL matrix, sasl column
def _sasl_identity(name: str, user: str, password: str):
    from .test_acl_matrix import Identity

    def connect(r, session: str) -> None:
        c = r.session(session)
        r.note(f"{session} logs in as {user}: {sasl_login(c, user, password)}")

    return Identity(name, connect=connect)


def test_sasl_acl_matrix(tmp_path_factory, monkeypatch):
    """tests/differential/test_acl_matrix.py's opcode x permission matrix for a node whose
    ACL is sasl:bob, probed by bob, carol (other sasl user) and an anonymous session."""
    from zabby.testing.differential import run_scenario

    from . import test_acl_matrix as matrix
    from .conftest import DIFF_CFG, start_pair

    for ident in (_sasl_identity("saslbob", "bob", USERS["bob"]),
                  _sasl_identity("saslcarol", "carol", USERS["carol"])):
        monkeypatch.setitem(matrix.IDENTITIES, ident.name, ident)
    col = matrix.Column("sasl", Id("sasl", "bob"), ("saslbob", "saslcarol", "anon"))
    jaas = _jaas(tmp_path_factory.mktemp("sasl-matrix-jaas"))
    ref, cand = start_pair(tmp_path_factory, "sasl-matrix", **DIFF_CFG,
                           **{"authProvider.1": SASL_PROVIDER},
                           jvm_flags=[f"-Djava.security.auth.login.config={jaas}"])
    try:
        a, _b, diff = run_scenario(matrix.make_column_scenario(col), ref, cand,
                                   base="/sasl_matrix")
    finally:
        ref.stop()
        cand.stop()
    assert not diff, diff
    seen = matrix._outcomes(a)
    assert seen.get("OK", 0) > 50 and seen.get("NOAUTH", 0) > 50, seen
    assert any("logs in as bob" in line and "rspauth" in line for line in a.lines)
