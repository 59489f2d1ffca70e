"""Patient-bootstrap intervals of an early-warning model's normalized utility, hourly AUROC
and hourly AUPRC (:mod:`vitalgru.metrics.bootstrap`: whole patients resampled).

Hours of one stay are not independent draws, so a claim about new patients needs the
patients, not the hours, resampled. Each resample is a vector of how many times each
patient was drawn:

* the normalized utility is a ratio of sums over patients, ``(sum observed - sum
  inaction) / (sum best - sum inaction)``; each patient's three parts are computed once
  (:func:`patient_utility_parts`) and every resample is one matrix product
  (:func:`~vitalgru.metrics.bootstrap.bootstrap_ratio`);
* hourly AUROC and AUPRC weigh each hour by its patient's count: the hours are sorted by
  score once, and each resample takes weighted cumulative sums of positives and negatives
  at the ends of the tied scores (:func:`weighted_ranking`), which equals the measure on
  the resample's hours written out (a patient drawn twice, twice).

The alarm threshold stays the one chosen on the model's training data: the intervals are
conditional on it (its own variability is not in them). Resamples are drawn in chunks, so
memory stays bounded (a chunk of counts and a few arrays of one value per hour).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vitalgru.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_ratio,
    cluster_counts,
    percentile_interval,
)
from vitalgru.metrics.utility import (
    OFFICIAL,
    UtilityParams,
    best_predictions,
    binary_predictions,
    checked_labels,
    checked_offsets,
    row_utilities,
)

__all__ = [
    "INTERVAL_MEASURES", "METHOD", "MIN_SEPTIC_FOR_INTERVAL", "THRESHOLD_NOTE",
    "bootstrap_early_warning",
    "early_warning_intervals",
    "interval_cell", "interval_lines", "patient_utility_parts", "weighted_ranking",
]  # fmt: skip

#: The measures given an interval, as the metrics name them.
INTERVAL_MEASURES: tuple[str, ...] = ("utility", "auroc", "auprc")

#: How the intervals are made, as the JSON and the report say it.
METHOD = (
    "patient (cluster) bootstrap: whole patients resampled with replacement, every measure "
    "recomputed on each resample; percentile interval"
)

#: What the fixed threshold means for the intervals.
THRESHOLD_NOTE = (
    "the alarm threshold is held fixed at the one chosen on the model's training data: the "
    "intervals are conditional on it and leave out its own variability"
)

#: Septic patients a cohort needs for its intervals: a percentile bootstrap of one to four
#: of them mostly redraws the same few stays (resamples without one are undefined and left
#: out), and came out narrow where it should be widest (0.497-0.520 for a group of 3
#: patients with 1 septic).
MIN_SEPTIC_FOR_INTERVAL = 5

#: Resamples per chunk: a chunk's counts take ``chunk * n_patients * 8`` bytes
#: (40 MB for 250 resamples of 20,000 patients).
CHUNK = 250


def patient_utility_parts(
    labels: np.ndarray,
    predictions: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each patient's observed, inaction and best utility
    (:func:`vitalgru.metrics.utility.row_utilities` and
    :func:`~vitalgru.metrics.utility.best_predictions` summed over the patient's rows).

    The normalized utility of any multiset of patients is ``(sum observed - sum inaction)
    / (sum best - sum inaction)`` over it.

    Returns
    -------
    observed, inaction, best : numpy.ndarray
        ``(n_patients,)`` float64 each.
    """
    y = checked_labels(labels)
    pred = binary_predictions(predictions, y.size)
    off = checked_offsets(offsets, y.size)
    lengths = np.diff(off)
    pat = np.repeat(np.arange(lengths.size), lengths)
    u_pos, u_neg = row_utilities(y, off, params)
    best = best_predictions(y, off, params)

    def per_patient(v: np.ndarray) -> np.ndarray:
        return np.bincount(pat, weights=v, minlength=lengths.size)

    return (
        per_patient(np.where(pred, u_pos, u_neg)),
        per_patient(u_neg),
        per_patient(np.where(best, u_pos, u_neg)),
    )


