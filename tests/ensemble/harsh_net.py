"""One-way cuts for test_harsh_partition: the code moved into zabby.verify.netlab
(``NetLab.cut_one_way``, ``delivers``, ``prove_one_way``, and ``heal`` undoing one-way
cuts too), where ``zabby verify``'s ``oneway`` fault uses it; this keeps the tests'
``prove_one_way(a, b)`` spelling."""

from __future__ import annotations

from zabby.verify.netlab import NetLab


class OneWayNetLab(NetLab):
    def prove_one_way(self, a, b=None, timeout: float = 0.5) -> None:  # type: ignore[override]
        """a -> b lost, b -> a delivered (or, as NetLab's, a list of such pairs)."""
        if b is None:
            super().prove_one_way(a, timeout)
        else:
            super().prove_one_way([(a, b)], timeout)
