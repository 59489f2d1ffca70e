"""The offline sepsis reports print the mean risk score as a score: the score is the
scale the alarm line is drawn on, not a probability (a score of 0.50 is not a 50 % chance)."""

from __future__ import annotations

from vitalgru.metrics.early_warning import report_markdown
from vitalgru.metrics.early_warning_unlabelled import unlabelled_report_markdown


def test_the_mean_risk_score_is_not_printed_as_a_percentage() -> None:
    metrics = {"n_patients": 2, "n_septic_patients": 1, "n_patient_hours": 10,
               "threshold": 0.5, "mean_risk": 0.254, "event_rate": 0.069,
               "calibration": [{"risk_min": 0.1, "risk_max": 0.4, "n": 10,
                                "mean_risk": 0.254, "observed": 0.1}]}  # fmt: skip
    md = report_markdown(metrics)
    assert "| mean hourly risk score (not a probability) / share of hours labelled septic | " \
        "0.254 / 6.9 % |" in md  # fmt: skip
    assert "| 0.100-0.400 | 10 | 0.254 | 10.00 % |" in md and "25.4" not in md
    unlabelled = {"n_patients": 2, "n_patient_hours": 10, "threshold": 0.5, "mean_risk": 0.254}
    md = unlabelled_report_markdown(unlabelled, "Sepsis early warning")
    assert "| mean hourly risk score (not a probability) | 0.254 |" in md and "25.4" not in md
