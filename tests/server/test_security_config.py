"""Security settings fail closed, and ZooKeeper's -D system properties are read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zabby.server.config import ConfigError, parse_config, system_properties_from
from zabby.server.security import load_security

BASE = "dataDir=/tmp/zabby-unused\nclientPort=2181\n"
SASL = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


def test_system_properties_from_env_and_args():
    env = {
        "SERVER_JVMFLAGS": "-Xmx1g -Dzookeeper.snapCount=10 -Da=1",
        "JVMFLAGS": "-Dzookeeper.snapCount=20 -XX:+UseG1GC -Dflag",
    }
    props = system_properties_from(["-Dzookeeper.snapCount=30", "-Dx=y=z"], env)
    # later wins: SERVER_JVMFLAGS, then JVMFLAGS, then the command line
    assert props == {"zookeeper.snapCount": "30", "a": "1", "flag": "", "x": "y=z"}


def test_properties_apply_and_file_wins():
    c = parse_config(BASE + "snapCount=500\n", system_properties={
        "zookeeper.snapCount": "9", "zookeeper.forceSync": "no", "jute.maxbuffer": "4096",
        "java.net.preferIPv4Stack": "true",
    })
    assert c.snap_count == 500  # the file's setting wins, as in ZooKeeper
    assert c.force_sync is False and c.max_buffer == 4096
    assert c.unknown == {}


def test_property_spelling_of_a_static_key_is_unknown():
    # ZooKeeper reads clientPort from the file only; -Dzookeeper.clientPort does nothing
    c = parse_config(BASE, system_properties={"zookeeper.clientPort": "1"})
    assert c.client_port == 2181 and "-Dzookeeper.clientPort" in c.unknown


@pytest.mark.parametrize("text, props", [
    ("secureClientPort=2281\n", {}),
    ("ssl.keyStore.location=/k.jks\n", {}),
    ("zookeeper.ssl.keyStore.location=/k.jks\n", {}),
    ("", {"zookeeper.ssl.trustStore.location": "/t.jks"}),
    ("sslQuorum=true\n", {}),
    ("quorum.auth.enableSasl=true\n", {}),
    ("enforce.auth.enabled=true\n", {}),
    ("", {"java.security.auth.login.config": "/etc/jaas.conf"}),
    ("X509AuthenticationProvider.superUser=CN=admin\n", {}),
    ("sessionRequireClientSASLAuth=true\n", {}),
])
def test_security_keys_are_collected_and_refused_unless_honoured(text, props):
    c = parse_config(BASE + text, source="/etc/zoo.cfg", system_properties=props)
    assert c.security and c.unknown == {}
    key = next(iter(c.security))
    with pytest.raises(ConfigError, match="refusing to start") as e:
        load_security(c)
    assert key in str(e.value) and "/etc/zoo.cfg" in str(e.value)


def test_unknown_auth_provider_class_refused():
    c = parse_config(BASE + "authProvider.1=com.example.Mine\n")
    with pytest.raises(ConfigError, match="authProvider.1.*com.example.Mine"):
        load_security(c)
    # the built-in providers are fine
    c = parse_config(BASE + "authProvider.1=org.apache.zookeeper.server.auth."
                     "DigestAuthenticationProvider\n")
    assert load_security(c).providers == {"1": "digest"}


def test_server_cnxn_factory():
    parse_config(BASE + "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n")
    with pytest.raises(ConfigError, match="serverCnxnFactory"):
        parse_config(BASE + "serverCnxnFactory=com.example.Factory\n")


def test_limits_parsed():
    c = parse_config(BASE + "maxCnxns=100\nglobalOutstandingLimit=50\n")
    assert (c.max_cnxns, c.global_outstanding_limit) == (100, 50)


def test_serve_refuses_with_message(tmp_path):
    """`zabby serve` with an unsupported security key exits at once, naming it."""
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}/data\nclientPort=1\nclientPortAddress=127.0.0.1\n")
    p = subprocess.run(
        [sys.executable, "-m", "zabby.cli.main", "serve", "--config", str(cfg),
         "-Dzookeeper.authProvider.1=com.example.Nope"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 2
    assert "authProvider.1" in p.stderr and "com.example.Nope" in p.stderr
