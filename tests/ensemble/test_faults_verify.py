"""`zabby verify`'s slow-disk and clock-ahead faults (zabby.verify.servers): the
members it starts carry the test-only hooks, and a run with those faults is VALID.
The full run takes ~20 s, so it runs only with ZABBY_FAULT_SEEDS (one run per seed);
the hook wiring is checked always."""

from __future__ import annotations

import os

import pytest

from zabby.testing.diskfaults import CLOCK_OFFSET_ENV, FSYNC_STALL_ENV
from zabby.verify import runner
from zabby.verify.servers import HookedServer, process_env

from .faults import seeds

pytestmark = pytest.mark.timeout(240)


def test_hooked_server_arms_the_fsync_stall_and_the_clock_offset(tmp_path):
    m = HookedServer(tmp_path / "s", start=False)
    env = m.env()
    assert env[FSYNC_STALL_ENV] == str(m.stall.path) and m.stall.path.read_text() == "0\n"
    assert CLOCK_OFFSET_ENV not in env
    m.clock_offset_ms = 90_000
    assert m.env()[CLOCK_OFFSET_ENV] == "90000"
    assert process_env(os.getpid()).get("PATH") == os.environ.get("PATH")
    assert process_env(2**22 + 12345) == {}  # no such process


@pytest.mark.skipif(not os.environ.get("ZABBY_FAULT_SEEDS"),
                    reason="a ~20 s run; set ZABBY_FAULT_SEEDS to run it")
@pytest.mark.parametrize("seed", seeds([0]))
def test_verify_with_slow_disk_and_clock_ahead_is_valid(tmp_path, seed):
    lines: list[str] = []
    opts = runner.Options(nodes=3, faults=["slow-disk", "clock-ahead"], duration=12,
                          seed=seed, out=tmp_path, log=lines.append)
    outcome = runner.run(opts)
    text = "\n".join(lines) + "\n" + outcome.line
    assert outcome.verdict == "VALID", text
    kinds = {line.split("fault ")[1].split(":")[0] for line in lines if "] fault " in line}
    assert kinds, text  # at least one fault was injected
    assert kinds <= {"slow-disk", "clock-ahead", "restart-all"}, text
