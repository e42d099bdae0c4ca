"""The differential scenarios, on ensembles: a 3-member Apache ZooKeeper 3.8 and a
3-member zabby, each session on a follower, so every write goes through the leader
(forwarded, proposed, committed) before the follower answers. What a client of a
follower sees must not differ from what it sees on ZooKeeper's follower."""

from __future__ import annotations

import pytest

from zabby.testing.pytest_plugin import started_ensemble

from .conftest import DIFF_CFG, _check
from .test_scenarios import (
    scenario_acls,
    scenario_create_modes,
    scenario_multi,
    scenario_persistent_watches,
    scenario_remove_check_watches,
    scenario_sequence_numbers,
    scenario_session_expiry,
    scenario_set_watches,
    scenario_versions_and_errors,
    scenario_watches,
)

pytestmark = pytest.mark.differential

SCENARIOS = [
    scenario_create_modes,
    scenario_sequence_numbers,
    scenario_versions_and_errors,
    scenario_acls,
    scenario_multi,
    scenario_watches,
    scenario_persistent_watches,
    scenario_remove_check_watches,
    scenario_set_watches,
    scenario_session_expiry,
]


class _Follower:
    """What the Runner needs of a server: the address of one of the ensemble's
    followers."""

    def __init__(self, ens) -> None:
        member = ens.members[ens.followers()[0]]
        self.host, self.port = member.host, member.port


@pytest.fixture(scope="module")
def ensemble_pair(tmp_path_factory):
    with started_ensemble("zookeeper", tmp_path_factory.mktemp("diff-ens-zk"),
                          **DIFF_CFG) as zk:
        with started_ensemble("zabby", tmp_path_factory.mktemp("diff-ens-zabby"),
                              **DIFF_CFG) as zb:
            yield _Follower(zk), _Follower(zb)


@pytest.mark.parametrize("scenario", SCENARIOS,
                         ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_scenario_on_a_follower(ensemble_pair, scenario):
    _check(ensemble_pair, scenario, "/ens_" + scenario.__name__)
