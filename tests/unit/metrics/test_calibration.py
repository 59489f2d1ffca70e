"""Calibration measures against hand-worked values and simulated outcomes whose true
calibration is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitalgru.metrics.calibration import (
    brier_score,
    calibration_metrics,
    calibration_table,
    expected_calibration_error,
    fit_recalibration,
    logistic_calibration,
    model_probability,
    recalibrate,
)


def test_brier_and_the_reliability_table_by_hand() -> None:
    assert brier_score([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3]) == pytest.approx(0.075)
    table = calibration_table([0, 0, 1, 1], [0.4, 0.1, 0.3, 0.2], n_bins=2)
    # sorted: 0.1 (0), 0.2 (1), 0.3 (1), 0.4 (0)
    assert [(b["n"], b["risk_min"], b["risk_max"]) for b in table] == [(2, 0.1, 0.2), (2, 0.3, 0.4)]
    assert [b["mean_risk"] for b in table] == pytest.approx([0.15, 0.35])
    assert [b["observed"] for b in table] == [0.5, 0.5]
    # |0.15 - 0.5| and |0.35 - 0.5|, two rows each
    assert expected_calibration_error([0, 0, 1, 1], [0.4, 0.1, 0.3, 0.2], 2) == pytest.approx(0.25)


def test_equal_risks_stay_in_one_bin() -> None:
    table = calibration_table([0, 1, 0, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.9, 0.9], n_bins=3)
    assert [(b["n"], b["mean_risk"], b["observed"]) for b in table] == [(4, 0.5, 0.5),
                                                                       (2, 0.9, 1.0)]  # fmt: skip
    assert calibration_table([], [], 5) == []
    # a run of equal risks over several cuts, starting the table: the different risks after
    # it keep a bin of their own (they were merged into the run's bin, and a 0.9 that never
    # came true vanished from the table and the ECE: 0.003 instead of 0.093)
    y = np.r_[np.ones(48), np.zeros(902), np.zeros(50)]
    p = np.r_[np.zeros(950), np.full(50, 0.9)]
    table = calibration_table(y, p, 10)
    assert [(b["n"], b["risk_min"], b["risk_max"]) for b in table] == [(950, 0.0, 0.0),
                                                                       (50, 0.9, 0.9)]  # fmt: skip
    assert expected_calibration_error(y, p, 10) == pytest.approx((950 * 48 / 950 + 50 * 0.9) / 1000)
    table = calibration_table([0, 1, 0, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.9], n_bins=4)
    assert [b["n"] for b in table] == [4, 1]


def test_the_logistic_recalibration_finds_the_distortion_it_was_given() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(-2.0, 1.5, 200_000)
    p = 1 / (1 + np.exp(-z))
    y = (rng.random(z.size) < p).astype(int)  # p is the true risk
    good = logistic_calibration(y, p)
    assert good["calibration_in_the_large"] == pytest.approx(0.0, abs=0.02)
    assert good["calibration_slope"] == pytest.approx(1.0, abs=0.02)
    too_high = logistic_calibration(y, 1 / (1 + np.exp(-(z + 1.0))))  # odds x e
    assert too_high["calibration_in_the_large"] == pytest.approx(-1.0, abs=0.03)
    too_extreme = logistic_calibration(y, 1 / (1 + np.exp(-2 * z)))
    assert too_extreme["calibration_slope"] == pytest.approx(0.5, abs=0.02)
    m = calibration_metrics(y, p)
    assert m["ece"] < 0.01 and m["mean_risk"] == pytest.approx(m["event_rate"], abs=0.005)
    assert calibration_metrics(y, 1 / (1 + np.exp(-(z + 1.0))))["ece"] > 0.05


def test_undefined_and_invalid_inputs() -> None:
    assert math.isnan(logistic_calibration([0, 0], [0.1, 0.2])["calibration_slope"])
    assert math.isnan(brier_score([], []))
    with pytest.raises(ValueError, match="differ in length"):
        brier_score([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 or 1"):
        brier_score([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="n_bins"):
        calibration_table([0], [0.5], 0)


def test_recalibration_restores_calibration_and_keeps_the_order() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(-3.0, 1.2, 100_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    inflated = 1 / (1 + np.exp(-(1.5 * z + 2.0)))  # too high and too extreme
    fit = fit_recalibration(y, inflated)
    assert fit["slope"] == pytest.approx(1 / 1.5, abs=0.03) and fit["n"] == z.size
    fixed = recalibrate(inflated, fit)
    m = logistic_calibration(y, fixed)
    assert m["calibration_in_the_large"] == pytest.approx(0.0, abs=0.03)
    assert m["calibration_slope"] == pytest.approx(1.0, abs=0.03)
    assert (np.diff(fixed[np.argsort(inflated)]) >= 0).all()  # the ranking is kept
    assert model_probability({"recalibration": fit}, inflated) == pytest.approx(fixed)
    assert model_probability({"threshold": 0.3}, inflated) is None
    with pytest.raises(ValueError, match="both outcomes"):
        fit_recalibration([0, 0, 0], [0.1, 0.2, 0.3])


def test_risks_that_rank_backwards_are_only_shifted(caplog: pytest.LogCaptureFixture) -> None:
    y = np.array([0, 0, 0, 1] * 50)
    p = np.array([0.9, 0.8, 0.7, 0.1] * 50)  # the septic hours have the lowest risk
    with caplog.at_level("WARNING"):
        fit = fit_recalibration(y, p)
    assert fit["slope"] == 1.0 and "only the intercept is fitted" in caplog.text
    q = recalibrate(p, fit)
    assert (np.diff(q[np.argsort(p)]) >= 0).all() and q.mean() == pytest.approx(0.25, abs=1e-6)


def test_one_risk_for_every_row_has_no_slope(caplog: pytest.LogCaptureFixture) -> None:
    # (trees that learnt nothing) the ridge picked a slope: 2.50 for 0.3, -0.50 for 0.6
    y = (np.random.default_rng(0).random(400) < 0.2).astype(float)
    for risk in (0.3, 0.6):
        got = logistic_calibration(y, np.full(400, risk))
        assert np.isnan(got["calibration_slope"])
        assert got["calibration_in_the_large"] == pytest.approx(
            np.log(y.mean() / (1 - y.mean())) - np.log(risk / (1 - risk)), abs=1e-6)  # fmt: skip
        with caplog.at_level("WARNING"):
            recal = fit_recalibration(y, np.full(400, risk))
        assert recal["slope"] == 1.0 and "backwards" not in caplog.text
        assert recalibrate([risk], recal)[0] == pytest.approx(y.mean(), abs=1e-6)


def test_risks_that_split_the_outcomes_have_no_slope(caplog: pytest.LogCaptureFixture) -> None:
    # every outcome above every other row: the slope grows for as long as the fit runs
    # (83 here, 41 in a small subgroup), and the stored map gave probabilities of 1.0
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4])
    got = logistic_calibration(y, p)
    assert np.isnan(got["calibration_slope"]) and math.isfinite(got["calibration_in_the_large"])
    with caplog.at_level("WARNING"):
        recal = fit_recalibration(y, p)
    assert recal["slope"] == 1.0 and "split the 3 outcomes" in caplog.text
    assert (recalibrate(p, recal) < 1.0).all()
    tied = np.array([0.05, 0.1, 0.15, 0.25, 0.25, 0.3, 0.4])  # a tie at the border too
    assert np.isnan(logistic_calibration(y, tied)["calibration_slope"])
    mixed = np.array([0.05, 0.1, 0.3, 0.2, 0.25, 0.15, 0.4])  # overlapping: estimated
    assert math.isfinite(logistic_calibration(y, mixed)["calibration_slope"])


def test_recalibration_keeps_every_risk_in_its_place() -> None:
    # the logit of a risk clipped at 1e-6 made the smallest risks one probability
    p = np.array([1e-9, 1e-8, 1e-7, 5e-7, 0.3, 1 - 1e-8, 1 - 1e-9, 0.0, 1.0])
    q = recalibrate(p, {"intercept": -1.55, "slope": 0.90})
    order = np.argsort(p)
    assert (np.diff(q[order]) > 0).all()
    assert np.unique(q[:4]).size == 4 and q[7] == 0.0 and q[8] == 1.0


def test_points_are_not_calibrated_because_a_fold_stays_under_2() -> None:
    # qSOFA points 0-1 in a fold that never reached 2 passed for risks: Brier, ECE, slope
    from vitalgru.metrics.early_warning import early_warning_metrics

    y = np.array([0, 0, 1, 1, 0, 0, 0, 1])
    points = np.array([0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    off = np.array([0, 4, 8])
    assert math.isfinite(early_warning_metrics(y, points, off, 1.0)["brier"])  # guessed
    told = early_warning_metrics(y, points, off, 1.0, risks=False)
    assert all(math.isnan(told[k]) for k in ("brier", "ece", "calibration_slope"))
