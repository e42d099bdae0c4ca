"""The compact watch tables behave exactly like the plain dict-per-path ones."""

from __future__ import annotations

import _watch_model as model
from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.tree.watches import WatchManager
from zabby.wire.constants import EventType, WatcherType

_PATHS = ["/", "/a", "/a/b", "/a/b/c", "/d"]
_STEP = st.tuples(
    st.sampled_from(["data", "exist", "child", "pers", "rec", "trigger", "rm", "has", "gone"]),
    st.sampled_from(["s1", "s2", "s3"]),
    st.sampled_from(_PATHS),
    st.sampled_from([EventType.NODE_CREATED, EventType.NODE_DELETED, EventType.NODE_DATA_CHANGED,
                     EventType.NODE_CHILDREN_CHANGED]),
    st.sampled_from([WatcherType.CHILDREN, WatcherType.DATA, WatcherType.ANY]),
)


def _reports(wm):
    return (
        {w: sorted(ps) for w, ps in wm.watches_by_watcher().items()},
        {p: sorted(ws) for p, ws in wm.watches_by_path().items()},
        wm.counts(),
        wm.watch_count,
    )


@settings(max_examples=500, deadline=None)
@given(st.lists(_STEP, max_size=40))
def test_compact_tables_match_the_model(script):
    a, b = WatchManager(), model.WatchManager()
    for kind, w, p, ev, wt in script:
        for wm in (a, b):
            if kind == "data":
                wm.add_data_watch(p, w)
            elif kind == "exist":
                wm.add_exist_watch(p, w)
            elif kind == "child":
                wm.add_child_watch(p, w)
            elif kind in ("pers", "rec"):
                wm.add_persistent(p, w, kind == "rec")
            elif kind == "gone":
                wm.remove_watcher(w)
        if kind == "trigger":
            assert a.trigger(ev, p) == b.trigger(ev, p)
        elif kind == "rm":
            assert a.remove_kinds(p, w, wt) == b.remove_kinds(p, w, wt)
        elif kind == "has":
            assert a.has(p, w, wt) == b.has(p, w, wt)
        assert _reports(a) == _reports(b)
    for p in _PATHS:
        assert a.trigger_all([(EventType.NODE_DELETED, p)]) == b.trigger_all([(EventType.NODE_DELETED, p)])
    assert _reports(a) == _reports(b)
