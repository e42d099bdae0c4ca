"""Four-letter words against a real ZabbyServer on loopback.

The server runs in-process on its own event loop in a background thread; the tests
talk to it over sockets (and kazoo), as monitoring tools and clients do.
"""

from __future__ import annotations

import asyncio
import platform
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from zabby import __version__
from zabby.ops.fourletter import (
    FULL_VERSION,
    ZK_VERSION,
    handle_four_letter_word,
    java_address,
    java_double,
)
from zabby.server.config import ALL_FOUR_LETTER_WORDS, ServerConfig
from zabby.server.core import ZabbyServer
from zabby.wire.protocol import decode_connect_response, encode_connect_request
from zabby.wire.records import ConnectRequest

HOST = "127.0.0.1"
IO_TIMEOUT = 5.0


class ServerThread:
    """A ZabbyServer on its own event loop in a daemon thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.server: ZabbyServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="zabby-4lw-test", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = ZabbyServer(self.config, four_letter_handler=handle_four_letter_word)
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:  # reported to the test thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("zabby did not start within 10s")
        if self._error is not None:
            raise RuntimeError("zabby failed to start") from self._error

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop (state is only touched there) and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(IO_TIMEOUT)

    def stop(self) -> None:
        if self.server is not None and self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(IO_TIMEOUT)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(IO_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


@pytest.fixture(scope="module")
def zs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    data = tmp_path_factory.mktemp("zabby4lw")
    cfg = ServerConfig(
        client_port=0,
        client_port_address=HOST,
        data_dir=str(data),
        four_letter_words=ALL_FOUR_LETTER_WORDS,
    )
    st = ServerThread(cfg)
    st.start()
    try:
        yield st
    finally:
        st.stop()


def send_raw(
    port: int, payload: bytes, *, chunks: list[bytes] | None = None, pause: float = 0.0
) -> bytes:
    """Send payload (or the chunks, pause seconds apart) and read until the server closes."""
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as s:
        if chunks is None:
            s.sendall(payload)
        else:
            for i, c in enumerate(chunks):
                if i:
                    time.sleep(pause)
                s.sendall(c)
        out = b""
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                return out
            out += d
        raise AssertionError(f"server did not close the connection; got {out!r}")


def flw(port: int, word: str) -> str:
    return send_raw(port, word.encode("ascii")).decode("utf-8")


def parse_mntr(text: str) -> dict[str, str]:
    assert text.endswith("\n")
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("\t")
        assert sep == "\t", f"not a key<TAB>value line: {line!r}"
        assert k.startswith("zk_"), line
        assert k not in out, f"duplicate key {k}"
        out[k] = v
    return out


@pytest.fixture
def kazoo(zs: ServerThread):
    from kazoo.client import KazooClient

    c = KazooClient(hosts=f"{HOST}:{zs.port}", timeout=10.0)
    c.start(timeout=10)
    try:
        yield c
    finally:
        c.stop()
        c.close()


# --------------------------------------------------------------------- basics
def test_version_constant() -> None:
    assert ZK_VERSION == f"3.8.0-zabby-{__version__}"
    assert FULL_VERSION.startswith(ZK_VERSION + ", built on ")


def test_ruok(zs: ServerThread) -> None:
    assert flw(zs.port, "ruok") == "imok"


def test_isro(zs: ServerThread) -> None:
    assert flw(zs.port, "isro") == "rw"


SRVR_RE = re.compile(
    r"\AZookeeper version: 3\.8\.0-zabby-(?P<v>[^,]+), built on [^\n]+\n"
    r"Latency min/avg/max: (?P<min>\d+)/(?P<avg>\d+\.\d+(E\d+)?)/(?P<max>\d+)\n"
    r"Received: (?P<recv>\d+)\n"
    r"Sent: (?P<sent>\d+)\n"
    r"Connections: (?P<conns>\d+)\n"
    r"Outstanding: (?P<out>\d+)\n"
    r"Zxid: 0x(?P<zxid>[0-9a-f]+)\n"
    r"Mode: (?P<mode>\w+)\n"
    r"Node count: (?P<nodes>\d+)\n\Z"
)


def test_srvr(zs: ServerThread) -> None:
    text = flw(zs.port, "srvr")
    m = SRVR_RE.match(text)
    assert m, text
    assert m["v"] == __version__
    assert m["mode"] == "standalone"
    assert int(m["conns"]) >= 1  # this connection counts
    assert int(m["recv"]) >= 1  # the srvr itself counts as a packet received
    nodes = zs.call(lambda: zs.server.tree.node_count)
    assert int(m["nodes"]) == nodes + 1  # ZooKeeper counts the root twice ("" and "/")
    assert int(m["zxid"], 16) == zs.call(lambda: zs.server.last_zxid)


def test_stat_lists_clients(zs: ServerThread, kazoo) -> None:
    kazoo.exists("/")
    text = flw(zs.port, "stat")
    head, sep, rest = text.partition("\nClients:\n")
    assert sep, text
    assert head.startswith("Zookeeper version: 3.8.0-zabby-")
    clients, sep, stats = rest.partition("\n\n")
    assert sep, text
    lines = clients.splitlines()
    conn_re = re.compile(r"^ /127\.0\.0\.1:\d+\[[0-9a-f]+\]\(queued=\d+,recved=\d+,sent=\d+\)$")
    assert lines and all(conn_re.match(line) for line in lines), clients
    kport = kazoo._connection._socket.getsockname()[1]
    assert any(f":{kport}[" in line for line in lines)
    # the asking connection: nothing sent yet, one packet (the command) received
    assert any(line.endswith("[0](queued=0,recved=1,sent=0)") for line in lines)
    assert SRVR_RE.match(head.split("\n")[0] + "\n" + stats), stats


def test_cons_shows_session(zs: ServerThread, kazoo) -> None:
    kazoo.create("/cons-node", b"x")
    sid = kazoo.client_id[0]
    text = flw(zs.port, "cons")
    assert text.endswith("\n\n")
    line = next((ln for ln in text.splitlines() if f"sid=0x{sid:x}," in ln), None)
    assert line is not None, text
    m = re.match(
        r"^ /127\.0\.0\.1:\d+\[[0-9a-f]+\]\(queued=\d+,recved=(\d+),sent=(\d+),sid=0x[0-9a-f]+,"
        r"lop=(\w+),est=(\d+),to=(\d+),(?:lcxid=0x[0-9a-f]+,)?lzxid=0x([0-9a-f]+),lresp=(\d+),"
        r"llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+\)$",
        line,
    )
    assert m, line
    assert int(m[1]) >= 2 and int(m[2]) >= 2
    assert abs(int(m[4]) / 1000 - time.time()) < 600  # established: epoch ms
    # the last reply: an operation's short name and its time of day (epoch ms)
    assert m[3] in ("CREA", "PING", "EXIS", "GETD", "SETW"), line
    assert int(m[4]) <= int(m[7]) and abs(int(m[7]) / 1000 - time.time()) < 60, line
    assert int(m[5]) == kazoo._session_timeout
    assert int(m[6], 16) >= 1


def test_mntr(zs: ServerThread, kazoo) -> None:
    before = parse_mntr(flw(zs.port, "mntr"))
    required = [
        "zk_version",
        "zk_server_state",
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "zk_uptime",
        "zk_global_sessions",
        "zk_local_sessions",
    ]
    for k in required:
        assert k in before, k
    assert list(before)[:2] == ["zk_version", "zk_server_state"]
    assert before["zk_version"] == FULL_VERSION
    assert before["zk_server_state"] == "standalone"
    float(before["zk_avg_latency"])
    for k in required[2:]:
        if k != "zk_avg_latency":
            int(before[k])

    kazoo.ensure_path("/mntr")
    kazoo.create("/mntr/eph", b"12345", ephemeral=True)
    kazoo.get("/mntr", watch=lambda e: None)
    kazoo.get_children("/mntr", watch=lambda e: None)
    after = parse_mntr(flw(zs.port, "mntr"))

    def delta(k: str) -> int:
        return int(after[k]) - int(before[k])

    assert delta("zk_znode_count") == 2
    assert delta("zk_ephemerals_count") == 1
    assert delta("zk_watch_count") == 2
    assert delta("zk_approximate_data_size") == len("/mntr") + len("/mntr/eph") + 5
    assert int(after["zk_global_sessions"]) >= 1
    assert int(after["zk_num_alive_connections"]) >= 2  # kazoo + this one
    assert delta("zk_packets_received") >= 4
    assert int(after["zk_open_file_descriptor_count"]) > 0


def test_watch_commands(zs: ServerThread, kazoo) -> None:
    kazoo.ensure_path("/w/child")
    kazoo.get("/w", watch=lambda e: None)  # data watch
    kazoo.exists("/w-missing", watch=lambda e: None)  # exist watch
    kazoo.get_children("/w/child", watch=lambda e: None)  # child watch
    sid = f"0x{kazoo.client_id[0]:x}"

    wchs = flw(zs.port, "wchs")
    m = re.match(r"\A(\d+) connections watching (\d+) paths\nTotal watches:(\d+)\n\Z", wchs)
    assert m, wchs
    assert int(m[1]) >= 1 and int(m[2]) >= 3 and int(m[3]) >= 3

    wchc = flw(zs.port, "wchc")
    assert wchc.endswith("\n\n") or wchc == "\n"
    blocks = wchc.strip("\n").split("\n0x")
    mine = next((b for b in blocks if b.lstrip("0x").split("\n")[0] == sid[2:]), None)
    assert mine is not None, wchc
    assert set(mine.split("\n")[1:]) >= {"\t/w", "\t/w-missing", "\t/w/child"}

    wchp = flw(zs.port, "wchp")
    assert wchp.endswith("\n")
    by_path: dict[str, list[str]] = {}
    current = None
    for line in wchp.strip("\n").splitlines():
        if line.startswith("\t"):
            by_path[current].append(line[1:])
        else:
            current = line
            by_path[current] = []
    for p in ("/w", "/w-missing", "/w/child"):
        assert sid in by_path.get(p, []), wchp


def test_dump(zs: ServerThread, kazoo) -> None:
    kazoo.ensure_path("/dump")
    kazoo.create("/dump/e1", b"", ephemeral=True)
    sid = f"0x{kazoo.client_id[0]:x}"
    text = flw(zs.port, "dump")
    lines = text.splitlines()
    assert lines[0] == "SessionTracker dump:"
    assert re.match(r"^Session Sets \(\d+\)/\(\d+\):$", lines[1]), lines[1]
    date = r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d \S+ \d{4}"
    i = lines.index("ephemeral nodes dump:")
    for ln in lines[2:i]:
        assert re.match(rf"^(\d+ expire at {date}:|\t0x[0-9a-f]+)$", ln), ln
    assert f"\t{sid}" in lines[2:i]
    assert re.match(r"^Sessions with Ephemerals \(\d+\):$", lines[i + 1])
    j = lines.index("Connections dump:")
    eph = lines[i + 2 : j]
    k = eph.index(f"{sid}:")
    assert "\t/dump/e1" in eph[k + 1 :]
    assert re.match(r"^Connections Sets \(\d+\)/\(\d+\):$", lines[j + 1])
    assert any(
        re.match(rf"^\tip: /127\.0\.0\.1:\d+ sessionId: {sid}$", ln) for ln in lines[j + 2 :]
    ), text


def test_conf(zs: ServerThread) -> None:
    text = flw(zs.port, "conf")
    assert text.endswith("\n")
    kv = dict(line.split("=", 1) for line in text.splitlines())
    assert list(kv) == [
        "clientPort",
        "secureClientPort",
        "dataDir",
        "dataDirSize",
        "dataLogDir",
        "dataLogSize",
        "tickTime",
        "maxClientCnxns",
        "minSessionTimeout",
        "maxSessionTimeout",
        "clientPortListenBacklog",
        "serverId",
    ]
    cfg = zs.config
    assert int(kv["clientPort"]) == zs.port
    assert kv["dataDir"] == cfg.data_dir
    assert int(kv["tickTime"]) == cfg.tick_time
    assert int(kv["maxClientCnxns"]) == cfg.max_client_cnxns
    assert int(kv["minSessionTimeout"]) == cfg.effective_min_session_timeout
    assert int(kv["maxSessionTimeout"]) == cfg.effective_max_session_timeout
    int(kv["dataDirSize"]), int(kv["dataLogSize"]), int(kv["serverId"])


def test_dirs(zs: ServerThread) -> None:
    (p := __import__("pathlib").Path(zs.config.data_dir) / "probe.bin").write_bytes(b"x" * 1234)
    try:
        m = re.match(r"\Adatadir_size: (\d+)\nlogdir_size: (\d+)\n\Z", flw(zs.port, "dirs"))
        assert m
        assert int(m[1]) >= 1234 and int(m[2]) >= 1234  # one directory for both here
    finally:
        p.unlink()


def test_envi(zs: ServerThread) -> None:
    text = flw(zs.port, "envi")
    lines = text.splitlines()
    assert lines[0] == "Environment:"
    kv = dict(line.split("=", 1) for line in lines[1:])
    assert kv["zookeeper.version"] == FULL_VERSION
    assert kv["python.version"] == platform.python_version()
    assert kv["os.name"] == platform.system()
    for k in (
        "host.name",
        "os.arch",
        "os.version",
        "user.name",
        "user.home",
        "user.dir",
        "os.memory.free",
        "os.memory.max",
        "os.memory.total",
    ):
        assert kv.get(k), k
    assert not any(k.startswith("java.") for k in kv)


def test_kazoo_server_version(zs: ServerThread, kazoo) -> None:
    assert kazoo.server_version() == (3, 8, 0)


def test_trace_mask(zs: ServerThread) -> None:
    assert flw(zs.port, "gtmk") == "306"
    try:
        assert send_raw(zs.port, b"stmk" + struct.pack(">q", 0x1FF)) == b"511"
        assert flw(zs.port, "gtmk") == "511"
        # like ZooKeeper: the mask must come with the command, else no answer
        assert send_raw(zs.port, b"", chunks=[b"stmk", struct.pack(">q", 7)], pause=0.3) == b""
        assert flw(zs.port, "gtmk") == "511"
    finally:
        send_raw(zs.port, b"stmk" + struct.pack(">q", 306))


def test_hash_answers_and_closes(zs: ServerThread, kazoo) -> None:
    # DigestCommand: "<hex zxid>: <digest>" for every 128th zxid (digest.enabled)
    kazoo.ensure_path("/hash-test")
    for _ in range(130):
        kazoo.set("/hash-test", b"x")
    lines = flw(zs.port, "hash").splitlines()
    assert lines and all(re.fullmatch(r"[0-9a-f]+: -?[0-9]+", ln) for ln in lines)
    zxids = [int(ln.split(":")[0], 16) for ln in lines]
    assert all(z % 128 == 0 for z in zxids) and zxids == sorted(zxids)


def test_reset_commands(zs: ServerThread, kazoo) -> None:
    for i in range(5):
        kazoo.exists(f"/reset-{i}")
    m = SRVR_RE.match(flw(zs.port, "srvr"))
    assert m and int(m["recv"]) >= 6
    assert flw(zs.port, "srst") == "Server stats reset.\n"
    m = SRVR_RE.match(flw(zs.port, "srvr"))
    assert m, "srvr after srst"
    assert int(m["recv"]) <= 3  # the srvr itself, maybe a ping
    assert m["min"] == "0" and m["max"] == "0" and m["avg"] == "0.0"

    kport = kazoo._connection._socket.getsockname()[1]

    def recved() -> int:
        for c in zs.server.connections:
            if c.peer[1] == kport:
                return c.packets_received
        raise AssertionError("kazoo's connection is gone")

    assert zs.call(recved) >= 5
    assert flw(zs.port, "crst") == "Connection stats reset.\n"
    assert zs.call(recved) <= 1


def test_whitelist_refusal(zs: ServerThread) -> None:
    cfg = zs.config
    saved = cfg.four_letter_words

    def restrict() -> None:
        cfg.four_letter_words = frozenset({"ruok"})

    zs.call(restrict)
    try:
        for word in ("mntr", "stat", "envi", "stmk", "wchc"):
            assert (
                flw(zs.port, word)
                == f"{word} is not executed because it is not in the whitelist.\n"
            )
        assert flw(zs.port, "ruok") == "imok"
        assert flw(zs.port, "srvr").startswith("Zookeeper version: 3.8.0-")  # always enabled
    finally:
        zs.call(lambda: setattr(cfg, "four_letter_words", saved))
    assert flw(zs.port, "mntr").startswith("zk_version\t")


def test_word_split_across_reads(zs: ServerThread) -> None:
    assert send_raw(zs.port, b"", chunks=[b"ru", b"ok"], pause=0.2) == b"imok"


def test_not_a_word_falls_through_to_protocol(zs: ServerThread) -> None:
    req = encode_connect_request(ConnectRequest(0, 0, 10000, 0, bytes(16)))
    assert not req[:4].isalpha()  # a frame length, not a word
    with socket.create_connection((HOST, zs.port), timeout=IO_TIMEOUT) as s:
        # byte by byte, so the length arrives in pieces too
        for b in req:
            s.sendall(bytes([b]))
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            d = s.recv(4096)
            assert d, "server closed instead of answering the ConnectRequest"
            buf += d
    resp, _ro = decode_connect_response(buf[4:])
    assert resp.sessionId != 0 and resp.timeOut == 10000


def test_unknown_word_is_a_length(zs: ServerThread) -> None:
    # "abcd" is no command: it is read as a frame length (0x61626364, far beyond
    # jute.maxbuffer) and the connection is dropped without a text answer
    with socket.create_connection((HOST, zs.port), timeout=IO_TIMEOUT) as s:
        s.sendall(b"abcd")
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
    assert data == b""


def test_telnet_close_sequence(zs: ServerThread) -> None:
    assert send_raw(zs.port, b"\xff\xf4\xff\xfd") == b""


# ------------------------------------------------------------- pure helpers
@pytest.mark.parametrize(
    ("x", "s"),
    [
        (0.0, "0.0"),
        (2.125, "2.125"),
        (0.3333, "0.3333"),
        (70.5, "70.5"),
        (4.0, "4.0"),
        (1e7, "1.0E7"),
        (12345678.5, "1.23456785E7"),
        (0.0001, "1.0E-4"),
    ],
)
def test_java_double(x: float, s: str) -> None:
    assert java_double(x) == s


def test_java_address() -> None:
    assert java_address(("127.0.0.1", 2181)) == "/127.0.0.1:2181"
    assert java_address(("::1", 2181, 0, 0)) == "/0:0:0:0:0:0:0:1:2181"
    assert java_address(("::ffff:10.0.0.1", 5)) == "/10.0.0.1:5"
