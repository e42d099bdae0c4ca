"""zoo.cfg parsing: java.util.Properties format, ZooKeeper 3.8 keys and validation."""

from __future__ import annotations

import base64
import hashlib
import logging

import pytest

from zabby.server.config import (
    ALL_FOUR_LETTER_WORDS,
    ConfigError,
    ServerConfig,
    ServerSpec,
    default_config,
    is_secret_key,
    load_config,
    parse_config,
    parse_properties,
)

BASE = "dataDir=/var/lib/zk\n"


def cfg(text: str = "", source: str | None = "zoo.cfg") -> ServerConfig:
    return parse_config(BASE + text, source=source)


def refuse(text: str, key: str, value: str | None = None, base: str = BASE) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(base + text, source="zoo.cfg")
    err = info.value
    msg = str(err)
    assert msg.startswith("zoo.cfg: "), msg
    assert key in msg, msg
    assert err.key == key
    if value is not None:
        if is_secret_key(key):  # a secret is never echoed in a message
            assert repr(value) not in msg, msg
        else:
            assert repr(value) in msg, msg
        assert err.value == value
    return err


def digest(user: str, password: str) -> str:
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


# ---------------------------------------------------------------------------- defaults


def test_dataclass_defaults_are_zookeepers():
    c = ServerConfig()
    assert c.tick_time == 2000
    assert c.data_dir == "./zabby-data"
    assert c.data_log_dir is None and c.effective_data_log_dir == "./zabby-data"
    assert (c.client_port, c.client_port_address) == (2181, "127.0.0.1")
    assert c.max_client_cnxns == 60
    assert (c.min_session_timeout, c.max_session_timeout) == (-1, -1)
    assert (c.effective_min_session_timeout, c.effective_max_session_timeout) == (4000, 40000)
    assert c.four_letter_words == frozenset({"srvr"})
    assert c.extended_types_enabled is False
    assert c.max_buffer == 0xFFFFF
    assert c.super_digest is None and c.auth_providers == {}
    assert (c.snap_count, c.pre_alloc_size_kb, c.force_sync) == (100000, 65536, True)
    assert (c.autopurge_snap_retain_count, c.autopurge_purge_interval) == (3, 0)
    assert (c.init_limit, c.sync_limit) == (10, 5)
    assert c.servers == {} and not c.is_distributed
    assert (c.peer_type, c.standalone_enabled) == ("participant", True)
    assert (c.admin_enable_server, c.admin_server_port) == (True, 8080)
    assert c.unknown == {} and c.source is None


def test_default_config_is_local_and_open_to_tools():
    c = default_config()
    assert (c.client_port_address, c.client_port) == ("127.0.0.1", 2181)
    assert c.data_dir == "./zabby-data"
    assert c.four_letter_words == ALL_FOUR_LETTER_WORDS
    assert {"ruok", "stat", "mntr", "conf", "srvr"} <= c.four_letter_words
    # the AdminServer and console, on loopback only
    assert (c.admin_enable_server, c.admin_server_address) == (True, "127.0.0.1")
    assert c.admin_server_port == 8080
    assert c.source is None


def test_minimal_file_defaults():
    c = cfg()
    assert c.data_dir == "/var/lib/zk"
    assert c.effective_data_log_dir == "/var/lib/zk"
    assert c.client_port == 2181
    # ZooKeeper binds the wildcard address when a zoo.cfg has no clientPortAddress.
    assert c.client_port_address == "0.0.0.0"
    assert c.four_letter_words == frozenset({"srvr"})
    assert c.source == "zoo.cfg"
    assert c.unknown == {}


def test_missing_data_dir_refused():
    with pytest.raises(ConfigError, match=r"^zoo\.cfg: dataDir is not set$"):
        parse_config("tickTime=2000\n", source="zoo.cfg")


def test_source_none_is_named_in_errors():
    with pytest.raises(ConfigError, match=r"^<config>: tickTime: 'x' is not an integer"):
        parse_config(BASE + "tickTime=x\n")


# ------------------------------------------------------------------------- every key


