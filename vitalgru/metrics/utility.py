"""The PhysioNet/CinC Challenge 2019 normalized utility and alarm statistics (numpy only).

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitalgru.metrics.calibration import CALIBRATION_KEYS, calibration_metrics
from vitalgru.metrics.ranking import auprc, auroc


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


def _offsets(offsets: np.ndarray, n: int) -> np.ndarray:
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != n or (np.diff(off) < 0).any():
        raise ValueError(
            f"offsets must be non-decreasing row offsets from 0 to n_rows={n} "
            f"(n_patients + 1 values)"
        )
    return off


def _check_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (n_rows,), got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y.astype(bool)


def onset_rows(
    labels: np.ndarray, offsets: np.ndarray, params: UtilityParams = OFFICIAL
) -> np.ndarray:
    """Per-row ``t - t_sepsis`` (in rows) and per-row septic flag.

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` float64 ``t - t_sepsis`` for rows of septic patients, ``+inf`` for
        rows of patients who never have label 1 (their ``t_sepsis`` is infinite).
    """
    y = _check_labels(labels)
    off = _offsets(offsets, y.size)
    lengths = np.diff(off)
    pat = np.repeat(np.arange(lengths.size), lengths)
    local_t = np.arange(y.size) - np.repeat(off[:-1], lengths)
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
    pred = _binary(predictions, y.size)
    u_pos, u_neg = row_utilities(y, np.array([0, y.size]), params)
    return float(np.where(pred, u_pos, u_neg).sum())


def _binary(predictions: np.ndarray, n: int) -> np.ndarray:
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
    y = _check_labels(labels)
    pred = _binary(predictions, y.size)
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
    y = _check_labels(labels)
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


def alarm_statistics(
    labels: np.ndarray,
    predictions: np.ndarray,
    offsets: np.ndarray,
    params: UtilityParams = OFFICIAL,
) -> dict[str, float]:
    """Alarm burden and lead time of binary hourly predictions.

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
    y = _check_labels(labels)
    pred = _binary(predictions, y.size)
    off = _offsets(offsets, y.size)
    lengths = np.diff(off)
    n_pat = lengths.size
    starts = np.zeros(y.size, dtype=bool)
    starts[off[:-1][lengths > 0]] = True
    prev = np.r_[False, pred[:-1]]
    onset = pred & (~prev | starts)
    dt = onset_rows(y, off, params)
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
    hours = float(y.size)
    return {
        "alarms_per_patient_day": float(onset.sum() / hours * 24.0) if hours else float("nan"),
        "alarm_hour_fraction": float(pred.mean()) if hours else float("nan"),
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
    y = _check_labels(labels).astype(np.int8)
    s = np.asarray(scores, dtype=np.float64)
    pred = (s >= threshold).astype(np.int8)
    off = _offsets(offsets, y.size)
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
    out.update(alarm_statistics(y, pred, off, params))
    if s.size and np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0:
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
    y = _check_labels(labels)
    s = np.asarray(scores, dtype=np.float64)
    off = _offsets(offsets, y.size)
    lengths = np.diff(off)
    out: dict[str, dict[str, float]] = {}
    for name, mask in groups.items():
        m = np.asarray(mask, dtype=bool)
        if m.shape != lengths.shape:
            raise ValueError(
                f"group {name!r}: a mask of {m.size} patients for {lengths.size} patients"
            )
        if not m.any():
            continue
        rows = np.repeat(m, lengths)
        sub_off = np.r_[0, np.cumsum(lengths[m])].astype(np.int64)
        out[name] = early_warning_metrics(y[rows], s[rows], sub_off, threshold, params)
    return out


def report_markdown(metrics: Mapping[str, Any], title: str = "Sepsis early warning") -> str:
    """A readable summary of :func:`early_warning_metrics` (plus, where present, the data
    counts ``vitalgru evaluate early-warning`` adds): one table, undefined values named."""

    def num(key: str, digits: int = 3, pct: bool = False, unit: str = "") -> str:
        v = metrics.get(key)
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "undefined (no septic patient)" if metrics.get("n_septic_patients") == 0 else "-"
        return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}{unit}"

    n_pat = int(metrics.get("n_patients") or 0)
    n_sep = int(metrics.get("n_septic_patients") or 0)
    lines = [
        f"## {title}",
        "",
        f"Patients: {n_pat} ({n_sep} septic), {int(metrics.get('n_patient_hours') or 0)} "
        f"patient-hours; alarm when the hourly risk is at least {num('threshold', 4)} "
        "(chosen on the model's training data).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| normalized utility (PhysioNet/CinC 2019) | {num('utility')} |",
        f"| hourly AUROC | {num('auroc')} |",
        f"| hourly AUPRC | {num('auprc')} |",
        f"| septic patients alarmed by 3 h after onset | {num('septic_detected_fraction', pct=True)} |",
        f"| median lead time of the first alarm before onset | {num('median_lead_time_h', 1, unit=' h')} |",
        f"| alarm onsets per patient-day | {num('alarms_per_patient_day', 2)} |",
        f"| hours in alarm | {num('alarm_hour_fraction', pct=True)} |",
        f"| non-septic patients ever alarmed | {num('false_alarm_patient_fraction', pct=True)} |",
        f"| mean hourly risk / share of hours labelled septic | {num('mean_risk', pct=True)} / {num('event_rate', pct=True)} |",
        f"| Brier score / expected calibration error (10 bins) | {num('brier', 4)} / {num('ece', 4)} |",
        f"| calibration in the large / slope (0 and 1 when calibrated) | {num('calibration_in_the_large', 2)} / {num('calibration_slope', 2)} |",
    ]  # fmt: skip
    data = {
        "n_excluded_files": "{} file(s) excluded (listed in the attrition file)",
        "n_implausible_values": "{} implausible value(s) read as missing",
        "n_non_numeric_values": "{} non-numeric cell(s) read as missing",
        "n_patients_with_skipped_hours": "{} patient(s) whose rows skip ICU hours",
        "n_patients_with_label_reversals": "{} patient(s) whose SepsisLabel falls back to 0",
    }
    held = [text.format(int(metrics[k])) for k, text in data.items() if k in metrics]
    if held:
        lines += ["", "Data: " + "; ".join(held) + "."]
    if metrics.get("calibration"):
        lines += [
            "",
            "Calibration of the hourly risk against SepsisLabel (risks in bins of equal count; "
            "a calibrated risk matches the share observed):",
            "",
            "| risks | hours | mean risk | observed |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {b['risk_min']:.3f}-{b['risk_max']:.3f} | {b['n']} | "
            f"{100 * b['mean_risk']:.2f} % | {100 * b['observed']:.2f} % |"
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
            "By patient group (small groups vary a lot; a group without a septic patient has "
            "no utility or AUROC):",
            "",
            "| group | patients | septic | utility | AUROC | alarm onsets per patient-day |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, g in metrics["subgroups"].items():
            cells = [
                "-" if g.get(k) is None or not np.isfinite(g[k]) else f"{g[k]:.{d}f}"
                for k, d in (("utility", 3), ("auroc", 3), ("alarms_per_patient_day", 2))
            ]
            lines.append(
                f"| {name} | {int(g['n_patients'])} | {int(g['n_septic_patients'])} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"
