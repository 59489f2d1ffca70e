"""How new data compares with what a model was fitted on: ICU stays for the early-warning
model, heartbeats for the arrhythmia model.

At training time :func:`early_warning_reference` summarises the training cohort (for every
input column its deciles, the share of patient-hours with a value and the share refused by
the plausibility limits; the length of stay) and the risks the model gave its validation
patients; the summary is stored with the model (``preprocessing["reference"]``). On new
data :func:`early_warning_drift` bins the new cohort and its risks on the reference's edges
and gives each the population stability index (:mod:`vitalgru.metrics.drift`), so a data team
sees *which* inputs moved (a lab no longer measured, a sign in other units, a longer stay)
before, or without, any outcome labels.

All input shares are per patient-hour, as the model sees them. For the arrhythmia model
(:func:`arrhythmia_reference`, :func:`arrhythmia_drift`) the inputs are beats: heart rate,
beat amplitude and the share in clean signal, and the class mix of its calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vitalgru.data.drift_rows import compare_columns, drift_row
from vitalgru.data.early_warning import EarlyWarningCohort
from vitalgru.io.psv import MEASUREMENT_COLUMNS, STATIC_COLUMNS
from vitalgru.metrics.drift import (
    histogram_on,
    reference_histogram,
)
from vitalgru.metrics.early_warning import alarm_statistics

__all__ = [
    "PROFILE_COLUMNS",
    "REFERENCE_VERSION",
    "arrhythmia_drift",
    "arrhythmia_reference",
    "beat_inputs",
    "early_warning_drift",
    "early_warning_reference",
]

#: Input columns profiled: every measurement and the patient descriptors (the ICU type and
#: sex flags show a change of case mix, e.g. a surgical unit alone).
PROFILE_COLUMNS: tuple[str, ...] = (*MEASUREMENT_COLUMNS, *STATIC_COLUMNS)
#: Bumped when the reference's layout changes, so an old one is recognised.
REFERENCE_VERSION = 1
#: Fewer new patients than this and no input, nor the risk, is judged (every level
#: ``unknown``; the figures are still reported): the hours of one stay are not independent,
#: so a few patients' thousand hours are a few samples, not a thousand. Judged hour by hour,
#: batches of 30 of the reference's own stays came out moderate or major in 8 of 10.
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
    (:func:`~vitalgru.metrics.early_warning.alarm_statistics`; no labels needed)."""
    stats = alarm_statistics(np.zeros(risks.size, np.int8), risks >= threshold, offsets)
    return {k: float(stats[k]) for k in ("alarm_hour_fraction", "alarms_per_patient_day")}


