"""TLS for clients: the secure client port, port unification, x509 identities and ACLs.

Differential tests run Apache ZooKeeper 3.8 (NettyServerCnxnFactory) with the same JKS
stores and compare what a client sees: whoAmI, refusals, x509 ACL outcomes.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zabby.testing.pytest_plugin import kazoo_client, require_zookeeper
from zabby.testing.rawclient import RawClient
from zabby.testing.servers import ZabbyServer, ZooKeeperServer, free_port
from zabby.wire import ACL, Err, Id, Op
from zabby.wire.records import CreateRequest, PathWatchRequest, SetDataRequest

from .conftest import PASSWORD, Pki

NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"
ALL = 31


def _dn(pki: Pki, who: str) -> str:
    return {"client": "CN=client,OU=test,O=zabby", "other": "CN=other,OU=test,O=zabby",
            "admin": "CN=admin,OU=ops,O=zabby"}[who]


def _start(kind: str, tmp: Path, pki: Pki, *, store: str = "JKS", **extra):
    """A zabby or ZooKeeper server with a secure client port (`srv.secure_port`)."""
    port = free_port()
    cfg = pki.tls_cfg(store, secureClientPort=port, **extra)
    if kind == "zookeeper":
        require_zookeeper()
        srv = ZooKeeperServer(tmp / "zk", serverCnxnFactory=NETTY, **cfg)
    else:
        srv = ZabbyServer(tmp / "zabby", **cfg)
    srv.secure_port = port
    return srv


def _raw(port: int, ctx: ssl.SSLContext | None) -> RawClient:
    # generous: a fresh JVM's first TLS handshakes are slow on a busy machine
    c = RawClient("127.0.0.1", port, io_timeout=20.0, ssl_context=ctx)
    c.connect()
    return c


def _outcome(port: int, ctx: ssl.SSLContext | None) -> str:
    """'ok' when a session opens, else 'refused' (handshake failure or closed socket)."""
    try:
        c = _raw(port, ctx)
    except (ssl.SSLError, OSError, EOFError, ValueError, TimeoutError):
        return "refused"
    except Exception as e:  # ConnectionClosed and friends
        if "closed" in type(e).__name__.lower() or "closed" in str(e).lower():
            return "refused"
        raise
    try:
        # under TLS 1.3 a rejected certificate shows up after the handshake
        return "ok" if c.request(Op.WHO_AM_I).err == Err.OK else "refused"
    except Exception:  # noqa: BLE001 - closed after the handshake
        return "refused"
    finally:
        c.drop()


def _warm_up(port: int, pki: Pki) -> None:
    """One trusted session first (retried), so JVM warm-up cannot look like a refusal."""
    deadline = time.monotonic() + 30
    while _outcome(port, pki.context("client")) != "ok":
        assert time.monotonic() < deadline, "no TLS session within 30 s"
        time.sleep(0.2)


def _whoami(c: RawClient) -> list[tuple[str, str]]:
    r = c.request(Op.WHO_AM_I)
    assert r.err == Err.OK
    return sorted((i.authScheme, i.user) for i in r.body.clientInfo)


def _tls_word(port: int, ctx: ssl.SSLContext, word: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(word.encode())
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLError, OSError):
                    break
                if not chunk:
                    break
                out += chunk
    return out.decode()


def _plain_word(port: int, word: str, timeout: float = 2.0) -> str:
    """A plaintext four-letter word; '' when the server answers nothing."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(word.encode())
            return s.recv(65536).decode("utf-8", "replace")
    except OSError:
        return ""


