"""The loop bridge: operator threads read the server on its own loop, never beside it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from zabby.ops.bridge import LoopBridge, ServerBusy


def test_call_runs_on_the_loop_thread_and_returns_or_raises():
    async def main():
        loop = asyncio.get_running_loop()
        bridge = LoopBridge(loop, timeout=2)
        loop_thread = threading.get_ident()

        def where():
            return threading.get_ident()

        def boom():
            raise KeyError("x")

        def from_thread():
            ran_on = bridge.call(where)
            with pytest.raises(KeyError):
                bridge.call(boom)
            return ran_on

        ran_on = await asyncio.to_thread(from_thread)
        assert ran_on == loop_thread
        assert bridge.call(where) == loop_thread  # on the loop itself: direct

    asyncio.run(main())


def test_a_stuck_loop_gives_server_busy_not_a_hang():
    async def main():
        loop = asyncio.get_running_loop()
        bridge = LoopBridge(loop, timeout=0.2)
        result: list[BaseException] = []

        def from_thread():
            try:
                bridge.call(lambda: 1)
            except ServerBusy as e:
                result.append(e)

        t = threading.Thread(target=from_thread)
        t.start()
        import time

        time.sleep(0.6)  # the loop is blocked: the call cannot run
        t.join(2)
        assert result and isinstance(result[0], ServerBusy)

    asyncio.run(main())


def test_services_start_with_the_server_and_stop_before_it(tmp_path):
    from zabby.server.app import serve
    from zabby.server.config import ServerConfig

    events: list[str] = []

    def service(server):
        events.append(f"start:{server.port > 0}")
        return lambda: events.append("stop")

    async def main():
        cfg = ServerConfig(data_dir=str(tmp_path), client_port=0, admin_enable_server=False)
        started = asyncio.Event()
        task = asyncio.create_task(serve(cfg, lambda s: started.set(), services=[service]))
        await asyncio.wait_for(started.wait(), 10)
        assert events == ["start:True"]
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
        assert events == ["start:True", "stop"]

    asyncio.run(main())
