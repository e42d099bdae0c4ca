"""A history checker for ZooKeeper's consistency guarantees on a few registers.

A test records every operation its clients make on a handful of keys (znodes
whose data is a register) and asks :func:`check_history` whether the history is
one ZooKeeper is allowed to produce:

* **writes** (``setData`` with version -1) and **cas** (``setData`` with an
  expected version) are *linearizable*: there is one total order of them,
  consistent with real time, in which every acknowledged result is right;
* **sread** (``sync`` then ``getData`` in the same session, recorded as one op
  from the sync's invocation to the read's reply) is linearizable with them;
* **plain reads** are only *sequentially consistent*. They are checked
  against what a session may legitimately see: the value was written by some
  write that was invoked before the read returned (or is the initial value;
  never a write that definitely failed); the ``(value, version)`` pair agrees
  with every other observation of that version; and no session ever sees a
  key go back to an older version than one it already saw -- counting the
  versions its own acknowledged writes returned (read your writes);
* **the session prefix** (when ops carry zxids: a read's is the ``mzxid`` of the
  value it read, an acknowledged write's the ``mzxid`` its reply's Stat gave):
  everything a session reads -- across keys -- reflects one prefix of the committed
  order that never shrinks. A read of key k with mzxid m says the session's prefix
  ends at some Z with m <= Z < (the next known write of k after m); its own
  acknowledged writes and its earlier reads give lower bounds on Z. So "p1 writes a,
  then b; p2 reads the new b, then the old a" is rejected although each key alone
  is fine. Writes whose zxid is unknown (no reply, never read) can only hide a
  violation, never invent one.

An operation's ``outcome`` is ``"ok"`` (acknowledged, with its ``result``),
``"fail"`` (a definite error: a write that did not happen; a cas that got
BADVERSION, which *is* an observation -- the version differed -- and is
linearized as such) or ``"unknown"`` (no reply: the connection broke or timed
out). An unknown write or cas may take effect at any single moment after its
invocation, or never; an unknown read tells nothing and is ignored.

Versions make the model exact: a key's state is ``(value, version)``; every
write or successful cas sets the value and adds one to the version, and an
acknowledged write's ``result`` is the version the server returned in its Stat
(optional). Two cas that succeed on the same expected version, a write that
vanishes, a stale read after sync, a read from the future: each leaves no
linearization.

The search is Wing & Gong's, with Lowe's memoisation of (set of linearized
operations, model state) -- the algorithm behind Knossos and Porcupine --
run per key, since keys are independent registers. It is bounded by
``max_steps`` per key; when the budget runs out the verdict is ``None``
("could not decide"), never a guess.

    rec = HistoryRecorder()
    h = rec.invoke(process=sid, kind="cas", key="/k0", value=b"x", expected_version=3)
    ...                                    # send it
    h.ok(4)                                # or h.fail() / h.unknown()
    result = check_history(rec.history(), initial={"/k0": (b"init", 0)})
    assert result.valid, result.report()
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KINDS",
    "OUTCOMES",
    "CheckResult",
    "HistoryRecorder",
    "Op",
    "check_history",
    "check_key_linearizable",
    "check_plain_reads",
    "check_session_prefix",
]

KINDS = ("read", "sread", "write", "cas")
OUTCOMES = ("ok", "fail", "unknown")

State = tuple[Any, int]  # (value, version)


@dataclass
class Op:
    """One operation of a history.

    ``result``: for ``read``/``sread`` that are ok, the ``(value, version)``
    read; for ``write``/``cas`` that are ok, the new version from the reply's
    Stat, or None when not known. ``complete`` is None for unknown outcomes.
    """

    process: Hashable
    kind: str
    key: str
    invoke: float
    complete: float | None = None
    outcome: str = "unknown"
    value: Any = None
    expected_version: int | None = None
    result: Any = None
    index: int = -1  # position in the history (set by check_history)
    # ok read/sread: the mzxid of the value read; ok write/cas: the mzxid its reply's
    # Stat gave (the write's place in the committed order). None: not recorded.
    zxid: int | None = None
    meta: Any = None  # free for the harness (e.g. which server answered); not checked

    def describe(self) -> str:
        arg = ""
        if self.kind in ("write", "cas"):
            arg = f" {self.value!r}"
            if self.kind == "cas":
                arg += f" if v={self.expected_version}"
        end = "?" if self.complete is None else f"{self.complete:.3f}"
        res = "" if self.result is None else f" -> {self.result!r}"
        meta = "" if self.meta is None else f" ({self.meta})"
        return (f"#{self.index} p={self.process} {self.kind} {self.key}{arg} "
                f"[{self.invoke:.3f}, {end}] {self.outcome}{res}{meta}")


@dataclass
class CheckResult:
    """``valid``: True, False, or None when a key's search ran out of budget."""

    valid: bool | None
    problems: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)

    def report(self) -> str:
        lines = [f"valid={self.valid}"]
        lines += self.problems
        lines += [f"undecided: {u}" for u in self.undecided]
        return "\n".join(lines)


