"""A contender process for the recipe fault tests (run as a script, not collected).

    python _worker.py HOSTS BASE OUT WID WORKERS DURATION SETTLE [victim]

Runs every recipe role at once, each on a Client (session) of its own, and writes
what it saw as JSON lines to OUT: times are time.monotonic() (one clock for every
process on the machine), so the test can check exclusion from the merged history.
The "victim" first queues the items and submits the tasks, then takes one queue item and one workflow task and then sleeps until it is
killed: what it held must be handed to someone else.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

from zabby import recipes
from zabby.client import Client

N_ITEMS = 40
N_TASKS = 40
TIMEOUT = 4.0  # session timeout asked for (tickTime 200: at most 4 s)


class Recorder:
    def __init__(self, path: str, wid: str) -> None:
        self.f = open(path, "a", buffering=1)
        self.wid = wid

    def __call__(self, role: str, ev: str, **kw: object) -> None:
        rec = {"t": time.monotonic(), "w": self.wid, "role": role, "ev": ev, **kw}
        self.f.write(json.dumps(rec) + "\n")


async def client(hosts: str) -> Client:
    zk = Client(hosts, timeout=TIMEOUT)
    await zk.start(timeout=30)
    return zk


async def holder_role(rec: Recorder, zk: Client, role: str, make, end: float) -> None:
    """Lock or Semaphore: hold, record [acquired, end of holding] intervals."""
    while time.monotonic() < end:
        holding = [False]

        def on_state(state: str, holding=holding) -> None:
            if holding[0] and state in ("SUSPENDED", "LOST"):
                holding[0] = False  # from here on we may not hold it
                rec(role, "end", why=state)

        lk = make(on_state)
        try:
            if not await lk.acquire(timeout=3):
                continue
        except recipes.LockTimeout:
            continue
        except Exception as e:  # noqa: BLE001 - recorded; the test judges
            rec(role, "error", err=repr(e))
            await asyncio.sleep(0.2)
            continue
        if lk.maybe_lost:
            await lk.release()
            continue
        holding[0] = True
        rec(role, "acq")
        await asyncio.sleep(random.uniform(0.005, 0.03))
        if holding[0]:
            holding[0] = False
            rec(role, "end", why="release")
        try:
            await lk.release()
        except Exception as e:  # noqa: BLE001
            rec(role, "error", err=repr(e))


async def election_role(rec: Recorder, zk: Client, base: str, wid: str, end: float,
                        final: float) -> None:
    latch = recipes.LeaderLatch(zk, f"{base}/elect", wid)

    def changed(leading: bool) -> None:
        rec("elect", "lead" if leading else "end", why="listener")
    latch.add_listener(changed)

    def on_state(state: str) -> None:
        if latch.has_leadership and state in ("SUSPENDED", "LOST"):
            rec("elect", "end", why=state)
    zk.add_listener(on_state)
    await latch.start()
    await asyncio.sleep(max(0.0, final - time.monotonic()))
    rec("elect", "final", leader=latch.has_leadership and not latch.maybe_lost)
    await asyncio.sleep(1.0)  # everyone reports before anyone leaves
    await latch.close()


async def produce(hosts: str, base: str) -> None:
    """Queue the items and submit the tasks (the test runs this before the others)."""
    zk = await client(hosts)
    q = recipes.LockingQueue(zk, f"{base}/queue")
    for i in range(0, N_ITEMS, 10):
        await q.put_all([str(j).encode() for j in range(i, i + 10)])
    wf = recipes.Workflow(zk, f"{base}/wf", "producer")
    for i in range(N_TASKS):
        await wf.submit(f"p{i}".encode(), task_id=f"t{i:03d}")
    await zk.stop()


async def drained(left, end: float) -> bool:
    """Nothing left to take, or long past the end. A dead holder's item comes back
    only when its session expires, and every leader change during the faults gives
    each session a fresh timeout: the victim's may outlast the faults by TIMEOUT."""
    if time.monotonic() > end + 6 * TIMEOUT:
        return True
    n = await left()
    return not (n if isinstance(n, int) else len(n))


