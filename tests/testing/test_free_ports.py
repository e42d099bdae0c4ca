"""zabby.testing's ports: below the kernel's ephemeral range, one block per
pytest-xdist worker, never the same port twice in a row, consecutive runs reserved."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from zabby.testing import servers

_SHOW = ("from zabby.testing.servers import _port_block, free_port; "
         "print(*_port_block(), *[free_port() for _ in range(20)])")


def _in_worker(worker: str | None) -> list[int]:
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    if worker is not None:
        env["PYTEST_XDIST_WORKER"] = worker
    out = subprocess.run([sys.executable, "-c", _SHOW], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return [int(x) for x in out.split()]


def test_each_worker_gets_its_own_block_below_the_ephemeral_range():
    floor = servers._ephemeral_floor()
    seen = []
    for worker in (None, "gw0", "gw1"):
        low, high, *ports = _in_worker(worker)
        assert servers._PORT_FLOOR <= low < high <= floor
        assert all(low <= p < high for p in ports)
        assert len(set(ports)) == len(ports)
        seen.append((low, high))
    # no two blocks overlap
    for i, (lo1, hi1) in enumerate(seen):
        for lo2, hi2 in seen[i + 1:]:
            assert hi1 <= lo2 or hi2 <= lo1


def test_a_port_that_is_taken_is_skipped():
    port = servers.free_port()
    low, high = servers._port_block()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port + 1 if port + 1 < high else low))
        s.listen()
        taken = s.getsockname()[1]
        servers._port_cursor = port  # walk over the taken one
        got = [servers.free_port() for _ in range(3)]
    assert taken not in got and port in got


def test_a_run_of_ports_is_free_and_not_handed_out_next():
    first = servers.free_port_run(30)
    run = range(first, first + 30)
    for p in run:
        assert servers._bindable(p)
    assert all(servers.free_port() not in run for _ in range(10))
