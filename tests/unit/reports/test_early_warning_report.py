"""The sepsis summary page: alarm episodes, findings and reference onset against
hand-worked stays, and a page that escapes what it is given and orders its patients."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest

from vitalgru.reports.early_warning import early_warning_report_html, stay_summary

NAN = float("nan")


def _stay(pid: str = "p1", label_from: int | None = 7):
    """Ten hours (ICU hours 1-10); risk crosses 0.5 at hours 3-4 and 8-10."""
    hours = list(range(1, 11))
    risk = [0.1, 0.2, 0.6, 0.7, 0.4, 0.3, 0.2, 0.55, 0.9, 0.8]
    values = {
        "hr_bpm": [80, NAN, 95, NAN, 0, NAN, NAN, NAN, 120, NAN],  # 0 at hour 5 refused
        "temp_c": [37.0, NAN, NAN, NAN, NAN, NAN, 38.5, NAN, NAN, NAN],
        "lactate_mmol_l": [NAN] * 10,
        "resp_per_min": [18] * 10,
    }
    rejected = [()] * 4 + [("hr_bpm",)] + [()] * 5
    labels = [0] * 10 if label_from is None else [int(h >= label_from) for h in hours]
    return stay_summary(pid, hours, risk, 0.5, values, rejected, labels)


class TestStaySummary:
    def test_episodes_findings_and_reference_onset(self) -> None:
        s = _stay()
        assert (s["n_hours"], s["first_hour"], s["last_hour"]) == (10, 1, 10)
        assert s["alarm_hours"] == 5 and s["in_alarm_at_end"] is True
        assert (s["risk_max"], s["risk_max_hour"], s["risk_last"]) == (0.9, 9, 0.8)
        first, second = s["episodes"]
        assert (first["start_hour"], first["end_hour"], first["hours"]) == (3, 4, 2)
        assert first["peak_risk"] == 0.7
        # at hour 3: HR 95 measured now (> 90: SIRS), Temp 37.0 from hour 1, no lactate
        assert first["findings"]["hr_bpm"] == {"value": 95.0, "hours_ago": 0, "abnormal": True}
        assert first["findings"]["temp_c"] == {"value": 37.0, "hours_ago": 2, "abnormal": False}
        assert "lactate_mmol_l" not in first["findings"]
        assert (second["start_hour"], second["end_hour"], second["hours"]) == (8, 10, 3)
        # at hour 8 the HR of hour 5 (0) was refused: the last accepted one is hour 3's
        assert second["findings"]["hr_bpm"]["value"] == 95.0
        assert second["findings"]["hr_bpm"]["hours_ago"] == 5
        assert second["findings"]["temp_c"] == {"value": 38.5, "hours_ago": 1, "abnormal": True}
        assert s["rejected"] == [{"hour": 5, "column": "hr_bpm", "value": 0.0}]
        # label turns 1 at hour 7: onset at 13; the first alarm (hour 3) came 10 h before
        assert s["reference_onset_hour"] == 13 and s["first_alarm_lead_h"] == 10.0

    def test_alarms_later_than_three_hours_after_onset_do_not_count(self) -> None:
        # label from hour 2: onset at 8; alarms at 3-4 count (lead 5 h)
        assert _stay(label_from=2)["first_alarm_lead_h"] == 5.0
        # from hour 1, the first hour scored: the onset may be earlier, no lead is counted
        assert _stay(label_from=1)["first_alarm_lead_h"] is None
        quiet = stay_summary("q", [1, 2, 3], [0.1, 0.2, 0.1], 0.5, {}, None, [1, 1, 1])
        assert quiet["reference_onset_hour"] == 7 and quiet["first_alarm_lead_h"] is None
        late = stay_summary("l", list(range(1, 12)), [0.1] * 10 + [0.9], 0.5, {}, None,
                            [1] * 11)  # fmt: skip
        assert late["episodes"][0]["start_hour"] == 11 and late["first_alarm_lead_h"] is None
        assert _stay(label_from=None)["reference_onset_hour"] is None

    def test_mistakes_are_clear_errors(self) -> None:
        with pytest.raises(ValueError, match="one entry per row"):
            stay_summary("p", [1, 2], [0.1], 0.5, {})
        with pytest.raises(ValueError, match="increase"):
            stay_summary("p", [2, 1], [0.1, 0.2], 0.5, {})
        with pytest.raises(ValueError, match="sepsis_label"):
            stay_summary("p", [1, 2], [0.1, 0.2], 0.5, {}, None, [0])


class TestPage:
    def test_order_escaping_and_the_quiet_table(self) -> None:
        loud = _stay("<b>x</b>")
        calm_with_onset = stay_summary(
            "b-onset", [1, 2, 3], [0.1, 0.2, 0.3], 0.5, {}, None, [0, 1, 1]
        )
        quiet = stay_summary("a-quiet", [1, 2], [0.1, 0.2], 0.5, {}, None, [0, 0])
        page = early_warning_report_html(
            [quiet, calm_with_onset, loud],
            model="models:/m@champion",
            generated=datetime(2026, 1, 2, tzinfo=UTC),
        )
        assert page.startswith("<!DOCTYPE html>") and "<script" not in page
        assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
        # in alarm now, then the septic patient with no alarm, then the table of the rest
        assert page.index("&lt;b&gt;x") < page.index("b-onset") < page.index("a-quiet")
        assert "3 patient(s): 1 in alarm at their latest hour, 1 with an alarm" in page
        assert "In alarm at the latest hour (ICU hour 10, risk score 0.800)" in page
        # the score is said to be no probability, and named a score wherever it is shown
        assert "the scale the alarm line is drawn on, not a probability" in page
        assert (
            re.search(r"highest risk\s+score 0.900", page)
            and "<th scope=col>peak risk score</th>" in page
        )
        # a recalibrated model's probability is given beside the risk
        loud_p = {**loud, "probability_last": 0.234}
        page_p = early_warning_report_html([loud_p], model="m")
        assert (
            "(ICU hour 10, risk score 0.800; estimated probability of sepsis now or within 6 hours "
            "23 %)" in page_p
        )
        assert "sepsis onset (Sepsis-3" in page and "no alarm by 3 h after it" in page
        assert "the first alarm came 10 h before it" in page
        assert "<span class=hi>HR 95 bpm (limit &gt; 90)</span>" in page
        assert "ICU hour 5: HR = 0" in page and "Temp &gt; 38 or &lt; 36 °C" in page
        assert page.count("<svg") == 2 and "Patients without an alarm" in page
        assert "not a medical device" in page and "2026-01-02 00:00 UTC" in page

    def test_what_raised_the_risk_is_shown_at_the_episode_it_began(self) -> None:
        lactate = {"column": "lactate_mmol_l", "risk_drop": 0.2,
                   "text": "Lactate 4.2 mmol/L (now; risk 0.40 had it been typical, 2.4)"}  # fmt: skip
        s = _stay()
        assert [ep["drivers"] for ep in s["episodes"]] == [[], []]
        plain = early_warning_report_html([s])
        assert "what raised the model" not in plain  # no column when nothing was explained
        hours = list(range(1, 11))
        risk = [0.1, 0.2, 0.6, 0.7, 0.4, 0.3, 0.2, 0.55, 0.9, 0.8]
        s = stay_summary("p", hours, risk, 0.5, {}, drivers={8: [lactate], 5: [lactate]})
        assert [ep["drivers"] for ep in s["episodes"]] == [[], [lactate]]  # onsets 3 and 8
        page = early_warning_report_html([s])
        assert "<th scope=col>what raised the model's risk most then</th>" in page
        assert "<td>—</td>" in page and f"<td>{lactate['text']}</td>" in page
        assert "set to its mean over the training patients" in page

    def test_chart_draws_each_hour_and_marks_the_onset(self) -> None:
        s = _stay()
        page = early_warning_report_html([s], generated=datetime(2026, 1, 2, tzinfo=UTC))
        svg = page[page.index("<svg") : page.index("</svg>")]
        points = svg[svg.index('points="') + 8 :].split('"')[0].split()
        assert len(points) == 10
        ys = np.array([float(p.split(",")[1]) for p in points])
        assert np.argmin(ys) == 8  # the highest risk (hour 9) is drawn highest
        assert svg.count('fill="#f4c7c3"') == 2 and ">onset<" in svg  # one per episode

    def test_low_risks_get_an_axis_of_their_own(self) -> None:
        # a model whose risks stay far below 1 (threshold 0.02): the axis tops at 0.05,
        # so the highest risk is drawn near the top and the threshold line mid-plot
        s = stay_summary("p", [1, 2, 3], [0.01, 0.045, 0.03], 0.02, {})
        page = early_warning_report_html([s], generated=datetime(2026, 1, 2, tzinfo=UTC))
        svg = page[page.index("<svg") : page.index("</svg>")]
        assert 'text-anchor="end">0.05</text>' in svg and 'text-anchor="end">0.02</text>' in svg
        points = svg[svg.index('points="') + 8 :].split('"')[0].split()
        top_y = min(float(p.split(",")[1]) for p in points)
        assert top_y < 8 + 0.15 * 100  # within the top 15 % of the 100-pixel plot


def test_a_model_that_never_alarms_is_drawn_and_said_so() -> None:
    # best_threshold returns inf when not alarming at all scored best on training patients
    s = stay_summary("p", [1, 2, 3], [0.01, 0.02, 0.03], float("inf"), {}, None, [0, 1, 1])
    assert s["alarm_hours"] == 0 and s["first_alarm_lead_h"] is None
    page = early_warning_report_html([s], generated=datetime(2026, 1, 2, tzinfo=UTC))
    assert "<svg" in page and "stroke-dasharray" not in page  # no threshold line
    assert "alarm line (inf)" in page and "raises no alarm" in page


def test_a_value_is_marked_as_it_is_shown_and_a_patient_without_hours_is_listed() -> None:
    # marked from the raw value, shown rounded: "Lactate 2.0" in red against "> 2", "SBP
    # 100" not red against "<= 100"; each is now printed as charted and judged as printed;
    # a patient admitted but not yet scored was left out
    vals = {"temp_c": [38.04], "sbp_mmhg": [100.4], "lactate_mmol_l": [2.04],
            "creatinine_mg_dl": [1.16], "hr_bpm": [95.0], "map_mmhg": [101.0],
            "resp_per_min": [22.0], "spo2_pct": [95.4], "platelets_10e3_ul": [149.6]}  # fmt: skip
    s = stay_summary("p", [1], [0.9], 0.5, vals)
    page = early_warning_report_html([s, stay_summary("new-bed", [], [], 0.5, {})])
    for shown, red in (("Temp 38.0 °C", False), ("SBP 100 mmHg", True),
                       ("Lactate 2.0 mmol/L", False), ("Creatinine 1.16 mg/dL", False),
                       ("HR 95 bpm", True), ("MAP 101 mmHg", False), ("Resp 22 /min", True),
                       ("SpO2 95 %", True), ("Platelets 150 ×10³/µL", False)):  # fmt: skip
        assert (f"<span class=hi>{shown} (limit " in page) == red and shown in page, shown
    assert "<th scope=row>new-bed</th><td colspan=4>no hour scored yet</td>" in page


def test_one_patient_without_an_alarm_gets_the_whole_stay() -> None:
    # the live page of a patient not (yet) in alarm was one table row: no risk chart, and
    # the values refused as impossible left out
    s = stay_summary("icu-3", [1, 2, 3], [0.05, 0.1, 0.2], 0.25,
                     {"temp_c": [37.0, 370.0, 37.2]}, [[], ["temp_c"], []])  # fmt: skip
    page = early_warning_report_html([s])
    assert page.count("<svg") == 1 and "<h2>Patient icu-3</h2>" in page
    assert "ICU hour 2: Temp = 370<" in page and "No alarm" in page
    # on a page of many, the quiet patients' refused values are in their row
    other = stay_summary("icu-4", [1], [0.1], 0.25, {}, [[]])
    many = early_warning_report_html([s, other])
    assert many.count("<svg") == 0 and "<td>ICU hour 2: Temp = 370</td>" in many


def test_a_risk_just_under_the_threshold_is_not_shown_as_reaching_it() -> None:
    # threshold 0.0924, highest risk 0.0921: "(0.092)" in the text and "0.092" in the row
    s = stay_summary("p", [1, 2], [0.05, 0.0921], 0.0924, {}, [[], []])
    page = early_warning_report_html([s, stay_summary("q", [1], [0.01], 0.0924, {}, [[]])])
    assert "alarm line (0.0924)" in page and "<td class=n>0.0921</td>" in page
    # a float32 risk just under a float64 threshold (6 decimals printed them equal)
    for close in (
        float(np.nextafter(np.float32(0.0924), np.float32(0))),
        float(np.float32(0.0924)),
    ):
        assert close < 0.0924
        page = early_warning_report_html([stay_summary("p", [1], [close], 0.0924, {}, [[]])])
        (thr,) = re.findall(r"alarm line \(([0-9.]+)\)", page)
        (top,) = re.findall(r"highest risk\s+score ([0-9.]+) at", page)
        assert float(top) < float(thr), (top, thr)
    usual = early_warning_report_html([stay_summary("p", [1], [0.5], 0.0924, {}, [[]])])
    assert "alarm line (0.092)" in usual  # three decimals where they tell the sides apart


def test_an_episode_over_skipped_hours_is_as_long_as_the_hours_it_spans() -> None:
    # rows at ICU hours 2, 3 and 7 in alarm: 6 hours (it said 3, rows, while its onset and
    # lead were in ICU hours)
    s = stay_summary("p", [1, 2, 3, 7, 8], [0.1, 0.5, 0.6, 0.7, 0.1], 0.4, {}, [[]] * 5)
    (ep,) = s["episodes"]
    assert (ep["start_hour"], ep["end_hour"], ep["hours"]) == (2, 7, 6)


def test_a_small_probability_in_the_headline_is_not_zero() -> None:
    s = stay_summary("icu-8", [1, 2, 3], [0.01, 0.02, 0.03], 0.025, {},
                     probabilities=[0.001, 0.002, 0.004])  # fmt: skip
    page = early_warning_report_html([s])
    assert "estimated probability of sepsis now or within 6 hours 0.4 %)" in page


def test_a_stay_labelled_septic_from_its_first_hour_gets_no_invented_onset_or_lead() -> None:
    """Onset = first label + 6 made p000056 (labelled from ICU hour 1) septic "at ICU hour 7",
    its first alarm "6 h before it"."""
    s = stay_summary("p000056", list(range(1, 10)), [0.5] * 9, 0.2, {}, sepsis_label=[1] * 9)
    assert s["labelled_from_first_hour"] and s["first_alarm_lead_h"] is None
    page = early_warning_report_html([s])
    assert (
        "labelled septic (Sepsis-3, as labelled for the 2019 challenge) from the first hour "
        "scored, ICU hour 1: the onset was at or before ICU hour 7, and no lead time can be "
        "given." in page
    )
    assert "before it" not in page and ">onset<" not in page
    later = stay_summary("q", list(range(1, 10)), [0.5] * 9, 0.2, {}, sepsis_label=[0] + [1] * 8)
    assert not later["labelled_from_first_hour"] and later["first_alarm_lead_h"] == 7.0


def test_a_refused_value_is_listed_as_it_came_not_to_the_chart_precision() -> None:
    # refused values were printed to their column's chart precision: an SpO2 sent as the
    # fraction 0.97 read "O2Sat = 1", an HR of 0.4 "HR = 0", hiding the unit mix-up
    values = {"spo2_pct": [0.97, 97.0], "hr_bpm": [0.4, 80.0], "platelets_10e3_ul": [0.21, 200.0]}
    rejected = [("spo2_pct", "hr_bpm", "platelets_10e3_ul"), ()]
    s = stay_summary("icu-1", [1, 2], [0.1, 0.2], 0.5, values, rejected)
    page = early_warning_report_html([s])
    listed = re.findall(r"<li>ICU hour 1: ([^<]*)</li>", page)
    assert sorted(listed) == ["HR = 0.4", "O2Sat = 0.97", "Platelets = 0.21"], listed


def _bare_lt(page: str) -> list[str]:
    """Each ``<`` of the page that opens no tag, with what follows it: text put into the
    HTML unescaped ("< 36" reads to a parser as the start of a tag)."""
    return [page[m.start() : m.start() + 8] for m in re.finditer(r"<(?![a-zA-Z/!])", page)]


def test_the_limits_and_every_text_on_the_page_are_escaped() -> None:
    """The intro listed the limits as "Temp > 38 or < 36 °C", "SBP <= 100 mmHg" raw."""
    low = stay_summary("p<1>", [1, 2], [0.2, 0.9], 0.5, {"temp_c": [35.0, NAN]},
                       probabilities=[0.0001, 0.0002])  # fmt: skip
    page = early_warning_report_html([_stay(), low])
    assert _bare_lt(page) == []
    assert "Temp &gt; 38 or &lt; 36 °C" in page and "SBP &lt;= 100 mmHg" in page
    assert "&lt;0.1 %" in page  # the headline's probability
