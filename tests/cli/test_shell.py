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
from zabby.wire import CreateRequest, Op, SetDataRequest

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


def _shell(server, *args: str, input: str | None = None, tmp_path: Path, at: str = ""):
    return subprocess.run(
        [sys.executable, "-m", "zabby", "shell", "-server", server.hosts + at, *args],
        input=input, capture_output=True, text=True, timeout=60, env=_env(tmp_path))


class Pty:
    """A shell on a pty. Each command waits for the *next* prompt by its number: a
    prompt is drawn again after every event written above it, so "a prompt" alone
    may be the one before the command ran. ZABBY_PTY_LOG=file keeps what it printed."""

    def __init__(self, server_list: str, tmp_path: Path, *args: str) -> None:
        self.child = pexpect.spawn(
            sys.executable, ["-m", "zabby", "shell", "-server", server_list, *args],
            env=_env(tmp_path), encoding="utf-8", timeout=20, dimensions=(40, 200))
        self.child.logfile_read = open(os.environ.get("ZABBY_PTY_LOG", os.devnull), "a")
        try:
            self.child.expect(PROMPT)
        except BaseException:
            self.close()
            raise
        self.n = int(self.child.match.group(1))

    def expect(self, *texts: str | re.Pattern) -> None:
        for t in texts:
            if isinstance(t, re.Pattern):
                self.child.expect(t)
            else:
                self.child.expect_exact(t)

    def prompt(self, state: str = "CONNECTED") -> None:
        self.child.expect_exact(f"({state}) {self.n}]")

    def run(self, cmd: str, *expect: str | re.Pattern, state: str = "CONNECTED") -> None:
        """One command: its output, then the prompt numbered one higher."""
        self.child.sendline(cmd)
        self.expect(*expect)
        self.n += 1
        self.prompt(state)

    def close(self) -> None:
        self.child.close(force=True)
        self.child.logfile_read.close()


def _create(server, path: str) -> None:
    host, port = server.hosts.split(":")
    with RawClient(host, int(port)) as c:
        assert c.request(Op.CREATE, CreateRequest(path, b"", OPEN_ACL_UNSAFE, 0)).err == 0


def _painted(text: str) -> re.Pattern:
    """`text` as the terminal shows it: a busy machine may paint a completion in two
    screen updates ("getAllCh", escape codes, "ildrenNumber"), so any escape
    sequences may come between its characters."""
    return re.compile(r"(?:\x1b\[[0-9;?]*[A-Za-z])*".join(re.escape(c) for c in text))


def _set(server, path: str, data: bytes) -> None:
    host, port = server.hosts.split(":")
    with RawClient(host, int(port)) as c:
        assert c.request(Op.SET_DATA, SetDataRequest(path, data, -1)).err == 0


