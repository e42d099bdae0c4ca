"""Watches, as ZooKeeper 3.8's DataTree keeps them: pure bookkeeping, no I/O.

ZooKeeper holds two watch managers: *data* watches (getData, exists -- also on
absent nodes) and *child* watches (getChildren). A persistent watch (addWatch)
is registered in both. Each manager remembers one mode per (watcher, path):
standard (one-shot), persistent, or persistent-recursive; registering a
standard watch where a persistent one exists turns it back into one-shot, as
in ZooKeeper.

Triggers (DataTree.createNode / deleteNode / setData):
- NODE_CREATED, NODE_DATA_CHANGED: data watches on the path;
- NODE_DELETED: data watches, then child watches on the path (a watcher
  notified by the first is not notified again);
- NODE_CHILDREN_CHANGED: child watches on the path.
Recursive watches on the path or any ancestor fire for every type except
NODE_CHILDREN_CHANGED; other watches fire only on the path itself. One-shot
watches are removed when they fire.

Watchers are any hashable object (the server passes its session/connection).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

from ..wire.constants import EventType, WatcherType

__all__ = ["STANDARD", "PERSISTENT", "PERSISTENT_RECURSIVE", "PathWatches", "WatchManager"]

# Final: mypyc reads them as C constants, not from the module dict
STANDARD: Final = 0
PERSISTENT: Final = 1
PERSISTENT_RECURSIVE: Final = 2
_EV_DELETED: Final = EventType.NODE_DELETED
_EV_CHILDREN_CHANGED: Final = EventType.NODE_CHILDREN_CHANGED


def _parents_and_self(path: str):
    """PathParentIterator.forAll: the path, then each ancestor up to "/"."""
    yield path
    while path and path != "/":
        i = path.rfind("/")
        path = path[:i] or "/"
        yield path


class PathWatches:
    """One of ZooKeeper's two WatchManager instances.

    `table` maps a path to its watcher when only one watches it (a flood of
    watches is mostly one session's, one per path: a dict per path cost ~180 of
    the ~300 bytes a watch took) or to a dict of watchers when several do.
    """

    __slots__ = ("table", "by_watcher", "modes", "recursive_qty")

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}
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
        table = self.table
        cur = table.get(path)
        if cur is None:
            table[path] = watcher
        elif type(cur) is dict:
            cur[watcher] = None
        elif cur != watcher:
            table[path] = {cur: None, watcher: None}
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
            entry = table.get(local)
            if entry is not None:
                single = type(entry) is not dict
                for w in (entry,) if single else list(entry):
                    mode = modes.get((w, local), STANDARD) if modes else STANDARD
                    if mode == PERSISTENT_RECURSIVE:
                        if event_type != _EV_CHILDREN_CHANGED:
                            matched[w] = None
                    elif not at_parent:
                        matched[w] = None
                        if mode == STANDARD:
                            if single:
                                del table[local]
                            else:
                                del entry[w]
                            paths = self.by_watcher.get(w)
                            if paths is not None:
                                paths.pop(local, None)
                if not single and not entry:
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
        entry = self.table.get(path)
        if entry is None:
            return False
        if type(entry) is dict:
            if watcher not in entry:
                return False
            del entry[watcher]
            if not entry:
                del self.table[path]
        elif entry == watcher:
            del self.table[path]
        else:
            return False
        self._set_mode(watcher, path, STANDARD)
        return True

    def remove_watcher(self, watcher) -> None:
        paths = self.by_watcher.pop(watcher, None)
        if paths is None:
            return
        table = self.table
        for p in paths:
            entry = table.get(p)
            if entry is not None:
                if type(entry) is dict:
                    entry.pop(watcher, None)
                    if not entry:
                        del table[p]
                elif entry == watcher:
                    del table[p]
            self._set_mode(watcher, p, STANDARD)

    def size(self) -> int:
        """Watches counted per path (WatchManager.size)."""
        return sum(len(e) if type(e) is dict else 1 for e in self.table.values())

    def watchers_at(self, path: str) -> tuple | dict:
        """The watchers of one path (empty when none)."""
        entry = self.table.get(path)
        if entry is None:
            return ()
        return entry if type(entry) is dict else (entry,)

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
        data = self.data
        child = self.child
        if (path not in data.table and path not in child.table
                and not data.recursive_qty and not child.recursive_qty):
            return []  # the common case: nobody watches this path (2-3 events a write)
        if event_type == _EV_CHILDREN_CHANGED:
            notify, _ = self.child.fire(path, event_type)
        elif event_type == _EV_DELETED:
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
            for p, e in mgr.table.items():
                out.setdefault(p, set()).update(e if type(e) is dict else (e,))
        return out

    def by_path_sorted(self) -> list[tuple[str, Any]]:
        """(path, entry) for every watched path in path order, data and child
        watches merged (`wchp`). An entry is a dict of watchers (it may hold just
        one) or a single watcher itself, as the tables keep them (no per-path
        object is made for a flood of one session's watches)."""
        dt, ct = self.data.table, self.child.table
        if not ct or not dt:
            return sorted((dt or ct).items())  # paths are unique: entries never compared
        out = []
        at_d, at_c = self.data.watchers_at, self.child.watchers_at
        for p in sorted(dt.keys() | ct.keys()):
            a = at_d(p)
            b = at_c(p)
            if a and b:
                merged = dict.fromkeys([*a, *b])
                out.append((p, merged if len(merged) > 1 else next(iter(merged))))
            else:
                e = a or b
                out.append((p, e if type(e) is dict else e[0]))
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