def test_all_static_keys():
    c = cfg(
        "dataLogDir=/var/log/zk\n"
        "clientPort=2191\n"
        "clientPortAddress=10.0.0.5\n"
        "tickTime=500\n"
        "maxClientCnxns=0\n"
        "minSessionTimeout=1500\n"
        "maxSessionTimeout=90000\n"
        "initLimit=20\n"
        "syncLimit=7\n"
        "peerType=OBSERVER\n"
        "standaloneEnabled=False\n"
        "autopurge.snapRetainCount=5\n"
        "autopurge.purgeInterval=24\n"
        "server.1=a:2888:3888\n"
    )
    assert c.data_log_dir == "/var/log/zk" and c.effective_data_log_dir == "/var/log/zk"
    assert (c.client_port, c.client_port_address) == (2191, "10.0.0.5")
    assert c.tick_time == 500
    assert c.max_client_cnxns == 0
    assert (c.effective_min_session_timeout, c.effective_max_session_timeout) == (1500, 90000)
    assert (c.init_limit, c.sync_limit) == (20, 7)
    assert c.peer_type == "observer"
    assert c.standalone_enabled is False
    assert (c.autopurge_snap_retain_count, c.autopurge_purge_interval) == (5, 24)


SUPER = digest("super", "secret")

SYSPROP_CASES = [
    ("4lw.commands.whitelist", "ruok,stat", "four_letter_words",
     frozenset({"ruok", "stat", "srvr"})),
    ("extendedTypesEnabled", "true", "extended_types_enabled", True),
    ("DigestAuthenticationProvider.superDigest", SUPER, "super_digest", SUPER),
    ("snapCount", "5000", "snap_count", 5000),
    ("forceSync", "no", "force_sync", False),
    ("preAllocSize", "1024", "pre_alloc_size_kb", 1024),
    ("admin.enableServer", "false", "admin_enable_server", False),
    ("admin.serverPort", "9090", "admin_server_port", 9090),
    ("admin.serverAddress", "127.0.0.1", "admin_server_address", "127.0.0.1"),
    ("enforceQuota", "true", "enforce_quota", True),
    ("digest.enabled", "false", "digest_enabled", False),
]


@pytest.mark.parametrize("prefix", ["", "zookeeper."])
@pytest.mark.parametrize(("key", "value", "attr", "expected"), SYSPROP_CASES)
def test_sysprop_keys_both_spellings(prefix, key, value, attr, expected):
    c = cfg(f"{prefix}{key}={value}\n")
    assert getattr(c, attr) == expected
    assert c.unknown == {}


def test_jute_maxbuffer():
    assert cfg("jute.maxbuffer=4194304\n").max_buffer == 4194304
    # System properties read with Integer.getInteger accept Integer.decode syntax.
    assert cfg("jute.maxbuffer=0x400000\n").max_buffer == 0x400000
    assert cfg("jute.maxbuffer=#10\n").max_buffer == 16
    assert cfg("jute.maxbuffer=010\n").max_buffer == 8


def test_auth_providers_both_spellings():
    c = cfg(
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
        "zookeeper.authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
    )
    assert c.auth_providers == {
        "1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
        "x509": "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    }
    assert c.unknown == {}


def test_same_setting_both_spellings_must_agree():
    assert cfg("snapCount=10\nzookeeper.snapCount=10\n").snap_count == 10
    refuse("snapCount=10\nzookeeper.snapCount=20\n", "zookeeper.snapCount", "20")


@pytest.mark.parametrize(
    ("value", "expected"), [("yes", True), ("no", False), ("YES", True), ("false", False)]
)
def test_force_sync_values(value, expected):
    assert cfg(f"forceSync={value}\n").force_sync is expected


def test_booleans_are_case_insensitive():
    assert cfg("standaloneEnabled=TRUE\n").standalone_enabled is True
    assert cfg("extendedTypesEnabled=FaLsE\n").extended_types_enabled is False


def test_clamped_values_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="zabby.server.config"):
        c = cfg("autopurge.snapRetainCount=1\nsnapCount=1\n")
    assert c.autopurge_snap_retain_count == 3
    assert c.snap_count == 2
    text = caplog.text
    assert "autopurge.snapRetainCount" in text and "snapCount" in text


# -------------------------------------------------------------------- session timeouts


