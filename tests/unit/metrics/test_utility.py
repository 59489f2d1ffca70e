"""Challenge-2019 normalized utility against hand-worked cases, and AUROC/AUPRC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from vitalgru.metrics.calibration import calibration_table
from vitalgru.metrics.early_warning import (
    alarm_statistics,
    early_warning_metrics,
    report_markdown,
    subgroup_metrics,
)
from vitalgru.metrics.ranking import auprc, auroc
from vitalgru.metrics.utility import (
    best_predictions,
    best_threshold,
    normalized_utility,
    patient_utility,
    utility_threshold_curve,
)


def _reference_patient_utility(labels, predictions):
    """Line-by-line transcription of the challenge's compute_prediction_utility loop."""
    dt_early, dt_optimal, dt_late = -12, -6, 3.0
    max_u_tp, min_u_fn, u_fp, u_tn = 1, -2, -0.05, 0
    if np.any(labels):
        is_septic = True
        t_sepsis = np.argmax(labels) - dt_optimal
    else:
        is_septic = False
        t_sepsis = float("inf")
    m_1 = float(max_u_tp) / float(dt_optimal - dt_early)
    b_1 = -m_1 * dt_early
    m_2 = float(-max_u_tp) / float(dt_late - dt_optimal)
    b_2 = -m_2 * dt_late
    m_3 = float(min_u_fn) / float(dt_late - dt_optimal)
    b_3 = -m_3 * dt_optimal
    u = np.zeros(len(labels))
    for t in range(len(labels)):
        if t <= t_sepsis + dt_late:
            if is_septic and predictions[t]:
                if t <= t_sepsis + dt_optimal:
                    u[t] = max(m_1 * (t - t_sepsis) + b_1, u_fp)
                elif t <= t_sepsis + dt_late:
                    u[t] = m_2 * (t - t_sepsis) + b_2
            elif not is_septic and predictions[t]:
                u[t] = u_fp
            elif is_septic and not predictions[t]:
                if t <= t_sepsis + dt_optimal:
                    u[t] = 0
                elif t <= t_sepsis + dt_late:
                    u[t] = m_3 * (t - t_sepsis) + b_3
            elif not is_septic and not predictions[t]:
                u[t] = u_tn
    return float(np.sum(u))


SEPTIC = np.r_[np.zeros(10), np.ones(5)].astype(int)  # label from row 10: t_sepsis = 16


class TestPatientUtility:
    def test_non_septic_false_alarms(self):
        assert patient_utility(np.zeros(10, int), np.ones(10, int)) == pytest.approx(-0.5)
        assert patient_utility(np.zeros(10, int), np.zeros(10, int)) == 0.0

    def test_septic_always_alarm_by_hand(self):
        # rows 0-3: t - t_sepsis <= -13 -> max(...) = u_fp = -0.05 each   -> -0.2
        # rows 4-10: (t - 4) / 6 = 0, 1/6, ..., 1                          -> 3.5
        # rows 11-14: (19 - t) / 9 = 8/9, 7/9, 6/9, 5/9                     -> 26/9
        expected = -0.2 + 3.5 + 26 / 9
        assert patient_utility(SEPTIC, np.ones(15, int)) == pytest.approx(expected)

    def test_septic_never_alarm_by_hand(self):
        # rows 11-14 are after t_sepsis - 6: -2/9 (t - 10) each -> -(2+4+6+8)/9
        assert patient_utility(SEPTIC, np.zeros(15, int)) == pytest.approx(-20 / 9)

    def test_single_alarm_at_optimum(self):
        p = np.zeros(15, int)
        p[10] = 1  # t - t_sepsis = -6: full reward, and avoids the FN cost of that row (0)
        assert patient_utility(SEPTIC, p) == pytest.approx(1.0 - 20 / 9)

    def test_rows_after_late_window_count_zero(self):
        y = np.r_[np.zeros(2), np.ones(20)].astype(int)  # t_sepsis = 8, window ends at 11
        p = np.zeros(22, int)
        p[12:] = 1
        assert patient_utility(y, p) == pytest.approx(_reference_patient_utility(y, np.zeros(22)))

    @settings(max_examples=200, deadline=None)
    @given(
        st.integers(1, 40),
        st.one_of(st.none(), st.integers(0, 39)),
        st.lists(st.booleans(), min_size=40, max_size=40),
    )
    def test_matches_official_loop(self, n, first_pos, preds):
        y = np.zeros(n, int)
        if first_pos is not None and first_pos < n:
            y[first_pos:] = 1
        p = np.array(preds[:n], int)
        assert patient_utility(y, p) == pytest.approx(_reference_patient_utility(y, p))

    def test_rejects_non_binary_predictions(self):
        with pytest.raises(ValueError, match="binary"):
            patient_utility(SEPTIC, np.full(15, 0.7))