# ------------------------------------------------------------------ kazoo, each store type
@pytest.mark.parametrize("store", ["JKS", "PKCS12", "PEM"])
def test_kazoo_over_tls(tmp_path, pki, store):
    with _start("zabby", tmp_path, pki, store=store) as srv:
        cert, key = pki.pem("client")
        k = kazoo_client(f"127.0.0.1:{srv.secure_port}", use_ssl=True, ca=pki.ca_pem,
                         certfile=cert, keyfile=key, verify_certs=True)
        try:
            k.create("/tls", b"over tls")
            assert k.get("/tls")[0] == b"over tls"
        finally:
            k.stop()
            k.close()
        c = _raw(srv.secure_port, pki.context("client"))
        try:
            assert _whoami(c) == [("ip", "127.0.0.1"), ("x509", _dn(pki, "client"))]
        finally:
            c.close()
        # the plaintext port still serves, without an x509 id
        p = _raw(srv.port, None)
        try:
            assert _whoami(p) == [("ip", "127.0.0.1")]
        finally:
            p.close()
        conf = srv.four_letter_word("conf")
        assert f"secureClientPort={srv.secure_port}" in conf
        for word in ("conf", "envi"):
            assert PASSWORD not in srv.four_letter_word(word)
    assert PASSWORD not in srv.log_path.read_text()


# ------------------------------------------------------------------ differential
def _scenario(kind: str, tmp: Path, pki: Pki) -> dict:
    """Everything a client can observe about TLS on one server."""
    seen: dict = {}
    extra = {"X509AuthenticationProvider.superUser": _dn(pki, "admin")}
    with _start(kind, tmp, pki, **extra) as srv:
        sp = srv.secure_port
        _warm_up(sp, pki)
        seen["trusted"] = _outcome(sp, pki.context("client"))
        seen["untrusted client certificate"] = _outcome(sp, pki.context("rogue"))
        seen["no client certificate (clientAuth=need)"] = _outcome(sp, pki.context(None))
        seen["plaintext on the TLS port"] = _outcome(sp, None)
        seen["ruok over TLS"] = _tls_word(sp, pki.context("client"), "ruok")
        seen["plaintext ruok on the TLS port"] = _plain_word(sp, "ruok")

        a = _raw(sp, pki.context("client"))
        b = _raw(sp, pki.context("other"))
        root = _raw(sp, pki.context("admin"))
        plain = _raw(srv.port, None)
        try:
            seen["whoami client"] = _whoami(a)
            seen["whoami super user"] = _whoami(root)
            acl = [ACL(ALL, Id("x509", _dn(pki, "client")))]
            seen["create x509 acl"] = a.request(Op.CREATE, CreateRequest("/x", b"v", acl, 0)).err
            seen["getAcl"] = [(x.perms, x.id.scheme, x.id.id) for x in
                              a.request(Op.GET_ACL, _path("/x")).body.acl]
            get = Op.GET_DATA
            seen["owner reads"] = a.request(get, PathWatchRequest("/x", False)).err
            seen["owner writes"] = a.request(Op.SET_DATA, SetDataRequest("/x", b"w", -1)).err
            seen["other cert reads"] = b.request(get, PathWatchRequest("/x", False)).err
            seen["other cert writes"] = b.request(Op.SET_DATA, SetDataRequest("/x", b"z", -1)).err
            seen["plaintext reads"] = plain.request(get, PathWatchRequest("/x", False)).err
            seen["super user reads"] = root.request(get, PathWatchRequest("/x", False)).err
            # the auth scheme picks up the x509 id
            seen["create auth acl"] = a.request(Op.CREATE, CreateRequest(
                "/y", b"", [ACL(ALL, Id("auth", ""))], 0)).err
            seen["auth acl"] = [(x.perms, x.id.scheme, x.id.id) for x in
                                a.request(Op.GET_ACL, _path("/y")).body.acl]
            seen["bad x509 id from plaintext"] = plain.request(Op.CREATE, CreateRequest(
                "/z", b"", [ACL(ALL, Id("x509", "CN=someone"))], 0)).err
        finally:
            for c in (a, b, root, plain):
                c.drop()
    return seen


def _path(p: str):
    from zabby.wire.records import PathRequest

    return PathRequest(p)


