"""The calibration section of the sepsis early-warning benchmark: each model's pooled
out-of-fold risks against SepsisLabel, as JSON and as markdown."""

from __future__ import annotations

import numpy as np

from vitalgru.metrics.calibration import calibration_metrics, calibration_table


def calibration_by_model(
    labels: np.ndarray, oof: dict[str, np.ndarray], probs: dict[str, np.ndarray]
) -> dict[str, dict]:
    """Calibration of each model's pooled out-of-fold hourly risks against SepsisLabel, as
    scored and as recalibrated on each fold's validation share (models whose scores are
    risks in [0, 1]; NEWS2 and qSOFA are points)."""
    out = {}
    for name, s in oof.items():
        if name in ("news2", "qsofa") or not (
            np.isfinite(s).all() and 0 <= s.min() <= s.max() <= 1
        ):
            continue
        out[name] = {**calibration_metrics(labels, s), "table": calibration_table(labels, s)}
        if name in probs and np.isfinite(probs[name]).all():
            p = probs[name]
            out[f"{name} recalibrated"] = {
                **calibration_metrics(labels, p), "table": calibration_table(labels, p)}  # fmt: skip
    return out


def calibration_lines(cal: dict[str, dict], blend: str) -> list[str]:
    """The calibration section of the markdown: each model's summary, then the reliability
    tables of the model ``blend`` (or the first one) as scored and as recalibrated.

    A model's own output is a risk score, the scale its alarm line is drawn on, not a
    probability (as in ``vitalgru evaluate early-warning``'s report), so its means are printed
    as scores; only the recalibrated rows are probabilities, printed as percentages.
    """
    if not cal:
        return []

    def mean(name: str, v: float) -> str:
        return f"{100 * v:.2f} %" if name.endswith(" recalibrated") else f"{v:.4f}"

    lines = [
        "",
        "## Calibration of the hourly risk (pooled out-of-fold risks against SepsisLabel)",
        "",
        "A model's risk score is the scale its alarm line is drawn on, not a probability; "
        "the recalibrated rows are probabilities of the hour's SepsisLabel.",
        "",
        "| model | mean risk score (recalibrated: probability) | hours labelled septic | "
        "Brier | ECE (10 bins) | calibration in the large | calibration slope |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m} | {mean(m, c['mean_risk'])} | {100 * c['event_rate']:.2f} % | "
        f"{c['brier']:.4f} | {c['ece']:.4f} | {c['calibration_in_the_large']:.2f} | "
        f"{c['calibration_slope']:.2f} |"
        for m, c in cal.items()
    ]
    reg = blend if blend in cal else next(iter(cal))
    for name in (reg, f"{reg} recalibrated"):
        if name not in cal:
            continue
        head = ("| probabilities | hours | mean probability | observed |"
                if name.endswith(" recalibrated")
                else "| risk scores | hours | mean risk score | observed |")  # fmt: skip
        lines += ["", f"Reliability of `{name}` (bins of equal count):", "", head,
                  "|---|---:|---:|---:|"]  # fmt: skip
        lines += [
            f"| {b['risk_min']:.3f}-{b['risk_max']:.3f} | {b['n']} | "
            f"{mean(name, b['mean_risk'])} | {100 * b['observed']:.2f} % |"
            for b in cal[name]["table"]
        ]
    return lines
