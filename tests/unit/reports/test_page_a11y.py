"""WCAG 2.1 AA on the clinician pages (the ward, an ECG patient, a sepsis stay, the replay's
pages and the ECG strip), read as a browser or a screen reader reads them: parsed with
:mod:`html.parser`, colours measured with the WCAG contrast formula (``a11y_kit``)."""

from __future__ import annotations

import math
import re

import pytest
from a11y_kit import Elements, clinician_pages, strip_fixture

from vitalgru.reports.early_warning import early_warning_report_html, stay_summary
from vitalgru.reports.html import page
from vitalgru.reports.strip import strip_svg

PAGES = clinician_pages()


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


@pytest.mark.parametrize("name", sorted(set(PAGES) - {"ward"}))  # the ward draws none
def test_every_chart_and_strip_is_an_image_named_by_what_it_shows(name: str) -> None:
    # 1.1.1: a chart was named only by what it is ("Heart rate of patient bed-1 by minute
    # of monitoring", the same for the current stream's chart and the one before a restart)
    svgs = Elements(PAGES[name]).named("svg")
    assert svgs and all(a.get("role") == "img" for a in svgs)
    labels = [a.get("aria-label") or "" for a in svgs]
    assert all(": " in label for label in labels), labels  # a name, then what it shows
    assert len(set(labels)) == len(labels), labels


def test_a_strip_says_its_beats_onset_and_clipping_in_words() -> None:
    s = strip_fixture(1)
    samples = list(s["samples"])
    samples[1000] = 5.0  # a spike: the row is clipped
    svg = strip_svg(samples, s["fs"], start_s=s["start_s"], beats=s["beats"],
                    onset_s=s["onset_s"], title="bed-1 · V run")  # fmt: skip
    els = Elements(svg)
    said = (
        "bed-1 · V run. ECG strip, 10 s: 3 beat(s) labelled (1 N, 1 V, 1 Q; 1 in rejected "
        "signal); the alarm's onset at 5.0 s; row(s) 1 clipped beyond ±2 mV"
    )
    assert els.named("svg")[0]["aria-label"] == said
    # opened on its own (the gateway's /events/{seq}/strip.svg) the tab's name: 2.4.2
    assert els.tags[1][0] == "title" and ("title", said) in els.texts


def test_a_charts_name_gives_its_range_alarms_and_onsets() -> None:
    ecg = [a["aria-label"] for a in Elements(PAGES["ecg"]).named("svg")]
    assert ecg[0] == (
        "Heart rate of patient bed-1 by minute of monitoring, 62 minute(s): 70 to 76 bpm; "
        "alarm onsets marked: V (ventricular run) at minute 5.0, V (ventricular run) at minute 10.0"
    )
    (risk,) = [a["aria-label"] for a in Elements(PAGES["stay"]).named("svg")]
    assert risk == (
        "Sepsis risk score of patient p1 by ICU hour, 1 to 30; alarm line 0.500; highest "
        "0.600 at ICU hour 10, latest 0.100; shaded in alarm: ICU hours 10–14; reference "
        "sepsis onset marked at ICU hour 18"
    )


@pytest.mark.parametrize("name", sorted(PAGES))
def test_a_table_printed_over_several_sheets_repeats_its_header_row(name: str) -> None:
    # thirty beds print on two sheets: the second had no column headers (no <thead>)
    els = Elements(PAGES[name])
    names = [t for t, _ in els.tags]
    assert names.count("thead") == names.count("tbody") == names.count("table")
    heads = [i for i, t in enumerate(names) if t == "thead"]
    assert all(names[i + 1 : i + 3] == ["tr", "th"] for i in heads)
