"""NEWS2 and qSOFA from hourly vitals, checked against the published charts; the trees'
engineered and path-signature features, causal and worked by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from thread_kit import run_in_threads

from vitalgru.baselines import engineered_features, news2, qsofa, signature_features

nan = np.nan


def _frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    cols = ["resp_per_min", "spo2_pct", "sbp_mmhg", "hr_bpm", "temp_c", "fio2_frac"]
    return pd.DataFrame([{c: r.get(c, nan) for c in cols} for r in rows])


NORMAL = {"resp_per_min": 16, "spo2_pct": 97, "sbp_mmhg": 120, "hr_bpm": 70, "temp_c": 37.0}


class TestNEWS2:
    def test_normal_is_zero(self):
        assert news2(_frame([NORMAL]), np.array([0, 1])).tolist() == [0]

    @pytest.mark.parametrize(
        ("key", "value", "points"),
        [
            ("resp_per_min", 8, 3),
            ("resp_per_min", 9, 1),
            ("resp_per_min", 11, 1),
            ("resp_per_min", 12, 0),
            ("resp_per_min", 20, 0),
            ("resp_per_min", 21, 2),
            ("resp_per_min", 24, 2),
            ("resp_per_min", 25, 3),
            ("spo2_pct", 91, 3),
            ("spo2_pct", 92, 2),
            ("spo2_pct", 93, 2),
            ("spo2_pct", 94, 1),
            ("spo2_pct", 95, 1),
            ("spo2_pct", 96, 0),
            ("sbp_mmhg", 90, 3),
            ("sbp_mmhg", 91, 2),
            ("sbp_mmhg", 100, 2),
            ("sbp_mmhg", 101, 1),
            ("sbp_mmhg", 110, 1),
            ("sbp_mmhg", 111, 0),
            ("sbp_mmhg", 219, 0),
            ("sbp_mmhg", 220, 3),
            ("hr_bpm", 40, 3),
            ("hr_bpm", 41, 1),
            ("hr_bpm", 50, 1),
            ("hr_bpm", 51, 0),
            ("hr_bpm", 90, 0),
            ("hr_bpm", 91, 1),
            ("hr_bpm", 110, 1),
            ("hr_bpm", 111, 2),
            ("hr_bpm", 130, 2),
            ("hr_bpm", 131, 3),
            ("temp_c", 35.0, 3),
            ("temp_c", 35.1, 1),
            ("temp_c", 36.0, 1),
            ("temp_c", 36.1, 0),
            ("temp_c", 38.0, 0),
            ("temp_c", 38.1, 1),
            ("temp_c", 39.0, 1),
            ("temp_c", 39.1, 2),
            ("fio2_frac", 0.21, 0),
            ("fio2_frac", 0.4, 2),
        ],
    )
    def test_chart_bands(self, key, value, points):
        row = dict(NORMAL, **{key: value})
        assert news2(_frame([row]), np.array([0, 1]))[0] == points

    def test_carry_forward_within_patient_only(self):
        f = _frame([dict(NORMAL, hr_bpm=140), {}, {}])
        # patient 0: rows 0-1 (hr carried -> 3 points); patient 1: row 2 (nothing -> 0)
        assert news2(f, np.array([0, 2, 3])).tolist() == [3, 3, 0]

    def test_a_value_older_than_a_day_is_a_blank_box(self):
        from vitalgru.baselines.scores import MAX_AGE_H

        f = _frame([dict(NORMAL, fio2_frac=0.5)] + [{}] * (MAX_AGE_H + 3))
        got = news2(f, np.array([0, len(f)]))
        # the oxygen points (and the rest) went on for the whole stay before
        assert got[: MAX_AGE_H + 1].tolist() == [2] * (MAX_AGE_H + 1)
        assert got[MAX_AGE_H + 1 :].tolist() == [0, 0, 0]
        # by the ICU hour where there is one: hour 30 is 29 h after hour 1
        hours = _frame([dict(NORMAL, sbp_mmhg=85), {}]).assign(hour=[1, 30])
        assert news2(hours, np.array([0, 2])).tolist() == [3, 0]
        assert qsofa(hours, np.array([0, 2])).tolist() == [1, 0]
        # the models' inputs carry every value, as they were trained
        assert news2(f, np.array([0, len(f)]), max_age_h=None).tolist() == [2] * len(f)


class TestQSOFA:
    def test_points(self):
        f = _frame(
            [NORMAL, dict(NORMAL, resp_per_min=22), dict(NORMAL, resp_per_min=22, sbp_mmhg=100), {}]
        )
        assert qsofa(f, np.array([0, 4])).tolist() == [0, 1, 2, 2]


class TestFeatures:
    def test_causal_and_per_patient(self, physionet_mirror):
        from vitalgru.data.early_warning import build_cohort

        cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=6)
        full = engineered_features(cohort.frame, cohort.offsets)
        assert len(full) == len(cohort.frame)
        assert full.shape[1] > 100
        # Features of the first patient's first 10 hours do not depend on later hours.
        first = cohort.subset(np.array([0]))
        cut = first.frame.iloc[:10].reset_index(drop=True)
        part = engineered_features(cut, np.array([0, 10]))
        pd.testing.assert_frame_equal(part, full.iloc[:10].reset_index(drop=True)[part.columns])

    def test_a_later_patients_features_do_not_see_the_patient_before(self, physionet_mirror):
        """Each patient's rows of the whole-cohort frame equal the features of that patient
        alone: a lag or window reaching back over a stay's first hour would hand the
        previous patient's last hours (another person's vitals) to the trees."""
        from vitalgru.data.early_warning import build_cohort

        cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=6)
        full = engineered_features(cohort.frame, cohort.offsets)
        for i in range(1, cohort.n_patients):
            one = cohort.subset(np.array([i]))
            alone = engineered_features(one.frame, one.offsets)
            a, b = int(cohort.offsets[i]), int(cohort.offsets[i + 1])
            pd.testing.assert_frame_equal(alone, full.iloc[a:b].reset_index(drop=True))

    def test_scoring_in_threads_leaves_the_warning_filters_alone(self, physionet_mirror):
        # the 6-hour statistics of windows holding no value yet (NaN, as before) were
        # computed under warnings.catch_warnings, which is not thread-safe: sepsis monitors
        # scoring in threads left "ignore RuntimeWarning" installed for the whole process
        from vitalgru.data.early_warning import build_cohort

        cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=6)
        first = cohort.subset(np.array([0]))
        want = engineered_features(first.frame, first.offsets)
        assert want["hr_bpm__mean6h"].isna().any()  # a window before the first value
        before = list(warnings.filters)
        got: list[pd.DataFrame] = []

        def score() -> None:
            for _ in range(30):
                got.append(engineered_features(first.frame, first.offsets))

        run_in_threads(score, 4)
        assert warnings.filters == before
        assert len(got) == 120
        for g in got[:3]:
            pd.testing.assert_frame_equal(g, want)

    def test_signatures_causal_and_appended(self, physionet_mirror):
        from vitalgru.data.early_warning import build_cohort

        cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=6)
        plain = engineered_features(cohort.frame, cohort.offsets)
        full = engineered_features(cohort.frame, cohort.offsets, signatures=True)
        sig = [c for c in full.columns if c not in plain.columns]
        assert len(sig) == 2 * 21 and all(c.startswith("sig") for c in sig)
        pd.testing.assert_frame_equal(full[plain.columns], plain)
        first = cohort.subset(np.array([0]))
        cut = first.frame.iloc[:10].reset_index(drop=True)
        part = engineered_features(cut, np.array([0, 10]), signatures=True)
        pd.testing.assert_frame_equal(part[sig], full.iloc[:10].reset_index(drop=True)[sig])


def _vitals_frame(hr: list[float], map_: list[float]) -> pd.DataFrame:
    from vitalgru.io.psv import MEASUREMENT_COLUMNS

    f = pd.DataFrame({c: np.full(len(hr), nan) for c in MEASUREMENT_COLUMNS})
    f["hr_bpm"], f["map_mmhg"] = hr, map_
    return f


class TestSignatures:
    """Lévy areas worked by hand on a 2-hour window: A_ij = 1/2 sum_k [(x_i(k-1) - x_i(0))
    dx_j(k) - (x_j(k-1) - x_j(0)) dx_i(k)], with the hour as channel t."""

    def _areas(self, hr, map_, offsets=None):
        off = np.array([0, len(hr)]) if offsets is None else np.asarray(offsets)
        out = signature_features(_vitals_frame(hr, map_), off, (2,), ("hr_bpm", "map_mmhg"))
        assert list(out.columns) == ["sig2_t_hr_bpm", "sig2_t_map_mmhg", "sig2_hr_bpm_map_mmhg"]
        return out.to_numpy()

    def test_pressure_falls_then_rate_rises(self):
        # Last row: path (t, hr, map) = (0, 80, 70) -> (1, 80, 60) -> (2, 90, 60).
        # A_hr,map = 1/2 [0 + (0 * 0 - (-10) * 10)] = 50; A_t,hr = 1/2 (1 * 10) = 5;
        # A_t,map = 1/2 (0 - (-10) * 1) = 5.
        a = self._areas([80, 80, 90], [70, 60, 60])
        np.testing.assert_allclose(a[2], [5.0, 5.0, 50.0])
        # Row 1 holds the first row before admission: (0, 80, 70) twice, then (2, 80, 60):
        # only the pressure moved, in the last step, so A_t,map = 1/2 (1 * -10) = -5.
        np.testing.assert_allclose(a[1], [0.0, -5.0, 0.0])
        np.testing.assert_allclose(a[0], [0.0, 0.0, 0.0])

    def test_order_of_the_changes_flips_the_sign(self):
        # The same two changes, rate first: (0, 80, 70) -> (1, 90, 70) -> (2, 90, 60).
        a = self._areas([80, 90, 90], [70, 70, 60])
        np.testing.assert_allclose(a[2], [-5.0, -5.0, -50.0])

    def test_undefined_until_observed_and_per_patient(self):
        a = self._areas([80, 80, 90, 70, 70], [nan, 60, 60, 50, 40], offsets=[0, 3, 5])
        assert np.isnan(a[0, 1:]).all() and a[0, 0] == 0.0  # MAP not yet measured
        # Patient 2's first row must not reach back into patient 1's rows.
        np.testing.assert_allclose(a[3], [0.0, 0.0, 0.0])
        np.testing.assert_allclose(a[4], [0.0, -5.0, 0.0])

    def test_bad_arguments(self):
        f = _vitals_frame([80.0], [70.0])
        with pytest.raises(ValueError, match="windows"):
            signature_features(f, np.array([0, 1]), (0,))
        with pytest.raises(ValueError, match="channel"):
            signature_features(f, np.array([0, 1]), (2,), ("heart",))
