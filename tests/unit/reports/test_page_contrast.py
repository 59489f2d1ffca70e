"""WCAG 2.1 AA contrast on the clinician pages and the ECG strip, measured with the WCAG
formula on the colours the pages are written with: text 4.5:1 against what it is drawn on
(1.4.3), and 3:1 for the graphics a reader needs (1.4.11): the strip's 5 mm grid and onset
line, a beat class's box, a chart's line, alarm line and shaded alarm stretches."""

from __future__ import annotations

import re

import pytest
from a11y_kit import AA_GRAPHIC, AA_TEXT, Elements, clinician_pages, contrast, strip_fixture

from vitalgru.reports.html import trend_chart
from vitalgru.reports.strip import LABEL_COLOURS, strip_svg

PAGES = clinician_pages()
WHITE = "#fff"


def _strip() -> str:
    """A strip with a row clipped (a 5 mV spike) and its onset marked."""
    s = strip_fixture(1)
    samples = list(s["samples"])
    samples[1000] = 5.0
    return strip_svg(samples, s["fs"], start_s=s["start_s"], beats=s["beats"],
                     onset_s=s["onset_s"], title="Ventricular run")  # fmt: skip


def _css_colours(page: str) -> dict[str, str]:
    """Selector -> the text colour (``color``, or ``fill`` for SVG text) the page's style
    sheet gives it."""
    style = page.split("<style>")[1].split("</style>")[0]
    out = {}
    for selectors, rules in re.findall(r"([^{}]+)\{([^{}]*)\}", style):
        for m in re.finditer(r"(?<![-\w])(?:color|fill):(#[0-9a-fA-F]{3,6})", rules):
            out[selectors.strip()] = m.group(1)
    return out


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_text_colours_of_a_page_read_on_white(name: str) -> None:
    # body #111, notes #555, alarms #a00, chart text #333: every one at least 4.5:1
    colours = _css_colours(PAGES[name])
    assert {"body", ".note", ".hi", "svg text"} <= set(colours)
    for sel, col in colours.items():
        assert contrast(col, WHITE) >= AA_TEXT, (sel, col, contrast(col, WHITE))
    for attrs in Elements(PAGES[name]).named("text"):
        fill = attrs.get("fill") or colours["svg text"]
        assert contrast(fill, WHITE) >= AA_TEXT, (attrs, contrast(fill, WHITE))


def test_every_beat_class_colour_reads_as_text_and_as_a_mark() -> None:
    # the letters are 11 px text: 4.5:1 on the white above the rows (Q #b35900: 4.8)
    for k, col in LABEL_COLOURS.items():
        assert contrast(col, WHITE) >= AA_TEXT, (k, col)


def _grid_rows(els: Elements) -> list[tuple[float, float]]:
    """The y spans of a strip's rows of ECG paper."""
    rows, top = [], None
    for tag, a in els.tags:
        if tag == "g" and (m := re.fullmatch(r"translate\(0 ([\d.]+)\)", a.get("transform") or "")):
            top = float(m.group(1))
        elif tag == "rect" and a.get("fill") == "url(#mm5)" and top is not None:
            rows.append((top, top + float(a["height"])))
            top = None
    return rows


def test_text_drawn_on_the_ecg_paper_sits_on_a_white_halo() -> None:
    # "onset" (#c00, 10 px) over a 5 mm line was 2.1:1, "clipped" (#a00) 2.8:1
    els = Elements(_strip())
    grid_5mm = next(
        a["stroke"] for t, a in els.tags if t == "path" and a.get("stroke-width") == "1"
    )
    rows = _grid_rows(els)
    on_grid = [a for a in els.named("text")
               if any(lo < float(a["y"]) <= hi for lo, hi in rows)]  # fmt: skip
    assert len(on_grid) == 2  # "beyond ±2 mV: clipped", "onset"
    for a in on_grid:
        halo = a.get("stroke") == "#fff" and a.get("paint-order") == "stroke"
        against = WHITE if halo else grid_5mm
        assert contrast(a["fill"], against) >= AA_TEXT, (a, against)


def test_the_strips_5mm_grid_onset_line_and_q_box_stand_out_from_the_paper() -> None:
    # the 5 mm lines (#e08080) were 2.8:1 against the paper
    els = Elements(_strip())
    grid = {a["stroke-width"]: a["stroke"] for t, a in els.tags
            if t == "path" and a.get("fill") == "none" and a.get("stroke-width") in ("0.5", "1")}  # fmt: skip
    assert contrast(grid["1"], WHITE) >= AA_GRAPHIC, grid
    assert contrast(grid["0.5"], WHITE) < contrast(grid["1"], WHITE)  # the 1 mm lines fainter
    marks = [a for t, a in els.tags if t in ("line", "rect") and a.get("fill") == "none"
             or t == "line"]  # fmt: skip
    assert {"#c00", LABEL_COLOURS["Q"]} <= {a.get("stroke") for a in marks}
    for a in marks:
        assert contrast(a["stroke"], WHITE) >= AA_GRAPHIC, a


def test_a_charts_shaded_alarm_stretches_are_edged_to_stand_out() -> None:
    # the shade (#f4c7c3) is 1.5:1 against the white plot: an alarm stretch hardly showed
    svg = trend_chart([0, 1, 2, 3], [1, 2, 3, 2], y_max=4, x_step=1, label="x",
                      bands=[(1, 2)], level=2.5)  # fmt: skip
    els = Elements(svg)
    (band,) = [a for a in els.named("rect") if a.get("fill") not in (None, "none")]
    assert contrast(band.get("stroke") or band["fill"], WHITE) >= AA_GRAPHIC, band
    assert contrast(band["fill"], "#1f4e9a") >= AA_GRAPHIC  # the line over it
    for a in els.named("polyline") + els.named("line"):
        assert contrast(a["stroke"], WHITE) >= AA_GRAPHIC, a
