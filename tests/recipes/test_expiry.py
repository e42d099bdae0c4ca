"""A lock holder whose session really expires: it hears SUSPENDED before anyone else
can take the lock, then LOST; the next contender gets the lock; the old holder can
queue again on its new session."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from zabby import recipes
from zabby.client import Client
from zabby.testing import ZabbyEnsemble


def test_lock_holder_is_told_before_its_expired_session_lets_another_in(tmp_path):
    ens = ZabbyEnsemble(tmp_path, 3, tickTime=200)
    try:
        leader = ens.leader()
        lone = next(i for i in ens.members if i != leader)  # a follower
        m = ens.members[lone]
        rest = ",".join(ens.members[i].hosts for i in ens.members if i != lone)

        async def main() -> None:
            # a only knows the member we pause: its session expires behind its back
            a = Client(m.hosts, timeout=2.0)
            b = Client(rest, timeout=4.0)
            await a.start()
            await b.start()
            states: list[tuple[str, float]] = []
            la = recipes.Lock(a, "/expiry/lock", "a",
                              on_state=lambda s: states.append((s, time.monotonic())))
            assert await la.acquire(timeout=5)
            lb = recipes.Lock(b, "/expiry/lock", "b")
            waiting = asyncio.ensure_future(lb.acquire(timeout=30))
            await asyncio.sleep(0.2)
            os.killpg(m.pid, signal.SIGSTOP)
            try:
                await asyncio.wait_for(asyncio.shield(waiting), 15)
                got_at = time.monotonic()
            finally:
                os.killpg(m.pid, signal.SIGCONT)
            assert waiting.result()
            assert states and states[0][0] == "SUSPENDED"
            assert states[0][1] < got_at  # told before the other got in
            await asyncio.wait_for(la.lost.wait(), 30)
            assert states[-1][0] == "LOST" and not la.is_acquired
            # a's client has a new session; a can contend again
            again = asyncio.ensure_future(la.acquire(timeout=30))
            await asyncio.sleep(0.3)
            assert not again.done()
            await lb.release()
            assert await again
            await la.release()
            await a.stop()
            await b.stop()

        asyncio.run(asyncio.wait_for(main(), 90))
    finally:
        for mem in ens.members.values():
            if mem.pid is not None:
                try:
                    os.killpg(mem.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        ens.stop()
