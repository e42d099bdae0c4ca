"""The partition instrument itself (zabby.verify.netlab): a neighbour-table cut must
block traffic both ways on the cut link only, and a heal must restore it. The fault
tests and `zabby verify` rely on these proofs; here each one is shown to be able to
fail (a proof of a cut on a whole link raises, and so does a proof of a cut link)."""

from __future__ import annotations

import pytest

from zabby.verify.netlab import NetLab

from .faults import set_up_or_skip

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def lab():
    lab = NetLab(3)
    set_up_or_skip(lab)
    try:
        yield lab
    finally:
        errors = lab.cleanup()
        assert not errors, f"could not delete namespaces: {errors}"


def test_cut_blocks_both_ways_and_heal_restores(lab):
    links = [(1, 2), (1, 3), (2, 3), (1, "C"), (2, "C"), (3, "C")]
    lab.prove_linked(links)
    lab.partition([1], [2, 3])
    lab.prove_cut()  # 1-2 and 1-3, both directions
    reach = lab.reachable([(2, 3), (3, 2), (1, "C"), ("C", 1), (2, "C")])
    assert all(reach.values()), f"a partition of 1 from 2,3 cut other links: {reach}"
    with pytest.raises(AssertionError, match="does not block"):
        lab.prove_cut([(2, 3)])  # a whole link fails the proof of a cut
    with pytest.raises(AssertionError, match="should be whole"):
        lab.prove_linked([(1, 2)], timeout=0.3)  # and a cut link fails the proof of a heal
    healed = lab.heal()
    assert {frozenset(p) for p in healed} == {frozenset((1, 2)), frozenset((1, 3))}
    lab.prove_linked(links)
    lab.cut(2, "C")
    lab.prove_cut([(2, "C")])
    lab.prove_linked(lab.heal())