def test_effective_timeouts_follow_tick_time():
    c = cfg("tickTime=3000\n")
    assert (c.effective_min_session_timeout, c.effective_max_session_timeout) == (6000, 60000)
    c = cfg("tickTime=3000\nminSessionTimeout=1000\n")
    assert (c.effective_min_session_timeout, c.effective_max_session_timeout) == (1000, 60000)
    c = cfg("tickTime=100\nmaxSessionTimeout=500\n")
    assert (c.effective_min_session_timeout, c.effective_max_session_timeout) == (200, 500)


def test_min_larger_than_max_refused():
    refuse("minSessionTimeout=10000\nmaxSessionTimeout=5000\n", "minSessionTimeout", "10000")
    # The comparison is between effective values: the default max is 20 ticks.
    err = refuse("tickTime=100\nminSessionTimeout=2001\n", "minSessionTimeout", "2001")
    assert "2000" in str(err)
    # ... and an explicit max below the default min is refused too.
    err = refuse("tickTime=1000\nmaxSessionTimeout=1000\n", "maxSessionTimeout", "1000")
    assert "minSessionTimeout (2000 ms" in str(err)


# --------------------------------------------------------------------------- whitelist


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", ALL_FOUR_LETTER_WORDS),
        ("ruok, *", ALL_FOUR_LETTER_WORDS),
        ("ruok", frozenset({"ruok", "srvr"})),
        (" stat ,  mntr ,, ", frozenset({"stat", "mntr", "srvr"})),
        ("", frozenset({"srvr"})),
    ],
)
def test_whitelist(value, expected):
    assert cfg(f"4lw.commands.whitelist={value}\n").four_letter_words == expected


def test_whitelist_star_is_every_known_word():
    assert ALL_FOUR_LETTER_WORDS == {
        "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst",
        "srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
    }


def test_whitelist_unknown_word_warned_and_dropped(caplog):
    with caplog.at_level(logging.WARNING, logger="zabby.server.config"):
        c = cfg("4lw.commands.whitelist=ruok,wat\n")
    assert c.four_letter_words == {"ruok", "srvr"}
    assert "'wat'" in caplog.text


# ------------------------------------------------------------------- properties format


def test_separators_and_whitespace():
    c = cfg(
        "tickTime = 1000\n"
        "clientPort:2200\n"
        "  maxClientCnxns   33   \n"
        "\tinitLimit\t=\t4\n"
        "syncLimit :3\n"
    )
    assert (c.tick_time, c.client_port, c.max_client_cnxns) == (1000, 2200, 33)
    assert (c.init_limit, c.sync_limit) == (4, 3)


def test_hash_after_value_is_part_of_value():
    refuse("tickTime=3 # trailing\n", "tickTime", "3 # trailing")


def test_comment_lines_ignored():
    c = cfg("# tickTime=1\n   ! tickTime=2\n\n   \t\ntickTime=3\n")
    assert c.tick_time == 3
    assert c.unknown == {}


def test_line_continuation():
    c = cfg("4lw.commands.whitelist=ruok,\\\n      stat,\\\n\tmntr\n")
    assert c.four_letter_words == {"ruok", "stat", "mntr", "srvr"}


def test_escaped_backslash_does_not_continue():
    props = parse_properties("a=x\\\\\nb=y\n")
    assert [(k, v) for k, v, _ in props] == [("a", "x\\"), ("b", "y")]


def test_comment_line_ending_in_backslash_does_not_continue():
    c = cfg("# comment \\\ntickTime=7\n")
    assert c.tick_time == 7


def test_continued_line_starting_with_hash_is_not_a_comment():
    props = parse_properties("a=1\\\n  #2\n")
    assert [(k, v) for k, v, _ in props] == [("a", "1#2")]


def test_escapes_in_keys_and_values():
    props = parse_properties("my\\ key\\=x = a\\tb\\u0041\\q\n")
    assert [(k, v) for k, v, _ in props] == [("my key=x", "a\tbAq")]


def test_malformed_unicode_escape_refused():
    with pytest.raises(ConfigError, match=r"zoo\.cfg: line 2: malformed"):
        parse_config(BASE + "x=\\u12G4\n", source="zoo.cfg")


def test_separator_rules():
    props = parse_properties("a = = b\nc==d\ne\nf:\ng  h  \n")
    assert [(k, v) for k, v, _ in props] == [
        ("a", "= b"), ("c", "=d"), ("e", ""), ("f", ""), ("g", "h  ")
    ]


