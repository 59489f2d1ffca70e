"""How long something took, counted the way Prometheus scrapes it: :class:`Durations`, the
histogram of a ward's ticks and scored hours (``GET /metrics``)."""

from __future__ import annotations

import bisect
from typing import Any

__all__ = ["DURATION_BUCKETS_S", "Durations"]

#: Upper bounds (s) of the buckets :class:`Durations` counts ticks and scored hours in.
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Durations:
    """How long something took, counted into buckets by upper bound (a histogram of the
    kind Prometheus scrapes): the counts, their sum and their number."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS_S) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"bucket bounds must increase, got {bounds!r}")
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def add(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": [(upper bound, durations <= it), ..., (inf, all)], "sum",
        "count"}``."""
        buckets, seen = [], 0
        for bound, n in zip((*self.bounds, float("inf")), list(self._counts), strict=True):
            seen += n
            buckets.append((bound, seen))
        return {"buckets": buckets, "sum": self.sum, "count": seen}