@pytest.mark.differential
def test_tls_matches_zookeeper(tmp_path, pki):
    require_zookeeper()
    zk = _scenario("zookeeper", tmp_path / "zk", pki)
    zb = _scenario("zabby", tmp_path / "zb", pki)
    assert zk["trusted"] == "ok"
    assert zk["whoami client"] == [("ip", "127.0.0.1"), ("x509", _dn(pki, "client"))]
    assert zk["other cert reads"] == Err.NOAUTH
    diffs = {k: (zk[k], zb.get(k)) for k in zk if zk[k] != zb.get(k)}
    assert not diffs, f"zookeeper vs zabby: {diffs}"


@pytest.mark.differential
@pytest.mark.parametrize("kind", ["zookeeper", "zabby"])
def test_client_auth_want_and_none(tmp_path, pki, kind):
    """want: a certificate is checked and gives x509, none is also fine; none: no x509."""
    with _start(kind, tmp_path / "want", pki, **{"ssl.clientAuth": "want"}) as srv:
        _warm_up(srv.secure_port, pki)
        assert _outcome(srv.secure_port, pki.context(None)) == "ok"
        assert _outcome(srv.secure_port, pki.context("rogue")) == "refused"
        c = _raw(srv.secure_port, pki.context("client"))
        try:
            assert _whoami(c) == [("ip", "127.0.0.1"), ("x509", _dn(pki, "client"))]
        finally:
            c.close()
    with _start(kind, tmp_path / "none", pki, **{"ssl.clientAuth": "none"}) as srv:
        c = _raw(srv.secure_port, pki.context("client"))
        try:
            assert _whoami(c) == [("ip", "127.0.0.1")]
        finally:
            c.close()


# ------------------------------------------------------------------ port unification
@pytest.mark.parametrize("kind", ["zabby", pytest.param("zookeeper", marks=pytest.mark.differential)])
def test_port_unification(tmp_path, pki, kind):
    cfg = pki.tls_cfg("JKS", **{"client.portUnification": "true",
                                "ssl.handshakeDetectionTimeoutMillis": "500"})
    if kind == "zookeeper":
        require_zookeeper()
        # ZooKeeper 3.8.0 registers the x509 provider for a unified port only after its
        # provider registry is built, and then closes every TLS connection with
        # "X509 Auth provider not found: x509"; naming the provider works around it.
        # zabby registers x509 whenever TLS for clients is on.
        cfg["authProvider.x509"] = X509_PROVIDER
        srv = ZooKeeperServer(tmp_path / "zk", serverCnxnFactory=NETTY, **cfg)
    else:
        srv = ZabbyServer(tmp_path / "zabby", **cfg)
    with srv:
        assert srv.four_letter_word("ruok") == "imok"  # plaintext 4lw
        assert _tls_word(srv.port, pki.context("client"), "ruok") == "imok"
        plain = kazoo_client(srv.hosts)
        cert, key = pki.pem("client")
        tls = kazoo_client(srv.hosts, use_ssl=True, ca=pki.ca_pem, certfile=cert,
                           keyfile=key, verify_certs=True)
        try:
            plain.create("/mixed", b"p")
            assert tls.get("/mixed")[0] == b"p"
            tls.set("/mixed", b"t")
            assert plain.get("/mixed")[0] == b"t"
        finally:
            for k in (plain, tls):
                k.stop()
                k.close()
        c = _raw(srv.port, pki.context("client"))
        p = _raw(srv.port, None)
        try:
            assert _whoami(c) == [("ip", "127.0.0.1"), ("x509", _dn(pki, "client"))]
            assert _whoami(p) == [("ip", "127.0.0.1")]
        finally:
            c.close()
            p.close()
        assert _outcome(srv.port, pki.context("rogue")) == "refused"


def test_port_unification_drops_silent_clients(tmp_path, pki):
    cfg = pki.tls_cfg("JKS", **{"client.portUnification": "true",
                                "ssl.handshakeDetectionTimeoutMillis": "300"})
    with ZabbyServer(tmp_path, **cfg) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            t0 = time.monotonic()
            assert s.recv(10) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - t0 < 4


