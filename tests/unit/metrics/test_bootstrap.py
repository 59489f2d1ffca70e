"""The cluster bootstrap's draws, percentile intervals and resampled ratios."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.metrics.bootstrap import bootstrap_ratio, cluster_counts, percentile_interval


class TestClusterCounts:
    def test_each_resample_draws_every_cluster_slot_once(self) -> None:
        c = cluster_counts(22, 500, seed=1)
        assert c.shape == (500, 22) and c.dtype == np.int64
        assert (c.sum(axis=1) == 22).all() and (c >= 0).all()

    def test_the_same_seed_gives_the_same_draws_and_another_does_not(self) -> None:
        assert np.array_equal(cluster_counts(10, 50, seed=3), cluster_counts(10, 50, seed=3))
        assert not np.array_equal(cluster_counts(10, 50, seed=3), cluster_counts(10, 50, seed=4))

    def test_two_clusters_are_drawn_as_with_replacement(self) -> None:
        # draws of 2 from 2 with replacement: (2,0) and (0,2) a quarter each, (1,1) a half
        c = cluster_counts(2, 40_000, seed=0)
        share_even = float(np.mean(c[:, 0] == 1))
        assert share_even == pytest.approx(0.5, abs=0.01)
        assert float(np.mean(c[:, 0] == 2)) == pytest.approx(0.25, abs=0.01)

    @pytest.mark.parametrize(("n", "b"), [(0, 10), (5, 0), (-1, 3)])
    def test_nothing_to_resample_is_refused(self, n: int, b: int) -> None:
        with pytest.raises(ValueError, match="at least one"):
            cluster_counts(n, b)


class TestPercentileInterval:
    def test_percentiles_of_known_replicates(self) -> None:
        r = np.arange(1001, dtype=float)  # 0..1000
        assert percentile_interval(r, 0.95) == pytest.approx((25.0, 975.0))
        assert percentile_interval(r, 0.5) == pytest.approx((250.0, 750.0))

    def test_undefined_replicates_are_left_out_until_they_are_most(self) -> None:
        r = np.r_[np.arange(101, dtype=float), np.full(40, np.nan)]
        assert percentile_interval(r, 0.9) == pytest.approx((5.0, 95.0))
        assert percentile_interval(np.r_[r, np.full(100, np.nan)]) is None
        assert percentile_interval([np.nan, np.nan]) is None

    @pytest.mark.parametrize(
        ("r", "level", "share"),
        [([1.0], 0.0, 0.5), ([1.0], 1.0, 0.5), ([1.0], 0.9, 0.0), ([], 0.9, 0.5)],
    )
    def test_bad_arguments_are_refused(self, r: list[float], level: float, share: float) -> None:
        with pytest.raises(ValueError):
            percentile_interval(r, level, min_defined=share)


class TestBootstrapRatio:
    def test_ratio_of_resampled_sums(self) -> None:
        counts = np.array([[1, 1, 1], [3, 0, 0], [0, 0, 3], [0, 3, 0]])
        num, den = np.array([1.0, 2.0, 0.0]), np.array([2.0, 2.0, 0.0])
        got = bootstrap_ratio(counts, num, den)
        assert got[:2] == pytest.approx([0.75, 0.5])
        assert np.isnan(got[2]) and got[3] == pytest.approx(1.0)

    def test_several_ratios_at_once(self) -> None:
        counts = np.array([[2, 0], [1, 1]])
        num = np.array([[1.0, 4.0], [3.0, 0.0]])
        den = np.array([[2.0, 8.0], [4.0, 8.0]])
        assert bootstrap_ratio(counts, num, den) == pytest.approx(
            np.array([[0.5, 0.5], [4 / 6, 0.25]])
        )

    def test_identical_clusters_give_no_spread(self) -> None:
        counts = cluster_counts(8, 300, seed=5)
        r = bootstrap_ratio(counts, np.full(8, 3.0), np.full(8, 4.0))
        assert percentile_interval(r) == pytest.approx((0.75, 0.75))