class HistoryRecorder:
    """Thread-safe recorder: ``invoke`` takes the invocation time, and the handle
    it returns takes the completion time when told ``ok``/``fail``/``unknown``."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: list[Op] = []

    def invoke(self, process: Hashable, kind: str, key: str, *, value: Any = None,
               expected_version: int | None = None, meta: Any = None) -> _Handle:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        op = Op(process, kind, key, self._clock(), value=value,
                expected_version=expected_version, meta=meta)
        with self._lock:
            self._ops.append(op)
        return _Handle(op, self._clock)

    def history(self) -> list[Op]:
        with self._lock:
            return list(self._ops)


class _Handle:
    __slots__ = ("op", "_clock")

    def __init__(self, op: Op, clock) -> None:
        self.op = op
        self._clock = clock

    def ok(self, result: Any = None, zxid: int | None = None) -> None:
        self.op.complete = self._clock()
        self.op.outcome = "ok"
        self.op.result = result
        self.op.zxid = zxid

    def fail(self) -> None:
        self.op.complete = self._clock()
        self.op.outcome = "fail"

    def unknown(self) -> None:
        self.op.complete = None
        self.op.outcome = "unknown"


# ------------------------------------------------------------------ the model
class _Unseen:
    """The value of a register after a write nobody ever read (see the symmetry note)."""

    def __repr__(self) -> str:
        return "<unobserved>"


UNSEEN = _Unseen()


def _step(state: State, op: Op, anonymous: bool = False) -> State | None:
    """The state after linearizing op in state, or None when op cannot happen there.
    ``anonymous``: the op's value is never observed, so it is written as UNSEEN."""
    value, version = state
    if op.kind == "sread":
        return state if tuple(op.result) == state else None
    if op.kind == "write":
        if op.outcome == "ok" and op.result is not None and op.result != version + 1:
            return None
        return (UNSEEN if anonymous else op.value, version + 1)
    if op.kind == "cas":
        if op.outcome == "fail":  # BADVERSION: the version was not the expected one
            return state if version != op.expected_version else None
        if version != op.expected_version:
            return None
        if op.outcome == "ok" and op.result is not None and op.result != version + 1:
            return None
        return (UNSEEN if anonymous else op.value, version + 1)
    raise AssertionError(f"{op.kind} is not part of the linearizable model")


def _linearizable_part(ops: Iterable[Op]) -> list[Op]:
    out = []
    for op in ops:
        if op.kind == "read":
            continue  # plain reads: sequential consistency, checked separately
        if op.kind == "sread" and op.outcome != "ok":
            continue  # an sread that failed or got no reply observed nothing
        if op.kind == "write" and op.outcome == "fail":
            continue  # a definite error: it never happened
        out.append(op)
    return out


