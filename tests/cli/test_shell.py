"""`zabby shell`: an interactive session through a pty (pexpect), and scripted use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from zabby.testing import OPEN_ACL_UNSAFE, RawClient, ZabbyServer, find_zookeeper
from zabby.wire import Op, SetDataRequest

SRC = str(Path(__file__).resolve().parents[2] / "src")
PROMPT = re.compile(r"\[zk: [0-9.:]+\(CONNECTED\) (\d+)\]")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ZabbyServer(tmp_path_factory.mktemp("shell"), extendedTypesEnabled="true") as srv:
        yield srv


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["ZABBY_SHELL_HISTORY"] = str(tmp_path / "history")
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    env["TERM"] = "xterm"
    return env


def _shell(server, *args: str, input: str | None = None, tmp_path: Path):
    return subprocess.run(
        [sys.executable, "-m", "zabby", "shell", "-server", server.hosts, *args],
        input=input, capture_output=True, text=True, timeout=60, env=_env(tmp_path))


def _set(server, path: str, data: bytes) -> None:
    host, port = server.hosts.split(":")
    with RawClient(host, int(port)) as c:
        assert c.request(Op.SET_DATA, SetDataRequest(path, data, -1)).err == 0


def test_interactive_session(server, tmp_path):
    # a second host that refuses connections: hosts are tried in random order
    dead = "127.0.0.1:1"
    child = pexpect.spawn(
        sys.executable, ["-m", "zabby", "shell", "-server", f"{dead},{server.hosts}"],
        env=_env(tmp_path), encoding="utf-8", timeout=20, dimensions=(40, 200))
    try:
        def run(cmd: str, *expect: str) -> None:
            child.sendline(cmd)
            for e in expect:
                child.expect_exact(e)
            child.expect(PROMPT)

        child.expect(PROMPT)
        run("create /sh hello", "Created /sh")
        run("create /sh hello", "Node already exists: /sh")
        run("get -s /sh", "hello", "cZxid = 0x", "dataVersion = 0", "numChildren = 0")
        run("create -e /sh/eph", "Created /sh/eph")
        run("create -s /sh/seq- x", "Created /sh/seq-0000000001")
        run("create -c /shc", "Created /shc")
        run("create -t 60000 /sht", "Created /sht")
        run("ls /sh", "[eph, seq-0000000001]")
        run("ls -s /sh", "[eph, seq-0000000001]", "numChildren = 2")
        run("ls -R /sh", "/sh\r\n/sh/eph\r\n/sh/seq-0000000001")
        run("set -s /sh world", "dataVersion = 1")
        run("set -v 7 /sh x", "version No is not valid : /sh")
        run("stat /sh", "dataVersion = 1", "numChildren = 2")
        run("get /nope", "Node does not exist: /nope")
        run("delete /sh", "Node not empty: /sh")
        run("getEphemerals /", "[/sh/eph]")
        run("getAllChildrenNumber /sh", "2")
        run("getAcl -s /sh", "'world,'anyone", ": cdrwa", "aclVersion = 0")
        run("whoami", "Auth scheme: User", "ip: 127.0.0.1")
        run("addauth digest bob:secret")
        run("whoami", "digest: bob")
        run("create /sec x auth::cdra", "Created /sec")
        run("getAcl /sec", "'digest,'bob:", ": cdra")
        run("setAcl -s /sec world:anyone:r", "aclVersion = 1")
        run("set /sec y", "Insufficient permission : /sec")
        run("setAcl -R /sh world:anyone:cdrwa")
        run("sync /sh", "Sync is OK")
        run("config")
        run("delete -v 0 /sht")
        run("deleteall /shc")
        # a one-shot watch fires when another client changes the node
        run("get -w /sh", "world")
        _set(server, "/sh", b"changed")
        child.expect_exact("WATCHER::")
        child.expect_exact("WatchedEvent state:SyncConnected type:NodeDataChanged path:/sh")
        run("stat -w /sh", "dataVersion = 2")
        run("removewatches /sh -d")
        run("removewatches /sh", "KeeperErrorCode = No such watcher for /sh")
        run("addWatch -m PERSISTENT /sh")
        _set(server, "/sh", b"again")
        child.expect_exact("type:NodeDataChanged path:/sh")
        run("removewatches /sh -a")
        run("frobnicate", "Command not found")
        # tab completion: a command name, then a znode path asked of the server
        run("create /completeme-node PATHDATA", "Created /completeme-node")
        child.send("getAllCh\t")
        child.expect_exact("getAllChildrenNumber")
        child.sendcontrol("u")
        child.send("get /completem\t")
        child.expect_exact("/completeme-node")
        child.sendline("")
        child.expect_exact("PATHDATA")
        child.expect(PROMPT)
        child.sendline("history")
        child.expect(r"(\d+) - get /completeme-node")
        n = child.match.group(1)
        child.expect(PROMPT)
        run(f"redo {n}", "PATHDATA")
        run("printwatches off")
        run("printwatches", "printwatches is off")
        run("printwatches on")
        run("version", "ZooKeeper CLI version: zabby")
        child.sendline("close")
        child.expect_exact("WatchedEvent state:Closed type:None path:null")
        child.expect_exact("(CLOSED)")
        child.sendline("ls /")
        child.expect_exact("Not connected")
        child.sendline(f"connect {server.hosts}")
        child.expect_exact("WatchedEvent state:SyncConnected type:None path:null")
        run("ls /sh", "[seq-0000000001]")  # the old session's ephemeral went with it
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    hist = (tmp_path / "history").read_text()
    assert "get /completeme-node" in hist and "addauth digest bob:secret" in hist

    # the history survives: Up recalls the last command of the previous run
    child = pexpect.spawn(sys.executable, ["-m", "zabby", "shell", "--server", server.hosts],
                          env=_env(tmp_path), encoding="utf-8", timeout=20,
                          dimensions=(40, 200))
    try:
        child.expect(PROMPT)
        child.send("\x1b[A")
        child.expect_exact("quit")
        child.send("\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_scripted_pipe(server, tmp_path):
    r = _shell(server, input="create /p1 one\nget /p1\nls /p1\ndeleteall /p1\n",
               tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Created /p1", "one", "[]"]
    r = _shell(server, input="create /p2 x\nget /missing\ncreate /p3 never\n",
               tmp_path=tmp_path)
    assert r.returncode == 1
    assert "Node does not exist: /missing" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "Created /p3" not in r.stdout


def test_scripted_c_and_words(server, tmp_path):
    r = _shell(server, "-c", "create /c1 v; get /c1; set /c1 w; get /c1", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Created /c1", "v", "w"]
    r = _shell(server, "-c", "create /c1 again; get /c1", tmp_path=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "Node already exists: /c1"
    assert r.stdout == ""
    r = _shell(server, "ls", "-s", "/c1", tmp_path=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("[]\ncZxid = 0x")
    r = _shell(server, "-c", "set /c1 'a;b c'; get /c1; delete /c1", tmp_path=tmp_path)
    assert r.returncode == 0 and r.stdout == "a;b c\n"


def test_no_server(tmp_path):
    r = subprocess.run([sys.executable, "-m", "zabby", "shell", "-server", "127.0.0.1:1",
                        "-c", "ls /"], capture_output=True, text=True, timeout=60,
                       env=_env(tmp_path))
    assert r.returncode == 1
    assert "Unable to connect" in r.stderr and "Traceback" not in r.stderr


def test_reconnects_after_server_restart(tmp_path):
    with ZabbyServer(tmp_path / "srv") as srv:
        child = pexpect.spawn(sys.executable, ["-m", "zabby", "shell", "-server", srv.hosts],
                              env=_env(tmp_path), encoding="utf-8", timeout=20,
                              dimensions=(40, 200))
        try:
            child.expect(PROMPT)
            child.sendline("create -e /mine x")
            child.expect_exact("Created /mine")
            child.expect(PROMPT)
            child.sendline("get -w /mine")
            child.expect(PROMPT)
            srv.stop()
            child.expect_exact("WatchedEvent state:Disconnected type:None path:null")
            srv.start()
            # the next command reconnects, resuming the session: its ephemeral is still there
            child.sendline("getEphemerals /")
            child.expect_exact("WatchedEvent state:SyncConnected type:None path:null")
            child.expect_exact("[/mine]")
            child.expect(PROMPT)
            # the watch was set again on the resumed session
            _set(srv, "/mine", b"y")
            child.expect_exact("type:NodeDataChanged path:/mine")
            child.sendline("quit")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)


ZKCLI = os.environ.get("ZABBY_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
# the same tree state for both shells: read-only commands and commands that fail
DIFF_COMMANDS = [
    "ls /d", "ls -s /d", "ls -R /d", "get /d", "get -s /d", "get /e", "stat /d/b",
    "getAcl /d", "getAcl -s /locked", "getAllChildrenNumber /d", "getEphemerals /d",
    "sync /d", "whoami", "get /nope", "create /d x", "delete /d", "set -v 9 /d x",
    "set /locked x", "removewatches /d", "ls /nope", "stat /nope", "create nopath",
    "create /ephem/x", "delete -v 5 /d/a",
]
_NOISE = ("SLF4J:", "Connecting to", "Welcome to ZooKeeper", "JLine", "WATCHER::",
          "WatchedEvent state:SyncConnected type:None", "WatchedEvent state:Closed")


def _clean(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.splitlines()
            if ln.strip() and not ln.startswith(_NOISE)]


@pytest.mark.differential
def test_output_matches_zkcli(server, tmp_path):
    if not os.path.exists(ZKCLI) or find_zookeeper() is not None:
        pytest.skip("zkCli.sh (Debian zookeeper) is not installed")
    from zabby.testing.rawclient import READ_ACL_UNSAFE
    from zabby.wire import CreateMode, CreateRequest

    host, port = server.hosts.split(":")
    with RawClient(host, int(port)) as c:
        for path, data, acl, mode in (
            ("/d", b"hello", OPEN_ACL_UNSAFE, 0), ("/d/a", b"", OPEN_ACL_UNSAFE, 0),
            ("/d/b", b"bee", OPEN_ACL_UNSAFE, 0), ("/d/b/c", b"see", OPEN_ACL_UNSAFE, 0),
            ("/e", None, OPEN_ACL_UNSAFE, 0), ("/locked", b"l", READ_ACL_UNSAFE, 0),
            ("/ephem", b"", OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL),
        ):
            assert c.request(Op.CREATE, CreateRequest(path, data, acl, mode)).err == 0
        # stdout and stderr apart: the JVM's two streams interleave unpredictably in one pipe
        zk = subprocess.run([ZKCLI, "-server", server.hosts],
                            input="\n".join(DIFF_COMMANDS) + "\nquit\n",
                            capture_output=True, text=True, timeout=120)
        ours: tuple[list[str], list[str]] = ([], [])
        for cmd in DIFF_COMMANDS:
            r = subprocess.run(
                [sys.executable, "-m", "zabby", "shell", "-server", server.hosts, "-c", cmd],
                capture_output=True, text=True, timeout=60, env=_env(tmp_path))
            ours[0].extend(_clean(r.stdout))
            ours[1].extend(_clean(r.stderr))
    theirs = (_clean(zk.stdout), _clean(zk.stderr))
    for a, b in zip(ours, theirs, strict=True):
        assert a == b, "\n".join(f"{x!r:60} {y!r}" for x, y in zip(a, b, strict=False))
