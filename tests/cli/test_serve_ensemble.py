"""`zabby serve --ensemble N`: a member that dies is reported and the others serve on;
extra zoo.cfg keys reach every member."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from zabby.client import SyncClient
from zabby.testing.servers import four_letter_word

SRC = str(Path(__file__).resolve().parents[2] / "src")
MEMBER = re.compile(r"zabby: server\.(\d+) pid (\d+) client port (\d+)")


class Output:
    """The lines a process prints, collected by a thread; ``wait_for`` a pattern."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                assert left > 0, f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
                self._cond.wait(left)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def _mode(port: int) -> str:
    try:
        out = four_letter_word("127.0.0.1", port, "srvr")
    except OSError:
        return ""
    m = re.search(r"^Mode: (\w+)", out, re.M)
    return m.group(1) if m else ""


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_member_death_is_reported_and_the_others_serve(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zabby", "serve", "--ensemble", "3", "--dir", str(tmp_path),
         "--set", "tickTime=500", "--set", "maxClientCnxns=77"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)
    out = Output(proc)
    pids: dict[int, int] = {}
    try:
        out.wait_for("connect with hosts=")
        members = {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
                   for m in map(MEMBER.search, out.lines) if m}
        assert sorted(members) == [1, 2, 3]
        pids = {mid: pid for mid, (pid, _port) in members.items()}
        ports = {mid: port for mid, (_pid, port) in members.items()}
        _wait(lambda: sorted(_mode(p) for p in ports.values()) == ["follower", "follower",
                                                                    "leader"],
              60, "a leader and two followers")
        # the keys given with --set are in every member's configuration
        for port in ports.values():
            conf = four_letter_word("127.0.0.1", port, "conf")
            assert "tickTime=500" in conf and "maxClientCnxns=77" in conf, conf

        # kill -9 the leader: it is reported, the other two elect one and take writes
        leader = next(mid for mid, p in ports.items() if _mode(p) == "leader")
        os.kill(pids[leader], signal.SIGKILL)
        out.wait_for(rf"server\.{leader} \(pid {pids[leader]}\) was killed by SIGKILL; "
                     r"2 of 3 members still running")
        rest = ",".join(f"127.0.0.1:{p}" for mid, p in ports.items() if mid != leader)
        with SyncClient(rest, timeout=10.0) as zk:
            created = zk.retry(zk.create, "/after-failover", b"ok")
            assert created == "/after-failover"
            assert zk.get("/after-failover")[0] == b"ok"
        assert proc.poll() is None, out.text()  # the local ensemble goes on
        for mid, pid in pids.items():
            assert _gone(pid) == (mid == leader)
    finally:
        if proc.poll() is None:
            proc.terminate()  # stops every member it still runs
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pid in pids.values():  # none may outlive the test
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == 0, out.text()
    for pid in pids.values():
        _wait(lambda pid=pid: _gone(pid), 10, f"member pid {pid} to end")


def test_reserved_keys_are_refused(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-m", "zabby", "serve", "--ensemble", "3", "--dir", str(tmp_path),
         "--set", "clientPort=2181"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and "clientPort is set by the local ensemble" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "zabby", "serve", "--ensemble", "3", "--dir", str(tmp_path),
         "--set", "noequals"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and "--set wants key=value" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "zabby", "serve", "--ensemble", "3", "--dir", str(tmp_path),
         "--set", "tickTime=soon"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and "invalid configuration" in r.stderr and "tickTime" in r.stderr
    assert "pid" not in r.stdout  # no member was started
