"""Long ACL lists: fixup/check stay linear with ZooKeeper's semantics, and the
ACL intern table gives its memory back once no znode uses a list."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from treeutil import OPEN, Driver

from zabby.storage.snapshot import snapshot_bytes, snapshot_from_bytes
from zabby.tree.acl import (
    ACLError,
    ACLList,
    acl_cache_size,
    check_perm,
    fixup_acl,
    intern_acl,
    ip_matches,
)
from zabby.wire.constants import Err, Op, Perm
from zabby.wire.records import ACL, CreateRequest, DeleteRequest, Id


# ------------------------------------------------------------ brute-force models
def _model_fixup(acl, auth_ids):
    """The obvious quadratic version (ZooKeeper's removeDuplicates + fixupACL)."""
    uniq = []
    for a in acl or ():
        if a not in uniq:
            uniq.append(a)
    if not uniq:
        raise ACLError(Err.INVALIDACL)
    out = []
    for a in uniq:
        ident = a.id
        if ident is None or ident.scheme is None:
            raise ACLError(Err.INVALIDACL)
        if ident.scheme == "world":
            if ident.id is None:
                raise ACLError(Err.MARSHALLINGERROR)
            if ident.id != "anyone":
                raise ACLError(Err.INVALIDACL)
            out.append(a)
        elif ident.scheme == "auth":
            got = [ACL(a.perms, Id(x.scheme, x.id)) for x in auth_ids if x.scheme == "digest"]
            if not got:
                raise ACLError(Err.INVALIDACL)
            out += got
        elif ident.scheme in ("digest", "ip"):
            if ident.id is None:
                raise ACLError(Err.MARSHALLINGERROR)
            if ident.scheme == "digest":
                ok = ident.id != "" and len([p for p in ident.id.split(":")]) == 2 and not ident.id.endswith(":")
            else:
                from zabby.tree.acl import ip_valid

                ok = ip_valid(ident.id)
            if not ok:
                raise ACLError(Err.INVALIDACL)
            out.append(a)
        else:
            raise ACLError(Err.INVALIDACL)
    return out


def _model_check(acl, perm, auth_ids):
    if not acl:
        return True
    if any(x.scheme == "super" for x in auth_ids):
        return True
    for a in acl:
        if not a.perms & perm:
            continue
        s, i = a.id.scheme, a.id.id
        if s == "world" and i == "anyone":
            return True
        for x in auth_ids:
            if s == "digest" and x.scheme == "digest" and x.id == i:
                return True
            if s == "ip" and x.scheme == "ip" and x.id is not None and ip_matches(x.id, i):
                return True
            if s in ("x509", "sasl") and x.scheme == s and x.id == i:
                return True
    return False


def _outcome(f, *args):
    try:
        return ("ok", f(*args))
    except ACLError as e:
        return ("err", e.err)


_schemes = st.sampled_from(["world", "auth", "digest", "ip", "sasl", None])
_ids = st.sampled_from(["anyone", "u:x", "v:y", "u:", "10.0.0.1", "10.0.0.0/8", "1.2.3.4", "", None])
_ident = st.one_of(st.none(), st.builds(Id, _schemes, _ids))
_acl = st.builds(ACL, st.integers(0, 31), _ident)
_auth = st.lists(
    st.builds(Id, st.sampled_from(["ip", "digest", "super"]), st.sampled_from(["u:x", "10.0.0.1", "1.2.3.4"])),
    max_size=4,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_acl, max_size=12), _auth)
def test_fixup_matches_quadratic_model(acl, auth):
    assert _outcome(fixup_acl, acl, auth) == _outcome(_model_fixup, acl, auth)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.builds(ACL, st.integers(0, 31), st.builds(Id, st.sampled_from(["world", "digest", "ip", "x509", "sasl"]), _ids.filter(lambda x: x is not None))), max_size=10),
    st.integers(1, 31),
    st.lists(st.builds(Id, st.sampled_from(["ip", "digest", "super", "x509", "sasl"]),
                       st.sampled_from(["u:x", "10.0.0.1", "1.2.3.4", "CN=a"])), max_size=4),
)
def test_check_perm_matches_model(acl, perm, auth):
    assert check_perm(acl, perm, auth) == _model_check(acl, perm, auth)


