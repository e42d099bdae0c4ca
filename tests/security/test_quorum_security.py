"""Authenticated, encrypted peer links: TLS (sslQuorum) and DIGEST-MD5 quorum SASL.

Units first (the handshake state machines, settings), then two meshes in one process
(TLS, SASL, intruders), then real ensembles (few: they are slow)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest

from zabby.server.config import ConfigError, parse_config
from zabby.server.digest_md5 import DigestMD5Client
from zabby.server.peers import (
    FLAG_SASL,
    PRE_AUTH_MAX_FRAME,
    FrameReader,
    PeerMesh,
    decode_hello,
    encode_frame,
    encode_hello,
)
from zabby.server.quorum_auth import (
    CHALLENGE,
    OK,
    OUTCOME,
    REFUSED,
    RESPONSE,
    START,
    HandshakeRefused,
    LearnerHandshake,
    QuorumSasl,
    ServerHandshake,
    certificate_matches,
    encode_msg,
    refusal_reply,
    sasl_negotiation,
)
from zabby.server.security import load_security
from zabby.testing.certs import CertificateAuthority
from zabby.testing.servers import free_ports

PW = "storepw"


def _sasl(**kw) -> QuorumSasl:
    base = dict(username="zab", password="zab-secret", users={"zab": "zab-secret"})
    base.update(kw)
    return QuorumSasl(**base)


def _run(learner: LearnerHandshake, server: ServerHandshake) -> None:
    """Pump messages between the two sides until both are done (or one refuses)."""
    to_server = [learner.start()]
    while to_server:
        to_learner = []
        for m in to_server:
            to_learner += server.receive(m)
        to_server = []
        for m in to_learner:
            to_server += learner.receive(m)


# ------------------------------------------------------------------ handshake units
def test_handshake_authenticates_both_sides():
    learner, server = LearnerHandshake(_sasl()), ServerHandshake(_sasl())
    _run(learner, server)
    assert learner.done and learner.authenticated
    assert server.done and server.authenticated and server.user == "zab"


def test_wrong_password_refused_when_server_requires():
    learner = LearnerHandshake(_sasl(password="guess"))
    server = ServerHandshake(_sasl(server_require=True))
    with pytest.raises(HandshakeRefused) as info:
        _run(learner, server)
    assert "authentication failed for 'zab'" in str(info.value)
    assert "guess" not in str(info.value) and "zab-secret" not in str(info.value)
    # the refusal carries an OUTCOME(REFUSED) for the learner, which then refuses too
    reply = refusal_reply(info.value)
    assert reply == encode_msg(OUTCOME, bytes([REFUSED]))
    with pytest.raises(HandshakeRefused, match="refused our credentials"):
        learner.receive(reply)


def test_unknown_user_refused_like_a_wrong_password():
    learner = LearnerHandshake(_sasl(username="mallory", password="x"))
    server = ServerHandshake(_sasl(server_require=True))
    with pytest.raises(HandshakeRefused, match="authentication failed for 'mallory'"):
        _run(learner, server)


def test_failed_auth_accepted_without_require_rolling_upgrade():
    learner = LearnerHandshake(_sasl(password="old"))
    server = ServerHandshake(_sasl())
    _run(learner, server)
    assert server.done and not server.authenticated and "failed" in server.failure
    assert learner.done and not learner.authenticated


def test_learner_require_refuses_a_server_that_fails_or_forges_rspauth():
    # the server accepts anyone but does not know the password: the learner notices
    learner = LearnerHandshake(_sasl(learner_require=True))
    server = ServerHandshake(_sasl(users={"zab": "other"}))
    with pytest.raises(HandshakeRefused, match="learnerRequireSasl"):
        _run(learner, server)
    # a forged OK outcome with a made-up rspauth
    learner = LearnerHandshake(_sasl(learner_require=True))
    server = ServerHandshake(_sasl())
    challenge = server.receive(learner.start())[0]
    learner.receive(challenge)
    with pytest.raises(HandshakeRefused, match="rspauth"):
        learner.receive(encode_msg(OUTCOME, bytes([OK]) + b"rspauth=" + b"0" * 32))


def test_out_of_order_and_garbage_messages_are_refused():
    server = ServerHandshake(_sasl())
    with pytest.raises(HandshakeRefused, match="unexpected"):
        server.receive(encode_msg(RESPONSE, b"username=x"))
    server = ServerHandshake(_sasl())
    with pytest.raises(HandshakeRefused):
        server.receive(b"")
    server = ServerHandshake(_sasl())
    server.receive(encode_msg(START))
    with pytest.raises(HandshakeRefused):
        server.receive(encode_msg(START))
    learner = LearnerHandshake(_sasl())
    learner.start()
    with pytest.raises(HandshakeRefused):
        learner.receive(encode_msg(OUTCOME, bytes([OK])))
    # a learner whose challenge is garbage answers an empty response and is failed
    learner, server = LearnerHandshake(_sasl()), ServerHandshake(_sasl(server_require=True))
    learner.start()
    (resp,) = learner.receive(encode_msg(CHALLENGE, b"not a challenge"))
    assert resp == encode_msg(RESPONSE, b"")
    assert learner.failure


def test_negotiation_matrix():
    off = None
    on = _sasl()
    assert sasl_negotiation(off, True, True) is False
    assert sasl_negotiation(off, False, False) is False
    assert sasl_negotiation(on, True, True) is True
    assert sasl_negotiation(on, False, True) is False  # rolling upgrade: accepted
    assert sasl_negotiation(on, False, False) is False
    with pytest.raises(HandshakeRefused, match="learnerRequireSasl"):
        sasl_negotiation(_sasl(learner_require=True), False, True)
    assert sasl_negotiation(_sasl(learner_require=True), False, False) is False
    with pytest.raises(HandshakeRefused, match="serverRequireSasl"):
        sasl_negotiation(_sasl(server_require=True), False, False)


def test_hello_versions():
    assert decode_hello(encode_hello(3, False)) == (1, 3, 0)
    assert decode_hello(encode_hello(3, True)) == (2, 3, FLAG_SASL)
    for bad in (b"", b"ZBPR", struct.pack(">4sHq", b"ZBPR", 3, 1),
                struct.pack(">4sHqB", b"XXXX", 2, 1, 1), b"\x16\x03\x01" + b"\0" * 20):
        with pytest.raises(HandshakeRefused, match="bad hello"):
            decode_hello(bad)
    # an earlier zabby (version 1 only) cannot mistake a version 2 hello for its own
    with pytest.raises(struct.error):
        struct.unpack(">4sHq", encode_hello(3, True))


def test_a_member_without_quorum_security_still_links_with_a_version_1_peer():
    """An earlier zabby (hello version 1, says hello first either way) dials a member."""

    async def main():
        ports = free_ports(2)
        addrs = {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
        got = []
        one = PeerMesh(1, addrs, lambda frm, m: got.append((frm, m)))
        await one.start()
        try:
            def old_member():
                with socket.create_connection(addrs[1], timeout=3) as s:
                    s.sendall(encode_frame(struct.pack(">4sHq", b"ZBPR", 1, 2)))
                    reader, frames = FrameReader(), []
                    while not frames:
                        frames += reader.feed(s.recv(4096))
                    s.sendall(encode_frame(b"zab"))
                    time.sleep(0.3)
                    return frames[0]

            hello = await asyncio.to_thread(old_member)
            assert hello == struct.pack(">4sHq", b"ZBPR", 1, 1)
            await _until(lambda: got == [(2, b"zab")])
        finally:
            await one.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_certificate_host_matching():
    ca = CertificateAuthority("match CA")
    cert = ca.issue("m", server=True, hosts=("zk1.example.com", "*.zk.example.com",
                                             "10.0.0.7")).cert
    assert certificate_matches(cert, "zk1.example.com")
    assert certificate_matches(cert, "ZK1.example.com.")
    assert certificate_matches(cert, "a.zk.example.com")
    assert not certificate_matches(cert, "a.b.zk.example.com")
    assert certificate_matches(cert, "10.0.0.7")
    assert not certificate_matches(cert, "10.0.0.8")
    assert not certificate_matches(cert, "zk2.example.com")
    # no SAN: the CN
    assert certificate_matches(ca.issue("127.0.0.1").cert, "127.0.0.1")


# ------------------------------------------------------------------ settings
def _cfg(tmp_path: Path, extra: str, system_properties=None):
    text = (f"dataDir={tmp_path}/data\nclientPort=2181\n"
            "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n" + extra)
    return parse_config(text, source=str(tmp_path / "zoo.cfg"),
                        system_properties=system_properties)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Member stores from one CA; an intruder's from another."""
    d = tmp_path_factory.mktemp("pki")
    ca, other = CertificateAuthority("zabby quorum CA"), CertificateAuthority("intruder CA")
    member = ca.issue("member", server=True)
    member.write(d / "member.jks", PW)
    ca.write_truststore(d / "trust.jks", PW)
    member.write_pem(d / "member")  # member.crt/.key for a positive-control client
    ca.write_pem(d / "ca.pem")
    stranger = other.issue("stranger", server=True)
    stranger.write_pem(d / "stranger")
    # a member certificate that does not name 127.0.0.1
    elsewhere = ca.issue("elsewhere", server=True, hosts=("zk9.example.com",))
    elsewhere.write(d / "elsewhere.jks", PW)
    return d


