from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalgru.dsp.beats import RR_FEATURES, beat_windows, rr_features


class TestBeatWindows:
    def test_centre_and_padding(self) -> None:
        x = np.arange(1000, dtype=np.float32)
        w, inside = beat_windows(x, np.array([10, 500, 995]), fs=100.0, before_s=0.2, after_s=0.3)
        assert w.shape == (3, 50)
        assert w[1, 20] == 500  # R peak at column n_before
        np.testing.assert_array_equal(inside, [False, True, False])
        assert w[0, 0] == 0 and w[2, -1] == 999  # edge padding, beat kept

    def test_rejects_bad_input(self) -> None:
        with pytest.raises(ValueError, match="fs"):
            beat_windows(np.zeros(10), np.array([1]), fs=0)
        with pytest.raises(ValueError, match="one lead"):
            beat_windows(np.zeros((10, 2)), np.array([1]), fs=100)


class TestRRFeatures:
    def test_hand_computed(self) -> None:
        # beats at 0, 1, 2, 2.5, 4 s (fs 100): intervals 1, 1, 0.5, 1.5
        f = rr_features(np.array([0, 100, 200, 250, 400]), fs=100.0, local_beats=2)
        col = {k: f[:, i] for i, k in enumerate(RR_FEATURES)}
        np.testing.assert_allclose(col["rr_prev_s"], [1, 1, 1, 0.5, 1.5])
        np.testing.assert_allclose(col["rr_next_s"], [1, 1, 0.5, 1.5, 1.5])
        np.testing.assert_allclose(col["rr_local_s"], [1, 1, 1, 0.75, 1.0])
        np.testing.assert_allclose(col["rr_avg_s"], 1.0)
        np.testing.assert_allclose(col["rr_prev_ratio_local"][3], 0.5 / 0.75, rtol=1e-6)
        np.testing.assert_allclose(col["rr_next_ratio_avg"][2], 0.5)

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.integers(50, 400), min_size=3, max_size=60))
    def test_causal_features_ignore_the_future(self, gaps: list[int]) -> None:
        r = np.cumsum([0, *gaps])
        full = rr_features(r, fs=250.0)
        cut = len(r) // 2 + 1
        part = rr_features(r[:cut], fs=250.0)
        for name in ("rr_prev_s", "rr_local_s", "rr_run_avg_s", "rr_prev_ratio_local"):
            i = RR_FEATURES.index(name)
            np.testing.assert_allclose(part[: cut - 1, i], full[: cut - 1, i], rtol=1e-6)

    def test_rejects_unsorted(self) -> None:
        with pytest.raises(ValueError, match="increasing"):
            rr_features(np.array([0, 10, 5]), fs=100.0)

    def test_local_beats_is_a_positive_whole_number(self) -> None:
        r = np.arange(0, 3600, 300)
        for bad in (2.5, 2.0, "3", True, None):  # 2.5 was an IndexError from inside
            with pytest.raises(TypeError, match="local_beats must be a whole number"):
                rr_features(r, fs=360.0, local_beats=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="local_beats must be >= 1"):
            rr_features(r, fs=360.0, local_beats=0)
        np.testing.assert_array_equal(
            rr_features(r, fs=360.0, local_beats=np.int64(3)),
            rr_features(r, fs=360.0, local_beats=3),
        )

    def test_the_first_beat_takes_the_second_beats_interval(self) -> None:
        # as the module docstring says: beat 0 has no previous interval and uses its next
        a = rr_features(np.array([0, 288, 576, 864]), fs=360.0)
        b = rr_features(np.array([0, 500, 788, 1076]), fs=360.0)
        for name in ("rr_prev_s", "rr_local_s", "rr_run_avg_s"):
            i = RR_FEATURES.index(name)
            assert a[0, i] == pytest.approx(0.8) and b[0, i] == pytest.approx(500 / 360)
