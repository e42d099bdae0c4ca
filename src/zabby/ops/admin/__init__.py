"""The AdminServer: ZooKeeper's HTTP admin API (``admin.*`` keys), and whatever else the
operator views hang on it (the web console).

It runs an aiohttp application on its own event loop in its own thread, so a slow or
hostile HTTP client never holds up the client port; it reads the server only through
``ctx.bridge`` (``zabby.ops.bridge``).

Others add routes with an *installer*: ``installer(app, ctx)`` is called once, before
the server listens (``zabby.ops.console.install`` is one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from ..bridge import LoopBridge

if TYPE_CHECKING:
    from ...server.config import ServerConfig
    from ...server.core import ZabbyServer

__all__ = ["AdminContext", "AdminServer", "Installer"]

log = logging.getLogger("zabby.ops.admin")


@dataclass
class AdminContext:
    """What a route handler may use. ``server`` belongs to the server's loop: touch it
    only inside ``bridge.call(fn)``."""

    server: ZabbyServer
    config: ServerConfig
    bridge: LoopBridge


Installer = Callable[[web.Application, AdminContext], None]


class AdminServer:
    """An HTTP server in a thread of its own. ``start()`` returns once it listens (or
    raises OSError if it cannot bind); ``stop()`` closes it and joins the thread."""

    def __init__(self, server: ZabbyServer, config: ServerConfig, *, host: str, port: int,
                 installers: Sequence[Installer] = (), bridge: LoopBridge | None = None,
                 ) -> None:
        self.host = host
        self.port = port  # the bound port once started (port 0 picks a free one)
        self.ctx = AdminContext(
            server=server, config=config,
            bridge=bridge or LoopBridge(asyncio.get_running_loop()),
        )
        self.app = web.Application()
        for install in installers:
            install(self.app, self.ctx)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="zabby-admin", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise OSError(f"AdminServer did not start within {timeout} s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported to start() if it happened before listening
            if not self._started.is_set():
                self._error = e
                self._started.set()
            else:
                log.exception("AdminServer stopped on an error")
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            server = site._server  # aiohttp keeps the asyncio server here
            if server is not None and server.sockets:
                self.port = server.sockets[0].getsockname()[1]
            self._started.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
