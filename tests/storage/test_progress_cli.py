"""Progress bars of `zabby check` and `zabby serve` start-up: on a terminal (a pty) they
appear on stderr; piped, redirected or turned off, they do not."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pexpect
import pytest

from zabby.storage import TxnLog, write_snapshot
from zabby.testing.servers import free_port
from zabby.tree import DataTree, RequestContext
from zabby.wire.constants import Op
from zabby.wire.records import ACL, CreateRequest, Id, SetDataRequest

OPEN = [ACL(31, Id("world", "anyone"))]
ZNODES = 30_000  # several snapshot chunks of 4,096
TXNS = 10_000  # several replay reports (every 4,096)
SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("progress") / "data")
    tree = DataTree()
    zxid = 0

    def run(op, body):
        nonlocal zxid
        zxid += 1
        txn = tree.prepare(op, body, RequestContext(1, zxid, zxid, 1_700_000_000_000, []))
        tree.apply(txn)
        return txn

    run(Op.CREATE, CreateRequest("/p", b"", OPEN, 0))
    for i in range(ZNODES):
        run(Op.CREATE, CreateRequest(f"/p/n{i}", b"value", OPEN, 0))
    write_snapshot(tree, d)
    log = TxnLog(d, prealloc_bytes=1 << 20)
    log.open_for_append(zxid)
    txns = [run(Op.SET_DATA, SetDataRequest(f"/p/n{i % ZNODES}", b"v2", -1)) for i in range(TXNS)]
    log.write_batch([(t.zxid, t.encode()) for t in txns])
    log.close()
    return d


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("ZABBY_NO_PROGRESS", "ZABBY_PROGRESS_DELAY", "CI")}
    env.update({"PYTHONPATH": os.path.abspath(SRC), "TERM": "xterm", "COLUMNS": "100", **extra})
    return env


def _pty(cmd: str, env, timeout: float = 60) -> tuple[str, int]:
    """Run a shell command line on a pty; (everything it wrote, exit status)."""
    child = pexpect.spawn("/bin/sh", ["-c", cmd], env=env, encoding="utf-8",
                          timeout=timeout, dimensions=(24, 100))
    try:
        child.expect(pexpect.EOF)
        out = child.before
    finally:
        child.close(force=True)
    return out, child.exitstatus


def _check_cmd(d: str, *extra: str) -> str:
    return " ".join([sys.executable, "-m", "zabby", "check", "--data-dir", d, *extra])


def _has_bar(text: str) -> bool:
    return "%|" in text and "/" in text and "\r" in text


def test_check_on_a_terminal_draws_bars_on_stderr(data_dir):
    out, status = _pty(_check_cmd(data_dir), _env())
    assert status == 0, out
    assert "loading snapshot" in out and "replaying txn log" in out
    assert _has_bar(out), out
    assert "ok: snapshot" in out and f"{TXNS} txns replayed" in out
    # the bars are on stderr: with stdout sent away they are still drawn...
    out, status = _pty(_check_cmd(data_dir) + " >/dev/null", _env())
    assert status == 0 and _has_bar(out) and "ok:" not in out, out
    # ... and with stderr sent away (not a terminal any more) there are none
    out, status = _pty(_check_cmd(data_dir) + " 2>/dev/null", _env())
    assert status == 0 and "ok: snapshot" in out and not _has_bar(out), out
    assert "loading snapshot" not in out


def test_check_bars_can_be_turned_off_on_a_terminal(data_dir):
    for cmd, env in ((_check_cmd(data_dir, "--no-progress"), _env()),
                     (_check_cmd(data_dir), _env(ZABBY_NO_PROGRESS="1")),
                     (_check_cmd(data_dir), _env(TERM="dumb")),
                     (_check_cmd(data_dir), _env(CI="true"))):
        out, status = _pty(cmd, env)
        assert status == 0 and "ok: snapshot" in out, out
        assert not _has_bar(out) and "loading snapshot" not in out, (cmd, out)


def test_check_piped_has_no_bars(data_dir):
    r = subprocess.run([sys.executable, "-m", "zabby", "check", "--data-dir", data_dir],
                       capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0 and "ok: snapshot" in r.stdout
    assert r.stderr == "", r.stderr


def test_serve_shows_snapshot_loading_on_a_terminal(data_dir, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(data_dir, d)  # the server appends to its log
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={d}\nclientPort={port}\n"
                   "admin.enableServer=false\n")
    child = pexpect.spawn(sys.executable, ["-m", "zabby", "serve", "--config", str(cfg)],
                          env=_env(ZABBY_PROGRESS_DELAY="0"), encoding="utf-8", timeout=60,
                          dimensions=(24, 100))
    try:
        child.expect("loading snapshot.*%\\|")
        child.expect("replaying txn log.*%\\|")
        child.expect(f"recovered zxid 0x[0-9a-f]+ from .* \\+ {TXNS} logged txns")
    finally:
        if child.isalive():
            os.kill(child.pid, signal.SIGTERM)
            child.expect(pexpect.EOF)
        child.close(force=True)
