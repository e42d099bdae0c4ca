"""The checks of ``zabby verify``: one function per workload, each taking the
History (and the final state the runner collected, as "final" notes) and
returning ``Anomaly`` objects. A check that cannot decide (the linearizability
search ran out of budget) says so in ``Report.undecided``, never guesses.

What each check holds the ensemble to is in docs/VERIFY.md; in short:

* register: writes, cas and sync+reads linearizable; plain reads a per-session
  prefix of the committed order (zabby.testing.linearizability);
* seq: no sequential name handed out twice, no create applied twice, no
  acknowledged create lost;
* counter: the counter and its multi-created log agree (multi is atomic), no two
  acknowledged increments to the same value, none lost, none from a failed multi;
* queue: an item is consumed (delete ok) at most once, an acknowledged item is
  consumed or still queued at the end, a consumed item is gone;
* lock: no holder's enter..exit (committed writes guarded by a check of its lock
  node) contains another holder's write;
* eph: an ephemeral is never gone while its session still gets "ok" for it, and
  never there after its session was closed;
* watch: one event per one-shot watch (none without a watch), no read reflecting a
  change before that change's event (the final reads make this "no event lost"),
  events in zxid order within a connection, persistent recursive watches deliver
  each change committed while registered exactly once;
* members: on an ensemble it started, every member holds the same persistent znodes
  under the run's root at the end (czxid, mzxid, version, data): a member rebuilt
  after damage at rest serves nothing the others do not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from zabby.testing.linearizability import check_history
from zabby.wire.constants import EventType

from .history import Event, History

__all__ = ["Anomaly", "Report", "check_all"]


@dataclass
class Anomaly:
    workload: str
    name: str  # short: "lost-write", "duplicate-event", ...
    detail: str
    at: float | None = None  # monotonic time, for the plot

    def __str__(self) -> str:
        return f"{self.workload}/{self.name}: {self.detail}"


@dataclass
class Report:
    anomalies: list[Anomaly] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.anomalies:
            return "INVALID"
        if self.undecided:
            return "UNKNOWN"
        return "VALID"


def _final(hist: History, what: str) -> dict[str, Any] | None:
    for e in hist.events("final"):
        if e.kind == what:
            return e.data
    return None


def _name(path: str) -> str:
    return path.rsplit("/", 1)[1]


# ------------------------------------------------------------------ register
def check_registers(hist: History, initial: dict[str, tuple[Any, int]], report: Report,
                    max_steps: int) -> None:
    ops = hist.ops()
    if not ops:
        return
    res = check_history(ops, initial, max_steps=max_steps)
    report.stats["register_steps"] = sum(res.steps.values())
    for p in res.problems:
        name = "not-linearizable" if "not linearizable" in p else (
            "stale-read" if ("went back" in p or "back in the committed" in p) else "bad-read")
        report.anomalies.append(Anomaly("register", name, p))
    report.undecided += [f"register {u}" for u in res.undecided]
    # the explicit form of "nothing acknowledged is lost"
    finals = [o for o in ops if str(o.process).startswith("final") and o.outcome == "ok"]
    for key in initial:
        fv = [o.result[1] for o in finals if o.key == key]
        acked = [o for o in ops if o.key == key and o.kind in ("write", "cas")
                 and o.outcome == "ok" and o.result is not None]
        if fv and acked:
            top = max(acked, key=lambda o: o.result)
            if top.result > max(fv):
                report.anomalies.append(Anomaly(
                    "register", "lost-write",
                    f"{key} ends at version {max(fv)}, but {top.describe()}", top.complete))


# ------------------------------------------------------------------ seq
def check_seq(hist: History, report: Report) -> None:
    evs = [e for e in hist.events("seq") if e.kind == "create"]
    final = _final(hist, "seq")
    by_path: dict[str, Event] = {}
    for e in evs:
        if e.outcome != "ok":
            continue
        p = e.data["path"]
        if p in by_path:
            report.anomalies.append(Anomaly(
                "seq", "duplicate-name", f"{p} handed out twice: {by_path[p].describe()} / "
                f"{e.describe()}", e.complete))
        by_path[p] = e
    if final is None:
        return
    children: dict[str, str] = final["children"]  # name -> data (token)
    tokens: dict[str, str] = {}
    for name, token in children.items():
        if token in tokens:
            report.anomalies.append(Anomaly(
                "seq", "applied-twice", f"create {token} made both {tokens[token]} and {name}"))
        tokens[token] = name
    for p, e in by_path.items():
        name = _name(p)
        if name not in children:
            report.anomalies.append(Anomaly(
                "seq", "lost-create", f"acknowledged {e.describe()} is gone", e.complete))
        elif children[name] != e.data["token"]:
            report.anomalies.append(Anomaly(
                "seq", "wrong-data", f"{p} holds {children[name]!r}, but {e.describe()}",
                e.complete))


# ------------------------------------------------------------------ counter
def check_counter(hist: History, report: Report) -> None:
    evs = hist.events("counter")
    final = _final(hist, "counter")
    acked = [e for e in evs if e.outcome == "ok"]
    seen: dict[int, Event] = {}
    for e in acked:
        v = e.data["value"]
        if v in seen:
            report.anomalies.append(Anomaly(
                "counter", "lost-update", f"two increments to {v}: {seen[v].describe()} / "
                f"{e.describe()}", e.complete))
        seen[v] = e
    if final is None:
        return
    value, log = final["value"], set(final["log"])
    if value != len(log):
        report.anomalies.append(Anomaly(
            "counter", "multi-not-atomic",
            f"the counter is {value} but its log has {len(log)} entries"))
    tokens = {e.data["token"]: e for e in evs}
    for e in acked:
        if f"inc-{e.data['token']}" not in log:
            report.anomalies.append(Anomaly(
                "counter", "lost-increment", f"acknowledged {e.describe()} is not in the log",
                e.complete))
    for name in log:
        e = tokens.get(name[4:])
        if e is None or e.outcome == "fail":
            report.anomalies.append(Anomaly(
                "counter", "phantom-increment",
                f"log entry {name} from a multi that {'failed' if e else 'nobody sent'}"
                + (f": {e.describe()}" if e else "")))
    unknown = sum(1 for e in evs if e.outcome == "unknown")
    if not (len(acked) <= value <= len(acked) + unknown):
        report.anomalies.append(Anomaly(
            "counter", "bad-total",
            f"final value {value}, acknowledged {len(acked)}, unknown {unknown}"))


# ------------------------------------------------------------------ queue
def check_queue(hist: History, report: Report) -> None:
    evs = hist.events("queue")
    final = _final(hist, "queue")
    takes: dict[str, list[Event]] = defaultdict(list)
    for e in evs:
        if e.kind == "take" and e.outcome in ("ok", "unknown"):
            takes[e.data["path"]].append(e)
    for p, lst in takes.items():
        oks = [e for e in lst if e.outcome == "ok"]
        if len(oks) > 1:
            report.anomalies.append(Anomaly(
                "queue", "consumed-twice", f"{p}: " + " / ".join(e.describe() for e in oks),
                oks[1].complete))
    if final is None:
        return
    left = set(final["children"])
    for e in evs:
        if e.kind == "put" and e.outcome == "ok":
            p = e.data["path"]
            if _name(p) not in left and not takes.get(p):
                report.anomalies.append(Anomaly(
                    "queue", "lost-item", f"acknowledged {e.describe()} was never consumed "
                    f"and is not in the queue", e.complete))
    for p, lst in takes.items():
        if _name(p) in left and any(e.outcome == "ok" for e in lst):
            report.anomalies.append(Anomaly(
                "queue", "item-came-back", f"{p} was consumed but is still queued"))


# ------------------------------------------------------------------ lock
def check_lock(hist: History, report: Report) -> None:
    writes = [e for e in hist.events("lock") if e.outcome == "ok" and e.kind in ("enter", "exit")]
    enters: dict[tuple[str, str], Event] = {}
    spans = []
    for e in writes:
        k = (e.process, e.data["node"])
        if e.kind == "enter":
            enters[k] = e
        elif k in enters:
            spans.append((enters.pop(k), e))
    for en, ex in spans:
        lo, hi = en.data["zxid"], ex.data["zxid"]
        for w in writes:
            if w.data["node"] != en.data["node"] and lo < w.data["zxid"] < hi:
                report.anomalies.append(Anomaly(
                    "lock", "two-holders",
                    f"{w.describe()} committed at {w.data['zxid']:#x}, inside the tenure of "
                    f"{en.data['node']} ({lo:#x}..{hi:#x}: {en.describe()})", w.complete))
                break
    report.stats["lock_tenures"] = len(spans)


# ------------------------------------------------------------------ ephemerals
def t_after(e: Event, made: dict[str, float | None]) -> bool:
    t = made.get(e.process)
    return t is not None and e.invoke > t


def check_eph(hist: History, report: Report) -> None:
    evs = hist.events("eph")
    by_node: dict[str, list[Event]] = defaultdict(list)
    by_proc: dict[str, list[Event]] = defaultdict(list)
    for e in evs:
        by_node[e.data["node"]].append(e)
        by_proc[e.process].append(e)
    for node, lst in by_node.items():
        gone = [e for e in lst if e.kind == "observe" and e.outcome == "ok"
                and not e.data["exists"]]
        closed = [e for e in lst if e.kind == "close" and e.outcome == "ok"]
        for t in (e for e in lst if e.kind == "touch" and e.outcome == "ok"):
            g = next((g for g in gone if g.complete < t.invoke), None)
            if g is not None:
                report.anomalies.append(Anomaly(
                    "eph", "vanished-early", f"{node} was seen gone ({g.describe()}) while its "
                    f"session still changed it ({t.describe()})", t.complete))
                break
        # a session's own NONODE counts only once its create was acknowledged (or the
        # node was found owned by it after a create without a reply)
        made = {e.process: e.complete for e in lst
                if (e.kind == "create" and e.outcome == "ok") or e.kind == "adopt"}
        for t in (e for e in lst if e.kind == "touch" and e.outcome == "fail"
                  and t_after(e, made)):
            later = next((o for o in by_proc[t.process]
                          if o.outcome == "ok" and o.invoke > t.complete), None)
            if later is not None:
                report.anomalies.append(Anomaly(
                    "eph", "vanished-early", f"{node} missing for its own live session "
                    f"({t.describe()}; the session answered later: {later.describe()})",
                    t.complete))
                break
        for c in closed:
            o = next((o for o in lst if o.kind == "observe" and o.outcome == "ok"
                      and o.data["exists"] and o.invoke > c.complete), None)
            if o is not None:
                report.anomalies.append(Anomaly(
                    "eph", "outlived-session", f"{node} still there ({o.describe()}) after "
                    f"its session closed ({c.describe()})", o.complete))


# ------------------------------------------------------------------ watches
def check_watch(hist: History, report: Report) -> None:
    evs = hist.events("watch")
    final = _final(hist, "watch")
    # the committed zxid of each change: (path, version) of setData; each child's czxid
    change_zxid: dict[tuple[str, int], int] = {}
    for e in evs:
        if e.kind == "set" and e.outcome == "ok":
            change_zxid[(e.data["path"], e.data["version"])] = e.data["zxid"]
    czxid: dict[str, int] = {}
    if final is not None:
        czxid = dict(final["children"])  # path -> czxid
    for e in evs:
        if e.kind == "add" and e.outcome == "ok":
            czxid.setdefault(e.data["path"], e.data["zxid"])
    by_proc: dict[str, list[Event]] = defaultdict(list)
    for e in evs:
        if e.kind in ("arm", "event", "read", "pread", "segment", "final"):
            by_proc[e.process].append(e)
    n_events = n_ordered = n_created = n_resumed = n_catchup = 0
    n_persistent = n_persistent_checked = 0
    for proc, lst in by_proc.items():
        lst.sort(key=lambda e: e.index)
        armed: dict[str, Event] = {}
        told: set[int] = set()
        seen_created: dict[str, Event] = {}
        last: tuple[int, Event] | None = None  # last known event zxid in this segment
        segs: dict[int, list[int]] = {}  # seg -> [registered at, highest zxid seen]
        # persistent watch on <root>/wp: per segment, events so far and the version the
        # segment started from (the first read's version less the events before it)
        p_count: dict[int, int] = defaultdict(int)
        p_base: dict[int, int] = {}
        for e in lst:
            d = e.data
            seg = d.get("seg")
            if e.kind == "segment":
                n_resumed += bool(d.get("resumed"))
                segs[seg] = [d["reg"], d["reg"]]
                last = None
                continue
            if e.kind in ("arm", "read", "pread", "final") and seg in segs:
                segs[seg][1] = max(segs[seg][1], d.get("hzxid") or 0)
            if e.kind == "pread":
                if seg not in p_base:
                    p_base[seg] = d["version"] - p_count[seg]
                    continue
                want = d["version"] - p_base[seg]
                got = p_count[seg]
                if got != want:
                    name = "missing-event" if got < want else "duplicate-event"
                    report.anomalies.append(Anomaly(
                        "watch", name, f"{proc}'s persistent watch on {d['path']} delivered "
                        f"{got} events on connection {seg} for the {want} changes from version "
                        f"{p_base[seg]} to {d['version']} it read: {e.describe()}", e.invoke))
                    p_base[seg] = d["version"] - got  # report each discrepancy once
                n_persistent_checked += 1
            elif e.kind == "arm":
                armed[d["path"]] = e
            elif e.kind == "read":
                a = armed.get(d["path"])
                if a is not None and d["version"] > a.data["version"] and a.index not in told:
                    name = "missing-event" if d.get("final") else "read-before-event"
                    report.anomalies.append(Anomaly(
                        "watch", name, f"{proc} read {d['path']} at version {d['version']} "
                        f"(mzxid {d['mzxid']:#x}) with no event for the change from version "
                        f"{a.data['version']} its watch was set on ({a.describe()}): "
                        f"{e.describe()}", e.invoke))
                    told.add(a.index)  # one report per watch
            elif e.kind == "event":
                n_events += 1
                n_catchup += bool(d.get("catchup"))
                path, etype = d["path"], d["type"]
                z = None
                if etype == EventType.NODE_DATA_CHANGED and path.endswith("/wp"):
                    p_count[seg] += 1
                    n_persistent += 1
                    continue
                if etype == EventType.NODE_DATA_CHANGED:
                    a = armed.pop(path, None)
                    if a is None:
                        report.anomalies.append(Anomaly(
                            "watch", "duplicate-event", f"{proc} got an event for {path} with "
                            f"no watch set on it: {e.describe()}", e.invoke))
                        continue
                    z = change_zxid.get((path, a.data["version"] + 1))
                elif etype == EventType.NODE_CREATED:
                    if path in seen_created:
                        report.anomalies.append(Anomaly(
                            "watch", "duplicate-event", f"{proc} got the creation of {path} "
                            f"twice: {seen_created[path].describe()} / {e.describe()}",
                            e.invoke))
                        continue
                    seen_created[path] = e
                    n_created += 1
                    z = czxid.get(path)
                if z is None or d.get("catchup"):
                    continue
                n_ordered += 1
                if last is not None and z < last[0]:
                    report.anomalies.append(Anomaly(
                        "watch", "out-of-order", f"{proc} got {e.describe()} (zxid {z:#x}) "
                        f"after {last[1].describe()} (zxid {last[0]:#x})", e.invoke))
                last = (z, e)
        # persistent recursive: every child created while registered, delivered
        for path, c in sorted(czxid.items(), key=lambda kv: kv[1]):
            if path in seen_created:
                continue
            for seg, (reg, high) in segs.items():
                if reg < c <= high:
                    report.anomalies.append(Anomaly(
                        "watch", "missing-event", f"{proc}'s recursive watch missed the "
                        f"creation of {path} (zxid {c:#x}), committed while it was registered "
                        f"on connection {seg} (from {reg:#x}, replies seen up to {high:#x})"))
                    break
    report.stats.update(watch_events=n_events, watch_events_ordered=n_ordered,
                        watch_recursive_events=n_created, watch_resumed_connections=n_resumed,
                        watch_catchup_events=n_catchup, watch_persistent_events=n_persistent,
                        watch_persistent_reads_checked=n_persistent_checked)


def check_all(hist: History, initial: dict[str, tuple[Any, int]], *,
              max_steps: int = 2_000_000) -> Report:
    report = Report()
    check_registers(hist, initial, report, max_steps)
    check_seq(hist, report)
    check_counter(hist, report)
    check_queue(hist, report)
    check_lock(hist, report)
    check_eph(hist, report)
    check_watch(hist, report)
    check_members(hist, report)
    return report


# ------------------------------------------------------------------ members agree
def check_members(hist: History, report: Report) -> None:
    """Every member holds the same persistent znodes under the run's root (created at
    the same zxid, last changed at the same zxid, same version, same data), read after
    the workloads ended. A member rebuilt from damaged data (or a wrong sync) that
    serves a different tree is "members/diverged"."""
    trees = {e.data["member"]: e.data["nodes"] for e in hist.events("final")
             if e.kind == "tree"}
    if len(trees) < 2:
        return
    report.stats["members_compared"] = len(trees)
    report.stats["znodes_compared"] = max(len(t) for t in trees.values())
    ids = sorted(trees)
    first = ids[0]
    for i in ids[1:]:
        a, b = trees[first], trees[i]
        diff = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
        if diff:
            shown = "; ".join(f"{p}: {a.get(p)} vs {b.get(p)}" for p in diff[:5])
            report.anomalies.append(Anomaly(
                "members", "diverged",
                f"member {i} differs from member {first} at {len(diff)} znodes "
                f"([czxid, mzxid, version, crc32] each): {shown}"))
