"""Resampling: exact rational ratios, band-limited round trips, index mapping."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import freqz

from vitalgru.dsp import map_indices, rate_ratio, resample
from vitalgru.dsp.resample import MAX_RATIO_TERM, lowpass_taps

RATES = [128.0, 250.0, 257.0, 360.0, 500.0]


class TestRateRatio:
    def test_exact_ratio_for_257(self) -> None:
        assert rate_ratio(257, 360) == (360, 257)
        assert rate_ratio(360, 128) == (16, 45)
        assert rate_ratio(250, 500) == (2, 1)

    def test_a_ratio_too_fine_is_taken_at_the_closest_within_bounds(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # a stated 359.99 Hz was refused ("round the rates to whole Hz"), the record sent
        # to attrition, though README promises any stated rate is resampled
        # logged once a pair of rates: forget the pairs earlier tests asked for (the
        # package's ``resample`` is the function, hence the import by name)
        importlib.import_module("vitalgru.dsp.resample")._ratio.cache_clear()
        with caplog.at_level("WARNING", logger="vitalgru.dsp.resample"):
            assert rate_ratio(359.99, 360) == rate_ratio(359.99, 360.0) == (1, 1)
            assert rate_ratio(360.0, 359.99) == (1, 1)
        assert caplog.text.count("359.99 Hz -> 360.0 Hz") == 1  # once, not every call
        assert "taken as 1/1, a relative rate error of 2.8e-05" in caplog.text
        up, down = rate_ratio(128.123, 360.0)
        assert max(up, down) <= MAX_RATIO_TERM
        assert abs(up / down * 128.123 / 360.0 - 1) < 1e-6
        x = np.sin(np.arange(3600) / 20.0)
        np.testing.assert_array_equal(resample(x, 359.99, 360.0), x)
        assert map_indices(np.array([0, 3599]), 359.99, 360.0).tolist() == [0, 3599]
        assert resample(x, 128.123, 360.0).shape == (-(-3600 * up // down),)
        # no ratio within the bounds comes near: refused, saying how far off the best is
        with pytest.raises(ValueError, match=r"too fine.*\(0/1\) is 1.0e\+00 off the rate"):
            rate_ratio(1.0, 36000.5)


class TestResample:
    @settings(max_examples=20, deadline=None)
    @given(
        fs_in=st.sampled_from(RATES),
        fs_out=st.sampled_from(RATES),
        f1=st.floats(0.5, 20.0),
        f2=st.floats(0.5, 20.0),
        phase=st.floats(0, 6.28),
    )
    def test_round_trip_preserves_band_limited_signal(
        self, fs_in: float, fs_out: float, f1: float, f2: float, phase: float
    ) -> None:
        # Components below 20 Hz lie under every rate's Nyquist and the filter's transition.
        t = np.arange(int(8 * fs_in)) / fs_in
        x = np.sin(2 * np.pi * f1 * t + phase) + 0.5 * np.cos(2 * np.pi * f2 * t)
        y = resample(x, fs_in, fs_out)
        assert y.shape[0] == int(np.ceil(x.shape[0] * fs_out / fs_in))
        back = resample(y, fs_out, fs_in)
        assert back.shape[0] >= x.shape[0]
        k = int(fs_in)  # away from edges
        np.testing.assert_allclose(back[k:-k][: x.shape[0] - 2 * k], x[k:-k], atol=0.02)

    def test_times_are_kept(self) -> None:
        fs_in, fs_out = 360.0, 257.0
        t = np.arange(int(4 * fs_in)) / fs_in
        x = np.exp(-0.5 * ((t - 2.0) / 0.02) ** 2)
        y = resample(x, fs_in, fs_out)
        assert abs(np.argmax(y) / fs_out - 2.0) <= 1.0 / fs_out

    def test_two_d_and_identity(self) -> None:
        x = np.random.default_rng(0).normal(size=(1000, 3))
        assert resample(x, 360, 128).shape == (356, 3)
        np.testing.assert_array_equal(resample(x, 360, 360), x)
        # one sample: itself, as many times as the rate asks (NaN before)
        np.testing.assert_array_equal(resample(np.array([0.7]), 360, 250), [0.7])
        np.testing.assert_array_equal(resample(np.array([0.7]), 250, 360), [0.7, 0.7])
        np.testing.assert_array_equal(resample(x[:1], 250, 360), np.repeat(x[:1], 2, axis=0))

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            resample(np.zeros(10), 0, 360)
        with pytest.raises(ValueError, match="non-finite"):
            resample(np.array([0.0, np.nan]), 250, 500)


def _tone_amplitude(y: np.ndarray, fs: float, f_hz: float) -> float:
    """Amplitude of the ``f_hz`` component of ``y`` (Hann-windowed projection, edges off)."""
    y = y[int(fs) : -int(fs)]
    w = np.hanning(y.size)
    t = np.arange(y.size) / fs
    return float(2 * np.abs(np.sum(w * y * np.exp(-2j * np.pi * f_hz * t))) / w.sum())


class TestResampleFilter:
    """The anti-aliasing / anti-imaging filter: flat to 0.8, -6 dB at 0.9 and >= 60 dB down
    from 1.0 of the lower Nyquist frequency (scipy's default is -6 dB at the Nyquist
    frequency: a 126 Hz tone came out of 360 -> 250 Hz at 124 Hz only 7 dB down)."""

    @pytest.mark.parametrize(
        ("fs_in", "fs_out", "tone_hz"),
        [(360, 250, 126), (360, 250, 135), (360, 128, 65), (360, 257, 130), (500, 250, 126)],
    )
    def test_a_tone_above_the_new_nyquist_does_not_alias(
        self, fs_in: float, fs_out: float, tone_hz: float
    ) -> None:
        t = np.arange(20 * fs_in) / fs_in
        y = resample(np.sin(2 * np.pi * tone_hz * t), fs_in, fs_out)
        assert _tone_amplitude(y, fs_out, fs_out - tone_hz) < 1e-3  # below -60 dB

    @pytest.mark.parametrize(
        ("fs_in", "fs_out", "tone_hz"), [(128, 360, 60), (128, 360, 55), (250, 360, 120)]
    )
    def test_upsampling_leaves_no_image(self, fs_in: float, fs_out: float, tone_hz: float) -> None:
        t = np.arange(20 * fs_in) / fs_in
        y = resample(np.sin(2 * np.pi * tone_hz * t), fs_in, fs_out)
        assert _tone_amplitude(y, fs_out, fs_in - tone_hz) < 1e-3  # the image at fs_in - f

    @pytest.mark.parametrize(
        ("fs_in", "fs_out", "tone_hz"),
        [(360, 250, 95), (360, 128, 50), (128, 360, 50), (500, 250, 40), (257, 360, 100)],
    )
    def test_flat_below_eight_tenths_of_the_lower_nyquist(
        self, fs_in: float, fs_out: float, tone_hz: float
    ) -> None:
        t = np.arange(20 * fs_in) / fs_in
        y = resample(np.sin(2 * np.pi * tone_hz * t), fs_in, fs_out)
        assert _tone_amplitude(y, fs_out, tone_hz) == pytest.approx(1.0, abs=2e-3)

    def test_taps_are_as_documented(self) -> None:
        h = lowpass_taps(360, 250)  # up 25, down 36: the lower Nyquist is 1/36 of the filter's
        assert h.size % 2 == 1 and not h.flags.writeable
        assert np.sum(h) == pytest.approx(1.0)
        f, resp = freqz(h, worN=[0.8 / 36, 0.9 / 36, 1.0 / 36], fs=2.0)
        db = 20 * np.log10(np.abs(resp))
        assert db[0] > -0.01 and db[1] == pytest.approx(-6.0, abs=0.1) and db[2] < -60
        # odd also where Kaiser's formula gives an even length (1946 taps for 360 -> 128 Hz,
        # 1082 for 500 -> 360 Hz): an even one delays the output by half a filter sample
        assert lowpass_taps(360, 128).size % 2 == 1 and lowpass_taps(500, 360).size % 2 == 1


class TestMapIndices:
    @settings(max_examples=30, deadline=None)
    @given(
        fs_in=st.sampled_from(RATES),
        fs_out=st.sampled_from(RATES),
        idx=st.lists(st.integers(0, 10**7), max_size=20),
    )
    def test_same_instant_within_half_a_sample(
        self, fs_in: float, fs_out: float, idx: list[int]
    ) -> None:
        i = np.array(sorted(idx), dtype=np.int64)
        j = map_indices(i, fs_in, fs_out)
        assert j.dtype == np.int64
        assert np.all(np.abs(j / fs_out - i / fs_in) <= 0.5 / fs_out + 1e-12)
        assert np.all(np.diff(j) >= 0)

    def test_round_trip_to_higher_rate_is_exact(self) -> None:
        i = np.arange(0, 5000, 7)
        assert np.array_equal(map_indices(map_indices(i, 257, 360), 360, 257), i)

    @pytest.mark.parametrize(
        ("fs_in", "fs_out", "n"),
        [(360, 100, 10), (360, 90, 11), (360, 128, 11), (500, 125, 7), (500, 250, 2)],
    )
    def test_the_last_sample_maps_into_the_resampled_signal(
        self, fs_in: float, fs_out: float, n: int
    ) -> None:
        # round((n - 1) * fs_out / fs_in) reached past the output when the rate fell >= 2x
        n_out = resample(np.zeros(n), fs_in, fs_out).shape[0]
        j = map_indices(np.arange(n), fs_in, fs_out, n_in=n)
        assert j.max() == n_out - 1 and np.all(np.diff(j) >= 0)
        np.testing.assert_array_equal(j, map_indices(np.arange(n), fs_in, fs_out, n_out=n_out))

    def test_n_in_leaves_indices_inside_alone_and_checks_its_range(self) -> None:
        i = np.arange(0, 9000, 13)
        np.testing.assert_array_equal(map_indices(i, 360, 128, n_in=9000), map_indices(i, 360, 128))
        with pytest.raises(ValueError, match="n_in=10"):
            map_indices(np.array([10]), 360, 128, n_in=10)
        with pytest.raises(ValueError, match="positive"):
            map_indices(np.array([0]), 360, 128, n_in=0)

    def test_clip_and_validation(self) -> None:
        assert map_indices(np.array([999]), 360, 720, n_out=1000).tolist() == [999]
        with pytest.raises(ValueError, match="non-negative"):
            map_indices(np.array([-1]), 360, 250)
        with pytest.raises(TypeError):
            map_indices(np.array([1.5]), 360, 250)
