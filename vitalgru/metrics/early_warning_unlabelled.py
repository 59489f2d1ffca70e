"""What an early-warning model's hourly risks say of stays nobody labelled (a hospital's own
export without ``SepsisLabel``: :mod:`vitalgru.io.psv_labels`): the alarm burden, the
risks, by patient group, and as markdown; and which measures cannot be given.

Every measure that compares the risks with an outcome (the utility, AUROC, AUPRC, the
septic patients alarmed, the lead time, the calibration) is NaN here, never computed as
if the stays were negative. The measures kept are those of
:func:`vitalgru.metrics.early_warning.early_warning_metrics` that need no label, with the
same definitions, so that a labelled and an unlabelled folder compare on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vitalgru.metrics.early_warning import alarm_statistics, data_lines, group_rows
from vitalgru.metrics.utility import checked_offsets

__all__ = [
    "LABELLED_ONLY", "UNLABELLED_NOTE", "unlabelled_metrics", "unlabelled_report_markdown",
    "unlabelled_subgroup_metrics",
]  # fmt: skip

#: Why an unlabelled report gives no accuracy figure, as the report and the log say it.
UNLABELLED_NOTE = (
    "the data is unlabelled (no file has a SepsisLabel column): no accuracy figure can be "
    "given (utility, AUROC, AUPRC, septic patients alarmed, lead time, calibration); the "
    "risks, alarms and alarm burden are measured"
)

#: The measures of ``early_warning_metrics`` that need labels: NaN (JSON null) here.
LABELLED_ONLY: tuple[str, ...] = (
    "utility", "auroc", "auprc", "n_septic_patients", "septic_detected_fraction",
    "median_lead_time_h", "false_alarm_patient_fraction", "brier", "ece",
    "calibration_in_the_large", "calibration_slope", "event_rate",
)  # fmt: skip


def unlabelled_metrics(
    scores: np.ndarray, offsets: np.ndarray, threshold: float, hours: np.ndarray | None = None
) -> dict[str, float]:
    """What can be measured of hourly risks without labels, at a fixed alarm threshold.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(n_rows,)`` hourly risk; an alarm is ``score >= threshold``.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets.
    threshold : float
    hours : numpy.ndarray, optional
        Each row's ICU hour (ICULOS): patient-days in ICU hours, as
        :func:`~vitalgru.metrics.early_warning.alarm_statistics` counts them.

    Returns
    -------
    dict
        ``threshold``, ``n_patients``, ``n_patient_hours``, ``alarms_per_patient_day``,
        ``alarm_hour_fraction``, ``alarmed_patient_fraction`` (share of patients with any
        alarm), ``mean_risk`` (NaN for scores outside [0, 1]), and each key of
        :data:`LABELLED_ONLY` as NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    off = checked_offsets(offsets, s.size)
    pred = (s >= threshold).astype(np.int8)
    # the burden does not depend on the labels; with none positive, the share of
    # "non-septic patients ever alarmed" is that of all patients
    burden = alarm_statistics(np.zeros(s.size, np.int8), pred, off, hours=hours)
    in_range = bool(s.size and np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0)
    return {
        "threshold": float(threshold),
        "n_patients": float(off.size - 1),
        "n_patient_hours": float(s.size),
        "alarms_per_patient_day": burden["alarms_per_patient_day"],
        "alarm_hour_fraction": burden["alarm_hour_fraction"],
        "alarmed_patient_fraction": burden["false_alarm_patient_fraction"],
        "mean_risk": float(s.mean()) if in_range else float("nan"),
        **dict.fromkeys(LABELLED_ONLY, float("nan")),
    }


def unlabelled_subgroup_metrics(
    scores: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    groups: Mapping[str, np.ndarray],
    hours: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`unlabelled_metrics` of each group of patients (``(n_patients,)`` bool masks,
    as :func:`vitalgru.data.early_warning.patient_groups` gives them); empty groups are
    left out."""
    s = np.asarray(scores, dtype=np.float64)
    out: dict[str, dict[str, float]] = {}
    for name, rows, sub_off in group_rows(checked_offsets(offsets, s.size), groups):
        sub_hours = None if hours is None else np.asarray(hours)[rows]
        out[name] = unlabelled_metrics(s[rows], sub_off, threshold, sub_hours)
    return out


def _cell(v: Any, spec: str, scale: float = 1.0, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{format(scale * v, spec)}{unit}"


def unlabelled_report_markdown(metrics: Mapping[str, Any], title: str) -> str:
    """A readable summary of an unlabelled folder's scores (:func:`unlabelled_metrics` plus
    the data counts ``vitalgru evaluate early-warning`` adds): what was measured, and
    plainly that no accuracy figure can be."""
    n_pat = int(metrics.get("n_patients") or 0)
    lines = [
        f"## {title}",
        "",
        f"Patients: {n_pat}, {int(metrics.get('n_patient_hours') or 0)} patient-hours, "
        "**unlabelled** (no SepsisLabel column); alarm when the hourly risk is at least "
        f"{_cell(metrics.get('threshold'), '.4f')} (chosen on the model's training data).",
        "",
        f"**No accuracy figures:** {UNLABELLED_NOTE}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| alarm onsets per patient-day | {_cell(metrics.get('alarms_per_patient_day'), '.2f')} |",
        f"| hours in alarm | {_cell(metrics.get('alarm_hour_fraction'), '.1f', 100, ' %')} |",
        f"| patients ever alarmed | {_cell(metrics.get('alarmed_patient_fraction'), '.1f', 100, ' %')} |",
        f"| mean hourly risk score (not a probability) | {_cell(metrics.get('mean_risk'), '.3f')} |",
    ]  # fmt: skip
    if metrics.get("mean_probability") is not None:
        lines.append(
            "| mean recalibrated probability (the risk through the map stored with the "
            f"model) | {_cell(metrics['mean_probability'], '.2f', 100, ' %')} |"
        )
    lines += data_lines(metrics)
    if metrics.get("subgroups"):
        lines += [
            "",
            "By patient group (small groups vary a lot):",
            "",
            "| group | patients | alarm onsets per patient-day | hours in alarm | ever alarmed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, g in metrics["subgroups"].items():
            lines.append(
                f"| {name} | {int(g['n_patients'])} | "
                f"{_cell(g.get('alarms_per_patient_day'), '.2f')} | "
                f"{_cell(g.get('alarm_hour_fraction'), '.1f', 100, ' %')} | "
                f"{_cell(g.get('alarmed_patient_fraction'), '.1f', 100, ' %')} |"
            )
    return "\n".join(lines) + "\n"
