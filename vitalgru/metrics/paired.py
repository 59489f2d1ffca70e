"""Paired record bootstrap: whether one classifier's gain over another, both scored on the
same records, is more than another set of patients would move it.

Two separate intervals overlap widely on MIT-BIH DS2 (22 records, S beats in a few of them)
even where one model is better on nearly every record. Both models were scored on the same
records, so a record that is hard for one is usually hard for the other: resampling the
records once and taking the difference of the two models' F1 on each resample cancels that
shared part (the paired, or matched, bootstrap: Davison and Hinkley, *Bootstrap Methods and
their Application*, 1997, section 3.8 on clustered data; Efron and Tibshirani, *An
Introduction to the Bootstrap*, 1993, chapter 8 on paired data).

F1 of a class is a ratio of sums over records (``2 TP / (2 TP + FP + FN)`` of the summed
confusion matrix), so each resample's F1 is one matrix product of the draw counts with each
record's ``2 TP`` and ``2 TP + FP + FN`` (:func:`~vitalgru.metrics.bootstrap.bootstrap_ratio`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vitalgru.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_ratio,
    cluster_counts,
    percentile_interval,
)

__all__ = ["PairedDifference", "class_f1_parts", "paired_f1_difference", "paired_f1_replicates"]


@dataclass(frozen=True)
class PairedDifference:
    """One class's F1 of a new model minus an old one's, on the same records.

    Attributes
    ----------
    difference : float or None
        New minus old on all the records (F1 of the summed confusion matrices); None where
        either F1 is undefined (no beat of the class, none called).
    low, high : float or None
        Ends of the paired record-bootstrap percentile interval of the difference; None
        where the difference is undefined on most resamples.
    share_better : float or None
        Share of the resamples (where both F1s are defined) on which the new model's F1 is
        strictly higher; None with no interval.
    n_records, n_resamples : int
        Records resampled, and resamples drawn.
    level : float
        Coverage of the interval.
    """

    difference: float | None
    low: float | None
    high: float | None
    share_better: float | None
    n_records: int
    n_resamples: int
    level: float

    @classmethod
    def from_replicates(
        cls, replicates: np.ndarray, difference: float, n_clusters: int, level: float
    ) -> PairedDifference:
        """The difference on all clusters (NaN: undefined) and its resamples' differences
        (NaN where undefined) as one :class:`PairedDifference`."""
        interval = percentile_interval(replicates, level)
        defined = replicates[np.isfinite(replicates)]
        return cls(
            difference=float(difference) if np.isfinite(difference) else None,
            low=None if interval is None else interval[0],
            high=None if interval is None else interval[1],
            share_better=None if interval is None else float(np.mean(defined > 0)),
            n_records=int(n_clusters),
            n_resamples=int(replicates.size),
            level=float(level),
        )

    @property
    def within_noise(self) -> bool | None:
        """Whether the interval holds 0 (no difference); None with no interval."""
        if self.low is None or self.high is None:
            return None
        return self.low <= 0.0 <= self.high


def _matrices(cms: Any, what: str) -> np.ndarray:
    m = np.asarray(cms, dtype=np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2] or m.shape[0] < 1:
        raise ValueError(
            f"{what} must be one square confusion matrix per record, shape (n_records, k, "
            f"k) with n_records >= 1, got {m.shape}"
        )
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError(f"{what} must hold counts (finite, not negative)")
    return m


def class_f1_parts(cms: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each record's ``2 TP`` and ``2 TP + FP + FN`` for every class.

    Parameters
    ----------
    cms : array-like, shape (n_records, k, k)
        Confusion matrices, ``cms[r, i, j]`` the beats of record r of true class i called j.

    Returns
    -------
    numerator, denominator : numpy.ndarray of float64, shape (n_records, k)
        Summed over any records, ``numerator / denominator`` is the class's F1 there.
    """
    m = _matrices(cms, "cms")
    tp = np.diagonal(m, axis1=1, axis2=2)
    # row sums: beats of the class (TP + FN); column sums: calls of the class (TP + FP)
    return 2.0 * tp, m.sum(axis=2) + m.sum(axis=1)


def paired_f1_replicates(counts: Any, new_cms: Any, old_cms: Any) -> np.ndarray:
    """Each class's F1 of ``new_cms`` minus that of ``old_cms`` on each resample of records.

    Parameters
    ----------
    counts : array-like of int, shape (n_resamples, n_records)
        How often each record is drawn in each resample
        (:func:`~vitalgru.metrics.bootstrap.cluster_counts`).
    new_cms, old_cms : array-like, shape (n_records, k, k)
        The two models' confusion matrices, record by record in the same order.

    Returns
    -------
    numpy.ndarray of float64, shape (n_resamples, k)
        NaN where either F1 is undefined on a resample.

    Raises
    ------
    ValueError
        Matrices not of one shape, or counts not one column per record.
    """
    new, old = _matrices(new_cms, "new_cms"), _matrices(old_cms, "old_cms")
    if new.shape != old.shape:
        raise ValueError(
            f"the two models must be scored on the same records and classes: shapes "
            f"{new.shape} and {old.shape}"
        )
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != new.shape[0]:
        raise ValueError(
            f"counts must be (n_resamples, {new.shape[0]}), one column per record; got {c.shape}"
        )
    return bootstrap_ratio(c, *class_f1_parts(new)) - bootstrap_ratio(c, *class_f1_parts(old))


def paired_f1_difference(
    new_cms: Any,
    old_cms: Any,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
    level: float = 0.95,
) -> list[PairedDifference]:
    """Paired record-bootstrap comparison of two classifiers' per-class F1.

    Records are resampled with replacement, once for both models; each resample's F1
    difference (new minus old) is taken on the same drawn records.

    Parameters
    ----------
    new_cms, old_cms : array-like, shape (n_records, k, k)
        Confusion matrices of the new and the old model, record by record in the same
        order (rows the reference class, columns the call).
    n_resamples : int
        Bootstrap resamples.
    seed : int, numpy Generator or None
        The same seed gives the same interval.
    level : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    list of PairedDifference
        One per class, in the matrices' class order.

    Raises
    ------
    ValueError
        Matrices of different shapes or not counts, no record, a bad ``level`` or
        ``n_resamples``.
    """
    new, old = _matrices(new_cms, "new_cms"), _matrices(old_cms, "old_cms")
    counts = cluster_counts(new.shape[0], n_resamples, seed)
    reps = paired_f1_replicates(counts, new, old)
    whole = paired_f1_replicates(np.ones((1, new.shape[0]), np.int64), new, old)[0]
    return [
        PairedDifference.from_replicates(reps[:, k], whole[k], new.shape[0], level)
        for k in range(new.shape[1])
    ]
