"""The watch manager as it was before a path watched by one watcher was stored
compactly: the model the compact one must match (see test_watch_model.py)."""

from __future__ import annotations

from collections.abc import Hashable
from operator import itemgetter
from typing import Any

from zabby.wire.constants import EventType, WatcherType

__all__ = ["STANDARD", "PERSISTENT", "PERSISTENT_RECURSIVE", "PathWatches", "WatchManager"]

STANDARD, PERSISTENT, PERSISTENT_RECURSIVE = 0, 1, 2


def _parents_and_self(path: str):
    """PathParentIterator.forAll: the path, then each ancestor up to "/"."""
    yield path
    while path and path != "/":
        i = path.rfind("/")
        path = path[:i] or "/"
        yield path


class PathWatches:
    """One of ZooKeeper's two WatchManager instances."""

    __slots__ = ("table", "by_watcher", "modes", "recursive_qty")

    def __init__(self) -> None:
        self.table: dict[str, dict[Any, None]] = {}
        self.by_watcher: dict[Any, dict[str, None]] = {}
        self.modes: dict[tuple[Any, str], int] = {}
        self.recursive_qty = 0

    def _set_mode(self, watcher, path: str, mode: int) -> None:
        key = (watcher, path)
        old = self.modes.pop(key, STANDARD) if mode == STANDARD else self.modes.get(key, STANDARD)
        if mode != STANDARD:
            self.modes[key] = mode
        was_rec = old == PERSISTENT_RECURSIVE
        is_rec = mode == PERSISTENT_RECURSIVE
        if was_rec != is_rec:
            self.recursive_qty += 1 if is_rec else -1

    def add(self, path: str, watcher: Hashable, mode: int = STANDARD) -> bool:
        self.table.setdefault(path, {})[watcher] = None
        paths = self.by_watcher.setdefault(watcher, {})
        self._set_mode(watcher, path, mode)
        if path in paths:
            return False
        paths[path] = None
        return True

    def mode(self, watcher, path: str) -> int:
        return self.modes.get((watcher, path), STANDARD)

    def fire(self, path: str, event_type: int, suppress: set | None = None) -> tuple[list, set]:
        """Fire watches for an event on `path`: (watchers to notify, all matched)."""
        matched: dict[Any, None] = {}
        table = self.table
        modes = self.modes
        iterator = _parents_and_self(path) if self.recursive_qty else (path,)
        at_parent = False
        for local in iterator:
            watchers = table.get(local)
            if watchers:
                for w in list(watchers):
                    mode = modes.get((w, local), STANDARD)
                    if mode == PERSISTENT_RECURSIVE:
                        if event_type != EventType.NODE_CHILDREN_CHANGED:
                            matched[w] = None
                    elif not at_parent:
                        matched[w] = None
                        if mode == STANDARD:
                            del watchers[w]
                            paths = self.by_watcher.get(w)
                            if paths is not None:
                                paths.pop(local, None)
                if not watchers:
                    del table[local]
            at_parent = True
        if suppress:
            notify = [w for w in matched if w not in suppress]
        else:
            notify = list(matched)
        return notify, set(matched)

    def contains(self, path: str, watcher) -> bool:
        """WatchManager.containsWatcher in ZooKeeper 3.8.0: true when *any*
        watcher watches the path (its leaf check does not look at which), or
        when this watcher's mode at the path is recursive."""
        if self.table.get(path) is not None:
            return True
        return self.mode(watcher, path) == PERSISTENT_RECURSIVE

    def remove(self, path: str, watcher) -> bool:
        paths = self.by_watcher.get(watcher)
        if paths is None or path not in paths:
            return False
        del paths[path]
        watchers = self.table.get(path)
        if watchers is None or watcher not in watchers:
            return False
        del watchers[watcher]
        if not watchers:
            del self.table[path]
        self._set_mode(watcher, path, STANDARD)
        return True

    def remove_watcher(self, watcher) -> None:
        paths = self.by_watcher.pop(watcher, None)
        if paths is None:
            return
        for p in paths:
            watchers = self.table.get(p)
            if watchers is not None:
                watchers.pop(watcher, None)
                if not watchers:
                    del self.table[p]
            self._set_mode(watcher, p, STANDARD)

    def size(self) -> int:
        """Watches counted per path (WatchManager.size)."""
        return sum(len(w) for w in self.table.values())

    def summary(self) -> tuple[int, int, int]:
        """(watching connections, watched paths, total watches) for `wchs`."""
        return (
            len(self.by_watcher),
            len(self.table),
            sum(len(p) for p in self.by_watcher.values()),
        )


