"""How the sepsis early-warning figures are put into words wherever a clinician reads them:
the ward and patient pages, the alarm texts (the event log, and from it HL7 ``NTE`` and the
FHIR ``Flag``), the CDS Hooks card and the FHIR ``RiskAssessment``.

Two numbers stand side by side, and they are not the same kind of number. The model's
**risk score** ranks hours and decides alarms (an hour is in alarm when its score reaches
the model's alarm line), but it is no probability: the blend's runs about three times the
rate of septic hours (README, Calibration), so a score of 0.50 is not a 50 % chance. Its
recalibration gives the **probability** of what the model was trained to predict,
:data:`OUTCOME`. Every output names the first "risk score" and the second "probability",
prints them by the rules here, and keeps its machine-readable field names (``risk``,
``probability``) as they were.

Standard library only, so that the report pages (which need no torch) and the scoring
layer share it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta

__all__ = [
    "NO_DATA_AFTER",
    "OUTCOME",
    "probability_text",
    "risk_and_line",
    "risk_decimals",
    "risk_rounded",
]

#: What the probability is of: the Challenge-2019 ``SepsisLabel`` the model is trained on
#: turns 1 six hours before the Sepsis-3 onset and stays 1 after it, so it is the chance of
#: being septic now or becoming so within 6 hours, not only of developing sepsis later.
OUTCOME = "sepsis now or within 6 hours"

#: How long a patient's feed may send nothing (no row, no observation) before the pages mark
#: them "no data since": a row is due every hour, and this is 2 h past the one due. Hours
#: without any measurement happen (in set A, 7.5 % of stays have 3 or more in a row), so it
#: is a mark on the patient's row and page, not an alarm; but a stopped interface would
#: otherwise leave the last risk looking current (and an observation feed's empty hours go
#: on being scored as they pass).
NO_DATA_AFTER = timedelta(hours=3)


def probability_text(p: float) -> str:
    """A probability as a percentage that is not misread: one decimal below 10 %
    (``"0.3 %"``, ``"2.6 %"``), ``"<0.1 %"`` below 0.05 %, whole percent from 10 %
    (``"12 %"``), ``">99 %"`` from 99.5 %. Whole percent throughout printed most patients'
    0.3 % as "0 %", which reads as "certainly not septic", and 0.6 % and 1.5 % alike as
    "1 %". ValueError for a value that is not a probability."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{p!r} is not a probability")
    pct = 100.0 * float(p)
    if pct < 0.05:
        return "<0.1 %"
    if round(pct, 1) < 10.0:
        return f"{pct:.1f} %"
    if pct >= 99.5:
        return ">99 %"
    return f"{pct:.0f} %"


def risk_decimals(pairs: Iterable[tuple[float, float]]) -> int:
    """Decimals to print risk scores and their alarm lines with (``pairs``: ``(score,
    line)``): 3, or more where a score lies so close to its line that 3 would put it on
    the other side (a score of 0.0921 under a line of 0.0924 read "0.092" against
    "0.092"; "0.35 fell below the alarm threshold 0.35"); at most 9. Pairs whose line is
    not finite (a model that never alarms) do not count."""
    kept = [(float(v), float(t)) for v, t in pairs if math.isfinite(t) and math.isfinite(v)]
    for d in range(3, 9):  # a float32 score one step under a float64 line: 8
        if all((round(v, d) >= round(t, d)) == (v >= t) for v, t in kept):
            return d
    return 9


def risk_and_line(risk: float, threshold: float) -> tuple[str, str]:
    """A risk score and the alarm line it is compared with, printed with the same
    decimals, enough to tell which side of the line the score lies
    (:func:`risk_decimals`)."""
    d = risk_decimals([(risk, threshold)])
    return f"{risk:.{d}f}", f"{threshold:.{d}f}"


def risk_rounded(risk: float, threshold: float) -> float:
    """A risk score rounded for an event's JSON, which gives the score without its line:
    4 decimals, or as many as keep the rounded score on the side of the exact ``threshold``
    the score lies on (4 put an alarm's score of 0.361816 on a line of 0.361813 at 0.3618,
    under the line it reached); unrounded when none up to 12 does."""
    v, t = float(risk), float(threshold)
    for d in range(4, 13):
        if not math.isfinite(t) or (round(v, d) >= t) == (v >= t):
            return round(v, d)
    return v