def test_fixup_long_list_keeps_first_of_each_and_order():
    # 30,000 entries, every one repeated three times, interleaved: the quadratic
    # version took minutes here; the result keeps first occurrences in order.
    n = 10_000
    distinct = [ACL(p, Id("digest", f"user{i}:h")) for i, p in zip(range(n), range(n), strict=True)]
    acl = [ACL(a.perms & 31, a.id) for a in distinct] * 3
    got = fixup_acl(acl, [])
    seen = []
    keys = set()
    for a in acl:
        k = (a.perms, a.id.id)
        if k not in keys:
            keys.add(k)
            seen.append(a)
    assert got == seen and len(got) == n


def test_check_perm_long_acl_and_many_auth_ids():
    acl = [ACL(Perm.READ, Id("digest", f"user{i}:h")) for i in range(20_000)]
    acl += [ACL(Perm.READ, Id("ip", "10.9.9.9"))] * 5_000
    auth = [Id("digest", f"other{i}:h") for i in range(20_000)] + [Id("ip", "127.0.0.1")] * 20_000
    assert not check_perm(acl, Perm.READ, auth)
    assert check_perm(acl, Perm.READ, auth + [Id("digest", "user19999:h")])
    assert not check_perm(acl, Perm.WRITE, auth + [Id("digest", "user19999:h")])


def test_create_and_set_acl_with_long_list_through_the_tree():
    d = Driver()
    acl = [ACL(31, Id("digest", f"u{i}:h")) for i in range(12_000)] + OPEN
    assert d.create("/big", acl=acl + acl).err == Err.OK
    assert d.tree.get_node("/big").acl == acl
    assert d.set_acl("/big", list(reversed(acl)), auth=[Id("super", "")]).err == Err.OK
    assert d.tree.get_node("/big").acl == list(reversed(acl))


# ------------------------------------------------------------------ intern table
def _distinct_acl(k: int, n: int = 300):
    return [ACL(31, Id("digest", f"s{k}-{i}:h")) for i in range(n)]


def test_intern_table_returns_to_baseline_after_create_delete():
    d = Driver()
    gc.collect()
    base = acl_cache_size()
    for k in range(100):
        assert d.create(f"/n{k}", acl=_distinct_acl(k)).err == Err.OK
    assert acl_cache_size() == base + 100
    # equal lists share one interned object
    assert d.create("/twin", acl=_distinct_acl(7)).err == Err.OK
    assert d.tree.get_node("/twin").acl is d.tree.get_node("/n7").acl
    assert acl_cache_size() == base + 100
    for k in range(100):
        assert d.delete(f"/n{k}").err == Err.OK
    gc.collect()
    assert acl_cache_size() == base + 1  # /twin still holds list 7
    d.delete("/twin")
    gc.collect()
    assert acl_cache_size() == base


def test_intern_table_follows_set_acl_multi_and_session_close():
    d = Driver()
    gc.collect()
    base = acl_cache_size()
    d.create("/a", acl=_distinct_acl(1))
    for k in range(2, 20):
        assert d.set_acl("/a", _distinct_acl(k), auth=[Id("super", "")]).err == Err.OK
    gc.collect()
    assert acl_cache_size() == base + 1
    d.open_session(5)
    r = d.multi([(Op.CREATE, CreateRequest(f"/e{k}", b"", _distinct_acl(100 + k), 1)) for k in range(10)], sid=5)
    assert r.err == Err.OK
    assert acl_cache_size() == base + 11
    # a failed multi leaves nothing behind
    r = d.multi([(Op.CREATE, CreateRequest("/f", b"", _distinct_acl(500), 0)), (Op.DELETE, DeleteRequest("/nope", -1))])
    gc.collect()
    assert acl_cache_size() == base + 11
    d.close_session(5)
    d.delete("/a")
    gc.collect()
    assert acl_cache_size() == base