def _check_reference(reference: Mapping[str, Any]) -> None:
    if int(reference.get("version", -1)) != REFERENCE_VERSION or "columns" not in reference:
        raise ValueError(
            f"the model's reference profile has version {reference.get('version')!r}; this "
            f"vitalgru reads version {REFERENCE_VERSION}: retrain the model to compare drift"
        )


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
        The new cohort with its own ``implausible_counts``, on the hourly grid the model
        scores (:meth:`EarlyWarningCohort.on_hourly_grid`) as the reference's training
        cohort was: rows as read, with hours skipped, count another thing.
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
        than :data:`MIN_PATIENTS_FOR_DRIFT`, so that nothing is judged (every ``level``
        ``unknown``, the figures reported as measured); ``unjudged_why``: why nothing
        was judged, None when the levels stand.

    Raises
    ------
    ValueError
        ``reference`` is not one this version can read.
    """
    _check_reference(reference)
    risks = np.asarray(risks, np.float64)
    if risks.size != int(cohort.offsets[-1]):
        raise ValueError(f"{risks.size} risks for a cohort of {int(cohort.offsets[-1])} rows")
    current = {**_columns(cohort), "stay_hours": (np.diff(cohort.offsets).astype(float), 0)}
    per_patient = (int(reference["n_patients"]), cohort.n_patients)
    rows = compare_columns(
        {**reference["columns"], "stay_hours": reference["stay_hours"]},
        current,
        {c: per_patient for c in STATIC_COLUMNS},  # one value a stay, in every hour
    )
    risk = drift_row("risk", reference["risk"], histogram_on(reference["risk"]["edges"], risks, 0))
    for k, v in _alarm_burden(risks, cohort.offsets, threshold).items():
        risk[f"{k}_ref"] = float(reference[k])
        risk[f"{k}_now"] = v
    named = [*rows, risk]
    too_few = cohort.n_patients < MIN_PATIENTS_FOR_DRIFT
    unjudged_why = None
    if too_few:
        # the inputs and the risks are hourly, and the hours of one stay move together:
        # the PSI's and the share measured's minimum counts assume independent values
        unjudged_why = (
            f"only {cohort.n_patients} patients (fewer than {MIN_PATIENTS_FOR_DRIFT}): the "
            "hours of one stay are not independent, so their figures are mostly sampling noise"
        )
        for r in named:
            r["level"] = "unknown"
    return {
        "n_patients": cohort.n_patients,
        "n_patient_hours": int(cohort.offsets[-1]),
        "reference_n_patients": int(reference["n_patients"]),
        "inputs": rows,
        "risk": risk,
        "major": [r["column"] for r in named if r["level"] == "major"],
        "moderate": [r["column"] for r in named if r["level"] == "moderate"],
        "too_few_patients": too_few,
        "unjudged_why": unjudged_why,
    }


# --------------------------------------------------------------------------- arrhythmia

#: Edges that give each AAMI class index (0-4: N, S, V, F, Q) a bin of its own.
_CLASS_EDGES = [0.0, 1.0, 2.0, 3.0]
#: Fewer records than this and the beat figures are mostly one patient's rhythm.
MIN_RECORDS_FOR_DRIFT = 5


def beat_inputs(
    windows: np.ndarray,
    sample_idx: np.ndarray,
    record_ids: np.ndarray,
    fs: float,
    signal_ok: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, int]]:
    """What an arrhythmia model's inputs look like, beat by beat.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n_beats, n_samples)`` the filtered beat windows in mV (the model's input).
    sample_idx : numpy.ndarray
        ``(n_beats,)`` R-peak sample of each beat at ``fs``, ascending within a record.
    record_ids : numpy.ndarray
        ``(n_beats,)`` record of each beat (beats of a record contiguous).
    fs : float
        Sampling rate of ``sample_idx`` (Hz).
    signal_ok : numpy.ndarray, optional
        ``(n_beats,)`` bool: the beat lies in signal the quality check accepted.

    Returns
    -------
    dict
        ``heart_rate_bpm`` (60 / the RR interval before the beat, NaN where it is not
        positive; ``n_beats`` less one a record: a record's first beat has no interval
        before it and is left out, not counted missing, or records cut shorter would read
        as a change of heart rate), ``amplitude_mv`` (peak to peak of the window: a gain or
        unit error, or another lead, shows here first) and, with ``signal_ok``,
        ``beat_in_clean_signal`` (1 or 0), each as ``(values, 0)`` for
        :func:`~vitalgru.metrics.drift.histogram_on`.
    """
    w = np.asarray(windows, np.float64)
    idx = np.asarray(sample_idx, np.float64)
    rid = np.asarray(record_ids)
    if not (w.shape[0] == idx.size == rid.size):
        raise ValueError(f"{w.shape[0]} windows, {idx.size} beat positions, {rid.size} record ids")
    # the beats with one before them in their record (10-s strips as the batch, 30-min
    # records as the reference: 8 % of beats "not measured" made a PSI of 0.44)
    after = np.r_[False, rid[1:] == rid[:-1]] if idx.size else np.zeros(0, bool)
    rr = (idx[after] - idx[np.flatnonzero(after) - 1]) / float(fs)
    with np.errstate(divide="ignore", invalid="ignore"):
        hr = np.where(rr > 0, 60.0 / rr, np.nan)
    out = {
        "heart_rate_bpm": (hr, 0),
        "amplitude_mv": (np.ptp(w, axis=1) if w.size else np.zeros(0), 0),
    }
    if signal_ok is not None:
        out["beat_in_clean_signal"] = (np.asarray(signal_ok, np.float64), 0)
    return out


def arrhythmia_reference(
    inputs: Mapping[str, tuple[np.ndarray, int]],
    predicted: np.ndarray,
    n_records: int,
    n_bins: int = 10,
) -> dict[str, Any]:
    """The reference an arrhythmia model's later inputs and calls are compared with.

    Parameters
    ----------
    inputs : mapping
        :func:`beat_inputs` of the training records.
    predicted : numpy.ndarray
        ``(n,)`` the model's class indices on records it was not trained on (the test
        records), so that the class mix is what unseen patients get.
    n_records : int
        Records behind ``inputs``.
    """
    pred = np.asarray(predicted, np.float64)
    return {
        "version": REFERENCE_VERSION,
        "task": "arrhythmia",
        "n_records": int(n_records),
        "n_beats": max((len(v) for v, _ in inputs.values()), default=0),
        "columns": {c: reference_histogram(v, r, n_bins) for c, (v, r) in inputs.items()},
        "predicted": histogram_on(_CLASS_EDGES, pred),
    }


def _without_record_starts(reference: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's columns, its heart rate without the records' first beats where it
    was built with them (as missing values: a heart rate of every beat, ``n_beats``), so
    that a reference stored before they were left out compares as one built after."""
    cols = dict(reference["columns"])
    hr, n_rec = cols.get("heart_rate_bpm"), int(reference["n_records"])
    if hr is None or int(hr["n"]) != int(reference["n_beats"]) or not 0 < n_rec < int(hr["n"]):
        return cols
    n = int(hr["n"]) - n_rec
    counts = np.asarray(hr["fractions"], np.float64) * int(hr["n"])
    counts[0] = max(counts[0] - n_rec, 0.0)  # the missing bucket held the first beats
    fractions = counts / counts.sum()
    cols["heart_rate_bpm"] = {
        **hr,
        "fractions": [float(x) for x in fractions],
        "measured": float(fractions[2:].sum()),
        "refused": float(fractions[1]),
        "n": n,
    }
    return cols


