"""Differential fixtures: Apache ZooKeeper 3.8 (reference) and zabby (candidate).

ZABBY_DIFF_CANDIDATE=zookeeper runs a second Apache ZooKeeper as the candidate:
the suite must then report no difference at all, which checks the harness and its
normalisation.
"""

from __future__ import annotations

import os
import re

import pytest

from zabby.testing import ZabbyServer, ZooKeeperServer
from zabby.testing.differential import digest_acl, run_scenario
from zabby.testing.pytest_plugin import require_zookeeper

# The super user (test_acl_matrix): addauth digest SUPER_USER:SUPER_PASSWORD passes
# every ACL check. ZooKeeper reads unknown zoo.cfg keys as "zookeeper."-prefixed
# system properties, so the same line configures both servers.
SUPER_USER, SUPER_PASSWORD = "super", "super-secret"

# Same configuration on both sides. A short tick makes session expiry quick:
# minSessionTimeout = 2 * tickTime = 1000 ms, maxSessionTimeout = 20 * tickTime = 10000 ms.
DIFF_CFG = {
    "tickTime": 500,
    "extendedTypesEnabled": True,
    "DigestAuthenticationProvider.superDigest": digest_acl(SUPER_USER, SUPER_PASSWORD).id.id,
}


def candidate_kind() -> str:
    return os.environ.get("ZABBY_DIFF_CANDIDATE", "zabby")


def start_pair(tmp_factory, name: str, **cfg):
    require_zookeeper()
    ref = ZooKeeperServer(tmp_factory.mktemp(f"{name}-zookeeper"), **cfg)
    try:
        if candidate_kind() == "zookeeper":
            cand = ZooKeeperServer(tmp_factory.mktemp(f"{name}-candidate"), **cfg)
        else:
            cand = ZabbyServer(tmp_factory.mktemp(f"{name}-zabby"), **cfg)
    except BaseException:
        ref.stop()
        raise
    return ref, cand


@pytest.fixture(scope="session")
def diff_reference(tmp_path_factory):
    require_zookeeper()
    srv = ZooKeeperServer(tmp_path_factory.mktemp("diff-zookeeper"), **DIFF_CFG)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def diff_candidate(tmp_path_factory):
    if candidate_kind() == "zookeeper":
        require_zookeeper()
        srv = ZooKeeperServer(tmp_path_factory.mktemp("diff-candidate"), **DIFF_CFG)
    else:
        srv = ZabbyServer(tmp_path_factory.mktemp("diff-zabby"), **DIFF_CFG)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def diff_pair(diff_reference, diff_candidate):
    return diff_reference, diff_candidate


def _check(pair, scenario, base):
    ref, cand = pair
    a, b, diff = run_scenario(
        scenario, ref, cand, base=base, labels=("zookeeper", candidate_kind())
    )
    if diff:
        pytest.fail(
            f"{candidate_kind()} differs from Apache ZooKeeper in scenario "
            f"{scenario.__name__}:\n{diff}",
            pytrace=False,
        )
    return a


@pytest.fixture
def differential(diff_pair, request):
    """differential(scenario) runs it on both servers under a fresh base path, asserts equal."""

    def check(scenario, base: str | None = "auto"):
        if base == "auto":
            base = "/" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)
        return _check(diff_pair, scenario, base)

    return check
