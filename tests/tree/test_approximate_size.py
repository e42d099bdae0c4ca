"""DataTree.approximate_data_size is kept up to date incrementally (mntr and every
Prometheus scrape read it): it must always equal a walk of the tree."""

from __future__ import annotations

import random

from treeutil import OPEN, Driver

from zabby.storage.snapshot import snapshot_bytes, snapshot_from_bytes
from zabby.wire.constants import Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import CreateRequest, DeleteRequest, SetDataRequest


def walked(tree) -> int:
    return sum(len(p) + n.data_length for p, n in tree.iter_nodes()) + tree.get_node("/").data_length


def test_incremental_size_matches_a_walk() -> None:
    d = Driver()
    rng = random.Random(11)
    assert d.tree.approximate_data_size() == walked(d.tree)
    paths: list[str] = []
    for i in range(400):
        r = rng.random()
        if r < 0.4 or not paths:
            p = f"/n{i}"
            d.create(p, bytes(rng.randrange(50)), flags=rng.choice([0, 1]), sid=7)
            paths.append(p)
        elif r < 0.7:
            d.set_data(rng.choice(paths), bytes(rng.randrange(80)) if rng.random() < 0.9 else None)
        elif r < 0.85:
            p = paths.pop(rng.randrange(len(paths)))
            d.delete(p)
        else:
            p, q = f"/m{i}", f"/m{i}/c"
            d.write(Op.MULTI, MultiRequest([
                (Op.CREATE, CreateRequest(p, b"abc", OPEN, 0)),
                (Op.CREATE, CreateRequest(q, b"de", OPEN, 0)),
                (Op.SET_DATA, SetDataRequest(p, b"abcdef", -1)),
                (Op.DELETE, DeleteRequest(q, -1)),
            ]))
            paths.append(p)
        assert d.tree.approximate_data_size() == walked(d.tree), i
    d.set_data("/", b"root data")
    assert d.tree.approximate_data_size() == walked(d.tree)
    # a restored snapshot starts from a walk of its own nodes
    restored = snapshot_from_bytes(snapshot_bytes(d.tree), "<test>")
    assert restored.approximate_data_size() == walked(restored) == walked(d.tree)
