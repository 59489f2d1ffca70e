"""Paired patient bootstrap of two early-warning models' utility, against the challenge
utility of each resample's patients written out."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.metrics.bootstrap import cluster_counts, percentile_interval
from vitalgru.metrics.paired_utility import paired_utility_difference
from vitalgru.metrics.utility import normalized_utility


def _cohort(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` stays of 8-40 hours, about a third septic (the label on for the last 6-14 h)."""
    lengths = rng.integers(8, 41, n)
    labels = []
    for length in lengths:
        y = np.zeros(length, np.int8)
        if rng.random() < 0.35:
            y[length - rng.integers(6, min(15, length)) :] = 1
        labels.append(y)
    return np.concatenate(labels), np.r_[0, np.cumsum(lengths)].astype(np.int64)


def _rows(counts: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = [np.arange(offsets[p], offsets[p + 1]) for p in range(counts.size)
           for _ in range(counts[p])]  # fmt: skip
    return np.concatenate(idx), np.r_[0, np.cumsum([i.size for i in idx])].astype(np.int64)


def test_the_interval_is_that_of_the_written_out_resamples() -> None:
    rng = np.random.default_rng(7)
    labels, off = _cohort(rng, 30)
    a = rng.random(labels.size) < np.where(labels == 1, 0.7, 0.15)
    b = rng.random(labels.size) < np.where(labels == 1, 0.5, 0.15)
    got = paired_utility_difference(labels, a, b, off, n_resamples=300, seed=11)

    # the same draws (300 in chunks of 250 from one generator), each resample's patients
    # written out row by row and scored with the challenge utility, model by model
    g = np.random.default_rng(11)
    counts = np.concatenate([cluster_counts(30, 250, g), cluster_counts(30, 50, g)])
    reps = []
    for c in counts:
        rows, o = _rows(c, off)
        reps.append(normalized_utility(labels[rows], a[rows], o)
                    - normalized_utility(labels[rows], b[rows], o))  # fmt: skip
    reps_arr = np.array(reps)
    whole = normalized_utility(labels, a, off) - normalized_utility(labels, b, off)
    assert got.difference == pytest.approx(whole, abs=1e-12)
    assert (got.low, got.high) == pytest.approx(percentile_interval(reps_arr), abs=1e-12)
    assert got.share_better == pytest.approx(float(np.mean(reps_arr > 0)))
    assert (got.n_records, got.n_resamples, got.level) == (30, 300, 0.95)


def test_a_model_against_itself_differs_by_nothing_and_swapping_mirrors() -> None:
    rng = np.random.default_rng(3)
    labels, off = _cohort(rng, 20)
    a = rng.random(labels.size) < 0.3
    b = rng.random(labels.size) < 0.2
    same = paired_utility_difference(labels, a, a, off, n_resamples=200)
    assert (same.difference, same.low, same.high, same.share_better) == (0.0, 0.0, 0.0, 0.0)
    assert same.within_noise
    ab = paired_utility_difference(labels, a, b, off, n_resamples=200)
    ba = paired_utility_difference(labels, b, a, off, n_resamples=200)
    assert ba.difference == pytest.approx(-ab.difference)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low))


def test_no_septic_patient_has_no_difference_to_give() -> None:
    labels, off = np.zeros(20, np.int8), np.array([0, 10, 20])
    got = paired_utility_difference(labels, np.ones(20), np.zeros(20), off, n_resamples=50)
    # the best a model can do is to stay silent: best == inaction, a ratio over nothing
    assert got.difference is None and got.low is None and got.share_better is None


@pytest.mark.parametrize("n_resamples", [0, -3])
def test_bad_arguments_are_refused(n_resamples: int) -> None:
    labels, off = np.zeros(4, np.int8), np.array([0, 4])
    with pytest.raises(ValueError):
        paired_utility_difference(labels, labels, labels, off, n_resamples=n_resamples)
    with pytest.raises(ValueError):
        paired_utility_difference(labels, labels[:3], labels, off)