# ------------------------------------------------------------------ fail closed
def _serve(tmp: Path, cfg: dict[str, object]) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    lines = {"tickTime": 2000, "dataDir": tmp / "data", "clientPort": free_port(),
             "clientPortAddress": "127.0.0.1", "admin.enableServer": "false"}
    lines.update(cfg)
    (tmp / "zoo.cfg").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    return subprocess.run([sys.executable, "-m", "zabby.cli.main", "serve", "--config",
                           str(tmp / "zoo.cfg")], capture_output=True, text=True, timeout=30)


def _bad_stores(pki: Pki, tmp: Path) -> dict[str, tuple[dict, str, str]]:
    """case -> (zoo.cfg keys, key named in the message, text in the message)."""
    tmp.mkdir(parents=True, exist_ok=True)
    garbage = tmp / "garbage.jks"
    garbage.write_bytes(b"\xfe\xed\xfe\xed" + b"\x00" * 40)
    expired = pki.ca.issue("localhost", server=True, days=1,
                           not_before=__import__("datetime").datetime(2020, 1, 1,
                                                                      tzinfo=__import__("datetime").timezone.utc))
    expired.write_jks(tmp / "expired.jks", PASSWORD)
    mismatch = tmp / "mismatch.pem"
    other_key = pki.ca.issue("x").key
    from cryptography.hazmat.primitives import serialization

    mismatch.write_bytes(other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()) + pki.server.cert.public_bytes(serialization.Encoding.PEM))
    noext = tmp / "server.keystore"
    noext.write_bytes(pki.key_store("JKS").read_bytes())
    port = free_port()
    base = pki.tls_cfg("JKS", secureClientPort=port)
    ks, ts = "ssl.keyStore.location", "ssl.trustStore.location"

    def with_(**kw):
        c = dict(base)
        c.update(kw)
        return c

    return {
        "missing key store": (with_(**{ks: tmp / "nope.jks"}), ks, "does not exist"),
        "wrong key store password": (with_(**{"ssl.keyStore.password": "wrong"}), ks, "password"),
        "wrong trust store password": (with_(**{"ssl.trustStore.password": "wrong"}), ts,
                                       "password"),
        "corrupt key store": (with_(**{ks: garbage}), ks, "garbage.jks"),
        "expired certificate": (with_(**{ks: tmp / "expired.jks"}), ks, "expired"),
        "key does not match certificate": (with_(**{ks: mismatch, "ssl.keyStore.password": ""}),
                                           ks, "does not match"),
        "unknown extension": (with_(**{ks: noext}), ks, "store type"),
        "missing trust store": (with_(**{ts: tmp / "nope.p12"}), ts, "does not exist"),
        "no trust store with clientAuth=need": (
            {k: v for k, v in base.items() if not k.startswith("ssl.trustStore")}, ts, "need"),
        "crl": (with_(**{"ssl.crl": "true"}), "ssl.crl", "revocation"),
        "unknown cipher suite": (with_(**{"ssl.ciphersuites": "TLS_FOO_WITH_BAR"}),
                                 "ssl.ciphersuites", "TLS_FOO_WITH_BAR"),
        "TLSv1 protocol": (with_(**{"ssl.enabledProtocols": "TLSv1"}),
                           "ssl.enabledProtocols", "TLSv1"),
        "bad clientAuth": (with_(**{"ssl.clientAuth": "maybe"}), "ssl.clientAuth", "maybe"),
        "ssl keys without a TLS listener": (
            {k: v for k, v in base.items() if k != "secureClientPort"}, "ssl.", "neither"),
        "unknown ssl key": (with_(**{"ssl.sslProvider": "OPENSSL"}), "ssl.sslProvider",
                            "does not support"),
    }


def test_bad_key_stores_refuse_to_start(tmp_path, pki):
    for i, (case, (cfg, key, text)) in enumerate(_bad_stores(pki, tmp_path / "stores").items()):
        p = _serve(tmp_path / f"case{i}", cfg)
        out = p.stdout + p.stderr
        assert p.returncode != 0, f"{case}: started\n{out}"
        assert key in out and text in out, f"{case}: message lacks {key!r}/{text!r}:\n{out}"
        assert "Traceback" not in out, f"{case}: {out}"
        assert PASSWORD not in out and "wrong" not in out.replace("wrong password", ""), (
            f"{case}: a password in the output:\n{out}")


