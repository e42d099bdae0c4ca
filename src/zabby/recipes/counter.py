"""Counter: a number in a znode, changed by compare-and-set on its version.

Layout is kazoo's: the value's ``repr`` as UTF-8 (an int or a float). Every change
reads the value and its version, then writes with that version; a BadVersion reply
means someone else changed it first, and the change is retried on the new value.

Guarantee: every ``add`` that returns was applied once, in one total order, and
``pre_value`` / ``post_value`` are the values just before and after it. A change whose
reply is lost to a connection loss is retried after reconnecting; if the lost write
did land, the retry would apply it again, so ``add(..., exactly_once=True)`` tags the
write with a unique id (kept on the node's second line) and the retry recognises its
own write as long as no other change came after it. Session expiry does not matter
to a counter (no ephemeral state).
"""

from __future__ import annotations

from typing import Any

from ._util import BadVersionError, NodeExistsError, NoNodeError, new_id, retrying

__all__ = ["Counter"]


class Counter:
    """``c = zk.Counter("/c"); await c.add(1); await c.get()``."""

    def __init__(self, client: Any, path: str, default: int | float = 0) -> None:
        self.client = client
        self.path = path
        self.default = default
        self.default_type = type(default)
        self.pre_value: int | float | None = None
        self.post_value: int | float | None = None

    def _decode(self, raw: bytes | None) -> int | float:
        text = (raw or b"").decode("utf-8").split("\n", 1)[0]
        return self.default_type(text) if text else self.default

    def _encode(self, value: int | float, tag: str | None = None) -> bytes:
        text = repr(value)
        if tag:
            text += "\n" + tag
        return text.encode("utf-8")

    async def _read(self) -> tuple[bytes, int]:
        try:
            data, stat = await self.client.get(self.path)
            return data or b"", stat.version
        except NoNodeError:
            try:
                await self.client.create(self.path, self._encode(self.default), makepath=True)
            except NodeExistsError:
                pass
            data, stat = await self.client.get(self.path)
            return data or b"", stat.version

    async def get(self) -> int | float:
        data, _ = await retrying(self._read)
        return self._decode(data)

    value = get

    async def add(self, delta: int | float, *, exactly_once: bool = False) -> int | float:
        """Add ``delta`` (negative to subtract); returns the new value."""
        if not isinstance(delta, self.default_type):
            raise TypeError(f"invalid type for value change: {type(delta).__name__}")
        tag = new_id() if exactly_once else None

        async def attempt() -> int | float:
            while True:
                data, version = await self._read()
                if tag is not None and data.decode("utf-8").endswith("\n" + tag):
                    return self._decode(data)  # our write landed before the reply was lost
                old = self._decode(data)
                new = old + delta
                try:
                    await self.client.set(self.path, self._encode(new, tag), version=version)
                except BadVersionError:
                    continue
                self.pre_value, self.post_value = old, new
                return new

        return await retrying(attempt)

    async def subtract(self, delta: int | float, **kw: Any) -> int | float:
        return await self.add(-delta, **kw)
