"""A server's own process raises the cyclic GC's young threshold (server.app._tune_gc)."""

import gc

import pytest

from zabby.server.app import GC_YOUNG_THRESHOLD, _tune_gc


@pytest.fixture
def saved_threshold():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_default_young_threshold_is_raised_and_the_others_kept(saved_threshold):
    gc.set_threshold(700, 11, 12)
    _tune_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 11, 12)


def test_a_higher_threshold_and_a_disabled_young_generation_stand(saved_threshold):
    gc.set_threshold(GC_YOUNG_THRESHOLD * 2, 10, 10)
    _tune_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD * 2, 10, 10)
    gc.set_threshold(0, 10, 10)  # threshold 0 turns collection off: not turned back on
    _tune_gc()
    assert gc.get_threshold() == (0, 10, 10)


def test_pipelined_young_objects_below_the_threshold_start_no_collection(saved_threshold):
    # what the threshold is for: thousands of live, acyclic young objects (a server's
    # requests in flight) no longer start a young collection every 700 allocations
    _tune_gc()
    gc.collect()
    runs = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 0:
            runs.append(1)

    gc.callbacks.append(count)
    try:
        live = [[i] for i in range(GC_YOUNG_THRESHOLD // 2)]
    finally:
        gc.callbacks.remove(count)
    assert len(live) == GC_YOUNG_THRESHOLD // 2
    assert runs == []