def _tls_keys(d: Path, store: str = "member.jks", **more) -> dict[str, str]:
    keys = {
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": str(d / store),
        "ssl.quorum.keyStore.password": PW,
        "ssl.quorum.trustStore.location": str(d / "trust.jks"),
        "ssl.quorum.trustStore.password": PW,
    }
    keys.update(more)
    return keys


def _lines(keys: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in keys.items())


JAAS = """
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
        user_zab="zab-secret";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
        username="zab" password="zab-secret";
};
"""


def _jaas(tmp_path: Path, text: str = JAAS, name: str = "jaas.conf") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_fail_closed_missing_quorum_key_store(tmp_path, pki):
    keys = _tls_keys(pki)
    keys["ssl.quorum.keyStore.location"] = str(tmp_path / "nowhere.jks")
    with pytest.raises(ConfigError) as info:
        load_security(_cfg(tmp_path, _lines(keys)))
    msg = str(info.value)
    assert "ssl.quorum.keyStore.location" in msg and "nowhere.jks" in msg
    assert "does not exist" in msg and PW not in msg
    # no key store at all
    del keys["ssl.quorum.keyStore.location"]
    with pytest.raises(ConfigError, match="sslQuorum: 'true' needs a key store.*"
                       "ssl.quorum.keyStore.location is not set; refusing to start"):
        load_security(_cfg(tmp_path, _lines(keys)))
    # a wrong store password names the key and file, never the password
    keys = _tls_keys(pki, **{"ssl.quorum.keyStore.password": "nope-pw"})
    with pytest.raises(ConfigError) as info:
        load_security(_cfg(tmp_path, _lines(keys)))
    assert "member.jks" in str(info.value) and "nope-pw" not in str(info.value)


