"""Helpers for the console tests: a zabby server process with an AdminServer that
serves only the console, and a 3-member ensemble of them.

Run as a script it is that process: ``python console_support.py zoo.cfg ADMIN_PORT``.
(`zabby serve` starts the AdminServer itself once the lead wires it into
``zabby.ops.services_for``; until then the tests start it here.)
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()

if __name__ != "__main__":
    from zabby.testing.servers import ZabbyEnsemble, ZabbyServer, free_port

    class ConsoleServer(ZabbyServer):
        """A zabby server process whose AdminServer (console only) listens on admin_port."""

        def __init__(self, tmpdir, **cfg: Any) -> None:
            self.admin_port = free_port()
            super().__init__(tmpdir, **cfg)

        def command(self) -> list[str]:
            return [self.python, str(HERE), str(self.cfg_path), str(self.admin_port)]

        @property
        def url(self) -> str:
            return f"http://127.0.0.1:{self.admin_port}"

    class ConsoleEnsemble(ZabbyEnsemble):
        member_cls = ConsoleServer


def api(base: str, method: str, path: str, body: Any = None, *, auth: str | None = None,
        headers: dict[str, str] | None = None, console_header: bool = True,
        timeout: float = 15.0) -> tuple[int, dict[str, Any]]:
    """One console API call with urllib: (status, JSON body)."""
    h = {"Content-Type": "application/json"}
    if console_header:
        h["X-Zabby-Console"] = "1"
    if auth:
        h["X-Zabby-Auth"] = auth
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _main(cfg_path: str, admin_port: int) -> None:
    import logging

    from zabby.ops.admin import AdminServer
    from zabby.ops.console import install
    from zabby.ops.fourletter import handle_four_letter_word
    from zabby.server.app import run
    from zabby.server.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = load_config(cfg_path)

    def admin(server):
        a = AdminServer(server, config, host="127.0.0.1", port=admin_port,
                        installers=[install])
        a.start()
        return a.stop

    run(config, four_letter_handler=handle_four_letter_word, services=[admin])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    _main(sys.argv[1], int(sys.argv[2]))