def test_interactive_session(server, tmp_path):
    # a second host that refuses connections: hosts are tried in random order
    sh = Pty(f"127.0.0.1:1,{server.hosts}", tmp_path)
    run = sh.run
    try:
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
        run("getAllChildrenNumber /sh", re.compile(r"[^0-9]2\r\n"))
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
        sh.expect("WATCHER::", "WatchedEvent state:SyncConnected type:NodeDataChanged path:/sh")
        sh.prompt()  # drawn again below the event
        run("stat -w /sh", "dataVersion = 2")
        run("removewatches /sh -d", "type:DataWatchRemoved path:/sh")
        run("removewatches /sh", "KeeperErrorCode = No such watcher for /sh")
        run("addWatch -m PERSISTENT /sh")
        _set(server, "/sh", b"again")
        sh.expect("type:NodeDataChanged path:/sh")
        sh.prompt()
        run("removewatches /sh -a", "type:PersistentWatchRemoved path:/sh")
        # a child watch, and a recursive one (addWatch's default) seeing a grandchild
        run("ls -w /sh", "[eph, seq-0000000001]")
        run("addWatch /shr")  # watches may be set on absent paths
        _create(server, "/sh/kid")
        sh.expect("type:NodeChildrenChanged path:/sh")
        sh.prompt()
        _create(server, "/shr")
        sh.expect("type:NodeCreated path:/shr")
        sh.prompt()
        _create(server, "/shr/a")
        _create(server, "/shr/a/b")
        sh.expect("type:NodeCreated path:/shr/a", "type:NodeCreated path:/shr/a/b")
        sh.prompt()
        run("removewatches /shr", "type:PersistentWatchRemoved path:/shr")
        run("ls -w /shr", "[a]")
        run("removewatches /shr -c", "type:ChildWatchRemoved path:/shr")
        # quotas, kept where ZooKeeper keeps them
        run("setquota -n 5 /shr")
        run("setquota -B 1000 /shr")
        run("listquota /shr", "absolute path is /zookeeper/quota/shr/zookeeper_limits",
            "Output quota for /shr count=5,bytes=-1=;byteHardLimit=1000;countHardLimit=-1",
            "Output stat for /shr count=3,bytes=0")  # /shr, /shr/a, /shr/a/b
        run("setquota -n 2 /shr/a", "/shr/a has a parent /shr which has a quota")
        run("delquota -n /shr")
        run("listquota /shr", "count=-1,bytes=-1=;byteHardLimit=1000;countHardLimit=-1")
        run("delquota /shr")
        run("listquota /shr", "quota for /shr does not exist.")
        run("ls /zookeeper/quota", "[]")
        run("getEphemerals /sh", "[/sh/eph]")
        run("deleteall /shr")
        run("stat /shr", "Node does not exist: /shr")
        run("config -c")
        run("frobnicate", "Command not found")
        # tab completion: a command name, then a znode path asked of the server
        run("create /completeme-node PATHDATA", "Created /completeme-node")
        child = sh.child
        child.send("getAllCh\t")
        child.expect(_painted("getAllChildrenNumber"))
        child.sendcontrol("u")
        child.send("get /completem\t")
        child.expect(_painted("/completeme-node"))
        run("", "PATHDATA")
        child.sendline("history")
        child.expect(r"(\d+) - get /completeme-node")
        n = child.match.group(1)
        sh.n += 1
        sh.prompt()
        run(f"redo {n}", "PATHDATA")
        run("printwatches off")
        run("printwatches", "printwatches is off")
        run("printwatches on")
        run("version", "ZooKeeper CLI version: zabby")
        run("close", "WatchedEvent state:Closed type:None path:null", state="CLOSED")
        run("ls /", "Not connected", state="CLOSED")
        run(f"connect {server.hosts}", "WatchedEvent state:SyncConnected type:None path:null")
        run("ls /sh", "[kid, seq-0000000001]")  # the old session's ephemeral went with it
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        sh.close()
    assert child.exitstatus == 0
    hist = (tmp_path / "history").read_text()
    assert "get /completeme-node" in hist and "addauth digest bob:secret" in hist

    # the history survives: Up recalls the last command of the previous run
    sh = Pty(server.hosts, tmp_path)
    try:
        sh.child.send("\x1b[A")
        sh.expect("quit")
        sh.child.send("\r")
        sh.child.expect(pexpect.EOF)
    finally:
        sh.close()
    assert sh.child.exitstatus == 0


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


