"""Distribution drift between the data a model was fitted on and the data it now scores.

A deployed model meets patients from other wards, hospitals and years. When a hospital
measures lactate only on suspicion, records temperature in Fahrenheit or charts vitals every
four hours instead of every hour, the inputs shift and the model's calibration and alarm
burden shift with them, often silently. The population stability index (PSI) is the usual
single number for such a shift (Siddiqi, *Credit Risk Scorecards*, Wiley 2006, ch. 8;
Yurdakul, "Statistical properties of population stability index", Western Michigan
University dissertation, 2018): with the reference's fractions ``p`` and the new data's
``q`` over the same bins,

    PSI = sum_b (q_b - p_b) * ln(q_b / p_b),

the symmetric Kullback-Leibler divergence of the two histograms. The customary reading:
below 0.1 no real change, 0.1-0.25 a moderate shift worth a look, above 0.25 a major one.
Because a rarely measured lab carries little mass, a change in how often a column is
measured is judged on its own as well (:func:`measured_ratio_level`).

Here every histogram has two buckets besides the value bins: *missing* (not measured) and
*refused* (a value outside the plausibility limits, treated as missing by the model). A
lab that is no longer measured, or a sign recorded in other units (so that the limits refuse
it), moves mass into those buckets and shows up in the same number as a change of values.
The value bins are the reference's deciles, so the reference's own value mass is spread
evenly; a column the reference never measured has one value bin, empty there, so that its
being measured now counts as a shift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "PSI_MAJOR",
    "PSI_MODERATE",
    "drift_level",
    "histogram_on",
    "measured_ratio",
    "measured_ratio_level",
    "psi",
    "psi_present",
    "reference_histogram",
    "worst_level",
]

#: PSI at or above which a shift is called moderate, and major (Siddiqi 2006).
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
#: Factors by which the share of hours with a value may change before a column's
#: measurement is called moderately, and majorly, shifted (both ways).
MEASURED_RATIO_MODERATE = 1.5
MEASURED_RATIO_MAJOR = 2.0
#: Relative slack within which a change of the share measured meets a factor above, so
#: that a change by exactly the factor does (20 % of hours to 30 %: 0.3 / 0.2 is
#: 1.4999999999999998 in floating point, and 0.2 / 0.3 falls short of 1 / 1.5 the same way).
_RATIO_RTOL = 1e-9
#: Values the new data would hold at the reference's rate below which a change of the
#: share measured is not judged.
MIN_EXPECTED_MEASURED = 20
#: Values on each side below which a PSI is not judged: for independent samples the PSI of
#: two draws from one distribution is about (B - 1)(1/n + 1/m) over B buckets (it is
#: asymptotically chi-square; Yurdakul 2018), 0.04 for 11 buckets and 500 values a side,
#: and the hours of one stay are not independent.
MIN_VALUES_FOR_PSI = 500
#: Fractions are floored at this before the logarithm, so an empty bucket on one side gives
#: a large but finite index (the convention of most PSI implementations).
_PSI_FLOOR = 1e-4


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.float64).ravel()
    return v[np.isfinite(v)]


def reference_histogram(values: np.ndarray, n_refused: int = 0, n_bins: int = 10) -> dict[str, Any]:
    """The reference distribution of one column: its decile edges and fractions.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n,)`` the column's values, NaN where missing (refused values already NaN).
    n_refused : int
        How many of the NaN were values refused by the plausibility limits.
    n_bins : int
        Value bins at most (quantiles of the measured values; ties merge bins, so a binary
        column has two).

    Returns
    -------
    dict
        ``edges`` (the cut points, ascending: just below the least value, the least
        value, the quantiles, the largest value), ``fractions`` (``[missing, refused, below the range, bin_1,
        ..., above the range]``, summing to 1), ``measured`` and ``refused`` (fractions of
        ``n``), ``median`` (of the measured values; None if none) and ``n``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    v = _finite(values)
    if v.size:
        # edges at measured values: the least (a bin of its own, so a column that is
        # 1 in 99 % of the reference keeps its 0s apart), the quantiles, the largest;
        # every bin between holds some of the reference. One bin below the least value
        # and one above the largest, empty in the reference, count values outside its
        # range (a gain error; a 0 where the reference was all 1).
        k = np.arange(1, n_bins)
        srt = np.sort(v)  # the k/n_bins quantiles, in whole-number arithmetic (inverse CDF)
        qs = srt[(k * v.size + n_bins - 1) // n_bins - 1]
        edges = np.unique(np.r_[np.nextafter(srt[0], -np.inf), srt[0], qs, srt[-1]])
    else:
        edges = np.zeros(0)
    return histogram_on(edges, values, n_refused)


def histogram_on(edges: Any, values: np.ndarray, n_refused: int = 0) -> dict[str, Any]:
    """One column's distribution over given ``edges`` (those of its reference).

    Bin ``k`` holds the values in ``(edges[k-1], edges[k]]``: a value equal to an edge falls
    in the bin below it. Returns the same keys as :func:`reference_histogram`.
    """
    e = np.asarray(edges, np.float64)
    raw = np.asarray(values, np.float64).ravel()
    n = int(raw.size)
    if n_refused < 0:
        raise ValueError(f"n_refused must be >= 0, got {n_refused}")
    v = raw[np.isfinite(raw)]
    n_missing = n - v.size
    if n_refused > n_missing:
        raise ValueError(
            f"{n_refused} values said refused, but only {n_missing} of {n} are missing"
        )
    counts = np.bincount(np.searchsorted(e, v, side="left"), minlength=e.size + 1)
    total = max(n, 1)
    fractions = np.r_[n_missing - n_refused, n_refused, counts] / total
    return {
        "edges": [float(x) for x in e],
        "fractions": [float(x) for x in fractions],
        "measured": float(v.size / total),
        "refused": float(n_refused / total),
        "median": float(np.median(v)) if v.size else None,
        "n": n,
    }


def psi(
    reference: Mapping[str, Any] | np.ndarray, current: Mapping[str, Any] | np.ndarray
) -> float:
    """Population stability index of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current : mapping or numpy.ndarray
        Histograms from :func:`reference_histogram` / :func:`histogram_on` on the same
        edges, or their ``fractions`` arrays.

    Returns
    -------
    float
        >= 0; 0 for identical fractions. NaN when either side is empty (``n`` 0).
    """
    p, q = (
        np.asarray(h["fractions"] if isinstance(h, Mapping) else h, np.float64)
        for h in (reference, current)
    )
    if p.shape != q.shape:
        raise ValueError(
            f"histograms over different bins ({p.size} against {q.size} fractions): bin the "
            "new data on the reference's edges (histogram_on)"
        )
    for h in (reference, current):
        if isinstance(h, Mapping) and int(h.get("n", 1)) == 0:
            return math.nan
    p = np.maximum(p, _PSI_FLOOR)
    q = np.maximum(q, _PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_present(reference: Mapping[str, Any], current: Mapping[str, Any]) -> float:
    """:func:`psi` of the values that are there (measured or refused), the missing bucket
    left out: a change of values or units, whatever the share measured. NaN when either
    side has no value at all."""
    p, q = (np.asarray(h["fractions"], np.float64) for h in (reference, current))
    if p.shape != q.shape:
        return psi(p, q)  # the same error
    if p[1:].sum() <= 0 or q[1:].sum() <= 0:
        return math.nan
    return psi(p[1:] / p[1:].sum(), q[1:] / q[1:].sum())


def measured_ratio(reference: Mapping[str, Any], current: Mapping[str, Any]) -> float:
    """Share of rows with a value (measured or refused) now, over the reference's; inf for
    a column the reference never had, NaN for one neither has."""
    a = float(reference["measured"]) + float(reference["refused"])
    b = float(current["measured"]) + float(current["refused"])
    if a == 0:
        return math.inf if b > 0 else math.nan
    return b / a


def measured_ratio_level(ratio: float, expected_now: float, present_now: float = math.inf) -> str:
    """How far the share measured moved: ``"major"`` when it halved or doubled (or a
    column appeared with at least :data:`MIN_EXPECTED_MEASURED` values, ``present_now``),
    ``"moderate"`` at a factor 1.5 or more either way, else ``"stable"`` (the factors
    inclusive, up to a relative 1e-9 of floating-point rounding); ``"unknown"`` when the new data
    would hold fewer than :data:`MIN_EXPECTED_MEASURED` values at the reference's rate, a
    column appeared with fewer (too few to tell: one stray EtCO2 among 23,000 hours made
    a major shift), or neither side has any.

    A lab that stops being ordered carries little mass, so the PSI of the whole column
    moves little (lactate, measured in 3.5 % of set-A hours, gave 0.12, a moderate shift,
    when it vanished from 2,000 patients' stays), while the model reads that missingness
    as information.
    """
    if math.isinf(ratio):
        return "major" if present_now >= MIN_EXPECTED_MEASURED else "unknown"
    if not math.isfinite(ratio) or expected_now < MIN_EXPECTED_MEASURED:
        return "unknown"
    # in logs, so that a factor either way is one limit; the slack is relative in the ratio
    change = abs(math.log(max(ratio, 1e-12))) + _RATIO_RTOL
    if change >= math.log(MEASURED_RATIO_MAJOR):
        return "major"
    if change >= math.log(MEASURED_RATIO_MODERATE):
        return "moderate"
    return "stable"


def worst_level(*levels: str) -> str:
    """The most severe of drift levels (``unknown`` counts as nothing found)."""
    order = ("unknown", "stable", "moderate", "major")
    return max(levels, key=order.index, default="unknown")


def drift_level(value: float) -> str:
    """``"stable"`` (PSI < 0.1), ``"moderate"`` (< 0.25), ``"major"``, or ``"unknown"``
    (NaN: nothing to compare)."""
    if not math.isfinite(value):
        return "unknown"
    if value >= PSI_MAJOR:
        return "major"
    if value >= PSI_MODERATE:
        return "moderate"
    return "stable"
