"""The differential harness itself: equal behaviour gives no diff, different behaviour does."""

from __future__ import annotations

import pytest

from zabby.testing.differential import Normaliser, Runner, Transcript, compare, run_scenario
from zabby.testing.pytest_plugin import require_zookeeper
from zabby.testing.servers import ZooKeeperServer
from zabby.wire import Stat

from .conftest import DIFF_CFG
from .test_scenarios import scenario_create_modes, scenario_watches

pytestmark = pytest.mark.differential


@pytest.fixture(scope="module")
def own_reference(tmp_path_factory):
    """A ZooKeeper of its own: these tests must not change the shared pair's history
    (e.g. the root's cversion), or the scenarios would see different roots."""
    require_zookeeper()
    srv = ZooKeeperServer(tmp_path_factory.mktemp("harness-zookeeper"), **DIFF_CFG)
    try:
        yield srv
    finally:
        srv.stop()


def test_compare_reports_a_changed_line():
    a, b = Transcript("zookeeper"), Transcript("zabby")
    for t in (a, b):
        t.add("#1 a connect -> {}")
    a.add('#2 a CREATE2(\'/x\') -> {"err":"OK"}')
    b.add('#2 a CREATE2(\'/x\') -> {"err":"NODEEXISTS"}')
    diff = compare(a, b)
    assert "-#2 a CREATE2('/x') -> {\"err\":\"OK\"}" in diff
    assert '+#2 a CREATE2(\'/x\') -> {"err":"NODEEXISTS"}' in diff
    a.lines = b.lines[:]
    assert compare(a, b) == ""


def test_normaliser_ranks_zxids_and_names_sessions():
    n = Normaliser()
    n.sessions[0x1234] = "@a"
    st = Stat(czxid=0x500, mzxid=0x502, ctime=17, mtime=17, version=1, cversion=0,
              aversion=0, ephemeralOwner=0x1234, dataLength=3, numChildren=0, pzxid=0x500)
    out = n.stat(st)
    assert (out["czxid"], out["mzxid"], out["pzxid"]) == ("z1", "z2", "z1")
    assert out["ctime"] == "set" and out["mtime_vs_ctime"] == "ge"
    assert out["ephemeralOwner"] == "@a"
    assert n.owner(-0x8000000000000000) == "0x8000000000000000"  # container marker kept
    assert n.owner(0x9999) == "@other"
    assert n.zxid(0) == 0


def test_same_server_twice_gives_no_diff(own_reference):
    """Runs on the reference only: proves the normalisation removes run-to-run noise."""
    ref = own_reference
    for scenario in (scenario_create_modes, scenario_watches):
        a, b, diff = run_scenario(scenario, ref, ref, base="/harness_twice")
        assert diff == "", diff
        assert len(a.lines) > 20


def test_a_deliberately_different_run_is_reported(own_reference):
    ref = own_reference
    calls = []

    def scenario(r: Runner) -> None:
        calls.append(r.transcript.label)
        r.session("a")
        r.create("a", f"{r.base}/n", b"data")
        if len(calls) == 2:  # the "candidate" misbehaves
            r.create("a", f"{r.base}/n", b"again")
        r.get("a", f"{r.base}/n")

    _, _, diff = run_scenario(scenario, ref, ref, base="/harness_broken")
    assert "NODEEXISTS" in diff
    assert diff.count("\n+") >= 1