async def queue_role(rec: Recorder, zk: Client, base: str, wid: str, end: float) -> None:
    q = recipes.LockingQueue(zk, f"{base}/queue")
    idle_until = None
    while True:
        item = await q.get(timeout=0.5)
        if item is None:
            if time.monotonic() > end and await drained(q.length, end):
                idle_until = idle_until or time.monotonic() + 3.0
                if time.monotonic() > idle_until:
                    return
            continue
        idle_until = None
        if random.random() < 0.15:
            await q.release()  # hand it back unprocessed
            continue
        await asyncio.sleep(random.uniform(0, 0.02))
        if await q.consume():
            rec("queue", "consumed", item=item.decode())


async def workflow_role(rec: Recorder, zk: Client, base: str, wid: str, end: float) -> None:
    wf = recipes.Workflow(zk, f"{base}/wf", wid)
    idle_until = None
    while True:
        task = await wf.claim(timeout=0.5)
        if task is None:
            if time.monotonic() > end and await drained(wf.pending, end):
                idle_until = idle_until or time.monotonic() + 3.0
                if time.monotonic() > idle_until:
                    return
            continue
        idle_until = None
        try:
            await task.progress(b"started")
        except recipes.TaskLost:
            continue
        await asyncio.sleep(random.uniform(0, 0.02))
        if await task.complete(wid.encode()):
            rec("wf", "completed", task=task.id)


async def barrier_role(rec: Recorder, zk: Client, base: str, wid: str, n: int) -> None:
    for rnd in range(2):
        db = recipes.DoubleBarrier(zk, f"{base}/dbar{rnd}", n, wid)
        await asyncio.sleep(random.uniform(0, 0.5))
        await db.enter(timeout=60)
        rec("barrier", "entered", round=rnd)
        await asyncio.sleep(random.uniform(0, 0.3))
        await db.leave(timeout=60)
        rec("barrier", "left", round=rnd)


async def victim(rec: Recorder, hosts: str, base: str, wid: str) -> None:
    zq, zw = await client(hosts), await client(hosts)
    q = recipes.LockingQueue(zq, f"{base}/queue")
    item = await q.get(timeout=20)
    rec("victim", "took", item=item.decode() if item else None)
    task = await recipes.Workflow(zw, f"{base}/wf", wid).claim(timeout=20)
    rec("victim", "claimed", task=task.id if task else None)
    await asyncio.sleep(3600)  # until killed


async def main() -> None:
    hosts, base, out, wid = sys.argv[1:5]
    workers, duration, settle = int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
    rec = Recorder(out, wid)
    if len(sys.argv) > 8 and sys.argv[8] == "victim":
        await produce(hosts, base)
        await victim(rec, hosts, base, wid)
        return
    start = time.monotonic()
    end, final = start + duration, start + duration + settle
    zks = [await client(hosts) for _ in range(6)]
    rec("main", "started")
    roles = [
        holder_role(rec, zks[0], "lock", lambda cb: recipes.Lock(
            zks[0], f"{base}/lock", wid, on_state=cb), end),
        holder_role(rec, zks[1], "sem", lambda cb: recipes.Semaphore(
            zks[1], f"{base}/sem", wid, max_leases=2, on_state=cb), end),
        election_role(rec, zks[2], base, wid, end, final),
        queue_role(rec, zks[3], base, wid, end),
        workflow_role(rec, zks[4], base, wid, end),
        barrier_role(rec, zks[5], base, wid, workers),
    ]
    results = await asyncio.gather(*roles, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            rec("main", "error", err=repr(r))
    rec("main", "done")
    for zk in zks:
        await zk.stop()


if __name__ == "__main__":
    asyncio.run(main())