def check_key_linearizable(ops: list[Op], initial: State, *, max_steps: int = 2_000_000
                           ) -> tuple[bool | None, str, int]:
    """Wing-Gong search with memoisation over one key's writes, cas and sreads.

    Returns (verdict, explanation when not linearizable, steps taken).

    Symmetry: unknown writes (and unknown cas on the same expected version) whose
    values nobody ever read are interchangeable -- each can only add one to the
    version -- and a later-invoked one is available wherever an earlier one is.
    So such ops of one class are linearized in invocation order only, and their
    value is UNSEEN; otherwise k concurrent unknown ops would cost 2**k states.
    """
    observed = {op.result[0] for op in ops
                if op.kind in ("read", "sread") and op.outcome == "ok" and op.result is not None}
    ops = _linearizable_part(ops)
    n = len(ops)
    if n == 0:
        return True, "", 0
    cls: list[Hashable | None] = [None] * n
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i in sorted(range(n), key=lambda i: (ops[i].invoke, i)):
        op = ops[i]
        if op.outcome == "unknown" and op.value not in observed:
            c = "w" if op.kind == "write" else ("c", op.expected_version)
            cls[i] = c
            members[c].append(i)
    rank = [0] * n
    for lst in members.values():
        for r, i in enumerate(lst):
            rank[i] = r
    used: dict[Hashable, int] = defaultdict(int)
    # Events: (time, order, op position, is_return). At equal times a call sorts
    # before a return, so touching intervals count as concurrent (permissive).
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i, False))
        if op.outcome != "unknown":
            assert op.complete is not None
            events.append((op.complete, 1, i, True))
    events.sort()
    m = len(events)
    # Doubly linked list over event slots 1..m; slot 0 is the head sentinel.
    op_of = [0] * (m + 1)
    is_ret = [False] * (m + 1)
    for s, (_t, _o, i, r) in enumerate(events, start=1):
        op_of[s] = i
        is_ret[s] = r
    nxt = list(range(1, m + 2))
    nxt[m] = 0  # 0 terminates (the head is never revisited as "next")
    prv = list(range(-1, m))
    call_slot = [0] * n
    ret_slot = [0] * n
    for s in range(1, m + 1):
        if is_ret[s]:
            ret_slot[op_of[s]] = s
        else:
            call_slot[op_of[s]] = s

    def unlink(s: int) -> None:
        p, q = prv[s], nxt[s]
        nxt[p] = q
        if q:
            prv[q] = p

    def relink(s: int) -> None:
        p, q = prv[s], nxt[s]
        nxt[p] = s
        if q:
            prv[q] = s

    returns_left = sum(is_ret[1:])
    state = initial
    linearized = 0
    stack: list[tuple[int, State]] = []  # (call slot, state before)
    seen: set[tuple[int, State]] = set()
    best: list[int] = []
    best_block = -1
    best_state = initial
    steps = 0
    s = nxt[0]
    while returns_left:
        steps += 1
        if steps > max_steps:
            return None, f"search budget of {max_steps} steps exhausted", steps
        if s == 0:
            # Only reachable if a return is left but the list was walked past it,
            # which cannot happen; treat defensively as a dead end.
            raise AssertionError("walked off the event list with returns left")
        i = op_of[s]
        if not is_ret[s]:
            c = cls[i]
            if c is not None and rank[i] != used[c]:
                s = nxt[s]  # an earlier-invoked twin goes first
                continue
            new = _step(state, ops[i], c is not None)
            if new is not None:
                lin = linearized | (1 << i)
                key = (lin, new)
                if key not in seen:
                    seen.add(key)
                    stack.append((s, state))
                    state, linearized = new, lin
                    if c is not None:
                        used[c] += 1
                    unlink(s)
                    if ret_slot[i]:
                        unlink(ret_slot[i])
                        returns_left -= 1
                    s = nxt[0]
                    continue
            s = nxt[s]
            continue
        # A return whose op is not linearized yet: undo the last choice.
        if len(stack) >= len(best):
            best = [op_of[c] for c, _ in stack]
            best_block = i
            best_state = state
        if not stack:
            return False, _explain(ops, best, best_block, best_state), steps
        cs, state = stack.pop()
        j = op_of[cs]
        linearized &= ~(1 << j)
        if cls[j] is not None:
            used[cls[j]] -= 1
        if ret_slot[j]:
            relink(ret_slot[j])
            returns_left += 1
        relink(cs)
        s = nxt[cs]
    return True, "", steps


