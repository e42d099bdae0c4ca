"""wchs/wchc/wchp render exactly as the straightforward version did, at any size."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.ops.fourletter import cmd_wchc, cmd_wchp, cmd_wchs
from zabby.tree.watches import WatchManager

_MASK = (1 << 64) - 1


class _Conn:
    def __init__(self, sid: int) -> None:
        self.session = SimpleNamespace(id=sid)


def _sid(w) -> int:
    return w.session.id & _MASK


def _model(wm: WatchManager) -> tuple[str, str, str]:
    """The rendering before it was optimised (one set and one sort per path)."""
    by_w = {w: sorted(ps) for w, ps in wm.watches_by_watcher().items() if ps}
    paths = set()
    total = 0
    for ps in by_w.values():
        paths.update(ps)
        total += len(ps)
    wchs = f"{len(by_w)} connections watching {len(paths)} paths\nTotal watches:{total}\n"
    out = []
    for w, ps in sorted(by_w.items(), key=lambda kv: _sid(kv[0])):
        out.append(f"0x{_sid(w):x}\n")
        out.extend(f"\t{p}\n" for p in ps)
    out.append("\n")
    wchc = "".join(out)
    out = []
    by_p = {p: list(ws) for p, ws in sorted(wm.watches_by_path().items()) if ws}
    for p, ws in by_p.items():
        out.append(f"{p}\n")
        out.extend(f"\t0x{s:x}\n" for s in sorted({_sid(w) for w in ws}))
    out.append("\n")
    return wchs, wchc, "".join(out)


def _render(wm: WatchManager) -> tuple[str, str, str]:
    srv = SimpleNamespace(watches=wm, serving=True)
    return cmd_wchs(srv, None), cmd_wchc(srv, None), cmd_wchp(srv, None)


CONNS = [_Conn(0x1000000001), _Conn(-5), _Conn(7), _Conn(7)]  # two connections, one sid


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["data", "child", "pers", "gone"]), st.integers(0, 3),
                          st.sampled_from(["/a", "/b", "/a/b", "/z", "/"])), max_size=25))
def test_watch_words_render_like_the_model(script):
    wm = WatchManager()
    for kind, i, p in script:
        w = CONNS[i]
        if kind == "data":
            wm.add_data_watch(p, w)
        elif kind == "child":
            wm.add_child_watch(p, w)
        elif kind == "pers":
            wm.add_persistent(p, w, False)
        else:
            wm.remove_watcher(w)
    assert _render(wm) == _model(wm)


def test_watch_words_with_a_flood_of_watches():
    wm = WatchManager()
    a, b = _Conn(1), _Conn(2)
    for i in range(50_000):
        wm.add_data_watch(f"/n{i:06d}", a)
    for i in range(0, 50_000, 7):
        wm.add_child_watch(f"/n{i:06d}", b)
    assert _render(wm) == _model(wm)
