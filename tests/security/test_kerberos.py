"""SASL GSSAPI (Kerberos) for clients, against a throw-away KDC, compared with ZooKeeper.

The same KDC, keytabs, JAAS file and krb5.conf serve Apache ZooKeeper 3.8 and zabby; a
python-gssapi initiator drives raw SASL exchanges (with and without mutual
authentication, and failing ones) and the transcripts must be equal.  zkCli.sh with a
Krb5LoginModule client is in tests/external/test_zkcli_sasl.py.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

import zabby
from zabby.server.gssapi_sasl import KerberosNames, default_realm
from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.kerberos import MiniKdc, find_kdc, gssapi_login
from zabby.testing.pytest_plugin import in_ci, require_zookeeper
from zabby.testing.rawclient import RawClient
from zabby.wire import ACL, Empty, Id, Op, PathWatchRequest
from zabby.wire.records import CreateRequest

pytestmark = pytest.mark.timeout(300)

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
REALM = "ZABBY.TEST"
SERVICE = f"zookeeper/localhost@{REALM}"


def test_kerberos_names():
    n = KerberosNames(REALM)
    assert n(f"client@{REALM}") == f"client@{REALM}"
    assert n(f"svc/host@{REALM}") == f"svc/host@{REALM}"
    assert n("svc/host@OTHER") == "svc/host@OTHER"  # another realm: kept whole
    assert n("plain") == "plain" and n("a/b") == "a/b"
    n = KerberosNames(REALM, remove_host=True, remove_realm=True)
    assert n(f"svc/host@{REALM}") == "svc" and n(f"client@{REALM}") == "client"
    assert n("svc/host@OTHER", "root") == "svc/host@OTHER"  # never the client's authzid


def test_default_realm(tmp_path):
    f = tmp_path / "krb5.conf"
    f.write_text("# c\n[libdefaults]\n  dns_lookup_kdc = false\n  default_realm = EX.ORG\n"
                 "[realms]\n  default_realm = NOT.THIS\n")
    assert default_realm(str(f)) == "EX.ORG"
    assert default_realm(str(tmp_path / "missing")) == "" and default_realm(None) == ""


def _need_kerberos():
    why = find_kdc()
    try:
        import gssapi  # noqa: F401
    except ImportError:
        why = why or "the gssapi package is missing (pip install 'zabby[kerberos]')"
    if why:
        if in_ci():
            pytest.fail(why + " (CI=true: missing tools are an error)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    _need_kerberos()
    d = tmp_path_factory.mktemp("kerberos")
    with MiniKdc(d / "kdc", REALM) as kdc:
        keytabs = {
            "server": kdc.add_principal("zookeeper/localhost"),
            "client": kdc.add_principal("client"),
            "svc": kdc.add_principal("svc/worker"),
            # a service the server has no key for: its tickets cannot be read
            "other": kdc.add_principal("zookeeper/otherhost"),
        }
        jaas = d / "server.jaas"
        jaas.write_text(
            "Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n"
            f'  useKeyTab=true\n  keyTab="{keytabs["server"]}"\n  storeKey=true\n'
            f'  useTicketCache=false\n  principal="{SERVICE}";\n}};\n')
        yield kdc, keytabs, jaas


@pytest.fixture(autouse=True)
def _env(monkeypatch, request):
    monkeypatch.setenv("PYTHONPATH", str(Path(zabby.__file__).resolve().parents[1]))
    if "realm" in request.fixturenames:
        kdc = request.getfixturevalue("realm")[0]
        monkeypatch.setenv("KRB5_CONFIG", kdc.krb5_conf)  # the python initiator's


def _transcript(srv, keytabs, extra_steps) -> list[str]:
    out: list[str] = []

    def session(tag, **kw):
        c = RawClient(srv.host, srv.port, io_timeout=10)
        c.connect()
        principal = kw.pop("principal", f"client@{REALM}")
        keytab = keytabs[kw.pop("keytab", "client")]
        service = kw.pop("service", SERVICE)
        out.extend(f"{tag} {line}" for line in gssapi_login(c, keytab, principal, service,
                                                              **kw))
        return c

    def after(tag, c):
        if not c.connected:
            out.append(f"{tag}: not connected")
            return
        r = c.request(Op.WHO_AM_I, Empty())
        out.append(f"{tag} whoami: {sorted((i.authScheme, i.user) for i in r.body.clientInfo)}")
        r = c.request(Op.EXISTS, PathWatchRequest("/", False))
        out.append(f"{tag} exists: err={r.err}")
        c.drop()

    for tag, kw in extra_steps:
        if tag == "acl":
            c = session("acl-client")
            r = c.request(Op.CREATE, CreateRequest("/krb", b"k", [ACL(31, Id("sasl", kw))], 0))
            out.append(f"create sasl:{kw}: err={r.err}")
            r = c.request(Op.GET_DATA, PathWatchRequest("/krb", False))
            out.append(f"getData as client: err={r.err}")
            c.drop()
            s = session("acl-svc", principal=f"svc/worker@{REALM}", keytab="svc")
            if s.connected:
                r = s.request(Op.GET_DATA, PathWatchRequest("/krb", False))
                out.append(f"getData as svc: err={r.err}")
                s.drop()
            continue
        after(tag, session(tag, **kw))
    return out


STEPS = [
    ("mutual", {}),
    ("no-mutual", {"mutual": False}),
    ("service-principal", {"principal": f"svc/worker@{REALM}", "keytab": "svc"}),
    ("token-after-success", {"extra": True}),
    ("garbage", {"garbage_first": True}),
    ("unreadable-ticket", {"service": f"zookeeper/otherhost@{REALM}"}),
]
CASES = {
    "plain": ({}, [], STEPS + [("acl", f"client@{REALM}")]),
    "remove-realm-and-host": ({}, ["-Dzookeeper.kerberos.removeRealmFromPrincipal=true",
                                   "-Dzookeeper.kerberos.removeHostFromPrincipal=true"],
                              STEPS[:3] + [("acl", "client")]),
    "allow-failed": ({}, ["-Dzookeeper.allowSaslFailedClients=true"], STEPS),
    "require-sasl": ({}, ["-Dzookeeper.sessionRequireClientSASLAuth=true"], STEPS[:1] + STEPS[4:]),
    "super-user": ({}, [f"-Dzookeeper.superUser=client@{REALM}"], STEPS[:1]),
}


@pytest.mark.differential
@pytest.mark.parametrize("case", sorted(CASES))
def test_gssapi_matches_zookeeper(case, realm, tmp_path):
    require_zookeeper()
    kdc, keytabs, jaas = realm
    cfg, flags, steps = CASES[case]
    flags = [f"-Djava.security.auth.login.config={jaas}",
             f"-Djava.security.krb5.conf={kdc.krb5_conf}", *flags]
    got = {}
    for cls in (ZooKeeperServer, ZabbyServer):
        with cls(tmp_path / cls.kind, jvm_flags=flags,
                 **{"authProvider.1": SASL_PROVIDER, **cfg}) as srv:
            got[cls.kind] = _transcript(srv, keytabs, steps)
    ref = got["zookeeper"]
    assert any("client: complete" in line for line in ref), ref
    assert got["zabby"] == ref, "\n".join(difflib.unified_diff(
        ref, got["zabby"], "zookeeper", "zabby", lineterm=""))


def test_stale_server_keytab_is_refused_per_login(realm, tmp_path):
    """The server's key changed in the KDC after its keytab was written: tickets for the
    new key cannot be read, and the login fails with AUTHFAILED (zabby only; the same
    code path as unreadable-ticket above)."""
    kdc, keytabs, jaas = realm
    kt = kdc.add_principal("zookeeper/stale", tmp_path / "stale.keytab")
    kdc.rekey("zookeeper/stale")
    j = tmp_path / "stale.jaas"
    j.write_text(jaas.read_text().replace(keytabs["server"], kt).replace(
        SERVICE, f"zookeeper/stale@{REALM}"))
    with ZabbyServer(tmp_path / "z", **{"authProvider.1": SASL_PROVIDER}, jvm_flags=[
            f"-Djava.security.auth.login.config={j}",
            f"-Djava.security.krb5.conf={kdc.krb5_conf}"]) as srv:
        c = RawClient(srv.host, srv.port)
        c.connect()
        lines = gssapi_login(c, keytabs["client"], f"client@{REALM}", f"zookeeper/stale@{REALM}")
        assert lines[-2:] == ["sasl -> err=-115 zxid=0 token=null", "closed"], lines
        assert "GSSAPI" in srv.log_path.read_text()


def _pipelined(srv, keytabs) -> list[str]:
    """The last GSSAPI token and a whoAmI in one write: the whoAmI must wait for the
    SASL step (zabby runs it on a worker thread) and see the new id."""
    import struct

    import gssapi

    from zabby.testing.differential import frame_of
    from zabby.wire.records import SaslToken

    creds = gssapi.Credentials(
        name=gssapi.Name(f"client@{REALM}", gssapi.NameType.kerberos_principal),
        usage="initiate", store={"client_keytab": keytabs["client"], "ccache": "MEMORY:pipe"})
    ctx = gssapi.SecurityContext(name=gssapi.Name(SERVICE, gssapi.NameType.kerberos_principal),
                                 creds=creds, usage="initiate",
                                 flags=gssapi.RequirementFlag.integrity)
    c = RawClient(srv.host, srv.port)
    c.connect()
    r = c.request(Op.SASL, SaslToken(ctx.step()))
    n = struct.unpack_from(">i", r.raw)[0]
    offer = ctx.unwrap(r.raw[4 : 4 + n]).message
    last = ctx.wrap(bytes([1]) + offer[1:4] + f"client@{REALM}".encode(), False).message
    c.send_bytes(frame_of(10, Op.SASL, SaslToken(last)) + frame_of(11, Op.WHO_AM_I, Empty())
                 + frame_of(12, Op.EXISTS, PathWatchRequest("/", False)))
    out = [f"sasl: err={c.wait_reply(10, Op.SASL).err}"]
    r = c.wait_reply(11, Op.WHO_AM_I)
    out.append(f"whoami: {sorted((i.authScheme, i.user) for i in r.body.clientInfo)}")
    out.append(f"exists: err={c.wait_reply(12, Op.EXISTS).err}")
    c.drop()
    return out


@pytest.mark.differential
def test_requests_behind_a_gssapi_step_wait_for_it(realm, tmp_path):
    require_zookeeper()
    kdc, keytabs, jaas = realm
    flags = [f"-Djava.security.auth.login.config={jaas}",
             f"-Djava.security.krb5.conf={kdc.krb5_conf}",
             "-Dzookeeper.sessionRequireClientSASLAuth=true"]
    got = {}
    for cls in (ZooKeeperServer, ZabbyServer):
        with cls(tmp_path / cls.kind, jvm_flags=flags,
                 **{"authProvider.1": SASL_PROVIDER}) as srv:
            got[cls.kind] = _pipelined(srv, keytabs)
    assert got["zookeeper"][1] == f"whoami: [('ip', '127.0.0.1'), ('sasl', 'client@{REALM}')]"
    assert got["zabby"] == got["zookeeper"]


# ------------------------------------------------- zabby's own client, as the initiator
@pytest.mark.differential
@pytest.mark.parametrize("kind", ["zookeeper", "zabby"])
def test_zabby_client_logs_in_with_gssapi(kind, realm, tmp_path, monkeypatch):
    """zabby.client with sasl_options GSSAPI against both servers: the login from a
    keytab, from the default credentials (MIT's client keytab), sasl ACLs, the
    identity in whoAmI, and refusals (a service the server has no key for, no
    credentials at all) as AuthFailedError."""
    from zabby.client import AuthFailedError, NoAuthError, SyncClient

    if kind == "zookeeper":
        require_zookeeper()
    kdc, keytabs, jaas = realm
    flags = [f"-Djava.security.auth.login.config={jaas}",
             f"-Djava.security.krb5.conf={kdc.krb5_conf}"]
    cls = ZooKeeperServer if kind == "zookeeper" else ZabbyServer
    client_opts = {"mechanism": "GSSAPI", "principal": f"client@{REALM}",
                   "keytab": str(keytabs["client"])}
    with cls(tmp_path / kind, jvm_flags=flags, **{"authProvider.1": SASL_PROVIDER}) as srv:
        with SyncClient(srv.hosts, sasl_options=client_opts) as zk:
            who = sorted(zk.whoami())
            assert ("sasl", f"client@{REALM}") in who, who
            zk.create("/krb", b"k", acl=[ACL(31, Id("sasl", f"client@{REALM}"))])
            assert zk.get("/krb")[0] == b"k"
        # the default credentials: MIT krb5's client keytab, no principal named
        monkeypatch.setenv("KRB5_CLIENT_KTNAME", str(keytabs["svc"]))
        monkeypatch.setenv("KRB5CCNAME", f"MEMORY:zabby-test-{kind}")
        with SyncClient(srv.hosts, sasl_options={"mechanism": "GSSAPI"}) as zk:
            who = sorted(zk.whoami())
            assert ("sasl", f"svc/worker@{REALM}") in who, who
            with pytest.raises(NoAuthError):
                zk.get("/krb")
        # a service principal the server holds no key for: refused, not hung
        bad = SyncClient(srv.hosts, sasl_options={**client_opts, "host": "otherhost"})
        with pytest.raises(AuthFailedError):
            bad.start(timeout=15)
        bad.close()
