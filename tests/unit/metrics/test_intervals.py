"""Wilson score intervals against published values."""

from __future__ import annotations

import pytest

from vitalgru.metrics.intervals import wilson_interval


class TestWilsonInterval:
    @pytest.mark.parametrize(
        ("k", "n", "low", "high"),
        [
            # Newcombe, "Two-sided confidence intervals for the single proportion",
            # Statistics in Medicine 1998, Table I (method 3, score without correction)
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ],
    )
    def test_published_values(self, k: int, n: int, low: float, high: float) -> None:
        got = wilson_interval(k, n)
        assert got is not None
        assert got == pytest.approx((low, high), abs=6e-5)

    def test_ends_are_exact_and_no_trials_has_no_interval(self) -> None:
        assert wilson_interval(0, 7)[0] == 0.0 and wilson_interval(7, 7)[1] == 1.0
        assert wilson_interval(0, 0) is None

    @pytest.mark.parametrize(("k", "n", "z"), [(-1, 5, 1.96), (6, 5, 1.96), (1, 5, 0.0)])
    def test_impossible_counts_are_refused(self, k: int, n: int, z: float) -> None:
        with pytest.raises(ValueError):
            wilson_interval(k, n, z)
