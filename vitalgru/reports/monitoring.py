"""A clinician's summary of monitored patients: one self-contained HTML page.

From what the live monitor (:mod:`vitalgru.scoring`) produced for each patient: how long
the ECG was watched and how much of it the signal-quality check rejected, the heart rate,
how many beats of each class and the ectopic burden, and every alarm with its time. It is
what a ward round reads; the numbers a data team checks are in the JSON beside it.

Plain data in, text out: no scoring here (the page's frame is :func:`vitalgru.reports.html.page`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from vitalgru.population import ECG_SCOPE, ECG_TRAINED_MAX_BPM, ecg_rate_warning
from vitalgru.reports.html import axis_top, clock, page, table, trend_chart
from vitalgru.reports.strip import CLASS_NAMES, strip_svg

__all__ = ["PatientSummary", "hr_chart", "monitoring_report_html", "patient_summary"]

CLASSES = ("N", "S", "V", "F", "Q")
ALERT_NAMES = {
    "ventricular_run": "Ventricular run",
    "supraventricular_run": "Supraventricular run",
    "frequent_ventricular_ectopy": "Frequent ventricular ectopy",
    "pause": "Pause",
    "poor_signal": "Poor signal",
    "feed_lost": "ECG feed lost",
    "feed_rate": "ECG feed off its sampling rate",
    "feed_restored": "ECG feed restored",
    "signal_restored": "ECG signal good again",
    "beats_resumed": "Heartbeats again after a pause",
    "monitor_restarted": "Monitor restarted",
}
#: Letters that mark an alarm's onset on the heart-rate chart (poor signal shows as a gap).
ALERT_MARKS = {
    "ventricular_run": "V",
    "supraventricular_run": "S",
    "frequent_ventricular_ectopy": "E",
    "pause": "P",
}
#: Heart-rate range is reported over 1-minute windows (a single short RR interval is not a rate).
HR_WINDOW_S = 60.0

PatientSummary = dict[str, Any]


def patient_summary(
    patient_id: str,
    monitored_s: float,
    times_s: Sequence[float],
    labels: Sequence[str],
    signal_ok: Sequence[bool],
    alerts: Sequence[Mapping[str, Any]],
    polarity: tuple[float, str | None] | None = None,
    lead: Mapping[str, Any] | None = None,
) -> PatientSummary:
    """The figures of one patient's page.

    Parameters
    ----------
    patient_id : str
    monitored_s : float
        Seconds of ECG monitored.
    times_s, labels, signal_ok : sequence
        Each labelled beat's R-peak time (s from admission), AAMI class and live quality
        verdict, in time order.
    alerts : sequence of mapping
        Alarms as dicts (``kind``, ``onset_s``, ``message``, ...; see
        :class:`vitalgru.scoring.Alert`).
    polarity : (float, str or None), optional
        Which way the QRS pointed and the warning when against the lead's usual way
        (:meth:`vitalgru.scoring.ArrhythmiaMonitor.qrs_polarity`).
    lead : mapping, optional
        The lead monitored (``lead``, ``lead_wanted``, ``lead_fallback``: a record without
        the model's lead nor its counterpart, monitored on the fall-back column), kept in
        the summary and said on the page when a fall-back.

    Returns
    -------
    dict
        ``{"patient_id", "monitored_s", "beats", "counts": {class: n}, "burden_pct":
        {class: %}, "hr_bpm": {"median", "min", "max"} (None without enough beats),
        "hr_trend_bpm": [the rate of each minute monitored, None where fewer than 10 beats
        were in accepted signal], "rejected_signal_pct", "alerts": [...], "qrs_polarity"
        (None: not measured), "polarity_warning", "minutes_above_trained_rate" (minutes of
        the trend faster than :data:`~vitalgru.population.ECG_TRAINED_MAX_BPM`),
        "population_warning" (:func:`~vitalgru.population.ecg_rate_warning` of the
        fastest minute)}``, and with ``lead`` its three keys.
    """
    t = np.asarray(times_s, dtype=np.float64)
    lab = np.asarray(labels, dtype=str)
    ok = np.asarray(signal_ok, dtype=bool)
    if not (t.shape == lab.shape == ok.shape):
        raise ValueError("times_s, labels and signal_ok must have one entry per beat")
    n = int(t.size)
    counts = {c: int((lab == c).sum()) for c in CLASSES}
    trusted = ok.sum()
    burden = {
        c: (100.0 * int(((lab == c) & ok).sum()) / trusted if trusted else None) for c in CLASSES
    }
    hr: dict[str, float | None] = {"median": None, "min": None, "max": None}
    n_min = int(math.ceil(monitored_s / HR_WINDOW_S)) if monitored_s > 0 else 0
    trend = np.full(n_min, np.nan)  # per-minute rate; NaN: too few beats in accepted signal
    if n >= 2:
        rr = np.diff(t)
        good = ok[1:] & ok[:-1] & (rr > 0)
        if good.any():
            hr["median"] = float(60.0 / np.median(rr[good]))
            win = np.floor(t[1:][good] / HR_WINDOW_S).astype(np.int64)
            for w in np.unique(win):
                if (win == w).sum() >= 10 and 0 <= w < n_min:  # fewer: no stable rate
                    trend[w] = 60.0 / float(np.median(rr[good][win == w]))
            if np.isfinite(trend).any():
                hr["min"], hr["max"] = float(np.nanmin(trend)), float(np.nanmax(trend))
    return {
        "patient_id": str(patient_id),
        "monitored_s": float(monitored_s),
        "beats": n,
        "counts": counts,
        "burden_pct": burden,
        "hr_bpm": hr,
        "hr_trend_bpm": [None if not np.isfinite(v) else round(float(v), 1) for v in trend],
        "rejected_signal_pct": 100.0 * float((~ok).mean()) if n else None,
        "alerts": [dict(a) for a in sorted(alerts, key=lambda a: float(a["onset_s"]))],
        "qrs_polarity": (
            round(polarity[0], 2) if polarity is not None and math.isfinite(polarity[0]) else None
        ),
        "polarity_warning": None if polarity is None else polarity[1],
        # minutes faster than the beat model was trained at: its labels there are extrapolations
        "minutes_above_trained_rate": int((trend > ECG_TRAINED_MAX_BPM).sum()),
        "population_warning": ecg_rate_warning(hr["max"]),
        **({} if lead is None else {k: lead.get(k) for k in _LEAD_KEYS}),
    }


#: What a summary keeps of the lead monitored (:func:`patient_summary`).
_LEAD_KEYS = ("lead", "lead_wanted", "lead_fallback")


def _num(v: float | None, digits: int = 0) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _hr_said(patient: object, bpm: Sequence[float], marks: Sequence[tuple[float, str]]) -> str:
    """What the heart-rate chart shows, in words (WCAG 2.1 1.1.1): its range, the minutes
    without a rate and each alarm onset marked, at its minute of monitoring."""
    rates = [v for v in bpm if math.isfinite(v)]
    lo, hi = f"{min(rates):.0f}", f"{max(rates):.0f}"
    out = (f"Heart rate of patient {patient} by minute of monitoring, {len(bpm)} minute(s): "
           f"{lo if lo == hi else f'{lo} to {hi}'} bpm")  # fmt: skip
    if len(rates) < len(bpm):
        out += f"; {len(bpm) - len(rates)} minute(s) without enough beats for a rate"
    names = {v: k for k, v in ALERT_MARKS.items()}
    if marks:
        out += "; alarm onsets marked: " + ", ".join(
            f"{m} ({ALERT_NAMES[names[m]].lower()}) at minute {at:.1f}" for at, m in marks
        )
    return out


def hr_chart(p: Mapping[str, Any]) -> str:
    """Heart rate minute by minute (gaps where the signal was rejected), with a line at the
    onset of each arrhythmia or pause alarm, lettered as in :data:`ALERT_MARKS`; ``p`` has
    ``hr_trend_bpm``, ``monitored_s``, ``alerts`` (``kind``, ``onset_s``) and
    ``patient_id`` (a :func:`patient_summary`)."""
    bpm = [math.nan if v is None else float(v) for v in p["hr_trend_bpm"]]
    if not any(math.isfinite(v) for v in bpm):
        return ""
    minutes = [k + 0.5 for k in range(len(bpm))]  # each minute's rate at its middle
    span = max(len(bpm), 1)
    step = next((s for s in (5, 10, 30, 60, 180, 360, 720) if span / s <= 8), 1440)
    marks = [
        (float(a["onset_s"]) / 60.0, ALERT_MARKS[a["kind"]])
        for a in p["alerts"]
        if a["kind"] in ALERT_MARKS
    ]
    return trend_chart(
        minutes,
        bpm,
        y_max=max(150.0, axis_top(max(v for v in bpm if math.isfinite(v)))),
        x_step=step,
        x_start=0.0,
        x_end=p["monitored_s"] / 60.0,
        label=_hr_said(p["patient_id"], bpm, marks),
        marks=marks,
    )


def _strips_html(strips: Sequence[Mapping[str, Any]]) -> str:
    if not strips:
        return ""
    e = html.escape
    out = ["<p>ECG of the first alarm of each kind (lead as monitored; 25 mm/s, 10 mm/mV; "
           "each beat's class over it, ? where the signal was rejected; the dashed line is "
           "the onset; under each row the seconds from the strip's start):</p>"]  # fmt: skip
    for s in strips:
        title = (f"{ALERT_NAMES.get(s['kind'], s['kind'])} at {clock(float(s['onset_s']))}: "
                 f"{s['message']} · strip from {float(s['start_s']):.1f} s of monitoring")  # fmt: skip
        out.append(f"<figure>{strip_svg(s['samples'], s['fs'], start_s=s['start_s'], beats=s['beats'], onset_s=s['onset_s'], title=title)}"
                   f"<figcaption class=note>{e(title)}</figcaption></figure>")  # fmt: skip
    return "".join(out)


def _patient_html(p: PatientSummary, strips: Sequence[Mapping[str, Any]] = ()) -> str:
    e = html.escape
    hr = p["hr_bpm"]
    alert_rows = "".join(
        f"<tr><td>{clock(float(a['onset_s']))}</td>"
        f"<td>{e(ALERT_NAMES.get(a['kind'], a['kind']))}</td><td>{e(a['message'])}</td></tr>"
        for a in p["alerts"]
    )
    kinds = sorted({a["kind"] for a in p["alerts"]})
    headline = (
        ", ".join(
            f"{e(ALERT_NAMES.get(k, k))} ×{sum(a['kind'] == k for a in p['alerts'])}" for k in kinds
        )
        or "no alarms"
    )
    beat_rows = "".join(
        f"<tr><th scope=row>{c}</th><td>{e(CLASS_NAMES[c])}</td><td class=n>{p['counts'][c]}</td>"
        f"<td class=n>{_num(p['burden_pct'][c], 1)}</td></tr>"
        for c in CLASSES
    )
    warn = p.get("polarity_warning")
    leads = f"<p class=hi>Check the leads: {e(warn)}.</p>\n" if warn else ""
    if p.get("population_warning"):
        leads += (
            f"<p class=hi>Outside the model's training population in "
            f"{p.get('minutes_above_trained_rate', 0)} minute(s): fastest minute's "
            f"{e(p['population_warning'])}.</p>\n"
        )
    if p.get("lead_fallback"):  # a lead the model was not trained on
        leads = (f"<p class=hi>Monitored on a fall-back lead: {e(str(p.get('lead')))} for "
                 f"{e(str(p.get('lead_wanted')))}, which the record lacks (nor its limb-lead "
                 "counterpart): a lead the model was not trained on.</p>\n") + leads  # fmt: skip
    return f"""
<section>
<h2>Patient {e(p["patient_id"])}</h2>
<p class=head>{headline}</p>
<p>Monitored {clock(p["monitored_s"])} (h:mm:ss); {p["beats"]} beats labelled;
heart rate median {_num(hr["median"])} bpm (1-minute range {_num(hr["min"])}–{_num(hr["max"])}
bpm); {_num(p["rejected_signal_pct"], 1)} % of beats in signal the quality check rejected
(not counted in the burden). The chart: heart rate (bpm) by minute of monitoring, with
alarm onsets marked V (ventricular run), S (supraventricular run), E (frequent ventricular
ectopy) and P (pause); a gap is a minute without enough beats in accepted signal.</p>
{leads}{hr_chart(p)}
{
        table(
            f"Beats of patient {p['patient_id']} by class",
            ["class", "beats", "count", "burden %"],
            beat_rows,
        )
    }
{
        table(
            f"Alarms of patient {p['patient_id']}",
            ["onset (h:mm:ss)", "alarm", "detail"],
            alert_rows,
        )
        if alert_rows
        else "<p>No alarm was raised.</p>"
    }
{_strips_html(strips)}
</section>"""


def monitoring_report_html(
    patients: Sequence[PatientSummary],
    *,
    title: str = "ECG monitoring summary",
    model: str | None = None,
    generated: datetime | None = None,
    strips: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> str:
    """One HTML page summarising every patient (:func:`patient_summary` dicts), patients
    with alarms first; with ``strips`` (``{patient: [strip, ...]}``, as
    :func:`vitalgru.scoring.replay` keeps them), each patient's alarm strips drawn on ECG
    paper (:func:`vitalgru.reports.strip.strip_svg`)."""
    order = sorted(patients, key=lambda p: (not p["alerts"], str(p["patient_id"])))
    intro = (
        "Beat classes follow AAMI EC57; the burden counts beats in accepted signal only. "
        f"{html.escape(ECG_SCOPE)} "
        "Times are from the start of monitoring."
    )
    return page(
        title,
        intro,
        "".join(_patient_html(p, (strips or {}).get(str(p["patient_id"]), ())) for p in order),
        model=model,
        generated=generated,
    )
