"""The kill -9 history checker catches what it must (synthetic histories, no server)."""

from __future__ import annotations

from zabby.wire import Err
from zabby.wire.records import Stat

from .history import (
    OWN_KEYS,
    SHARED_KEYS,
    Base,
    NodeState,
    OpRec,
    Worker,
    check_after_restart,
    own_parent,
    own_path,
    shared_path,
)


def _stat(version: int, mzxid: int) -> Stat:
    return Stat(1, mzxid, 0, 0, version, 0, 0, 0, 0, 0, 1)


def _base() -> Base:
    return Base(
        own={0: {own_path(0, k): None for k in range(OWN_KEYS)}},
        shared={shared_path(k): NodeState(b"init", 0, 5) for k in range(SHARED_KEYS)},
    )


def _tree(own: dict[str, tuple[bytes, int, int]], shared: dict[int, tuple[bytes, int, int]] | None = None):
    t = {p: (b"", _stat(0, 1)) for p in ("/", "/own", "/shared", own_parent(0))}
    for k in range(SHARED_KEYS):
        data, v, z = (shared or {}).get(k, (b"init", 0, 5))
        t[shared_path(k)] = (data, _stat(v, z))
    for p, (data, v, z) in own.items():
        t[p] = (data, _stat(v, z))
    return t


def _worker(ops: list[OpRec]) -> Worker:
    w = Worker(cid=0, seed=0, host="", port=0, base_own={}, round_tag="t")
    w.ops = ops
    return w


K0, K1 = own_path(0, 0), own_path(0, 1)
S0 = shared_path(0)


def _history():
    """create k0 (ok), set k0 (ok), create k0 again (definite NODEEXISTS),
    shared set (ok), set k0 (unknown), create k1 (unknown)."""
    return [
        OpRec(0, 0, "create", K0, b"A", -1, Err.OK, 0, "ok", 0, 10, 0, 10),
        OpRec(0, 1, "set", K0, b"B", -1, Err.OK, 1, "ok", 0, 11, 1, 11),
        OpRec(0, 2, "create", K0, b"X", -1, Err.NODEEXISTS, None, "err", Err.NODEEXISTS, 12),
        OpRec(0, 3, "shared_set", S0, b"S1", 0, None, None, "ok", 0, 13, 1, 13),
        OpRec(0, 4, "set", K0, b"C", -1, Err.OK, 2, "unknown"),
        OpRec(0, 5, "create", K1, b"D", -1, Err.OK, 0, "unknown"),
        OpRec(0, 6, "shared_set", S0, b"S2", 1, None, None, "unknown"),
    ]


def test_consistent_histories_pass():
    w = _worker(_history())
    shared = {0: (b"S1", 1, 13)}
    # none of the unknown ops applied
    assert check_after_restart(_base(), [w], _tree({K0: (b"B", 1, 11)}, shared), 20) == []
    # the first unknown applied
    assert check_after_restart(_base(), [w], _tree({K0: (b"C", 2, 15)}, shared), 20) == []
    # all of them applied
    tree = _tree({K0: (b"C", 2, 15), K1: (b"D", 0, 16)}, {0: (b"S2", 2, 17)})
    assert check_after_restart(_base(), [w], tree, 20) == []


def test_lost_acknowledged_write_is_caught():
    w = _worker(_history())
    problems = check_after_restart(_base(), [w], _tree({K0: (b"A", 0, 10)}, {0: (b"S1", 1, 13)}), 20)
    assert any("match no prefix" in p for p in problems), problems


def test_acknowledged_zxid_beyond_recovery_is_caught():
    w = _worker(_history())
    problems = check_after_restart(_base(), [w], _tree({K0: (b"B", 1, 11)}, {0: (b"S1", 1, 13)}), 12)
    assert any("beyond the restarted server" in p for p in problems), problems


def test_wrong_mzxid_is_caught():
    w = _worker(_history())
    problems = check_after_restart(_base(), [w], _tree({K0: (b"B", 1, 99)}, {0: (b"S1", 1, 13)}), 200)
    assert problems


def test_definite_error_payload_is_caught():
    w = _worker(_history())
    problems = check_after_restart(_base(), [w], _tree({K0: (b"X", 0, 12)}, {0: (b"S1", 1, 13)}), 20)
    assert any("definite error" in p for p in problems), problems


def test_unknown_ops_out_of_order_are_caught():
    w = _worker(_history())
    # op 5 (create k1) applied but op 4 (set k0) not: not a prefix
    tree = _tree({K0: (b"B", 1, 11), K1: (b"D", 0, 16)}, {0: (b"S1", 1, 13)})
    problems = check_after_restart(_base(), [w], tree, 20)
    assert any("match no prefix" in p for p in problems), problems
    # the shared set (op 6) applied, but the own keys say op 5 was not
    tree = _tree({K0: (b"C", 2, 15)}, {0: (b"S2", 2, 17)})
    problems = check_after_restart(_base(), [w], tree, 20)
    assert any("shared key shows" in p for p in problems), problems


def test_shared_key_anomalies_are_caught():
    w = _worker(_history())
    own = {K0: (b"B", 1, 11)}
    assert check_after_restart(_base(), [w], _tree(own, {0: (b"init", 0, 5)}), 20)  # lost
    assert check_after_restart(_base(), [w], _tree(own, {0: (b"S2", 3, 17)}), 20)  # bad version
    assert check_after_restart(_base(), [w], _tree(own, {0: (b"S1", 1, 14)}), 20)  # bad mzxid


def test_unexpected_and_missing_nodes_are_caught():
    w = _worker(_history())
    tree = _tree({K0: (b"B", 1, 11)}, {0: (b"S1", 1, 13)})
    tree["/stray"] = (b"", _stat(0, 3))
    del tree["/shared"]
    problems = check_after_restart(_base(), [w], tree, 20)
    assert any("unexpected node /stray" in p for p in problems)
    assert any("/shared is missing" in p for p in problems)


def test_a_node_newer_than_the_recovered_log_is_caught():
    """The unknown set applied, but its node says zxid 0x19 while the server reports
    it recovered up to 0x14: the tree is not a state of the log it claims."""
    w = _worker(_history())
    shared = {0: (b"S1", 1, 13)}
    assert check_after_restart(_base(), [w], _tree({K0: (b"C", 2, 0x14)}, shared), 0x14) == []
    problems = check_after_restart(_base(), [w], _tree({K0: (b"C", 2, 0x19)}, shared), 0x14)
    assert any("0x19 (czxid/mzxid/pzxid) is beyond" in p for p in problems), problems
