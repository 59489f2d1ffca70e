"""The clinician's summary page: figures against hand-worked values, and a page that
escapes what it is given and puts the patients with alarms first."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from vitalgru.reports.monitoring import monitoring_report_html, patient_summary


def _beats(n: int = 150, rr: float = 0.8) -> tuple[list[float], list[str], list[bool]]:
    t = list(np.arange(n) * rr)
    lab = ["N"] * n
    ok = [True] * n
    for i in range(10, n, 10):
        lab[i] = "V"  # 14 V beats
    for i in range(100, 110):
        ok[i] = False  # 10 beats in rejected signal, one of them V (beat 100)
    return t, lab, ok


class TestPatientSummary:
    def test_hand_worked_figures(self) -> None:
        t, lab, ok = _beats()
        alert = {"kind": "pause", "onset_s": 30.0, "message": "pause: 3.2 s"}
        s = patient_summary("bed 4", 121.0, t, lab, ok, [alert])
        assert s["beats"] == 150 and s["counts"] == {"N": 136, "S": 0, "V": 14, "F": 0, "Q": 0}
        # burden over the 140 beats in accepted signal, 13 of them V
        assert s["burden_pct"]["V"] == pytest.approx(100 * 13 / 140)
        assert s["rejected_signal_pct"] == pytest.approx(100 * 10 / 150)
        assert s["hr_bpm"]["median"] == pytest.approx(75.0)
        assert s["hr_bpm"]["min"] == pytest.approx(75.0) == s["hr_bpm"]["max"]
        assert s["alerts"] == [alert]
        # minute by minute: 75 bpm in the two minutes with beats, none in the third
        assert s["hr_trend_bpm"] == [75.0, 75.0, None]

    def test_no_beats_is_no_rate_not_an_error(self) -> None:
        s = patient_summary("p", 10.0, [], [], [], [])
        assert s["hr_bpm"] == {"median": None, "min": None, "max": None}
        assert s["rejected_signal_pct"] is None and s["burden_pct"]["N"] is None
        with pytest.raises(ValueError, match="one entry per beat"):
            patient_summary("p", 10.0, [1.0], [], [], [])


class TestPage:
    def test_patients_with_alarms_come_first_and_text_is_escaped(self) -> None:
        t, lab, ok = _beats()
        quiet = patient_summary("a-quiet", 121.0, t, lab, ok, [])
        alarm = {"kind": "ventricular_run", "onset_s": 3725.0,
                 "message": "ventricular run: 3 consecutive V beats at 150 bpm"}  # fmt: skip
        loud = patient_summary("<b>z</b>", 4000.0, t, lab, ok, [alarm])
        page = monitoring_report_html(
            [quiet, loud], model="models:/m@champion", generated=datetime(2026, 1, 2, tzinfo=UTC)
        )
        assert page.startswith("<!DOCTYPE html>") and "<script" not in page
        assert "&lt;b&gt;z&lt;/b&gt;" in page and "<b>z</b>" not in page
        assert page.index("&lt;b&gt;z") < page.index("a-quiet")
        assert "1:02:05" in page and "Ventricular run ×1" in page
        assert "No alarm was raised." in page and "not a medical device" in page
        # a heart-rate chart each, the ventricular run marked at its minute (62)
        assert page.count("<svg") == 2 and page.count(">V</text>") == 1
        assert "2026-01-02 00:00 UTC" in page and "models:/m@champion" in page


def test_the_page_draws_each_alarm_strip_it_is_given() -> None:
    t, lab, ok = _beats()
    alarm = {"kind": "pause", "onset_s": 30.0, "message": "pause of 3.2 s"}
    p = patient_summary("bed-1", 121.0, t, lab, ok, [alarm])
    strip = {"kind": "pause", "message": "pause of 3.2 s", "fs": 250.0, "start_s": 25.0,
             "onset_s": 30.0, "beats": [{"time_s": 26.0, "label": "V"}],
             "samples": [0.0] * 2000}  # fmt: skip
    page = monitoring_report_html([p], strips={"bed-1": [strip], "other": [strip]})
    assert page.count("<svg") == 2  # the heart-rate chart and the strip
    assert "pause of 3.2 s · strip from 25.0 s of monitoring</text>" in page  # its ticks' 0 s
    assert "Pause at 0:00:30: pause of 3.2 s" in page and ">onset</text>" in page
    assert monitoring_report_html([p]).count("<svg") == 1
