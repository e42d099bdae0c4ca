"""Big single operations: the fast paths give exactly what the simple ones give."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from treeutil import OPEN, Driver

from zabby.tree.javaorder import children_order, grow_cap, java_order
from zabby.wire.constants import Err, Op
from zabby.wire.jute import write_ustring
from zabby.wire.protocol import MultiRequest, MultiResponse, decode_request, encode_request
from zabby.wire.records import (
    CheckVersionRequest,
    CreateRequest,
    GetChildrenResponse,
    PathWatchRequest,
)

NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), NAMES), max_size=60))
def test_children_order_matches_java_order_through_adds_removes_and_listings(script):
    ch: dict = {}
    cap = 0
    for add, name in script:
        if add:
            ch.setdefault(name, None)
            cap = grow_cap(cap, len(ch))
        else:
            ch.pop(name, None)
        # listing in between caches hashes in the dict; order must not change
        assert children_order(ch, cap) == java_order(list(ch), cap)


def test_get_children_of_many_children_is_hashset_order():
    d = Driver()
    d.create("/p")
    names = [f"c{i}" for i in range(30_000)]
    for i in range(0, len(names), 5_000):
        r = d.multi([(Op.CREATE, CreateRequest(f"/p/{n}", b"", OPEN, 0)) for n in names[i:i + 5_000]])
        assert r.err == Err.OK
    node = d.tree.get_node("/p")
    err, resp = d.read(Op.GET_CHILDREN, PathWatchRequest("/p", False))
    assert err == Err.OK and resp.children == java_order(names, node.child_cap)
    d.delete("/p/c7")
    d.create("/p/c7")
    err, resp = d.read(Op.GET_CHILDREN, PathWatchRequest("/p", False))
    expect = [n for n in names if n != "c7"] + ["c7"]
    assert resp.children == java_order(expect, node.child_cap)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=30)))
def test_string_vector_encoding_matches_item_by_item(items):
    fast = GetChildrenResponse(items).to_bytes()
    slow = bytearray()
    if items is None:
        slow += b"\xff\xff\xff\xff"
    else:
        slow += len(items).to_bytes(4, "big")
        for it in items:
            write_ustring(slow, it)
    assert fast == bytes(slow)


def test_string_vector_with_lone_surrogate_encodes_like_write_ustring():
    items = ["a", "\ud800x", "b"]
    slow = bytearray(len(items).to_bytes(4, "big"))
    for it in items:
        write_ustring(slow, it)
    assert GetChildrenResponse(items).to_bytes() == bytes(slow)


def test_multi_of_many_checks_round_trips_and_applies():
    n = 58_000
    req = MultiRequest([(Op.CHECK, CheckVersionRequest("/", -1)) for _ in range(n)])
    frame = encode_request(3, Op.MULTI, req)[4:]
    xid, op, body = decode_request(frame)
    assert (xid, op) == (3, Op.MULTI) and body == req
    d = Driver()
    r = d.write(Op.MULTI, body)
    assert r.err == Err.OK
    assert isinstance(r.response, MultiResponse) and len(r.response.results) == n
    assert all(res == (Op.CHECK, 0, None) for res in r.response.results)


# ------------------------------------------------------------ watch reports
_W = st.sampled_from(["s1", "s2", "s3"])
_P = st.sampled_from(["/a", "/b", "/a/b", "/c", "/"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["data", "child", "pers", "rec", "rm", "gone"]), _W, _P), max_size=25))
def test_merged_watch_reports_match_the_simple_ones(script):
    from zabby.tree.watches import WatchManager
    from zabby.wire.constants import WatcherType

    wm = WatchManager()
    for kind, w, p in script:
        if kind == "data":
            wm.add_data_watch(p, w)
        elif kind == "child":
            wm.add_child_watch(p, w)
        elif kind in ("pers", "rec"):
            wm.add_persistent(p, w, kind == "rec")
        elif kind == "rm":
            wm.remove(p, w, WatcherType.ANY)
        else:
            wm.remove_watcher(w)
    by_w = {w: ps for w, ps in wm.watches_by_watcher().items() if ps}
    by_p = {p: ws for p, ws in wm.watches_by_path().items() if ws}
    assert {w: set(ps) for w, ps in wm.by_watcher_merged().items()} == by_w
    got = [(p, set(e) if isinstance(e, dict) else {e}) for p, e in wm.by_path_sorted()]
    assert got == sorted(by_p.items())
    paths = set().union(*by_w.values()) if by_w else set()
    assert wm.summary_all() == (len(by_w), len(paths), sum(len(v) for v in by_w.values()))


def test_big_listing_is_kept_until_the_directory_changes():
    from zabby.wire.jute import EncodedStrings

    d = Driver()
    d.create("/p")
    names = [f"k{i}" for i in range(3_000)]
    d.multi([(Op.CREATE, CreateRequest(f"/p/{n}", b"", OPEN, 0)) for n in names])

    def listing():
        err, resp = d.read(Op.GET_CHILDREN, PathWatchRequest("/p", False))
        assert err == Err.OK
        return resp

    node = d.tree.get_node("/p")
    first = listing()
    assert isinstance(first.children, EncodedStrings)
    assert listing().children is first.children
    assert first.to_bytes() == GetChildrenResponse(list(first.children)).to_bytes()
    # every kind of change drops it: create, delete, a multi, session close
    d.create("/p/new")
    assert listing().children == java_order(names + ["new"], node.child_cap)
    d.delete("/p/k5")
    names.remove("k5")
    assert listing().children == java_order(names + ["new"], node.child_cap)
    d.open_session(9)
    d.multi([(Op.CREATE, CreateRequest("/p/eph", b"", OPEN, 1))], sid=9)
    assert "eph" in listing().children
    d.close_session(9)
    got = listing()
    assert got.children == java_order(names + ["new"], node.child_cap)
    assert got.to_bytes() == GetChildrenResponse(list(got.children)).to_bytes()
    # multiRead and getChildren2 see the same
    err, resp = d.read(Op.GET_CHILDREN2, PathWatchRequest("/p", False))
    assert resp.children == got.children
    err, resp = d.read(Op.MULTI_READ, MultiRequest([(Op.GET_CHILDREN, PathWatchRequest("/p", False))]))
    assert resp.results[0][2].children == got.children
