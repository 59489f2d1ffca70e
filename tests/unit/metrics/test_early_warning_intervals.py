"""Patient-bootstrap intervals of the early-warning measures: each patient's utility parts
by hand, every resample of three patients written out, the intervals against a plain loop
over resamples, and weighted AUROC/AUPRC against rows written out as often as weighted."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vitalgru.metrics.bootstrap import cluster_counts, percentile_interval
from vitalgru.metrics.early_warning import report_markdown
from vitalgru.metrics.early_warning_intervals import (
    THRESHOLD_NOTE,
    bootstrap_early_warning,
    early_warning_intervals,
    patient_utility_parts,
    weighted_ranking,
)
from vitalgru.metrics.ranking import auprc, auroc
from vitalgru.metrics.utility import normalized_utility

# Three patients back to back: A not septic, alarmed at two of 3 hours; B septic from its
# first hour (t_sepsis = 6: rows 0..7 are t - t_sepsis = -6..1), alarmed from row 3; C not
# septic, never alarmed.
LABELS = np.array([0, 0, 0] + [1] * 8 + [0, 0])
ALARMS = np.array([1, 0, 1] + [0, 0, 0, 1, 1, 1, 1, 1] + [0, 0])
OFFSETS = np.array([0, 3, 11, 13])


def _write_out(counts: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The resample's rows: each patient's rows as often as it was drawn, and offsets."""
    idx = [np.arange(OFFSETS[p], OFFSETS[p + 1]) for p in range(3) for _ in range(counts[p])]
    rows = np.concatenate(idx) if idx else np.zeros(0, np.int64)
    off = np.r_[0, np.cumsum([i.size for i in idx])].astype(np.int64)
    return (*(a[rows] for a in arrays), off)


class TestUtilityParts:
    def test_each_patients_parts_by_hand(self) -> None:
        observed, inaction, best = patient_utility_parts(LABELS, ALARMS, OFFSETS)
        # A: two false alarms at -0.05; B: a miss costs 0, -2/9, -4/9 at rows 0-2 (t -
        # t_sepsis = -6, -5, -4), the alarms earn 6/9 ... 2/9 (t - t_sepsis = -3 ... 1);
        # doing nothing costs -(2 + 4 + ... + 14)/9; the best alarm at every row earns
        # 1 + (8 + 7 + ... + 2)/9; C: 0.
        assert observed == pytest.approx([-0.1, 14 / 9, 0.0])
        assert inaction == pytest.approx([0.0, -56 / 9, 0.0])
        assert best == pytest.approx([0.0, 44 / 9, 0.0])

    def test_every_resample_of_three_patients_by_hand(self) -> None:
        # all 10 ways to draw 3 of 3 patients with replacement: the utility of the rows
        # written out, from the parts, and by hand: (-0.1 nA + 70/9 nB) / (100/9 nB)
        observed, inaction, best = patient_utility_parts(LABELS, ALARMS, OFFSETS)
        seen = 0
        for draw in itertools.combinations_with_replacement(range(3), 3):
            c = np.bincount(draw, minlength=3)
            y, a, off = _write_out(c, LABELS, ALARMS)
            written = normalized_utility(y, a, off)
            parts = (c @ (observed - inaction)) / (c @ (best - inaction)) if c[1] else np.nan
            if c[1] == 0:  # no septic patient drawn: best equals inaction, undefined
                assert np.isnan(written)
            else:
                by_hand = 0.7 - 0.009 * c[0] / c[1]
                assert written == pytest.approx(by_hand) and parts == pytest.approx(by_hand)
            seen += 1
        assert seen == 10

    def test_the_interval_is_the_percentiles_of_the_hand_formula_on_the_draws(self) -> None:
        scores = ALARMS + 0.1 * np.arange(ALARMS.size) / ALARMS.size
        # one septic patient: intervals only when asked for below the default minimum
        got = bootstrap_early_warning(LABELS, scores, ALARMS, OFFSETS, n_resamples=400,
                                      seed=7, ranking=False, min_septic=1)  # fmt: skip
        c = cluster_counts(3, 400, seed=7)
        with np.errstate(divide="ignore", invalid="ignore"):
            by_hand = np.where(c[:, 1] > 0, 0.7 - 0.009 * c[:, 0] / c[:, 1], np.nan)
        low, high = percentile_interval(by_hand)
        assert (got["utility"]["low"], got["utility"]["high"]) == pytest.approx((low, high))
        # a resample without patient B (8/27 of them) has no utility
        assert got["utility"]["n_defined"] == int((c[:, 1] > 0).sum())
        assert got["utility"]["estimate"] == pytest.approx(0.7 - 0.009)


