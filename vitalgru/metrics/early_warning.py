"""Every measure of an early-warning model's hourly risks, at its alarm threshold: the
Challenge 2019's normalized utility (:mod:`vitalgru.metrics.utility`), AUROC and AUPRC,
the alarm burden and lead time before onset, calibration, by subgroup; and as markdown.

Many patients are passed back to back, as in :mod:`vitalgru.metrics.utility`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vitalgru.metrics.calibration import CALIBRATION_KEYS, calibration_metrics
from vitalgru.metrics.early_warning_intervals import (
    MIN_SEPTIC_FOR_INTERVAL,
    early_warning_intervals,
    interval_cell,
    interval_lines,
)
from vitalgru.metrics.ranking import auprc, auroc
from vitalgru.metrics.utility import (
    OFFICIAL,
    UtilityParams,
    binary_predictions,
    checked_labels,
    checked_offsets,
    normalized_utility,
    onset_rows,
)

__all__ = [
    "alarm_statistics", "data_lines", "early_warning_metrics", "group_rows", "report_markdown",
    "MIN_SEPTIC_FOR_INTERVAL", "subgroup_intervals", "subgroup_metrics",
]  # fmt: skip


def alarm_statistics(
    labels: np.ndarray,
    predictions: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
    hours: np.ndarray | None = None,
) -> dict[str, float]:
    """Alarm burden and lead time of binary hourly predictions.

    With ``hours`` (each row's ICU hour, ICULOS), onsets, lead times and patient-days are
    measured in ICU hours, as a clinician's page gives them; without, rows count as hours
    (the same where no stay skips an hour).

    Returns
    -------
    dict
        ``alarms_per_patient_day``: alarm onsets (0 -> 1 transitions, or 1 at a patient's
        first hour) per 24 patient-hours; ``alarm_hour_fraction``: share of hours in
        alarm; ``septic_detected_fraction``: share of septic patients with an alarm at or
        before ``t_sepsis + dt_late``; ``median_lead_time_h``: median over those patients of
        ``t_sepsis - first alarm`` in hours (negative: alarm after onset);
        ``false_alarm_patient_fraction``: share of non-septic patients with any alarm.
    """
    y = checked_labels(labels)
    pred = binary_predictions(predictions, y.size)
    off = checked_offsets(offsets, y.size)
    lengths = np.diff(off)
    n_pat = lengths.size
    starts = np.zeros(y.size, dtype=bool)
    starts[off[:-1][lengths > 0]] = True
    prev = np.r_[False, pred[:-1]]
    onset = pred & (~prev | starts)
    dt = onset_rows(y, off, params, hours)
    pat = np.repeat(np.arange(n_pat), lengths)
    septic_pat = np.zeros(n_pat, dtype=bool)
    septic_pat[pat[np.isfinite(dt)]] = True
    # First alarm at or before t_sepsis + dt_late, per septic patient.
    early_alarm = pred & np.isfinite(dt) & (dt <= params.dt_late)
    first_dt = np.full(n_pat, np.inf)
    if early_alarm.any():
        np.minimum.at(first_dt, pat[early_alarm], dt[early_alarm])
    detected = septic_pat & np.isfinite(first_dt)
    any_alarm = np.zeros(n_pat, dtype=bool)
    any_alarm[pat[pred]] = True
    n_septic = int(septic_pat.sum())
    n_neg = n_pat - n_septic
    if hours is None:
        spanned = float(y.size)
    else:  # each stay's hours from its first row to its last
        h = np.asarray(hours, dtype=np.float64)
        full = lengths > 0
        spanned = float((h[off[1:][full] - 1] - h[off[:-1][full]] + 1).sum())
    return {
        "alarms_per_patient_day": float(onset.sum() / spanned * 24.0) if spanned else float("nan"),
        "alarm_hour_fraction": float(pred.mean()) if y.size else float("nan"),
        "septic_detected_fraction": float(detected.sum() / n_septic) if n_septic else float("nan"),
        "median_lead_time_h": float(np.median(-first_dt[detected]))
        if detected.any()
        else float("nan"),
        "false_alarm_patient_fraction": float((any_alarm & ~septic_pat).sum() / n_neg)
        if n_neg
        else float("nan"),
    }


def early_warning_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    params: UtilityParams = OFFICIAL,
    hours: np.ndarray | None = None,
    risks: bool | None = None,
) -> dict[str, float]:
    """Everything reported for an early-warning model at a fixed alarm threshold.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n_rows,)`` SepsisLabel.
    scores : numpy.ndarray
        ``(n_rows,)`` hourly risk; an alarm is ``score >= threshold``.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets.
    threshold : float
        Chosen beforehand on training data.
    hours : numpy.ndarray, optional
        Each row's ICU hour (ICULOS): the alarm statistics in ICU hours
        (:func:`alarm_statistics`); the utility counts rows, as the Challenge's scorer does.
    risks : bool, optional
        Whether the scores are risks (calibration measured) or points (NEWS2, qSOFA: NaN);
        None guesses from their range, which a fold of qSOFA points never reaching 2 passes.

    Returns
    -------
    dict
        ``utility``, ``auroc``, ``auprc`` (hourly), the keys of :func:`alarm_statistics`,
        the hourly calibration of the risk against SepsisLabel
        (:func:`vitalgru.metrics.calibration.calibration_metrics`: ``brier``, ``ece``,
        ``calibration_in_the_large``, ``calibration_slope``, ``mean_risk``,
        ``event_rate``; NaN for scores outside [0, 1], such as NEWS2 points),
        ``threshold``, ``n_patients``, ``n_patient_hours``, ``n_septic_patients``.
    """
    y = checked_labels(labels).astype(np.int8)
    s = np.asarray(scores, dtype=np.float64)
    pred = (s >= threshold).astype(np.int8)
    off = checked_offsets(offsets, y.size)
    septic = np.isfinite(onset_rows(y, off, params))
    lengths = np.diff(off)
    pat = np.repeat(np.arange(lengths.size), lengths)
    out = {
        "utility": normalized_utility(y, pred, off, params),
        "auroc": auroc(y, s),
        "auprc": auprc(y, s),
        "threshold": float(threshold),
        "n_patients": float(lengths.size),
        "n_patient_hours": float(y.size),
        "n_septic_patients": float(np.unique(pat[septic]).size),
    }
    out.update(alarm_statistics(y, pred, off, params, hours))
    in_range = bool(s.size and np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0)
    if (risks if risks is not None else True) and in_range:
        out.update(calibration_metrics(y, s))
    else:  # points (NEWS2, qSOFA), not risks: calibration does not apply
        out.update(dict.fromkeys(CALIBRATION_KEYS, float("nan")))
    return out


def subgroup_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    groups: Mapping[str, np.ndarray],
    params: UtilityParams = OFFICIAL,
    hours: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`early_warning_metrics` of each group of patients.

    Parameters
    ----------
    labels, scores, offsets, threshold
        As :func:`early_warning_metrics`, for all patients.
    groups : mapping of str to numpy.ndarray
        Group name -> ``(n_patients,)`` bool, the patients in it (groups may overlap or
        leave patients out). Empty groups are left out of the result.

    Returns
    -------
    dict
        Group name -> its metrics (NaN where undefined, e.g. a group without a septic
        patient has no utility or AUROC).
    """
    y = checked_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    out: dict[str, dict[str, float]] = {}
    for name, rows, sub_off in group_rows(checked_offsets(offsets, y.size), groups):
        sub_hours = None if hours is None else np.asarray(hours)[rows]
        out[name] = early_warning_metrics(y[rows], s[rows], sub_off, threshold, params, sub_hours)
    return out


