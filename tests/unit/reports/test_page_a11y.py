"""WCAG 2.1 AA on the clinician pages (the ward, an ECG patient, a sepsis stay, the replay's
pages and the ECG strip), read as a browser or a screen reader reads them: parsed with
:mod:`html.parser`, colours measured with the WCAG contrast formula (``a11y_kit``)."""

from __future__ import annotations

import math
import re

import pytest
from a11y_kit import Elements

from vitalgru.reports.early_warning import early_warning_report_html, stay_summary
from vitalgru.reports.html import page
from vitalgru.reports.monitoring import monitoring_report_html, patient_summary
from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html


def _strip(seq: int) -> dict:
    """10 s of a 1 Hz sine at 250 Hz, a V beat and a Q beat in rejected signal."""
    return {"seq": seq, "kind": "ventricular_run", "message": "3 V beats at 150 bpm",
            "samples": [math.sin(2 * math.pi * k / 250) for k in range(2500)], "fs": 250.0,
            "start_s": 595.0, "onset_s": 600.0, "start_at": "2026-12-07T12:44:54.610+00:00",
            "beats": [{"time_s": 596.0, "label": "N"}, {"time_s": 600.0, "label": "V"},
                      {"time_s": 601.0, "label": "Q", "signal_ok": False}]}  # fmt: skip


def _alarm(seq: int, state: str = "going_on") -> dict:
    return {"seq": seq, "kind": "ventricular_run", "message": "3 V beats at 150 bpm",
            "onset_at": f"2026-12-07T12:4{seq}:59.610+00:00", "state": state, "strip_s": 10.0, "onset_s": 600.0,
            "raised_at_s": 606.0}  # fmt: skip


def _ecg(pid: str, alarms: list[dict]) -> dict:
    return {"patient_id": pid, "received_s": 3725.0, "hr_bpm": 72.4, "beats": 200,
            "counts": {"N": 190, "S": 4, "V": 6, "F": 0, "Q": 0}, "rejected_pct": 2.5,
            "alarms": alarms, "admitted_at": "2026-12-07T11:40:00+00:00"}  # fmt: skip


def _stays() -> list[dict]:
    hours = list(range(1, 31))
    risks = [0.6 if 10 <= h <= 14 else 0.1 for h in hours]
    values = {"hr_bpm": [95.0] * 30, "temp_c": [37.0] * 30, "lactate_mmol_l": [4.2] * 30}
    loud = stay_summary("p1", hours, risks, 0.5, values, sepsis_label=[int(h >= 12) for h in hours])
    return [loud, stay_summary("p2", hours, [0.1] * 30, 0.5, values)]


def _pages() -> dict[str, str]:
    """Each kind of clinician page, with tables, links, charts and strips."""
    beds = [_ecg("bed-1", [_alarm(1)]), _ecg("bed-2", [_alarm(2)]), _ecg("bed-3", [])]
    sepsis = [{"patient_id": "icu-1", "in_alarm": True, "alarm_episodes": 1,
               "last_hour": {"hour": 30, "risk": 0.41, "probability": 0.12}}]  # fmt: skip
    trend = {"patient_id": "bed-1", "stream_started_at": "2026-12-07T11:40:00+00:00",
             "monitored_s": 3725.0, "hr_trend_bpm": [70.0 + k % 7 for k in range(62)]}  # fmt: skip
    alarms = [
        _alarm(1, "ended") | {"ended": {"at": "2026-12-07T12:50:00+00:00", "message": "over"}},
        _alarm(2),
    ]
    times = [0.8 * k for k in range(1, 75)]
    labels = ["V" if k % 10 == 0 else "N" for k in range(1, 75)]
    replayed = patient_summary("119", 60.0, times, labels, [True] * 74,
                               [{"kind": "ventricular_run", "onset_s": 8.0, "message": "3 V"}])  # fmt: skip
    return {
        "ward": ward_page_html(beds, sepsis, refresh_s=10, threshold=0.3),
        "ecg": ecg_patient_page_html({**_ecg("bed-1", alarms)}, [_strip(2), _strip(1)], trend),
        "stay": early_warning_report_html(_stays()[:1], title="Sepsis: patient p1 (live)"),
        "early_warning": early_warning_report_html(_stays()),
        "replay": monitoring_report_html([replayed], strips={"119": [_strip(1)]}),
    }


PAGES = _pages()


