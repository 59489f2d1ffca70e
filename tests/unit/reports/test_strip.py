"""An alarm's ECG strip on paper: drawn at 25 mm/s and 10 mm/mV, gaps left blank, each
beat's class over its R peak, the onset where it was."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from vitalgru.reports.html import page
from vitalgru.reports.strip import MM_PER_MV, MM_PER_S, PX_PER_MM, ROW_MV, strip_svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _points(d: str, scale: float = 0.1) -> list[list[tuple[float, float]]]:
    """The pieces of a path in px: each M starts one, each l is a step from the last point;
    coordinates are scaled by ``scale`` (the path's transform)."""
    pieces: list[list[tuple[float, float]]] = []
    x = y = 0
    for op, a, b in re.findall(r"([Ml])(-?\d+) (-?\d+)", d):
        if op == "M":
            x, y = int(a), int(b)
            pieces.append([])
        else:
            x, y = x + int(a), y + int(b)
        pieces[-1].append((x * scale, y * scale))
    return pieces


def test_the_strip_is_drawn_to_scale_with_its_gaps_labels_and_onset() -> None:
    fs = 250.0
    x = np.zeros(int(14 * fs))
    x[int(2 * fs) : int(3 * fs)] = 1.0  # a 1 mV step for a second
    x[int(5 * fs) : int(5.5 * fs)] = np.nan  # half a second of no signal
    beats = [{"time_s": 100.5, "label": "N"}, {"time_s": 104.0, "label": "V"},
             {"time_s": 111.0, "label": "S", "signal_ok": False}]  # fmt: skip
    svg = strip_svg(x, fs, start_s=100.0, beats=beats, onset_s=111.5, title="bed-4 · V run")
    root = ET.fromstring(svg)
    px_s, px_mv = MM_PER_S * PX_PER_MM, MM_PER_MV * PX_PER_MM
    assert root.get("viewBox").split()[2] == f"{10 * px_s:.0f}"  # rows of 10 s at 25 mm/s
    width_mm, height_mm = (float(root.get(k).removesuffix("mm")) for k in ("width", "height"))
    assert width_mm == 250.0  # printed to scale: 10 s at 25 mm/s is 250 mm on the paper
    assert height_mm == pytest.approx(float(root.get("viewBox").split()[3]) / PX_PER_MM)
    traces = [p for p in root.iter(f"{{{NS['s']}}}path") if p.get("stroke") == "#000"]
    assert all(p.get("transform") == "scale(0.1)" for p in traces)
    paths = [p.get("d") for p in traces]
    assert len(paths) == 2  # two rows: 10 s and 4 s
    first, second = (_points(d) for d in paths)
    assert len(first) == 2 and len(second) == 1  # the gap splits the first row's trace
    pts = np.array([p for piece in first for p in piece])
    assert pts[:, 0].max() <= 10 * px_s and pts[:, 0].min() == 0
    # the step: 1 mV is 10 mm high
    ys = sorted({round(y, 1) for _, y in pts})
    assert len(ys) == 2 and ys[1] - ys[0] == pytest.approx(px_mv, abs=0.2)
    at_2s = [y for x_, y in pts if abs(x_ - 2.5 * px_s) < 1]
    assert at_2s and min(at_2s) == ys[0]  # up is up
    assert max(x_ for x_, _ in second[0]) == pytest.approx((4 - 1 / fs) * px_s, abs=0.2)
    texts: dict[str, ET.Element] = {}
    for t in root.iter(f"{{{NS['s']}}}text"):  # the strip's first, the legend's after
        texts.setdefault(t.text, t)
    assert texts["bed-4 · V run"] is not None
    assert float(texts["N"].get("x")) == pytest.approx(0.5 * px_s)
    assert texts["V"].get("fill") == "#c00" and texts["V"].get("font-weight") == "bold"
    assert "S?" in texts  # a beat in rejected signal says so
    assert float(texts["S?"].get("x")) == pytest.approx(1.0 * px_s)  # second row, 1 s in
    (onset,) = [ln for ln in root.iter(f"{{{NS['s']}}}line")]
    assert float(onset.get("x1")) == pytest.approx(1.5 * px_s)
    assert float(onset.get("y1")) > float(root.get("viewBox").split()[3]) / 2  # second row
    assert "0 s" in texts and "25 mm/s, 10 mm/mV" in texts
    assert "clipped" not in svg


def _row_times(svg: str) -> list[tuple[float, str]]:
    """The times under the rows: ``(x in px, text)``."""
    return [(float(x), t) for x, t in re.findall(r'<text x="([\d.]+)" y="[\d.]+" '
            r'text-anchor="\w+" font-size="9" fill="#555">([^<]*)</text>', svg)
            if "mm/s" not in t]  # fmt: skip


def test_the_times_under_the_rows_are_seconds_from_the_strips_start() -> None:
    # they were the stream's time as h:mm:ss ("0:00:55", read as five to one at night under
    # a title giving the start's time of day), and each second's line was labelled with the
    # stream's second rounded: x = 0 of a strip starting at 54.889 s said 0:00:55
    x = np.zeros(int(14.111 * 360))
    svg = strip_svg(x, 360.0, start_s=54.889, title="strip from 2026-12-07 12:44:46.499 UTC")
    times = _row_times(svg)
    px_s = MM_PER_S * PX_PER_MM
    first = [t for _, t in times[:11]]
    assert first == [f"{k} s" for k in range(11)]  # the first row: 0 to 10 s
    assert [t for _, t in times[11:]] == ["10 s", "11 s", "12 s", "13 s", "14 s"]
    assert all(abs(px - k * px_s) < 1.01 for (px, _), k in zip(times[:11], range(11), strict=True))
    assert not re.search(r">\d+:\d\d:\d\d<", svg)  # no clock-like label
    assert "seconds from the strip's start" in svg


def test_a_legend_names_the_beat_classes_and_q_stands_out_from_n_without_colour() -> None:
    beats = [{"time_s": 1.0, "label": "N"}, {"time_s": 2.0, "label": "Q"},
             {"time_s": 3.0, "label": "Q", "signal_ok": False}]  # fmt: skip
    svg = strip_svg(np.zeros(2500), 250.0, beats=beats)
    for name in ("normal or bundle branch block", "supraventricular ectopic",
                 "ventricular ectopic", "fusion", "unclassifiable or paced"):  # fmt: skip
        assert f">{name}</text>" in svg
    root = ET.fromstring(svg)
    labels = [t for t in root.iter(f"{{{NS['s']}}}text") if t.get("font-size") == "11"]
    n = next(t for t in labels if t.text == "N")
    q = next(t for t in labels if t.text == "Q")
    assert q.get("fill") != n.get("fill")  # its own colour, and ...
    boxes = [r for r in root.iter(f"{{{NS['s']}}}rect") if r.get("fill") == "none"
             and r.get("stroke") == q.get("fill")]  # fmt: skip
    # ... a box around each Q (two beats, one in rejected signal, and the legend's), none
    # around N
    assert len(boxes) == 3
    xs = sorted(float(b.get("x")) + float(b.get("width")) / 2 for b in boxes[:2])
    px_s = MM_PER_S * PX_PER_MM
    assert xs == pytest.approx([2.0 * px_s, 3.0 * px_s], abs=0.6)


def test_beyond_the_row_is_clipped_and_said_and_bad_input_refused() -> None:
    x = np.zeros(2500)
    x[100] = 2 * ROW_MV  # taller than the row
    x[1000:1010] = 0.5
    svg = strip_svg(x, 250.0)
    assert "clipped" in svg
    assert "<svg" in strip_svg([None, 0.1, 0.2], 250.0)  # None is a gap
    assert '<path d=""' in strip_svg([None, None], 250.0)  # no signal at all: no trace
    for bad in (0.0, float("nan"), -1.0):
        with pytest.raises(ValueError, match="fs must be"):
            strip_svg(x, bad)
    with pytest.raises(ValueError, match="row_s"):
        strip_svg(x, 250.0, row_s=0)
    assert "&lt;b&gt;" in strip_svg(x, 250.0, title="<b>")  # escaped


def test_a_strip_fits_letter_landscape_so_that_the_browser_does_not_shrink_the_page() -> None:
    # A browser shrinks a page whose content is wider than the paper: while figures kept
    # their default 40 px side margins, a 250 mm strip did not fit Letter landscape (279.4 mm
    # less the page's margins), and Chromium printed it at 24.89 mm/s
    # (benchmarks/print_pages.py measures it on the printed page)
    style = page("t", "i", "")
    margin_mm = float(re.search(r"@page\{[^}]*margin:([\d.]+)mm", style).group(1))
    figure = re.search(r"figure\{margin:([^;}]+)", style).group(1).split()
    assert len(figure) == 2 and figure[1] == "0"  # no side margins
    assert 10 * MM_PER_S <= 279.4 - 2 * margin_mm
