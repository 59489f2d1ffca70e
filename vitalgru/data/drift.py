"""How a cohort of ICU stays compares with the one an early-warning model was fitted on.

At training time :func:`early_warning_reference` summarises the training cohort (for every
input column its deciles, the share of patient-hours with a value and the share refused by
the plausibility limits; the length of stay) and the risks the model gave its validation
patients; the summary is stored with the model (``preprocessing["reference"]``). On new
data :func:`early_warning_drift` bins the new cohort and its risks on the reference's edges
and gives each the population stability index (:mod:`vitalgru.metrics.drift`), so a data team
sees *which* inputs moved (a lab no longer measured, a sign in other units, a longer stay)
before, or without, any outcome labels.

All input shares are per patient-hour, as the model sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vitalgru.data.early_warning import EarlyWarningCohort
from vitalgru.io.psv import MEASUREMENT_COLUMNS, STATIC_COLUMNS
from vitalgru.metrics.drift import (
    MIN_VALUES_FOR_PSI,
    drift_level,
    histogram_on,
    measured_ratio,
    measured_ratio_level,
    psi,
    psi_present,
    reference_histogram,
    worst_level,
)
from vitalgru.metrics.utility import alarm_statistics

__all__ = [
    "PROFILE_COLUMNS",
    "REFERENCE_VERSION",
    "early_warning_drift",
    "early_warning_reference",
]

#: Input columns profiled: every measurement and the patient descriptors (the ICU type and
#: sex flags show a change of case mix, e.g. a surgical unit alone).
PROFILE_COLUMNS: tuple[str, ...] = (*MEASUREMENT_COLUMNS, *STATIC_COLUMNS)
#: Bumped when the reference's layout changes, so an old one is recognised.
REFERENCE_VERSION = 1
#: Fewer new patients than this and the drift figures are mostly sampling noise
#: (hours of one stay are not independent); the report says so.
MIN_PATIENTS_FOR_DRIFT = 100


def _columns(cohort: EarlyWarningCohort) -> dict[str, tuple[np.ndarray, int]]:
    f = cohort.frame
    return {
        c: (f[c].to_numpy(np.float64), int(cohort.implausible_counts.get(c, 0)))
        for c in PROFILE_COLUMNS
    }


def early_warning_reference(
    cohort: EarlyWarningCohort,
    risks: np.ndarray,
    risk_offsets: np.ndarray,
    threshold: float,
    n_bins: int = 10,
) -> dict[str, Any]:
    """The reference a model's later inputs and risks are compared with.

    Parameters
    ----------
    cohort : EarlyWarningCohort
        The cohort the model was fitted on (cleaned, as read; its ``implausible_counts``
        are those of this cohort).
    risks : numpy.ndarray
        ``(n_rows,)`` the model's hourly risks on patients it was not fitted on (the
        validation share), so that the reference is what unseen patients get.
    risk_offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets of ``risks``.
    threshold : float
        The model's alarm threshold.
    n_bins : int
        Value bins per column (deciles by default).

    Returns
    -------
    dict
        JSON-serialisable: ``version``, ``n_patients``, ``n_patient_hours``, ``columns``
        (column -> :func:`~vitalgru.metrics.drift.reference_histogram`), ``stay_hours``,
        ``risk`` (histogram of the risks), ``alarm_hour_fraction`` and
        ``alarms_per_patient_day`` (alarm onsets per 24 patient-hours) of the
        validation risks.
    """
    risks = np.asarray(risks, np.float64)
    off = np.asarray(risk_offsets, np.int64)
    if risks.size != int(off[-1]):
        raise ValueError(f"{risks.size} risks for offsets covering {int(off[-1])} rows")
    return {
        "version": REFERENCE_VERSION,
        "n_patients": cohort.n_patients,
        "n_patient_hours": int(cohort.offsets[-1]),
        "columns": {c: reference_histogram(v, r, n_bins) for c, (v, r) in _columns(cohort).items()},
        "stay_hours": reference_histogram(np.diff(cohort.offsets).astype(np.float64), 0, n_bins),
        "risk": reference_histogram(risks, 0, n_bins),
        **_alarm_burden(risks, off, threshold),
    }


def _alarm_burden(risks: np.ndarray, offsets: np.ndarray, threshold: float) -> dict[str, float]:
    """Share of hours in alarm and alarm onsets per patient-day
    (:func:`~vitalgru.metrics.utility.alarm_statistics`; no labels needed)."""
    stats = alarm_statistics(np.zeros(risks.size, np.int8), risks >= threshold, offsets)
    return {k: float(stats[k]) for k in ("alarm_hour_fraction", "alarms_per_patient_day")}


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


_SEVERITY = ("unknown", "stable", "moderate", "major")


def _row(name: str, ref: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """One column's comparison: the PSI of the whole histogram, of the values present, the
    change of the share measured, and the worst level of the three."""
    whole, values = psi(ref, now), psi_present(ref, now)
    ratio = measured_ratio(ref, now)
    share_ref = float(ref["measured"]) + float(ref["refused"])
    present = min(share_ref * int(ref["n"]), (now["measured"] + now["refused"]) * int(now["n"]))
    level = worst_level(
        drift_level(whole)
        if min(int(ref["n"]), int(now["n"])) >= MIN_VALUES_FOR_PSI
        else "unknown",
        drift_level(values) if present >= MIN_VALUES_FOR_PSI else "unknown",
        measured_ratio_level(ratio, share_ref * int(now["n"])),
    )
    return {
        "column": name,
        "level": level,
        "psi": _finite_or_none(whole),
        "psi_values": _finite_or_none(values),
        "measured_ratio": _finite_or_none(ratio),
        "measured_ref": ref["measured"],
        "measured_now": now["measured"],
        "refused_ref": ref["refused"],
        "refused_now": now["refused"],
        "median_ref": ref["median"],
        "median_now": now["median"],
    }


def _severity(row: Mapping[str, Any]) -> tuple[int, float]:
    return _SEVERITY.index(row["level"]), max(row["psi"] or 0.0, row["psi_values"] or 0.0)


def early_warning_drift(
    reference: Mapping[str, Any],
    cohort: EarlyWarningCohort,
    risks: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """Compare a scored cohort with a model's reference.

    Parameters
    ----------
    reference : mapping
        :func:`early_warning_reference` as stored with the model.
    cohort : EarlyWarningCohort
        The new cohort, as read (not regridded), with its own ``implausible_counts``.
    risks : numpy.ndarray
        ``(n_rows,)`` the model's hourly risks on ``cohort``.
    threshold : float
        The model's alarm threshold.

    Returns
    -------
    dict
        ``inputs``: one row per profiled column and ``stay_hours``, the most shifted first:
        ``psi`` (the whole histogram, missing and refused buckets included),
        ``psi_values`` (the values present only), ``measured_ratio`` (share with a value
        now over the reference's), ``level`` (the worst of the three: ``stable``,
        ``moderate``, ``major``), measured / refused shares and medians, reference and
        now (None where undefined); a PSI over fewer than
        :data:`~vitalgru.metrics.drift.MIN_VALUES_FOR_PSI` values a side is reported but
        not judged;
        ``risk``: the same for the risks, with ``alarm_hour_fraction`` and
        ``alarms_per_patient_day`` reference and now; ``n_patients``, ``n_patient_hours``;
        ``major`` and ``moderate``: the names at each level; ``too_few_patients``: fewer
        than :data:`MIN_PATIENTS_FOR_DRIFT`, so the figures are mostly noise.

    Raises
    ------
    ValueError
        ``reference`` is not one this version can read.
    """
    if int(reference.get("version", -1)) != REFERENCE_VERSION or "columns" not in reference:
        raise ValueError(
            f"the model's reference profile has version {reference.get('version')!r}; this "
            f"vitalgru reads version {REFERENCE_VERSION}: retrain the model to compare drift"
        )
    risks = np.asarray(risks, np.float64)
    if risks.size != int(cohort.offsets[-1]):
        raise ValueError(f"{risks.size} risks for a cohort of {int(cohort.offsets[-1])} rows")
    cols = reference["columns"]
    rows = [
        _row(c, cols[c], histogram_on(cols[c]["edges"], v, r))
        for c, (v, r) in _columns(cohort).items()
        if c in cols
    ]
    stay = reference["stay_hours"]
    rows.append(_row("stay_hours", stay, histogram_on(stay["edges"], np.diff(cohort.offsets), 0)))
    rows.sort(key=_severity, reverse=True)
    risk = _row("risk", reference["risk"], histogram_on(reference["risk"]["edges"], risks, 0))
    for k, v in _alarm_burden(risks, cohort.offsets, threshold).items():
        risk[f"{k}_ref"] = float(reference[k])
        risk[f"{k}_now"] = v
    named = [*rows, risk]
    return {
        "n_patients": cohort.n_patients,
        "n_patient_hours": int(cohort.offsets[-1]),
        "reference_n_patients": int(reference["n_patients"]),
        "inputs": rows,
        "risk": risk,
        "major": [r["column"] for r in named if r["level"] == "major"],
        "moderate": [r["column"] for r in named if r["level"] == "moderate"],
        "too_few_patients": cohort.n_patients < MIN_PATIENTS_FOR_DRIFT,
    }