def test_line_endings_and_bom():
    c = parse_config("\ufeffdataDir=/d\r\ntickTime=5\rclientPort=2300\n", source="zoo.cfg")
    assert (c.data_dir, c.tick_time, c.client_port) == ("/d", 5, 2300)
    assert c.unknown == {}


def test_last_duplicate_wins():
    assert cfg("tickTime=1\ntickTime=9\n").tick_time == 9


def test_values_are_trimmed():
    c = cfg("dataLogDir =   /logs   \t\n")
    assert c.data_log_dir == "/logs"


# ----------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("tickTime=abc", "tickTime", "abc"),
        ("tickTime=0", "tickTime", "0"),
        ("tickTime=-5", "tickTime", "-5"),
        ("tickTime=2_000", "tickTime", "2_000"),
        ("tickTime=0x10", "tickTime", "0x10"),  # parseInt, not decode
        ("tickTime=99999999999", "tickTime", "99999999999"),
        ("clientPort=0", "clientPort", "0"),
        ("clientPort=65536", "clientPort", "65536"),
        ("clientPort=-1", "clientPort", "-1"),
        ("clientPort=twenty", "clientPort", "twenty"),
        ("maxClientCnxns=-1", "maxClientCnxns", "-1"),
        ("minSessionTimeout=0", "minSessionTimeout", "0"),
        ("maxSessionTimeout=-7", "maxSessionTimeout", "-7"),
        ("maxSessionTimeout=1.5", "maxSessionTimeout", "1.5"),
        ("initLimit=-1", "initLimit", "-1"),
        ("syncLimit=x", "syncLimit", "x"),
        ("peerType=leader", "peerType", "leader"),
        ("standaloneEnabled=yes", "standaloneEnabled", "yes"),
        ("autopurge.snapRetainCount=three", "autopurge.snapRetainCount", "three"),
        ("autopurge.purgeInterval=-1", "autopurge.purgeInterval", "-1"),
        ("jute.maxbuffer=0", "jute.maxbuffer", "0"),
        ("jute.maxbuffer=-1", "jute.maxbuffer", "-1"),
        ("jute.maxbuffer=1M", "jute.maxbuffer", "1M"),
        ("extendedTypesEnabled=1", "extendedTypesEnabled", "1"),
        ("zookeeper.extendedTypesEnabled=on", "zookeeper.extendedTypesEnabled", "on"),
        ("snapCount=lots", "snapCount", "lots"),
        ("zookeeper.snapCount=", "zookeeper.snapCount", ""),
        ("forceSync=maybe", "forceSync", "maybe"),
        ("preAllocSize=-1", "preAllocSize", "-1"),
        ("zookeeper.preAllocSize=64MB", "zookeeper.preAllocSize", "64MB"),
        ("admin.enableServer=nope", "admin.enableServer", "nope"),
        ("admin.serverPort=0", "admin.serverPort", "0"),
        ("zookeeper.admin.serverPort=70000", "zookeeper.admin.serverPort", "70000"),
        ("DigestAuthenticationProvider.superDigest=plaintext",
         "DigestAuthenticationProvider.superDigest", "plaintext"),
        ("zookeeper.DigestAuthenticationProvider.superDigest=super:bm90IGEgZGlnZXN0",
         "zookeeper.DigestAuthenticationProvider.superDigest", "super:bm90IGEgZGlnZXN0"),
        ("authProvider.1=", "authProvider.1", ""),
        ("dataLogDir=", "dataLogDir", ""),
        ("clientPortAddress=", "clientPortAddress", ""),
    ],
)
def test_invalid_values_refused(line, key, value):
    refuse(line + "\n", key, value)


def test_empty_data_dir_refused():
    with pytest.raises(ConfigError, match="dataDir"):
        parse_config("dataDir=\n", source="zoo.cfg")


def test_error_message_format():
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "tickTime=abc\n", source="zoo.cfg")
    assert str(info.value) == "zoo.cfg: tickTime: 'abc' is not an integer"
    assert (info.value.source, info.value.key, info.value.value) == ("zoo.cfg", "tickTime", "abc")


