"""Shared fixtures: real servers (zabby, Apache ZooKeeper) and kazoo clients."""

import pytest

pytest_plugins = ["zabby.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def seed_pool():
    """Worker processes for the CPU-bound simulation seeds (zabby.testing.seeds)."""
    from zabby.testing.seeds import close_seed_pool
    from zabby.testing.seeds import seed_pool as pool

    try:
        yield pool()
    finally:
        close_seed_pool()
