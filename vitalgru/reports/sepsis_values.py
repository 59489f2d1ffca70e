"""The vital signs and labs of a sepsis stay as a clinician's page shows them: which are shown
at an alarm, the limits they are marked against, and how each is printed.

Values at an alarm are marked when outside the limits of the sepsis criteria clinicians
use: SIRS (Bone et al., Chest 1992: heart rate > 90 bpm, temperature > 38 or < 36 °C,
respiratory rate > 20 /min, white cells > 12 or < 4 × 10³/µL), qSOFA (Seymour et al., JAMA
2016: systolic pressure <= 100 mmHg), the first SOFA point (Vincent et al., Intensive Care
Med 1996: mean arterial pressure < 70 mmHg, creatinine >= 1.2 mg/dL, platelets < 150 ×
10³/µL, bilirubin >= 1.2 mg/dL), Sepsis-3's lactate > 2 mmol/L (Singer et al., JAMA 2016)
and NEWS2's SpO2 <= 95 % (Royal College of Physicians 2017).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vitalgru.io.psv import PSV_COLUMNS

#: Phrases of :func:`outside_html` shown at most (a stay's values vary hour to hour).
MAX_REASONS_SHOWN = 4

__all__ = [
    "DECIMALS",
    "KEY_MEASURES",
    "findings_html",
    "fmt",
    "fmt_received",
    "outside_html",
    "outside_mark",
    "outside_population",
    "refused_items",
    "refused_text",
    "shown",
]

#: What is shown at an alarm: vitalgru column -> (label, unit, the limit in words, whether a
#: value is outside it). See the module docstring for where each limit comes from.
KEY_MEASURES: dict[str, tuple[str, str, str, Callable[[float], bool]]] = {
    "hr_bpm": ("HR", "bpm", "> 90", lambda v: v > 90),
    "temp_c": ("Temp", "°C", "> 38 or < 36", lambda v: v > 38 or v < 36),
    "resp_per_min": ("Resp", "/min", "> 20", lambda v: v > 20),
    "sbp_mmhg": ("SBP", "mmHg", "<= 100", lambda v: v <= 100),
    "map_mmhg": ("MAP", "mmHg", "< 70", lambda v: v < 70),
    "spo2_pct": ("SpO2", "%", "<= 95", lambda v: v <= 95),
    "lactate_mmol_l": ("Lactate", "mmol/L", "> 2", lambda v: v > 2),
    "wbc_10e3_ul": ("WBC", "×10³/µL", "> 12 or < 4", lambda v: v > 12 or v < 4),
    "creatinine_mg_dl": ("Creatinine", "mg/dL", ">= 1.2", lambda v: v >= 1.2),
    "platelets_10e3_ul": ("Platelets", "×10³/µL", "< 150", lambda v: v < 150),
    "bilirubin_total_mg_dl": ("Bilirubin", "mg/dL", ">= 1.2", lambda v: v >= 1.2),
}

#: vitalgru column -> the Challenge-2019 name a clinician's chart uses (HR, Temp, ...).
CHALLENGE_NAMES = {v: k for k, v in PSV_COLUMNS.items()}


#: Decimals each measurement shown at an alarm is printed with, as a chart records it: heart
#: rate, respiratory rate, pressures and SpO2 whole, temperature to 0.1 °C, the labs to
#: their usual reporting precision. The value is judged against its limit as printed, so
#: what is marked is what is read (an SBP of 100.4 is "100", at the qSOFA limit).
DECIMALS = {
    "hr_bpm": 0, "resp_per_min": 0, "sbp_mmhg": 0, "dbp_mmhg": 0, "map_mmhg": 0,
    "spo2_pct": 0, "temp_c": 1, "lactate_mmol_l": 1, "wbc_10e3_ul": 1,
    "creatinine_mg_dl": 2, "platelets_10e3_ul": 0, "bilirubin_total_mg_dl": 1,
}  # fmt: skip


def shown(v: float, column: str | None = None) -> float:
    """A measurement as the page shows it: to its :data:`DECIMALS`, or, for another
    column, two decimals at most, as Challenge-2019 files record values."""
    return round(v, DECIMALS.get(column or "", 2))


def fmt(v: float, column: str | None = None) -> str:
    """A measurement as printed: to its :data:`DECIMALS` (HR 88, Temp 38.0, Creatinine
    1.16); another column (pH, FiO2) one decimal below 100 and none above, with the
    decimals a value needs beyond that (100.4, not 100). By magnitude alone, one row read
    "HR 88.0 bpm; SBP 99.0 mmHg; MAP 101 mmHg". A value refused as impossible is printed
    by :func:`fmt_received` instead."""
    r = shown(v, column)
    if column in DECIMALS:
        return f"{r:.{DECIMALS[column]}f}"
    d = 1 if abs(r) < 100 else 0
    return f"{r:.{d}f}" if round(r, d) == r else f"{r:.2f}".rstrip("0")


def fmt_received(v: float) -> str:
    """A value refused as impossible, as it came: to six significant digits, never to a
    column's chart precision. Such values are often a unit mix-up (SpO2 sent as the
    fraction 0.97, platelets in 10^9/mL), and rounded to the chart they read "O2Sat = 1",
    hiding what was sent."""
    return f"{v:.6g}"


def findings_html(findings: Mapping[str, Mapping[str, Any]]) -> str:
    """The values at an alarm as HTML: ``HR 95 bpm (limit > 90)`` in red for one outside
    its limit (the limit said in words too: red alone is lost on paper printed in grey, to
    a colour-blind reader and to a screen reader, WCAG 2.1 1.4.1), ``MAP 101 mmHg``, and
    ``(3 h ago)`` for a value measured before the alarm's hour."""
    parts = []
    for c, f in findings.items():
        name, unit, limit = KEY_MEASURES[c][:3]
        ago = [] if f["hours_ago"] == 0 else [f"{f['hours_ago']} h ago"]
        notes = ago + ([f"limit {limit}"] if f["abnormal"] else [])
        text = f"{name} {fmt(f['value'], c)} {unit}" + (f" ({'; '.join(notes)})" if notes else "")
        parts.append(f"<span class=hi>{html.escape(text)}</span>" if f["abnormal"]
                     else html.escape(text))  # fmt: skip
    return "; ".join(parts) or "nothing measured yet"


