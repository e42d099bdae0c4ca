"""zkCli.sh (ZooKeeper's Java client, Netty socket) over TLS against zabby's secure port."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from zabby.testing.pytest_plugin import in_ci
from zabby.testing.servers import ZK_JAR_DIR, ZabbyServer, free_port

from .conftest import PASSWORD

pytestmark = pytest.mark.external

ZKCLI = os.environ.get("ZABBY_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
# zkCli.sh's own class path lacks the Netty jars ClientCnxnSocketNetty needs (Debian's
# libnetty-java has them); a later -cp in CLIENT_JVMFLAGS wins over the script's.
CLASSPATH = ":".join(str(ZK_JAR_DIR / j) for j in (
    "zookeeper.jar", "zookeeper-jute.jar", "netty-codec.jar", "netty-resolver.jar",
    "netty-transport-native-unix-common.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"))

SCRIPT = """\
create /zkcli-tls over-tls
get /zkcli-tls
whoami
setAcl /zkcli-tls auth::cdrwa
getAcl /zkcli-tls
get /zkcli-tls
quit
"""


def _need_zkcli() -> None:
    if os.path.exists(ZKCLI) and shutil.which("java"):
        return
    msg = f"{ZKCLI} or java is missing (apt-get install zookeeper)"
    if in_ci():
        pytest.fail(msg + " (CI=true: missing tools are an error)")
    pytest.skip(msg)


def test_zkcli_over_tls(tmp_path, pki):
    _need_zkcli()
    port = free_port()
    with ZabbyServer(tmp_path / "zabby", secureClientPort=port, **pki.tls_cfg("JKS")) as srv:
        flags = [
            f"-cp {CLASSPATH}",
            "-Dzookeeper.client.secure=true",
            "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
            f"-Dzookeeper.ssl.keyStore.location={pki.dir / 'client.jks'}",
            f"-Dzookeeper.ssl.keyStore.password={PASSWORD}",
            f"-Dzookeeper.ssl.trustStore.location={pki.trust_store('JKS')}",
            f"-Dzookeeper.ssl.trustStore.password={PASSWORD}",
        ]
        env = dict(os.environ, CLIENT_JVMFLAGS=" ".join(flags))
        p = subprocess.run([ZKCLI, "-server", f"127.0.0.1:{port}"], input=SCRIPT,
                           capture_output=True, text=True, timeout=90, env=env)
        out = p.stdout
        assert "over-tls" in out, f"{out}\n{p.stderr[-3000:]}\n{srv.log_tail()}"
        assert "x509: CN=client,OU=test,O=zabby" in out.replace("\t", " "), out
        # zkCli prints an ACL id's commas as %2C
        assert "'x509,'CN=client%2COU=test%2CO=zabby" in out, out
        # zkCli splits ACL lists at commas, so a DN goes in through the auth scheme;
        # after setAcl only the client's certificate may read: it still can
        assert out.count("over-tls") >= 2, out
        assert "Authenticated Id 'CN=client,OU=test,O=zabby' for Scheme 'x509'" in (
            srv.log_path.read_text())
