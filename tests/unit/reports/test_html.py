"""The pages' shared pieces: round axis tops, the inline trend chart and times shown in
the site's zone."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from vitalgru.reports.html import axis_top, page, shown_at, trend_chart, zone_name


@pytest.mark.parametrize(
    ("peak", "top"),
    [(0.045, 0.05), (0.186, 0.2), (0.21, 0.25), (0.7, 1.0), (1.0, 1.0), (120.0, 200.0),
     (0.0, 1.0)],
)  # fmt: skip
def test_axis_top_is_the_next_round_value(peak: float, top: float) -> None:
    assert axis_top(peak) == pytest.approx(top)


def test_a_gap_breaks_the_line_and_values_stay_inside_the_plot() -> None:
    svg = trend_chart(
        [0, 1, 2, 3, 4], [10, 20, math.nan, 30, 500], y_max=50, x_step=2, label="a <b>",
        bands=[(1, 2)], level=25, marks=[(3, "P")],
    )  # fmt: skip
    assert svg.count("<polyline") == 2  # 0-1, then 3-4
    assert 'aria-label="a &lt;b&gt;"' in svg and ">P</text>" in svg
    ys = [float(p.split(",")[1]) for p in svg.split('points="')[2].split('"')[0].split()]
    assert min(ys) == 8.0  # 500 is drawn at the top of the plot, not above it
    assert svg.count('fill="#f4c7c3"') == 1 and 'stroke-dasharray="4 3"' in svg
    assert trend_chart([], [], y_max=1, x_step=1, label="none") == ""


def test_an_axis_shorter_than_one_step_labels_only_its_values() -> None:
    # a 5-hour stay on a 24-hour step: "24" was drawn at the right edge, where hour 5 is
    svg = trend_chart([1, 2, 3, 4, 5], [0.1] * 5, y_max=1, x_step=24, label="x")
    bottom = re.findall(r'text-anchor="middle">([^<]*)</text>', svg)
    assert bottom == ["1"]
    svg = trend_chart([0, 100], [1, 2], y_max=5, x_step=50, label="x")
    assert re.findall(r'text-anchor="middle">([^<]*)</text>', svg) == ["0", "50", "100"]


def test_marks_too_close_for_two_labels_share_one() -> None:
    svg = trend_chart(
        [0, 100], [1, 2], y_max=5, x_step=50, label="x",
        marks=[(50.5, "B"), (50, "A"), (80, "C")],
    )  # fmt: skip
    assert svg.count('stroke-width="1"/>') == 3  # every mark keeps its line
    assert ">A</text>" in svg and ">B</text>" not in svg and ">C</text>" in svg


def test_the_time_a_page_was_generated_is_printed_in_utc() -> None:
    # 09:30 at UTC+1 was printed "09:30 UTC"
    at = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    assert "Generated 2026-03-01 08:30 UTC" in page("t", "", "", generated=at)


def test_a_time_is_shown_in_the_sites_zone_labelled_with_it() -> None:
    berlin, la = ZoneInfo("Europe/Berlin"), ZoneInfo("America/Los_Angeles")
    at = "2026-12-07T12:44:59.610+00:00"
    assert shown_at(at) == "2026-12-07 12:44:59 UTC"  # no zone: UTC, as before
    assert shown_at(at, berlin) == "2026-12-07 13:44:59 CET"
    assert shown_at(at, la, unit="ms") == "2026-12-07 04:44:59.610 PST"
    assert shown_at("2026-12-07T03:00:00Z", la) == "2026-12-06 19:00:00 PST"  # the day before
    assert shown_at("2026-07-07T12:44:59", berlin, unit="min") == "2026-07-07 14:44 CEST"
    assert shown_at(None) == "–" and shown_at("not a time") == "not a time"
    assert zone_name(None) == zone_name(UTC) == "UTC" and zone_name(berlin) == "Europe/Berlin"
    page_ = page("t", "", "", generated=datetime(2026, 12, 7, 12, 46, 55, tzinfo=UTC), zone=la)
    assert "Generated 2026-12-07 04:46 PST." in page_
    with pytest.raises(ValueError, match="unit"):
        shown_at(at, unit="h")