def test_client_port_address_without_client_port_refused():
    refuse("clientPortAddress=127.0.0.1\n", "clientPortAddress", "127.0.0.1")


# ------------------------------------------------------------------------ unknown keys


def test_unknown_keys_recorded_and_logged_once(caplog):
    with caplog.at_level(logging.WARNING, logger="zabby.server.config"):
        c = cfg("fooBar=1\nfooBar=2\nzookeeper.tickTime=5\nobserverMasterPort=2191\n")
    assert c.unknown == {"fooBar": "2", "zookeeper.tickTime": "5", "observerMasterPort": "2191"}
    assert c.tick_time == 2000
    records = [r for r in caplog.records if r.levelno == logging.WARNING]
    foo = [r for r in records if "fooBar" in r.getMessage()]
    assert len(foo) == 1
    assert "zoo.cfg" in foo[0].getMessage()
    assert "not a valid key" in foo[0].getMessage()
    assert any("observerMasterPort" in r.getMessage() for r in records)
    assert any("zookeeper.tickTime" in r.getMessage() for r in records)


def test_local_sessions_keys():
    c = cfg("localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true\n")
    assert c.local_sessions and c.local_sessions_upgrading and not c.unknown
    c = cfg("")
    assert not c.local_sessions and not c.local_sessions_upgrading


# -------------------------------------------------------------------------- server.N


def test_server_lines():
    c = cfg(
        "server.1=zk1.example.com:2888:3888\n"
        "server.2=10.0.0.2:2889:3889:participant\n"
        "server.3=zk3:2888:3888;2181\n"
        "server.4=zk4:2888:3888:observer;10.0.0.4:2182\n"
        "server.5=[fe80::1]:2888:3888:Observer;[::1]:2183\n"
    )
    assert c.servers == {
        1: ServerSpec(1, "zk1.example.com", 2888, 3888),
        2: ServerSpec(2, "10.0.0.2", 2889, 3889, "participant"),
        3: ServerSpec(3, "zk3", 2888, 3888, "participant", "0.0.0.0", 2181),
        4: ServerSpec(4, "zk4", 2888, 3888, "observer", "10.0.0.4", 2182),
        5: ServerSpec(5, "fe80::1", 2888, 3888, "observer", "::1", 2183),
    }
    assert set(c.participants) == {1, 2, 3}
    assert set(c.observers) == {4, 5}
    assert c.servers[4].is_observer and not c.servers[1].is_observer
    assert c.is_distributed


def test_single_server_is_standalone(caplog):
    with caplog.at_level(logging.WARNING, logger="zabby.server.config"):
        c = cfg("server.1=localhost:2888:3888\n")
    assert not c.is_distributed
    assert "only one server" in caplog.text
    assert cfg("server.1=localhost:2888:3888\nstandaloneEnabled=false\n").is_distributed


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("server.1=host:2888", "server.1"),
        ("server.1=host", "server.1"),
        ("server.1=host:2888:3888:participant:extra", "server.1"),
        ("server.1=:2888:3888", "server.1"),
        ("server.1=host:x:3888", "server.1"),
        ("server.1=host:2888:0", "server.1"),
        ("server.1=host:70000:3888", "server.1"),
        ("server.1=host:2888:2888", "server.1"),
        ("server.1=host:2888:3888:leader", "server.1"),
        ("server.1=host:2888:3888;2181;2182", "server.1"),
        ("server.1=host:2888:3888;a:b:2181", "server.1"),
        ("server.1=host:2888:3888;port", "server.1"),
        ("server.1=host:2888:3888;0", "server.1"),
        ("server.1=a:2888:3888|b:2888:3888", "server.1"),
        ("server.1=[::1:2888:3888", "server.1"),
        ("server.x=host:2888:3888", "server.x"),
        ("server.-1=host:2888:3888", "server.-1"),
        ("server.256=host:2888:3888", "server.256"),
    ],
)
def test_bad_server_lines_refused(line, key):
    value = line.split("=", 1)[1]
    refuse(line + "\n", key, value)


def test_extended_types_limit_server_id():
    assert 255 in cfg("server.255=a:1:2\nserver.1=b:1:2\n").servers
    refuse("extendedTypesEnabled=true\nserver.255=a:1:2\n", "server.255", "a:1:2")


