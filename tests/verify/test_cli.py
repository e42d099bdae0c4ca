"""`zabby verify` end to end (short runs) and its verdict line / exit codes.

Longer runs, all faults and many seeds are by hand (docs/VERIFY.md); here: one short
run with kill -9 and SIGSTOP against a 3-member zabby ensemble (the partition fault
asked for too, with namespaces made unavailable, so the skip path is exercised), and
one with a server that drops a watch event (a test-only setting), which must be
INVALID."""

from __future__ import annotations

import json

import pytest

from zabby.cli.main import main
from zabby.testing.servers import free_port
from zabby.verify import runner

pytestmark = pytest.mark.timeout(180)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["verify", *argv])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return rc, (lines[-1] if lines else ""), err


def test_short_run_with_kill_and_pause_is_valid(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "netns_unavailable", lambda: "pretend: no namespaces here")
    rc, last, err = _run(capsys, "--nodes", "3", "--faults", "kill,pause,partition",
                         "--duration", "5", "--seed", "11", "--out", str(tmp_path))
    assert last.startswith("verify: VALID "), (last, err[-3000:])
    assert rc == 0
    assert "partition fault skipped" in err and "pretend: no namespaces here" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] == "VALID"
    assert summary["fault_kinds"] == ["kill", "pause"]
    assert summary["faults"] >= 2  # at least one fault in the run, then the restart of all
    stats = summary["stats"]
    assert stats["lock_tenures"] > 0 and stats["watch_events"] > 0
    assert stats["watch_events_ordered"] > 0 and stats["watch_recursive_events"] > 0
    assert stats["watch_persistent_reads_checked"] > 0
    fields = dict(f.split("=", 1) for f in last.split()[2:])
    assert int(fields["ops"]) > 200 and int(fields["faults"]) == summary["faults"]
    assert (tmp_path / "history.jsonl").stat().st_size > 0
    assert "<svg" in (tmp_path / "timeline.html").read_text()
    # the history it wrote checks the same way again
    rc2, last2, _ = _run(capsys, "--check", str(tmp_path / "history.jsonl"))
    assert rc2 == 0 and last2.startswith("verify: VALID ")


def test_a_server_that_drops_a_watch_event_is_invalid(tmp_path, capsys):
    rc, last, err = _run(capsys, "--nodes", "3", "--duration", "2", "--seed", "12",
                         "--out", str(tmp_path), "--set", "zabby.test.dropWatchEvent=25")
    assert last.startswith("verify: INVALID "), (last, err[-3000:])
    assert rc == 1
    assert "anomaly=" in last and "watch/" in last.split("anomaly=")[1]


def test_usage_errors_are_error_verdicts(capsys):
    rc, last, _ = _run(capsys, "--faults", "kill,meteor")
    assert rc == 3 and last.startswith("verify: ERROR unknown fault 'meteor'")
    rc, last, _ = _run(capsys, "--hosts", "127.0.0.1:2181", "--faults", "kill")
    assert rc == 3 and last.startswith("verify: ERROR --faults needs")


def test_nothing_listening_is_an_error(capsys):
    port = free_port()
    rc, last, _ = _run(capsys, "--hosts", f"127.0.0.1:{port}", "--duration", "1",
                       "--connect-timeout", "1")
    assert rc == 3 and last.startswith("verify: ERROR "), last


def test_check_of_a_broken_history_is_invalid_and_of_an_undecidable_one_unknown(
        tmp_path, capsys):
    from zabby.verify.history import History

    h = History()
    for i in range(6):  # concurrent writes, then a final read that lost every one
        h.registers.invoke(f"p{i}", "write", "/r/r0", value=f"v{i}").ok(None)
    h.registers.invoke("final-m1", "sread", "/r/r0").ok(("init", 0), zxid=1)
    h.dump(tmp_path / "broken.jsonl")
    rc, last, _ = _run(capsys, "--check", str(tmp_path / "broken.jsonl"))
    assert rc == 1 and last.startswith("verify: INVALID ") and "register/" in last

    h = History()  # six concurrent writes (all invoked, then all acknowledged)
    handles = [h.registers.invoke(f"p{i}", "write", "/r/r0", value=f"v{i}") for i in range(6)]
    for w in handles:
        w.ok(None)
    h.registers.invoke("final-m1", "sread", "/r/r0").ok(("v3", 6), zxid=1)
    h.dump(tmp_path / "fine.jsonl")
    rc, last, _ = _run(capsys, "--check", str(tmp_path / "fine.jsonl"))
    assert rc == 0 and last.startswith("verify: VALID ")
    rc, last, _ = _run(capsys, "--check", str(tmp_path / "fine.jsonl"), "--max-steps", "2")
    assert rc == 2 and last.startswith("verify: UNKNOWN ")
