"""Network namespaces for partition faults (moved here from tests/ensemble/faults.py).

``NetLab`` puts each member in its own network namespace, with a veth into a bridge
in a namespace of the lab's own, where the clients live (addresses 10.77.0.0/24,
which exist only inside these namespaces). A link between two namespaces is cut by a
permanent neighbour entry on each side that maps the other's address to a MAC that
does not exist -- established TCP connections included -- and healed by deleting the
entries. Sockets are made inside a namespace by switching only the calling thread
(setns(2)), so no helper process is needed. Needs root and iproute2's ``ip``;
``netns_unavailable()`` says why not, or None.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from zabby.testing.rawclient import RawClient
from zabby.testing.servers import ZabbyEnsemble, ZabbyServer, ZooKeeperServer

__all__ = [
    "NetLab",
    "NetnsEnsemble",
    "NetnsServer",
    "NetnsUnavailable",
    "NetnsZooKeeperServer",
    "NsRawClient",
    "four_letter_word_in",
    "in_netns",
    "netns_unavailable",
]


def netns_unavailable() -> str | None:
    """Why partitions cannot be made here (not root, no ``ip``), or None."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not os.path.exists("/proc/thread-self/ns/net"):
        return "no /proc/thread-self/ns/net (not Linux?)"
    return None


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the block with the calling thread in network namespace ``name`` (None: stay)."""
    if name is None:
        yield
        return
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({name}): {os.strerror(e)}")
        try:
            yield
        finally:
            if _libc.setns(back, _CLONE_NEWNET) != 0:  # pragma: no cover
                e = ctypes.get_errno()
                raise OSError(e, f"setns(back): {os.strerror(e)}")
    finally:
        os.close(target)
        os.close(back)


def four_letter_word_in(ns: str | None, host: str, port: int, word: str,
                        timeout: float = 1.0) -> str:
    import socket

    with in_netns(ns):
        s = socket.create_connection((host, port), timeout=timeout)
    with s:
        s.sendall(word.encode())
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode("utf-8", "replace")


class NetnsUnavailable(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


_lab_counter = itertools.count()
BOGUS_MAC = "02:00:5e:ff:ff:01"


class NetLab:
    """A bridge namespace (clients, 10.77.0.254) and one namespace per member
    (10.77.0.i). Nodes are member ids, or "C" for the clients' side."""

    SUBNET = "10.77.0"

    def __init__(self, n: int) -> None:
        tag = f"zbf{os.getpid()}-{next(_lab_counter)}"
        self.br = f"{tag}-br"
        self.ns = {i: f"{tag}-m{i}" for i in range(1, n + 1)}
        self.created: list[str] = []
        self.cuts: set[frozenset] = set()
        self.one_way: set[tuple] = set()

    def addr(self, node) -> str:
        return f"{self.SUBNET}.254" if node == "C" else f"{self.SUBNET}.{node}"

    def _where(self, node) -> tuple[str, str]:
        return (self.br, "br0") if node == "C" else (self.ns[node], "eth0")

    def setup(self) -> None:
        p = _ip("netns", "add", self.br, check=False)
        if p.returncode != 0:
            if "Operation not permitted" in p.stderr and os.environ.get("CI") != "true":
                raise NetnsUnavailable(p.stderr.strip())
            raise RuntimeError(f"ip netns add: {p.stderr.strip()}")
        self.created.append(self.br)
        _ip("-n", self.br, "link", "set", "lo", "up")
        _ip("-n", self.br, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.br, "link", "set", "br0", "up")
        _ip("-n", self.br, "addr", "add", f"{self.addr('C')}/24", "dev", "br0")
        for i, ns in self.ns.items():
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.br, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", self.br, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def cut(self, a, b) -> None:
        """Both directions between a and b, established connections included."""
        for x, y in ((a, b), (b, a)):
            ns, dev = self._where(x)
            _ip("-n", ns, "neigh", "replace", self.addr(y), "lladdr", BOGUS_MAC, "dev", dev,
                "nud", "permanent")
        self.cuts.add(frozenset((a, b)))

    def partition(self, *groups) -> None:
        """Cut every link between different groups (nodes in no group keep all links)."""
        for g, h in itertools.combinations(groups, 2):
            for a in g:
                for b in h:
                    self.cut(a, b)

    def reachable(self, pairs, timeout: float = 0.5) -> dict[tuple, bool]:
        """For each (a, b): does a UDP datagram sent from a's namespace to b's address
        arrive in b's namespace now? All pairs are probed at once (one wait of at most
        ``timeout`` seconds, each datagram sent three times), so a proof costs no more
        for a 5-member partition than for one link."""
        pairs = list(dict.fromkeys(tuple(p) for p in pairs))
        rxs: list[socket.socket] = []
        txs: list[socket.socket] = []
        got: dict[tuple, bool] = {p: False for p in pairs}
        try:
            plan = []
            for k, (a, b) in enumerate(pairs):
                with in_netns(self._where(b)[0]):
                    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                rxs.append(rx)
                rx.bind((self.addr(b), 0))
                rx.setblocking(False)
                with in_netns(self._where(a)[0]):
                    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                txs.append(tx)
                plan.append((tx, rx, (self.addr(b), rx.getsockname()[1]), f"probe{k}".encode()))
            deadline = time.monotonic() + timeout
            sends = 0
            while True:
                if sends < 3:
                    for tx, _, dest, token in plan:
                        with contextlib.suppress(OSError):
                            tx.sendto(token, dest)
                    sends += 1
                for (_tx, rx, _, token), p in zip(plan, pairs, strict=True):
                    while not got[p]:
                        try:
                            data = rx.recv(64)
                        except (BlockingIOError, InterruptedError):
                            break
                        got[p] = data == token
                if all(got.values()) or time.monotonic() >= deadline:
                    return got
                time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        finally:
            for s in rxs + txs:
                s.close()

    def prove_cut(self, pairs=None, timeout: float = 0.5) -> None:
        """Raise AssertionError unless every cut link (default: all of ``cuts``) loses
        datagrams in both directions: the neighbour-table cut is really in place."""
        pairs = [tuple(p) for p in (self.cuts if pairs is None else pairs)]
        both = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
        leaked = [p for p, ok in self.reachable(both, timeout).items() if ok]
        if leaked:
            raise AssertionError(f"the cut does not block traffic: a datagram went "
                                 f"{', '.join(f'{a} -> {b}' for a, b in leaked)}")

    def prove_linked(self, pairs, timeout: float = 2.0) -> None:
        """Raise AssertionError unless datagrams pass both ways on every given link
        (after a heal; ``timeout`` allows for the neighbour entry to be re-learned)."""
        pairs = [tuple(p) for p in pairs]
        both = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
        lost = [p for p, ok in self.reachable(both, timeout).items() if not ok]
        if lost:
            raise AssertionError(f"no traffic on a link that should be whole: "
                                 f"{', '.join(f'{a} -> {b}' for a, b in lost)}")

    def cut_one_way(self, a, b) -> None:
        """a -> b lost; b -> a delivered (moved here from tests/ensemble/harsh_net.py).

        The same permanent neighbour entry to a MAC that does not exist as ``cut``, on
        a's side only. b's packets reach a, and a still learns b's MAC from b's ARP
        requests -- but a's own entry for b wins, so whatever a sends to b (data, TCP
        acknowledgements, SYN-ACKs) is lost. TCP between them therefore stalls in both
        directions soon after the cut (b's data is delivered, never acknowledged); what
        differs from a two-way cut is the first moments and anything a reads without
        answering."""
        ns, dev = self._where(a)
        _ip("-n", ns, "neigh", "replace", self.addr(b), "lladdr", BOGUS_MAC, "dev", dev,
            "nud", "permanent")
        self.one_way.add((a, b))

    def delivers(self, a, b, timeout: float = 0.5) -> bool:
        """Does a UDP datagram from a reach b now?"""
        return self.reachable([(a, b)], timeout)[(a, b)]

    def prove_one_way(self, pairs=None, timeout: float = 0.5) -> None:
        """Raise AssertionError unless, for every one-way cut (a, b) (default: all of
        ``one_way``), a datagram from a to b is lost and one from b to a arrives."""
        pairs = [tuple(p) for p in (self.one_way if pairs is None else pairs)]
        got = self.reachable(pairs + [(b, a) for a, b in pairs], timeout)
        leaked = [f"{a} -> {b}" for a, b in pairs if got[(a, b)]]
        blocked = [f"{b} -> {a}" for a, b in pairs if not got[(b, a)]]
        if leaked:
            raise AssertionError(f"the one-way cut lets packets through: {', '.join(leaked)}")
        if blocked:
            raise AssertionError(f"a one-way cut also blocks the other direction: "
                                 f"{', '.join(blocked)}")

    def heal(self) -> list[tuple]:
        """Delete every cut, one-way ones included; returns the links healed (for
        ``prove_linked``)."""
        healed = [tuple(pair) for pair in self.cuts]
        for a, b in healed:
            for x, y in ((a, b), (b, a)):
                ns, dev = self._where(x)
                _ip("-n", ns, "neigh", "del", self.addr(y), "dev", dev, check=False)
        self.cuts.clear()
        for a, b in sorted(self.one_way, key=str):
            ns, dev = self._where(a)
            _ip("-n", ns, "neigh", "del", self.addr(b), "dev", dev, check=False)
            if frozenset((a, b)) not in map(frozenset, healed):
                healed.append((a, b))
        self.one_way.clear()
        return healed

    def cleanup(self) -> list[str]:
        errors = []
        for ns in reversed(self.created):
            p = _ip("netns", "del", ns, check=False)
            if p.returncode != 0:
                errors.append(f"{ns}: {p.stderr.strip()}")
        self.created.clear()
        return errors