def test_missing_key_store_given_as_system_property(tmp_path, pki):
    """-Dzookeeper.ssl.keyStore.location=... is honoured (and checked) like zoo.cfg."""
    tmp_path.mkdir(exist_ok=True)
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path / 'data'}\nclientPort={free_port()}\n"
                   f"secureClientPort={free_port()}\nadmin.enableServer=false\n")
    p = subprocess.run([sys.executable, "-m", "zabby.cli.main", "serve", "--config", str(cfg),
                        f"-Dzookeeper.ssl.keyStore.location={tmp_path / 'missing.jks'}",
                        f"-Dzookeeper.ssl.keyStore.password={PASSWORD}"],
                       capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "missing.jks" in out and "ssl.keyStore.location" in out
    assert PASSWORD not in out


def test_secure_port_only_without_client_port(tmp_path, pki):
    """secureClientPort and no clientPort: no plaintext listener at all (as ZooKeeper)."""
    sp = free_port()
    lines = {"tickTime": 2000, "dataDir": tmp_path / "data", "secureClientPort": sp,
             "secureClientPortAddress": "127.0.0.1", "admin.enableServer": "false",
             "4lw.commands.whitelist": "*",
             **pki.tls_cfg("PEM")}
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "zabby.cli.main", "serve", "--config",
                             str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if _tls_word(sp, pki.context("client"), "ruok") == "imok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        assert "clientPort=-1" in _tls_word(sp, pki.context("client"), "conf")
        assert "zabby serving on TLS only" in (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_ensemble_members_serve_tls_and_x509_acls(tmp_path, pki):
    """x509 ids travel with forwarded writes: a follower's TLS session passes (and a
    plaintext one fails) an x509 ACL checked on the leader."""
    from zabby.testing.servers import ZabbyEnsemble

    ens = ZabbyEnsemble(tmp_path, 3, start=False, **pki.tls_cfg("JKS"))
    for m in ens.members.values():
        m.secure_port = free_port()
        m.cfg["secureClientPort"] = m.secure_port
    try:
        ens.start()
        leader = ens.leader()
        follower = next(i for i in ens.members if i != leader)
        sp = ens.members[follower].secure_port
        a = _raw(sp, pki.context("client"))
        plain = _raw(ens.members[follower].port, None)
        try:
            assert _whoami(a) == [("ip", "127.0.0.1"), ("x509", _dn(pki, "client"))]
            acl = [ACL(ALL, Id("x509", _dn(pki, "client")))]
            assert a.request(Op.CREATE, CreateRequest("/e", b"v", acl, 0)).err == Err.OK
            assert a.request(Op.SET_DATA, SetDataRequest("/e", b"w", -1)).err == Err.OK
            assert plain.request(Op.SET_DATA, SetDataRequest("/e", b"x", -1)).err == Err.NOAUTH
            assert plain.request(Op.GET_DATA, PathWatchRequest("/e", False)).err == Err.NOAUTH
        finally:
            a.drop()
            plain.drop()
    finally:
        ens.stop()


def test_handshakes_in_progress_count_against_max_client_cnxns(tmp_path, pki):
    """Silent sockets on the TLS port hold a slot until their handshake times out, as a
    Netty channel does in ZooKeeper: they cannot exhaust the server beyond the limit."""
    with _start("zabby", tmp_path, pki, maxClientCnxns=2,
                **{"ssl.handshakeDetectionTimeoutMillis": "1500"}) as srv:
        silent = [socket.create_connection(("127.0.0.1", srv.secure_port)) for _ in range(2)]
        try:
            time.sleep(0.3)
            assert _outcome(srv.secure_port, pki.context("client")) == "refused"
        finally:
            for s in silent:
                s.close()
        time.sleep(0.3)
        assert _outcome(srv.secure_port, pki.context("client")) == "ok"
        assert "Too many connections from 127.0.0.1 - max is 2" in srv.log_path.read_text()
