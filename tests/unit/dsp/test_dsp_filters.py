"""Filters: frequency-domain properties, validation, streaming == offline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from vitalgru.dsp import CausalFilter, EcgCleaner, design_ecg_sos, ecg_clean, interpolate_nonfinite

RATES = st.sampled_from([250.0, 257.0, 360.0, 500.0])


def _sine(f_hz: float, fs: float, dur_s: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(dur_s * fs)) / fs
    return np.sin(2 * np.pi * f_hz * t + phase)


def _rms_mid(y: np.ndarray, fs: float) -> float:
    """RMS of the middle of a signal, away from edge transients."""
    k = int(2 * fs)
    return float(np.sqrt(np.mean(y[k:-k] ** 2)))


class TestEcgClean:
    @settings(max_examples=12, deadline=None)
    @given(fs=RATES, phase=st.floats(0, 6.28), amp=st.floats(0.05, 5.0))
    def test_notch_removes_60hz_passes_10hz(self, fs: float, phase: float, amp: float) -> None:
        hum = amp * _sine(60.0, fs, 10.0, phase)
        sig = amp * _sine(10.0, fs, 10.0, phase)
        kw = {"baseline_hz": None, "lowpass_hz": None, "notch_hz": 60.0}
        att_db = 20 * np.log10(_rms_mid(hum, fs) / _rms_mid(ecg_clean(hum, fs, **kw), fs))
        assert att_db >= 30.0
        assert _rms_mid(ecg_clean(sig, fs, **kw), fs) / _rms_mid(sig, fs) == pytest.approx(
            1.0, abs=0.01
        )

    @settings(max_examples=10, deadline=None)
    @given(fs=RATES, slope=st.floats(-2.0, 2.0), amp=st.floats(0.1, 3.0))
    def test_highpass_removes_slow_drift(self, fs: float, slope: float, amp: float) -> None:
        drift = amp * _sine(0.1, fs, 40.0) + slope * np.arange(int(40 * fs)) / fs / 40
        y = ecg_clean(drift, fs, notch_hz=None, lowpass_hz=None)
        # 0.1 Hz is 14 dB below the 0.5 Hz corner of an order-2 Butterworth, squared by
        # filtfilt: at least 25 dB down in the middle of the record.
        assert _rms_mid(y, fs) < 10 ** (-25 / 20) * _rms_mid(drift - drift.mean(), fs)

    @settings(max_examples=10, deadline=None)
    @given(fs=RATES, phase=st.floats(0, 6.28))
    def test_bandpass_passes_10hz_with_zero_phase(self, fs: float, phase: float) -> None:
        x = _sine(10.0, fs, 10.0, phase)
        y = ecg_clean(x, fs)
        k = int(2 * fs)
        assert _rms_mid(y, fs) / _rms_mid(x, fs) > 0.95  # within 0.5 dB of unit gain
        lags = range(-3, 4)
        err = [np.sum((np.roll(y, s)[k:-k] - x[k:-k]) ** 2) for s in lags]
        assert lags[int(np.argmin(err))] == 0  # no shift: zero phase

    @pytest.mark.parametrize(("fs", "low_hz"), [(360.0, 32.5), (250.0, 33.0)])
    def test_the_documented_band(self, fs: float, low_hz: float) -> None:
        # The cut-offs are one pass's -3 dB points (the causal filter's); ecg_clean runs
        # the design twice, so its band is 0.62-32.5 Hz at 360 Hz and its notch 3.1 Hz wide,
        # as filters' and FilterConfig's docstrings and configs/ingest.yaml say.
        f = np.linspace(0.05, 0.45 * fs, 400_001)
        _, h = sps.sosfreqz(design_ecg_sos(fs), worN=f, fs=fs)
        _, hn = sps.sosfreqz(design_ecg_sos(fs, baseline_hz=None, lowpass_hz=None), worN=f, fs=fs)
        one, notch_one = (20 * np.log10(np.abs(r) + 1e-300) for r in (h, hn))
        for passes, edges, notch_width in ((1, (0.5, 40.0), 2.0), (2, (0.62, low_hz), 3.1)):
            db, notch = passes * one, passes * notch_one
            assert f[(f < 5) & (db > -3)].min() == pytest.approx(edges[0], abs=0.01)
            assert f[(f > 5) & (f < 50) & (db > -3)].max() == pytest.approx(edges[1], abs=0.1)
            stop = f[notch < -3]
            assert stop.max() - stop.min() == pytest.approx(notch_width, abs=0.05)

    def test_two_d_filters_each_channel(self) -> None:
        fs = 360.0
        x = np.stack([_sine(10, fs, 5), _sine(60, fs, 5) + 0.5], axis=1)
        y = ecg_clean(x, fs)
        assert y.shape == x.shape
        np.testing.assert_allclose(y[:, 1], ecg_clean(x[:, 1], fs))

    def test_rejects_cutoff_above_nyquist(self) -> None:
        with pytest.raises(ValueError, match="Nyquist"):
            ecg_clean(np.zeros(500), 100.0)  # 60 Hz notch > 50 Hz Nyquist
        ecg_clean(np.zeros(500), 100.0, notch_hz=None)  # fine without the notch

    @pytest.mark.parametrize("fs", [0, -360, float("nan"), float("inf")])
    def test_rejects_bad_fs(self, fs: float) -> None:
        with pytest.raises(ValueError, match="positive, finite"):
            ecg_clean(np.zeros(100), fs)

    def test_rejects_non_numeric_fs(self) -> None:
        with pytest.raises(TypeError):
            ecg_clean(np.zeros(100), "360")  # type: ignore[arg-type]

    def test_rejects_nan_with_index(self) -> None:
        x = np.zeros(1000)
        x[123] = np.nan
        with pytest.raises(ValueError, match="index 123"):
            ecg_clean(x, 360.0)

    def test_band_order(self) -> None:
        with pytest.raises(ValueError, match="below lowpass_hz"):
            design_ecg_sos(360.0, baseline_hz=50.0, lowpass_hz=40.0)


class TestCausalFilter:
    @settings(max_examples=25, deadline=None)
    @given(
        cuts=st.lists(st.integers(0, 3000), max_size=8),
        seed=st.integers(0, 2**16),
        two_d=st.booleans(),
    )
    def test_any_chunking_equals_whole(self, cuts: list[int], seed: int, two_d: bool) -> None:
        fs = 360.0
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(3000, 2) if two_d else 3000) + 1.5
        whole = EcgCleaner(fs, n_channels=2 if two_d else None).process(x)
        f = EcgCleaner(fs, n_channels=2 if two_d else None)
        bounds = [0, *sorted(cuts), 3000]
        parts = [f.process(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)

    def test_matches_scipy_sosfilt(self) -> None:
        fs = 500.0
        x = np.random.default_rng(1).normal(size=2000)
        sos = design_ecg_sos(fs)
        y = CausalFilter(sos, steady_state=False).process(x)
        np.testing.assert_allclose(y, sps.sosfilt(sos, x))

    def test_steady_state_start_has_no_step_transient(self) -> None:
        x = np.full(2000, 2.5)  # a DC offset in mV
        y = EcgCleaner(360.0).process(x)
        assert np.max(np.abs(y)) < 1e-9

    def test_shape_is_checked(self) -> None:
        f = EcgCleaner(360.0, n_channels=2)
        with pytest.raises(ValueError, match=r"\(n, 2\)"):
            f.process(np.zeros(10))


class TestInterpolateNonfinite:
    def test_fills_and_flags(self) -> None:
        x = np.array([[0.0, np.nan], [np.nan, np.nan], [2.0, np.inf]])
        y, m = interpolate_nonfinite(x)
        np.testing.assert_array_equal(y[:, 0], [0.0, 1.0, 2.0])
        np.testing.assert_array_equal(y[:, 1], [0.0, 0.0, 0.0])
        np.testing.assert_array_equal(m, ~np.isfinite(x))


class TestZeroPhaseIsScipys:
    @pytest.mark.parametrize("n", [1, 2, 3, 14, 15, 16, 1000, 20_001])
    @pytest.mark.parametrize("notch_hz", [None, 60.0])
    def test_ecg_clean_is_sosfiltfilt_bit_for_bit(self, n: int, notch_hz: float | None) -> None:
        # ecg_clean runs its own forward-backward pass (it frees the padded input early);
        # the models were trained on sosfiltfilt's output, so it must not move by one bit
        rng = np.random.default_rng(n)
        for fs in (128.0, 360.0, 1000.0):
            sos = design_ecg_sos(fs, notch_hz=notch_hz)
            pad = min(3 * (2 * sos.shape[0] + 1), n - 1)
            for x in (rng.normal(size=n).cumsum(), rng.normal(size=(n, 2)).cumsum(axis=0)):
                want = sps.sosfiltfilt(sos, x, axis=0, padlen=pad)
                got = ecg_clean(x, fs, notch_hz=notch_hz)
                assert got.shape == want.shape and np.array_equal(got, want)
