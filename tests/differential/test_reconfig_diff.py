"""Dynamic reconfiguration, differential: the same steps against a 3-member Apache
ZooKeeper 3.8 ensemble and a 3-member zabby ensemble (reconfigEnabled, a super
digest), transcripts compared: /zookeeper/config's data and Stat, the error code of
each bad reconfig, the replies of good ones, and the dynamic config files written.

Ports differ between the two runs, so each member's address is replaced by its name
(``M1`` ...) and versions and zxids by their order of first appearance.
"""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

from zabby.testing import ZabbyEnsemble
from zabby.testing.differential import digest_acl
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.servers import ZooKeeperEnsemble

pytestmark = pytest.mark.timeout(240)

CFG = {
    "tickTime": 500,
    "reconfigEnabled": True,
    "DigestAuthenticationProvider.superDigest": digest_acl("super", "test").id.id,
}

OBSERVER = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"
BAD = [
    ("no auth", dict(joining="server.999=0.0.0.0:1234:2345:observer;3456"), False),
    ("not a server string", dict(joining="some thing"), True),
    ("two ports", dict(joining="server.9=127.0.0.1:1234"), True),
    ("no client port", dict(joining="server.9=127.0.0.1:1234:2345"), True),
    ("everyone leaves", dict(leaving="1,2,3"), True),
    ("one voter left", dict(leaving="1,2"), True),
    ("future version", dict(joining=OBSERVER, from_config=5), True),
    ("leaving not a number", dict(leaving="x"), True),
    ("joining id not a number", dict(joining="server.x=127.0.0.1:1:2;3"), True),
    ("joining and leaving", dict(joining=OBSERVER, leaving="100"), True),
    ("new members without participants", dict(new_members=OBSERVER), True),
    ("no synced quorum", dict(joining="server.7=127.0.0.1:1:2;3,server.8=127.0.0.1:4:5;6,"
                                      "server.9=127.0.0.1:7:8;9"), True),
    # ZooKeeper 3.8 lets a joiner reuse a member's quorum address (so do we)
    ("address taken", dict(joining="server.9=127.0.0.1:QP1:4444;5555"), True),
]