def test_fail_closed_other_quorum_settings(tmp_path, pki):
    # ssl.quorum.* without sslQuorum/portUnification: nothing would use them
    keys = _tls_keys(pki)
    del keys["sslQuorum"]
    with pytest.raises(ConfigError, match="neither sslQuorum nor portUnification"):
        load_security(_cfg(tmp_path, _lines(keys)))
    # require without enable
    with pytest.raises(ConfigError, match="serverRequireSasl.*needs quorum.auth.enableSasl"):
        load_security(_cfg(tmp_path, "quorum.auth.serverRequireSasl=true\n"))
    # enableSasl without a JAAS file
    with pytest.raises(ConfigError, match="java.security.auth.login.config: is not set"):
        load_security(_cfg(tmp_path, "quorum.auth.enableSasl=true\n"))
    # a JAAS file without the learner section: file and section named
    jaas = _jaas(tmp_path, JAAS.split("QuorumLearner")[0])
    with pytest.raises(ConfigError) as info:
        load_security(_cfg(tmp_path, f"quorum.auth.enableSasl=true\n"
                           f"java.security.auth.login.config={jaas}\n"))
    assert str(jaas) in str(info.value) and "'QuorumLearner'" in str(info.value)
    assert "zab-secret" not in str(info.value)
    # a named server section that is missing
    jaas = _jaas(tmp_path)
    with pytest.raises(ConfigError, match="'OtherServer'"):
        load_security(_cfg(tmp_path, "quorum.auth.enableSasl=true\n"
                           "quorum.auth.server.saslLoginContext=OtherServer\n",
                           {"java.security.auth.login.config": str(jaas)}))
    # a missing JAAS file
    with pytest.raises(ConfigError, match="missing.conf"):
        load_security(_cfg(tmp_path, "quorum.auth.enableSasl=true\n"
                           f"java.security.auth.login.config={tmp_path}/missing.conf\n"))
    # Kerberos
    krb = _jaas(tmp_path, JAAS.replace(
        'org.apache.zookeeper.server.auth.DigestLoginModule required\n        user_zab',
        'com.sun.security.auth.module.Krb5LoginModule required\n        user_zab'), "k.conf")
    with pytest.raises(ConfigError, match="Kerberos"):
        load_security(_cfg(tmp_path, "quorum.auth.enableSasl=true\n"
                           f"java.security.auth.login.config={krb}\n"))