class WatchManager:
    """Data and child watches of one server (ZooKeeper's two managers)."""

    __slots__ = ("data", "child")

    def __init__(self) -> None:
        self.data = PathWatches()
        self.child = PathWatches()

    # ----------------------------------------------------------- register
    def add_data_watch(self, path: str, watcher) -> None:
        self.data.add(path, watcher)

    def add_exist_watch(self, path: str, watcher) -> None:
        """exists: ZooKeeper keeps it as a data watch whether or not the node exists."""
        self.data.add(path, watcher)

    def add_child_watch(self, path: str, watcher) -> None:
        self.child.add(path, watcher)

    def add_persistent(self, path: str, watcher, recursive: bool) -> None:
        mode = PERSISTENT_RECURSIVE if recursive else PERSISTENT
        self.data.add(path, watcher, mode)
        self.child.add(path, watcher, mode)

    # ------------------------------------------------------------ trigger
    def trigger(self, event_type: int, path: str) -> list[tuple[Any, int, str]]:
        """Watchers to notify of one event, one-shot watches consumed."""
        if event_type == EventType.NODE_CHILDREN_CHANGED:
            notify, _ = self.child.fire(path, event_type)
        elif event_type == EventType.NODE_DELETED:
            notify, matched = self.data.fire(path, event_type)
            more, _ = self.child.fire(path, event_type, matched)
            notify = notify + more
        else:
            notify, _ = self.data.fire(path, event_type)
        return [(w, event_type, path) for w in notify]

    def trigger_all(self, events) -> list[tuple[Any, int, str]]:
        """trigger() for each (event_type, path) of an ApplyResult, in order."""
        out: list[tuple[Any, int, str]] = []
        for event_type, path in events:
            out.extend(self.trigger(event_type, path))
        return out

    # ------------------------------------------------ check/remove watches
    def has(self, path: str, watcher, watcher_type: int) -> bool:
        """checkWatches (ZooKeeper 3.8.0 semantics, see PathWatches.contains)."""
        if watcher_type == WatcherType.CHILDREN:
            return self.child.contains(path, watcher)
        if watcher_type == WatcherType.DATA:
            return self.data.contains(path, watcher)
        return self.child.contains(path, watcher) or self.data.contains(path, watcher)

    def remove_kinds(self, path: str, watcher, watcher_type: int) -> tuple[bool, bool]:
        """removeWatches: (data watch removed, child watch removed)."""
        data = child = False
        if watcher_type in (WatcherType.CHILDREN, WatcherType.ANY):
            child = self.child.remove(path, watcher)
        if watcher_type in (WatcherType.DATA, WatcherType.ANY):
            data = self.data.remove(path, watcher)
        return data, child

    def remove(self, path: str, watcher, watcher_type: int) -> bool:
        """removeWatches: whether anything was removed (False -> NOWATCHER)."""
        data, child = self.remove_kinds(path, watcher, watcher_type)
        return data or child

    def remove_watcher(self, watcher) -> None:
        """The session is gone: drop all its watches."""
        self.data.remove_watcher(watcher)
        self.child.remove_watcher(watcher)

    # ------------------------------------------------------------ reports
    def watches_by_watcher(self) -> dict[Any, set[str]]:
        """Watcher -> watched paths, data and child watches merged (`wchc`)."""
        out: dict[Any, set[str]] = {}
        for mgr in (self.data, self.child):
            for w, paths in mgr.by_watcher.items():
                if paths:
                    out.setdefault(w, set()).update(paths)
        return out

    def watches_by_path(self) -> dict[str, set[Any]]:
        """Path -> watchers, data and child watches merged (`wchp`)."""
        out: dict[str, set[Any]] = {}
        for mgr in (self.data, self.child):
            for p, ws in mgr.table.items():
                out.setdefault(p, set()).update(ws)
        return out

    def by_path_sorted(self) -> list[tuple[str, dict[Any, None]]]:
        """(path, watchers) for every watched path in path order, data and child
        watches merged (`wchp`); one sort of the paths, no per-path copies when
        only one kind of watch is set there."""
        dt, ct = self.data.table, self.child.table
        if not ct:
            return sorted(dt.items(), key=itemgetter(0))
        if not dt:
            return sorted(ct.items(), key=itemgetter(0))
        out = []
        for p in sorted(dt.keys() | ct.keys()):
            a = dt.get(p)
            b = ct.get(p)
            out.append((p, {**a, **b} if a and b else (a or b)))
        return out

    def by_watcher_merged(self) -> dict[Any, dict[str, None]]:
        """Watcher -> its watched paths, data and child merged (`wchc`); the data
        manager's dicts are shared, not copied, when a watcher has no child watch."""
        dw, cw = self.data.by_watcher, self.child.by_watcher
        out: dict[Any, dict[str, None]] = {w: ps for w, ps in dw.items() if ps}
        for w, ps in cw.items():
            if ps:
                mine = out.get(w)
                out[w] = ps if mine is None else {**mine, **ps}
        return out

    def summary_all(self) -> tuple[int, int, int]:
        """(watching connections, watched paths, total watches) over data and
        child watches merged, one per (watcher, path) (`wchs`)."""
        dw, cw = self.data.by_watcher, self.child.by_watcher
        conns = {w for w, ps in dw.items() if ps}
        conns.update(w for w, ps in cw.items() if ps)
        paths: set[str] = set()
        total = 0
        for ps in dw.values():
            paths.update(ps)
            total += len(ps)
        for w, ps in cw.items():
            paths.update(ps)
            mine = dw.get(w)
            total += len(ps.keys() - mine.keys()) if mine else len(ps)
        return len(conns), len(paths), total

    def counts(self) -> tuple[int, int, int]:
        """`wchs` as ZooKeeper 3.8 prints it: the *data* manager's
        (connections, paths, total watches)."""
        return self.data.summary()

    @property
    def watch_count(self) -> int:
        """DataTree.getWatchCount: data plus child watches (per path)."""
        return self.data.size() + self.child.size()
