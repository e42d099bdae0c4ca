"""`zabby bench` progress: a tqdm bar on a terminal (a pty), none when piped or turned
off; `zabby bench compare` reports every step (no timing asserted)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pexpect
import pytest

from zabby.bench import compare
from zabby.cli.progress import StepBar
from zabby.testing.servers import ZabbyServer

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ZabbyServer(tmp_path_factory.mktemp("bench-progress"))
    try:
        yield srv
    finally:
        srv.stop()


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("ZABBY_NO_PROGRESS", "CI")}
    env.update({"PYTHONPATH": SRC, "TERM": "xterm", "PYTHONUNBUFFERED": "1", **extra})
    return env


def _bench_args(server, *extra):
    return ["-m", "zabby", "bench", "--hosts", server.hosts, "-w", "read", "-n", "2",
            "--keys", "10", "--warmup", "0.3", "--duration", "1.5", *extra]


def _pty(args, env) -> tuple[str, int]:
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=60,
                          dimensions=(24, 100))
    try:
        child.expect(pexpect.EOF)
        return child.before, child.wait()
    finally:
        child.close(force=True)


def test_bench_on_a_terminal_draws_a_bar(server):
    out, status = _pty(_bench_args(server), _env())
    assert status == 0, out
    assert "bench read:" in out and "%|" in out and " s" in out, out
    assert "ops/s" in out  # the throughput beside the bar
    assert "[   " not in out  # not the once-a-second lines
    assert json.loads(out.strip().splitlines()[-1])["workload"] == "read"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_bench_bar_turned_off(server, how):
    args = _bench_args(server, "--no-progress") if how == "flag" else _bench_args(server)
    env = _env(ZABBY_NO_PROGRESS="1") if how == "env" else _env()
    out, status = _pty(args, env)
    assert status == 0, out
    assert "%|" not in out and "bench read:" not in out and "ops/s]" not in out
    assert "zabby bench: read against" in out  # the summary still comes


def test_bench_piped_has_no_bar(server):
    p = subprocess.run([sys.executable, *_bench_args(server)], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "%|" not in p.stderr and "\r" not in p.stderr
    assert "ops/s" in p.stderr  # plain once-a-second lines, as before


def test_compare_reports_every_step(monkeypatch, tmp_path):
    class FakeTarget:
        def __init__(self, kind, mode):
            self.kind, self.mode, self.hosts = kind, mode, "127.0.0.1:1"

        def stop(self):
            pass

    def fake_measure(target, workload, m, opts):
        return {"ops_per_sec": 1.0, "latency_ms": {"p50": 1.0, "p99": 2.0},
                "server_cpu_pct": 1.0, "client_cpu_pct": 1.0, "errors": 0,
                "lost_sessions": 0}

    monkeypatch.setattr(compare, "start_target", lambda kind, mode, d, members: FakeTarget(kind, mode))
    monkeypatch.setattr(compare, "prime", lambda target, opts: None)
    monkeypatch.setattr(compare, "measure", fake_measure)
    opts = {"modes": ["standalone"], "workloads": ["read", "write", "mixed"],
            "outstanding": [1], "rounds": 2, "prime": 1.0, "members": 3}
    calls = []
    compare.run_compare(opts, tmp_path, say=lambda m: None,
                        progress=lambda *a: calls.append(a))
    total = compare.count_steps(opts)
    assert total == 2 + 2 + 3 * 2 * 2
    assert [d for _l, d, _t in calls] == list(range(total + 1))
    assert {t for _l, _d, t in calls} == {total}
    assert calls[0][0] == "standalone: starting zabby"
    assert "standalone mixed ZooKeeper round 2/2" in [label for label, _d, _t in calls]
    # drawn by the StepBar, which ends cleared
    f = io.StringIO()
    bar = StepBar(file=f)
    compare.run_compare(opts, tmp_path, say=bar.write, progress=bar)
    bar.close()
    drawn = f.getvalue()
    assert drawn.startswith("\rstandalone: starting zabby 0/16 |"), drawn[:80]
    assert drawn.endswith("\r") and "|" not in drawn.rsplit("\r", 2)[-2]  # cleared
