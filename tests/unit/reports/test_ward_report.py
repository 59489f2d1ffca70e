"""The live ward page: patients needing attention first, everything escaped, nothing
invented where a value is missing."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html


def _ecg(pid: str, alarms: list[dict]) -> dict:
    return {"patient_id": pid, "received_s": 3725.0, "hr_bpm": 72.4, "beats": 200,
            "counts": {"N": 190, "S": 4, "V": 6, "F": 0, "Q": 0}, "rejected_pct": 2.5,
            "alarms": alarms}  # fmt: skip


def test_order_values_and_escaping() -> None:
    quiet = _ecg("a-quiet", [])
    loud = _ecg("<b>z</b>", [{"kind": "ventricular_run", "message": "3 V beats at 150 bpm"}])
    risky = {"patient_id": "icu-2", "in_alarm": True, "alarm_episodes": 1,
             "last_hour": {"hour": 30, "risk": 0.41, "probability": 0.123},
             "alarm_drivers": [{"text": "Lactate 4.2 mmol/L (now; risk 0.18 had it been "
                                        "typical, 2.4)"}, {"text": "Temp <38.9> °C"}]}  # fmt: skip
    calm = {"patient_id": "icu-1", "in_alarm": False, "alarm_episodes": 0,
            "last_hour": {"hour": 5, "risk": 0.02, "probability": None},
            "assembling": {6: {"hr_bpm": 2, "lactate_mmol_l": 1}}}  # fmt: skip
    new = {"patient_id": "icu-3", "in_alarm": False, "alarm_episodes": 0, "last_hour": None}
    page = ward_page_html([quiet, loud], [calm, new, risky], model="m")
    assert "&lt;b&gt;z&lt;/b&gt;" in page and "<b>z</b>" not in page
    assert page.index("&lt;b&gt;z") < page.index("a-quiet")  # the alarm first
    assert page.index("icu-2") < page.index("icu-1") < page.index("icu-3")
    # 1:02:05 monitored, 72 bpm, V 6 of 200 = 3.0 %, S 2.0 %
    assert "<td class=n>1:02:05</td><td class=n>72</td><td class=n>200</td>" in page
    assert "<td class=n>3.0</td><td class=n>2.0</td><td class=n>2.5</td>" in page
    assert "Ventricular run: 3 V beats at 150 bpm" in page
    assert "<td>30</td><td class=n>0.410</td><td class=n>12 %</td>" in page
    assert "<td>5</td><td class=n>0.020</td><td class=n>–</td>" in page  # no probability
    assert "2 patient(s) on ECG monitoring, 3 on sepsis scoring" in page
    # what raised the risk of the alarm going on, escaped; nothing for the others
    assert (
        "<td>Lactate 4.2 mmol/L (now; risk 0.18 had it been typical, 2.4); Temp &lt;38.9&gt; "
        "°C</td><td></td></tr>" in page
    )
    assert "<td class=n>0</td><td></td><td>hour 6: 3 value(s)</td></tr>" in page  # arriving
    assert "No patient is being monitored" in ward_page_html([], [])
    # in alarm, with what raised it not known (its onset gone from the log): said, as the CDS
    # card says it, not a blank cell
    unknown = {**risky, "alarm_drivers": []}
    assert "<td>not known</td><td></td></tr>" in ward_page_html([], [unknown])


def test_alarms_no_one_has_acknowledged_come_first() -> None:
    seen = _ecg("a-seen", [{"kind": "pause", "message": "no beat for 3.4 s",
                            "acknowledged": {"by": "RN Diaz", "at": "t", "note": ""}}])  # fmt: skip
    unseen = _ecg("b-unseen", [{"kind": "pause", "message": "no beat for 3.1 s"}])
    page = ward_page_html([seen, unseen], [])
    assert page.index("b-unseen") < page.index("a-seen")
    assert "<td class=n>1 <span class=hi>(1 not acknowledged)</span></td>" in page
    assert "no beat for 3.4 s (acknowledged by RN Diaz)" in page
    risky = {"patient_id": "icu-2", "in_alarm": True, "alarm_episodes": 1,
             "last_hour": {"hour": 30, "risk": 0.41, "probability": None},
             "alarm_acknowledged": {"by": "Dr <O>", "at": "t", "note": ""}}  # fmt: skip
    fresh = {**risky, "patient_id": "icu-3", "alarm_acknowledged": None,
             "last_hour": {"hour": 3, "risk": 0.2, "probability": None}}  # fmt: skip
    page = ward_page_html([], [risky, fresh])
    assert page.index("icu-3") < page.index("icu-2")  # not yet seen, though the lower risk
    assert "<span class=hi>in alarm</span> (acknowledged by Dr &lt;O&gt;)" in page
    assert "<span class=hi>in alarm, not acknowledged</span>" in page


def _pause(state: str, **more: object) -> dict:
    return {"seq": 3, "kind": "pause", "message": "pause: no heartbeat detected for 3.7 s",
            "onset_at": "2026-12-07T12:44:59.610+00:00", "state": state, **more}  # fmt: skip


def test_the_ward_says_when_the_latest_ecg_alarm_began_and_whether_it_goes_on() -> None:
    # the column had neither time nor end: a pause going on read as one over long ago
    going = ward_page_html([_ecg("bed-4", [_pause("going_on")])], [])
    assert (
        "Pause at 2026-12-07 12:44:59 UTC (<span class=hi>going on</span>): pause: no "
        "heartbeat detected for 3.7 s" in going
    )
    end = {"seq": 4, "at": "2026-12-07T12:45:09+00:00", "kind": "beats_resumed",
           "reason": None, "message": "heartbeats are detected again after the pause"}  # fmt: skip
    over = ward_page_html([_ecg("bed-4", [_pause("ended", ended=end)])], [])
    assert (
        "Pause at 2026-12-07 12:44:59 UTC (ended 2026-12-07 12:45:09 UTC: heartbeats are "
        "detected again after the pause): pause" in over
    )
    assert "going on</span>" not in over
    # its end gone from the log: ended all the same (the ward holds no such condition now)
    assert "(ended (its end is no longer in the event log))" in ward_page_html(
        [_ecg("bed-4", [_pause("ended")])], []
    )
    # a run is momentary; a pause behind it that goes on is said too
    run = {"seq": 5, "kind": "ventricular_run", "message": "3 V beats at 150 bpm",
           "onset_at": "2026-12-07T12:46:00+00:00", "state": "momentary"}  # fmt: skip
    both = ward_page_html([_ecg("bed-4", [_pause("going_on"), run])], [])
    assert "Ventricular run at 2026-12-07 12:46:00 UTC (momentary" in both
    assert "<span class=hi>still going on</span>: Pause since 2026-12-07 12:44:59 UTC" in both


def test_the_ecg_page_says_of_each_alarm_whether_it_goes_on_or_when_it_ended() -> None:
    end = {"seq": 4, "at": "2026-12-07T12:45:09+00:00", "kind": "beats_resumed",
           "reason": None, "message": "heartbeats are detected again after the pause"}  # fmt: skip
    summary = {**_ecg("bed-4", [_pause("ended", ended=end), _pause("going_on", seq=6)]),
               "admitted_at": "2026-12-07T12:40:00+00:00"}  # fmt: skip
    page = ecg_patient_page_html(summary, [])
    assert "<th scope=col>going on or ended</th>" in page
    rows = page.split("<th scope=col>going on or ended</th>")[1].split("</tr>")
    # newest first: the pause going on, then the one a heartbeat ended
    assert "<td><span class=hi>going on</span></td>" in rows[1]
    assert (
        "<td>ended 2026-12-07 12:45:09 UTC: heartbeats are detected again after the "
        "pause</td>" in rows[2]
    )


def test_the_ward_names_the_beat_classes_its_columns_count() -> None:
    # "V %" and "S %" with no word of what V and S are
    page = ward_page_html([_ecg("bed-4", [])], [])
    assert (
        "<th scope=col>V % (ventricular ectopic)</th><th scope=col>S % (supraventricular ectopic)</th>"
        in page
    )
    assert (
        "Beat classes (AAMI EC57): N normal or bundle branch block; S supraventricular "
        "ectopic; V ventricular ectopic; F fusion; Q unclassifiable or paced." in page
    )


def test_the_ecg_pages_strips_say_when_they_start_and_carry_the_legend() -> None:
    strip = {"samples": [0.0] * 2500, "fs": 250.0, "start_s": 54.889, "onset_s": 59.9,
             "beats": [{"time_s": 56.0, "label": "Q"}], "kind": "pause",
             "message": "pause: no heartbeat detected for 3.7 s",
             "start_at": "2026-12-07T12:44:46.499+00:00"}  # fmt: skip
    summary = {**_ecg("bed-4", [_pause("going_on")]), "admitted_at": "2026-12-07T12:40:00Z"}
    page = ecg_patient_page_html(summary, [strip], zone=ZoneInfo("Europe/Berlin"))
    assert "strip from 2026-12-07 13:44:46.499 CET</text>" in page
    assert ">unclassifiable or paced</text>" in page and ">0 s</text>" in page


def test_a_small_probability_is_never_shown_as_zero() -> None:
    """Whole percent showed a probability of 0.4 % as "0": certainly not septic."""
    low = {"patient_id": "icu-9", "in_alarm": False, "alarm_episodes": 0,
           "last_hour": {"hour": 20, "risk": 0.031, "probability": 0.004}}  # fmt: skip
    page = ward_page_html([], [low])
    assert "<td class=n>0.4 %</td>" in page
    assert "probability of sepsis now or within 6 hours" in page


def test_the_risk_score_is_named_a_score_beside_its_alarm_line() -> None:
    """A risk of 0.500 beside a probability of 6 % read as a 50 % chance of sepsis."""
    at = {"patient_id": "icu-4", "in_alarm": True, "alarm_episodes": 1,
          "last_hour": {"hour": 55, "risk": 0.0921, "probability": 0.026}}  # fmt: skip
    page = ward_page_html([], [at], threshold=0.0924)
    assert "<th scope=col>risk score (alarm line 0.0924)</th>" in page
    assert "<td class=n>0.0921</td><td class=n>2.6 %</td>" in page  # not "0.092" under it
    assert "not a probability (a score of 0.500 is not a 50 % chance)" in page
    assert "<th scope=col>risk score (not a probability)</th>" in ward_page_html([], [at])


def test_when_the_latest_hour_was_scored_and_a_feed_gone_quiet_are_shown() -> None:
    """A feed that died hours ago kept showing its last hour as if current."""
    fresh = {"patient_id": "icu-1", "in_alarm": False, "alarm_episodes": 0,
             "last_hour": {"hour": 36, "risk": 0.02, "probability": 0.006},
             "last_scored_at": "2026-12-07T12:43:53+00:00", "no_data_since": None}  # fmt: skip
    quiet = {**fresh, "patient_id": "icu-2", "last_scored_at": "2026-12-07T08:43:53+00:00",
             "no_data_since": "2026-12-07T08:43:50+00:00"}  # fmt: skip
    page = ward_page_html([], [fresh, quiet])
    assert "<td>36 (scored 2026-12-07 12:43 UTC)</td>" in page
    assert (
        "<td>36 (scored 2026-12-07 08:43 UTC) <span class=hi>no data since 2026-12-07 08:43 "
        "UTC</span></td>" in page
    )
    assert page.index("icu-2") < page.index("icu-1")  # the quiet feed first
    assert 'sent nothing for 3 h (2 h past the hourly row due) is marked "no data since"' in page


def test_a_probability_under_a_tenth_of_a_percent_is_escaped() -> None:
    """The probability "<0.1 %" went into the sepsis table raw, where "<" opens a tag."""
    low = {"patient_id": "icu-9", "in_alarm": False, "alarm_episodes": 0,
           "last_hour": {"hour": 20, "risk": 0.001, "probability": 0.0001}}  # fmt: skip
    page = ward_page_html([], [low])
    assert "<td class=n>&lt;0.1 %</td>" in page
    assert re.findall(r"<(?![a-zA-Z/!])", page) == []


def test_an_alarm_from_before_a_restart_is_not_marked_on_the_new_streams_trend() -> None:
    """Its onset_s is on the stream before the restart: marked on the new one's chart, a
    pause 40 s into the old stream read as one 40 s into the new."""
    old = _pause("going_on", onset_s=40.0, raised_at_s=46.0, before_restart=True)
    new = _pause("going_on", seq=9, onset_s=100.0, raised_at_s=106.0)
    trend = {"patient_id": "bed-4", "stream_started_at": "2026-12-07T12:50:00+00:00",
             "monitored_s": 180.0, "hr_trend_bpm": [70.0, 72.0, 71.0]}  # fmt: skip
    for alarms, marks in (([old], 0), ([old, new], 1)):
        summary = {**_ecg("bed-4", alarms), "admitted_at": "2026-12-07T12:40:00+00:00"}
        page = ecg_patient_page_html(summary, [], trend)
        assert page.count(">P</text>") == marks