def _cohort(seed: int, n_pat: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, n_pat)
    off = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    y = np.zeros(off[-1], np.int8)
    for p in rng.choice(n_pat, n_pat // 4, replace=False):
        k = int(rng.integers(1, lengths[p] + 1))
        y[off[p + 1] - k : off[p + 1]] = 1
    # rounded scores: many ties, within and across patients
    s = np.round(rng.random(y.size) + 0.4 * y, 1)
    return y, s, off


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intervals_equal_a_plain_loop_over_the_written_out_resamples(seed: int) -> None:
    y, s, off = _cohort(seed)
    n_pat, b, thr = off.size - 1, 300, 0.8
    # chunks of 7 resamples draw what one draw of all of them does
    got = early_warning_intervals(y, s, off, thr, n_resamples=b, seed=seed, chunk=7)
    counts = cluster_counts(n_pat, b, seed=seed)
    reps: dict[str, list[float]] = {"utility": [], "auroc": [], "auprc": []}
    for c in counts:
        rows = np.concatenate([np.arange(off[p], off[p + 1]) for p in range(n_pat)
                               for _ in range(c[p])])  # fmt: skip
        lengths = np.repeat(np.diff(off), c)
        yy, ss = y[rows], s[rows]
        reps["utility"].append(normalized_utility(yy, ss >= thr, np.r_[0, np.cumsum(lengths)]))
        reps["auroc"].append(auroc(yy, ss))
        reps["auprc"].append(auprc(yy, ss))
    for m, r in reps.items():
        low, high = percentile_interval(r)
        assert (got[m]["low"], got[m]["high"]) == pytest.approx((low, high), abs=1e-12), m
        assert got[m]["n_defined"] == int(np.isfinite(r).sum())
    assert got["utility"]["estimate"] == pytest.approx(normalized_utility(y, s >= thr, off))
    assert got["auroc"]["estimate"] == pytest.approx(auroc(y, s))
    assert got["auprc"]["estimate"] == pytest.approx(auprc(y, s))
    assert got["n_patients"] == n_pat and got["n_resamples"] == b and got["seed"] == seed
    assert got["threshold"] == thr and got["threshold_note"] == THRESHOLD_NOTE
    assert "patient" in got["method"] and got["level"] == 0.95


@pytest.mark.parametrize("seed", range(5))
def test_integer_weights_equal_the_rows_written_out_that_often(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 6, n).astype(float)  # ties everywhere
    w = rng.integers(0, 4, n)  # some rows left out
    got = weighted_ranking(y, s, w)
    yy, ss = np.repeat(y, w), np.repeat(s, w)
    assert got == pytest.approx((auroc(yy, ss), auprc(yy, ss)), abs=1e-12)
    assert weighted_ranking(y, s, np.ones(n)) == pytest.approx((auroc(y, s), auprc(y, s)))


def test_weights_without_a_class_give_nan() -> None:
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.3, 0.4])
    assert np.isnan(weighted_ranking(y, s, np.array([1, 0, 2, 0]))).all()
    a, p = weighted_ranking(y, s, np.array([0, 2, 0, 1]))  # positives only
    assert np.isnan(a) and p == pytest.approx(1.0)


def test_no_septic_patient_gives_no_utility_interval() -> None:
    y = np.zeros(12, np.int8)
    s = np.linspace(0, 1, 12)
    got = early_warning_intervals(y, s, np.array([0, 4, 12]), 0.5, n_resamples=50)
    for m in ("utility", "auroc", "auprc"):
        assert got[m] == {"estimate": None, "low": None, "high": None, "n_defined": 0}


def test_the_report_shows_the_intervals_and_says_the_threshold_is_fixed() -> None:
    y, s, off = _cohort(3)
    iv = early_warning_intervals(y, s, off, 0.8, n_resamples=200)
    metrics = {"n_patients": 40, "n_septic_patients": 10, "n_patient_hours": int(y.size),
               "threshold": 0.8, "utility": iv["utility"]["estimate"],
               "auroc": iv["auroc"]["estimate"], "auprc": iv["auprc"]["estimate"],
               "intervals": iv}  # fmt: skip
    md = report_markdown(metrics)
    u = iv["utility"]
    assert (
        f"| normalized utility (PhysioNet/CinC 2019) | {u['estimate']:.3f} "
        f"[{u['low']:.3f}, {u['high']:.3f}] |" in md
    )
    assert f"[{iv['auroc']['low']:.3f}, {iv['auroc']['high']:.3f}] |" in md
    assert "95 % intervals by patient bootstrap (200 resamples of the 40 patients" in md
    assert "held fixed at the one chosen on the model's training data" in md
    without = report_markdown({k: v for k, v in metrics.items() if k != "intervals"})
    assert "[" not in without and "bootstrap" not in without


def test_bad_arguments_are_refused() -> None:
    y, s, off = _cohort(0)
    with pytest.raises(ValueError, match="at least one resample"):
        early_warning_intervals(y, s, off, 0.5, n_resamples=0)
    with pytest.raises(ValueError, match="shape"):
        early_warning_intervals(y, s[:-1], off, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        early_warning_intervals(y, np.where(y > 0, np.nan, s), off, 0.5)
    with pytest.raises(ValueError, match="negative"):
        weighted_ranking(np.array([0, 1]), np.array([0.1, 0.2]), np.array([1, -1]))


def test_fewer_than_five_septic_patients_give_no_interval_and_say_why() -> None:
    from vitalgru.metrics.early_warning_intervals import MIN_SEPTIC_FOR_INTERVAL, interval_lines

    rng = np.random.default_rng(4)
    lengths = np.full(40, 20)
    off = np.r_[0, np.cumsum(lengths)]
    y = np.zeros(off[-1], np.int8)
    s = rng.random(y.size)
    for k in range(MIN_SEPTIC_FOR_INTERVAL - 1):  # four septic patients
        y[off[k + 1] - 6 : off[k + 1]] = 1
    iv = early_warning_intervals(y, s, off, 0.5, n_resamples=100)
    assert iv["note"] == f"fewer than {MIN_SEPTIC_FOR_INTERVAL} septic patients"
    assert iv["n_resamples"] == 0 and iv["utility"]["estimate"] is not None
    assert all(
        iv[m]["low"] is None and iv[m]["high"] is None for m in ("utility", "auroc", "auprc")
    )
    assert interval_lines(iv) == ["", "No patient-bootstrap interval (fewer than 5 septic patients "
                                  "among the 40: a bootstrap of so few mostly redraws the same "
                                  "stays)."]  # fmt: skip
    y[off[10] : off[10] + 3] = 1  # a fifth
    iv = early_warning_intervals(y, s, off, 0.5, n_resamples=100)
    assert "note" not in iv and iv["n_resamples"] == 100 and iv["utility"]["low"] is not None
