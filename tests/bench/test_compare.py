"""Functional tests of `zabby bench compare` (the tool works; no timing is asserted).

One --quick run against standalone servers only (a zabby and an Apache ZooKeeper 3.8),
tiny durations; skipped where ZooKeeper cannot be started.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from zabby.testing.servers import find_zookeeper

pytestmark = pytest.mark.skipif(find_zookeeper() is not None,
                                reason=f"Apache ZooKeeper unavailable: {find_zookeeper()}")

WORKLOADS = ["read", "write", "mixed"]


def compare_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "zabby.cli.main", "bench", "compare", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-out") / "results"
    work = tmp_path_factory.mktemp("compare-work")
    p = compare_cli("--quick", "--modes", "standalone", "--workloads", ",".join(WORKLOADS),
                    "--prime", "0.3",
                    "--sessions", "4", "--keys", "20", "--warmup", "0.2", "--duration", "0.5",
                    "--out", str(out), "--workdir", str(work))
    return p, out, work


def test_quick_standalone_run_succeeds(quick_run):
    p, out, work = quick_run
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert "standalone zabby primed with 0.3 s" in p.stderr
    assert "standalone ZooKeeper primed with 0.3 s" in p.stderr
    # the server directories are removed afterwards unless --keep-data
    assert list(work.iterdir()) == []


def test_table_printed_with_both_figures_and_ratio(quick_run):
    p, out, _ = quick_run
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:6] == ["mode", "workload", "load", "zabby ops/s", "ZK ops/s",
                          "ops zabby/ZK"]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]
    rows = [r for r in rows if r[0] != "---"]
    assert [r[1].split()[0] for r in rows] == WORKLOADS
    for r in rows:
        assert r[0] == "standalone"
        z, k, ratio = (float(x.replace(",", "")) for x in r[3:6])
        assert z > 0 and k > 0
        assert ratio == pytest.approx(z / k, rel=0.05, abs=0.01)
    assert f"results: {out / 'results.md'}" in p.stdout


def test_results_folder(quick_run):
    p, out, _ = quick_run
    md = (out / "results.md").read_text()
    assert "zabby bench compare --quick" in md
    assert "| standalone | read |" in md
    data = json.loads((out / "results.json").read_text())
    assert data["options"]["modes"] == ["standalone"]
    assert {(r["server"], r["workload"]) for r in data["runs"]} == {
        (s, w) for s in ("zabby", "zookeeper") for w in WORKLOADS}
    for r in data["runs"]:
        assert r["ops"] > 0 and r["errors"] == 0 and r["lost_sessions"] == 0
        assert r["mode"] == "standalone"
        assert r["duration_s"] == 0.5 and r["sessions"] == 4
    assert data["machine"]["nproc"] >= 1


def test_plots(quick_run):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install 'zabby[bench]')")
    _, out, _ = quick_run
    for name in ("throughput.png", "latency.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 1000


@pytest.mark.parametrize("args, message", [
    (["--workloads", "nosuch"], "unknown workload"),
    (["--modes", "cluster"], "unknown mode"),
    (["--outstanding", "x"], "--outstanding"),
    (["--duration", "0"], "--duration"),
    (["--rate", "-1"], "--rate"),
    (["--prime", "-1"], "--prime"),
])
def test_bad_arguments_exit_2(args, message, tmp_path):
    p = compare_cli(*args, "--out", str(tmp_path / "r"), timeout=30)
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr


def test_plain_bench_still_parses_without_subcommand():
    p = subprocess.run([sys.executable, "-m", "zabby.cli.main", "bench", "--hosts",
                        "127.0.0.1:1", "--connect-timeout", "0.5", "-d", "0.1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert "cannot connect" in p.stderr


def test_without_matplotlib_no_plots(monkeypatch, tmp_path, quick_run):
    from zabby.bench import compare

    _, out, _ = quick_run
    rows = json.loads((out / "results.json").read_text())["rows"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    assert compare.write_plots(rows, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_open_loop_rate_only_for_the_paced_workloads():
    from zabby.bench import compare

    opts = {"rate": 2000.0}
    assert [compare._rate(opts, w) for w in ("read", "write", "mixed", "multi")] == [2000.0] * 4
    assert [compare._rate(opts, w) for w in ("create", "watch", "session")] == [0.0] * 3
    assert compare.load_label({"rate": 2000.0, "outstanding": 1}) == "2,000/s open loop"
    assert compare.load_label({"rate": 0.0, "outstanding": 8}) == "m=8"


def test_priming_caps_its_sessions(monkeypatch):
    # the 1,000-watcher comparison once died in priming: ZooKeeper did not start 1,000
    # sessions within the connect timeout. Priming warms a server up; 32 sessions do that.
    from zabby.bench import compare

    seen = []
    monkeypatch.setattr(compare, "run_bench", lambda cfg: seen.append(cfg))
    target = compare.Target("zabby", "standalone", SimpleNamespace(hosts="127.0.0.1:1"), [])
    opts = {"sessions": 1000, "prime": 1.0, "value_size": 128, "keys": 1000, "procs": 1}
    compare.prime(target, opts)
    compare.prime(target, dict(opts, sessions=4))
    assert [c.sessions for c in seen] == [compare.PRIME_SESSIONS, 4]
    assert all(c.workload == "mixed" and c.duration == 1.0 for c in seen)


def _run(ops: float, p50: float) -> dict:
    return {"ops_per_sec": ops, "latency_ms": {"p50": p50, "p99": 2 * p50},
            "server_cpu_pct": 100.0, "client_cpu_pct": 5.0, "errors": 0, "lost_sessions": 0}


def test_a_round_in_which_nothing_completed_is_left_out_of_the_medians():
    # a ZooKeeper ensemble once stalled through two of five rounds: 0 ops/s, p50 "0.00";
    # folded into the median it would have pulled ZooKeeper's p50 down
    from zabby.bench import compare

    runs = [_run(974, 0.93), _run(0, 0.0), _run(1021, 0.94), _run(0, 0.0), _run(1031, 0.93)]
    med = compare._median_result(runs)
    assert med["ops_per_sec"] == 1021 and med["latency_ms"]["p50"] == 0.93
    assert med["stalled_rounds"] == 2
    everything = compare._median_result([_run(0, 0.0), _run(0, 0.0)])
    assert everything["ops_per_sec"] == 0 and everything["stalled_rounds"] == 2
    assert compare._median_result([_run(5, 1.0)])["stalled_rounds"] == 0
    row = {"mode": "ensemble", "workload": "write", "outstanding": 1, "rate": 0.0,
           "zabby": compare._median_result([_run(1143, 0.84)]), "zookeeper": med}
    assert compare.table_rows([row])[0][-1] == "0 / 0 (0 / 2 rounds with no request done, left out)"
