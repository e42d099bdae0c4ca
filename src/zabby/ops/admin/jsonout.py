"""JSON as ZooKeeper's AdminServer writes it (Jackson's default pretty printer).

Objects one key a line, indented two spaces per object level, ``"key" : value``;
arrays on one line, ``[ 1, 2 ]``, ``[ ]`` and ``{ }`` when empty; doubles as Java
prints them (``0.0``, ``4.5``).  Tools that diff the admin output, or parse it
line-wise, see the same layout.  Encoding runs in the AdminServer's thread, never
on the server's loop, and yields pieces so a large answer is never one giant
string built twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..fourletter import java_double

__all__ = ["encode", "iter_encode"]

_str = json.JSONEncoder(ensure_ascii=False).encode


def iter_encode(value: Any, level: int = 0) -> Iterator[str]:
    if value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, int):
        yield str(int(value))
    elif isinstance(value, float):
        yield java_double(value)
    elif isinstance(value, str):
        yield _str(value)
    elif isinstance(value, dict):
        if not value:
            yield "{ }"
            return
        inner = "\n" + "  " * (level + 1)
        yield "{"
        first = True
        for k, v in value.items():
            yield (inner if first else "," + inner) + _str(str(k)) + " : "
            first = False
            yield from iter_encode(v, level + 1)
        yield "\n" + "  " * level + "}"
    elif isinstance(value, (list, tuple, set, frozenset)):
        if not value:
            yield "[ ]"
            return
        yield "[ "
        first = True
        for v in value:
            if not first:
                yield ", "
            first = False
            yield from iter_encode(v, level)
        yield " ]"
    else:
        yield _str(str(value))


def encode(value: Any) -> bytes:
    """The whole document, UTF-8 (Jackson writes no trailing newline)."""
    return "".join(iter_encode(value)).encode("utf-8")
