"""Scenarios that need servers of their own: the initial tree of a fresh server, and
the behaviour with extendedTypesEnabled off (no TTL nodes)."""

from __future__ import annotations

import pytest

from zabby.testing.differential import MultiOp as M
from zabby.testing.differential import Runner

from .conftest import _check, start_pair
from .test_scenarios import CONTAINER, SEQ_TTL, TTL, scenario_initial_tree

pytestmark = pytest.mark.differential


@pytest.fixture(scope="module")
def fresh_pair(tmp_path_factory):
    # tickTime 2000 (the default), extended types off (the default).
    ref, cand = start_pair(tmp_path_factory, "fresh")
    try:
        yield ref, cand
    finally:
        cand.stop()
        ref.stop()


def scenario_ttl_disabled(r: Runner) -> None:
    b = r.base
    r.session("a", timeout_ms=60000)  # above this server's maxSessionTimeout (40000)
    r.create("a", f"{b}/ttl", b"", flags=TTL, ttl=1000)
    r.create("a", f"{b}/ttl-", b"", flags=SEQ_TTL, ttl=1000)
    r.multi("a", [M.create_ttl(f"{b}/ttl2", ttl=1000)])
    r.create("a", f"{b}/c", b"", flags=CONTAINER, op=r_op_container())
    r.exists("a", f"{b}/ttl")


def r_op_container():
    from zabby.wire import Op

    return Op.CREATE_CONTAINER


def test_initial_tree(fresh_pair):
    # Runs first on this pair: the tree is exactly what a new server starts with.
    _check(fresh_pair, scenario_initial_tree, None)


def test_ttl_disabled(fresh_pair):
    _check(fresh_pair, scenario_ttl_disabled, "/ttl_disabled")
