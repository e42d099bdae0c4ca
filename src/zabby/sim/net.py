"""The simulated network: TCP-like byte streams between simulated hosts.

A connection is two one-way pipes. Bytes written arrive in order after a latency
drawn from the pipe's own random stream (seeded from the run's seed and the
connection's number, so the order in which different senders write does not
change anyone's draws). What a cut direction carries waits in the pipe, as TCP
retransmits, and arrives when the cut heals -- unless a side gave up on the
connection first, in which case its close is what arrives. Closing sends what
was written, then the end of the stream; aborting (or the death of a process)
drops what was not yet delivered and resets the connection.

Faults the simulation drives: one-way or two-way cuts between hosts, resets of
single connections, and latency storms (a period where every delivery on chosen
hosts is slow).
"""

from __future__ import annotations

import asyncio
import errno
import random
from collections import deque
from typing import Any

from .loop import PROCESS, Process, SimLoop

_DATA, _EOF, _RESET = 0, 1, 2


class _Listener:
    def __init__(self, net: Network, proc: Process, factory, addr: tuple[str, int]) -> None:
        self.net = net
        self.proc = proc
        self.factory = factory
        self.addr = addr
        self.sockets: list[Any] = []

    def close(self) -> None:
        if self.net.listeners.get(self.addr) is self:
            del self.net.listeners[self.addr]

    async def wait_closed(self) -> None:
        return None

    def is_serving(self) -> bool:
        return self.net.listeners.get(self.addr) is self


class _Pipe:
    """One direction of a connection: src transport -> dst transport."""

    def __init__(self, net: Network, src: SimTransport, dst: SimTransport, rng: random.Random):
        self.net = net
        self.src = src
        self.dst = dst
        self.rng = rng
        self.queue: deque[tuple[float, int, Any]] = deque()
        self.last_due = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.bytes = 0

    def push(self, kind: int, payload: Any = None) -> None:
        net = self.net
        due = max(net.loop.time() + net.latency(self.rng, self.src.host, self.dst.host),
                  self.last_due)
        self.last_due = due
        self.queue.append((due, kind, payload))
        self.schedule()

    def drop_pending(self) -> None:
        self.queue.clear()

    def schedule(self) -> None:
        if self.timer is not None or not self.queue:
            return
        if self.net.blocked(self.src.host, self.dst.host):
            return  # held until the cut heals (Network.heal reschedules)
        if self.dst.closed_by_peer or self.dst.proc.dead:
            self.queue.clear()
            return
        self.timer = self.net.loop.call_at(self.queue[0][0], self._deliver,
                                           context=self.dst.proc.context)

    def _deliver(self) -> None:
        self.timer = None
        net = self.net
        if net.blocked(self.src.host, self.dst.host):
            return
        now = net.loop.time()
        dst = self.dst
        q = self.queue
        while q and q[0][0] <= now:
            if dst.closed_by_peer:
                q.clear()
                return
            _, kind, payload = q[0]
            if kind == _DATA:
                if dst.reading_paused:
                    return  # resume_reading reschedules
                q.popleft()
                self.bytes += len(payload)
                net.bytes_delivered += len(payload)
                if not dst.lost:
                    dst.protocol.data_received(payload)
            else:
                q.popleft()
                dst.peer_closed(reset=kind == _RESET)
                return
        self.schedule()


