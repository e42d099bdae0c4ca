"""One-way cuts on top of faults.NetLab (kept out of faults.py, which is being moved
into a package): `cut_one_way(a, b)` loses every packet a sends to b while b's
packets still reach a, and `prove_one_way` shows it with UDP datagrams.

How: the same permanent neighbour entry to a MAC that does not exist as NetLab's
two-way cut, but on a's side only. b's packets reach a, and a still learns b's MAC
from b's ARP requests for its replies -- but a's own neighbour entry for b wins, so
whatever a sends to b (data, TCP acknowledgements, SYN-ACKs) is lost. TCP between
them therefore stalls in both directions soon after the cut (b's data is delivered
but never acknowledged); what differs from a two-way cut is the first moments and
anything a reads without answering.
"""

from __future__ import annotations

import contextlib
import socket

from zabby.verify.netlab import BOGUS_MAC, NetLab, _ip, in_netns


class OneWayNetLab(NetLab):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.one_way: set[tuple] = set()

    def cut_one_way(self, a, b) -> None:
        """a -> b lost; b -> a delivered."""
        ns, dev = self._where(a)
        _ip("-n", ns, "neigh", "replace", self.addr(b), "lladdr", BOGUS_MAC, "dev", dev,
            "nud", "permanent")
        self.one_way.add((a, b))

    def heal(self) -> None:
        super().heal()
        for a, b in list(self.one_way):
            ns, dev = self._where(a)
            _ip("-n", ns, "neigh", "del", self.addr(b), "dev", dev, check=False)
        self.one_way.clear()

    def _ns(self, node) -> str:
        return self._where(node)[0]

    def delivers(self, a, b, timeout: float = 0.5) -> bool:
        """Does a UDP datagram from a reach b now?"""
        with in_netns(self._ns(b)):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.closing(rx):
            rx.bind((self.addr(b), 0))
            rx.settimeout(timeout)
            port = rx.getsockname()[1]
            with in_netns(self._ns(a)):
                tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with contextlib.closing(tx):
                token = b"probe"
                for _ in range(3):
                    with contextlib.suppress(OSError):
                        tx.sendto(token, (self.addr(b), port))
                    try:
                        data = rx.recv(64)
                    except TimeoutError:
                        continue
                    if data == token:
                        return True
        return False

    def prove_one_way(self, a, b) -> None:
        assert not self.delivers(a, b), f"the cut {a} -> {b} lets packets through"
        assert self.delivers(b, a), f"the cut {a} -> {b} also blocks {b} -> {a}"
