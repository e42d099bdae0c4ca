"""Progress bars on the terminal (tqdm), for `zabby check`, `zabby serve` start-up and
`zabby bench`.

Bars go to stderr, and only when stderr is a terminal: never into a log file, a pipe
or CI output (``CI`` set also turns them off). ``--no-progress`` or
``ZABBY_NO_PROGRESS=1`` turns them off on a terminal too, and so does ``TERM=dumb``. The layers below (``storage``, ``bench``)
only call a ``progress(phase, done, total)`` function when they are given one; this
module turns those calls into bars.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

ENV = "ZABBY_NO_PROGRESS"
DELAY_ENV = "ZABBY_PROGRESS_DELAY"

# what recovery's phases count (zabby.storage.Progress)
_PHASES = {
    "snapshot": ("loading snapshot", "znodes", False),
    "scan": ("checking txn log", "B", True),
    "replay": ("replaying txn log", "txns", False),
    # `zabby import` / `export` (zabby.storage.zookeeper)
    "zk-snapshot": ("reading ZooKeeper snapshot", "B", True),
    "zk-logs": ("replaying ZooKeeper txn logs", "B", True),
    "zk-export": ("writing ZooKeeper snapshot", "znodes", False),
}


def progress_off(no_progress: bool = False) -> bool:
    """Has the user turned progress off (--no-progress or ZABBY_NO_PROGRESS)?"""
    return no_progress or os.environ.get(ENV, "").strip() not in ("", "0")


def progress_wanted(no_progress: bool = False, stream: TextIO | None = None) -> bool:
    """Should bars be drawn on `stream` (default stderr)?"""
    if progress_off(no_progress):
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
        self._redirect = None

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
        # while a bar is up, log lines on the console (a snapshot found damaged, say)
        # print above it instead of through it
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        return self.bar

    def write(self, msg: str, file: TextIO | None = None) -> None:
        """Print a line (to stdout by default) without breaking the bar: the bar is
        cleared, the line printed, the bar redrawn below it."""
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stdout if file is None else file)

    def close(self) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
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


@contextlib.contextmanager
def progress_bars(no_progress: bool = False, **kw) -> Iterator[TerminalProgress | None]:
    """terminal_progress(...) for the length of a `with` block, closed at its end."""
    bars = terminal_progress(no_progress, **kw)
    try:
        yield bars
    finally:
        if bars is not None:
            bars.close()


class BenchBar:
    """``zabby bench``'s bar: seconds of warm-up + measurement, with the current
    throughput (over the last second or so) and errors beside it."""

    def __init__(self, file: TextIO | None = None, desc: str = "bench",
                 warmup: float = 0.0) -> None:
        self.file = sys.stderr if file is None else file
        self.desc = desc
        self.bar = None
        self.warmup = warmup
        self.last = (0.0, 0)  # (elapsed, completed) the rate is measured from

    def __call__(self, elapsed: float, total: float, completed: int, errors: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, file=self.file, leave=False,
                            dynamic_ncols=True, mininterval=0.2,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                       "{n:.1f}/{total:.1f} s{postfix}")
        bar = self.bar
        t0, n0 = self.last
        if elapsed - t0 >= 1.0 or (not n0 and completed):
            rate = (completed - n0) / max(elapsed - t0, 1e-3)
            self.last = (elapsed, completed)
            post = f"{rate:,.0f} ops/s"
            if errors:
                post += f", {errors} errors"
            if elapsed < self.warmup:
                post = "warm-up, " + post
            bar.set_postfix_str(post, refresh=False)
        bar.update(min(elapsed, total) - bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepBar:
    """A bar over a fixed number of steps whose label says what runs now
    (``zabby bench compare``: server start-ups, priming, each measured run)."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = sys.stderr if file is None else file
        self.bar = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, file=self.file, leave=False,
                            dynamic_ncols=True, unit="step", mininterval=0.2,
                            bar_format="{desc} {n}/{total} |{bar}| {elapsed}<{remaining}")
        self.bar.set_description_str(label, refresh=False)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        else:
            self.bar.refresh()

    def write(self, msg: str) -> None:
        """A line on stderr above the bar."""
        from tqdm import tqdm

        tqdm.write(msg, file=self.file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
