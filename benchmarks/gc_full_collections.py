#!/usr/bin/env python3
"""What the cyclic GC's full collections cost a growing tree, and whether a server's
client paths leave cyclic garbage (issue 14 item 6; docs/ARCHITECTURE.md).

Not a test. Two measurements, in process:

- default: builds --znodes znodes of 100 B by applying creates (prepare + apply), as a
  server under create load does, and records every full (generation 2) collection
  with gc.callbacks; `--freeze-every N` calls gc.freeze() every N creates (and keeps
  the objects frozen), as the server's snapshot fork does every snapCount txns
  (server.durability.GroupCommitter.keep_frozen).
- `--cycles`: a real standalone server on uvloop and 127.0.0.1, 200 sessions that
  create an ephemeral, set a watch and close, then 200 that drop their connection
  and expire; with the cyclic GC off meanwhile, then one collection: how many objects
  only it could free (what freezing would keep alive for good).

    PYTHONPATH=src python benchmarks/gc_full_collections.py --znodes 600000 [--freeze-every 100000]
    PYTHONPATH=src python benchmarks/gc_full_collections.py --cycles
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from snapshot_pause import OPEN, PER_DIR, Builder  # noqa: E402

from zabby.wire import Op  # noqa: E402
from zabby.wire.records import CreateRequest, PathWatchRequest  # noqa: E402


def grow(znodes: int, freeze_every: int) -> None:
    pauses: list[float] = []
    started: list[float] = []

    def cb(phase: str, info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif info["generation"] == 2:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(cb)
    b = Builder()
    value = b"v" * 100
    b.run(Op.CREATE, CreateRequest("/r", b"", OPEN, 0))
    t0 = time.perf_counter()
    for i in range(znodes):
        if i % PER_DIR == 0:
            b.run(Op.CREATE, CreateRequest(f"/r/d{i // PER_DIR:03d}", b"", OPEN, 0))
        b.run(Op.CREATE, CreateRequest(f"/r/d{i // PER_DIR:03d}/n{i:07d}", value, OPEN, 0))
        if freeze_every and i % freeze_every == freeze_every - 1:
            gc.freeze()
    gc.callbacks.remove(cb)
    print(f"{znodes:,} creates in {time.perf_counter() - t0:.1f} s, freeze every "
          f"{freeze_every or 'never'}: {len(pauses)} full collections, longest "
          f"{max(pauses or [0]):.1f} ms, all {sum(pauses):.0f} ms; load {os.getloadavg()[0]:.1f}")


async def cycles() -> None:
    from zabby.server.config import ServerConfig
    from zabby.server.core import ZabbyServer
    from zabby.testing.rawclient import OPEN_ACL_UNSAFE, RawClient

    server = ZabbyServer(ServerConfig(max_client_cnxns=0, client_port=0,
                                      client_port_address="127.0.0.1"))
    await server.start()

    def clients(close: bool, base: int) -> None:
        for i in range(200):
            c = RawClient("127.0.0.1", server.port, timeout_ms=4000)
            c.connect()
            c.request(Op.CREATE, CreateRequest(f"/k{base + i}", b"x", OPEN_ACL_UNSAFE, 1))
            c.request(Op.GET_DATA, PathWatchRequest(f"/k{base + i}", True))
            if close:
                c.close()
            else:
                c.drop()

    try:
        for close in (True, False):
            gc.collect()
            gc.disable()
            await asyncio.to_thread(clients, close, 1000 if close else 0)
            # closed: a moment; dropped: until the sessions expire (4 s + a tick)
            await asyncio.sleep(0.3 if close else 9)
            gc.set_debug(gc.DEBUG_SAVEALL)
            n = gc.collect()
            gc.set_debug(0)
            gc.enable()
            kinds = Counter(type(o).__name__ for o in gc.garbage).most_common(8)
            gc.garbage.clear()
            print(f"200 sessions {'closed' if close else 'dropped and expired'}: "
                  f"{n} objects only the cyclic GC could free {kinds}; sessions left "
                  f"{len(server.sessions.sessions)}")
    finally:
        await server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--znodes", type=int, default=600_000)
    ap.add_argument("--freeze-every", type=int, default=0)
    ap.add_argument("--cycles", action="store_true")
    args = ap.parse_args()
    if args.cycles:
        import uvloop

        uvloop.install()
        asyncio.run(cycles())
    else:
        grow(args.znodes, args.freeze_every)


if __name__ == "__main__":
    main()
