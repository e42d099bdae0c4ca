"""Seeded tests: which seeds to run, from an environment variable."""

from __future__ import annotations

import os


def seeds_from_env(var: str, default: list[int]) -> list[int]:
    """`default` unless `var` is set: "N" runs seeds 0..N-1, "3,17" those, "10-20"
    that range (inclusive)."""
    spec = os.environ.get(var, "").strip()
    if not spec:
        return default
    if "," in spec:
        return [int(x) for x in spec.split(",") if x.strip()]
    if "-" in spec:
        a, b = spec.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return list(range(int(spec)))