class _SortedHours:
    """Hours sorted by score once (descending), and where each positive hour's tied scores
    begin and end: every resample then needs one pass over the hours (a gather and a
    cumulative sum of their weights) and the rest over the positive hours only."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, patient: np.ndarray) -> None:
        y = checked_labels(labels)
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"scores must have shape {y.shape} like labels, got {s.shape}")
        if np.isnan(s).any():
            raise ValueError("scores contain NaN")
        order = np.argsort(-s, kind="stable")
        s_sorted = s[order]
        positive = y[order]
        self.patient = np.asarray(patient, dtype=np.intp)[order]
        pos = np.flatnonzero(positive)
        self.pos_patient = self.patient[pos]
        # each positive hour's group of tied scores: its last row, and the row before its first
        last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
        group = np.searchsorted(last, pos)
        self.end = last[group]
        self.before = np.where(group > 0, last[np.maximum(group - 1, 0)], -1)
        # positive hours up to (and including) those rows
        n_pos_upto = np.cumsum(positive)
        self.pos_end = n_pos_upto[self.end] - 1
        self.pos_before = np.where(self.before >= 0, n_pos_upto[np.maximum(self.before, 0)], 0) - 1

    def measures(self, patient_weights: np.ndarray) -> tuple[float, float]:
        """AUROC and AUPRC with each hour weighted by its patient's weight."""
        c = np.asarray(patient_weights, dtype=np.float64)
        if self.pos_patient.size == 0:
            return float("nan"), float("nan")
        cum_w = np.cumsum(c[self.patient])  # weight of the hours scored at or above each row
        cum_pos = np.cumsum(c[self.pos_patient])
        w_pos = c[self.pos_patient]
        n_pos = cum_pos[-1]
        n_neg = cum_w[-1] - n_pos
        if n_pos <= 0:
            return float("nan"), float("nan")
        all_end = cum_w[self.end]
        tp_end = cum_pos[self.pos_end]
        neg_end = all_end - tp_end
        neg_before = np.where(
            self.before >= 0,
            cum_w[np.maximum(self.before, 0)] - np.where(self.pos_before >= 0,
                                                         cum_pos[np.maximum(self.pos_before, 0)],
                                                         0.0),
            0.0,
        )  # fmt: skip
        # a positive hour beats every negative hour scored below it and half those tied
        auroc = (
            float((w_pos * (n_neg - 0.5 * (neg_end + neg_before))).sum() / (n_pos * n_neg))
            if n_neg > 0
            else float("nan")
        )
        # average precision: each positive hour adds its weight times the precision at the
        # end of its tied scores (all_end > 0 wherever w_pos > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(all_end > 0, tp_end / np.where(all_end > 0, all_end, 1.0), 0.0)
        return auroc, float((w_pos * precision).sum() / n_pos)


