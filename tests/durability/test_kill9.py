"""kill -9 under concurrent write load, then restart on the same data directory.

Four clients pipeline writes (see history.py); at a seeded random moment the
server is killed with SIGKILL -- its whole process group (a snapshot child
dies mid-write too) or only the main process (a snapshot child finishes on
its own) -- and restarted. The restarted tree must be explained by the
history: every acknowledged write present with its data, version and zxid,
no write that got a definite error, and unknown writes only as a per-client
prefix. snapCount is small and preAllocSize minimal, so kills land during
snapshots, log rolls and preallocation.

Seeds: ZABBY_KILL_SEEDS="N" runs seeds 0..N-1, "3,17" or "10-20" runs those;
a failure names its seed (the test id carries it too).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time

import pytest

from zabby.testing.rawclient import RawClient
from zabby.testing.seeds import seeds_from_env
from zabby.testing.servers import ZabbyServer

from .history import (
    Base,
    Worker,
    base_from_tree,
    check_after_restart,
    read_tree,
    setup_tree,
    wait_threads,
)

CLIENTS = 4
ROUNDS = 3  # kills per seed (each restart is checked, then is the next round's base)
DEFAULT_SEEDS = 20


def _seeds() -> list[int]:
    return seeds_from_env("ZABBY_KILL_SEEDS", list(range(DEFAULT_SEEDS)))


def _server(tmp_path, rng: random.Random) -> ZabbyServer:
    return ZabbyServer(
        tmp_path,
        snapCount=rng.choice((50, 100, 200)),
        preAllocSize=rng.choice((4, 8, 16)),  # KB: the log grows every few batches
        tickTime=1000,
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


def _crash(srv: ZabbyServer, mode: str) -> None:
    """SIGKILL the server: its process group, or only its main process."""
    pid = srv.pid
    assert pid is not None
    if mode == "group":
        srv.kill()
        return
    os.kill(pid, signal.SIGKILL)
    srv.proc.wait(5)
    # a snapshot child forked just before the crash finishes its file and exits
    deadline = time.monotonic() + 10
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _group_alive(pid):
        os.killpg(pid, signal.SIGKILL)
        pytest.fail(f"a snapshot child of the killed server {pid} was still alive after 10 s")


def _last_zxid(srv: ZabbyServer) -> int:
    m = re.search(r"^Zxid: 0x([0-9a-fA-F]+)$", srv.four_letter_word("srvr"), re.M)
    assert m, "srvr did not report a Zxid"
    return int(m.group(1), 16)


def _read_base(srv: ZabbyServer) -> tuple[dict, int]:
    """The tree and the zxid the server recovered to (read before our own session)."""
    last = _last_zxid(srv)
    c = RawClient(srv.host, srv.port, timeout_ms=4000, io_timeout=10.0)
    c.connect()
    try:
        return read_tree(c)[0], last
    finally:
        c.close()


def run_load_and_kill(srv: ZabbyServer, base: Base, rng: random.Random, tag: str,
                      delay: float | None = None,
                      min_acked: int = 0) -> tuple[list[Worker], str, float]:
    """Start the workers, kill the server at a random moment, join the workers.

    ``min_acked``: kill only once that many writes were acknowledged (after ``delay``),
    a count, not a rate; the wait is bounded only against a hang."""
    workers = [
        Worker(cid=c, seed=rng.randrange(1 << 30), host=srv.host, port=srv.port,
               base_own=base.own[c], round_tag=tag)
        for c in range(CLIENTS)
    ]
    threads = [w.start() for w in workers]
    try:
        for w in workers:
            assert w.connected.wait(10), f"worker c{w.cid} did not connect"
        if delay is None:
            delay = rng.choice((rng.uniform(0.0, 0.05), rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.6)))
        mode = rng.choice(("group", "group", "pid"))
        time.sleep(delay)
        deadline = time.monotonic() + 60
        while sum(op.status == "ok" for w in workers for op in list(w.ops)) < min_acked:
            assert time.monotonic() < deadline, f"fewer than {min_acked} writes acked in 60 s"
            assert all(t.is_alive() for t in threads), "a load thread ended before the kill"
            time.sleep(0.02)
        _crash(srv, mode)
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill()
        stuck = wait_threads(threads, 20)
    assert not stuck, f"load threads did not finish after the kill: {stuck}"
    for w in workers:
        if w.error is not None:
            raise AssertionError(f"worker c{w.cid} failed: {w.error!r}") from w.error
    return workers, mode, delay


def check_restart(srv: ZabbyServer, base: Base, workers: list[Worker], what: str) -> Base:
    tree, last_zxid = _read_base(srv)
    problems = [a for w in workers for a in w.anomalies]
    problems += check_after_restart(base, workers, tree, last_zxid)
    if problems:
        acked = sum(op.status == "ok" for w in workers for op in w.ops)
        unknown = sum(op.status == "unknown" for w in workers for op in w.ops)
        raise AssertionError(
            f"{what}: {len(problems)} problem(s) ({acked} acked, {unknown} unknown ops):\n"
            + "\n".join(problems[:20]) + "\n" + srv.log_tail(30))
    return base_from_tree(tree, CLIENTS)


@pytest.mark.parametrize("seed", _seeds())
def test_kill9_under_load(tmp_path, seed):
    rng = random.Random(seed)
    replay = f"replay with ZABBY_KILL_SEEDS={seed},"
    srv = _server(tmp_path, rng)
    try:
        setup = RawClient(srv.host, srv.port, timeout_ms=4000)
        setup.connect()
        setup_tree(setup, CLIENTS)
        setup.close()
        tree, _ = _read_base(srv)
        base = base_from_tree(tree, CLIENTS)
        total_acked = 0
        for rnd in range(ROUNDS):
            what = f"seed {seed} round {rnd} ({replay} cfg snapCount={srv.cfg['snapCount']} " \
                   f"preAllocSize={srv.cfg['preAllocSize']})"
            try:
                workers, mode, delay = run_load_and_kill(srv, base, rng, f"s{seed}r{rnd}")
                what += f", kill -9 ({mode}) after {delay:.3f}s"
                srv.start()
                base = check_restart(srv, base, workers, what)
            except AssertionError as e:
                raise AssertionError(f"{what}: {e}") from e
            total_acked += sum(op.status == "ok" for w in workers for op in w.ops)
        print(f"seed {seed}: {ROUNDS} kills, {total_acked} acknowledged writes checked")
    finally:
        srv.stop()


def _spawn_nowait(srv: ZabbyServer) -> None:
    """ZabbyServer.start without waiting for ruok (so it can be killed while starting)."""
    srv.write_config()
    with open(srv.log_path, "ab") as log:
        srv.proc = subprocess.Popen(
            srv.command(), cwd=srv.dir, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env=srv.env(), start_new_session=True,
        )


def _wait_log(srv: ZabbyServer, offset: int, needle: str, timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(srv.log_path, "rb") as f:
            f.seek(offset)
            if needle.encode() in f.read():
                return time.monotonic() - t0
        if srv.proc.poll() is not None:
            return None
        time.sleep(0.005)
    return None


def test_kill9_during_startup_and_recovery(tmp_path):
    """Crash under load, then crash the restarting server again and again (before,
    during and just after recovery); the final start still holds the history."""
    seed = 4242
    rng = random.Random(seed)
    # a long log and no snapshot, so recovery replays thousands of txns
    srv = ZabbyServer(tmp_path, snapCount=1_000_000, preAllocSize=4, tickTime=1000)
    try:
        setup = RawClient(srv.host, srv.port, timeout_ms=4000)
        setup.connect()
        setup_tree(setup, CLIENTS)
        setup.close()
        tree, _ = _read_base(srv)
        base = base_from_tree(tree, CLIENTS)
        workers, _mode, _ = run_load_and_kill(srv, base, rng, "startup", delay=0.0,
                                              min_acked=600)
        acked = sum(op.status == "ok" for w in workers for op in w.ops)
        assert acked > 500, f"too little load before the crash ({acked} acked writes)"

        # how long until recovery is done? (then crash right away: open_for_append)
        offset = srv.log_path.stat().st_size
        _spawn_nowait(srv)
        t_rec = _wait_log(srv, offset, "recovered zxid", 20)
        srv.kill()
        assert t_rec is not None, "the restarting server never logged its recovery\n" + srv.log_tail()
        kills = [("after recovery", t_rec)]
        for i in range(6):
            # spread over the start: imports, then recovery (its last ~20%), then serving
            delay = t_rec * (0.5 + 0.55 * i / 5) * rng.uniform(0.95, 1.05)
            offset = srv.log_path.stat().st_size
            _spawn_nowait(srv)
            time.sleep(delay)
            srv.kill()
            with open(srv.log_path, "rb") as f:
                f.seek(offset)
                done = b"recovered zxid" in f.read()
            kills.append(("after recovery" if done else "before/during recovery", delay))
        srv.start()
        check_restart(srv, base, workers, f"seed {seed}: after kills at {kills}")
        # (where each kill landed depends on timing; it is reported, not asserted)
        print("kills during startup:", ", ".join(f"{w} ({d:.3f}s)" for w, d in kills))
    finally:
        srv.stop()
