"""Znode path rules, as ZooKeeper's `PathUtils.validatePath`.

ZooKeeper checks Java `char`s (UTF-16 code units); a Python character beyond
the BMP is a surrogate pair in Java and so always invalid.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["is_valid_path", "parent_of", "split_path"]


def _bad_char(c: int) -> bool:
    return (
        0 < c <= 0x1F
        or 0x7F <= c <= 0x9F
        or 0xD800 <= c <= 0xF8FF
        or c >= 0xFFF0
    )


# Components of allowed characters only; "." and ".." components and anything
# else unusual fall through to the exact character walk below.
# (the surrogate range is spelled with chr(): mypyc takes no surrogates in a literal)
_PLAIN: Final = re.compile("(?:/[^/\x00-\x1f\x7f-\x9f" + chr(0xD800) + "-\uf8ff\ufff0-\U0010ffff]+)+\\Z")


def is_valid_path(path: str | None) -> bool:
    """True when `PathUtils.validatePath(path)` would accept the path."""
    if not path:
        return False
    if path.isascii() and path.isprintable():
        # printable ASCII (most paths): every character is allowed, so only the
        # shape is left; a "/." anywhere takes the exact walk
        if (path[0] == "/" and "//" not in path and "/." not in path
                and (len(path) == 1 or path[-1] != "/")):
            return True
        return _is_valid_path_slow(path)
    if _PLAIN.match(path) is not None and "/." not in path:
        return True
    return _is_valid_path_slow(path)


def _is_valid_path_slow(path: str | None) -> bool:
    if not path or path[0] != "/":
        return False
    n = len(path)
    if n == 1:
        return True
    if path[-1] == "/":
        return False
    # Fast path: plain ASCII names without dots-only components.
    lastc = "/"
    for i in range(1, n):
        c = path[i]
        if c == "\0":
            return False
        if c == "/":
            if lastc == "/":
                return False
        elif c == ".":
            nxt_end = i + 1 == n or path[i + 1] == "/"
            if lastc == ".":
                if path[i - 2] == "/" and nxt_end:
                    return False
            elif lastc == "/" and nxt_end:
                return False
        elif _bad_char(ord(c)):
            return False
        lastc = c
    return True


def parent_of(path: str) -> str:
    """ZooKeeper's `path.substring(0, lastIndexOf('/'))`, with "" read as "/"."""
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


def split_path(path: str) -> tuple[str, str]:
    """(parent, child name) of a valid non-root path."""
    i = path.rfind("/")
    return (path[:i] if i > 0 else "/"), path[i + 1 :]
