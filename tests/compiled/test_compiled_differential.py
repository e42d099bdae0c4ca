"""Compiled (mypyc) modules against their own pure-Python source, on the same inputs.

Each compiled module also gets a pure twin in this process, loaded from its .py under
another name (its relative imports resolve to the real package, so only the module
under test differs). Hypothesis drives both: jute primitives, frame splitting and
request decoding, and the data tree's prepare/apply/read over random operation
sequences; every result (bytes, exceptions, events, digests) must be identical.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire.wire_strategies import encoded, request_strategy  # tests/ is on sys.path

import zabby
from zabby import _compiled
from zabby.tree import RequestContext
from zabby.wire import records as R
from zabby.wire.constants import CreateMode, Op
from zabby.wire.protocol import MultiRequest, encode_request

REQUIRE = os.environ.get("ZABBY_REQUIRE_COMPILED", "") not in ("", "0")
if not zabby.compiled_modules() and not REQUIRE:
    pytest.skip("zabby is not compiled here: nothing to compare", allow_module_level=True)

EXAMPLES = int(os.environ.get("ZABBY_DIFF_EXAMPLES", "150"))


def pure_twin(name: str):
    package, _, leaf = name.rpartition(".")
    alias = f"{package}._pure_twin_{leaf}"
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, _compiled.source_path(name))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    spec.loader.exec_module(mod)
    return mod


def compiled(name: str):
    mod = importlib.import_module(name)
    assert isinstance(mod.__loader__, importlib.machinery.ExtensionFileLoader), mod.__file__
    return mod


def outcome(fn, *args):
    """(value, None) or (None, (exception type name, message))."""
    try:
        return fn(*args), None
    except Exception as e:  # noqa: BLE001 - the exception is the result compared
        return None, (type(e).__name__, str(e))


def test_twins_are_what_they_claim():
    for name in _compiled.COMPILED_MODULES:
        assert compiled(name).__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
        assert pure_twin(name).__file__ == str(_compiled.source_path(name))


# ------------------------------------------------------------------------ wire

P_C = compiled("zabby.wire.primitives")
P_P = pure_twin("zabby.wire.primitives")
READERS = ("read_int", "read_long", "read_bool", "read_buffer", "read_ustring")


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 70))
def test_primitive_readers(buf, pos):
    for fn in READERS:
        a = outcome(getattr(P_C, fn), buf, pos)
        b = outcome(getattr(P_P, fn), buf, pos)
        assert a == b, fn
        a = outcome(getattr(P_C, fn), memoryview(buf), pos)
        assert a == b, fn + " on a memoryview"
    a = outcome(P_C._read_vector, buf, pos, P_C.read_ustring, 4)
    b = outcome(P_P._read_vector, buf, pos, P_P.read_ustring, 4)
    assert a == b


STRS = st.lists(st.none() | st.text(max_size=12) | st.just("\ud800x"), max_size=8)


@settings(max_examples=EXAMPLES, deadline=None)
@given(STRS, st.none() | st.binary(max_size=20), st.integers(-(2**31), 2**31 - 1))
def test_primitive_writers(items, blob, n):
    for fn, arg in (("_write_ustring_vector", items), ("write_buffer", blob), ("_write_int", n),
                    ("_write_long", n), ("_write_bool", bool(n & 1))):
        outs = []
        for mod in (P_C, P_P):
            out = bytearray(b"head")
            outs.append((outcome(getattr(mod, fn), out, arg)[1], bytes(out)))
        assert outs[0] == outs[1], fn
    for s in items:
        a, b = bytearray(), bytearray()
        assert outcome(P_C.write_ustring, a, s) == outcome(P_P.write_ustring, b, s)
        assert a == b
    clean = [s for s in items if s is not None and "\ud800" not in s]
    ec, ep = P_C.encoded_strings(clean), P_P.encoded_strings(clean)
    assert (list(ec), ec.encoded) == (list(ep), ep.encoded)


PR_C = compiled("zabby.wire.protocol")
PR_P = pure_twin("zabby.wire.protocol")


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(request_strategy(), st.integers(-(2**31), 2**31 - 1), st.integers(0, 40),
       st.lists(st.integers(0, 400), max_size=4))
def test_requests_decode_alike(op_body, xid, cut, chunks):
    op, body = op_body
    frame = encode_request(xid, op, body)
    payload = frame[4:]
    results = []
    for mod in (PR_C, PR_P):
        # whole frames through the frame splitter, fed in pieces
        dec = mod.FrameDecoder()
        frames = []
        prev = 0
        for c in sorted(x % (len(frame) + 1) for x in chunks) + [len(frame)]:
            frames += dec.feed(frame[prev:c])
            prev = c
        got = [mod.decode_request(f) for f in frames]
        got = [(x, o, None if b is None else encoded(b)) for x, o, b in got]
        # and a truncated body: the same error or the same value
        t = outcome(mod.decode_request, payload[: max(0, len(payload) - cut)])
        t = (t[0] and (t[0][0], t[0][1], t[0][2] is not None and encoded(t[0][2])), t[1])
        results.append((got, dec.pending, t, bytes(mod.encode_request(xid, op, body)),
                        bytes(mod.encode_reply(xid, 7, 0, None if op in (Op.MULTI, Op.MULTI_READ)
                                               else body))))
    assert results[0] == results[1]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_decodes_alike(data):
    for fn in ("decode_request", "decode_connect_request", "decode_connect_response"):
        a = outcome(getattr(PR_C, fn), data)
        b = outcome(getattr(PR_P, fn), data)
        if a[0] is not None:
            a = (repr(a[0]), None)
            b = (repr(b[0]) if b[0] is not None else None, b[1])
        assert a == b, fn
    a = outcome(PR_C.FrameDecoder(max_frame=64).feed, data)
    b = outcome(PR_P.FrameDecoder(max_frame=64).feed, data)
    assert a == b


# ------------------------------------------------------------------------ tree

DT_C = compiled("zabby.tree.datatree")
DT_P = pure_twin("zabby.tree.datatree")

PATHS = ["/a", "/a/b", "/a/b/c", "/c", "/c/d", "/zookeeper/x", "/e", "bad"]
OPEN = [R.ACL(31, R.Id("world", "anyone"))]
READ_ONLY = [R.ACL(1, R.Id("world", "anyone"))]
DIGEST = [R.ACL(31, R.Id("digest", "u:x"))]
acls = st.sampled_from([OPEN, READ_ONLY, DIGEST, []])
paths = st.sampled_from(PATHS)
data = st.none() | st.binary(max_size=12)
version = st.sampled_from([-1, 0, 1, 2])
flags = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 99])

create = st.builds(R.CreateRequest, paths, data, acls, flags)
sub_ops = st.one_of(
    st.tuples(st.just(int(Op.CREATE)), create),
    st.tuples(st.just(int(Op.DELETE)), st.builds(R.DeleteRequest, paths, version)),
    st.tuples(st.just(int(Op.SET_DATA)), st.builds(R.SetDataRequest, paths, data, version)),
    st.tuples(st.just(int(Op.CHECK)), st.builds(R.CheckVersionRequest, paths, version)),
)
ops = st.one_of(
    st.tuples(st.sampled_from([int(Op.CREATE), int(Op.CREATE2), int(Op.CREATE_CONTAINER)]),
              create),
    st.tuples(st.just(int(Op.CREATE_TTL)),
              st.builds(R.CreateTTLRequest, paths, data, acls,
                        st.sampled_from([int(CreateMode.PERSISTENT_WITH_TTL), 0]),
                        st.sampled_from([1, 1000, 0, -1]))),
    st.tuples(st.just(int(Op.DELETE)), st.builds(R.DeleteRequest, paths, version)),
    st.tuples(st.just(int(Op.SET_DATA)), st.builds(R.SetDataRequest, paths, data, version)),
    st.tuples(st.just(int(Op.SET_ACL)), st.builds(R.SetACLRequest, paths, acls, version)),
    st.tuples(st.just(int(Op.CHECK)), st.builds(R.CheckVersionRequest, paths, version)),
    st.tuples(st.just(int(Op.MULTI)), st.builds(MultiRequest, st.lists(sub_ops, max_size=4))),
    st.tuples(st.just(int(Op.CLOSE_SESSION)), st.none()),
    st.tuples(st.just(int(Op.CREATE_SESSION)), st.just(30_000)),
    st.tuples(st.just(int(Op.DELETE)), st.none()),  # an undecodable body
)
step = st.tuples(ops, st.sampled_from([1, 2]), st.booleans(), st.booleans())

READS = [(Op.GET_DATA, R.PathWatchRequest), (Op.GET_CHILDREN2, R.PathWatchRequest),
         (Op.EXISTS, R.PathWatchRequest), (Op.GET_ACL, R.PathRequest)]


def _enc(x):
    if x is None or isinstance(x, (int, str, bytes)):
        return x
    return encoded(x)


def _run(mod, steps):
    tree = mod.DataTree()
    tree.digest_enabled = True
    log = []
    zxid = 0
    pending = []
    for (op, body), sid, auth_digest, batch in steps:
        zxid += 1
        auth = [R.Id("ip", "127.0.0.1")] + ([R.Id("digest", "u:x")] if auth_digest else [])
        ctx = RequestContext(sid, zxid, zxid, 1000 + zxid, auth)
        txn = tree.prepare(op, body, ctx)
        log.append(("txn", txn.encode()))
        pending.append(txn)
        if batch and len(pending) < 3:
            continue  # prepare more before applying: pending changes in play
        for t in pending:
            r = tree.apply(t)
            log.append(("apply", int(r.err), _enc(r.response), list(r.events), list(r.events.acls),
                        r.path, int(r.multi_err)))
        pending.clear()
        for p in ("/", "/a", "/a/b", "/c", "/e"):
            for rop, rcls in READS:
                req = rcls(p) if rcls is R.PathRequest else rcls(p, False)
                (err, resp), exc = outcome(tree.read, rop, req, auth, sid)
                log.append(("read", int(rop), p, exc, int(err), _enc(resp)))
    for t in pending:
        r = tree.apply(t)
        log.append(("apply", int(r.err), _enc(r.response), list(r.events), r.path))
    log.append(("digest", tree.digest(), tree.digest_log(), tree.last_zxid, tree.node_count))
    return log


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(step, min_size=1, max_size=25))
def test_tree_prepare_apply_alike(steps):
    a = _run(DT_C, steps)
    b = _run(DT_P, steps)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"step {i}"


# ------------------------------------------- znode, acl, session, metrics (issue 14)
# Compiled since they sit on every request: ZNode.stat, check_perm, SessionTracker.touch,
# Summary.add. The pure twins are the same .py loaded under another name.

ZN_C = compiled("zabby.tree.znode")
ZN_P = pure_twin("zabby.tree.znode")
INT64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(INT64, st.booleans(), st.integers(1, 2**40 - 1))
def test_znode_owner_encodings_alike(owner, extended, ttl):
    for fn, args in (("ephemeral_kind", (owner, extended)),
                     ("client_ephemeral_owner", (owner, extended)),
                     ("ttl_of", (owner,)), ("ttl_owner", (ttl,))):
        assert outcome(getattr(ZN_C, fn), *args) == outcome(getattr(ZN_P, fn), *args), fn


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(st.none() | st.binary(max_size=20), INT64, INT64, INT64,
       st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**31 - 1), st.integers(0, 5),
       INT64, st.booleans())
def test_znode_stat_alike(data, zxid, t, owner, version, cversion, nkids, pzxid, extended):
    def stat(mod, how):
        if how == "init":
            n = mod.ZNode(data, None, zxid, t, owner)
        else:  # as storage's snapshot readers make them
            n = mod.restored(data, None, zxid, zxid, t, t, 0, 0, 0, owner, pzxid)
        n.version = version
        n.cversion = cversion
        n.children = {f"c{i}": None for i in range(nkids)} or None
        return encoded(n.stat(extended)), n.data_length, n.num_children, repr(n)

    for how in ("init", "restored"):
        assert stat(ZN_C, how) == stat(ZN_P, how), how


ACL_C = compiled("zabby.tree.acl")
ACL_P = pure_twin("zabby.tree.acl")
SCHEMES = st.sampled_from(["world", "digest", "ip", "x509", "sasl", "auth", "super", "other"])
IDS = st.sampled_from(["anyone", "u:x", "u:y", "127.0.0.1", "10.0.0.0/8", "10.1.2.3", "::1",
                       "CN=a", "bob", "", "300.1.1.1", "1.2.3.4/33"]) | st.none()
ids = st.builds(R.Id, SCHEMES, IDS)
acl_entries = st.lists(st.builds(R.ACL, st.integers(0, 31), ids | st.none()), max_size=5)


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(acl_entries, st.integers(0, 31), st.lists(ids, max_size=4), st.booleans())
def test_acl_checks_alike(acl, perm, auth, bounded):
    ok_acl = [a for a in acl if a.id is not None and a.id.id is not None]
    auth_ok = [i for i in auth if i.id is not None or i.scheme == "ip"]
    assert (outcome(ACL_C.check_perm, ok_acl, perm, auth_ok)
            == outcome(ACL_P.check_perm, ok_acl, perm, auth_ok))
    limit = 3 if bounded else None

    def fix(mod):
        try:
            return [encoded(a) for a in mod.fixup_acl(acl, auth, mod.KNOWN_PROVIDERS, limit)]
        except mod.ACLError as e:
            return ("ACLError", int(e.err))

    assert fix(ACL_C) == fix(ACL_P)
    for i in auth_ok:
        if i.id is not None:
            for fn in ("ip_valid", "digest_id"):
                assert outcome(getattr(ACL_C, fn), i.id) == outcome(getattr(ACL_P, fn), i.id), fn
            for a in ok_acl:
                assert (outcome(ACL_C.ip_matches, i.id, a.id.id)
                        == outcome(ACL_P.ip_matches, i.id, a.id.id))


S_C = compiled("zabby.server.session")
S_P = pure_twin("zabby.server.session")
tracker_steps = st.lists(st.tuples(st.sampled_from(["add", "touch", "remove", "expire", "close"]),
                                   st.integers(0, 5), st.integers(0, 50_000),
                                   st.sampled_from([None, 2000, 30_000])), max_size=30)


@settings(max_examples=EXAMPLES, deadline=None)
@given(INT64, st.integers(0, 255), st.integers(0, 2**45), tracker_steps)
def test_sessions_alike(sid, server_id, now, steps):
    assert S_C.session_password(sid) == S_P.session_password(sid)
    assert S_C.initial_session_id(server_id, now) == S_P.initial_session_id(server_id, now)

    def run(mod):
        t = mod.SessionTracker(1000, server_id, now)
        log = []
        clock = 0
        for what, k, dt, timeout in steps:
            clock += dt
            sid_k = t.new_id() if what == "add" and k == 0 else k
            if what == "add":
                s = t.add(sid_k, timeout or 4000, clock)
                log.append((s.id, s.expire_at, s.passwd, repr(s)))
            elif what == "touch":
                s = t.get(k)
                log.append(None if s is None else (t.touch(s, clock, timeout), s.expire_at))
            elif what == "remove":
                s = t.remove(k)
                log.append(None if s is None else s.id)
            elif what == "close":
                s = t.get(k)
                if s is not None:
                    s.closing = True
                    s.conn = object  # any connection object
            else:
                log.append(sorted((s.id, s.closing, s.expire_at) for s in t.expired(clock)))
            log.append(len(t))
        return log

    assert run(S_C) == run(S_P)


M_C = compiled("zabby.server.metrics")
M_P = pure_twin("zabby.server.metrics")


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.integers(-5, 2_000_000), max_size=40), st.booleans(),
       st.lists(st.floats(0.01, 1.0), min_size=1, max_size=4))
def test_summaries_alike(values, percentiles, qs):
    def run(mod):
        s = mod.Summary(percentiles)
        out = []
        for v in values:
            s.add(v)
            out.append((s.count, s.total, s.min, s.max, s.avg, [s.quantile(q) for q in qs]))
        s.reset()
        out.append((s.count, s.total, s.min, s.max, list(s.buckets)))
        out.append(mod.avg_latency(sum(values), len(values)))
        return out

    assert run(M_C) == run(M_P)


W_C = compiled("zabby.tree.watches")
W_P = pure_twin("zabby.tree.watches")
W_PATHS = st.sampled_from(["/", "/a", "/a/b", "/a/b/c", "/d"])
watch_steps = st.lists(st.tuples(
    st.sampled_from(["data", "exist", "child", "persistent", "recursive", "trigger", "has",
                     "remove", "remove_watcher"]),
    W_PATHS, st.sampled_from(["w1", "w2", "w3"]), st.integers(1, 4), st.integers(1, 3)),
    max_size=40)


@settings(max_examples=EXAMPLES, deadline=None)
@given(watch_steps)
def test_watches_alike(steps):
    def run(mod):
        m = mod.WatchManager()
        log = []
        for what, path, w, etype, wtype in steps:
            if what == "data":
                m.add_data_watch(path, w)
            elif what == "exist":
                m.add_exist_watch(path, w)
            elif what == "child":
                m.add_child_watch(path, w)
            elif what in ("persistent", "recursive"):
                m.add_persistent(path, w, what == "recursive")
            elif what == "trigger":
                log.append(m.trigger(etype, path))
            elif what == "has":
                log.append(m.has(path, w, wtype))
            elif what == "remove":
                log.append(m.remove_kinds(path, w, wtype))
            else:
                m.remove_watcher(w)
            log.append((m.watch_count, m.counts(), m.summary_all()))
        log.append((sorted(m.by_path_sorted(), key=repr), m.by_watcher_merged(),
                     m.watches_by_path(), m.watches_by_watcher()))
        return log

    assert run(W_C) == run(W_P)