class TestNormalizedUtility:
    def test_best_is_one_inaction_zero(self):
        y = np.r_[SEPTIC, np.zeros(8, int)]
        off = np.array([0, 15, 23])
        best = best_predictions(y, off)
        # official: best = 1 on [t_sepsis - 12, t_sepsis + 3] = rows 4..19, clipped to 14
        assert np.flatnonzero(best).tolist() == list(range(4, 15))
        assert normalized_utility(y, best.astype(int), off) == pytest.approx(1.0)
        assert normalized_utility(y, np.zeros(23, int), off) == pytest.approx(0.0)

    def test_cohort_by_hand(self):
        y = np.r_[SEPTIC, np.zeros(8, int)]
        off = np.array([0, 15, 23])
        # best: rows 4-14 of the septic patient: 3.5 + 26/9; inaction: -20/9
        best_u = 3.5 + 26 / 9
        inaction = -20 / 9
        observed = (-0.2 + 3.5 + 26 / 9) + 8 * -0.05  # alarm everywhere
        expected = (observed - inaction) / (best_u - inaction)
        assert normalized_utility(y, np.ones(23, int), off) == pytest.approx(expected)

    def test_no_septic_patient_is_nan(self):
        assert np.isnan(normalized_utility(np.zeros(5, int), np.ones(5, int), np.array([0, 5])))

    def test_threshold_curve_matches_direct_evaluation(self):
        rng = np.random.default_rng(0)
        lengths = rng.integers(5, 60, size=40)
        off = np.r_[0, np.cumsum(lengths)]
        y = np.zeros(off[-1], int)
        for k in range(0, 40, 3):
            onset = rng.integers(0, lengths[k])
            y[off[k] + onset : off[k + 1]] = 1
        s = np.round(rng.random(off[-1]) + 0.5 * y, 2)  # ties on purpose
        thr, util = utility_threshold_curve(y, s, off)
        for t, u in zip(thr[::7], util[::7], strict=True):
            assert u == pytest.approx(normalized_utility(y, (s >= t).astype(int), off))
        t_best, u_best = best_threshold(y, s, off)
        assert u_best == pytest.approx(util.max())
        assert normalized_utility(y, (s >= t_best).astype(int), off) == pytest.approx(u_best)


