"""Population stability index and the histograms it compares (hand-worked values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitalgru.metrics.drift import (
    MIN_EXPECTED_MEASURED,
    drift_level,
    histogram_on,
    measured_ratio,
    measured_ratio_level,
    psi,
    psi_present,
    reference_histogram,
    worst_level,
)


class TestPsi:
    def test_hand_worked_value(self) -> None:
        # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
        expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
        assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(expected)
        assert expected == pytest.approx(0.27465, abs=1e-5)

    def test_identical_is_zero_and_symmetric(self) -> None:
        p, q = np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.4, 0.2])
        assert psi(p, p) == 0.0
        assert psi(p, q) == pytest.approx(psi(q, p))

    def test_an_empty_bucket_is_floored_not_infinite(self) -> None:
        v = psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
        assert math.isfinite(v) and v > 2.0

    def test_different_bins_are_refused(self) -> None:
        with pytest.raises(ValueError, match="different bins.*histogram_on"):
            psi(np.array([0.5, 0.5]), np.array([0.2, 0.3, 0.5]))

    def test_an_empty_side_is_undefined(self) -> None:
        ref = reference_histogram(np.arange(10.0))
        assert math.isnan(psi(ref, histogram_on(ref["edges"], np.zeros(0))))

    def test_levels(self) -> None:
        assert drift_level(0.05) == "stable"
        assert drift_level(0.1) == "moderate"
        assert drift_level(0.25) == "major"
        assert drift_level(math.nan) == "unknown"


class TestHistograms:
    def test_deciles_missing_and_refused(self) -> None:
        values = np.r_[np.arange(1.0, 11.0), np.nan, np.nan]
        h = reference_histogram(values, n_refused=1)
        # ten distinct values: each decile bin holds one; one NaN missing, one refused;
        # nothing below or above the range
        assert h["fractions"] == pytest.approx([1 / 12, 1 / 12, 0, *[1 / 12] * 10, 0])
        assert h["edges"][1:] == [float(x) for x in range(1, 11)]
        assert h["edges"][0] == np.nextafter(1.0, -np.inf)
        assert h["measured"] == pytest.approx(10 / 12)
        assert h["refused"] == pytest.approx(1 / 12) and h["median"] == 5.5 and h["n"] == 12

    def test_new_data_binned_on_the_reference_edges(self) -> None:
        ref = reference_histogram(np.arange(1.0, 11.0))
        now = histogram_on(ref["edges"], np.array([1.0, 1.0, 10.0, np.nan, 0.5, 11.0]))
        assert now["fractions"][:2] == pytest.approx([1 / 6, 0.0])
        assert now["fractions"][3] == pytest.approx(2 / 6)  # the bin of 1
        assert now["fractions"][-2] == pytest.approx(1 / 6)  # the bin of 10
        # outside the reference's range: below its least value, above its largest
        assert now["fractions"][2] == now["fractions"][-1] == pytest.approx(1 / 6)
        assert sum(now["fractions"]) == pytest.approx(1.0)

    def test_a_value_on_an_edge_goes_to_the_bin_below(self) -> None:
        h = histogram_on([5.0], np.array([4.0, 5.0, 6.0]))
        assert h["fractions"] == pytest.approx([0, 0, 2 / 3, 1 / 3])

    def test_ties_merge_bins(self) -> None:
        h = reference_histogram(np.array([0.0, 0.0, 0.0, 1.0, 1.0]))
        assert h["edges"][1:] == [0.0, 1.0]
        assert h["fractions"] == pytest.approx([0, 0, 0, 0.6, 0.4, 0])

    def test_a_constant_reference_still_sees_other_values(self) -> None:
        # every beat in clean signal in the reference; 40 % in noise now
        ref = reference_histogram(np.ones(1000))
        assert ref["fractions"] == [0.0, 0.0, 0.0, 1.0, 0.0]
        now = histogram_on(ref["edges"], np.r_[np.zeros(400), np.ones(600)])
        assert now["fractions"] == pytest.approx([0, 0, 0.4, 0.6, 0])
        assert drift_level(psi(ref, now)) == "major"
        # 1 % of 0s in the reference: every decile is 1, the 0s still keep a bin of their own
        ref = reference_histogram(np.r_[np.zeros(10), np.ones(990)])
        assert ref["fractions"] == pytest.approx([0, 0, 0, 0.01, 0.99, 0])
        now = histogram_on(ref["edges"], np.r_[np.zeros(400), np.ones(600)])
        assert drift_level(psi(ref, now)) == "major"

    def test_a_column_never_measured_then_measured_is_a_major_shift(self) -> None:
        ref = reference_histogram(np.full(100, np.nan))
        assert ref["edges"] == [] and ref["fractions"] == [1.0, 0.0, 0.0]
        now = histogram_on(ref["edges"], np.r_[np.full(50, np.nan), np.ones(50)])
        assert drift_level(psi(ref, now)) == "major"

    def test_units_refused_by_the_limits_are_a_major_shift(self) -> None:
        rng = np.random.default_rng(0)
        ref = reference_histogram(rng.normal(37.0, 0.6, 2000))
        same = histogram_on(ref["edges"], rng.normal(37.0, 0.6, 2000))
        fahrenheit = histogram_on(ref["edges"], np.full(2000, np.nan), n_refused=1900)
        assert drift_level(psi(ref, same)) == "stable"
        assert drift_level(psi(ref, fahrenheit)) == "major"

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="n_bins must be >= 1"):
            reference_histogram(np.arange(3.0), n_bins=0)
        with pytest.raises(ValueError, match="3 values said refused, but only 1 of 3"):
            histogram_on([1.0], np.array([1.0, 2.0, np.nan]), n_refused=3)
        with pytest.raises(ValueError, match="n_refused must be >= 0"):
            histogram_on([1.0], np.array([1.0]), n_refused=-1)


class TestMeasurement:
    def test_values_present_ignore_how_often_measured(self) -> None:
        ref = reference_histogram(np.r_[np.arange(1.0, 101.0), np.full(100, np.nan)])
        # the same values, measured a quarter as often: the whole histogram moves, the
        # values present do not, and the share measured fell by a factor 4
        now = histogram_on(ref["edges"], np.r_[np.arange(1.0, 101.0), np.full(700, np.nan)])
        assert psi_present(ref, now) == pytest.approx(0.0, abs=1e-12)
        assert psi(ref, now) > 0.25
        assert measured_ratio(ref, now) == pytest.approx(0.25)
        assert measured_ratio_level(0.25, expected_now=400) == "major"

    def test_refused_values_count_as_present(self) -> None:
        ref = reference_histogram(np.arange(1.0, 11.0))
        now = histogram_on(ref["edges"], np.full(10, np.nan), n_refused=10)
        assert measured_ratio(ref, now) == 1.0
        assert drift_level(psi_present(ref, now)) == "major"
        assert math.isnan(psi_present(ref, histogram_on(ref["edges"], np.full(5, np.nan))))

    def test_ratio_levels(self) -> None:
        enough = MIN_EXPECTED_MEASURED
        assert measured_ratio_level(1.2, enough) == "stable"
        assert measured_ratio_level(1 / 1.6, enough) == "moderate"
        assert measured_ratio_level(2.0, enough) == "major"
        assert measured_ratio_level(0.0, enough) == "major"
        assert measured_ratio_level(0.0, enough - 1) == "unknown"  # too few to tell
        assert measured_ratio_level(math.inf, 0) == "major"  # a column that appeared
        assert measured_ratio_level(math.inf, 0, enough) == "major"
        # ... with one stray value among 23,000 hours: too few to tell (major before)
        assert measured_ratio_level(math.inf, 0, 1) == "unknown"
        assert measured_ratio_level(math.nan, enough) == "unknown"

    def test_a_change_by_exactly_a_factor_meets_it(self) -> None:
        # 20 % of hours measured, then 30 %: 0.3 / 0.2 is 1.4999999999999998, and read
        # "stable" although the limit is a factor 1.5
        enough = MIN_EXPECTED_MEASURED
        ref = reference_histogram(np.r_[np.arange(200.0), np.full(800, np.nan)])
        for k, want in ((300, "moderate"), (100, "major"), (400, "major"), (299, "stable")):
            now = histogram_on(ref["edges"], np.r_[np.arange(float(k)), np.full(1000 - k, np.nan)])
            assert measured_ratio_level(measured_ratio(ref, now), enough) == want, k
        for ratio in (0.3 / 0.2, 0.2 / 0.3, 0.6 / 0.4, 0.4 / 0.6):
            assert measured_ratio_level(ratio, enough) == "moderate", ratio
        assert measured_ratio_level(1.4999, enough) == "stable"
        assert measured_ratio_level(1 / 1.4999, enough) == "stable"
        assert measured_ratio_level(0.2 / 0.4, enough) == measured_ratio_level(0.8 / 0.4, enough)
        assert measured_ratio_level(1.9999, enough) == "moderate"

    def test_never_measured_on_either_side(self) -> None:
        ref = reference_histogram(np.full(4, np.nan))
        assert math.isnan(measured_ratio(ref, ref))
        now = histogram_on(ref["edges"], np.array([1.0, np.nan]))
        assert math.isinf(measured_ratio(ref, now))

    def test_worst_level(self) -> None:
        assert worst_level("stable", "major", "unknown") == "major"
        assert worst_level("unknown", "stable") == "stable"
        assert worst_level("unknown") == "unknown"
