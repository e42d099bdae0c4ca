"""zabby: a coordination service that speaks Apache ZooKeeper's client protocol."""

__version__ = "0.1.0"