class TestAlarmStatistics:
    def test_by_hand(self):
        y = np.r_[SEPTIC, np.zeros(24, int)]
        off = np.array([0, 15, 39])
        p = np.zeros(39, int)
        p[8:10] = 1  # septic patient: first alarm at t=8, t_sepsis=16 -> 8 h lead
        p[20] = 1  # two alarm onsets in the non-septic patient
        p[30:32] = 1
        st_ = alarm_statistics(y, p, off)
        assert st_["median_lead_time_h"] == pytest.approx(8.0)
        assert st_["septic_detected_fraction"] == 1.0
        assert st_["false_alarm_patient_fraction"] == 1.0
        assert st_["alarms_per_patient_day"] == pytest.approx(3 / 39 * 24)
        m = early_warning_metrics(y, p.astype(float), off, 0.5)
        assert m["n_patients"] == 2 and m["n_septic_patients"] == 1
        assert m["utility"] == pytest.approx(normalized_utility(y, p, off))

    def test_a_stay_that_skips_hours_is_measured_in_icu_hours(self):
        # ICU hours 1-24 then 30-40; labelled from hour 20 (onset at 26); the first alarm at
        # hour 30 is 4 h late, past the 3 h window: counted in rows it was "1 h early"
        hours = np.r_[np.arange(1, 25), np.arange(30, 41)]
        y = (hours >= 20).astype(int)
        p = (hours >= 30).astype(int)
        off = np.array([0, hours.size])
        rows = alarm_statistics(y, p, off)
        assert rows["median_lead_time_h"] == 1.0 and rows["septic_detected_fraction"] == 1.0
        got = alarm_statistics(y, p, off, hours=hours)
        assert np.isnan(got["median_lead_time_h"]) and got["septic_detected_fraction"] == 0.0
        assert got["alarms_per_patient_day"] == pytest.approx(1 / 40 * 24)  # 40 hours spanned
        contiguous = np.arange(1, 36)  # no skipped hour: the same as counting rows
        y2, p2 = (contiguous >= 20).astype(int), (contiguous >= 22).astype(int)
        off2 = np.array([0, contiguous.size])
        same = alarm_statistics(y2, p2, off2)
        assert alarm_statistics(y2, p2, off2, hours=contiguous + 7) == pytest.approx(
            same, nan_ok=True
        )
        m = early_warning_metrics(y, p.astype(float), off, 0.5, hours=hours)
        assert m["septic_detected_fraction"] == 0.0  # and the utility still counts rows
        assert m["utility"] == pytest.approx(normalized_utility(y, p, off))

    def test_each_patient_starting_in_alarm_is_an_alarm_onset(self):
        """Two patients in alarm every hour page twice: the second patient's first hour
        is an onset even though the row before it (the other patient's last) was in
        alarm, or back-to-back stays would hide the alarm burden of the later one."""
        off = np.array([0, 10, 20])
        st_ = alarm_statistics(np.zeros(20, int), np.ones(20, int), off)
        assert st_["alarms_per_patient_day"] == pytest.approx(2 / 20 * 24)

    def test_an_alarm_exactly_dt_late_after_onset_still_detects(self):
        """The detection window ends at ``t_sepsis + dt_late`` inclusive (3 h, where the
        Challenge's utility window ends): an alarm at exactly that hour detected the
        patient, 3 h late; dropping it under-reports the detected fraction."""
        y = np.r_[np.zeros(10, int), np.ones(15, int)]  # labelled from row 10: t_sepsis 16
        p = np.zeros(25, int)
        p[19] = 1  # t_sepsis + 3
        st_ = alarm_statistics(y, p, np.array([0, 25]))
        assert st_["septic_detected_fraction"] == 1.0
        assert st_["median_lead_time_h"] == pytest.approx(-3.0)
        p[19], p[20] = 0, 1  # an hour later: missed
        assert alarm_statistics(y, p, np.array([0, 25]))["septic_detected_fraction"] == 0.0

    def test_a_score_equal_to_the_threshold_is_an_alarm(self):
        """``score >= threshold`` alarms, as the live monitor pages (and NEWS2 at 5 points
        or more): hours scored exactly at the threshold are alarm hours in the report."""
        y = np.r_[np.zeros(10, int), np.ones(15, int)]
        m = early_warning_metrics(y, np.full(25, 0.5), np.array([0, 25]), threshold=0.5)
        assert m["alarm_hour_fraction"] == 1.0


class TestRanking:
    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60))
    def test_match_sklearn(self, pairs):
        y = np.array([a for a, _ in pairs], int)
        s = np.array([b for _, b in pairs], float)
        if y.min() == y.max():
            assert np.isnan(auroc(y, s))
            return
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
        assert auprc(y, s) == pytest.approx(average_precision_score(y, s))

    def test_perfect_and_reversed(self):
        y = np.array([0, 0, 1, 1])
        assert auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
        assert auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
        assert auprc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0


