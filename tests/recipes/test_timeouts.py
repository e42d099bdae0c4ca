"""A Lock's or Semaphore's acquire(timeout=...) keeps its timeout while the server it
talks to has stopped answering (SIGSTOP: a GC pause, a hung VM). The client gives such
a server up only after 2/3 of the session timeout (6.7 s here), and a request of the
attempt, or the clean-up of its node, used to wait for that: in the recipe fault test
an acquire(timeout=3) took up to 11 s. The node of an attempt that gave up is still
deleted, by a background task, once the server answers again."""

from __future__ import annotations

import asyncio
import time

import pytest

from zabby import recipes
from zabby.client import Client
from zabby.recipes._util import INLINE_CLEANUP, TIMEOUT_GRACE
from zabby.testing import ZabbyServer

pytestmark = pytest.mark.timeout(90)

SESSION = 10.0  # the client would give a hung server up after ~6.7 s
BOUND = TIMEOUT_GRACE + 3 * INLINE_CLEANUP + 0.5  # past the timeout; margin for a busy machine


async def _children(c: Client, path: str) -> list[str]:
    return sorted(await c.get_children(path))


def test_acquire_keeps_its_timeout_while_the_server_hangs(tmp_path):
    srv = ZabbyServer(tmp_path / "s")
    try:
        async def main() -> None:
            a, b = Client(srv.hosts, timeout=SESSION), Client(srv.hosts, timeout=SESSION)
            await a.start()
            await b.start()
            la = recipes.Lock(a, "/t/lock", "a")
            assert await la.acquire(timeout=5)

            # b queues behind a, then the server stops answering: b's wait ends at
            # its timeout, and the delete of its node cannot be answered
            lb = recipes.Lock(b, "/t/lock", "b")
            waiting = asyncio.ensure_future(lb.acquire(timeout=1.5))
            await asyncio.sleep(0.5)
            assert len(await _children(a, "/t/lock")) == 2
            srv.pause()
            t0 = time.monotonic()
            try:
                with pytest.raises(recipes.LockTimeout):
                    await asyncio.wait_for(waiting, 20)
                took_lock = time.monotonic() - t0 + 0.5

                # a server that hangs before the attempt sent anything
                sem = recipes.Semaphore(b, "/t/sem", "b", max_leases=1)
                t1 = time.monotonic()
                with pytest.raises(recipes.LockTimeout):
                    await asyncio.wait_for(sem.acquire(timeout=1.0), 20)
                took_sem = time.monotonic() - t1
            finally:
                srv.resume()
            assert took_lock < 1.5 + BOUND, took_lock  # before: ~7 s
            assert took_sem < 1.0 + BOUND, took_sem

            # b's node goes once the server answers again; then b can take the lock
            deadline = time.monotonic() + 15
            while len(await _children(a, "/t/lock")) != 1:
                assert time.monotonic() < deadline, await _children(a, "/t/lock")
                await asyncio.sleep(0.05)
            await la.release()
            assert await lb.acquire(timeout=5)
            await lb.release()
            assert await sem.acquire(timeout=5)
            await sem.release()
            await a.stop()
            await b.stop()

        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        srv.resume()
        srv.stop()
