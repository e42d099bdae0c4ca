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

    # the machine's own functions, not methods wrapping them: read on every request
    # (monotonic_ns: session deadlines, timeouts, latencies; time_ns: wall time for
    # znode ctime/mtime, txn header times, TTLs, `cons`)
    monotonic_ns = staticmethod(time.monotonic_ns)
    time_ns = staticmethod(time.time_ns)


SYSTEM_CLOCK = Clock()
