"""The quality checks' pieces taken for many windows at once equal, bit for bit, the same
pieces taken window by window (as :func:`vitalgru.dsp.quality.judge_windows` took them)."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.dsp.quality_windows import (
    bas_ratio,
    window_peak_bounds,
    window_percentiles,
    windows_with_gaps,
)


def _layouts(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Window bounds as the checks use them: consecutive with a longer last window,
    trailing and overlapping, a single window, none, and one of a single sample."""
    out = []
    if n:
        starts = np.arange(0, n, 50, dtype=np.int64)
        stops = np.minimum(starts + 50, n)
        stops[-1] = n
        out.append((starts, stops))
        out.append((np.array([0], np.int64), np.array([n], np.int64)))
        out.append((np.array([n - 1], np.int64), np.array([n], np.int64)))
    if n >= 40:
        stops = np.arange(40, n + 1, 7, dtype=np.int64)
        out.append((stops - 40, stops))
    out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
    return out


class TestWindowPercentiles:
    @pytest.mark.parametrize("n", [1, 2, 39, 333, 1000])
    def test_equal_each_windows_own_percentiles(self, n: int) -> None:
        rng = np.random.default_rng(n)
        for x in (rng.normal(size=n), rng.integers(-3, 4, size=n).astype(float)):
            if n > 2:  # missing samples: their windows are left to the caller
                x[n // 7 :: max(1, n // 5)] = np.nan
            bad = ~np.isfinite(x)
            for starts, stops in _layouts(n):
                whole = np.array(
                    [not bad[a:b].any() for a, b in zip(starts, stops, strict=True)], bool
                )
                got = window_percentiles(x, starts, stops, whole)
                assert got.shape == (starts.size, 2)
                for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
                    if whole[i]:
                        want = np.percentile(x[a:b], [1, 99])
                        assert got[i].tobytes() == want.tobytes()
                    else:
                        assert np.isnan(got[i]).all()

    def test_an_all_finite_signal_is_taken_whole(self) -> None:
        x = np.random.default_rng(0).normal(size=777)
        for starts, stops in _layouts(x.size):
            got = window_percentiles(x, starts, stops, np.ones(starts.size, bool))
            want = [np.percentile(x[a:b], [1, 99]) for a, b in zip(starts, stops, strict=True)]
            assert got.tobytes() == np.array(want, np.float64).reshape(-1, 2).tobytes()


class TestWindowsWithGaps:
    @pytest.mark.parametrize("n", [1, 5, 400])
    def test_each_window_and_the_sample_before_it(self, n: int) -> None:
        rng = np.random.default_rng(n)
        for p in (0.0, 0.01, 0.5, 1.0):
            bad = rng.random(n) < p
            for starts, stops in _layouts(n):
                edges = np.diff(np.concatenate(([0], bad.astype(np.int8), [0])))
                run_a, run_b = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
                got = windows_with_gaps(run_a, run_b, starts, stops)
                want = [
                    bool(bad[max(a - 1, 0) : b].any()) for a, b in zip(starts, stops, strict=True)
                ]
                assert got.tolist() == want


class TestWindowPeakBounds:
    @pytest.mark.parametrize("n_peaks", [0, 1, 2, 50])
    def test_slices_hold_the_peaks_a_mask_picks(self, n_peaks: int) -> None:
        rng = np.random.default_rng(n_peaks)
        peaks = np.sort(rng.integers(0, 500, size=n_peaks))  # repeats too
        for starts, stops in _layouts(500):
            bounds = window_peak_bounds(peaks, starts, stops)
            assert bounds is not None
            for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
                want = peaks[(peaks >= a) & (peaks < b)]
                np.testing.assert_array_equal(peaks[bounds[0][i] : bounds[1][i]], want)

    def test_unsorted_peaks_get_no_slices(self) -> None:
        assert window_peak_bounds(np.array([5, 3, 9]), np.array([0]), np.array([10])) is None


class TestBasRatio:
    @staticmethod
    def _reference(seg: np.ndarray, fs: float) -> float:
        pxx = np.abs(np.fft.rfft(seg - seg.mean())) ** 2
        f = np.fft.rfftfreq(seg.shape[0], d=1.0 / fs)
        band = f <= 40.0
        tot = pxx[band].sum()
        return float(pxx[band & (f > 1.0)].sum() / tot) if tot > 0 else 0.0

    @pytest.mark.parametrize("n", [1, 2, 3600, 3601])
    @pytest.mark.parametrize("fs", [128.0, 360.0, 1000.0])
    def test_equals_the_window_by_window_ratio(self, n: int, fs: float) -> None:
        rng = np.random.default_rng(n)
        for seg in (rng.normal(size=n), np.zeros(n), np.cumsum(rng.normal(size=n))):
            for _ in range(2):  # the second time from the cached band masks
                assert bas_ratio(seg, fs) == self._reference(seg, fs)

    def test_a_nan_window_gives_nan_as_before(self) -> None:
        seg = np.array([0.0, np.nan, 1.0, 2.0])
        assert np.isnan(bas_ratio(seg, 360.0)) == np.isnan(self._reference(seg, 360.0))
