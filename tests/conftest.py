"""Shared fixtures: real servers (zabby, Apache ZooKeeper) and kazoo clients."""

pytest_plugins = ["zabby.testing.pytest_plugin"]