def test_quorum_settings_loaded(tmp_path, pki):
    jaas = _jaas(tmp_path)
    keys = _tls_keys(pki, portUnification="true", sslQuorumReloadCertFiles="true")
    sec = load_security(_cfg(
        tmp_path, _lines(keys) + "quorum.auth.enableSasl=true\n"
        "quorum.auth.learnerRequireSasl=true\nquorum.auth.serverRequireSasl=true\n",
        {"java.security.auth.login.config": str(jaas)}))
    q = sec.quorum
    assert q.ssl_quorum and q.port_unification and q.reload_cert_files
    assert q.dial_tls and q.accept_tls and q.accept_plain
    assert q.sasl.username == "zab" and q.sasl.server_require and q.sasl.learner_require
    assert "zab-secret" not in repr(q)
    # the JAAS file has no client "Server" section: client SASL is simply off
    assert sec.sasl.users is None
    assert load_security(_cfg(tmp_path, "")).quorum is None


# ------------------------------------------------------------------ meshes in process
async def _until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _security(tmp_path, extra: str, system_properties=None):
    return load_security(_cfg(tmp_path, extra, system_properties)).quorum


async def _pair(q1, q2, got):
    ports = free_ports(2)
    addrs = {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
    one = PeerMesh(1, addrs, lambda frm, m: got.append((1, frm, m)), security=q1,
                   min_backoff=0.02, max_backoff=0.2, name="quorum")
    two = PeerMesh(2, addrs, lambda frm, m: got.append((2, frm, m)), security=q2,
                   min_backoff=0.02, max_backoff=0.2, name="quorum")
    await one.start()
    await two.start()
    return one, two, addrs


async def _exchange(one, two, got):
    await _until(lambda: one.connected(2) and two.connected(1))
    one.send(2, b"ping")
    two.send(1, b"pong")
    await _until(lambda: len(got) >= 2)
    assert sorted(got) == [(1, 2, b"pong"), (2, 1, b"ping")]


def test_meshes_link_over_mutual_tls(tmp_path, pki):
    async def main():
        q = _security(tmp_path, _lines(_tls_keys(pki)))
        got = []
        one, two, _ = await _pair(q, q, got)
        try:
            await _exchange(one, two, got)
            ssl_obj = one.links[2].transport.get_extra_info("ssl_object")
            assert ssl_obj is not None and ssl_obj.getpeercert()
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_meshes_link_with_tls_and_sasl_together(tmp_path, pki):
    jaas = _jaas(tmp_path)

    async def main():
        q = _security(tmp_path, _lines(_tls_keys(pki)) + "quorum.auth.enableSasl=true\n"
                      "quorum.auth.serverRequireSasl=true\nquorum.auth.learnerRequireSasl=true\n",
                      {"java.security.auth.login.config": str(jaas)})
        got = []
        one, two, _ = await _pair(q, q, got)
        try:
            await _exchange(one, two, got)
            assert one.links[2].transport.get_extra_info("ssl_object") is not None
            assert one.links[2].handshake.authenticated
            assert two.links[1].handshake.authenticated
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_tls_member_whose_certificate_names_another_host_is_refused(tmp_path, pki, caplog):
    async def main():
        good = _security(tmp_path, _lines(_tls_keys(pki)))
        bad = _security(tmp_path, _lines(_tls_keys(pki, "elsewhere.jks")))
        got = []
        one, two, _ = await _pair(good, bad, got)  # 2 (bad cert) dials 1
        try:
            await _until(lambda: one.refused >= 1)
            await asyncio.sleep(0.3)
            assert not one.connected(2) and not two.connected(1) and not got
        finally:
            await two.stop()
            await one.stop()

    with caplog.at_level(logging.WARNING, "zabby.server.peers"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "names neither 127.0.0.1 nor 127.0.0.1" in caplog.text
    assert "CN=elsewhere" in caplog.text


def test_dialler_refuses_a_member_whose_certificate_names_another_host(tmp_path, pki, caplog):
    async def main():
        good = _security(tmp_path, _lines(_tls_keys(pki)))
        bad = _security(tmp_path, _lines(_tls_keys(pki, "elsewhere.jks")))
        got = []
        one, two, _ = await _pair(bad, good, got)  # 2 dials 1, whose cert is elsewhere's
        try:
            await _until(lambda: two.refused >= 1)
            await asyncio.sleep(0.3)
            assert not one.connected(2) and not two.connected(1) and not got
        finally:
            await two.stop()
            await one.stop()

    with caplog.at_level(logging.WARNING, "zabby.server.peers"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "refused server 1 at 127.0.0.1" in caplog.text
    assert "Hostname mismatch" in caplog.text or "IP address mismatch" in caplog.text


def test_learner_require_refuses_a_member_without_sasl(tmp_path, caplog):
    jaas = _jaas(tmp_path)

    async def main():
        q = _security(tmp_path, "quorum.auth.enableSasl=true\n"
                      "quorum.auth.learnerRequireSasl=true\n",
                      {"java.security.auth.login.config": str(jaas)})
        got = []
        one, two, _ = await _pair(None, q, got)  # 2 (requires) dials 1 (no SASL)
        try:
            await _until(lambda: two.refused >= 1)
            assert not one.connected(2) and not two.connected(1) and not got
        finally:
            await two.stop()
            await one.stop()

    with caplog.at_level(logging.WARNING, "zabby.server.peers"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert ("refused peer link to server 1 at 127.0.0.1" in caplog.text
            and "quorum.auth.learnerRequireSasl=true" in caplog.text)


def test_handshakes_in_progress_are_capped_and_refusals_rate_limited(tmp_path, pki, caplog,
                                                                     monkeypatch):
    import zabby.server.peers as peers

    monkeypatch.setattr(peers, "MAX_PENDING", 3)
    monkeypatch.setattr(peers, "REFUSAL_LOG_BURST", 4)
    for extra in ("", _lines(_tls_keys(pki))):
        q = _security(tmp_path, extra) if extra else None

        async def main(q=q):
            ports = free_ports(2)
            addrs = {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
            one = PeerMesh(1, addrs, lambda frm, m: None, security=q, name="quorum")
            await one.start()
            socks = []
            try:
                for _ in range(10):  # silent connections: 3 wait, 7 are refused
                    socks.append(socket.create_connection(addrs[1], timeout=2))
                    await asyncio.sleep(0.05)
                await _until(lambda: one.refused >= 7)
                assert one.pending == 3 and one.refused == 7
            finally:
                for c in socks:
                    c.close()
                await one.stop()

        caplog.clear()
        with caplog.at_level(logging.WARNING, "zabby.server.peers"):
            asyncio.run(asyncio.wait_for(main(), 30))
        lines = [r for r in caplog.records if "already in their handshake" in r.getMessage()]
        assert len(lines) == 4, extra


def test_meshes_link_with_sasl_and_refuse_a_wrong_password(tmp_path, caplog):
    jaas = _jaas(tmp_path)
    wrong = _jaas(tmp_path, JAAS.replace('password="zab-secret"', 'password="guess"'), "w.conf")
    req = "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n" \
          "quorum.auth.learnerRequireSasl=true\n"

    async def main():
        q = _security(tmp_path, req, {"java.security.auth.login.config": str(jaas)})
        got = []
        one, two, _ = await _pair(q, q, got)
        try:
            await _exchange(one, two, got)
        finally:
            await two.stop()
            await one.stop()
        # a member with the wrong password (2 dials 1) never gets a link
        qw = _security(tmp_path, req, {"java.security.auth.login.config": str(wrong)})
        got = []
        one, two, _ = await _pair(q, qw, got)
        try:
            await _until(lambda: one.refused >= 1 and two.refused >= 1)
            assert not one.connected(2) and not two.connected(1) and not got
        finally:
            await two.stop()
            await one.stop()

    with caplog.at_level(logging.INFO, "zabby.server.peers"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "authenticated (quorum SASL) as 'zab'" in caplog.text
    assert "authentication failed for 'zab'" in caplog.text
    assert "guess" not in caplog.text and "zab-secret" not in caplog.text


def test_sasl_enabled_without_require_accepts_a_plain_member(tmp_path, caplog):
    """Rolling upgrade: one member with enableSasl, one without."""
    jaas = _jaas(tmp_path)

    async def main():
        q = _security(tmp_path, "quorum.auth.enableSasl=true\n",
                      {"java.security.auth.login.config": str(jaas)})
        got = []
        one, two, _ = await _pair(q, None, got)
        try:
            await _exchange(one, two, got)
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_port_unification_accepts_tls_and_plaintext_members(tmp_path, pki):
    """Rolling upgrade to sslQuorum: member 1 takes both (portUnification), member 2 dials
    in plaintext (not upgraded yet), then with TLS (sslQuorum)."""

    async def main():
        unified = _security(tmp_path, _lines(_tls_keys(pki, portUnification="true")))
        plain_but_unified = _security(tmp_path, _lines(_tls_keys(
            pki, sslQuorum="false", portUnification="true")))
        for dialler, tls in ((None, False), (plain_but_unified, False), (unified, True)):
            got = []
            one, two, _ = await _pair(unified, dialler, got)
            try:
                await _exchange(one, two, got)
                ssl_obj = one.links[2].transport.get_extra_info("ssl_object")
                assert (ssl_obj is not None) is tls
            finally:
                await two.stop()
                await one.stop()
        # without portUnification a TLS member refuses the plaintext one
        strict = _security(tmp_path, _lines(_tls_keys(pki)))
        got = []
        one, two, _ = await _pair(strict, None, got)
        try:
            await _until(lambda: one.refused >= 1)
            assert not one.connected(2) and not got
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_ssl_quorum_reload_cert_files(tmp_path, pki, caplog):
    import shutil

    from zabby.server.quorum_auth import watch_cert_files

    store = tmp_path / "reload.jks"
    shutil.copy(pki / "member.jks", store)
    keys = _tls_keys(pki, sslQuorumReloadCertFiles="true")
    keys["ssl.quorum.keyStore.location"] = str(store)
    q = _security(tmp_path, _lines(keys))
    assert q.server_tls.identity[0].subject.rfc4514_string() == "CN=member,O=zabby"

    async def main():
        task = asyncio.get_running_loop().create_task(watch_cert_files(q, interval=0.05))
        try:
            old = q.server_tls
            await asyncio.sleep(0.1)  # the watcher has taken its first look
            store.write_bytes(b"garbage")  # a broken store keeps the old contexts
            await asyncio.sleep(0.5)
            assert q.server_tls is old
            shutil.copy(pki / "elsewhere.jks", store)
            await _until(lambda: q.server_tls is not old)
            assert q.server_tls.identity[0].subject.rfc4514_string() == "CN=elsewhere,O=zabby"
            assert q.client_tls.identity[0].subject.rfc4514_string() == "CN=elsewhere,O=zabby"
        finally:
            task.cancel()

    with caplog.at_level(logging.INFO, "zabby.server.quorum_auth"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "keeping the previous certificates" in caplog.text
    assert "reloaded the quorum key and trust stores" in caplog.text
    assert PW not in caplog.text


def _read_all(sock, limit=1.5) -> bytes:
    sock.settimeout(limit)
    data = b""
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError, OSError):
        pass
    return data


def test_sasl_intruders_refused_and_silence_bounded(tmp_path, caplog):
    """Raw intruders against a mesh with serverRequireSasl: no hello flag, the wrong
    password, silence, an oversized pre-auth frame. None is ever attached."""
    jaas = _jaas(tmp_path)
    q = _security(tmp_path, "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n",
                  {"java.security.auth.login.config": str(jaas)})
    q.handshake_timeout = 0.5

    def intrude(port, mode):
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            if mode == "plain":
                s.sendall(encode_frame(encode_hello(2, False)) + encode_frame(b"\x00zab"))
            elif mode == "wrong":
                s.sendall(encode_frame(encode_hello(2, True)) + encode_frame(encode_msg(START)))
                reader, frames = FrameReader(), []
                while len(frames) < 2:  # the member's hello, then the challenge
                    frames += reader.feed(s.recv(4096))
                assert frames[1][0] == CHALLENGE
                token = DigestMD5Client("zab", "guess").step(frames[1][1:])
                s.sendall(encode_frame(encode_msg(RESPONSE, token)))
            elif mode == "big":
                s.sendall(struct.pack(">II", PRE_AUTH_MAX_FRAME + 1, 0))
            return _read_all(s)

    async def main():
        ports = free_ports(2)
        addrs = {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
        got = []
        one = PeerMesh(1, addrs, lambda frm, m: got.append(m), security=q, name="quorum")
        await one.start()
        try:
            out = {}
            for mode in ("plain", "wrong", "silent", "big"):
                out[mode] = await asyncio.to_thread(intrude, ports[0], mode)
            assert not got and not one.links
            assert one.refused == 4
            return out
        finally:
            await one.stop()

    with caplog.at_level(logging.WARNING, "zabby.server.peers"):
        out = asyncio.run(asyncio.wait_for(main(), 30))
    for mode in ("plain", "silent", "big"):
        assert out[mode] == b"", mode  # not even the member's hello
    # (the wrong-password intruder read the hello and challenge itself)
    assert out["wrong"] == encode_frame(encode_msg(OUTCOME, bytes([REFUSED])))
    assert "does not do quorum SASL and quorum.auth.serverRequireSasl=true" in caplog.text
    assert "authentication failed for 'zab'" in caplog.text
    assert "no hello within 0.5 s" in caplog.text
    assert f"exceeds {PRE_AUTH_MAX_FRAME}" in caplog.text
    assert "guess" not in caplog.text


# ------------------------------------------------------------------ real ensembles
def _ensemble(tmp_path, member_cfg, **cfg):
    """Three zabby members on loopback; `member_cfg(i)` adds member i's own keys."""
    from zabby.testing import ZabbyEnsemble

    ens = ZabbyEnsemble(tmp_path / "ens", 3, start=False, tickTime=200, **cfg)
    for i, m in ens.members.items():
        m.cfg.update(member_cfg(i))
    try:
        ens.start()
    except BaseException:
        ens.stop()
        raise
    return ens


def _ports(ens, i):
    """(quorum port, election port) of member i."""
    line = ens.members[i].cfg[f"server.{i}"]
    _, qp, ep = line.split(";")[0].split(":")[:3]
    return int(qp), int(ep)


class _Writer:
    """Writes through one member and reads through another, in a thread, until stopped;
    every operation must succeed."""

    def __init__(self, ens, w: int, r: int) -> None:
        import threading

        from kazoo.client import KazooClient

        self.wc = KazooClient(hosts=ens.members[w].hosts, timeout=10)
        self.rc = KazooClient(hosts=ens.members[r].hosts, timeout=10)
        self.wc.start(timeout=10)
        self.rc.start(timeout=10)
        self.wc.ensure_path("/sec")
        self.n = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.wc.set("/sec", b"%d" % self.n)
                self.n += 1
                time.sleep(0.02)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)
                return

    def finish(self) -> None:
        self._stop.set()
        self._t.join(10)
        try:
            assert not self.errors, self.errors
            assert self.n > 0
            self.rc.sync("/sec")
            assert self.rc.get("/sec")[0] == b"%d" % (self.n - 1)
        finally:
            for c in (self.wc, self.rc):
                c.stop()
                c.close()


def _mntr(ens, i) -> dict[str, str]:
    out = ens.members[i].four_letter_word("mntr")
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def _log(ens, i) -> str:
    return ens.members[i].log_path.read_text(errors="replace")


def _tls_intruder(port: int, cert: tuple[Path, Path] | None, ca: Path | None,
                  claim: int = 3) -> bytes:
    """Dial with TLS (optionally a client certificate), say hello as server `claim` and
    ask for Zab traffic; whatever plaintext comes back."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except (ssl.SSLError, OSError):
        raw.close()
        return b""
    with s:
        try:
            s.sendall(encode_frame(encode_hello(claim, False)) + encode_frame(b"\x00\x00"))
        except (ssl.SSLError, OSError):
            return b""
        return _read_all(s)


def _plain_intruder(port: int, claim: int = 3, sasl: bool = False,
                    password: str | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(encode_frame(encode_hello(claim, sasl or password is not None)))
        if password is None:
            s.sendall(encode_frame(b"\x00\x00"))  # a Zab message, unauthenticated
            return _read_all(s)
        s.sendall(encode_frame(encode_msg(START)))
        reader, frames = FrameReader(), []
        s.settimeout(3)
        while len(frames) < 2:
            chunk = s.recv(4096)
            if not chunk:
                return b"".join(frames)
            frames += reader.feed(chunk)
        token = DigestMD5Client("zab", password).step(frames[1][1:])
        s.sendall(encode_frame(encode_msg(RESPONSE, token)))
        rest = reader.feed(_read_all(s))
        return b"|".join([*frames, *rest])


@pytest.fixture(scope="module")
def member_pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("member-pki")
    ca, other = CertificateAuthority("zabby quorum CA"), CertificateAuthority("intruder CA")
    for i in (1, 2, 3):
        ca.issue(f"server{i}", server=True).write(d / f"server{i}.p12", PW)
    ca.write_truststore(d / "trust.p12", PW)
    ca.write_pem(d / "ca.pem")
    ca.issue("insider", server=True).write_pem(d / "insider")
    other.issue("stranger", server=True).write_pem(d / "stranger")
    return d


def test_ssl_quorum_ensemble_serves_and_refuses_intruders(tmp_path, member_pki):
    d = member_pki

    def member(i):
        return {
            "sslQuorum": "true",
            "ssl.quorum.keyStore.location": str(d / f"server{i}.p12"),
            "ssl.quorum.keyStore.password": PW,
            "ssl.quorum.trustStore.location": str(d / "trust.p12"),
            "ssl.quorum.trustStore.password": PW,
        }

    ens = _ensemble(tmp_path, member)
    try:
        leader = ens.leader()
        w = next(i for i in ens.members if i != leader)
        r = next(i for i in ens.members if i not in (leader, w))
        writer = _Writer(ens, w, r)
        epoch = _mntr(ens, leader)["zk_epoch"]
        stranger = (d / "stranger.crt", d / "stranger.key")
        got = {}
        for target in (1, 2):  # both accept links from server 3
            for kind, port in zip(("quorum", "election"), _ports(ens, target), strict=True):
                got[target, kind, "plain"] = _plain_intruder(port)
                got[target, kind, "no cert"] = _tls_intruder(port, None, None)
                got[target, kind, "other CA"] = _tls_intruder(port, stranger, None)
        # positive control: a certificate of the ensemble's CA gets through TLS, and is
        # then refused for the server id it claims
        got["insider"] = _tls_intruder(_ports(ens, 1)[0], (d / "insider.crt", d / "insider.key"),
                                       d / "ca.pem", claim=9)
        time.sleep(0.5)
        writer.finish()
        for key, data in got.items():
            assert b"ZBPR" not in data and data == b"", key
        # no election, no extra learner: the intruders never voted nor learnt
        assert ens.leader() == leader
        after = _mntr(ens, leader)
        assert after["zk_epoch"] == epoch and after["zk_learners"] == "2"
        for target in (1, 2):
            text = _log(ens, target)
            for kind in ("quorum", "election"):
                assert f"{kind} port: refused peer connection from 127.0.0.1" in text
            assert "TLS handshake failed" in text
        text = _log(ens, 1)
        assert "certificate verify failed" in text or "unknown ca" in text.lower() or \
            "peer did not return a certificate" in text
        assert "unknown server id 9" in text
        assert PW not in text
    finally:
        ens.stop()


def test_quorum_sasl_ensemble_serves_and_refuses_intruders(tmp_path):
    jaas = _jaas(tmp_path)
    ens = _ensemble(
        tmp_path, lambda i: {}, jvm_flags=[f"-Djava.security.auth.login.config={jaas}"],
        **{"quorum.auth.enableSasl": "true", "quorum.auth.learnerRequireSasl": "true",
           "quorum.auth.serverRequireSasl": "true"})
    try:
        leader = ens.leader()
        w = next(i for i in ens.members if i != leader)
        r = next(i for i in ens.members if i not in (leader, w))
        writer = _Writer(ens, w, r)
        epoch = _mntr(ens, leader)["zk_epoch"]
        got = {}
        for target in (1, 2):
            for kind, port in zip(("quorum", "election"), _ports(ens, target), strict=True):
                got[target, kind, "no credentials"] = _plain_intruder(port)
                got[target, kind, "wrong password"] = _plain_intruder(port, password="guess")
        time.sleep(0.5)
        writer.finish()
        refused = encode_msg(OUTCOME, bytes([REFUSED]))
        for key, data in got.items():
            if key[2] == "no credentials":
                assert data == b"", key
            else:  # hello, challenge, refusal: nothing else
                assert data.endswith(b"|" + refused) and data.count(b"|") == 2, key
        # no election, no extra learner: the intruders never voted nor learnt
        assert ens.leader() == leader
        after = _mntr(ens, leader)
        assert after["zk_epoch"] == epoch and after["zk_learners"] == "2"
        for target in (1, 2):
            text = _log(ens, target)
            assert "does not do quorum SASL and quorum.auth.serverRequireSasl=true" in text
            assert "authentication failed for 'zab'" in text
            assert "authenticated (quorum SASL) as 'zab'" in text
            assert "zab-secret" not in text and "guess" not in text
    finally:
        ens.stop()


def test_serve_refuses_a_missing_quorum_key_store(tmp_path, pki):
    """`zabby serve` exits at once, naming the key and the file."""
    import subprocess
    import sys

    keys = _tls_keys(pki)
    keys["ssl.quorum.keyStore.location"] = str(tmp_path / "gone.p12")
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}/data\nclientPort=1\nclientPortAddress=127.0.0.1\n"
                   "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
                   "server.3=127.0.0.1:2890:3890\n" + _lines(keys))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    p = subprocess.run([sys.executable, "-m", "zabby.cli.main", "serve", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, p.stderr
    assert "ssl.quorum.keyStore.location" in p.stderr and "gone.p12" in p.stderr
    assert "refusing to start" in p.stderr and PW not in p.stderr
