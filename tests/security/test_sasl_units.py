"""The sans-IO pieces of client SASL: the JAAS parser and DIGEST-MD5 (both sides)."""

from __future__ import annotations

import hashlib

import pytest

from zabby.server.digest_md5 import (
    DigestMD5Client,
    DigestMD5Server,
    SaslError,
    parse_directives,
)
from zabby.server.jaas import JaasError, load_jaas, parse_jaas

JAAS = r"""
// a comment
/* a block
   comment */
Server {
    // line comment
    org.apache.zookeeper.server.auth.DigestLoginModule required
        user_bob="bob\"pw"
        user_super=plain.word
        user_alice = "a;b{c}=d";
};
Client { org.apache.zookeeper.server.auth.DigestLoginModule Optional
    username="bob" password="x"; };
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required user_q="1";
    org.apache.zookeeper.server.auth.DigestLoginModule sufficient user_r="2";
};
"""


def test_jaas_sections_options_quoting_comments():
    cfg = parse_jaas(JAAS, "/etc/jaas.conf")
    assert sorted(cfg.sections) == ["Client", "QuorumServer", "Server"]
    server = cfg.require("Server")
    assert server.digest_users() == {"bob": 'bob"pw', "super": "plain.word", "alice": "a;b{c}=d"}
    client = cfg.require("Client")
    assert client.modules[0].flag == "optional"
    assert client.options() == {"username": "bob", "password": "x"}
    assert cfg.require("QuorumServer").digest_users() == {"q": "1", "r": "2"}
    assert "bob" not in repr(server.modules[0]) or "pw" not in repr(server.modules[0])


@pytest.mark.parametrize("text, msg", [
    ("Server { org.x.Module required user_a=\"b\" };", "or ';'"),
    ("Server { org.x.Module bogus; };", "invalid control flag"),
    ("Server { org.x.Module required a=\"unterminated; };", "unterminated"),
    ("Server { m required a=1; };", "expected a value"),
    ("Server { m required a=v!; };", "expected an option name"),
    ("# not a comment\nServer { m required; };", "expected a section name"),
    ("Server { m required a=\"x\ny\"; };", "unterminated"),
    ("Server { m required; };\nServer { m required; };", "more than once"),
    ("Server { m required a=\"${user.home}\"; };", "expansion"),
    ("Server { m required a=${user.home}; };", "expected"),
    ("Server { m required", "expected"),
    ("Server { m required a='v'; };", "expected a value"),
])
def test_jaas_malformed_names_file_and_line(text, msg):
    with pytest.raises(JaasError, match=msg) as e:
        parse_jaas(text, "/etc/jaas.conf")
    assert str(e.value).startswith("/etc/jaas.conf:")


def test_jaas_empty_section_is_no_login():
    cfg = parse_jaas("Server { };\nOther { m optional k=\"v\" /* c */ \"q k\"=w; };", "/j")
    with pytest.raises(JaasError, match="no login module"):
        cfg.require("Server")
    assert cfg.require("Other").options() == {"k": "v", "q k": "w"}


def test_jaas_missing_file_and_section(tmp_path):
    with pytest.raises(JaasError, match="cannot read") as e:
        load_jaas(tmp_path / "nope.conf")
    assert "nope.conf" in str(e.value)
    f = tmp_path / "j.conf"
    f.write_text("Client { m required; };")
    with pytest.raises(JaasError, match="no section 'Server'"):
        load_jaas(f).require("Server")


def test_directives():
    d = parse_directives(b'a=1, B="x,\\"y" ,, c = "z"')
    assert d == {"a": "1", "b": 'x,"y', "c": "z"}
    for bad in (b"a=1,a=2", b'a="x', b"=1", b"a 1"):
        with pytest.raises(SaslError):
            parse_directives(bad)


def _exchange(server, client):
    resp = client.step(server.step(client.initial()))
    client.step(server.step(resp))
    return server, client


def test_digest_md5_round_trip_and_rfc_vector():
    srv, cli = _exchange(DigestMD5Server({"bob": "pw"}.get), DigestMD5Client("bob", "pw"))
    assert srv.complete and cli.complete and srv.authorization_id == "bob"
    # authzid asked by the client does not change the id (ZooKeeper authorizes authcid)
    srv, cli = _exchange(DigestMD5Server({"bob": "pw"}.get),
                         DigestMD5Client("bob", "pw", authzid="root"))
    assert srv.authorization_id == "bob"
    # RFC 2831 4 example (imap/elwood.innosoft.com, chris / secret)
    srv = DigestMD5Server({"chris": "secret"}.get, service="imap",
                          server_name="elwood.innosoft.com", realm="elwood.innosoft.com",
                          nonce=lambda: "OA6MG9tEQGm2hh")
    cli = DigestMD5Client("chris", "secret", service="imap", server_name="elwood.innosoft.com",
                          cnonce=lambda: "OA6MHXh6VqTrRk")
    chal = srv.step(b"")
    resp = cli.step(chal)
    assert b"response=d388dad90d4bbd760a152321f2143af7" in resp
    assert srv.step(resp) == b"rspauth=ea40f60335c427b5527b84dbabcdfffd"


def test_digest_md5_failures():
    users = {"bob": "pw"}.get
    for user, pw in (("bob", "wrong"), ("nobody", "pw")):
        srv = DigestMD5Server(users)
        cli = DigestMD5Client(user, pw)
        resp = cli.step(srv.step(b""))
        with pytest.raises(SaslError, match="authentication failed") as e:
            srv.step(resp)
        assert pw not in str(e.value)
        assert not srv.complete and srv.authorization_id is None and srv.failed
        with pytest.raises(SaslError):  # the exchange stays failed
            srv.step(resp)
    # an initial response is ignored (as Java's DIGEST-MD5 server does)
    assert DigestMD5Server(users).step(b"x").startswith(b'realm="zk-sasl-md5",nonce=')
    srv = DigestMD5Server(users)
    chal = srv.step(b"")
    resp = DigestMD5Client("bob", "pw", server_name="other").step(chal)
    with pytest.raises(SaslError, match="digest-uri"):
        srv.step(resp)
    # a replayed response (another nonce) fails
    srv2 = DigestMD5Server(users)
    srv2.step(b"")
    with pytest.raises(SaslError, match="nonce"):
        srv2.step(DigestMD5Client("bob", "pw").step(DigestMD5Server(users).step(b"")))
    # a client rejects a server that does not know the password
    srv, cli = DigestMD5Server({"bob": "pw"}.get), DigestMD5Client("bob", "pw")
    cli.step(srv.step(b""))
    with pytest.raises(SaslError, match="rspauth"):
        cli.step(b"rspauth=" + hashlib.md5(b"x").hexdigest().encode())
    # after success, a further token is an error
    srv, cli = _exchange(DigestMD5Server(users), DigestMD5Client("bob", "pw"))
    with pytest.raises(SaslError, match="already completed"):
        srv.step(b"")


def test_pure_sasl_client_against_server():
    puresasl = pytest.importorskip("puresasl.client")
    for user, pw, ok in (("bob", "pw", True), ("bob", "no", False)):
        srv = DigestMD5Server({"bob": "pw"}.get)
        cli = puresasl.SASLClient(host="zk-sasl-md5", service="zookeeper",
                                  mechanism="DIGEST-MD5", username=user, password=pw)
        resp = cli.process(srv.step(cli.process(None) or b""))
        if ok:
            cli.process(srv.step(resp))
            assert cli.complete and srv.authorization_id == "bob"
        else:
            with pytest.raises(SaslError):
                srv.step(resp)
