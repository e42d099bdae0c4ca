"""A virtual-time asyncio event loop on which whole zabby servers run side by side.

`SimLoop` is asyncio's own selector loop with a selector that never waits: when
nothing is ready, virtual time jumps to the next timer. Callbacks take no virtual
time. Nothing touches a real socket: `create_connection` / `create_server` go to
the simulated network (`zabby.sim.net`), and a server's client port is registered
there too.

Each simulated process (a member incarnation, a client) runs in a context whose
`PROCESS` variable names it. asyncio copies the current context into every task and
callback, so every handle the loop runs belongs to a process; the loop consults the
process before running it:

* a paused process (SIGSTOP) keeps its handles until it is resumed, then runs
  them all, in the order they came due, as a real process does on SIGCONT;
* a crashed process never runs another handle (its tasks are simply abandoned).
"""

from __future__ import annotations

import asyncio
import contextvars
import selectors
from collections.abc import Callable
from typing import Any

PROCESS: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "zabby_sim_process", default=None)


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is scheduled: the simulation cannot go on."""


class Process:
    """One simulated process; see the module docstring."""

    def __init__(self, name: str, host: str = "") -> None:
        self.name = name
        self.host = host  # where its connections come from (zabby.sim.net)
        self.dead = False
        self.paused = False
        self._held: list[tuple[Callable[..., Any], tuple, contextvars.Context]] = []
        self.context = contextvars.copy_context()
        self.context.run(PROCESS.set, self)

    def __repr__(self) -> str:
        state = "dead" if self.dead else "paused" if self.paused else "running"
        return f"<Process {self.name} {state}>"


class _NullSelector(selectors.BaseSelector):
    """Registrations are kept (asyncio registers its self-pipe) but never ready."""

    def __init__(self, loop: SimLoop) -> None:
        self._loop = loop
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None):
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj):
        return self._keys.pop(fileobj)

    def modify(self, fileobj, events, data=None):
        self._keys.pop(fileobj, None)
        return self.register(fileobj, events, data)

    def get_key(self, fileobj):
        try:
            return self._keys[fileobj]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def get_map(self):
        return dict(self._keys)

    def select(self, timeout=None):
        if timeout is None:
            raise Deadlock("no callback is ready and no timer is scheduled")
        if timeout > 0:
            self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._keys.clear()


class SimLoop(asyncio.SelectorEventLoop):
    """See the module docstring. `network` is set by the simulation before use."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_NullSelector(self))
        self._clock_resolution = 1e-9
        self.network = None  # zabby.sim.net.Network
        self.handles_run = 0
        self.draining = False  # tearing down: every handle runs, dead or paused

    # ------------------------------------------------------------ time
    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    # ------------------------------------------------------------ processes
    def call_soon(self, callback, *args, context=None):
        if context is None:
            context = contextvars.copy_context()
        return super().call_soon(self._gate, context, callback, args, context=context)

    def call_at(self, when, callback, *args, context=None):
        if context is None:
            context = contextvars.copy_context()
        return super().call_at(when, self._gate, context, callback, args, context=context)

    def _gate(self, context, callback, args) -> None:
        proc = PROCESS.get()
        if proc is not None and not self.draining:
            if proc.dead:
                return
            if proc.paused:
                proc._held.append((callback, args, context))
                return
        self.handles_run += 1
        callback(*args)

    def pause(self, proc: Process) -> None:
        proc.paused = True

    def resume(self, proc: Process) -> None:
        proc.paused = False
        held, proc._held = proc._held, []
        for callback, args, ctx in held:
            super().call_soon(self._gate, ctx, callback, args, context=ctx)

    def kill(self, proc: Process) -> None:
        proc.dead = True
        proc.paused = False
        proc._held.clear()

    def spawn(self, proc: Process, coro) -> asyncio.Task:
        """Run `coro` as a task of `proc`."""
        return self.create_task(coro, context=proc.context)

    def run_in(self, proc: Process, fn: Callable[..., Any], *args: Any) -> Any:
        """Call `fn` now, in `proc`'s context (what it schedules belongs to `proc`)."""
        return proc.context.run(fn, *args)

    # ------------------------------------------------------------ network
    async def create_connection(self, protocol_factory, host=None, port=None, **kw):
        return await self.network.connect(protocol_factory, host, port)

    async def create_server(self, protocol_factory, host=None, port=None, **kw):
        return self.network.listen(protocol_factory, host, port)

    def run_until(self, when: float) -> None:
        """Run until virtual time `when`."""
        self.run_until_complete(asyncio.sleep(max(0.0, when - self._now)))

    # nothing here may block on a real thread pool: fail loudly instead
    def run_in_executor(self, executor, func, *args):  # pragma: no cover - a bug if reached
        raise RuntimeError(f"the simulation has no threads: run_in_executor({func!r})")