def test_chroot(server, tmp_path):
    r = _shell(server, "-c", "create /app", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _shell(server, "-c", "create /x one; create -s /x/s- ; create -e /x/e; ls /; ls -R /; "
               "getEphemerals /; get /x; sync /x; setquota -n 3 /x; listquota /x",
               tmp_path=tmp_path, at="/app")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Created /x", "Created /x/s-0000000000", "Created /x/e", "[x]",
        "/", "/x", "/x/e", "/x/s-0000000000", "[/x/e]", "one", "Sync is OK",
        # quotas are for real paths: ZooKeeper counts below /app/x
        "Output quota for /x count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        "Output stat for /x count=3,bytes=3"]
    assert "absolute path is /zookeeper/quota/app/x/zookeeper_limits" in r.stderr
    r = _shell(server, "-c", "ls -R /app; ls /zookeeper/quota/app", tmp_path=tmp_path)
    assert r.stdout.splitlines() == ["/app", "/app/x", "/app/x/s-0000000000", "[x]"]
    r = _shell(server, "-c", "ls /", tmp_path=tmp_path, at="/bad//root")
    assert r.returncode == 2 and "invalid chroot" in r.stderr and "Traceback" not in r.stderr


def test_chroot_interactive(server, tmp_path):
    """Event paths and completions are relative to the chroot, as the commands are."""
    assert _shell(server, "-c", "create /app2", tmp_path=tmp_path).returncode == 0
    sh = Pty(f"{server.hosts}/app2", tmp_path)
    try:
        sh.run("create /watched x", "Created /watched")
        sh.run("get -w /watched", "x\r\n")
        _set(server, "/app2/watched", b"y")
        sh.expect("type:NodeDataChanged path:/watched\r\n")
        sh.prompt()
        sh.child.send("get /watc\t")
        # the completion's "hed" may be drawn apart from what was typed, with the
        # terminal's escape codes between them (seen on a loaded machine)
        sh.expect(re.compile(r"/watc(?:\x1b\[[0-9;?]*[A-Za-z])*hed"))
        sh.run("", "y\r\n")
        sh.child.sendline("quit")
        sh.child.expect(pexpect.EOF)
    finally:
        sh.close()


def test_tls_client_configuration(tmp_path):
    from zabby.testing.certs import CertificateAuthority
    from zabby.testing.servers import free_port

    ca = CertificateAuthority("shell test CA")
    pw = "shell-Pw-1"
    ca.issue("localhost", server=True).write(tmp_path / "server.p12", pw)
    ca.write_truststore(tmp_path / "trust.p12", pw)
    ca.issue("shell", ou="test").write(tmp_path / "client.pem", pw)
    ca.write_truststore(tmp_path / "trust.pem", "")
    props = tmp_path / "client.properties"
    props.write_text(
        "# as zkCli.sh -client-configuration takes it\n"
        "zookeeper.client.secure=true\n"
        "zookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty\n"
        f"zookeeper.ssl.keyStore.location={tmp_path / 'client.pem'}\n"
        f"zookeeper.ssl.keyStore.password={pw}\n"
        f"zookeeper.ssl.trustStore.location={tmp_path / 'trust.pem'}\n")
    port = free_port()
    cfg = {"ssl.keyStore.location": tmp_path / "server.p12", "ssl.keyStore.password": pw,
           "ssl.trustStore.location": tmp_path / "trust.p12", "ssl.trustStore.password": pw}
    with ZabbyServer(tmp_path / "srv", secureClientPort=port, **cfg):
        def shell(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "zabby", "shell", "-server", f"127.0.0.1:{port}",
                 *args], capture_output=True, text=True, timeout=60, env=_env(tmp_path))

        r = shell("-client-configuration", str(props), "-c", "create /tls x; get /tls; whoami")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[:3] == ["Created /tls", "x", "Auth scheme: User"]
        assert "x509: CN=shell,OU=test,O=zabby" in r.stdout
        # plain TCP to the secure port: no session, said in words
        r = shell("-c", "ls /")
        assert r.returncode == 1 and "Unable to connect" in r.stderr
        assert "Traceback" not in r.stderr
        # a configuration that cannot be used
        bad = tmp_path / "bad.properties"
        bad.write_text("zookeeper.client.secure=true\n"
                       f"zookeeper.ssl.trustStore.location={tmp_path / 'nope.jks'}\n")
        r = shell("-client-configuration", str(bad), "-c", "ls /")
        assert r.returncode == 2 and "cannot use the client configuration" in r.stderr
        assert "Traceback" not in r.stderr


