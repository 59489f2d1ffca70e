"""The PhysioNet/CinC Challenge 2019 normalized utility, and the alarm threshold that maximises
it (numpy only); the other measures of hourly risks are :mod:`vitalgru.metrics.early_warning`'s.

Follows the semantics of the challenge's official ``evaluate_sepsis_score.py``
(``compute_prediction_utility``; Reyna et al., Crit Care Med 48(2):210-217, 2020):

* a septic patient's onset is ``t_sepsis = (first row with label 1) - dt_optimal``, i.e. six
  rows after the label turns 1 (rows are 0-based positions in the patient's table);
* a positive prediction at row ``t <= t_sepsis + dt_late`` earns
  ``max(m1 (t - t_sepsis) + b1, u_fp)`` up to ``t_sepsis + dt_optimal`` (rising from 0 at
  ``t_sepsis + dt_early`` to ``max_u_tp``), then ``m2 (t - t_sepsis) + b2`` (falling back to 0
  at ``t_sepsis + dt_late``); a missed row after ``t_sepsis + dt_optimal`` costs
  ``m3 (t - t_sepsis) + b3`` (down to ``min_u_fn``); rows after ``t_sepsis + dt_late`` count 0;
* a non-septic patient's positive rows cost ``u_fp`` each, negative rows ``u_tn``;
* normalized utility = (observed - inaction) / (best - inaction), summed over patients,
  where inaction predicts 0 everywhere and best predicts 1 exactly on rows
  ``[t_sepsis + dt_early, t_sepsis + dt_late]`` of septic patients.

Many patients are passed back to back: ``labels``/``predictions`` of shape ``(n_rows,)``
and ``offsets`` of shape ``(n_patients + 1,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UtilityParams:
    """Constants of the challenge's utility (official values as defaults)."""

    dt_early: float = -12.0
    dt_optimal: float = -6.0
    dt_late: float = 3.0
    max_u_tp: float = 1.0
    min_u_fn: float = -2.0
    u_fp: float = -0.05
    u_tn: float = 0.0


OFFICIAL = UtilityParams()


def checked_offsets(offsets: np.ndarray, n: int) -> np.ndarray:
    """``offsets`` as int64, checked to delimit patients over ``n`` rows (ValueError)."""
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != n or (np.diff(off) < 0).any():
        raise ValueError(
            f"offsets must be non-decreasing row offsets from 0 to n_rows={n} "
            f"(n_patients + 1 values)"
        )
    return off


