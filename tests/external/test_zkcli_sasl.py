"""zkCli.sh (the Java client) logs in with SASL DIGEST-MD5 from a JAAS ``Client`` section
(CLIENT_JVMFLAGS), against Apache ZooKeeper and zabby alike; outputs must match."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import subprocess
from pathlib import Path

import pytest

import zabby
from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.pytest_plugin import in_ci, require_tool, require_zookeeper
from zabby.testing.sasl import jaas_server_section

pytestmark = [pytest.mark.external, pytest.mark.timeout(300)]

ZKCLI = os.environ.get("ZABBY_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
SCRIPT = """\
whoami
create /sasl-zkcli x sasl:bob:cdrwa
getAcl /sasl-zkcli
get /sasl-zkcli
quit
"""


def _client_jaas(tmp: Path, password: str) -> Path:
    f = tmp / f"client-{password}.jaas"
    f.write_text("Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
                 f'  username="bob"\n  password="{password}";\n}};\n')
    return f


def _normalise(out: str) -> list[str]:
    """zkCli's output, comparable between runs: whoami's ids sorted, and the watcher
    events after everything else, in their order. zkCli's event thread prints an event
    whenever it comes, so the SaslAuthenticated event may land before whoami's header
    or between it and the ids, by a few milliseconds of timing either way."""
    keep: list[str] = []
    events: list[str] = []
    ids: list[str] | None = None  # whoami's lines, in ZooKeeper's hash-set order: sorted
    for line in out.splitlines():
        line = line.rstrip()
        if not line or line.startswith(("SLF4J:", "Connecting to", "JLine", "Welcome to")):
            continue
        if line == "WATCHER::":
            continue
        if line.startswith("WatchedEvent "):
            events.append(line)
            continue
        if ids is not None:
            if re.match(r"^[a-z0-9]+: ", line):
                ids.append(line)
                continue
            keep.extend(sorted(ids))
            ids = None
        keep.append(line)
        if line == "Auth scheme: User":
            ids = []
    keep.extend(sorted(ids or ()))
    return keep + ["--- events"] + events


def _zkcli(hosts: str, client_jaas: Path) -> list[str]:
    env = dict(os.environ, CLIENT_JVMFLAGS=f"-Djava.security.auth.login.config={client_jaas}")
    p = subprocess.run([ZKCLI, "-server", hosts], input=SCRIPT, capture_output=True,
                       text=True, timeout=90, env=env)
    return _normalise(p.stdout) + ["--- stderr"] + _normalise(p.stderr)


def test_zkcli_sasl_matches_zookeeper(tmp_path, monkeypatch):
    require_tool(ZKCLI, "zookeeper")
    require_zookeeper()
    monkeypatch.setenv("PYTHONPATH", str(Path(zabby.__file__).resolve().parents[1]))
    server_jaas = tmp_path / "server.jaas"
    server_jaas.write_text(jaas_server_section({"bob": "bob-pw"}))
    flags = [f"-Djava.security.auth.login.config={server_jaas}"]
    good, bad = _client_jaas(tmp_path, "bob-pw"), _client_jaas(tmp_path, "wrong")
    out = {}
    for cls in (ZooKeeperServer, ZabbyServer):
        with cls(tmp_path / cls.kind, jvm_flags=flags,
                 **{"authProvider.1": SASL_PROVIDER}) as srv:
            out[cls.kind] = _zkcli(srv.hosts, good) + ["=== wrong password"] + _zkcli(
                srv.hosts, bad)
    ref, got = out["zookeeper"], out["zabby"]
    assert "sasl: bob" in ref and "state:SaslAuthenticated" in " ".join(ref), ref
    assert got == ref, "\n".join(difflib.unified_diff(ref, got, "zookeeper", "zabby",
                                                      lineterm=""))


# ------------------------------------------------------------------ Kerberos (GSSAPI)
KRB_SCRIPT = """\
whoami
create /krb-zkcli x sasl:client@ZABBY.TEST:cdrwa
getAcl /krb-zkcli
get /krb-zkcli
quit
"""


def _krb5_jaas(path: Path, section: str, keytab: str, principal: str) -> Path:
    path.write_text(f"{section} {{\n  com.sun.security.auth.module.Krb5LoginModule required\n"
                    f'  useKeyTab=true\n  keyTab="{keytab}"\n  storeKey=true\n'
                    f'  useTicketCache=false\n  principal="{principal}";\n}};\n')
    return path


@contextlib.contextmanager
def _realm(tmp_path: Path, monkeypatch):
    """A throw-away KDC with the server's and the client's principals, and a JAAS file
    for each (skipped, or an error under CI=true, without a KDC, gssapi or ZooKeeper)."""
    from zabby.testing.kerberos import MiniKdc, find_kdc

    require_zookeeper()
    why = find_kdc()
    if why:
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    pytest.importorskip("gssapi")
    monkeypatch.setenv("PYTHONPATH", str(Path(zabby.__file__).resolve().parents[1]))
    with MiniKdc(tmp_path / "kdc") as kdc:
        server = _krb5_jaas(tmp_path / "server.jaas", "Server",
                            kdc.add_principal("zookeeper/localhost"),
                            "zookeeper/localhost@ZABBY.TEST")
        client = _krb5_jaas(tmp_path / "client.jaas", "Client", kdc.add_principal("client"),
                            "client@ZABBY.TEST")
        yield kdc, server, client


def test_zkcli_kerberos_matches_zookeeper(tmp_path, monkeypatch):
    """zkCli.sh logs in with a Krb5LoginModule Client section (GSSAPI, no mutual
    authentication) against both servers; a second server run strips the realm."""
    require_tool(ZKCLI, "zookeeper")
    with _realm(tmp_path, monkeypatch) as (kdc, server, client):
        krb5 = f"-Djava.security.krb5.conf={kdc.krb5_conf}"
        env = dict(os.environ, CLIENT_JVMFLAGS=(
            f"-Djava.security.auth.login.config={client} {krb5} "
            "-Dzookeeper.sasl.client.canonicalize.hostname=false"))
        out = {}
        for cls in (ZooKeeperServer, ZabbyServer):
            lines = []
            for extra in ([], ["-Dzookeeper.kerberos.removeRealmFromPrincipal=true"]):
                flags = [f"-Djava.security.auth.login.config={server}", krb5, *extra]
                with cls(tmp_path / f"{cls.kind}{len(extra)}", jvm_flags=flags,
                         **{"authProvider.1": SASL_PROVIDER}) as srv:
                    p = subprocess.run([ZKCLI, "-server", f"localhost:{srv.port}"],
                                       input=KRB_SCRIPT, capture_output=True, text=True,
                                       timeout=90, env=env)
                lines += [f"=== {extra}"] + _normalise(p.stdout) + ["--- stderr"] + _normalise(
                    p.stderr)
            out[cls.kind] = lines
    ref, got = out["zookeeper"], out["zabby"]
    assert "sasl: client@ZABBY.TEST" in ref and "sasl: client" in ref, ref
    assert got == ref, "\n".join(difflib.unified_diff(ref, got, "zookeeper", "zabby",
                                                      lineterm=""))


def test_zabby_shell_kerberos_client_configuration(tmp_path, monkeypatch):
    """zabby's shell logs in from the same Krb5LoginModule Client section zkCli.sh uses,
    named by -client-configuration (with java.security.krb5.conf), against both
    servers; without it the sasl ACL refuses."""
    import sys

    with _realm(tmp_path, monkeypatch) as (kdc, server, client):
        props = tmp_path / "client.properties"
        props.write_text(f"java.security.auth.login.config={client}\n"
                         f"java.security.krb5.conf={kdc.krb5_conf}\n"
                         "zookeeper.sasl.client.canonicalize.hostname=false\n")
        krb5 = f"-Djava.security.krb5.conf={kdc.krb5_conf}"
        for cls in (ZooKeeperServer, ZabbyServer):
            flags = [f"-Djava.security.auth.login.config={server}", krb5]
            with cls(tmp_path / cls.kind, jvm_flags=flags,
                     **{"authProvider.1": SASL_PROVIDER}) as srv:
                def shell(*args: str) -> subprocess.CompletedProcess:
                    return subprocess.run(
                        [sys.executable, "-m", "zabby", "shell", "-server",
                         f"localhost:{srv.port}", *args],
                        capture_output=True, text=True, timeout=60)

                r = shell("-client-configuration", str(props), "-c",
                          "whoami; create /krb-shell x sasl:client@ZABBY.TEST:cdrwa; "
                          "get /krb-shell")
                assert r.returncode == 0, (cls.kind, r.stderr)
                out = r.stdout.splitlines()
                assert "sasl: client@ZABBY.TEST" in out and out[-1] == "x", (cls.kind, out)
                r = shell("-c", "get /krb-shell")
                assert r.returncode == 1, (cls.kind, r.stdout)
                assert r.stderr.strip() == "Insufficient permission : /krb-shell", r.stderr
