"""Causal per-beat features: running templates, RR features, rhythm features."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from thread_kit import run_in_threads

from vitalgru.data.beat_features import (
    N_RR_FEATURES,
    RR_FEATURES,
    FeatureSettings,
    beat_features,
    causal_mean,
    latest_morphology,
    morphology_features,
    rhythm_features,
    rr_features,
    running_median_template,
)


def _beats(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, 30)).astype(np.float32)
    idx = np.cumsum(rng.integers(200, 400, size=n))
    return w, idx


class TestRunningMedian:
    def test_matches_naive(self) -> None:
        w, _ = _beats(700)  # crosses the 512-beat chunk boundary
        k = 5
        got = running_median_template(w, k)
        for i in (0, 1, 4, 5, 511, 512, 513, 699):
            np.testing.assert_allclose(got[i], np.median(w[max(0, i - k + 1) : i + 1], axis=0))

    @pytest.mark.parametrize(
        ("n", "k", "seed"),
        [(0, 32, 0), (1, 32, 1), (1, 1, 2), (2, 2, 3), (31, 32, 4), (32, 32, 5), (33, 32, 6),
         (700, 1, 7), (1100, 32, 8), (1100, 31, 9), (600, 600, 10), (40, 7, 11)],
    )  # fmt: skip
    def test_equals_the_median_of_each_beats_window_bit_for_bit(
        self, n: int, k: int, seed: int
    ) -> None:
        # the sorted-block median gives np.median's own float32 values, row by row, across
        # the 512-beat chunks and in the first k - 1 rows (fewer beats than k)
        rng = np.random.default_rng(seed)
        for w in (
            rng.normal(size=(n, 23)),  # float64 in: the templates are float32 all the same
            rng.integers(-2, 3, size=(n, 9)).astype(np.float32),  # ties, even counts
        ):
            got = running_median_template(w, k)
            w32 = w.astype(np.float32)
            want = np.array(
                [np.median(w32[max(0, i - k + 1) : i + 1], axis=0) for i in range(n)],
                np.float32,
            ).reshape(n, w.shape[1])
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            if (w32 != 0).all():  # (no signed zeros to tell apart)
                assert got.tobytes() == want.tobytes()

    @pytest.mark.parametrize("beat", [3, 100, 700])
    def test_a_non_finite_window_is_refused_offline_and_live_alike(self, beat: int) -> None:
        # a NaN sample was ignored by the first 512-beat chunk's nanmedian and spread to
        # 32 templates by the later chunks' median (and by the live one): the features of a
        # beat depended on where in the record it fell
        w, idx = _beats(1200)
        s = FeatureSettings()
        for bad in (np.nan, np.inf):
            w2 = w.copy()
            w2[beat, 10] = bad
            msg = f"non-finite samples \\(the first in window {beat}, sample 10\\)"
            with pytest.raises(ValueError, match=msg):
                running_median_template(w2, s.template_beats)
            with pytest.raises(ValueError, match=msg):
                beat_features(w2, idx, 360.0, s)
            with pytest.raises(ValueError, match="non-finite samples"):
                latest_morphology(w2[: beat + 1], s)
            with pytest.raises(ValueError, match="non-finite samples"):
                latest_morphology(w2[: beat + s.template_beats], s)
            # a window the live template no longer holds does not matter
            latest_morphology(w2[: beat + s.template_beats + 1], s)

    def test_finite_windows_give_the_live_template(self) -> None:
        w, _ = _beats(1200)
        s = FeatureSettings()
        off = morphology_features(w, s)
        for k in (0, 5, 30, 31, 32, 511, 512, 543, 544, 1199):
            np.testing.assert_array_equal(off[k], latest_morphology(w[: k + 1], s))

    @settings(max_examples=20, deadline=None)
    @given(n=st.integers(3, 60), cut=st.integers(2, 59), k=st.integers(1, 9))
    def test_causal(self, n: int, cut: int, k: int) -> None:
        # (beat 0 borrows beat 1's interval as its rr_prev, so cuts start at beat 2)
        cut = min(cut, n - 1)
        w, idx = _beats(n)
        s = FeatureSettings(template_beats=k, local_rr_beats=3, long_rr_beats=7)
        full = beat_features(w, idx, 360.0, s)
        w2, idx2 = w.copy(), idx.copy()
        w2[cut:] += 3.0
        idx2[cut:] += 50  # changes rr_next of beat cut-1 (the stated look-ahead) only
        part = beat_features(w2, idx2, 360.0, s)
        np.testing.assert_allclose(part[: cut - 1], full[: cut - 1], rtol=1e-6)
        # beat cut-1: its morphology and rr_prev are unchanged
        m = 2 * w.shape[1]
        np.testing.assert_allclose(part[cut - 1, :m], full[cut - 1, :m], rtol=1e-6)
        np.testing.assert_allclose(part[cut - 1, m], full[cut - 1, m], rtol=1e-6)


class TestRRFeatures:
    def test_regular_rhythm_has_zero_log_ratios(self) -> None:
        f = rr_features(np.arange(0, 3600, 360), 360.0, FeatureSettings())
        assert f.shape == (10, N_RR_FEATURES)
        np.testing.assert_allclose(f[:, 0], 0.0, atol=1e-6)  # log(1 s)
        np.testing.assert_allclose(f[:, 2:], 0.0, atol=1e-6)

    def test_premature_beat_has_short_ratio(self) -> None:
        idx = np.array([0, 360, 720, 900, 1440, 1800])  # beat 3 comes 0.5 s early
        f = rr_features(idx, 360.0, FeatureSettings(local_rr_beats=3))
        assert f[3, 2] < -0.3 and f[3, 6] > 0.5  # short prev / local, long next / prev

    def test_causal_mean_averages_the_current_and_earlier_values_only(self) -> None:
        """The local and long RR averages and the irregularity features are causal means:
        one value of look-ahead there would let every RR ratio see the next beat, which
        a live monitor cannot (the stated look-ahead is ``rr_next`` alone)."""
        x = np.arange(1.0, 11.0) ** 2
        want = [x[max(0, k - 2) : k + 1].mean() for k in range(10)]
        np.testing.assert_allclose(causal_mean(x, 3), want)
        np.testing.assert_allclose(causal_mean(x, 1), x)

    def test_only_the_rr_next_columns_of_a_beat_see_the_next_beat(self) -> None:
        """Moving every beat from ``cut`` on changes beat ``cut - 1``'s four ``rr_next``
        features and none of the others: the live monitor labels a beat once the next
        one arrives, so any feature looking further ahead differs from what training saw."""
        idx = np.cumsum(np.r_[0, np.random.default_rng(0).integers(250, 400, 39)])
        s = FeatureSettings(local_rr_beats=3, long_rr_beats=7, rhythm_beats=8)
        full = rr_features(idx, 360.0, s)
        cut = 20
        idx2 = idx.copy()
        idx2[cut:] += 50
        part = rr_features(idx2, 360.0, s)
        causal = [i for i, name in enumerate(RR_FEATURES) if "rr_next" not in name]
        assert len(causal) == N_RR_FEATURES - 4
        np.testing.assert_allclose(part[: cut - 1], full[: cut - 1], rtol=1e-6)
        np.testing.assert_allclose(part[cut - 1, causal], full[cut - 1, causal], rtol=1e-6)
        assert (part[cut - 1] != full[cut - 1]).sum() == 4  # rr_next moved, and only it

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="increasing"):
            rr_features(np.array([0, 10, 5]), 360.0, FeatureSettings())
        with pytest.raises(ValueError, match="fs"):
            rr_features(np.array([0, 10]), 0.0, FeatureSettings())
        with pytest.raises(ValueError, match="template_beats"):
            FeatureSettings(template_beats=0)


class TestLastRows:
    """A live monitor asks for its newest beats' rows only: they equal, bit for bit, the
    last rows of the whole computation (the reference), at every length and edge."""

    @pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 64, 65, 301])
    @pytest.mark.parametrize("last", [0, 1, 2, 5, 400])
    def test_rr_features_last_rows_equal_the_whole(self, n: int, last: int) -> None:
        rng = np.random.default_rng(n * 1000 + last)
        s = FeatureSettings(long_rr_beats=300, rhythm_beats=64)
        for idx in (
            np.cumsum(rng.integers(100, 500, size=n)),
            np.cumsum(rng.choice([80, 300, 2000], size=n)),  # clipped intervals, ties
        ):
            whole = rr_features(idx, 360.0, s)
            got = rr_features(idx, 360.0, s, last=last)
            want = whole[n - min(last, n) :]
            assert got.dtype == np.float32 and got.shape == want.shape
            assert got.tobytes() == want.tobytes()

    @pytest.mark.parametrize("n", [0, 1, 7, 8, 70])
    def test_rhythm_features_last_rows_with_missing_intervals(self, n: int) -> None:
        rng = np.random.default_rng(n)
        rr = rng.uniform(0.3, 1.5, n)
        rr[::5] = np.nan  # as the padding: left out of the window's figures
        for w in (1, 8, 64):
            whole = rhythm_features(rr, w)
            for last in (0, 1, 3, n + 1):
                got = rhythm_features(rr, w, last)
                for g, full in zip(got, whole, strict=True):
                    assert g.tobytes() == full[n - min(last, n) :].tobytes()


class TestRhythmFeatures:
    """AF spreads RR intervals evenly; ectopy clusters them; sinus rhythm barely varies."""

    def _rr(self, kind: str, n: int = 300) -> np.ndarray:
        rng = np.random.default_rng(1)
        if kind == "af":
            return rng.uniform(0.4, 1.1, n)
        if kind == "bigeminy":  # short (premature) and long (compensatory) in turn
            return np.where(np.arange(n) % 2 == 0, 0.55, 1.15) + rng.normal(0, 0.01, n)
        return 0.9 + rng.normal(0, 0.01, n)  # sinus

    def test_separates_af_from_ectopy_and_sinus(self) -> None:
        ent = {}
        nrm = {}
        for kind in ("af", "bigeminy", "sinus"):
            e, r = rhythm_features(self._rr(kind), 64)
            ent[kind], nrm[kind] = float(np.median(e[64:])), float(np.median(r[64:]))
        assert ent["af"] > 0.8 and nrm["af"] > 0.25
        assert ent["bigeminy"] < 0.45 and nrm["bigeminy"] > 0.5  # irregular, not AF
        assert nrm["sinus"] < 0.05

    def test_causal_and_zero_before_eight_intervals(self) -> None:
        rr = self._rr("af", 120)
        e, r = rhythm_features(rr, 64)
        assert np.all(e[:7] == 0) and np.all(r[:7] == 0) and e[7] > 0
        rr2 = rr.copy()
        rr2[80:] = 0.3
        e2, r2 = rhythm_features(rr2, 64)
        np.testing.assert_array_equal(e2[:80], e[:80])
        np.testing.assert_array_equal(r2[:80], r[:80])

    def test_stored_model_columns_select_by_name(self) -> None:
        w, idx = _beats(40)
        full = beat_features(w, idx, 360.0, FeatureSettings())
        old = list(RR_FEATURES[:10])  # a model trained before the rhythm features
        part = beat_features(w, idx, 360.0, FeatureSettings(), old)
        assert part.shape[1] == full.shape[1] - 2
        np.testing.assert_array_equal(part, full[:, :-2])
        with pytest.raises(ValueError, match="unknown RR feature"):
            beat_features(w, idx, 360.0, FeatureSettings(), ["no_such_feature"])


class TestFeaturesInThreads:
    def test_monitors_scoring_in_threads_leave_the_warning_filters_alone(self) -> None:
        # numpy's warnings on the padding rows were silenced with warnings.catch_warnings,
        # which swaps the process's filter list and is not thread-safe: four threads left
        # "ignore RuntimeWarning" installed for the whole process (8 runs in 8)
        before = list(warnings.filters)
        rr = np.random.default_rng(0).uniform(0.5, 1.2, 400)
        rr[100:120] = np.nan

        def score() -> None:
            for _ in range(200):
                rhythm_features(rr, 16)

        run_in_threads(score, 4)
        assert warnings.filters == before
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            rhythm_features(rr, 16)
        assert seen == []