def checked_labels(labels: np.ndarray) -> np.ndarray:
    """1-D 0/1 hourly labels as booleans (ValueError otherwise)."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (n_rows,), got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y.astype(bool)


def onset_rows(
    labels: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
    hours: np.ndarray | None = None,
) -> np.ndarray:
    """Per-row ``t - t_sepsis`` (in rows: the Challenge's scorer counts rows as hours; in
    ICU hours when ``hours``, each row's ICULOS, is given, so that a stay that skips hours
    measures lead times in hours).

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` float64 ``t - t_sepsis`` for rows of septic patients, ``+inf`` for
        rows of patients who never have label 1 (their ``t_sepsis`` is infinite).
    """
    y = checked_labels(labels)
    off = checked_offsets(offsets, y.size)
    lengths = np.diff(off)
    pat = np.repeat(np.arange(lengths.size), lengths)
    if hours is None:
        local_t = np.arange(y.size) - np.repeat(off[:-1], lengths)
    else:
        local_t = np.asarray(hours, dtype=np.int64)
        if local_t.shape != y.shape:
            raise ValueError(f"hours must have one entry per row ({y.size}), got {local_t.shape}")
    has = np.zeros(lengths.size, dtype=bool)
    first = np.full(lengths.size, np.iinfo(np.int64).max, dtype=np.int64)
    if y.any():
        pos_rows = np.flatnonzero(y)
        np.minimum.at(first, pat[pos_rows], local_t[pos_rows])
        has[pat[pos_rows]] = True
    t_sepsis = np.where(has, first - params.dt_optimal, np.inf)
    return local_t - t_sepsis[pat]


def row_utilities(
    labels: np.ndarray, offsets: np.ndarray, params: UtilityParams = OFFICIAL
) -> tuple[np.ndarray, np.ndarray]:
    """Utility of predicting 1 and of predicting 0 at every row.

    Returns
    -------
    u_pos, u_neg : numpy.ndarray
        ``(n_rows,)`` float64; the utility of a prediction vector ``p`` is
        ``sum(where(p, u_pos, u_neg))``.
    """
    p = params
    dt = onset_rows(labels, offsets, p)  # t - t_sepsis, +inf for non-septic patients
    septic = np.isfinite(dt)
    m1 = p.max_u_tp / (p.dt_optimal - p.dt_early)
    b1 = -m1 * p.dt_early
    m2 = -p.max_u_tp / (p.dt_late - p.dt_optimal)
    b2 = -m2 * p.dt_late
    m3 = p.min_u_fn / (p.dt_late - p.dt_optimal)
    b3 = -m3 * p.dt_optimal
    d = np.where(septic, dt, 0.0)
    in_window = septic & (d <= p.dt_late)
    early = d <= p.dt_optimal
    u_pos = np.where(early, np.maximum(m1 * d + b1, p.u_fp), m2 * d + b2)
    u_neg = np.where(early, 0.0, m3 * d + b3)
    u_pos = np.where(septic, np.where(in_window, u_pos, 0.0), p.u_fp)
    u_neg = np.where(septic, np.where(in_window, u_neg, 0.0), p.u_tn)
    return u_pos, u_neg


def best_predictions(
    labels: np.ndarray, offsets: np.ndarray, params: UtilityParams = OFFICIAL
) -> np.ndarray:
    """The official "best" predictions: 1 on rows ``[t_sepsis + dt_early, t_sepsis + dt_late]``."""
    dt = onset_rows(labels, offsets, params)
    return np.isfinite(dt) & (dt >= params.dt_early) & (dt <= params.dt_late)


def patient_utility(
    labels: np.ndarray, predictions: np.ndarray, params: UtilityParams = OFFICIAL
) -> float:
    """Unnormalized utility of one patient (``compute_prediction_utility``)."""
    y = np.asarray(labels)
    pred = binary_predictions(predictions, y.size)
    u_pos, u_neg = row_utilities(y, np.array([0, y.size]), params)
    return float(np.where(pred, u_pos, u_neg).sum())


def binary_predictions(predictions: np.ndarray, n: int) -> np.ndarray:
    """``n`` hourly predictions, checked to be 0/1 (or booleans), as booleans (ValueError)."""
    pred = np.asarray(predictions)
    if pred.shape != (n,):
        raise ValueError(f"predictions must have shape ({n},) like labels, got {pred.shape}")
    if not np.isin(pred, (0, 1)).all():
        raise ValueError("predictions must be binary (0/1 or bool); threshold scores first")
    return pred.astype(bool)


def normalized_utility(
    labels: np.ndarray,
    predictions: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
) -> float:
    """The challenge's normalized utility over a cohort.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n_rows,)`` SepsisLabel, 0/1.
    predictions : numpy.ndarray
        ``(n_rows,)`` binary predictions.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets of the patients.

    Returns
    -------
    float
        1 for the best predictions, 0 for predicting 0 everywhere; NaN if the cohort has
        no septic patient (best equals inaction).
    """
    y = checked_labels(labels)
    pred = binary_predictions(predictions, y.size)
    u_pos, u_neg = row_utilities(y, offsets, params)
    best = best_predictions(y, offsets, params)
    observed = np.where(pred, u_pos, u_neg).sum()
    inaction = u_neg.sum()
    optimum = np.where(best, u_pos, u_neg).sum()
    if optimum == inaction:
        return float("nan")
    return float((observed - inaction) / (optimum - inaction))


def utility_threshold_curve(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized utility of ``scores >= threshold`` for every distinct threshold at once.

    Returns
    -------
    thresholds, utility : numpy.ndarray
        ``(k,)`` candidate thresholds (distinct scores, descending, then ``+inf`` for
        "never alarm") and the normalized utility of each.
    """
    y = checked_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"scores must have shape {y.shape} like labels, got {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    u_pos, u_neg = row_utilities(y, offsets, params)
    best = best_predictions(y, offsets, params)
    inaction = u_neg.sum()
    optimum = np.where(best, u_pos, u_neg).sum()
    order = np.argsort(-s, kind="stable")
    gain = np.cumsum((u_pos - u_neg)[order])
    s_sorted = s[order]
    last_of_tie = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    thresholds = np.r_[s_sorted[last_of_tie], np.inf]
    observed = inaction + np.r_[gain[last_of_tie], 0.0]
    denom = optimum - inaction
    util = (observed - inaction) / denom if denom != 0 else np.full(observed.shape, np.nan)
    return thresholds, util


def best_threshold(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
) -> tuple[float, float]:
    """Threshold maximising normalized utility on the given (training) data.

    Returns
    -------
    threshold, utility : float
        Alarm when ``score >= threshold``; the utility reached on these data. Fit it on
        training predictions only, never on the data a result is reported on.
    """
    thr, util = utility_threshold_curve(labels, scores, offsets, params)
    if np.isnan(util).all():
        raise ValueError("no septic patient in these data: the utility is undefined")
    i = int(np.nanargmax(util))
    t = float(thr[i])
    if i + 1 < thr.size and np.isfinite(thr[i + 1]) and np.isfinite(t):
        t = float(0.5 * (thr[i] + thr[i + 1]))  # midway to the next score: robust to ties
    return t, float(util[i])