class SimTransport(asyncio.Transport):
    """One end of a simulated connection, owned by `proc` on `host`."""

    def __init__(self, net: Network, proc: Process, host: str, port: int, protocol) -> None:
        super().__init__()
        self.net = net
        self.proc = proc
        self.host = host
        self.port = port
        self.protocol = protocol
        self.out: _Pipe | None = None  # set by Network.connect
        self.peer: SimTransport | None = None
        self.closing = False  # we closed or aborted
        self.closed_by_peer = False  # the other end's close or reset arrived
        self.lost = False  # connection_lost was called on our protocol
        self.reading_paused = False
        self._high = 64 * 1024

    # ------------------------------------------------------------ asyncio API
    def get_extra_info(self, name, default=None):
        if name == "peername":
            return (self.peer.host, self.peer.port) if self.peer is not None else default
        if name == "sockname":
            return (self.host, self.port)
        return default

    def is_closing(self) -> bool:
        return self.closing or self.closed_by_peer

    def write(self, data) -> None:
        if self.closing or self.closed_by_peer or not data:
            return
        self.out.push(_DATA, bytes(data))

    def writelines(self, list_of_data) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, self._high)

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        if high is not None:
            self._high = high

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            if self.peer is not None and self.peer.out is not None:
                self.peer.out.schedule()

    def is_reading(self) -> bool:
        return not self.reading_paused

    def close(self) -> None:
        if self.closing or self.closed_by_peer:
            return
        self.closing = True
        self.out.push(_EOF)
        self._lose(None)

    def abort(self) -> None:
        if self.closing and self.lost:
            return
        already = self.closing or self.closed_by_peer
        self.closing = True
        if not already:
            self.out.drop_pending()
            self.out.push(_RESET)
        self._lose(None)

    # ------------------------------------------------------------ internals
    def _lose(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.net.live.discard(self)
        self.net.loop.call_soon(self.protocol.connection_lost, exc, context=self.proc.context)

    def peer_closed(self, reset: bool) -> None:
        """The other end's close (end of stream) or reset arrived."""
        self.closed_by_peer = True
        if self.lost:
            return
        if not reset:
            eof = getattr(self.protocol, "eof_received", None)
            if eof is not None:
                eof()
        self.lost = True
        self.net.live.discard(self)
        self.protocol.connection_lost(None if not reset else ConnectionResetError(
            errno.ECONNRESET, "connection reset by peer"))

    def crash(self) -> None:
        """The owning process died: the other end sees a reset (the kernel's RST
        for a killed process's socket, or silence until the cut heals)."""
        self.lost = True
        self.net.live.discard(self)
        if not self.closing and not self.closed_by_peer:
            self.closing = True
            self.out.drop_pending()
            self.out.push(_RESET)


class Network:
    """Hosts, listeners, connections and the faults between them."""

    def __init__(self, loop: SimLoop, seed: int) -> None:
        self.loop = loop
        self.seed = seed
        self.listeners: dict[tuple[str, int], _Listener] = {}
        self.live: set[SimTransport] = set()
        self.all_pipes: list[_Pipe] = []
        self._cut: set[tuple[str, str]] = set()  # (from host, to host) that loses packets
        self.slow: dict[str, float] = {}  # host -> extra latency (s) in a storm
        self.delay: dict[tuple[str, str], float] = {}  # (from, to) -> fixed extra latency
        self.base_latency = (0.00005, 0.0005)
        self.spike_chance = 0.002
        self.conn_ids = 0
        self.bytes_delivered = 0
        # per host, so that one host's connections get the same ports (and so the
        # same random streams) however its connects interleave with other hosts'
        self.ephemeral_ports: dict[str, int] = {}
        loop.network = self

    # ------------------------------------------------------------ latency
    def latency(self, rng: random.Random, src: str, dst: str) -> float:
        lo, hi = self.base_latency
        d = rng.uniform(lo, hi)
        if rng.random() < self.spike_chance:
            d += rng.uniform(0.005, 0.15)  # a retransmission, a GC pause in the kernel...
        extra = self.slow.get(src, 0.0) + self.slow.get(dst, 0.0)
        if extra:
            d += rng.uniform(0, extra)
        return d + self.delay.get((src, dst), 0.0)

    # ------------------------------------------------------------ faults
    def blocked(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cut

    def cut(self, src: str, dst: str) -> None:
        """Lose every packet from `src` to `dst` (one way)."""
        self._cut.add((src, dst))

    def heal(self) -> None:
        self._cut.clear()
        for pipe in self.all_pipes:
            pipe.schedule()
        self.all_pipes = [p for p in self.all_pipes if p.queue or not (
            p.src.lost and p.dst.lost)]

    def cuts(self) -> set[tuple[str, str]]:
        return set(self._cut)

    def reset_one(self, rng: random.Random) -> bool:
        """Reset a random live connection (both ends see it close)."""
        live = sorted(self.live, key=lambda t: (t.host, t.port, t.peer.host if t.peer else "",
                                                 t.peer.port if t.peer else 0))
        if not live:
            return False
        t = rng.choice(live)
        if t.lost or t.closing:
            return False
        t.abort()
        return True

    def crash(self, proc: Process) -> None:
        """`proc` died: its listeners close, its connections reset."""
        for addr, lst in list(self.listeners.items()):
            if lst.proc is proc:
                del self.listeners[addr]
        for t in sorted(self.live, key=lambda t: (t.host, t.port)):
            if t.proc is proc:
                t.crash()

    # ------------------------------------------------------------ sockets
    def listen(self, factory, host: str, port: int) -> _Listener:
        proc = PROCESS.get()
        if proc is None:
            raise RuntimeError("listen outside a simulated process")
        addr = (host, int(port))
        old = self.listeners.get(addr)
        if old is not None and not old.proc.dead:
            raise OSError(errno.EADDRINUSE, f"address in use: {host}:{port}")
        lst = _Listener(self, proc, factory, addr)
        self.listeners[addr] = lst
        return lst

    async def connect(self, factory, host: str, port: int):
        proc = PROCESS.get()
        if proc is None:
            raise RuntimeError("connect outside a simulated process")
        me = proc.host
        port = int(port)
        mine_port = self.ephemeral_ports.get(me, 40000) + 1
        self.ephemeral_ports[me] = mine_port
        # the connection's random streams, from its addresses alone (see above)
        rng = random.Random(f"{self.seed}/{me}:{mine_port}>{host}:{port}")
        back = random.Random(f"{self.seed}/{host}:{port}>{me}:{mine_port}")
        self.conn_ids += 1
        # the handshake: a SYN that a cut loses is retried (as TCP does) for a while
        waited = 0.0
        while self.blocked(me, host) or self.blocked(host, me):
            if waited >= 3.0:
                raise TimeoutError(f"connect to {host}:{port} timed out")
            await asyncio.sleep(0.5)
            waited += 0.5
        await asyncio.sleep(2 * self.latency(rng, me, host))
        lst = self.listeners.get((host, port))
        if lst is None or lst.proc.dead:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"connection refused: {host}:{port}")
        mine = SimTransport(self, proc, me, mine_port, None)
        theirs = SimTransport(self, lst.proc, host, port, None)
        mine.peer, theirs.peer = theirs, mine
        mine.out = _Pipe(self, mine, theirs, rng)
        theirs.out = _Pipe(self, theirs, mine, back)
        self.all_pipes += [mine.out, theirs.out]
        self.live.add(mine)
        self.live.add(theirs)
        theirs.protocol = lst.proc.context.run(lst.factory)
        self.loop.call_soon(theirs.protocol.connection_made, theirs, context=lst.proc.context)
        mine.protocol = factory()
        mine.protocol.connection_made(mine)
        return mine, mine.protocol