def test_sasl_digest_client_configuration(tmp_path):
    from zabby.testing.sasl import jaas_server_section

    jaas = tmp_path / "jaas.conf"
    jaas.write_text(jaas_server_section({"bob": "bob-Pw-1"}) + """
Client {
  org.apache.zookeeper.server.auth.DigestLoginModule required
  username="bob"
  password="bob-Pw-1";
};
Wrong {
  org.apache.zookeeper.server.auth.DigestLoginModule required
  username="bob"
  password="not-it";
};
""")
    props = tmp_path / "client.properties"
    props.write_text(f"java.security.auth.login.config={jaas}\n")
    wrong = tmp_path / "wrong.properties"
    wrong.write_text(f"java.security.auth.login.config={jaas}\n"
                     "zookeeper.sasl.clientconfig=Wrong\n")
    sasl_provider = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
    with ZabbyServer(tmp_path / "srv", **{"authProvider.1": sasl_provider},
                     jvm_flags=[f"-Djava.security.auth.login.config={jaas}"]) as srv:
        def shell(*args: str) -> subprocess.CompletedProcess:
            return _shell(srv, *args, tmp_path=tmp_path)

        r = shell("-client-configuration", str(props), "-c",
                  "whoami; create /bobs x sasl:bob:cdrwa; get /bobs")
        assert r.returncode == 0, r.stderr
        assert "sasl: bob" in r.stdout.splitlines() and r.stdout.endswith("Created /bobs\nx\n")
        r = shell("-c", "get /bobs")  # no login: the ACL says no
        assert r.returncode == 1 and r.stderr.strip() == "Insufficient permission : /bobs"
        r = shell("-client-configuration", str(wrong), "-c", "ls /")
        assert r.returncode == 1 and "authentication failed" in r.stderr
        assert "Traceback" not in r.stderr


def test_no_server(tmp_path):
    r = subprocess.run([sys.executable, "-m", "zabby", "shell", "-server", "127.0.0.1:1",
                        "-c", "ls /"], capture_output=True, text=True, timeout=60,
                       env=_env(tmp_path))
    assert r.returncode == 1
    assert "Unable to connect" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("chroot", ["", "/rt"])
def test_reconnects_after_server_restart(tmp_path, chroot):
    with ZabbyServer(tmp_path / "srv") as srv:
        if chroot:
            _create(srv, chroot)
        sh = Pty(srv.hosts + chroot, tmp_path)
        try:
            sh.run("create -e /mine x", "Created /mine")
            sh.run("get -w /mine", "x\r\n")
            sh.run("ls -w /", "[mine")
            srv.stop()
            sh.expect("WatchedEvent state:Disconnected type:None path:null")
            # with no server, -l removes a watch here (it is not set again later)
            sh.run("removewatches / -c -l", "type:ChildWatchRemoved path:/\r\n",
                   state="CONNECTING")
            sh.run("removewatches / -c -l", "No such watcher for /", state="CONNECTING")
            srv.start()
            # the next command reconnects, resuming the session: its ephemeral is still there
            sh.run("getEphemerals /", "WatchedEvent state:SyncConnected type:None path:null",
                   "[/mine]")
            # the watch was set again on the resumed session
            _set(srv, chroot + "/mine", b"y")
            sh.expect("type:NodeDataChanged path:/mine\r\n")
            sh.child.sendline("quit")
            sh.child.expect(pexpect.EOF)
        finally:
            sh.close()


