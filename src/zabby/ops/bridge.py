"""Reading a running server from an operator thread.

The server's state belongs to its event loop: a thread that iterates the tree or the
session table while the loop changes them could see a dict change size mid-walk.  So an
operator thread (AdminServer, Prometheus, console) asks the loop to run a short function
and waits for its result; the function must be quick (it runs between client requests),
and everything slow -- encoding JSON, writing to sockets, reading files -- happens back
in the calling thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

__all__ = ["LoopBridge", "ServerBusy"]

T = TypeVar("T")


class ServerBusy(Exception):
    """The server's loop did not run the function within the timeout (it is stopped or
    stuck): the operator view says so instead of hanging."""


class LoopBridge:
    """Runs functions on `loop` (the server's) from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, timeout: float = 5.0) -> None:
        self.loop = loop
        self.timeout = timeout

    def call(self, fn: Callable[..., T], *args, timeout: float | None = None) -> T:
        """fn(*args) on the server loop; its result, or its exception re-raised here.
        Called on the loop's own thread it just runs fn."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return fn(*args)
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # handed to the waiting thread
                fut.set_exception(e)

        try:
            self.loop.call_soon_threadsafe(run)
        except RuntimeError as e:  # loop closed
            raise ServerBusy("the server is not running") from e
        try:
            return fut.result(self.timeout if timeout is None else timeout)
        except concurrent.futures.TimeoutError as e:
            fut.cancel()
            raise ServerBusy("the server did not answer in time") from e
