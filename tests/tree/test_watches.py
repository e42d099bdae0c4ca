"""WatchManager: ZooKeeper 3.8's data/child watch bookkeeping."""

from __future__ import annotations

from treeutil import Driver

from zabby.tree import WatchManager
from zabby.wire.constants import EventType, Op, WatcherType
from zabby.wire.records import PathWatchRequest

C, D, DC, CC = (EventType.NODE_CREATED, EventType.NODE_DELETED,
                EventType.NODE_DATA_CHANGED, EventType.NODE_CHILDREN_CHANGED)


def fired(wm, ev, path):
    return sorted(w for w, _, _ in wm.trigger(ev, path))


def test_one_shot_data_watch():
    wm = WatchManager()
    wm.add_data_watch("/a", "s1")
    wm.add_data_watch("/a", "s2")
    assert fired(wm, DC, "/a") == ["s1", "s2"]
    assert fired(wm, DC, "/a") == []  # consumed


def test_event_kinds_reach_the_right_watches():
    wm = WatchManager()
    wm.add_data_watch("/a", "data")
    wm.add_child_watch("/a", "child")
    assert fired(wm, CC, "/a") == ["child"]
    wm.add_child_watch("/a", "child")
    assert fired(wm, C, "/a") == ["data"]
    wm.add_data_watch("/a", "data")
    assert fired(wm, D, "/a") == ["child", "data"]
    assert fired(wm, D, "/a") == []


def test_exist_watch_on_absent_node_fires_on_create():
    wm = WatchManager()
    wm.add_exist_watch("/x", "s")
    assert wm.has("/x", "s", WatcherType.DATA)
    assert fired(wm, C, "/x") == ["s"]


def test_delete_notifies_a_watcher_once():
    wm = WatchManager()
    wm.add_data_watch("/a", "s")
    wm.add_child_watch("/a", "s")
    out = wm.trigger(D, "/a")
    assert out == [("s", D, "/a")]
    # both one-shot watches are consumed
    assert not wm.has("/a", "s", WatcherType.ANY)


def test_trigger_on_parent_does_not_fire_children_watches():
    wm = WatchManager()
    wm.add_data_watch("/a/b", "s")
    assert fired(wm, DC, "/a") == []
    assert fired(wm, DC, "/a/b") == ["s"]


def test_persistent_watch_survives_and_sees_all_types():
    wm = WatchManager()
    wm.add_persistent("/a", "p", recursive=False)
    assert fired(wm, DC, "/a") == ["p"]
    assert fired(wm, CC, "/a") == ["p"]
    assert fired(wm, C, "/a") == ["p"]
    assert fired(wm, D, "/a") == ["p"]
    assert fired(wm, DC, "/a") == ["p"]
    assert fired(wm, DC, "/a/b") == []  # not recursive


def test_recursive_watch():
    wm = WatchManager()
    wm.add_persistent("/a", "r", recursive=True)
    assert fired(wm, DC, "/a/b/c") == ["r"]
    assert fired(wm, C, "/a/b") == ["r"]
    assert fired(wm, D, "/a") == ["r"]
    assert fired(wm, CC, "/a") == []  # never for children changes
    assert fired(wm, CC, "/a/b") == []
    assert fired(wm, DC, "/ab") == []
    assert fired(wm, DC, "/") == []
    wm.add_persistent("/", "root", recursive=True)
    assert fired(wm, DC, "/x") == ["root"]
    assert fired(wm, DC, "/a/q") == ["r", "root"]


def test_standard_watch_replaces_persistent_mode():
    # ZooKeeper keeps one mode per (watcher, path): a later one-shot watch wins
    wm = WatchManager()
    wm.add_persistent("/a", "s", recursive=False)
    wm.add_data_watch("/a", "s")
    assert fired(wm, DC, "/a") == ["s"]
    assert fired(wm, DC, "/a") == []
    # but the child side is still persistent
    assert fired(wm, CC, "/a") == ["s"]
    assert fired(wm, CC, "/a") == ["s"]