ZKCLI = os.environ.get("ZABBY_ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
# the same tree state for both shells: read-only commands and commands that fail
DIFF_COMMANDS = [
    "ls /d", "ls -s /d", "ls -R /d", "get /d", "get -s /d", "get /e", "stat /d/b",
    "getAcl /d", "getAcl -s /locked", "getAllChildrenNumber /d", "getEphemerals /d",
    "sync /d", "whoami", "get /nope", "create /d x", "delete /d", "set -v 9 /d x",
    "set /locked x", "removewatches /d", "ls /nope", "stat /nope", "create nopath",
    "create /ephem/x", "delete -v 5 /d/a", "listquota /d", "delquota /nope",
    "setquota -n 3 /nope", "setquota -n 3 /zookeeper/quota", "stat -w /nope",
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
            c.ping()  # /ephem is this session's: it must outlive a slow machine's run
            r = subprocess.run(
                [sys.executable, "-m", "zabby", "shell", "-server", server.hosts, "-c", cmd],
                capture_output=True, text=True, timeout=60, env=_env(tmp_path))
            ours[0].extend(_clean(r.stdout))
            ours[1].extend(_clean(r.stderr))
    theirs = (_clean(zk.stdout), _clean(zk.stderr))
    for a, b in zip(ours, theirs, strict=True):
        assert a == b, "\n".join(f"{x!r:60} {y!r}" for x, y in zip(a, b, strict=False))


def test_session_expiry_is_shown(tmp_path):
    """A session that expires while the shell is stopped: Expired, then a new session
    (SyncConnected) without the old one's ephemerals."""
    import signal
    import time

    with ZabbyServer(tmp_path / "srv", tickTime=500) as srv:
        sh = Pty(srv.hosts, tmp_path, "-timeout", "2000")
        try:
            sh.run("create -e /mine x", "Created /mine")
            os.kill(sh.child.pid, signal.SIGSTOP)
            try:
                time.sleep(5)  # the 2 s session expires at the server
            finally:
                os.kill(sh.child.pid, signal.SIGCONT)
            sh.expect("WatchedEvent state:Expired type:None path:null",
                      "WatchedEvent state:SyncConnected type:None path:null")
            sh.run("ls /", "[zookeeper]")
            sh.child.sendline("quit")
            sh.child.expect(pexpect.EOF)
        finally:
            sh.close()


RECONFIG_COMMANDS = [
    "reconfig -remove 3", "reconfig", "reconfig -v zz -remove 3",
    "reconfig -members server.1=127.0.0.1:1:2 -add server.4=127.0.0.1:1:2",
    "reconfig -file /nonexistent/dyn.cfg -members server.1=127.0.0.1:1:2",
    "addauth digest super:test", "reconfig -v 1 -remove 3", "reconfig -remove 1,2,3",
]


@pytest.mark.differential
def test_reconfig_matches_zkcli(tmp_path):
    """reconfig's option checks and error messages are zkCli's (same ensemble, zkCli
    first); then the shell really removes a member and adds it back."""
    if not os.path.exists(ZKCLI) or find_zookeeper() is not None:
        pytest.skip("zkCli.sh (Debian zookeeper) is not installed")
    from zabby.testing import ZabbyEnsemble
    from zabby.testing.differential import digest_acl

    ens = ZabbyEnsemble(tmp_path / "ens", 3, tickTime=200, reconfigEnabled=True,
                        **{"DigestAuthenticationProvider.superDigest":
                           digest_acl("super", "test").id.id})
    try:
        hosts = ens.members[1].hosts
        script = "\n".join(RECONFIG_COMMANDS) + "\nquit\n"
        zk = subprocess.run([ZKCLI, "-server", hosts], input=script, capture_output=True,
                            text=True, timeout=120)
        # a script stops at its first failure here (zkCli goes on): one run per command
        ours: tuple[list[str], list[str]] = ([], [])
        authed = ""
        for cmd in RECONFIG_COMMANDS:
            if cmd.startswith("addauth"):
                authed = cmd + "\n"
                continue
            r = subprocess.run(
                [sys.executable, "-m", "zabby", "shell", "-server", hosts],
                input=authed + cmd + "\nquit\n", capture_output=True, text=True, timeout=60,
                env=_env(tmp_path))
            ours[0].extend(_clean(r.stdout))
            ours[1].extend(_clean(r.stderr))
        for a, b in zip(ours, (_clean(zk.stdout), _clean(zk.stderr)), strict=True):
            assert a == b, "\n".join(f"{x!r:60} {y!r}" for x, y in zip(a, b, strict=False))
        assert len(ours[1]) == len(RECONFIG_COMMANDS) - 1  # every one refused, as by zkCli

        def shell(script: str) -> list[str]:
            r = subprocess.run(
                [sys.executable, "-m", "zabby", "shell", "-server", hosts],
                input="addauth digest super:test\n" + script + "quit\n",
                capture_output=True, text=True, timeout=60, env=_env(tmp_path))
            assert not _clean(r.stderr), r.stderr
            # removing the leader makes every member elect again: clients reconnect
            return [ln for ln in _clean(r.stdout) if not ln.startswith("WatchedEvent")]

        line3 = next(ln for ln in shell("config\n") if ln.startswith("server.3="))
        out = shell("reconfig -s -remove 3\n")
        assert out[0] == "Committed new configuration:", out
        assert any(ln.startswith("server.1=") for ln in out)
        assert not any(ln.startswith("server.3=") for ln in out)
        assert any(ln.startswith("version=") for ln in out)
        assert any(ln.startswith("mZxid = ") for ln in out)  # -s
        out = shell(f"reconfig -add {line3}\n")
        assert out[0] == "Committed new configuration:" and line3 in out, out
    finally:
        ens.stop()