def arrhythmia_drift(
    reference: Mapping[str, Any],
    inputs: Mapping[str, tuple[np.ndarray, int]],
    predicted: np.ndarray,
    n_records: int,
    class_names: tuple[str, ...] = ("N", "S", "V", "F", "Q"),
) -> dict[str, Any]:
    """Compare scored records with an arrhythmia model's reference.

    The heart rate leaves out each record's first beat (:func:`beat_inputs`); a reference
    stored when those beats were counted as missing heart rates is read without them.

    Returns
    -------
    dict
        ``inputs``: rows as in :func:`early_warning_drift` for the heart rate, the beat
        amplitude and the share of beats in clean signal, the most shifted first;
        ``predicted``: the row of the class mix of the model's calls, with ``classes``
        (class -> share of calls, reference and now); ``n_beats``, ``n_records``,
        ``major``, ``moderate``, ``too_few_records`` (fewer than
        :data:`MIN_RECORDS_FOR_DRIFT`).
    """
    _check_reference(reference)
    rows = compare_columns(_without_record_starts(reference), inputs)
    now = histogram_on(_CLASS_EDGES, np.asarray(predicted, np.float64))
    pred = drift_row("predicted class", reference["predicted"], now)
    pred["classes"] = {
        c: {"ref": reference["predicted"]["fractions"][2 + i], "now": now["fractions"][2 + i]}
        for i, c in enumerate(class_names)
    }
    named = [*rows, pred]
    return {
        "n_beats": int(now["n"]),
        "n_records": int(n_records),
        "reference_n_records": int(reference["n_records"]),
        "inputs": rows,
        "predicted": pred,
        "major": [r["column"] for r in named if r["level"] == "major"],
        "moderate": [r["column"] for r in named if r["level"] == "moderate"],
        "too_few_records": n_records < MIN_RECORDS_FOR_DRIFT,
    }
