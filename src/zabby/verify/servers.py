"""zabby members with the test-only fault hooks armed, for the ``slow-disk`` and
``clock-ahead`` faults of ``zabby verify`` (see zabby.testing.diskfaults): every member
gets an fsync-stall file of its own (empty: no stall until ``stall.set(seconds)``), and
``clock_offset_ms`` (read when the process starts) puts its wall and monotonic clocks
that far ahead of the machine's."""

from __future__ import annotations

from pathlib import Path

from zabby.testing.diskfaults import CLOCK_OFFSET_ENV, FSYNC_STALL_ENV, FsyncStall
from zabby.testing.servers import ZabbyServer

from .netlab import NetnsServer

__all__ = ["HookedNetnsServer", "HookedServer", "process_env"]


def process_env(pid: int) -> dict[str, str]:
    """The environment a running process was started with (Linux /proc), to prove
    that a hook was armed; {} when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


class _Hooks:
    stall: FsyncStall
    clock_offset_ms: int

    def __init__(self, tmpdir, *args, **cfg) -> None:
        Path(tmpdir).mkdir(parents=True, exist_ok=True)
        self.stall = FsyncStall(Path(tmpdir) / "fsync-stall")
        self.stall.clear()
        self.clock_offset_ms = 0
        super().__init__(tmpdir, *args, **cfg)

    def env(self) -> dict[str, str]:
        env = super().env()  # type: ignore[misc]
        env[FSYNC_STALL_ENV] = str(self.stall.path)
        if self.clock_offset_ms:
            env[CLOCK_OFFSET_ENV] = str(int(self.clock_offset_ms))
        else:
            env.pop(CLOCK_OFFSET_ENV, None)
        return env


class HookedServer(_Hooks, ZabbyServer):
    """A loopback zabby member with the hooks."""


class HookedNetnsServer(_Hooks, NetnsServer):
    """A zabby member in a NetLab namespace with the hooks."""
