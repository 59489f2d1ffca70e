"""The live ward at a glance: one HTML page over what the gateway's ward holds now.

For each ECG patient the heart rate, the beats and ectopic shares so far, the share of
recent beats in rejected signal and the latest alarm; for each patient on sepsis scoring the
latest ICU hour's risk, its recalibrated probability and whether an alarm episode is going
on. Patients needing attention come first. Plain data in (the summaries of
:class:`vitalgru.scoring.ward.Ward`), text out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

from vitalgru.population import ECG_SCOPE
from vitalgru.reports.html import clock, page, shown_at, table, zone_name
from vitalgru.reports.monitoring import ALERT_NAMES, hr_chart
from vitalgru.reports.strip import CLASS_NAMES, strip_svg
from vitalgru.reports.ward_alarms import (
    acknowledged_note,
    alarm_at,
    alarm_state_html,
    ecg_alarms,
    escalated_word,
    strip_link,
    unacknowledged,
)
from vitalgru.sepsis_display import NO_DATA_AFTER, OUTCOME, probability_text, risk_decimals

__all__ = ["ecg_patient_page_html", "ward_page_html"]

#: Alarm strips drawn on an ECG patient's page (the newest).
PAGE_STRIPS = 3
#: The minutes of a stream the gateway keeps over a restart, its last day
#: (:data:`vitalgru.scoring.ward_ecg_trend.TREND_KEEP_MINUTES`).
_KEPT_DAY = 24 * 60


def _first_minute_at(trend: Mapping[str, Any], end: str) -> str:
    """When the first minute of a trend kept from before a restart began (the page said the
    stream's start, a day or more early for a longer stream): its stream's start, that plus
    ``first_minute`` for a trend cut to its last day, and for a day's trend without it (cut
    by an older version, which did not say where) the minutes it holds before ``end``, when
    the stream ended."""
    start, first = str(trend.get("stream_started_at", "")), trend.get("first_minute")
    minutes = len(trend.get("hr_trend_bpm") or [])
    try:
        if first is None and minutes >= _KEPT_DAY:
            return "about " + (datetime.fromisoformat(end) - timedelta(minutes=minutes)).isoformat()
        return (datetime.fromisoformat(start) + timedelta(minutes=int(first or 0))).isoformat()
    except (TypeError, ValueError):
        return start


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "–"


def _ecg_rows(patients: Sequence[Mapping[str, Any]], zone: tzinfo | None) -> str:
    e = html.escape
    order = sorted(
        patients,
        key=lambda p: (not unacknowledged(ecg_alarms(p)), not ecg_alarms(p), str(p["patient_id"])),
    )
    rows = []
    for p in order:
        real = ecg_alarms(p)
        last = real[-1] if real else None
        alarm = "none"
        if last:
            at, state = alarm_at(last, zone), alarm_state_html(last, zone)
            alarm = (
                e(ALERT_NAMES.get(last["kind"], last["kind"]))
                + (f" at {e(at)}" if at != "–" else "")
                + (f" ({state})" if state else "")
                + f": {e(str(last['message']))}{e(acknowledged_note(last))}"
            )
        going = [a for a in real[:-1] if a.get("state") == "going_on"]
        if going:  # a condition that lasts (a pause, a lost feed) behind a newer alarm
            alarm += "; <span class=hi>still going on</span>: " + "; ".join(
                f"{e(ALERT_NAMES.get(a['kind'], a['kind']))} since {e(alarm_at(a, zone))}"
                for a in reversed(going)
            )
        if last and last.get("strip_s") and "seq" in last:  # its ECG, for the one who answers
            alarm += " " + strip_link(
                f"events/{int(last['seq'])}/strip.svg", last, zone, p["patient_id"]
            )
        if p.get("population_warning"):  # not an alarm: the labels are extrapolations
            alarm += f" <span class=hi>({e(p['population_warning'])})</span>"
        if p.get("polarity_warning"):  # not an alarm, but the leads want checking
            alarm += (
                " <span class=hi>(check the leads: the QRS points against its usual way)</span>"
            )

        unseen = unacknowledged(real)
        n_alarms = f"{len(real)}" + (
            f" <span class=hi>({unseen} not acknowledged)</span>" if unseen else ""
        )
        hr = "–" if p["hr_bpm"] is None else f"{p['hr_bpm']:.0f}"
        rejected = "–" if p["rejected_pct"] is None else f"{p['rejected_pct']:.1f}"
        c, n = p["counts"], p["beats"]
        pid = str(p["patient_id"])
        rows.append(
            f'<tr><th scope=row><a href="ecg/{quote(pid, safe="")}/page">{e(pid)}</a></th>'
            f"<td class=n>{clock(p['received_s'])}</td>"
            f"<td class=n>{hr}</td><td class=n>{n}</td><td class=n>{_pct(c['V'], n)}</td>"
            f"<td class=n>{_pct(c['S'], n)}</td><td class=n>{rejected}</td>"
            f"<td class=n>{n_alarms}</td><td>{alarm}</td></tr>"
        )
    return "".join(rows)


def _latest_hour(p: Mapping[str, Any], zone: tzinfo | None) -> str:
    """The latest ICU hour of a sepsis patient, when it was scored, and whether the feed has
    gone quiet (HTML)."""
    h = p["last_hour"]
    out = "–" if h is None else str(h["hour"])
    if h is not None and p.get("last_scored_at"):
        out += f" (scored {html.escape(shown_at(p['last_scored_at'], zone, unit='min'))})"
    if p.get("no_data_since"):
        out += f" <span class=hi>no data since {html.escape(shown_at(p['no_data_since'], zone, unit='min'))}</span>"
    return out


def _sepsis_rows(
    patients: Sequence[Mapping[str, Any]], d: int = 3, zone: tzinfo | None = None
) -> str:
    e = html.escape
    order = sorted(
        patients,
        key=lambda p: (
            not p["in_alarm"],
            bool(p.get("alarm_acknowledged")),
            not p.get("no_data_since"),  # a feed gone quiet before the quiet patients
            -(p["last_hour"] or {}).get("risk", 0.0),
        ),
    )
    rows = []
    for p in order:
        h = p["last_hour"]
        hour = _latest_hour(p, zone)
        risk = "–" if h is None else f"{h['risk']:.{d}f}"
        if h is not None and h.get("outside"):  # a child: the score is an extrapolation
            risk += " <span class=hi>(outside the training population)</span>"
        prob = (
            "–" if h is None or h.get("probability") is None
            else e(probability_text(h["probability"]))  # "<0.1 %"
        )  # fmt: skip
        ack = p.get("alarm_acknowledged")
        state = (
            "no"
            if not p["in_alarm"]
            else "<span class=hi>in alarm</span> (a repeat within the lockout: paged no one)"
            if p.get("alarm_repeated") and not ack
            else f"<span class=hi>in alarm</span>{e(acknowledged_note({'acknowledged': ack}))}"
            if ack
            else f"<span class=hi>in alarm, {escalated_word(p['alarm_escalated'])}, not acknowledged</span>"
            if p.get("alarm_escalated")
            else "<span class=hi>in alarm, not acknowledged</span>"
        )
        # in alarm with what raised it not known: said, as the CDS card says it (a blank)
        why = "; ".join(d["text"] for d in p.get("alarm_drivers", []))
        why = why or ("not known" if p["in_alarm"] else "")
        open_ = "; ".join(f"hour {h}: {sum(n.values())} value(s)"
                          for h, n in (p.get("assembling") or {}).items())  # fmt: skip
        pid = str(p["patient_id"])
        link = f'<a href="vitals/{quote(pid, safe="")}/page">{e(pid)}</a>'  # the stay's page
        rows.append(
            f"<tr><th scope=row>{link}</th><td>{hour}</td>"
            f"<td class=n>{risk}</td><td class=n>{prob}</td><td>{state}</td>"
            f"<td class=n>{p['alarm_episodes']}</td><td>{e(why)}</td><td>{e(open_)}</td></tr>"
        )
    return "".join(rows)


def ward_page_html(
    ecg: Sequence[Mapping[str, Any]],
    sepsis: Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    generated: datetime | None = None,
    refresh_s: int | None = None,
    zone: tzinfo | None = None,
    threshold: float | None = None,
) -> str:
    """One HTML page over the ward's ECG summaries
    (:meth:`vitalgru.scoring.ward.Ward.ecg_summary`) and sepsis summaries
    (:meth:`vitalgru.scoring.ward.Ward.sepsis_summary`), patients with alarms first; with
    ``refresh_s``, a screen that loads itself again every that many seconds. Times are
    shown in ``zone`` (None: UTC), each labelled with it. ``threshold``: the sepsis model's
    alarm line, named in the risk score's header and printed with as many decimals as keep
    each score on its side of it."""
    e = html.escape
    parts = []
    if ecg:
        parts.append(
            "<section><h2>ECG</h2><p>Beat classes (AAMI EC57): "
            + "; ".join(f"{k} {e(v)}" for k, v in CLASS_NAMES.items())
            + f". {e(ECG_SCOPE)}</p>"
            + table(
                "Patients on ECG monitoring, alarms not acknowledged first",
                [
                    "patient",
                    "monitored (h:mm:ss)",
                    "heart rate (bpm, last minute)",
                    "beats",
                    "V % (ventricular ectopic)",
                    "S % (supraventricular ectopic)",
                    "recent beats in rejected signal %",
                    "alarms",
                    "latest alarm (its onset; going on, ended or momentary)",
                ],
                _ecg_rows(ecg, zone),
            )
            + "</section>"
        )
    if sepsis:
        scores = [p["last_hour"]["risk"] for p in sepsis if p["last_hour"] is not None]
        d = 3 if threshold is None else risk_decimals((v, threshold) for v in scores)
        line = (
            "not a probability" if threshold is None
            else "no alarm line: the model never alarms" if not math.isfinite(threshold)
            else f"alarm line {threshold:.{d}f}"
        )  # fmt: skip
        parts.append(
            "<section><h2>Sepsis early warning</h2>"
            + table(
                "Patients on sepsis scoring, alarms first",
                [
                    "patient",
                    "latest ICU hour",
                    f"risk score ({line})",
                    f"probability of {OUTCOME}",
                    "alarm",
                    "alarm episodes",
                    "what raised the risk score when the alarm began",
                    "being assembled from observations",
                ],
                _sepsis_rows(sepsis, d, zone),
            )
            + "</section>"
        )
    if not parts:
        parts.append("<p>No patient is being monitored.</p>")
    intro = (
        f"{len(ecg)} patient(s) on ECG monitoring, {len(sepsis)} on sepsis scoring; patients "
        "with alarms first. Beat shares count every beat labelled since admission."
    )
    if sepsis:
        intro += (
            " The sepsis risk score is the scale the model's alarm line is drawn on, not a "
            "probability (a score of 0.500 is not a 50 % chance); the probability is that "
            "score recalibrated on the model's validation patients. A patient whose feed has "
            f"sent nothing for {NO_DATA_AFTER.total_seconds() / 3600:g} h (2 h past the hourly "
            'row due) is marked "no data since": the risk shown is not current.'
        )
    return page(
        "Ward overview (live)", intro, "".join(parts), model=model, generated=generated,
        refresh_s=refresh_s, zone=zone,
    )  # fmt: skip


def ecg_patient_page_html(
    summary: Mapping[str, Any],
    strips: Sequence[Mapping[str, Any]],
    trend: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    generated: datetime | None = None,
    zone: tzinfo | None = None,
) -> str:
    """One live ECG patient for a clinician: the beats by class since admission, the heart
    rate, every alarm kept (newest first, with its time on the wall clock, whether it goes
    on or when it ended, and a link to its strip), and the newest alarm strips drawn
    (:func:`vitalgru.reports.strip.strip_svg`). Times are shown in ``zone`` (None: UTC),
    each labelled with it.

    ``summary`` is :meth:`vitalgru.scoring.ward.Ward.ecg_summary`; ``strips`` the alarms'
    strips (:meth:`vitalgru.scoring.ward.Ward.strip`), newest first; ``trend``
    (:meth:`vitalgru.scoring.ward.Ward.ecg_trend`) adds the heart rate minute by minute of
    the current stream, the alarms' onsets marked, and of the streams before the gateway's
    restarts, newest first."""
    e = html.escape
    pid = str(summary["patient_id"])
    c, n = summary["counts"], summary["beats"]
    hr = "–" if summary["hr_bpm"] is None else f"{summary['hr_bpm']:.0f}"
    beats = "".join(
        f"<tr><th scope=row>{k}</th><td>{e(CLASS_NAMES[k])}</td><td class=n>{c.get(k, 0)}</td>"
        f"<td class=n>{_pct(c.get(k, 0), n)}</td></tr>"
        for k in CLASS_NAMES
    )
    alarms = "".join(
        f"<tr><td>{e(alarm_at(a, zone))}</td>"
        f"<td>{e(ALERT_NAMES.get(a['kind'], a['kind']))}</td><td>{e(str(a['message']))}"
        f"{e(acknowledged_note(a))}</td><td>{alarm_state_html(a, zone)}</td><td>"
        + (strip_link(f"../../events/{int(a['seq'])}/strip.svg", a, zone)
           if a.get("strip_s") and "seq" in a else "")
        + "</td></tr>"
        for a in reversed(summary["alarms"])
    )  # fmt: skip
    drawn = "".join(
        "<figure>"
        + strip_svg(st["samples"], st["fs"], start_s=st["start_s"], beats=st["beats"],
                    onset_s=st["onset_s"],
                    title=f"{ALERT_NAMES.get(st['kind'], st['kind'])}: {st['message']} · strip "
                    f"from {shown_at(st.get('start_at'), zone, unit='ms')}")
        + "</figure>"
        for st in strips[:PAGE_STRIPS]
    )  # fmt: skip
    chart = ""
    if trend is not None:
        current = [a for a in summary["alarms"]  # on this stream's clock: not those before
                   if "onset_s" in a and "raised_at_s" in a and not a.get("before_restart")]  # fmt: skip
        drawn_hr = hr_chart({**trend, "alerts": current})
        if drawn_hr:
            chart = (f"<p>Heart rate (bpm) by minute since "
                     f"{e(shown_at(trend['stream_started_at'], zone))}"
                     " (a gap: too few beats in accepted signal); alarm onsets marked V, S, "
                     f"E (frequent ventricular ectopy) and P (pause):</p>{drawn_hr}")  # fmt: skip
        earlier = list(trend.get("earlier", []))  # each ended where the next one began
        ends = [t["stream_started_at"] for t in earlier[1:]] + [trend["stream_started_at"]]
        for t, end in reversed(list(zip(earlier, ends[: len(earlier)], strict=True))):
            before = hr_chart({"patient_id": pid, "hr_trend_bpm": t["hr_trend_bpm"],
                               "monitored_s": 60.0 * len(t["hr_trend_bpm"]), "alerts": []})  # fmt: skip
            if before:
                first = _first_minute_at(t, end)
                about, first = ("about ", first[6:]) if first.startswith("about ") else ("", first)
                chart += (f"<p>Before a gateway restart, until {e(shown_at(end, zone))}: heart "
                          f"rate (bpm) by minute since {about}{e(shown_at(first, zone))} (its "
                          f"alarms are in the ward's event log):</p>{before}")  # fmt: skip
    body = (
        f"<section><h2>Beats</h2><p>Monitored {clock(summary['received_s'])} (h:mm:ss) since "
        f"{e(shown_at(summary['admitted_at'], zone))}; heart rate {hr} bpm over the "
        f"last minute; {n} beats labelled.</p>"
        + (f"<p class=hi>Check the leads: {e(summary['polarity_warning'])}.</p>"
           if summary.get("polarity_warning") else "")
        + (f"<p class=hi>Outside the model's training population: "
           f"{e(summary['population_warning'])}.</p>"
           if summary.get("population_warning") else "")
        + table("Beats by class since admission", ["class", "beats", "count", "%"], beats)
        + f"{chart}</section>"
        "<section><h2>Alarms</h2>"
        + (table("Alarms, newest first",
                 ["onset", "alarm", "detail", "going on or ended", "strip"], alarms)
           if alarms else "<p>No alarm was raised.</p>")
        + (f"<p>The newest alarm strips (25 mm/s, 10 mm/mV; each beat's class over it, as in "
           f"the table above, ? where the signal was rejected; the dashed line is the onset; "
           f"under each row the seconds from the strip's start):</p>{drawn}"
           if drawn else "")
        + "</section>"
    )  # fmt: skip
    intro = f"Beat classes follow AAMI EC57. {e(ECG_SCOPE)} Times are in {e(zone_name(zone))}."
    return page(f"ECG monitoring: patient {pid} (live)", intro, body, model=model,
                generated=generated, zone=zone)  # fmt: skip