def test_observers_need_participants():
    refuse("server.1=a:1:2:observer\n", "server.1")
    refuse("server.1=a:1:2\nserver.2=b:1:2:observer\n", "server.2")
    # With an ensemble, observers are fine.
    c = cfg("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2:observer\n")
    assert set(c.observers) == {4}


def test_standalone_disabled_needs_a_participant():
    refuse("standaloneEnabled=false\nserver.1=a:1:2:observer\n", "standaloneEnabled")


def test_ensemble_needs_limits():
    three = "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n"
    refuse(three + "initLimit=0\n", "initLimit")
    refuse(three + "syncLimit=0\n", "syncLimit")
    # Standalone does not care.
    assert cfg("initLimit=0\nsyncLimit=0\n").init_limit == 0


def test_hierarchical_quorums():
    five = "".join(f"server.{i}=h{i}:1:2\n" for i in range(1, 6))
    c = cfg(five + "group.1=1:2:3\ngroup.2=4:5\nweight.4=0\n")
    assert c.groups == {1: (1, 2, 3), 2: (4, 5)}
    assert c.weights == {1: 1, 2: 1, 3: 1, 4: 0, 5: 1}
    refuse(five + "group.1=1:2:3\ngroup.2=3:4:5\n", "group.2", "3:4:5")  # 3 twice
    refuse(five + "group.1=1:2:3\n", "server.4")  # not in a group
    refuse(five + "group.1=1:x\n", "group.1", "1:x")
    refuse(five + "group.1=1:2:3:4:5\nweight.1=-1\n", "weight.1", "-1")
    # weights alone mean nothing (a majority quorum)
    assert cfg(five + "weight.1=3\n").weights == {}


def test_reconfig_enabled_and_the_version_of_a_dynamic_file(tmp_path):
    (tmp_path / "zoo.cfg.dynamic.10000000a").write_text(
        "server.1=a:1:2;2181\nserver.2=b:1:2;2181\ngroup.1=1:2\n")
    p = tmp_path / "zoo.cfg"
    p.write_text("dataDir=/d\nreconfigEnabled=true\ndynamicConfigFile=zoo.cfg.dynamic.10000000a\n")
    c = load_config(p)
    assert c.reconfig_enabled and c.config_version == 0x10000000A and c.unknown == {}
    assert c.groups == {1: (1, 2)}


# ----------------------------------------------------------------- myid and client port


def test_myid_client_address_from_server_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("2\n")
    text = (
        f"dataDir={data}\npeerType=observer\n"
        "server.1=a:1:2\nserver.2=b:1:2;127.0.0.2:2299\nserver.3=c:1:2\n"
    )
    c = parse_config(text, source="zoo.cfg")
    assert c.server_id == 2
    assert (c.client_port_address, c.client_port) == ("127.0.0.2", 2299)
    assert c.peer_type == "participant"  # the server list wins, as in ZooKeeper
    with pytest.raises(ConfigError, match="clientPort: '2181'"):
        parse_config(text + "clientPort=2181\n", source="zoo.cfg")


def test_myid_fills_own_client_address(tmp_path):
    (tmp_path / "myid").write_text("1")
    c = parse_config(
        f"dataDir={tmp_path}\nclientPort=2400\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n"
    )
    assert c.servers[1].client_port == 2400
    assert c.servers[1].client_host == "0.0.0.0"
    assert c.servers[2].client_port is None


def test_bad_myid(tmp_path):
    (tmp_path / "myid").write_text("one\n")
    with pytest.raises(ConfigError, match="myid"):
        parse_config(f"dataDir={tmp_path}\n")


# --------------------------------------------------------------------- files on disk


def test_load_config(tmp_path):
    p = tmp_path / "zoo.cfg"
    p.write_text("# sample\ntickTime=2000\ndataDir=/tmp/zookeeper\nclientPort=2181\n")
    c = load_config(p)
    assert c.source == str(p)
    assert (c.tick_time, c.data_dir, c.client_port) == (2000, "/tmp/zookeeper", 2181)


