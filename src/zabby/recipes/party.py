"""Party and ShallowParty: group membership (kazoo's layout).

A member is an ephemeral child of the party path: ``<32 hex>__party__`` holding the
identifier (Party) or ``<32 hex>-<identifier>`` (ShallowParty, whose members can be
listed without reading each node). Iterating a party lists the identifiers of the
live members.

Guarantee: a member is listed exactly while its session is alive and it has not
left. On connection loss the member stays listed until its session expires; on
session expiry it drops out of the party, and ``join`` must be called again (the
party's ``on_state("LOST")`` callback tells when).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._util import NodeExistsError, NoNodeError, StateWatcher, call, new_id, retrying

__all__ = ["Party", "ShallowParty"]


class _BaseParty:
    def __init__(self, client: Any, path: str, identifier: str | None = None, *,
                 on_state: Callable[[str], Any] | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.data = str(identifier or "").encode("utf-8")
        self.participating = False
        self.on_state = on_state
        self._states = StateWatcher(client, self._state)
        self.node = ""
        self.create_path = ""

    async def _state(self, state: str) -> None:
        if self.participating and state == "LOST":
            self.participating = False
            self._states.remove()
        if state != "CONNECTED" or self.participating:
            await call(self.on_state, state)

    async def join(self) -> None:
        async def attempt() -> None:
            try:
                await self.client.create(self.create_path, self.data, ephemeral=True,
                                         makepath=True)
            except NodeExistsError:
                pass  # our own create, retried after a lost reply
        await retrying(attempt, on_expired=lambda: None)
        self.participating = True
        self._states.add()

    async def leave(self) -> bool:
        self._states.remove()
        async def attempt() -> bool:
            try:
                await self.client.delete(self.create_path)
            except NoNodeError:
                return False
            return True
        self.participating = False
        return await retrying(attempt)

    async def _children(self) -> list[str]:
        async def attempt() -> list[str]:
            try:
                return await self.client.get_children(self.path)
            except NoNodeError:
                return []
        return await retrying(attempt)

    async def members(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    async def count(self) -> int:
        return len(await self.members())

    def __aiter__(self) -> Any:
        return _aiter(self)

    async def __aenter__(self) -> _BaseParty:
        await self.join()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()


async def _aiter(party: _BaseParty) -> Any:
    for member in await party.members():
        yield member


class Party(_BaseParty):
    """Members hold their identifier as data; ``await party.members()``."""

    _NODE_NAME = "__party__"

    def __init__(self, client: Any, path: str, identifier: str | None = None,
                 **kw: Any) -> None:
        super().__init__(client, path, identifier, **kw)
        self.node = new_id() + self._NODE_NAME
        self.create_path = f"{self.path}/{self.node}"

    async def members(self) -> list[str]:
        out = []
        for child in await self._children():
            if self._NODE_NAME not in child:
                continue
            try:
                data, _ = await self.client.get(f"{self.path}/{child}")
            except NoNodeError:
                continue
            out.append((data or b"").decode("utf-8"))
        return out


class ShallowParty(_BaseParty):
    """Members carry their identifier in the node name; listing reads no data."""

    def __init__(self, client: Any, path: str, identifier: str | None = None,
                 **kw: Any) -> None:
        super().__init__(client, path, identifier, **kw)
        self.node = "-".join([new_id(), self.data.decode("utf-8")])
        self.create_path = f"{self.path}/{self.node}"

    async def members(self) -> list[str]:
        return [c[33:] for c in await self._children()]
