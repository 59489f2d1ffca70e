"""A clinician's summary of sepsis early warning over ICU stays: one self-contained HTML page.

From the hourly risks the live monitor (:class:`vitalgru.scoring.EarlyWarningMonitor`) gave
each patient: the risk over the stay as a chart, each alarm episode (hours in a row with the
risk at or above the model's alarm threshold) with the vital signs and labs the bedside team
would look at first, as last measured when it began, and the values the monitor refused as
physiologically impossible. Patients in alarm at their latest hour come first, then those
who had an alarm; the rest share one table.

Values at an alarm are marked when outside the limits of the sepsis criteria clinicians use
(:data:`~vitalgru.reports.sepsis_values.KEY_MEASURES`).

Plain data in, text out: no scoring here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

import numpy as np

from vitalgru.reports.html import axis_top, page, shown_at, table, trend_chart
from vitalgru.reports.sepsis_values import (
    KEY_MEASURES,
    findings_html,
    outside_html,
    outside_mark,
    outside_population,
    refused_items,
    refused_text,
    shown,
)
from vitalgru.sepsis_display import NO_DATA_AFTER, OUTCOME, probability_text, risk_decimals

__all__ = ["KEY_MEASURES", "early_warning_report_html", "stay_summary"]

StaySummary = dict[str, Any]


def stay_summary(
    patient_id: str,
    hours: Sequence[int],
    risks: Sequence[float],
    threshold: float,
    values: Mapping[str, Sequence[float]],
    rejected: Sequence[Sequence[str]] | None = None,
    sepsis_label: Sequence[int] | None = None,
    probabilities: Sequence[float | None] | None = None,
    drivers: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    outside: Sequence[Sequence[str]] | None = None,
) -> StaySummary:
    """The figures of one patient's part of the page.

    Parameters
    ----------
    patient_id : str
    hours : sequence of int
        ICU hour (``ICULOS``) of each scored row, ascending.
    risks : sequence of float
        The monitor's risk for each row.
    threshold : float
        The model's alarm threshold (an hour is in alarm when its risk reaches it).
    values : mapping
        vitalgru column -> the value pushed at each row (NaN where not measured); the
        columns of :data:`KEY_MEASURES` that are present are reported, and a refused value
        is listed with its value when its column is here (give every refused column).
    rejected : sequence of sequence of str, optional
        For each row, the columns whose value the monitor refused as impossible (read as
        missing: not shown as a finding).
    sepsis_label : sequence of int, optional
        The reference ``SepsisLabel`` of each row, where known (replayed data): it turns 1
        six hours before the Sepsis-3 onset, as in the 2019 challenge.
    probabilities : sequence of float, optional
        The monitor's recalibrated probability for each row (:class:`HourRisk`
        ``probability``), when the model has a recalibration.
    drivers : mapping, optional
        ICU hour an alarm episode began -> the measurements that raised the model's risk
        most then (:meth:`vitalgru.scoring.RiskDriver.as_dict` dicts, with ``text``).
    outside : sequence of sequence of str, optional
        For each row, what put it outside the model's training population
        (:class:`HourRisk` ``outside``).

    Returns
    -------
    dict
        ``patient_id``, ``n_hours``, ``first_hour``, ``last_hour``, ``risk_last``,
        ``probability_last`` (None without probabilities),
        ``risk_max``, ``risk_max_hour``, ``threshold``, ``alarm_hours``,
        ``in_alarm_at_end``, ``episodes`` (``start_hour``, ``end_hour``, ``hours``,
        ``peak_risk``, ``findings``: column -> ``{"value", "hours_ago", "abnormal"}`` as last
        measured by the episode's first hour, ``drivers``: what raised the model's risk
        then, empty when not given), ``reference_onset_hour`` (None when not
        septic or not known; for a stay labelled from its first hour scored, the latest
        the onset can have been), ``labelled_from_first_hour``, ``first_alarm_lead_h``
        (onset minus the first alarm's hour, counting alarms up to 3 h after onset as the
        challenge does; None without one, and for a stay labelled from its first hour),
        ``rejected`` (``[{"hour", "column", "value"}]``), ``outside_population``
        (:func:`~vitalgru.reports.sepsis_values.outside_population`) and ``trajectory``
        (``hours``, ``risk``).
    """
    h = np.asarray(hours, dtype=np.int64)
    r = np.asarray(risks, dtype=np.float64)
    n = h.size
    if r.shape != (n,):
        raise ValueError("hours and risks must have one entry per row")
    if n and np.any(np.diff(h) <= 0):
        raise ValueError("hours must increase")
    rej = [tuple(x) for x in (rejected if rejected is not None else [()] * n)]
    if len(rej) != n:
        raise ValueError("rejected must have one entry per row")
    alarm = r >= threshold
    cols = [c for c in KEY_MEASURES if c in values]
    vals = {c: np.asarray(values[c], dtype=np.float64) for c in cols}
    refused = {(i, c) for i, row in enumerate(rej) for c in row}
    episodes = []
    i = 0
    while i < n:
        if not alarm[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and alarm[j + 1]:
            j += 1
        findings = {}
        for c in cols:  # the last accepted value at or before the episode's first hour
            k = next((k for k in range(i, -1, -1)
                      if math.isfinite(vals[c][k]) and (k, c) not in refused), None)  # fmt: skip
            if k is not None:
                # judged as shown: marked from the raw value, a lactate of 2.04 shown as
                # 2.0 was red against "> 2" and an SBP of 100.4 shown as 100 was not
                v = shown(float(vals[c][k]), c)
                findings[c] = {
                    "value": v,
                    "hours_ago": int(h[i] - h[k]),
                    "abnormal": bool(KEY_MEASURES[c][3](v)),
                }
        episodes.append(
            {
                "start_hour": int(h[i]),
                "end_hour": int(h[j]),
                "hours": int(h[j] - h[i] + 1),  # ICU hours: a stay may skip some
                "peak_risk": float(r[i : j + 1].max()),
                "findings": findings,
                "drivers": list((drivers or {}).get(int(h[i]), [])),
            }
        )
        i = j + 1
    onset = None
    lead = None
    from_first = False
    if sepsis_label is not None:
        y = np.asarray(sepsis_label)
        if y.shape != (n,):
            raise ValueError("sepsis_label must have one entry per row")
        pos = np.flatnonzero(y == 1)
        if pos.size:
            onset = int(h[pos[0]]) + 6
            # labelled from the first hour scored: the label may have turned 1 before it
            # (before the admission, even), so the onset is at or before that hour, and a
            # lead time counted from it would be made up
            from_first = bool(pos[0] == 0)
            early = np.flatnonzero(alarm & (h <= onset + 3))
            if early.size and not from_first:
                lead = float(onset - h[early[0]])
    refused_rows = [
        {"hour": int(h[k]), "column": c,
         "value": float(values[c][k]) if c in values else None}
        for k, row in enumerate(rej) for c in row
    ]  # fmt: skip
    top = int(np.argmax(r)) if n else None
    return {
        "patient_id": str(patient_id),
        "n_hours": int(n),
        "first_hour": int(h[0]) if n else None,
        "last_hour": int(h[-1]) if n else None,
        "risk_last": float(r[-1]) if n else None,
        "probability_last": (
            float(probabilities[-1])
            if n and probabilities is not None and probabilities[-1] is not None
            else None
        ),
        "risk_max": float(r[top]) if top is not None else None,
        "risk_max_hour": int(h[top]) if top is not None else None,
        "threshold": float(threshold),
        "alarm_hours": int(alarm.sum()),
        "in_alarm_at_end": bool(n and alarm[-1]),
        "episodes": episodes,
        "reference_onset_hour": onset,
        "labelled_from_first_hour": from_first,
        "first_alarm_lead_h": lead,
        "rejected": refused_rows,
        "outside_population": outside_population(
            [()] * n if outside is None else outside, h.tolist()
        ),
        "trajectory": {"hours": h.tolist(), "risk": [round(float(v), 4) for v in r]},
    }


def _risk_decimals(stays: Sequence[StaySummary]) -> int:
    """Decimals for the risk scores and alarm lines of a page
    (:func:`~vitalgru.sepsis_display.risk_decimals` over every score shown)."""
    return risk_decimals(
        (v, s["threshold"])
        for s in stays
        for v in (s["risk_max"], s["risk_last"], *(ep["peak_risk"] for ep in s["episodes"]))
        if v is not None
    )


def _chart(s: StaySummary, d: int = 3) -> str:
    """The risk over the stay: alarm episodes shaded, the threshold dashed, the reference
    onset (when known) marked. The risk axis runs from 0 to a round value above both the
    highest risk and twice the threshold: a model's risks are often far below 1, and on a
    0-1 axis they would lie flat."""
    hours = s["trajectory"]["hours"]
    risk = s["trajectory"]["risk"]
    if not hours:
        return ""
    thr = s["threshold"]
    level = thr if math.isfinite(thr) else None  # an infinite threshold: the model never alarms
    onset = None if s.get("labelled_from_first_hour") else s["reference_onset_hour"]
    return trend_chart(
        hours,
        risk,
        y_max=min(1.0, axis_top(max(max(risk), 2.0 * (level or 0.0)))),
        x_step=24,
        label=_chart_said(s, d),
        bands=[(ep["start_hour"] - 0.5, ep["end_hour"] + 0.5) for ep in s["episodes"]],
        level=level,
        marks=[(onset, "onset")] if onset is not None else (),
    )


def _chart_said(s: StaySummary, d: int = 3) -> str:
    """What the risk chart shows, in words (WCAG 2.1 1.1.1): the alarm line, the highest
    and latest scores, the hours shaded in alarm and the reference onset marked."""
    thr, onset = s["threshold"], s["reference_onset_hour"]
    out = (f"Sepsis risk score of patient {s['patient_id']} by ICU hour, {s['first_hour']} to "
           f"{s['last_hour']}; alarm line {thr:.{d}f}; highest {s['risk_max']:.{d}f} at ICU "
           f"hour {s['risk_max_hour']}, latest {s['risk_last']:.{d}f}")  # fmt: skip
    if s["episodes"]:
        out += "; shaded in alarm: ICU hours " + ", ".join(
            f"{ep['start_hour']}–{ep['end_hour']}" for ep in s["episodes"]
        )
    if onset is not None and not s.get("labelled_from_first_hour"):
        out += f"; reference sepsis onset marked at ICU hour {onset}"
    return out


def _headline(s: StaySummary, d: int = 3) -> str:
    if s["in_alarm_at_end"]:
        prob = s.get("probability_last")
        chance = (
            "" if prob is None
            else f"; estimated probability of {OUTCOME} {probability_text(prob)}"
        )  # fmt: skip
        text = (
            f"In alarm at the latest hour (ICU hour {s['last_hour']}, risk score "
            f"{s['risk_last']:.{d}f}{chance})"
        )
    elif s["episodes"]:
        text = (
            f"{len(s['episodes'])} alarm episode(s), the first at ICU hour "
            f"{s['episodes'][0]['start_hour']}; not in alarm at the latest hour"
        )
    else:
        text = "No alarm"
    return html.escape(text)


def _fresh_html(s: StaySummary, zone: tzinfo | None = None) -> str:
    """When the latest hour was scored and, for a feed gone quiet, since when nothing came
    (a live stay's page: ``last_scored_at`` and ``no_data_since``, when the summary has them),
    in ``zone`` (None: UTC)."""
    out = ""
    if s.get("last_scored_at"):
        at = html.escape(shown_at(s["last_scored_at"], zone, unit="min"))
        out += f"<p>The latest hour was scored at {at}.</p>"
    elif "last_scored_at" in s and s["n_hours"]:  # a live stay taken up after a restart
        out += "<p>The latest hour was scored before the gateway's restart (when is not kept).</p>"
    if s.get("no_data_since"):
        out += (
            f"<p class=hi>No data received since {html.escape(shown_at(s['no_data_since'], zone, unit='min'))} "
            f"(more than {NO_DATA_AFTER.total_seconds() / 3600:g} h): the feed may have "
            "stopped, and the risk shown is not current.</p>"
        )
    return out


def _reference_html(s: StaySummary) -> str:
    onset = s["reference_onset_hour"]
    if onset is None:
        return ""
    if s.get("labelled_from_first_hour"):
        return (
            "<p>Reference (replayed data): labelled septic (Sepsis-3, as labelled for the 2019 "
            f"challenge) from the first hour scored, ICU hour {s['first_hour']}: the onset was "
            f"at or before ICU hour {onset}, and no lead time can be given.</p>"
        )
    lead = s["first_alarm_lead_h"]
    if lead is None:
        when = "no alarm by 3 h after it"
    elif lead >= 0:
        when = f"the first alarm came {lead:.0f} h before it"
    else:
        when = f"the first alarm came {-lead:.0f} h after it"
    return (
        f"<p>Reference (replayed data): sepsis onset (Sepsis-3, as labelled for the 2019 "
        f"challenge) at ICU hour {onset}; {when}.</p>"
    )


def _stay_html(s: StaySummary, d: int = 3, zone: tzinfo | None = None) -> str:
    e = html.escape
    explained = any(ep.get("drivers") for ep in s["episodes"])
    rows = "".join(
        f"<tr><td class=n>{ep['start_hour']}</td><td class=n>{ep['end_hour']}</td>"
        f"<td class=n>{ep['hours']}</td><td class=n>{ep['peak_risk']:.{d}f}</td>"
        f"<td>{findings_html(ep['findings'])}</td>"
        + (f"<td>{e('; '.join(d['text'] for d in ep['drivers'])) or '—'}</td>" if explained else "")
        + "</tr>"
        for ep in s["episodes"]
    )
    episodes = (
        table(
            f"Alarm episodes of patient {s['patient_id']}",
            ["from ICU hour", "to", "hours", "peak risk score",
             "latest values when the alarm began",
             *(["what raised the model's risk most then"] if explained else [])],
            rows,
        )
        if rows
        else ""
    )  # fmt: skip
    if explained:
        episodes += (
            "<p class=note>What raised the model's risk: each measurement in turn set to "
            "its mean over the training patients (typical) at the hours it was measured, and "
            "the stay scored again. The model's reasons, not a diagnosis.</p>"
        )
    refused = "".join(f"<li>{t}</li>" for t in refused_items(s))
    refused_html = (
        f"<p>Values refused as physiologically impossible (read as missing):</p><ul>{refused}</ul>"
        if refused
        else ""
    )
    return f"""
<section>
<h2>Patient {e(s["patient_id"])}</h2>
<p class=head>{_headline(s, d)}</p>
{_fresh_html(s, zone)}<p>ICU hours {s["first_hour"]}–{s["last_hour"]} scored ({s["n_hours"]} rows); highest risk
score {s["risk_max"]:.{d}f} at ICU hour {s["risk_max_hour"]}; {s["alarm_hours"]} hour(s) in alarm.</p>
{outside_html(s)}{_reference_html(s)}{_chart(s, d)}{episodes}{refused_html}
</section>"""


def early_warning_report_html(
    stays: Sequence[StaySummary],
    *,
    title: str = "Sepsis early warning summary",
    model: str | None = None,
    generated: datetime | None = None,
    zone: tzinfo | None = None,
) -> str:
    """One HTML page over :func:`stay_summary` dicts: a section for every patient who had
    an alarm or a reference onset (in alarm at the latest hour first), one table for the
    rest. Wall-clock times are shown in ``zone`` (None: UTC), each labelled with it."""
    e = html.escape
    d = _risk_decimals(stays)
    # one patient's page (the gateway's live page) shows the stay whether or not it alarmed:
    # a risk climbing toward the threshold, values refused
    alone = len(stays) == 1 and stays[0]["n_hours"] > 0
    flagged = [s for s in stays if s["episodes"] or s["reference_onset_hour"] is not None or alone]
    flagged.sort(key=lambda s: (not s["in_alarm_at_end"], not s["episodes"],
                                str(s["patient_id"])))  # fmt: skip
    quiet = sorted((s for s in stays if s not in flagged), key=lambda s: str(s["patient_id"]))
    now = sum(s["in_alarm_at_end"] for s in stays)
    ever = sum(bool(s["episodes"]) for s in stays)
    thr = {round(s["threshold"], 6) for s in stays}
    overview = (
        f"<p class=head>{len(stays)} patient(s): {now} in alarm at their latest hour, "
        f"{ever} with an alarm during the stay.</p>"
    )
    quiet_rows = "".join(
        f"<tr><th scope=row>{e(s['patient_id'])}</th><td class=n>{s['first_hour']}–"
        f"{s['last_hour']}</td><td class=n>{s['risk_max']:.{d}f}</td><td class=n>"
        f"{s['risk_last']:.{d}f}{outside_mark(s)}</td><td>{refused_text(s) or '—'}</td></tr>"
        if s["n_hours"]
        else f"<tr><th scope=row>{e(s['patient_id'])}</th><td colspan=4>no hour scored yet</td></tr>"
        for s in quiet
    )
    head = ["patient", "ICU hours", "highest risk score", "latest risk score",
            "values refused as impossible"]  # fmt: skip
    rest = (
        "<section><h2>Patients without an alarm</h2>"
        f"{table('Risk scores of the patients without an alarm', head, quiet_rows)}</section>"
        if quiet
        else ""
    )
    never = (
        " An infinite alarm line means that never alarming scored best on the training "
        "patients: such a model raises no alarm."
        if any(not math.isfinite(t) for t in thr)
        else ""
    )
    chance = (
        f" The probability is of {OUTCOME}: the score recalibrated on the model's validation "
        "patients."
        if any(s.get("probability_last") is not None for s in stays)
        else ""
    )
    intro = (
        "Each hour's risk score uses only that hour and earlier ones. An hour is in alarm when "
        "its risk score reaches the model's alarm line "
        f"({', '.join(f'{t:.{d}f}' for t in sorted(thr))}), chosen on its training patients. "
        "The risk score is the scale the alarm line is drawn on, not a probability: a score of "
        f"0.500 is not a 50 % chance.{chance}{never} Values in red, their limit beside them, are "
        "outside the SIRS, qSOFA, SOFA, Sepsis-3 lactate or NEWS2 SpO2 limits ("
        + e("; ".join(f"{name} {limit} {unit}" for name, unit, limit, _ in KEY_MEASURES.values()))
        + "). Times are ICU hours (ICULOS)."
    )
    body = overview + "".join(_stay_html(s, d, zone) for s in flagged) + rest
    return page(title, intro, body, model=model, generated=generated, zone=zone)