def subgroup_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    groups: Mapping[str, np.ndarray],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, dict[str, Any]]:
    """The patient-bootstrap interval of each group's normalized utility (its own patients
    resampled, the threshold held fixed): a group of 300 patients with 20 septic moves far
    more than the whole cohort, and a difference between groups is read against it.

    Parameters
    ----------
    labels, scores, offsets, threshold, groups
        As :func:`subgroup_metrics`.
    n_resamples, seed
        As :func:`~vitalgru.metrics.early_warning_intervals.early_warning_intervals`.

    Returns
    -------
    dict
        Group name -> :func:`~vitalgru.metrics.early_warning_intervals.early_warning_intervals`
        of the utility alone (no AUROC or AUPRC: a pass over the hours per resample and
        group would cost more than the rest of an evaluation); empty groups left out. A
        group with fewer than :data:`MIN_SEPTIC_FOR_INTERVAL` septic patients has no
        interval (``low`` and ``high`` None, ``n_resamples`` 0) and a ``note`` saying so.
    """
    y = checked_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    return {
        name: early_warning_intervals(y[rows], s[rows], sub_off, threshold,
                                      n_resamples=n_resamples, seed=seed, ranking=False)
        for name, rows, sub_off in group_rows(checked_offsets(offsets, y.size), groups)
    }  # fmt: skip


