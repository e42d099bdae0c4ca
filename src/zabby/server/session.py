"""Sessions: ids, passwords, and expiry in tick-sized buckets.

Passwords are a deterministic function of the session id (as in ZooKeeper,
which seeds java.util.Random with ``id ^ 0xB3415C00``), so any server of an
ensemble can check a reconnecting client's password without shared state.
We use the same generator, so a password issued by zabby equals the one
Apache ZooKeeper would issue for that id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

_SUPER_SECRET: Final = 0xB3415C00
_MASK48: Final = (1 << 48) - 1
_MULT: Final = 0x5DEECE66D
CONTAINER_EPHEMERAL_OWNER = -(1 << 63)


def session_password(session_id: int) -> bytes:
    """16 bytes from a 48-bit LCG seeded by the id (java.util.Random's nextBytes)."""
    seed = ((session_id ^ _SUPER_SECRET) ^ _MULT) & _MASK48
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _MULT + 0xB) & _MASK48
        r = seed >> 16  # next(32), as unsigned
        for _ in range(4):
            if len(out) == 16:
                break
            b = r & 0xFF
            out.append(b)
            r >>= 8
    return bytes(out)


def initial_session_id(server_id: int, now_ms: int) -> int:
    """First session id of a server: its id in the top byte, the clock below."""
    sid = ((now_ms << 24) & 0xFFFF_FFFF_FFFF_FFFF) >> 8
    sid |= (server_id & 0xFF) << 56
    if sid >= 1 << 63:
        sid -= 1 << 64
    if sid == CONTAINER_EPHEMERAL_OWNER:
        sid += 1
    return sid


class Session:
    __slots__ = ("id", "timeout", "passwd", "conn", "expire_at", "closing", "auth")

    def __init__(self, session_id: int, timeout: int) -> None:
        self.id = session_id
        self.timeout = timeout
        self.passwd = session_password(session_id)
        # Any: compiled (mypyc), a field typed from `None` would refuse a connection
        self.conn: Any = None  # the ClientConnection now serving it, if any
        self.expire_at = 0
        self.closing = False
        self.auth: list = []

    def __repr__(self) -> str:
        return f"Session(0x{self.id & 0xFFFF_FFFF_FFFF_FFFF:x}, timeout={self.timeout})"


class SessionTracker:
    """Live sessions and their expiry, bucketed by tick as ZooKeeper's ExpiryQueue.

    Time is passed in (ms, monotonic): the tracker has no clock of its own.
    """

    def __init__(self, tick_ms: int, server_id: int, now_ms: int) -> None:
        self.tick = tick_ms
        self.sessions: dict[int, Session] = {}
        self._buckets: dict[int, set[Session]] = {}
        self._next_id = initial_session_id(server_id, now_ms)

    def _round(self, t: int) -> int:
        return (t // self.tick + 1) * self.tick

    def new_id(self) -> int:
        sid = self._next_id
        self._next_id += 1
        return sid

    def add(self, session_id: int, timeout: int, now_ms: int) -> Session:
        s = self.sessions.get(session_id)
        if s is None:
            s = Session(session_id, timeout)
            self.sessions[session_id] = s
        self.touch(s, now_ms, timeout)
        return s

    def get(self, session_id: int) -> Session | None:
        return self.sessions.get(session_id)

    def touch(self, s: Session, now_ms: int, timeout: int | None = None) -> bool:
        if s.closing:
            return False
        if timeout is not None:
            s.timeout = timeout
        new = self._round(now_ms + s.timeout)
        if new == s.expire_at:
            return True
        old = self._buckets.get(s.expire_at)
        if old is not None:
            old.discard(s)
            if not old:
                del self._buckets[s.expire_at]
        s.expire_at = new
        self._buckets.setdefault(new, set()).add(s)
        return True

    def remove(self, session_id: int) -> Session | None:
        s = self.sessions.pop(session_id, None)
        if s is not None:
            b = self._buckets.get(s.expire_at)
            if b is not None:
                b.discard(s)
                if not b:
                    del self._buckets[s.expire_at]
        return s

    def expired(self, now_ms: int) -> Iterator[Session]:
        """Sessions whose deadline has passed; they are marked closing."""
        due = sorted(t for t in self._buckets if t <= now_ms)
        for t in due:
            for s in self._buckets.pop(t):
                s.closing = True
                s.expire_at = 0  # in no bucket now (a later touch puts it back in one)
                yield s

    def __len__(self) -> int:
        return len(self.sessions)