class TestReportMarkdown:
    def test_values_and_undefined_measures(self):
        y = np.r_[SEPTIC, np.zeros(8, int)]
        off = np.array([0, 15, 23])
        s = np.r_[np.linspace(0, 1, 15), np.full(8, 0.2)]
        m = early_warning_metrics(y, s, off, threshold=0.5)
        md = report_markdown({**m, "n_excluded_files": 2}, "ward 4")
        assert md.startswith("## ward 4\n")
        assert "Patients: 2 (1 septic), 23 patient-hours" in md
        assert f"| normalized utility (PhysioNet/CinC 2019) | {m['utility']:.3f} |" in md
        assert "| septic patients alarmed by 3 h after onset | 100.0 % |" in md
        assert "| non-septic patients ever alarmed | 0.0 % |" in md
        assert "Data: 2 file(s) excluded" in md
        # no septic patient: the measures that need one say so instead of "nan"
        quiet = early_warning_metrics(np.zeros(8, int), np.full(8, 0.7), np.array([0, 8]), 0.5)
        md = report_markdown({k: (None if v != v else v) for k, v in quiet.items()})
        assert "| normalized utility (PhysioNet/CinC 2019) | undefined (no septic patient) |" in md
        assert "| non-septic patients ever alarmed | 100.0 % |" in md
        assert "nan" not in md and "Data:" not in md

    def test_calibration_of_risks_and_not_of_points(self):
        y = np.r_[SEPTIC, np.zeros(8, int)]
        off = np.array([0, 15, 23])
        s = np.r_[np.linspace(0, 1, 15), np.full(8, 0.2)]
        m = early_warning_metrics(y, s, off, threshold=0.5)
        assert m["brier"] == pytest.approx(np.mean((s - y) ** 2))
        assert m["mean_risk"] == pytest.approx(s.mean())
        assert m["event_rate"] == pytest.approx(y.mean())
        table = calibration_table(y, s)
        md = report_markdown({**m, "calibration": table})
        assert f"| Brier score / expected calibration error (10 bins) | {m['brier']:.4f} / " in md
        first = table[0]
        assert (f"| {first['risk_min']:.3f}-{first['risk_max']:.3f} | {first['n']} | "
                f"{first['mean_risk']:.3f} |") in md  # a score, not a percentage  # fmt: skip
        # NEWS2 points are not risks: no calibration
        points = early_warning_metrics(y, s * 20, off, threshold=10)
        assert all(np.isnan(points[k]) for k in ("brier", "ece", "calibration_slope"))


class TestSubgroupMetrics:
    def test_each_group_is_scored_as_a_cohort_of_its_own(self):
        # three patients: septic (15 h), calm (8 h), septic again (15 h)
        y = np.r_[SEPTIC, np.zeros(8, int), SEPTIC]
        off = np.array([0, 15, 23, 38])
        s = np.r_[np.linspace(0, 1, 15), np.full(8, 0.6), np.linspace(1, 0, 15)]
        groups = {
            "first two": np.array([True, True, False]),
            "last": np.array([False, False, True]),
            "nobody": np.zeros(3, bool),
        }
        got = subgroup_metrics(y, s, off, 0.5, groups)
        assert list(got) == ["first two", "last"]  # an empty group is left out
        want = early_warning_metrics(y[:23], s[:23], off[:3], 0.5)
        assert got["first two"] == pytest.approx(want, nan_ok=True)
        last = early_warning_metrics(y[23:], s[23:], np.array([0, 15]), 0.5)
        assert got["last"] == pytest.approx(last, nan_ok=True)
        assert got["last"]["n_patients"] == 1 and got["first two"]["n_patient_hours"] == 23

    def test_a_group_without_a_septic_patient_has_no_utility(self):
        y = np.r_[SEPTIC, np.zeros(8, int)]
        off = np.array([0, 15, 23])
        s = np.r_[np.linspace(0, 1, 15), np.full(8, 0.6)]
        calm = subgroup_metrics(y, s, off, 0.5, {"calm": np.array([False, True])})["calm"]
        assert np.isnan(calm["utility"]) and np.isnan(calm["auroc"])
        assert calm["alarms_per_patient_day"] == pytest.approx(24 / 8)

    def test_masks_must_cover_the_patients(self):
        with pytest.raises(ValueError, match="group 'g': a mask of 3 patients for 2"):
            subgroup_metrics(np.zeros(4, int), np.zeros(4), np.array([0, 2, 4]), 0.5,
                             {"g": np.ones(3, bool)})  # fmt: skip

    def test_report_table(self):
        y = np.r_[SEPTIC, np.zeros(8, int)]
        off = np.array([0, 15, 23])
        s = np.r_[np.linspace(0, 1, 15), np.full(8, 0.2)]
        m = early_warning_metrics(y, s, off, threshold=0.5)
        sub = subgroup_metrics(y, s, off, 0.5, {"male": np.array([True, False]),
                                                "female": np.array([False, True])})  # fmt: skip
        sub = {k: {n: (None if v != v else v) for n, v in g.items()} for k, g in sub.items()}
        md = report_markdown({**m, "subgroups": sub})
        assert "| group | patients | septic | utility | AUROC |" in md
        assert f"| male | 1 | 1 | {sub['male']['utility']:.3f} |" in md
        assert "| female | 1 | 0 | - | - | 0.00 |" in md