def _explain(ops: list[Op], best: list[int], block: int, state: State) -> str:
    lines = [f"no linearization; the longest prefix found ({len(best)} ops) ends with:"]
    lines += [f"    {ops[i].describe()}" for i in best[-6:]]
    lines.append(f"  leaving the state {state!r}, from which this op cannot be linearized "
                 f"before it returns: {ops[block].describe()}")
    return "\n".join(lines)


def check_plain_reads(ops: list[Op], initial: Mapping[str, State]) -> list[str]:
    """The sequential-consistency checks for reads (see the module docstring)."""
    problems: list[str] = []
    writers: dict[tuple[str, Any], list[Op]] = defaultdict(list)
    failed: dict[tuple[str, Any], Op] = {}
    seen_at: dict[tuple[str, int], dict[Any, Op | None]] = defaultdict(dict)
    for key, (v0, ver0) in initial.items():
        seen_at[(key, ver0)][v0] = None
    for op in ops:
        if op.kind not in ("write", "cas"):
            continue
        if op.outcome == "fail":
            if op.kind == "write" or op.value is not None:
                failed[(op.key, op.value)] = op
            continue
        writers[(op.key, op.value)].append(op)
        if op.outcome == "ok" and op.result is not None:
            seen_at[(op.key, op.result)].setdefault(op.value, op)
    for op in ops:
        if op.kind not in ("read", "sread") or op.outcome != "ok":
            continue
        value, version = op.result
        seen_at[(op.key, version)].setdefault(value, op)
        if (value, version) == tuple(initial[op.key]):
            continue
        cands = writers.get((op.key, value), [])
        if not cands:
            why = ("whose write definitely failed" if (op.key, value) in failed
                   else "that no operation wrote")
            problems.append(f"read of a value {why}: {op.describe()}")
            continue
        assert op.complete is not None
        if not any(w.invoke < op.complete for w in cands):
            problems.append(f"read from the future (its write was invoked after the read "
                            f"returned): {op.describe()} / {cands[0].describe()}")
        if all(w.outcome == "ok" and w.result is not None and w.result != version for w in cands):
            problems.append(f"read of version {version}, but its write made version "
                            f"{cands[0].result}: {op.describe()}")
    for (key, version), values in sorted(seen_at.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if len(values) > 1:
            who = "; ".join(o.describe() if o else f"initial {v!r}" for v, o in values.items())
            problems.append(f"{key} version {version} has {len(values)} different values: {who}")
    # Per process and key: observed versions never go back.
    by_proc: dict[Hashable, list[Op]] = defaultdict(list)
    for op in ops:
        by_proc[op.process].append(op)
    for proc, pops in by_proc.items():
        pops.sort(key=lambda o: o.invoke)
        high: dict[str, tuple[int, Op]] = {}
        for op in pops:
            if op.outcome != "ok":
                continue
            if op.kind in ("read", "sread"):
                version = op.result[1]
            elif op.result is not None:
                version = op.result
            else:
                continue
            prev = high.get(op.key)
            if prev is not None and version < prev[0] and op.kind in ("read", "sread"):
                problems.append(f"process {proc} went back in time on {op.key}: saw version "
                                f"{prev[0]} ({prev[1].describe()}), then {version} "
                                f"({op.describe()})")
            if prev is None or version > prev[0]:
                high[op.key] = (version, op)
    return problems


def check_session_prefix(ops: list[Op]) -> list[str]:
    """Every session reads a non-decreasing prefix of the committed order (see the
    module docstring); only ok ops that carry a zxid take part."""
    problems: list[str] = []
    # Known places of committed writes, per key: acknowledged writes, and the mzxid
    # of every value some read returned (an unknown write that did commit shows here).
    known: dict[str, set[int]] = defaultdict(set)
    value_at: dict[tuple[str, int], tuple[Any, Op]] = {}
    for op in ops:
        if op.outcome != "ok" or op.zxid is None:
            continue
        if op.kind in ("write", "cas"):
            known[op.key].add(op.zxid)
            value = op.value
        else:
            known[op.key].add(op.zxid)
            value = op.result[0]
        prev = value_at.setdefault((op.key, op.zxid), (value, op))
        if prev[0] != value:
            problems.append(f"{op.key} zxid {op.zxid:#x} has two values: "
                            f"{prev[1].describe()} / {op.describe()}")
    order = {k: sorted(z) for k, z in known.items()}

    def next_write(key: str, m: int) -> int | None:
        zs = order[key]
        lo, hi = 0, len(zs)
        while lo < hi:
            mid = (lo + hi) // 2
            if zs[mid] <= m:
                lo = mid + 1
            else:
                hi = mid
        return zs[lo] if lo < len(zs) else None

    by_proc: dict[Hashable, list[Op]] = defaultdict(list)
    for op in ops:
        if op.outcome == "ok" and op.zxid is not None:
            by_proc[op.process].append(op)
    for proc, pops in by_proc.items():
        pops.sort(key=lambda o: (o.invoke, o.index))
        floor, why = 0, None  # the least end of the session's prefix so far, and its op
        for op in pops:
            if op.kind in ("read", "sread"):
                nxt = next_write(op.key, op.zxid)
                if nxt is not None and floor >= nxt:
                    problems.append(
                        f"session {proc} went back in the committed order: it had seen "
                        f"up to zxid {floor:#x} ({why.describe() if why else '?'}), then "
                        f"read {op.key} at mzxid {op.zxid:#x}, overwritten at zxid "
                        f"{nxt:#x} ({value_at[(op.key, nxt)][1].describe()}): "
                        f"{op.describe()}")
                    continue
            if op.zxid > floor:
                floor, why = op.zxid, op
    return problems


def check_history(history: Iterable[Op], initial: Mapping[str, State], *,
                  max_steps: int = 2_000_000) -> CheckResult:
    """Check a whole history; see the module docstring for what is checked."""
    ops = list(history)
    problems: list[str] = []
    for i, op in enumerate(ops):
        op.index = i
        if op.kind not in KINDS or op.outcome not in OUTCOMES:
            problems.append(f"malformed op: {op.describe()}")
        elif op.key not in initial:
            problems.append(f"op on a key with no initial state: {op.describe()}")
        elif op.outcome != "unknown" and (op.complete is None or op.complete < op.invoke):
            problems.append(f"op completes before it is invoked: {op.describe()}")
        elif op.outcome == "ok" and op.kind in ("read", "sread") and (
                not isinstance(op.result, tuple | list) or len(op.result) != 2):
            problems.append(f"a read without a (value, version) result: {op.describe()}")
        elif op.kind == "cas" and op.expected_version is None:
            problems.append(f"a cas without an expected version: {op.describe()}")
    if problems:
        return CheckResult(False, problems)
    result = CheckResult(True)
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    for key in sorted(by_key):
        verdict, why, steps = check_key_linearizable(by_key[key], tuple(initial[key]),
                                                     max_steps=max_steps)
        result.steps[key] = steps
        if verdict is False:
            result.problems.append(f"{key}: not linearizable: {why}")
        elif verdict is None:
            result.undecided.append(f"{key}: {why}")
    result.problems += check_plain_reads(ops, initial)
    result.problems += check_session_prefix(ops)
    if result.problems:
        result.valid = False
    elif result.undecided:
        result.valid = None
    return result