def test_load_config_errors_name_the_file(tmp_path):
    p = tmp_path / "zoo.cfg"
    p.write_text("dataDir=/d\ntickTime=abc\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value) == f"{p}: tickTime: 'abc' is not an integer"


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.cfg"):
        load_config(tmp_path / "missing.cfg")


def test_latin1_file(tmp_path):
    p = tmp_path / "zoo.cfg"
    p.write_bytes(b"dataDir=/data/caf\xe9\n")
    assert load_config(p).data_dir == "/data/café"


def test_dynamic_config_file(tmp_path):
    (tmp_path / "zoo.cfg.dynamic.100000000").write_text(
        "server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888:observer\n"
    )
    p = tmp_path / "zoo.cfg"
    p.write_text("dataDir=/d\ndynamicConfigFile=zoo.cfg.dynamic.100000000\n")
    c = load_config(p)
    assert set(c.servers) == {1, 2, 3}
    assert c.servers[3].role == "observer"
    assert c.servers[1].client_port == 2181
    assert c.dynamic_config_file == str(tmp_path / "zoo.cfg.dynamic.100000000")
    assert c.unknown == {}


def test_dynamic_config_file_absolute(tmp_path):
    dyn = tmp_path / "dyn"
    dyn.write_text("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n")
    c = parse_config(f"dataDir=/d\ndynamicConfigFile={dyn}\n", source="elsewhere/zoo.cfg")
    assert set(c.servers) == {1, 2, 3}


def test_dynamic_config_file_problems(tmp_path):
    p = tmp_path / "zoo.cfg"
    p.write_text("dataDir=/d\ndynamicConfigFile=nope\n")
    with pytest.raises(ConfigError, match="dynamicConfigFile: 'nope' cannot be read"):
        load_config(p)

    (tmp_path / "dyn").write_text("server.1=a:1:2\n")
    p.write_text("dataDir=/d\ndynamicConfigFile=dyn\nserver.2=b:1:2\n")
    with pytest.raises(ConfigError, match="server.2: must be in the separate dynamic"):
        load_config(p)

    for bad, key in [("version=100000000", "version"), ("tickTime=3", "tickTime")]:
        (tmp_path / "dyn").write_text(f"server.1=a:1:2\n{bad}\n")
        p.write_text("dataDir=/d\ndynamicConfigFile=dyn\n")
        with pytest.raises(ConfigError) as info:
            load_config(p)
        assert info.value.key == key
        assert str(info.value).startswith(str(tmp_path / "dyn"))

    (tmp_path / "dyn").write_text("server.1=a:1\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value).startswith(f"{tmp_path / 'dyn'}: server.1: 'a:1'")


def test_snapshot_compression_method():
    from zabby.server.config import ConfigError, parse_config

    assert parse_config("dataDir=/tmp/x\n").snapshot_compression == ""
    assert parse_config("dataDir=/tmp/x\nsnapshot.compression.method=gz\n").snapshot_compression == "gz"
    cfg = parse_config("dataDir=/tmp/x\nzookeeper.snapshot.compression.method=snappy\n")
    assert cfg.snapshot_compression == "snappy"
    import pytest

    with pytest.raises(ConfigError, match="snapshot.compression.method"):
        parse_config("dataDir=/tmp/x\nsnapshot.compression.method=lz4\n")


def test_readonly_mode_in_every_spelling():
    """ZooKeeper reads only -Dreadonlymode.enabled; zabby also takes zoo.cfg, with or
    without the zookeeper. prefix, and -Dzookeeper.readonlymode.enabled."""
    assert cfg().readonly_mode is False
    assert cfg("readonlymode.enabled=true\n").readonly_mode is True
    assert cfg("zookeeper.readonlymode.enabled=TRUE\n").readonly_mode is True
    assert cfg("readonlymode.enabled=false\n").readonly_mode is False
    for prop in ("readonlymode.enabled", "zookeeper.readonlymode.enabled"):
        c = parse_config(BASE, source="zoo.cfg", system_properties={prop: "true"})
        assert c.readonly_mode is True and not c.unknown
    # the file wins over the property, as for every setting
    c = parse_config(BASE + "readonlymode.enabled=false\n", source="zoo.cfg",
                     system_properties={"readonlymode.enabled": "true"})
    assert c.readonly_mode is False
    refuse("readonlymode.enabled=yes\n", "readonlymode.enabled", "yes")