def test_a_page_has_its_language_title_one_h1_and_a_main_landmark() -> None:
    # 1.3.1, 2.4.1: no landmark; a screen reader could not jump to the content
    els = Elements(page("Ward overview (live)", "intro", "<section><h2>ECG</h2></section>"))
    assert els.named("html")[0]["lang"] == "en"
    assert [t for n, t in els.texts if n in ("title", "h1")] == ["Ward overview (live)"] * 2
    names = [t for t, _ in els.tags]
    assert names.count("main") == 1 and names.index("main") < names.index("h1")


def test_a_page_that_reloads_itself_offers_to_stop_first() -> None:
    # 2.2.1, 2.2.2 (F41): a meta refresh no one could turn off; every 10 s a screen reader
    # went back to the top of the ward page
    live = page("Ward overview (live)", "", "", refresh_s=10)
    els = Elements(live)
    assert els.named("meta")[1] == {"http-equiv": "refresh", "content": "10"}
    (stop, text), *_ = els.links
    assert stop["href"] == "?refresh=0" and text == "stop reloading"
    assert "reloads itself every 10 s" in live
    names = [t for t, _ in els.tags]
    assert names.index("h1") < names.index("a")  # found right under the heading
    # on paper the link says nothing: hidden in print
    assert re.search(r"@media print\{[^@]*\.screen\{display:none\}", live)
    assert "<p class=screen>" in live
    quiet = page("Ward overview (live)", "", "")
    assert "refresh" not in quiet and not Elements(quiet).links


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_table_is_named_and_its_header_cells_say_what_they_head(name: str) -> None:
    # 1.3.1: tables without a caption and header cells without scope; the ECG page's strip
    # column had an empty header cell
    els = Elements(PAGES[name])
    assert els.named("table") and len(els.named("caption")) == len(els.named("table"))
    assert all(text for n, text in els.texts if n in ("caption", "th"))
    assert {a.get("scope") for a in els.named("th")} <= {"col", "row"}
    assert all(a.get("scope") for a in els.named("th"))


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_has_one_h1_and_no_skipped_heading_level(name: str) -> None:
    els = Elements(PAGES[name])
    levels = [int(t[1]) for t, _ in els.tags if re.fullmatch(r"h[1-6]", t)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False))
    assert els.named("html")[0]["lang"] == "en" and len(els.named("main")) == 1


def test_a_strip_link_is_named_for_its_alarm_not_just_strip() -> None:
    # 2.4.4: every bed's latest alarm linked "strip", and each alarm on the ECG page too;
    # a screen reader's list of links read "strip, strip, strip"
    for name in ("ward", "ecg"):
        links = [(a, t) for a, t in Elements(PAGES[name]).links if t == "strip"]
        names = [a.get("aria-label") or t for a, t in links]
        assert len(links) == 2 and len(set(names)) == 2, names
        assert all(n.startswith("strip: ") for n in names)  # as shown, then what it is
    ward = [a["aria-label"] for a, t in Elements(PAGES["ward"]).links if t == "strip"]
    assert ward[0] == "strip: patient bed-1, Ventricular run at 2026-12-07 12:41:59 UTC"
    ecg = [a["aria-label"] for a, t in Elements(PAGES["ecg"]).links if t == "strip"]
    assert ecg == [
        "strip: Ventricular run at 2026-12-07 12:42:59 UTC",
        "strip: Ventricular run at 2026-12-07 12:41:59 UTC",
    ]  # newest first


def test_a_value_outside_its_limit_says_so_in_words_not_in_red_alone() -> None:
    # 1.4.1: "Values in red are outside the limits": grey on a black and white print, and
    # nothing to a screen reader or to many colour-blind readers
    hours = [1, 2, 3, 4]
    values = {"hr_bpm": [95.0, 95.0, 80.0, 80.0], "sbp_mmhg": [120.0] * 4,
              "lactate_mmol_l": [4.2, math.nan, math.nan, math.nan]}  # fmt: skip
    s = stay_summary("p", hours, [0.1, 0.1, 0.1, 0.9], 0.5, values)
    page = early_warning_report_html([s])
    findings = page.split("<td>")[-1].split("</td>")[0]
    assert findings == (
        "HR 80 bpm; SBP 120 mmHg; <span class=hi>Lactate 4.2 mmol/L (3 h ago; limit &gt; 2)</span>"
    )
    assert "Values in red, their limit beside them, are outside" in page
