"""Differential testing: run one scenario against two servers, compare what clients see.

A scenario is a function ``scenario(r: Runner)`` that drives named sessions through
``r``'s methods. Every step is recorded as one line: the request, the reply's error
code (or the connection closing), the decoded body, the reply header's zxid, and then
the watch events every session received (in arrival order) before the step's flush.
Events that reached the calling session *before* the step's reply are recorded apart
(``event a (before reply): ...``), so the order a server gives events and replies on one
connection is compared: ZooKeeper delivers the event for a change before the reply to
the session's own request that made or reflects it.

Every successful reply must be consumed whole by the decoder of the request's response
type. Bytes left after it (a GetChildren2 body sent for getChildren, a Create2 body for
create) are a protocol error, whichever server sent them: they are recorded in the
transcript *and* listed as a problem, and ``compare`` reports problems even when both
transcripts are equal. So is a reply-header zxid below one the same session already
saw (a session's view of the committed order never goes back).

Values that legitimately differ between two servers are normalised so that equal
behaviour gives equal transcripts:
  * zxids -> ``z<N>``, N the rank of the zxid's first appearance in this run
    (0 and negative values kept literally);
  * times -> ``"set"`` when nonzero, plus ``mtime_vs_ctime`` (eq/ne when version is 0,
    ge/lt otherwise); the values themselves are checked apart, as problems: wall-clock
    milliseconds, none in the future, and a create's ctime / a setData's mtime within
    the request's round trip;
  * session ids -> the scenario's name for the session (``@a``), or ``@probe`` for the
    runner's helper, ``@other`` for one it does not know; 0 stays 0. Stat's
    ephemeralOwner for containers/TTL nodes are special values and are kept (hex);
  * large byte strings -> length and sha1;
  * children, getEphemerals, whoAmI and ACL lists -> sorted (ZooKeeper's order there
    is a hash set's).

``compare(a, b)`` returns a unified diff ("" when equal).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

from zabby.wire import (
    ACL,
    XID_AUTH,
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    Empty,
    Err,
    EventType,
    GetEphemeralsRequest,
    Id,
    KeeperState,
    MultiResponse,
    Op,
    PathRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
    Stat,
    WatchTypeRequest,
    encode_request,
)
from zabby.wire import MultiRequest as _MultiRequest
from zabby.wire.jute import RECORD_TYPES

from .rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient, Reply

__all__ = ["NULL_ACL", "Runner", "Transcript", "compare", "run_scenario", "MultiOp"]

SESSION_TIMEOUT_MS = 30000
# List fields whose order is unspecified (compared sorted).
# clientInfo (whoAmI) and ACLs expanded from the "auth" scheme come from a
# ConcurrentHashMap-backed set in ZooKeeper: their order is hash order.
SORTED_FIELDS = frozenset({"children", "ephemerals", "clientInfo", "acl"})


def _enum_name(enum: Any, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def err_name(code: int) -> str:
    return "OK" if code == 0 else _enum_name(Err, code)


def op_name(code: int) -> str:
    return _enum_name(Op, code)


NULL_ACL: list = []  # sentinel (compared by identity): a null ACL vector on the wire


class Normaliser:
    def __init__(self) -> None:
        self.zxids: dict[int, str] = {}
        self.sessions: dict[int, str] = {}

    def zxid(self, z: int) -> Any:
        if z <= 0:
            return z
        if z not in self.zxids:
            self.zxids[z] = f"z{len(self.zxids) + 1}"
        return self.zxids[z]

    def session(self, sid: int) -> Any:
        if sid == 0:
            return 0
        return self.sessions.get(sid, "@other")

    def owner(self, sid: int) -> Any:
        if sid == 0:
            return 0
        if sid in self.sessions:
            return self.sessions[sid]
        if sid < 0:  # containers (Long.MIN_VALUE) and TTL nodes (0xFF << 56 | ttl)
            return hex(sid & 0xFFFFFFFFFFFFFFFF)
        return "@other"

    def stat(self, st: Stat) -> dict[str, Any]:
        return {
            "czxid": self.zxid(st.czxid),
            "mzxid": self.zxid(st.mzxid),
            "pzxid": self.zxid(st.pzxid),
            "ctime": "set" if st.ctime > 0 else st.ctime,
            "mtime": "set" if st.mtime > 0 else st.mtime,
            "mtime_vs_ctime": _time_relation(st),
            "version": st.version,
            "cversion": st.cversion,
            "aversion": st.aversion,
            "ephemeralOwner": self.owner(st.ephemeralOwner),
            "dataLength": st.dataLength,
            "numChildren": st.numChildren,
        }

    def value(self, v: Any) -> Any:
        if isinstance(v, Stat):
            return self.stat(v)
        if isinstance(v, MultiResponse):
            return [
                {"op": op_name(op), "err": err_name(err), "body": self.value(body)}
                for op, err, body in v.results
            ]
        if isinstance(v, RECORD_TYPES):
            out = {}
            for name, _ in v.FIELDS:
                x = getattr(v, name)
                if name in SORTED_FIELDS and isinstance(x, list):
                    # ZooKeeper's order here is a hash set's: not part of the contract
                    out[name] = sorted((self.value(i) for i in x), key=_dumps)
                else:
                    out[name] = self.value(x)
            return out
        if isinstance(v, bytes | bytearray):
            return self.data(bytes(v))
        if isinstance(v, list | tuple):
            return [self.value(x) for x in v]
        return v

    @staticmethod
    def data(b: bytes) -> str:
        if len(b) <= 48:
            return repr(b)
        return f"<{len(b)} bytes sha1={hashlib.sha1(b).hexdigest()[:12]}>"


# both servers run on this machine's clock; a millisecond field is wall-clock time
# within this much of the client's view of the round trip
CLOCK_SLACK_MS = 1000.0
# the Stat a write returns for the node it made or changed, and its time field
_WRITE_TIME_FIELD = {Op.CREATE2: "ctime", Op.CREATE_TTL: "ctime",
                     Op.CREATE_CONTAINER: "ctime", Op.SET_DATA: "mtime"}


def _stats(v: Any) -> Iterable[Stat]:
    """Every Stat in a decoded reply body (nested records and multi results too)."""
    if isinstance(v, Stat):
        yield v
    elif isinstance(v, MultiResponse):
        for _op, _err, body in v.results:
            yield from _stats(body)
    elif isinstance(v, RECORD_TYPES):
        for name, _ in v.FIELDS:
            yield from _stats(getattr(v, name))
    elif isinstance(v, list | tuple):
        for x in v:
            yield from _stats(x)


def _time_relation(st: Stat) -> str:
    """A never-written node must have mtime == ctime; a written one mtime >= ctime.

    (Whether a quick write lands in the same millisecond as the create is timing,
    not behaviour, so equality is only asserted for version 0.)
    """
    if st.version == 0:
        return "eq" if st.mtime == st.ctime else "ne"
    return "ge" if st.mtime >= st.ctime else "lt"


class Transcript:
    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: list[str] = []
        # harness-level failures that hold whatever the other server did
        self.problems: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def text(self) -> str:
        return "\n".join(self.lines)


def compare(a: Transcript, b: Transcript) -> str:
    """Unified diff of two transcripts, then each one's problems; the empty string
    when they are equal and neither has a problem."""
    out = [f"!! {t.label}: {p}" for t in (a, b) for p in t.problems]
    if a.lines != b.lines:
        out += difflib.unified_diff(a.lines, b.lines, a.label, b.label, n=4, lineterm="")
    return "\n".join(out)


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=False, default=repr, separators=(",", ":"))


class MultiOp:
    """Builders for the ops of multi / multiRead."""

    @staticmethod
    def create(path, data=b"", acl=None, flags=0, op=Op.CREATE):
        return (op, CreateRequest(path, data, OPEN_ACL_UNSAFE if acl is None else acl, flags))

    @staticmethod
    def create_ttl(path, data=b"", ttl=10000, acl=None, flags=5):
        acl = OPEN_ACL_UNSAFE if acl is None else acl
        return (Op.CREATE_TTL, CreateTTLRequest(path, data, acl, flags, ttl))

    @staticmethod
    def delete(path, version=-1):
        return (Op.DELETE, DeleteRequest(path, version))

    @staticmethod
    def set(path, data, version=-1):
        return (Op.SET_DATA, SetDataRequest(path, data, version))

    @staticmethod
    def check(path, version):
        return (Op.CHECK, CheckVersionRequest(path, version))

    # In ZooKeeper's MultiOperationRecord the read ops carry GetDataRequest /
    # GetChildrenRequest bodies: a path *and* a watch flag.
    @staticmethod
    def get(path):
        return (Op.GET_DATA, PathWatchRequest(path, False))

    @staticmethod
    def children(path):
        return (Op.GET_CHILDREN, PathWatchRequest(path, False))


def _describe(body: Any, norm: Normaliser | None = None) -> str:
    if body is None:
        return ""
    if isinstance(body, _MultiRequest):
        return "[" + ", ".join(f"{op_name(op)}{_describe(rec, norm)}" for op, rec in body.ops) + "]"
    if isinstance(body, RECORD_TYPES):
        parts = []
        for name, _ in body.FIELDS:
            v = getattr(body, name)
            if isinstance(v, bytes):
                v = Normaliser.data(v)
            elif name in ("relativeZxid", "lastZxidSeen") and norm is not None:
                v = norm.zxid(v)
            elif isinstance(v, list) and v and isinstance(v[0], ACL):
                v = [f"{a.id.scheme}:{a.id.id}:{a.perms}" for a in v]
            parts.append(f"{name}={v!r}" if not isinstance(v, str) or name != "path" else repr(v))
        return "(" + ", ".join(parts) + ")"
    return repr(body)


class Runner:
    """Drives one server through a scenario and records a Transcript."""

    def __init__(self, server: Any, label: str, base: str | None = None) -> None:
        self.server = server
        self.host, self.port = server.host, server.port
        self.norm = Normaliser()
        self.transcript = Transcript(label)
        self.sessions: dict[str, RawClient] = {}
        self.step_no = 0
        self.base = base
        self.zxid_seen: dict[str, int] = {}  # per session: the highest reply zxid
        # A ZooKeeper 3.8 follower now and then holds a client's write until some
        # request reaches it (after another session's closeSession: 3 of ~13,000 runs
        # of scenario_sequence_numbers on a follower; in CI the reply came 10 s later,
        # with the client's next request). On ZooKeeper, a reply 2 s late makes a
        # separate session send one read, which releases it (both times it was tried);
        # zabby is never nudged (docs/COMPATIBILITY.md).
        self._nudges = label == "zookeeper"
        self._nudger: RawClient | None = None
        self.nudged = 0
        self.probe = self._client(SESSION_TIMEOUT_MS)
        self.probe.connect()
        self.norm.sessions[self.probe.session_id] = "@probe"
        if base:
            delete_tree(self.probe, base)
            r = self.probe.request(Op.CREATE, CreateRequest(base, b"", OPEN_ACL_UNSAFE, 0))
            if r.err:
                raise RuntimeError(f"cannot create scenario base {base}: {err_name(r.err)}")

    def _client(self, timeout_ms: int) -> RawClient:
        c = RawClient(self.host, self.port, timeout_ms=timeout_ms)
        if self._nudges:
            c.nudge = self._nudge
        return c

    def _nudge(self) -> None:
        self.nudged += 1
        try:
            if self._nudger is None or not self._nudger.connected:
                self._nudger = RawClient(self.host, self.port, timeout_ms=SESSION_TIMEOUT_MS)
                self._nudger.connect()
            self._nudger.request(Op.EXISTS, PathWatchRequest("/", False), timeout=2.0)
        except (ConnectionClosed, TimeoutError, OSError):
            if self._nudger is not None:
                self._nudger.drop()

    # --------------------------------------------------------------- record
    def _record(self, line: str) -> None:
        self.transcript.add(line)

    def note(self, text: str) -> None:
        """A comment line in the transcript (helps reading diffs)."""
        self._record(f"   # {text}")

    def flush(self) -> None:
        """Ping every connected session, then record the events each received."""
        for name, c in self.sessions.items():
            if c.connected:
                try:
                    c.ping()
                except ConnectionClosed:
                    # a server that closes after its last reply: whether this ping or
                    # the client's read notices first is timing, not behaviour; the
                    # session's next operation records {"connection": "closed"}
                    pass
                except (TimeoutError, OSError) as e:
                    self._record(f"   {name}: ping failed: {type(e).__name__}")
            self._record_events(name, c.take_events())

    def _record_events(self, name: str, evs: list, when: str = "") -> None:
        for ev in evs:
            self._record(
                f"   event {name}{when}: {_enum_name(EventType, ev.type)} "
                f"{_enum_name(KeeperState, ev.state)} {ev.path!r}"
            )

    def _reply_repr(self, op: int, reply: Reply) -> dict[str, Any]:
        out: dict[str, Any] = {"err": err_name(reply.err), "zxid": self.norm.zxid(reply.zxid)}
        if reply.err == 0:
            if reply.decode_error:
                out["decode_error"] = reply.decode_error
                out["raw"] = reply.raw.hex()
            else:
                if reply.body is not None and not isinstance(reply.body, Empty):
                    out["body"] = self.norm.value(reply.body)
                if reply.trailing:
                    out["trailing"] = reply.trailing.hex()
        elif reply.raw:
            out["error_body"] = reply.raw.hex()
        return out

    # ------------------------------------------------------------- sessions
    def session(self, name: str, timeout_ms: int = SESSION_TIMEOUT_MS) -> RawClient:
        c = self._client(timeout_ms)
        self.sessions[name] = c
        self._connect(name, c, f"connect(timeout={timeout_ms})")
        return c

    def _connect(self, name: str, c: RawClient, what: str) -> None:
        self.step_no += 1
        try:
            resp = c.connect()
            if resp.sessionId and resp.sessionId not in self.norm.sessions:
                self.norm.sessions[resp.sessionId] = "@" + name
            res = {
                "timeOut": resp.timeOut,
                "sessionId": self.norm.session(resp.sessionId),
                "passwd_len": len(resp.passwd or b""),
            }
            if not resp.sessionId or resp.timeOut <= 0:
                res["closed_after"] = c.wait_closed(5.0)
        except ConnectionClosed:
            res = {"connection": "closed"}
        self._record(f"#{self.step_no} {name} {what} -> {_dumps(res)}")
        self.flush()

    def reconnect(self, name: str) -> None:
        """Drop the socket and resume the same session on a new connection."""
        c = self.sessions[name]
        c.drop()
        self._connect(name, c, "reconnect(same session)")

    def drop(self, name: str) -> None:
        """Close the socket without closeSession (the session expires later)."""
        self.step_no += 1
        self.sessions[name].drop()
        self._record(f"#{self.step_no} {name} drop connection")

    def close(self, name: str) -> None:
        self.call(name, Op.CLOSE_SESSION, Empty())
        self.sessions[name].drop()

    # ---------------------------------------------------------- requests
    def call(self, name: str, op: int, body: Any = None, *, xid: int | None = None,
             label: str | None = None) -> Reply | None:
        """Send one request from session `name`, record the reply and the events."""
        c = self.sessions[name]
        self.step_no += 1
        head = f"#{self.step_no} {name} {label or op_name(op)}{_describe(body, self.norm)}"
        reply: Reply | None = None
        self._record_events(name, c.take_events())  # left over (none after a flush)
        early: list = []
        try:
            t_sent = time.time() * 1000
            sent_xid = c.send_request(op, body, xid=xid)
            reply = c.wait_reply(sent_xid, op)
            res: dict[str, Any] = self._reply_repr(op, reply)
            top = self.zxid_seen.get(name, 0)
            if 0 < reply.zxid < top:
                self.transcript.problem(
                    f"step #{self.step_no}: session {name}'s reply zxid {reply.zxid:#x} is "
                    f"below one it already saw, {top:#x}")
            self.zxid_seen[name] = max(top, reply.zxid)
            if reply.err == 0 and not reply.decode_error:
                self._check_times(op, reply.body, t_sent, time.time() * 1000)
            if reply.trailing:
                self.transcript.problem(
                    f"step #{self.step_no}: {len(reply.trailing)} byte(s) after the "
                    f"{op_name(op)} reply body: {reply.trailing[:32].hex()}")
            early = c.take_events()  # arrived between the request and its reply
        except ConnectionClosed:
            res = {"connection": "closed"}
        except TimeoutError:
            res = {"timeout": True}
            c.drop()
        except Exception as e:  # noqa: BLE001 - a garbled reply is a difference, not a crash
            res = {"client_error": f"{type(e).__name__}: {e}"}
            c.drop()
        self._record_events(name, early, " (before reply)")
        self._record(f"{head} -> {_dumps(res)}")
        self.flush()
        return reply

    def _check_times(self, op: int, body: Any, t_sent: float, t_reply: float) -> None:
        """Stat times are wall-clock milliseconds (the transcript only says "set"): none
        may lie in the future, and a write's own Stat carries the time it was made
        (ctime of a create, mtime of a setData), within this request's round trip."""
        for st in _stats(body):
            for field in ("ctime", "mtime"):
                t = getattr(st, field)
                if t > t_reply + CLOCK_SLACK_MS:
                    self.transcript.problem(
                        f"step #{self.step_no}: {field} {t} is {t - t_reply:.0f} ms after "
                        f"the reply arrived (not wall-clock milliseconds?)")
        written = _WRITE_TIME_FIELD.get(op)
        if written is not None:
            for st in _stats(body):
                t = getattr(st, written)
                if not t_sent - CLOCK_SLACK_MS <= t <= t_reply + CLOCK_SLACK_MS:
                    self.transcript.problem(
                        f"step #{self.step_no}: {op_name(op)} stamped {written} {t}, outside "
                        f"the request's round trip [{t_sent:.0f}, {t_reply:.0f}] ms")

    def send_raw(self, name: str, data: bytes, label: str, wait: float = 3.0,
                 after_reply: float | None = None) -> None:
        """Send arbitrary bytes; record frames received and whether the server closed
        (within `wait`, or within `after_reply` of its first frame)."""
        c = self.sessions[name]
        self.step_no += 1
        try:
            c.send_bytes(data)
            closed = c.wait_closed(wait, after_reply)
        except ConnectionClosed:
            closed = True
        frames = []
        for f in c.frames:
            if len(f) >= 16:
                xid, zxid, err = struct.unpack_from(">iqi", f, 0)
                frames.append(
                    {"xid": xid, "zxid": self.norm.zxid(zxid), "err": err_name(err), "body_len": len(f) - 16}
                )
            else:
                frames.append({"short_frame": f.hex()})
        c.frames = []
        res: dict[str, Any] = {"closed": closed}
        if frames:
            res["frames"] = frames
        self._record(f"#{self.step_no} {name} raw {label} -> {_dumps(res)}")
        if c.connected:
            self.flush()

    # ---------------------------------------------------------- op helpers
    def create(self, s, path, data=b"", acl=None, flags=0, *, op=Op.CREATE2, ttl=None):
        """acl=None means world:anyone:ALL; acl=NULL_ACL sends a null vector."""
        acl = OPEN_ACL_UNSAFE if acl is None else (None if acl is NULL_ACL else acl)
        if ttl is not None or op == Op.CREATE_TTL:
            return self.call(s, Op.CREATE_TTL, CreateTTLRequest(path, data, acl, flags, ttl or 0))
        return self.call(s, op, CreateRequest(path, data, acl, flags))

    def delete(self, s, path, version=-1):
        return self.call(s, Op.DELETE, DeleteRequest(path, version))

    def exists(self, s, path, watch=False):
        return self.call(s, Op.EXISTS, PathWatchRequest(path, watch))

    def get(self, s, path, watch=False):
        return self.call(s, Op.GET_DATA, PathWatchRequest(path, watch))

    def set(self, s, path, data, version=-1):
        return self.call(s, Op.SET_DATA, SetDataRequest(path, data, version))

    def children(self, s, path, watch=False):
        return self.call(s, Op.GET_CHILDREN, PathWatchRequest(path, watch))

    def children2(self, s, path, watch=False):
        return self.call(s, Op.GET_CHILDREN2, PathWatchRequest(path, watch))

    def get_acl(self, s, path):
        return self.call(s, Op.GET_ACL, PathRequest(path))

    def set_acl(self, s, path, acl, version=-1):
        return self.call(s, Op.SET_ACL, SetACLRequest(path, acl, version))

    def sync(self, s, path):
        return self.call(s, Op.SYNC, PathRequest(path))

    def multi(self, s, ops: Iterable[tuple[int, Any]]):
        return self.call(s, Op.MULTI, _MultiRequest(list(ops)))

    def multi_read(self, s, ops: Iterable[tuple[int, Any]]):
        return self.call(s, Op.MULTI_READ, _MultiRequest(list(ops)))

    def check(self, s, path, version):
        return self.call(s, Op.CHECK, CheckVersionRequest(path, version))

    def add_watch(self, s, path, mode):
        return self.call(s, Op.ADD_WATCH, AddWatchRequest(path, mode))

    def check_watches(self, s, path, wtype):
        return self.call(s, Op.CHECK_WATCHES, WatchTypeRequest(path, wtype))

    def remove_watches(self, s, path, wtype):
        return self.call(s, Op.REMOVE_WATCHES, WatchTypeRequest(path, wtype))

    def ephemerals(self, s, prefix):
        return self.call(s, Op.GET_EPHEMERALS, GetEphemeralsRequest(prefix))

    def all_children_number(self, s, path):
        return self.call(s, Op.GET_ALL_CHILDREN_NUMBER, PathRequest(path))

    def whoami(self, s):
        return self.call(s, Op.WHO_AM_I, Empty())

    def add_auth(self, s, scheme, auth: bytes):
        return self.call(s, Op.AUTH, AuthPacket(0, scheme, auth), xid=XID_AUTH)

    # -------------------------------------------------------- waiting
    def keepalive(self) -> None:
        for c in self.sessions.values():
            if c.connected:
                try:
                    c.ping()
                except (ConnectionClosed, TimeoutError, OSError):
                    pass
        self.probe.ping()

    def wait_until(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll (unrecorded) until pred() holds; keeps the sessions alive meanwhile."""
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                self._record(f"   # gave up waiting for {what} after {timeout}s")
                return
            self.keepalive()
            time.sleep(0.1)
        self._record(f"   # waited for {what}")

    def probe_exists(self, path: str) -> bool:
        r = self.probe.request(Op.EXISTS, PathWatchRequest(path, False))
        return r.err == 0

    def wait_gone(self, path: str, timeout: float = 30.0) -> None:
        self.wait_until(lambda: not self.probe_exists(path), timeout, f"{path} to vanish")

    def sleep(self, seconds: float) -> None:
        """Wait, pinging every session, so only the sessions we dropped can expire."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.keepalive()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    # -------------------------------------------------------- teardown
    def finish(self) -> Transcript:
        """Record trailing events, close every session, delete the base."""
        self.flush()
        for c in self.sessions.values():
            if not c.connected and c.session_id:
                try:  # resume a dropped session just to close it
                    resp = c.connect()
                    if not resp.sessionId:
                        c.drop()
                except (ConnectionClosed, OSError):
                    c.drop()
            if c.connected:
                c.close()
        if self.base:
            try:
                delete_tree(self.probe, self.base)
            except Exception:  # noqa: BLE001 - best effort
                pass
        self.probe.close()
        if self._nudger is not None:
            self._nudger.close()
        return self.transcript


def delete_tree(client: RawClient, path: str) -> None:
    """Delete path and everything under it (children first), ignoring NONODE."""
    r = client.request(Op.GET_CHILDREN, PathWatchRequest(path, False))
    if r.err == Err.NONODE:
        return
    if r.err == 0:
        for child in r.body.children:
            delete_tree(client, path.rstrip("/") + "/" + child)
    client.request(Op.DELETE, DeleteRequest(path, -1))


def run_scenario(
    scenario: Callable[[Runner], None],
    reference: Any,
    candidate: Any,
    *,
    base: str | None = None,
    labels: tuple[str, str] = ("zookeeper", "zabby"),
) -> tuple[Transcript, Transcript, str]:
    """Run the scenario on both servers (reference first); return both and their diff."""
    out = []
    for server, label in ((reference, labels[0]), (candidate, labels[1])):
        r = Runner(server, label, base)
        try:
            scenario(r)
        except Exception as e:  # noqa: BLE001 - recorded so the diff shows where
            r._record(f"!! scenario raised {type(e).__name__}: {e}")
        finally:
            t = r.finish()
        out.append(t)
    return out[0], out[1], compare(out[0], out[1])


def frame_of(xid: int, op: int, body: Any = None) -> bytes:
    """A framed request, for raw tests."""
    return encode_request(xid, op, body)


def digest_acl(user: str, password: str, perms: int = 31) -> ACL:
    """ACL for ZooKeeper's digest scheme: id = user:base64(sha1(user:password))."""
    import base64

    h = base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest()).decode()
    return ACL(perms, Id("digest", f"{user}:{h}"))