def _read_back(client) -> tuple:
    """/zookeeper/config once the client has reconnected (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return client.get("/zookeeper/config")
        except ConnectionLoss:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

def enabled(ens) -> bool:
    return bool(ens.members[1].cfg.get("reconfigEnabled"))


def _run(ens) -> list[str]:
    names = {}
    for i, m in ens.members.items():
        host, qp, rest = m.cfg[f"server.{i}"].split(":", 2)
        names[qp] = f"QP{i}"
        ep = rest.split(":")[0]
        names[ep] = f"EP{i}"
        names[str(m.port)] = f"CP{i}"
    seen: dict[int, str] = {}

    def rank(v: int) -> str:
        """A version or zxid by order of first appearance (0 kept): other txns (a
        session, a sync) may take zxids in between, on either server."""
        if v == 0:
            return "0"
        return seen.setdefault(v, f"V{len(seen) + 1}")

    def norm(data: bytes | str) -> str:
        text = data.decode() if isinstance(data, bytes) else data
        for port, name in names.items():
            text = text.replace(f":{port}", f":{name}").replace(f"={port}\n", f"={name}\n")
        out = []
        for line in text.split("\n"):
            if line.startswith("version="):
                line = f"version={rank(int(line.split('=')[1], 16))}"
            out.append(line)
        return "\n".join(sorted(out[:-1]) + out[-1:]) if out[-1].startswith("version") \
            else "\n".join(sorted(out))

    def stat(st) -> str:
        return (f"mzxid={rank(st.mzxid)} version={st.version} aversion={st.aversion}"
                f" czxid={st.czxid} ctime={st.ctime} ephemeralOwner={st.ephemeralOwner}")

    lines: list[str] = []
    anon = KazooClient(hosts=ens.hosts, timeout=10)
    su = KazooClient(hosts=ens.hosts, timeout=10, auth_data=[("digest", "super:test")])
    anon.start(timeout=30)
    su.start(timeout=30)
    try:
        data, st = anon.get("/zookeeper/config")
        lines += [norm(data), stat(st), str(anon.get_acls("/zookeeper/config")[0])]
        for label, kw, auth in BAD:
            kw = {"joining": None, "leaving": None, "new_members": None, **kw}
            if kw["joining"]:
                for port, name in names.items():
                    kw["joining"] = kw["joining"].replace(name, port)
            try:
                (su if auth else anon).reconfig(**kw)
                lines.append(f"{label}: OK")
            except Exception as e:  # noqa: BLE001 - the error is what we compare
                lines.append(f"{label}: {type(e).__name__}")
        for kw in (dict(joining=OBSERVER), dict(leaving="100"), dict(leaving="77"),
                   dict(leaving="9")):
            kw = {"joining": None, "leaving": None, "new_members": None, **kw}
            try:
                data, st = su.reconfig(**kw)
                lines += [f"reconfig {kw}", norm(data), stat(st)]
            except Exception as e:  # noqa: BLE001 - the error is what we compare
                lines.append(f"reconfig {kw}: {type(e).__name__}")
        if enabled(ens):
            # a follower becomes an observer and a participant again
            f = min(i for i in ens.members if i != ens.leader())
            line = f"server.{f}={ens.members[f].cfg[f'server.{f}']}"
            for role in ("observer", "participant"):
                try:
                    data, st = su.reconfig(joining=line.replace(":participant;", f":{role};"),
                                           leaving=None, new_members=None)
                except ConnectionLoss:
                    # our own server changing role may drop the connection before the
                    # reply (ZooKeeper does, now and then): the outcome is read back
                    data, st = _read_back(su)
                except Exception as e:  # noqa: BLE001 - the error is what we compare
                    lines.append(f"server {f} -> {role}: {type(e).__name__}")
                    continue
                lines += [f"server {f} -> {role}", norm(data),
                          stat(st)]
                want = "observer" if role == "observer" else "follower"
                deadline = time.monotonic() + 30
                while ens.mode(f) != want and time.monotonic() < deadline:
                    time.sleep(0.1)
                lines.append(f"mode {ens.mode(f)}")
        data, st = anon.get("/zookeeper/config")
        lines += [norm(data), stat(st)]
        m = ens.members[1]
        # `conf` on an ensemble member ends with the quorum settings and membership
        lines.append(norm(m.four_letter_word("conf").split("serverId=")[1]))
        dyn = sorted(p.name for p in m.dir.glob("zoo.cfg.dynamic.*"))
        lines.append(f"{len(dyn)} dynamic files")
        if not dyn:
            return lines
        lines.append(norm((m.dir / dyn[-1]).read_text()))
        cfg = m.cfg_path.read_text()
        lines.append(f"zoo.cfg names {dyn[-1]}: {('dynamicConfigFile=' + str(m.dir / dyn[-1])) in cfg}")
        lines.append(f"zoo.cfg keeps server lines: {'server.1=' in cfg}")
    finally:
        anon.stop()
        su.stop()
    return lines


@pytest.mark.parametrize("enabled", [True, False], ids=["reconfigEnabled", "disabled"])
def test_reconfig_against_zookeeper(tmp_path, enabled):
    require_zookeeper()
    cfg = {**CFG, "reconfigEnabled": enabled}
    with ZooKeeperEnsemble(tmp_path / "zk", 3, **cfg) as zk:
        ref = _run(zk)
    with ZabbyEnsemble(tmp_path / "zabby", 3, **cfg) as zb:
        got = _run(zb)
    assert got == ref
    # what ZooKeeper answered, for the reader
    if enabled:
        assert "no auth: NoAuthError" in ref and "future version: BadVersionError" in ref
        assert "no synced quorum: NewConfigNoQuorumError" in ref
        assert "mode observer" in ref and "mode follower" in ref
    else:
        assert "no auth: ReconfigDisabledError" in ref and "version=0" in ref[0]
