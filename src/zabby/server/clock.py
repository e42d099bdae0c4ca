"""Where a server reads the time.

Every clock reading of the request path and session bookkeeping goes through a
`Clock`, so that something other than the machine can keep time: the whole-server
simulation (`zabby.sim`) runs several members on one virtual-time event loop, each
with a clock of its own that can run fast or slow or jump. The timers themselves
(``asyncio.sleep``, ``call_later``) use the event loop's clock, which on a real
loop is the same monotonic clock.
"""

from __future__ import annotations

import time


class Clock:
    """The machine's clocks (what a server uses unless given another)."""

    __slots__ = ()

    def monotonic_ns(self) -> int:
        """Session deadlines, timeouts, latencies: never goes back."""
        return time.monotonic_ns()

    def time_ns(self) -> int:
        """Wall time: znode ctime/mtime, txn header times, TTLs, `cons`."""
        return time.time_ns()


SYSTEM_CLOCK = Clock()
