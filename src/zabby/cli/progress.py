"""Progress bars on the terminal (tqdm), for `zabby check`, `zabby serve` start-up and
`zabby bench`.

Bars go to stderr, and only when stderr is a terminal: never into a log file, a pipe
or CI output (``CI`` set also turns them off). ``--no-progress`` or
``ZABBY_NO_PROGRESS=1`` turns them off on a terminal too, and so does ``TERM=dumb``. The layers below (``storage``, ``bench``)
only call a ``progress(phase, done, total)`` function when they are given one; this
module turns those calls into bars.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

ENV = "ZABBY_NO_PROGRESS"
DELAY_ENV = "ZABBY_PROGRESS_DELAY"

# what recovery's phases count (zabby.storage.Progress)
_PHASES = {
    "snapshot": ("loading snapshot", "znodes", False),
    "scan": ("checking txn log", "B", True),
    "replay": ("replaying txn log", "txns", False),
}


def progress_wanted(no_progress: bool = False, stream: TextIO | None = None) -> bool:
    """Should bars be drawn on `stream` (default stderr)?"""
    if no_progress:
        return False
    if os.environ.get(ENV, "").strip() not in ("", "0"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return False  # CI logs keep every carriage return (some run jobs on a pty)
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def add_argument(p) -> None:
    """--no-progress on an argparse parser."""
    p.add_argument("--no-progress", action="store_true",
                   help=f"no progress bars (also {ENV}=1; bars are only ever drawn when "
                        "stderr is a terminal)")


class TerminalProgress:
    """A ``progress(phase, done, total)`` callback drawing one tqdm bar per phase.

    A new phase, or a phase starting again (``done`` below where it was), closes the
    bar and opens a new one. ``delay``: seconds a phase must last before its bar
    appears (quick start-ups stay quiet)."""

    def __init__(self, file: TextIO | None = None, *, delay: float = 0.0,
                 leave: bool = False) -> None:
        self.file = sys.stderr if file is None else file
        self.delay = delay
        self.leave = leave
        self.phase: str | None = None
        self.bar = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        bar = self.bar
        if bar is None or phase != self.phase or done < bar.n:
            bar = self._open(phase, total)
        if total != bar.total:
            bar.total = total
        if done > bar.n:
            bar.update(done - bar.n)
        if done >= total:
            self.close()

    def _open(self, phase: str, total: int):
        from tqdm import tqdm

        self.close()
        desc, unit, scale = _PHASES.get(phase, (phase, "it", False))
        self.phase = phase
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, file=self.file,
                        leave=self.leave, delay=self.delay, dynamic_ncols=True,
                        mininterval=0.1)
        return self.bar

    def write(self, msg: str, file: TextIO | None = None) -> None:
        """Print a line (to stdout by default) without breaking the bar: the bar is
        cleared, the line printed, the bar redrawn below it."""
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stdout if file is None else file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.phase = None


def terminal_progress(no_progress: bool = False, **kw) -> TerminalProgress | None:
    """A TerminalProgress on stderr if bars are wanted there, else None (costs nothing).
    ZABBY_PROGRESS_DELAY (seconds) overrides `delay` (the tests set 0)."""
    if not progress_wanted(no_progress):
        return None
    try:
        kw["delay"] = float(os.environ[DELAY_ENV])
    except (KeyError, ValueError):
        pass
    return TerminalProgress(**kw)