def test_remove_and_kinds():
    wm = WatchManager()
    wm.add_data_watch("/a", "s")
    wm.add_child_watch("/a", "s")
    assert wm.remove_kinds("/a", "s", WatcherType.DATA) == (True, False)
    assert not wm.remove("/a", "s", WatcherType.DATA)
    assert wm.remove_kinds("/a", "s", WatcherType.ANY) == (False, True)
    assert not wm.remove("/a", "s", WatcherType.ANY)
    assert fired(wm, D, "/a") == []
    wm.add_persistent("/p", "s", recursive=True)
    assert wm.remove("/p", "s", WatcherType.ANY)
    assert fired(wm, DC, "/p/x") == []


def test_has_follows_zookeeper_380():
    wm = WatchManager()
    wm.add_data_watch("/a", "other")
    # ZooKeeper 3.8.0's containsWatcher answers for the path, whoever watches it
    assert wm.has("/a", "me", WatcherType.DATA)
    assert not wm.has("/a", "me", WatcherType.CHILDREN)
    assert wm.has("/a", "me", WatcherType.ANY)
    assert not wm.has("/b", "me", WatcherType.ANY)


def test_remove_watcher_drops_everything():
    wm = WatchManager()
    wm.add_data_watch("/a", "s")
    wm.add_child_watch("/b", "s")
    wm.add_persistent("/c", "s", recursive=True)
    wm.add_data_watch("/a", "t")
    wm.remove_watcher("s")
    assert fired(wm, DC, "/a") == ["t"]
    assert fired(wm, CC, "/b") == []
    assert fired(wm, DC, "/c/d") == []
    assert wm.watches_by_watcher() == {}


def test_reports():
    wm = WatchManager()
    wm.add_data_watch("/a", "s")
    wm.add_child_watch("/a", "s")
    wm.add_child_watch("/b", "t")
    assert wm.watches_by_watcher() == {"s": {"/a"}, "t": {"/b"}}
    assert wm.watches_by_path() == {"/a": {"s"}, "/b": {"t"}}
    assert wm.counts() == (1, 1, 1)  # `wchs` reports the data watches only
    assert wm.watch_count == 3


def test_tree_registers_watches_like_zookeeper():
    d = Driver()
    t = d.tree
    d.create("/a")
    # exists on an absent node registers; getData on it does not
    t.read(Op.EXISTS, PathWatchRequest("/x", True), [], 1, watcher="s")
    t.read(Op.GET_DATA, PathWatchRequest("/y", True), [], 1, watcher="s")
    t.read(Op.GET_CHILDREN, PathWatchRequest("/a", True), [], 1, watcher="s")
    t.read(Op.GET_DATA, PathWatchRequest("/a", False), [], 1, watcher="s")
    assert t.watches.watches_by_watcher() == {"s": {"/x", "/a"}}
    r = d.create("/a/b")
    out = t.watches.trigger_all(r.events)
    assert out == [("s", CC, "/a")]
    r = d.create("/x")
    assert t.watches.trigger_all(r.events) == [("s", C, "/x")]


def test_set_watches_after_reconnect():
    d = Driver()
    t = d.tree
    d.create("/a", b"1")  # zxid 1
    d.create("/b")  # zxid 2
    d.create("/b/c")  # zxid 3
    d.set_data("/a", b"2")  # zxid 4
    out = t.set_watches(3, ["/a", "/b", "/gone"], ["/b", "/new"], ["/b", "/gone"], ["/p"], ["/r"], watcher="s")
    assert out == [
        (DC, "/a"), (D, "/gone"), (C, "/b"), (D, "/gone"),
    ]
    # still-current watches are registered: data on /b, exist on /new, child on /b
    assert t.watches.trigger(DC, "/b") == [("s", DC, "/b")]
    assert t.watches.trigger(C, "/new") == [("s", C, "/new")]
    assert t.watches.trigger(CC, "/b") == [("s", CC, "/b")]
    assert t.watches.trigger(DC, "/p") == [("s", DC, "/p")]
    assert t.watches.trigger(DC, "/r/x") == [("s", DC, "/r/x")]
    out = t.set_watches(2, [], [], ["/b"], watcher="s")
    assert out == [(CC, "/b")]  # pzxid 3 > 2