def weighted_ranking(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """Hourly AUROC (mid-ranks for ties) and AUPRC (average precision, as
    :mod:`vitalgru.metrics.ranking` defines them) with each hour counted ``weights`` times.

    With integer weights these equal :func:`~vitalgru.metrics.ranking.auroc` and
    :func:`~vitalgru.metrics.ranking.auprc` of the hours written out that many times;
    NaN where a class has no weight.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != np.shape(labels):
        raise ValueError(f"weights must have shape {np.shape(labels)}, got {w.shape}")
    if (w < 0).any():
        raise ValueError("weights must not be negative")
    return _SortedHours(labels, scores, np.arange(w.size)).measures(w)


def early_warning_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
    params: UtilityParams = OFFICIAL,
    ranking: bool = True,
    chunk: int = CHUNK,
    min_septic: int = MIN_SEPTIC_FOR_INTERVAL,
) -> dict[str, Any]:
    """Patient-bootstrap percentile intervals of the normalized utility (alarm where
    ``score >= threshold``) and, with ``ranking``, of hourly AUROC and AUPRC.

    Parameters
    ----------
    labels, scores, offsets
        ``(n_rows,)`` SepsisLabel and hourly risks, ``(n_patients + 1,)`` row offsets.
    threshold : float
        The alarm threshold chosen on training data, held fixed.
    n_resamples, seed, level
        Resamples, the seed of their draws, the coverage.
    ranking : bool
        Also AUROC and AUPRC (a pass over the hours per resample; the utility alone is a
        matrix product per chunk).
    chunk : int
        Resamples drawn at once (memory: ``chunk * n_patients`` counts).
    min_septic : int
        Fewest septic patients to give intervals for: with fewer, every interval is None,
        ``n_resamples`` 0 and ``note`` says why (:data:`MIN_SEPTIC_FOR_INTERVAL`).

    Returns
    -------
    dict
        ``method``, ``level``, ``n_patients``, ``n_resamples``, ``seed``, ``threshold``,
        ``threshold_note``, and per measure (``utility``, ``auroc``, ``auprc``)
        ``{"estimate", "low", "high", "n_defined"}``: the measure on all patients, the
        interval (None where the measure is undefined on more than half the resamples,
        e.g. without a septic patient) and the resamples where it was defined.
    """
    s = np.asarray(scores, dtype=np.float64)
    out = bootstrap_early_warning(
        labels, s, s >= threshold, offsets, n_resamples=n_resamples, seed=seed, level=level,
        params=params, ranking=ranking, chunk=chunk, min_septic=min_septic,
    )  # fmt: skip
    out["threshold"] = float(threshold)
    out["threshold_note"] = THRESHOLD_NOTE
    return out


def bootstrap_early_warning(
    labels: np.ndarray,
    scores: np.ndarray,
    predictions: np.ndarray,
    offsets: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
    params: UtilityParams = OFFICIAL,
    ranking: bool = True,
    chunk: int = CHUNK,
    min_septic: int = MIN_SEPTIC_FOR_INTERVAL,
) -> dict[str, Any]:
    """:func:`early_warning_intervals` of given binary ``predictions`` (the alarms, however
    thresholded: pooled cross-validation folds each have their own threshold); no
    ``threshold`` key."""
    y = checked_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"scores must have shape {y.shape} like labels, got {s.shape}")
    off = checked_offsets(offsets, y.size)
    n_pat = off.size - 1
    b, step = int(n_resamples), max(1, int(chunk))
    if b < 1:
        raise ValueError(f"a bootstrap needs at least one resample, got {n_resamples}")
    observed, inaction, best = patient_utility_parts(y, predictions, off, params)
    gain, room = observed - inaction, best - inaction
    hours = _SortedHours(y, s, np.repeat(np.arange(n_pat), np.diff(off))) if ranking else None
    measures = INTERVAL_MEASURES if ranking else INTERVAL_MEASURES[:1]
    few = _septic_patients(y, off) < min_septic  # the estimates alone
    b = 0 if few else b
    reps = {m: np.full(b, np.nan) for m in measures}
    estimate = {"utility": float(bootstrap_ratio(np.ones((1, n_pat)), gain, room)[0])}
    if hours is not None:
        estimate["auroc"], estimate["auprc"] = hours.measures(np.ones(n_pat))
    if n_pat and b:
        rng = np.random.default_rng(seed)
        for start in range(0, b, step):
            counts = cluster_counts(n_pat, min(step, b - start), rng)
            rows = slice(start, start + counts.shape[0])
            reps["utility"][rows] = bootstrap_ratio(counts, gain, room)
            if hours is not None:
                got = np.array([hours.measures(c) for c in counts]).reshape(-1, 2)
                reps["auroc"][rows], reps["auprc"][rows] = got[:, 0], got[:, 1]
    out: dict[str, Any] = {
        "method": METHOD,
        "level": float(level),
        "n_patients": int(n_pat),
        "n_resamples": b,
        "seed": int(seed),
    }
    if few:
        out["note"] = f"fewer than {min_septic} septic patients"
    for m in measures:
        ends = percentile_interval(reps[m], level) if b else None
        out[m] = {
            "estimate": estimate[m] if np.isfinite(estimate[m]) else None,
            "low": None if ends is None else ends[0],
            "high": None if ends is None else ends[1],
            "n_defined": int(np.isfinite(reps[m]).sum()),
        }
    return out


def _septic_patients(y: np.ndarray, offsets: np.ndarray) -> int:
    """Patients with a SepsisLabel of 1 in some hour."""
    lengths = np.diff(offsets)
    pat = np.repeat(np.arange(lengths.size), lengths)
    return int(np.count_nonzero(np.bincount(pat, weights=y, minlength=lengths.size) > 0))


def interval_cell(intervals: Any, measure: str, digits: int = 3) -> str:
    """`` [low, high]`` of a measure's interval for a report's cell ('' where none)."""
    iv = (intervals or {}).get(measure) or {}
    if iv.get("low") is None or iv.get("high") is None:
        return ""
    return f" [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def interval_lines(intervals: Any) -> list[str]:
    """The report's sentence on what the bracketed intervals are (none where none)."""
    if not intervals:
        return []
    if intervals.get("note"):
        return ["", f"No patient-bootstrap interval ({intervals['note']} among the "
                f"{intervals['n_patients']}: a bootstrap of so few mostly redraws the same "
                "stays)."]  # fmt: skip
    undefined = [m for m in INTERVAL_MEASURES if m in intervals and not interval_cell(intervals, m)]
    return [
        "",
        f"In brackets: {100 * intervals['level']:.0f} % intervals by patient bootstrap "
        f"({intervals['n_resamples']} resamples of the {intervals['n_patients']} patients, "
        f"whole stays drawn with replacement; seed {intervals['seed']}): how far the measure "
        f"could move on other patients like these. {THRESHOLD_NOTE[0].upper()}"
        f"{THRESHOLD_NOTE[1:]}."
        + (f" No interval for {', '.join(undefined)}: undefined on most resamples."
           if undefined else ""),
    ]  # fmt: skip
