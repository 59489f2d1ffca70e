"""Paired patient bootstrap of two early-warning models' normalized utility, both scored on
the same patients: whether one's gain over the other is more than another set of patients
from the same hospital would move it.

The challenge's normalized utility of a multiset of patients is ``(sum observed - sum
inaction) / (sum best - sum inaction)`` over it (:func:`~vitalgru.metrics.
early_warning_intervals.patient_utility_parts`). Inaction and best depend on the labels
only, so on each resample the two models share the denominator and their difference is
``sum (observed_a - observed_b) / (sum best - sum inaction)``: one matrix product per
resample, with the patients drawn once for both (the paired bootstrap of
:mod:`vitalgru.metrics.paired`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vitalgru.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_ratio,
    cluster_counts,
)
from vitalgru.metrics.early_warning_intervals import CHUNK, patient_utility_parts
from vitalgru.metrics.paired import PairedDifference

__all__ = ["paired_utility_difference"]


def paired_utility_difference(
    labels: Any,
    alarms_a: Any,
    alarms_b: Any,
    offsets: Any,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
    level: float = 0.95,
) -> PairedDifference:
    """Normalized utility of model a's alarms minus model b's, with its paired
    patient-bootstrap interval.

    Parameters
    ----------
    labels : array-like of 0/1, shape (n_hours,)
        SepsisLabel of every hour, patients one after another.
    alarms_a, alarms_b : array-like of bool or 0/1, shape (n_hours,)
        Each model's alarm at each hour (its risk at or above its threshold).
    offsets : array-like of int, shape (n_patients + 1,)
        Where each patient's hours begin, and the end.
    n_resamples, seed, level
        As :func:`vitalgru.metrics.paired.paired_f1_difference`.

    Returns
    -------
    PairedDifference
        ``difference`` a minus b on all the patients; ``share_better`` the share of the
        resamples on which a's utility is strictly higher; ``n_records`` the patients.

    Raises
    ------
    ValueError
        Labels, alarms and offsets that do not fit together (as
        :func:`~vitalgru.metrics.early_warning_intervals.patient_utility_parts` says), or a
        bad ``n_resamples`` or ``level``.
    """
    obs_a, inaction, best = patient_utility_parts(labels, alarms_a, offsets)
    obs_b, _, _ = patient_utility_parts(labels, alarms_b, offsets)
    num, den = obs_a - obs_b, best - inaction
    n, b = obs_a.size, int(n_resamples)
    if b < 1:
        raise ValueError(f"a bootstrap needs at least one resample, got {n_resamples}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    reps = np.concatenate([
        bootstrap_ratio(cluster_counts(n, min(CHUNK, b - i), rng), num, den)
        for i in range(0, b, CHUNK)
    ])  # fmt: skip
    total = float(den.sum())
    diff = float(num.sum()) / total if total != 0 else float("nan")
    return PairedDifference.from_replicates(reps, diff, n, level)
