"""The web console backend's session, on `zabby.client.Client`.

The console acts on the tree *as a client*: it opens a session to the server's own
client port, adds the browser user's digest identity, and sends ordinary requests, so
ACLs, quotas and validation apply exactly as for any other client.  This runs on the
AdminServer's loop (never the server's).

`ConsoleClient` keeps the small interface the console's handlers use (wire `Stat`s,
`KeeperError` with a code) over zabby's own client, which pipelines the requests,
pings, and reconnects keeping the session (and the digest identity).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from zabby.client import Client, KazooTimeoutError, ZookeeperError
from zabby.wire import ACL, CreateMode, Err, Id, Stat

__all__ = ["OPEN_ACL", "ConsoleClient", "KeeperError"]

OPEN_ACL = [ACL(31, Id("world", "anyone"))]


class KeeperError(Exception):
    """A request failed with ``code`` (a ``zabby.wire.Err``; CONNECTIONLOSS for I/O)."""

    def __init__(self, code: int, path: str = "") -> None:
        super().__init__(code, path)
        self.code = code
        self.path = path

    @property
    def name(self) -> str:
        try:
            return Err(self.code).name
        except ValueError:
            return str(self.code)


def _stat(s) -> Stat:
    return Stat(*s)


class ConsoleClient:
    """One session. ``await ConsoleClient.connect(host, port)``; then the request
    methods; ``await close()``."""

    def __init__(self, client: Client, timeout: float) -> None:
        self.zk = client
        self.timeout = timeout

    @property
    def closed(self) -> bool:
        return self.zk._stopping or self.zk._run_task is None

    @property
    def session_id(self) -> int:
        return self.zk.session_id

    @classmethod
    async def connect(cls, host: str, port: int, *, session_timeout_ms: int = 30000,
                      timeout: float = 10.0) -> ConsoleClient:
        zk = Client(f"{host}:{port}", timeout=session_timeout_ms / 1000.0)
        try:
            await zk.start(timeout)
        except (KazooTimeoutError, ZookeeperError) as e:
            raise KeeperError(Err.CONNECTIONLOSS, f"{host}:{port}: {e}") from e
        return cls(zk, timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.zk.stop()

    async def _do(self, coro, path: str = "") -> Any:
        try:
            return await asyncio.wait_for(coro, self.timeout)
        except TimeoutError:
            raise KeeperError(Err.OPERATIONTIMEOUT, path) from None
        except ZookeeperError as e:
            raise KeeperError(e.code, path) from None

    # -------------------------------------------------------------- requests
    async def add_auth(self, scheme: str, auth: bytes) -> None:
        await self._do(self.zk.add_auth(scheme, auth))

    async def exists(self, path: str) -> Stat | None:
        st = await self._do(self.zk.exists(path), path)
        return None if st is None else _stat(st)

    async def get_data(self, path: str) -> tuple[bytes, Stat]:
        data, st = await self._do(self.zk.get(path), path)
        return data, _stat(st)

    async def get_children(self, path: str) -> tuple[list[str], Stat]:
        names, st = await self._do(self.zk.get_children(path, include_data=True), path)
        return names, _stat(st)

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        acl, st = await self._do(self.zk.get_acls(path), path)
        return acl, _stat(st)

    async def create(self, path: str, data: bytes, acl: list[ACL], flags: int = 0,
                     ) -> tuple[str, Stat]:
        mode = CreateMode(flags)
        created, st = await self._do(self.zk.create(
            path, data, acl, ephemeral=mode.ephemeral, sequence=mode.sequential,
            container=mode.container, include_data=True), path)
        return created, _stat(st)

    async def set_data(self, path: str, data: bytes, version: int = -1) -> Stat:
        return _stat(await self._do(self.zk.set(path, data, version), path))

    async def delete(self, path: str, version: int = -1) -> None:
        await self._do(self.zk.delete(path, version), path)