def test_intern_table_across_snapshot_round_trip():
    d = Driver()
    gc.collect()
    base = acl_cache_size()
    for k in range(20):
        d.create(f"/n{k}", acl=_distinct_acl(k % 5, 50))
    assert acl_cache_size() == base + 5
    blob = snapshot_bytes(d.tree)
    tree2 = snapshot_from_bytes(blob)
    # the restored tree shares the live interned lists, and equal lists stay shared
    assert tree2.get_node("/n3").acl is d.tree.get_node("/n3").acl
    assert tree2.get_node("/n8").acl is tree2.get_node("/n3").acl
    assert acl_cache_size() == base + 5
    del d
    gc.collect()
    assert acl_cache_size() == base + 5  # tree2 still uses them
    assert tree2.get_node("/n4").acl == _distinct_acl(4, 50)
    d2 = Driver(tree2)
    for k in range(20):
        assert d2.delete(f"/n{k}").err == Err.OK
    gc.collect()
    assert acl_cache_size() == base
    # a restore from the same bytes with nothing live builds fresh lists
    tree3 = snapshot_from_bytes(blob)
    assert acl_cache_size() == base + 5
    assert tree3.get_node("/n0").acl is tree3.get_node("/n5").acl
    del tree3
    gc.collect()
    assert acl_cache_size() == base


def test_interned_list_is_immutable_and_compares_like_a_sequence():
    a = intern_acl(OPEN)
    assert isinstance(a, ACLList)
    assert a == OPEN and a == tuple(OPEN) and not (a != tuple(OPEN))
    assert hash(a) == hash(tuple(OPEN))
    with pytest.raises(TypeError):
        a.append(OPEN[0])
    with pytest.raises(TypeError):
        a[0] = OPEN[0]
    # every mutator, compiled or not, refuses with its own message
    for mutate in (a.clear, a.sort, a.reverse, a.pop, lambda: a.extend(OPEN),
                   lambda: a.__iadd__(OPEN), lambda: a.__delitem__(0)):
        with pytest.raises(TypeError, match="interned ACL list is immutable"):
            mutate()
    assert a == OPEN
    assert intern_acl(list(a)) is a


def test_multi_with_long_acl():
    d = Driver()
    acl = [ACL(31, Id("digest", f"u{i}:h")) for i in range(10_000)] * 2 + OPEN
    r = d.multi([(Op.CREATE, CreateRequest("/m", b"", acl, 0))])
    assert r.err == Err.OK
    assert len(d.tree.get_node("/m").acl) == 10_001
    assert r.response.results[0][:2] == (Op.CREATE, 0)


def test_memory_returns_after_create_delete_of_distinct_long_acls():
    import tracemalloc

    d = Driver()
    d.create("/warm", acl=_distinct_acl(-1))
    d.delete("/warm")
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for k in range(100):
            assert d.create("/x", acl=_distinct_acl(k)).err == Err.OK
            assert d.delete("/x").err == Err.OK
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 100 lists of 300 entries kept would be several MB (the leak measured +9 MB RSS)
    assert after - before < 256 * 1024, after - before


def test_auth_expansion_is_bounded_by_what_a_txn_can_hold():
    # n "auth" entries (distinct perms) times k digest ids: n*k entries. Within
    # jute.maxbuffer / 12 it expands as ZooKeeper does; beyond, MARSHALLINGERROR
    # before the product is built.
    ids = [Id("digest", f"u{i}:h") for i in range(300)] + [Id("ip", "127.0.0.1")]
    acl = [ACL(p, Id("auth", "")) for p in range(300)]
    with pytest.raises(ACLError) as e:
        fixup_acl(acl, ids, max_entries=(1 << 20) // 12)
    assert e.value.err == Err.MARSHALLINGERROR
    small = fixup_acl(acl[:3], ids)
    assert small == [ACL(p, i) for p in range(3) for i in ids[:300]]
    d = Driver()
    r = d.create("/x", acl=acl, auth=ids)
    assert r.err == Err.MARSHALLINGERROR
    assert d.create("/y", acl=acl[:2], auth=ids[:5]).err == Err.OK
    assert d.tree.get_node("/y").acl == [ACL(p, i) for p in range(2) for i in ids[:5]]
