"""Ensemble tests: real member processes on loopback and in network namespaces."""