def refused_items(s: Mapping[str, Any]) -> list[str]:
    """Each value refused as impossible, as HTML text, the value as it came (see
    :func:`fmt_received`): ``ICU hour 4: FiO2 = 50``, ``ICU hour 5: O2Sat = 0.97``."""
    return [
        f"ICU hour {r['hour']}: {html.escape(CHALLENGE_NAMES.get(r['column'], r['column']))} = "
        f"{'?' if r['value'] is None else fmt_received(r['value'])}"
        for r in s["rejected"]
    ]


def refused_text(s: Mapping[str, Any]) -> str:
    return "; ".join(refused_items(s))


def outside_population(outside: Sequence[Sequence[str]], hours: Sequence[int]) -> dict[str, Any]:
    """How much of a stay was scored outside the model's training population (per hour, the
    phrases of :attr:`vitalgru.scoring.HourRisk.outside`): ``{"hours": how many,
    "first_hour": the first (None when none), "reasons": each phrase once, in order}``."""
    flagged = [(h, r) for h, r in zip(hours, outside, strict=True) if r]
    reasons = list(dict.fromkeys(p for _, r in flagged for p in r))
    return {
        "hours": len(flagged),
        "first_hour": int(flagged[0][0]) if flagged else None,
        "reasons": reasons,
    }


def outside_html(s: Mapping[str, Any]) -> str:
    """The page's warning that a stay's risk is an extrapolation (``outside_population`` of
    a :func:`~vitalgru.reports.early_warning.stay_summary` dict); empty when every hour was
    inside the population."""
    o = s.get("outside_population") or {}
    if not o.get("hours"):
        return ""
    shown_reasons = o["reasons"][:MAX_REASONS_SHOWN]
    more = len(o["reasons"]) - len(shown_reasons)
    return (
        f"<p class=hi>Outside the model's training population in {o['hours']} of "
        f"{s['n_hours']} hours scored (from ICU hour {o['first_hour']}): "
        + html.escape("; ".join(shown_reasons))
        + (f" (and {more} more)" if more > 0 else "")
        + ". The model was trained on adult ICU stays; these risk scores are extrapolations "
        "it was not validated on.</p>"
    )


def outside_mark(s: Mapping[str, Any]) -> str:
    """The mark, beside a stay's risk in a table, of hours scored outside the training
    population (``outside_population`` of a
    :func:`~vitalgru.reports.early_warning.stay_summary` dict); empty when none."""
    hours = (s.get("outside_population") or {}).get("hours")
    return f" <span class=hi>(outside the training population: {hours} h)</span>" if hours else ""