def group_rows(
    offsets: np.ndarray, groups: Mapping[str, np.ndarray]
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Each non-empty group of patients as ``(name, its rows (bool, over all hours), its
    patients' offsets into those rows)``, for checked ``offsets`` and ``(n_patients,)``
    bool masks; a mask of another length is a ValueError."""
    lengths = np.diff(offsets)
    for name, mask in groups.items():
        m = np.asarray(mask, dtype=bool)
        if m.shape != lengths.shape:
            raise ValueError(
                f"group {name!r}: a mask of {m.size} patients for {lengths.size} patients"
            )
        if m.any():
            yield name, np.repeat(m, lengths), np.r_[0, np.cumsum(lengths[m])].astype(np.int64)


def data_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The report's lines on the data read (files excluded, values read as missing, skipped
    hours, label reversals: those ``metrics`` holds) and its warnings of refused columns
    and of columns that look like another unit's."""
    data = {
        "n_excluded_files": "{} file(s) excluded (listed in the attrition file)",
        "n_implausible_values": "{} implausible value(s) read as missing",
        "n_non_numeric_values": "{} non-numeric cell(s) read as missing",
        "n_patients_with_skipped_hours": "{} patient(s) whose rows skip ICU hours",
        "n_patients_with_label_reversals": "{} patient(s) whose SepsisLabel falls back to 0",
    }
    lines: list[str] = []
    held = [text.format(int(metrics[k])) for k, text in data.items() if k in metrics]
    by_column = metrics.get("implausible_values_by_column") or {}
    if by_column and "n_implausible_values" in metrics:
        i = list(k for k in data if k in metrics).index("n_implausible_values")
        held[i] += " (" + ", ".join(f"{c} {int(n)}" for c, n in by_column.items()) + ")"
    if held:
        lines += ["", "Data: " + "; ".join(held) + "."]
    for text in metrics.get("implausible_value_warnings") or []:
        lines += ["", f"**Warning:** {text}; the model was scored without these values."]
    for text in metrics.get("unit_warnings") or []:
        lines += ["", f"**Warning:** {text}; the model was scored on them as they are."]
    return lines


def report_markdown(metrics: Mapping[str, Any], title: str = "Sepsis early warning") -> str:
    """A readable summary of :func:`early_warning_metrics` (plus, where present, the data
    counts ``vitalgru evaluate early-warning`` adds, and its patient-bootstrap
    ``intervals`` in brackets): one table, undefined values named."""

    def num(key: str, digits: int = 3, pct: bool = False, unit: str = "") -> str:
        v = metrics.get(key)
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "undefined (no septic patient)" if metrics.get("n_septic_patients") == 0 else "-"
        return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}{unit}"

    n_pat = int(metrics.get("n_patients") or 0)
    n_sep = int(metrics.get("n_septic_patients") or 0)
    iv = metrics.get("intervals")  # patient-bootstrap intervals, where given
    lines = [
        f"## {title}",
        "",
        f"Patients: {n_pat} ({n_sep} septic), {int(metrics.get('n_patient_hours') or 0)} "
        f"patient-hours; alarm when the hourly risk is at least {num('threshold', 4)} "
        "(chosen on the model's training data).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| normalized utility (PhysioNet/CinC 2019) | {num('utility')}{interval_cell(iv, 'utility')} |",
        f"| hourly AUROC | {num('auroc')}{interval_cell(iv, 'auroc')} |",
        f"| hourly AUPRC | {num('auprc')}{interval_cell(iv, 'auprc')} |",
        f"| septic patients alarmed by 3 h after onset | {num('septic_detected_fraction', pct=True)} |",
        f"| median lead time of the first alarm before onset | {num('median_lead_time_h', 1, unit=' h')} |",
        f"| alarm onsets per patient-day | {num('alarms_per_patient_day', 2)} |",
        f"| hours in alarm | {num('alarm_hour_fraction', pct=True)} |",
        f"| non-septic patients ever alarmed | {num('false_alarm_patient_fraction', pct=True)} |",
        f"| mean hourly risk score (not a probability) / share of hours labelled septic | {num('mean_risk')} / {num('event_rate', pct=True)} |",
        f"| Brier score / expected calibration error (10 bins) | {num('brier', 4)} / {num('ece', 4)} |",
        f"| calibration in the large / slope (0 and 1 when calibrated) | {num('calibration_in_the_large', 2)} / {num('calibration_slope', 2)} |",
    ]  # fmt: skip
    lines += interval_lines(iv)
    lines += data_lines(metrics)
    if metrics.get("calibration"):
        lines += [
            "",
            "Calibration of the hourly risk score against SepsisLabel (scores in bins of equal "
            "count; a calibrated score matches the share observed):",
            "",
            "| risk scores | hours | mean risk score | observed |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {b['risk_min']:.3f}-{b['risk_max']:.3f} | {b['n']} | "
            f"{b['mean_risk']:.3f} | {100 * b['observed']:.2f} % |"
            for b in metrics["calibration"]
        ]
    prob = metrics.get("probability_calibration")
    if prob:

        def p(key: str, spec: str, scale: float = 1.0) -> str:
            v = prob.get(key)
            return "-" if v is None or not np.isfinite(v) else format(scale * v, spec)

        lines += [
            "",
            "The model's recalibrated probability of the hour's SepsisLabel (the risk through "
            f"the map stored with the model): mean {p('mean_risk', '.2f', 100)} % against "
            f"{p('event_rate', '.2f', 100)} % of hours labelled; Brier {p('brier', '.4f')}, "
            f"ECE {p('ece', '.4f')}, calibration in the large "
            f"{p('calibration_in_the_large', '.2f')}, slope {p('calibration_slope', '.2f')}.",
            "",
            "| probabilities | hours | mean probability | observed |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {b['risk_min']:.3f}-{b['risk_max']:.3f} | {b['n']} | "
            f"{100 * b['mean_risk']:.2f} % | {100 * b['observed']:.2f} % |"
            for b in prob["table"]
        ]
    if metrics.get("subgroups"):
        lines += [
            "",
            "By patient group (small groups vary a lot; in brackets, for a group with at least "
            f"{MIN_SEPTIC_FOR_INTERVAL} septic patients, the 95 % interval of its utility by "
            "resampling its own patients; a group without a "
            "septic patient has no utility or AUROC):",
            "",
            "| group | patients | septic | utility | AUROC | alarm onsets per patient-day |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, g in metrics["subgroups"].items():
            cells = [
                "-" if g.get(k) is None or not np.isfinite(g[k]) else f"{g[k]:.{d}f}"
                for k, d in (("utility", 3), ("auroc", 3), ("alarms_per_patient_day", 2))
            ]
            if cells[0] != "-":
                cells[0] += interval_cell(g.get("intervals"), "utility")
            lines.append(
                f"| {name} | {int(g['n_patients'])} | {int(g['n_septic_patients'])} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"
