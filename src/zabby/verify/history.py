"""The recorded history of a verify run: register ops (linearizability.Op) and
events of the other workloads (``Event``), both as JSON lines."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zabby.testing.linearizability import HistoryRecorder, Op

__all__ = ["Event", "History", "load"]


@dataclass
class Event:
    """One operation or observation of a non-register workload.

    ``wl``: the workload (seq, counter, queue, lock, eph, watch, fault, final);
    ``kind``: what was done (create, multi, delete, enter, exit, event, read, ...);
    ``outcome``: ok / fail / unknown / info; ``data``: its arguments and results."""

    wl: str
    process: str
    kind: str
    invoke: float
    complete: float | None = None
    outcome: str = "unknown"
    data: dict[str, Any] = field(default_factory=dict)
    index: int = -1

    def describe(self) -> str:
        end = "?" if self.complete is None else f"{self.complete:.3f}"
        return (f"#{self.index} {self.wl} p={self.process} {self.kind} [{self.invoke:.3f}, "
                f"{end}] {self.outcome} {self.data}")


class History:
    """Thread-safe: the register recorder plus a list of Events, on one clock."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.t0 = clock()
        self.registers = HistoryRecorder(clock)
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def begin(self, wl: str, process: str, kind: str, **data: Any) -> Event:
        ev = Event(wl, process, kind, self.clock(), data=dict(data))
        with self._lock:
            ev.index = len(self._events)
            self._events.append(ev)
        return ev

    def done(self, ev: Event, outcome: str, **data: Any) -> Event:
        ev.outcome = outcome
        ev.complete = self.clock() if outcome != "unknown" else None
        ev.data.update(data)
        return ev

    def note(self, wl: str, process: str, kind: str, **data: Any) -> Event:
        ev = self.begin(wl, process, kind, **data)
        ev.complete = ev.invoke
        ev.outcome = "info"
        return ev

    def events(self, wl: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self._events if wl is None or e.wl == wl]

    def ops(self) -> list[Op]:
        return self.registers.history()

    def dump(self, path: Path) -> None:
        with open(path, "w") as f:
            for o in self.ops():
                f.write(json.dumps({"wl": "register", "process": str(o.process),
                                    "kind": o.kind, "key": o.key, "invoke": o.invoke,
                                    "complete": o.complete, "outcome": o.outcome,
                                    "value": o.value, "expected_version": o.expected_version,
                                    "result": o.result, "zxid": o.zxid, "meta": o.meta})
                        + "\n")
            for e in self.events():
                d = asdict(e)
                d.pop("index")
                f.write(json.dumps(d, default=str) + "\n")


def load(path: Path) -> History:
    """A History read back from ``dump`` (for re-checking a run)."""
    h = History()
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            wl = d.pop("wl")
            if wl == "register":
                if isinstance(d["result"], list):
                    d["result"] = tuple(d["result"])
                h.registers._ops.append(Op(**d))
            else:
                ev = Event(wl, **d)
                ev.index = len(h._events)
                h._events.append(ev)
    return h
