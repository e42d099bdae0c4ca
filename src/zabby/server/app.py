"""Run a server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from .config import ServerConfig
from .core import ZabbyServer

log = logging.getLogger("zabby")


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve(config: ServerConfig, ready=None) -> None:
    os.makedirs(config.data_dir, exist_ok=True)
    server = ZabbyServer(config)
    await server.start()
    if ready is not None:
        ready(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    await stop.wait()
    log.info("shutting down")
    await server.stop()


def run(config: ServerConfig) -> None:
    install_uvloop()
    asyncio.run(serve(config))
