"""Quotas as ZooKeeper 3.8 keeps them (``Quotas``, ``StatsTrack``, ``PathTrie``).

A quota on ``/a/b`` is two znodes under ``/zookeeper/quota/a/b``: ``zookeeper_limits``
(written by clients: zkCli ``setquota``) and ``zookeeper_stats`` (rewritten by the
server on every create, delete and setData below ``/a/b``).  Their data is StatsTrack's
text: ``count=N,bytes=M`` and, when other keys are present, ``=`` then ``;key=value``
for each (sorted), e.g. ``count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2``.

The set of quota'd paths stands in for ZooKeeper's PathTrie: the trie splits a path on
"/" and drops components that are empty or only whitespace (``trim().isEmpty()``), and
its "deepest prefix with a quota" is the deepest such set member along the path.  This
module is pure: parsing, formatting and path arithmetic.  `RateLog` is ZooKeeper's
RateLogger (the "Quota exceeded" warning, at most one line per message per 100 ms).
"""

from __future__ import annotations

import logging
import re
import time

__all__ = [
    "LIMIT_NODE", "QUOTA_ROOT", "RateLog", "STAT_NODE", "StatsError", "format_stats",
    "limit_path", "normalize", "parse_stats", "stat_path", "top_namespace",
]

log = logging.getLogger("zabby.quota")

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
QUOTA_ROOT_LEN = len(QUOTA_ROOT)

_PAIRS = re.compile("[,;]+")
_LONG = re.compile(r"[+-]?[0-9]+")
_JAVA_WS = "".join(chr(i) for i in range(0x21))  # String.trim() strips chars <= U+0020
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


class StatsError(ValueError):
    """Data StatsTrack cannot parse (ZooKeeper throws a RuntimeException there)."""


def top_namespace(path: str) -> str | None:
    """PathUtils.getTopNamespace: the first component ("/a/b" -> "a"), None for "/"."""
    parts = path.split("/")
    while parts and parts[-1] == "":
        parts.pop()
    return parts[1] if len(parts) > 1 else None


def limit_path(prefix: str) -> str:
    return f"{QUOTA_ROOT}{prefix}/{LIMIT_NODE}"


def stat_path(prefix: str) -> str:
    return f"{QUOTA_ROOT}{prefix}/{STAT_NODE}"


def normalize(path: str) -> str:
    """The path as PathTrie holds it: "/" + the non-blank components joined by "/"."""
    return "/" + "/".join(c for c in path.split("/") if c.strip(_JAVA_WS))


def max_prefix(quotas, path: str) -> str | None:
    """getMaxPrefixWithQuota: the deepest quota'd prefix of `path` (the path itself
    included), None when there is none (a quota on "/" never counts). O(depth)."""
    best = None
    cur = ""
    for c in path.split("/"):
        if not c or not c.strip(_JAVA_WS):
            continue
        cur = f"{cur}/{c}"
        if cur in quotas:
            best = cur
    return best


def _java_long(s: str) -> int:
    if not _LONG.fullmatch(s):
        raise StatsError(f"not a number: {s!r}")
    v = int(s)
    if not _LONG_MIN <= v <= _LONG_MAX:
        raise StatsError(f"out of range: {s!r}")
    return v


_parsed: dict[bytes, dict[str, int]] = {}  # recent parses (a quota's nodes, rewritten)


def parse_stats(data) -> dict[str, int]:
    """StatsTrack(byte[]): key -> value; a missing key reads as -1 (``.get(k, -1)``).
    Returns a fresh dict (callers change it)."""
    key = bytes(data or b"")
    got = _parsed.get(key)
    if got is None:
        got = _parse(key)
        if len(_parsed) >= 256:
            _parsed.clear()
        _parsed[key] = got
    return dict(got)


def _parse(raw: bytes) -> dict[str, int]:
    s = raw.decode("utf-8", "replace")
    out: dict[str, int] = {}
    if not s:
        return out
    for pair in _PAIRS.split(s):
        kv = pair.split("=")
        while kv and kv[-1] == "":  # Java's split drops trailing empty strings
            kv.pop()
        if len(kv) < 2:
            raise StatsError(f"no value in {pair!r}")
        out[kv[0]] = _java_long(kv[1]) if kv[1] else -1
    return out


def format_stats(stats: dict[str, int]) -> bytes:
    """StatsTrack.toString(): count and bytes first, then "=" and ";key=value" sorted."""
    head = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    rest = sorted(k for k in stats if k != "count" and k != "bytes")
    if rest:
        head += "=" + "".join(f";{k}={stats[k]}" for k in rest)
    return head.encode("utf-8")


class RateLog:
    """RateLogger(LOG, 100 ms): a new message is logged at once; the same message again
    within 100 ms is counted and logged as "[n times] Message: ..." later."""

    __slots__ = ("msg", "count", "stamp")

    INTERVAL = 0.1

    def __init__(self) -> None:
        self.msg: str | None = None
        self.count = 0
        self.stamp = 0.0

    def flush(self) -> None:
        if self.msg is not None and self.count > 0:
            pre = f"[{self.count} times] " if self.count > 1 else ""
            log.warning("%sMessage: %s", pre, self.msg)
        self.msg = None
        self.count = 0

    def __call__(self, msg: str) -> None:
        now = time.monotonic()
        if msg == self.msg:
            self.count += 1
            if now - self.stamp >= self.INTERVAL:
                self.flush()
                self.msg = msg
                self.stamp = now
        else:
            self.flush()
            self.msg = msg
            self.stamp = now
            log.warning("Message:%s Value:%s", msg, None)
