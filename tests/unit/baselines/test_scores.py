"""NEWS2 and qSOFA from hourly vitals, checked against the published charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitalgru.baselines import engineered_features, news2, qsofa

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