class NetnsServer(ZabbyServer):
    """A zabby member run with ``ip netns exec``; 4lw from the clients' namespace."""

    def __init__(self, tmpdir, *, netns: str, host: str, client_ns: str, **cfg) -> None:
        self.netns = netns
        self.client_ns = client_ns
        super().__init__(tmpdir, start=False, clientPortAddress=host, **cfg)
        self.host = host

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command()]

    def four_letter_word(self, word: str, timeout: float = 1.0) -> str:
        return four_letter_word_in(self.client_ns, self.host, self.port, word, timeout)

    def serving(self) -> bool:
        try:
            out = self.four_letter_word("srvr")
        except OSError:
            return False
        return "Mode: " in out and "not currently serving" not in out


class NetnsZooKeeperServer(ZooKeeperServer):
    """An Apache ZooKeeper 3.8 member run with ``ip netns exec`` (differential tests)."""

    def __init__(self, tmpdir, *, netns: str, host: str, client_ns: str, **cfg) -> None:
        self.netns = netns
        self.client_ns = client_ns
        super().__init__(tmpdir, start=False, clientPortAddress=host, **cfg)
        self.host = host

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command()]

    four_letter_word = NetnsServer.four_letter_word
    serving = NetnsServer.serving


class NetnsEnsemble(ZabbyEnsemble):
    """Like ZabbyEnsemble, each member in its NetLab namespace (same ports everywhere);
    ``member_cls=NetnsZooKeeperServer`` makes it an Apache ZooKeeper ensemble."""

    def __init__(self, tmpdir, lab: NetLab, *, member_cls: type = NetnsServer, **cfg) -> None:
        self.dir = Path(tmpdir)
        self.lab = lab
        cp, qp, ep = 2181, 2888, 3888
        lines = {f"server.{i}": f"{lab.addr(i)}:{qp}:{ep}:participant;{lab.addr(i)}:{cp}"
                 for i in lab.ns}
        self.members = {}
        for i, ns in lab.ns.items():
            m = member_cls(self.dir / f"server{i}", netns=ns, host=lab.addr(i),
                            client_ns=lab.br, clientPort=cp, initLimit=10, syncLimit=5,
                            **lines, **cfg)
            (m.data_dir / "myid").write_text(f"{i}\n")
            self.members[i] = m

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(m.host, m.port) for m in self.members.values()]


class NsRawClient(RawClient):
    """A RawClient whose socket lives in network namespace ``ns`` (None: ours)."""

    def __init__(self, *a, ns: str | None = None, **kw) -> None:
        super().__init__(*a, **kw)
        self.ns = ns

    def open(self) -> None:
        with in_netns(self.ns):
            super().open()
