"""Client SASL (DIGEST-MD5) on zabby: kazoo both ways, sasl ACLs, `zabby serve` options,
refusals to start, and no secret in the log.  Behaviour against ZooKeeper itself is in
tests/differential/test_sasl_diff.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl

import zabby
from zabby.server.config import ConfigError, parse_config
from zabby.server.security import load_security
from zabby.testing import ServerStartError, ZabbyServer
from zabby.testing.rawclient import RawClient
from zabby.testing.sasl import jaas_server_section, sasl_login
from zabby.wire import Empty, Op

pytestmark = pytest.mark.timeout(120)

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
USERS = {"bob": "bob-secret-1", "carol": "carol-secret-2", "admin": "admin-secret-3"}


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch):
    # `zabby serve` subprocesses must run this checkout's code
    monkeypatch.setenv("PYTHONPATH", str(Path(zabby.__file__).resolve().parents[1]))


@pytest.fixture(scope="module")
def jaas(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("jaas") / "jaas.conf"
    f.write_text("/* zabby test users */\n" + jaas_server_section(USERS))
    return f


@pytest.fixture(scope="module")
def server(tmp_path_factory, jaas):
    with ZabbyServer(tmp_path_factory.mktemp("sasl"), **{"authProvider.1": SASL_PROVIDER},
                     jvm_flags=[f"-Djava.security.auth.login.config={jaas}",
                                "-Dzookeeper.superUser=admin"]) as srv:
        yield srv


def _kazoo(srv, **kw) -> KazooClient:
    c = KazooClient(hosts=srv.hosts, timeout=5, connection_retry={"max_tries": 0}, **kw)
    c.start(timeout=10)
    return c


def _whoami(srv, user, pw) -> list[tuple[str, str]]:
    c = RawClient(srv.host, srv.port)
    c.connect()
    try:
        assert "client: complete" in sasl_login(c, user, pw)
        r = c.request(Op.WHO_AM_I, Empty())
        return sorted((i.authScheme, i.user) for i in r.body.clientInfo)
    finally:
        c.drop()


@pytest.mark.filterwarnings("ignore:Passing SASL configuration:DeprecationWarning")
def test_kazoo_sasl_both_forms_and_acls(server):
    legacy = _kazoo(server, auth_data=[("sasl", f"bob:{USERS['bob']}")])
    modern = _kazoo(server, sasl_options={"mechanism": "DIGEST-MD5", "username": "carol",
                                          "password": USERS["carol"]})
    anon = _kazoo(server)
    try:
        legacy.create("/bob-only", b"b", acl=[make_acl("sasl", "bob", all=True)])
        assert legacy.get("/bob-only")[0] == b"b"
        modern.create("/carol-read", b"c", acl=[make_acl("sasl", "carol", read=True),
                                                make_acl("sasl", "bob", all=True)])
        assert modern.get("/carol-read")[0] == b"c"
        with pytest.raises(NoAuthError):
            modern.set("/carol-read", b"no")  # read only
        legacy.set("/carol-read", b"by-bob")
        for c in (modern, anon):
            with pytest.raises(NoAuthError):
                c.get("/bob-only")
        # the "auth" scheme expands to the sasl id
        modern.create("/auth", b"a", acl=[make_acl("auth", "", all=True)])
        assert modern.get_acls("/auth")[0][0].id.scheme == "sasl"
        assert modern.get_acls("/auth")[0][0].id.id == "carol"
        with pytest.raises(NoAuthError):
            legacy.get("/auth")
    finally:
        for c in (legacy, modern, anon):
            c.stop()
            c.close()
    assert _whoami(server, "bob", USERS["bob"]) == [("ip", "127.0.0.1"), ("sasl", "bob")]
    # superUser: the sasl id "admin" is also super and passes every ACL
    assert ("super", "") in _whoami(server, "admin", USERS["admin"])
    admin = _kazoo(server, sasl_options={"mechanism": "DIGEST-MD5", "username": "admin",
                                         "password": USERS["admin"]})
    try:
        assert admin.get("/bob-only")[0] == b"b"
    finally:
        admin.stop()
        admin.close()


@pytest.mark.parametrize("user, pw", [("bob", "wrong"), ("mallory", "x")])
def test_kazoo_wrong_credentials_fail(server, user, pw):
    c = KazooClient(hosts=server.hosts, timeout=5, connection_retry={"max_tries": 0},
                    sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": pw})
    t0 = time.monotonic()
    try:
        try:
            c.start(timeout=5)
        except AuthFailedError:
            pass
        except KazooTimeoutError:
            # kazoo's start() sees CONNECTED, runs SASL, and if the AUTH_FAILED is
            # handled before it looks again it reports "Connection time-out" at once;
            # a real time-out would have taken the whole 5 s
            assert time.monotonic() - t0 < 4, "no answer to the SASL exchange"
        # the server answered AUTHFAILED and hung up: kazoo gives up, as with ZooKeeper
        deadline = time.monotonic() + 10
        while c.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not c.connected and c.client_state in (KeeperState.AUTH_FAILED,
                                                      KeeperState.CLOSED)
    finally:
        c.stop()
        c.close()
    assert time.monotonic() - t0 < 30


def test_no_secret_in_log(server):
    rc = RawClient(server.host, server.port)
    rc.connect()
    assert sasl_login(rc, "bob", "a-wrong-password")[-1] == "closed"
    log = server.log_path.read_text()
    for secret in (*USERS.values(), "a-wrong-password"):
        assert secret not in log
    assert "failed to SASL authenticate" in log


def _serve_and_login(srv) -> None:
    with srv:
        assert _whoami(srv, "bob", USERS["bob"])[-1] == ("sasl", "bob")


def test_serve_with_d_options(tmp_path, jaas):
    """zabby serve --config zoo.cfg -Djava.security.auth.login.config=... -Dzookeeper.authProvider.1=..."""
    _serve_and_login(ZabbyServer(tmp_path, start=False, jvm_flags=[
        f"-Djava.security.auth.login.config={jaas}",
        f"-Dzookeeper.authProvider.1={SASL_PROVIDER}"]))


def test_serve_with_server_jvmflags(tmp_path, jaas, monkeypatch):
    monkeypatch.setenv("SERVER_JVMFLAGS", f"-Xmx1g -Djava.security.auth.login.config={jaas} "
                       f"-Dzookeeper.authProvider.1={SASL_PROVIDER}")
    _serve_and_login(ZabbyServer(tmp_path, start=False))


def test_serve_refuses_a_missing_jaas_file(tmp_path):
    srv = ZabbyServer(tmp_path, start=False, jvm_flags=[
        f"-Djava.security.auth.login.config={tmp_path}/missing.conf"])
    with pytest.raises(ServerStartError, match="exited with status 2"):
        srv.start()
    srv.stop()
    assert "missing.conf" in srv.log_path.read_text()


BASE = "dataDir=/tmp/zabby-unused\nclientPort=2181\n"


def _load(tmp_path, jaas_text, extra="", props=None):
    f = tmp_path / "jaas.conf"
    if jaas_text is not None:
        f.write_text(jaas_text)
    p = {"java.security.auth.login.config": str(f), **(props or {})}
    return load_security(parse_config(BASE + extra, source="/etc/zoo.cfg", system_properties=p))


@pytest.mark.parametrize("jaas_text, extra, props, msg", [
    (None, "", {}, "cannot read"),
    ("Server { x required", "", {}, "expected"),
    ("Client { org.apache.zookeeper.server.auth.DigestLoginModule required; };",
     f"authProvider.1={SASL_PROVIDER}\nsessionRequireClientSASLAuth=true\n", {},
     "has no 'Server' section, but clients must authenticate"),
    (jaas_server_section({"a": "b"}), "", {"zookeeper.sasl.serverconfig": "Other"},
     "no section 'Other'"),

    ("Server { com.example.Login required; };", "", {}, "com.example.Login"),
    (jaas_server_section({"a": "b"}), "", {"zookeeper.security.auth_to_local":
                                           "RULE:[1:$1@$0](.*@X)s/@.*//"}, "DEFAULT"),
    (jaas_server_section({"a": "b"}), "kerberos.bogus=true\n", {},
     "not a Kerberos setting"),
    (jaas_server_section({"a": "b"}), "kerberos.removeRealmFromPrincipal=yes\n", {},
     "not true or false"),
    ("Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
     'keyTab="/nonexistent.keytab" principal="zk/h@R"; };', "", {}, "cannot be read"),
    ("Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
     'keyTab="/etc/hostname"; };', "", {}, "name the server's principal"),
    ("Server { com.sun.security.auth.module.Krb5LoginModule required useTicketCache=true; };",
     "", {}, "keytab only"),
    ("Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
     'keyTab="/k" principal="p" wat=true; };', "", {}, "wat"),
    ("Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
     'keyTab="/k" principal="p";\n org.apache.zookeeper.server.auth.DigestLoginModule '
     'required user_a="b"; };', "", {}, "not supported"),
    (jaas_server_section({"a": "b"}), "sessionRequireClientSASLAuth=true\n", {},
     "'sasl' is not available"),
    (jaas_server_section({"a": "b"}), "enforce.auth.enabled=true\n", {},
     "must name the schemes"),
    (jaas_server_section({"a": "b"}), "enforce.auth.enabled=true\nenforce.auth.schemes=x509\n",
     {}, "'x509' is not available"),
    (jaas_server_section({"a": "b"}), "allowSaslFailedClients=maybe\n", {}, "not true or false"),
])
def test_refusals_name_the_problem(tmp_path, jaas_text, extra, props, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        _load(tmp_path, jaas_text, extra, props)
    assert "refusing to start" in str(e.value) or "not true or false" in str(e.value)
    if "jaas" in str(e.value) or "section" in msg:
        assert str(tmp_path / "jaas.conf") in str(e.value)


def test_settings_taken(tmp_path):
    sec = _load(tmp_path, jaas_server_section({"bob": "pw"}),
                f"authProvider.1={SASL_PROVIDER}\nsuperUser=bob\n",
                {"zookeeper.SASLAuthenticationProvider.superPassword": "sp",
                 "zookeeper.allowSaslFailedClients": "true",
                 "zookeeper.enforce.auth.enabled": "true",
                 "zookeeper.enforce.auth.schemes": "sasl, digest"})
    s = sec.sasl
    assert sec.providers == {"1": "sasl"}
    assert s.password("bob") == "pw" and s.password("super") == "sp"
    assert s.super_user == "bob" and s.allow_failed and s.enforce
    assert s.enforce_schemes == {"sasl", "digest"} and s.sasl_required
    assert "pw" not in repr(s) and "sp" not in repr(s)
    # another section name
    sec = _load(tmp_path, jaas_server_section({"q": "1"}, name="ZkServer"), "",
                {"zookeeper.sasl.serverconfig": "ZkServer"})
    assert sec.sasl.users == {"q": "1"} and sec.sasl.section == "ZkServer"


def test_client_sasl_properties_are_accepted(tmp_path):
    sec = _load(tmp_path, jaas_server_section({"bob": "pw"}), "", {
        "zookeeper.sasl.client": "true", "zookeeper.sasl.clientconfig": "Client",
        "zookeeper.sasl.client.username": "zookeeper"})
    assert sec.sasl.users == {"bob": "pw"}
    with pytest.raises(ConfigError, match="sasl.other"):
        _load(tmp_path, jaas_server_section({"bob": "pw"}), "", {"zookeeper.sasl.other": "x"})


def test_sasl_in_an_ensemble(tmp_path, jaas):
    """Every member authenticates; a learner forwards the sasl id with its writes."""
    from zabby.testing import ZabbyEnsemble

    with ZabbyEnsemble(tmp_path, 3, **{"authProvider.1": SASL_PROVIDER},
                       jvm_flags=[f"-Djava.security.auth.login.config={jaas}"]) as ens:
        leader = ens.leader()
        follower = next(i for i in ens.members if i != leader)
        members = ens.members
        bob = _kazoo(members[follower], sasl_options={
            "mechanism": "DIGEST-MD5", "username": "bob", "password": USERS["bob"]})
        carol = _kazoo(members[leader], sasl_options={
            "mechanism": "DIGEST-MD5", "username": "carol", "password": USERS["carol"]})
        try:
            bob.create("/ens-bob", b"b", acl=[make_acl("sasl", "bob", all=True)])
            bob.create("/ens-auth", b"a", acl=[make_acl("auth", "", all=True)])
            assert bob.get_acls("/ens-auth")[0][0].id.id == "bob"
            carol.sync("/ens-bob")
            for path in ("/ens-bob", "/ens-auth"):
                with pytest.raises(NoAuthError):
                    carol.get(path)
            assert bob.get("/ens-bob")[0] == b"b"
        finally:
            for c in (bob, carol):
                c.stop()
                c.close()


def test_kazoo_when_sasl_is_required(tmp_path, jaas):
    with ZabbyServer(tmp_path, **{"authProvider.1": SASL_PROVIDER},
                     jvm_flags=[f"-Djava.security.auth.login.config={jaas}",
                                "-Dzookeeper.sessionRequireClientSASLAuth=true"]) as srv:
        bob = _kazoo(srv, sasl_options={"mechanism": "DIGEST-MD5", "username": "bob",
                                        "password": USERS["bob"]})
        try:
            bob.create("/required", b"ok")
            assert bob.get("/required")[0] == b"ok"
        finally:
            bob.stop()
            bob.close()
        # without SASL the first request is refused and the connection closed
        rc = RawClient(srv.host, srv.port)
        rc.connect()
        r = rc.request(Op.WHO_AM_I, Empty())
        assert r.err == -124 and rc.wait_closed(2.0)


@pytest.mark.parametrize("jaas_text", ["", "Client { org.apache.zookeeper.server.auth."
                                       "DigestLoginModule required; };"])
def test_jaas_without_server_section_means_no_client_sasl(tmp_path, jaas_text, caplog):
    """As ZooKeeper (and kazoo's own test harness, which passes an empty JAAS file):
    no client SASL, nobody can log in as sasl, and a warning says so."""
    sec = _load(tmp_path, jaas_text, f"authProvider.1={SASL_PROVIDER}\n")
    assert sec.sasl.users is None and sec.sasl.kerberos is None
    assert "no SASL for clients" in caplog.text
