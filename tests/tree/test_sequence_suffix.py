"""A sequential node's name ends in the parent's cversion as ZooKeeper formats it
("%010d"), negative values after the int32 wraps included."""

from hypothesis import given
from hypothesis import strategies as st

from zabby.tree import DataTree, RequestContext
from zabby.tree.datatree import sequence_suffix
from zabby.wire import ACL, Id, Op
from zabby.wire.records import CreateRequest


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_matches_zookeepers_format(n):
    assert sequence_suffix(n) == f"{n:010d}"  # Java's String.format("%010d", n)


def test_edges():
    cases = {0: "0000000000", 7: "0000000007", 999999999: "0999999999",
             1000000000: "1000000000", 2**31 - 1: "2147483647", -1: "-000000001",
             -12345678: "-012345678", -123456789: "-123456789", -(2**31): "-2147483648"}
    for n, want in cases.items():
        assert sequence_suffix(n) == want


def test_sequential_create_names_the_node_after_the_parents_cversion():
    t = DataTree()
    acl = [ACL(31, Id("world", "anyone"))]
    names = []
    for zxid in range(1, 4):
        ctx = RequestContext(1, zxid, zxid, 1000, [Id("world", "anyone")])
        names.append(t.apply(t.prepare(Op.CREATE, CreateRequest("/s-", b"", acl, 2), ctx)).path)
    assert names == ["/s-0000000000", "/s-0000000001", "/s-0000000002"]
