"""The frame of vitalgru's clinician pages: one self-contained HTML file each, with no
script, style sheet or image from elsewhere (it opens offline, from a file or an e-mail).
Printed (for the chart, or a handover), a page goes landscape with the ECG strips at the
paper's true scale, and no section, strip or table row is split across sheets."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

__all__ = ["DISCLAIMER", "axis_top", "page", "shown_at", "table", "trend_chart", "zone_name"]

#: Said on every page: what the numbers are, and what they are not.
DISCLAIMER = (
    "What this page shows comes from an automated model: it supports, and does not "
    "replace, a clinician's review of the patient. vitalgru is not a medical device."
)

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60em;margin:1em auto;color:#111}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left} td.n{text-align:right}
th[scope=row]{font-weight:normal} caption{text-align:left;font-size:.9em;color:#555}
.head{font-weight:bold} .note{color:#555;font-size:.9em} .hi{color:#a00;font-weight:bold}
section{border-top:2px solid #333;margin-top:1.5em}
svg{display:block;margin:.5em 0} svg text{font-size:11px;fill:#333} figure{margin:.5em 0}
@page{size:landscape;margin:10mm}
@media print{body{max-width:none;margin:0;font-size:10pt}
section,svg,tr{break-inside:avoid} h1,h2,h3{break-after:avoid} a{color:inherit}
.screen{display:none}}
"""


def page(
    title: str,
    intro: str,
    body: str,
    *,
    model: str | None = None,
    generated: datetime | None = None,
    refresh_s: int | None = None,
    zone: tzinfo | None = None,
) -> str:
    """A whole page: ``title``, a note (when it was generated, with which model, then
    ``intro``, which is HTML, then :data:`DISCLAIMER`) and ``body`` (HTML), the body in a
    ``<main>`` landmark. With ``refresh_s``, the browser loads it again every that many
    seconds (a live screen); a link at the top, ``?refresh=0``, opens it without (a reload
    takes a screen reader back to the top of the page, and WCAG 2.1 2.2.1 and 2.2.2 want a
    way to stop it), so the page's server must read ``refresh=0`` as never.
    ``zone``: the time zone the generation time is shown in (None: UTC), labelled."""
    e = html.escape
    at = generated or datetime.now(UTC)
    when = e(shown_at(at, zone, unit="s" if refresh_s else "min"))
    model_line = f" Model: {e(model)}." if model else ""
    refresh = f"<meta http-equiv=refresh content={int(refresh_s)}>" if refresh_s else ""
    stop = (
        f"<p class=screen>This page reloads itself every {int(refresh_s)} s: "
        '<a href="?refresh=0">stop reloading</a>.</p>\n'
        if refresh_s
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8>{refresh}<title>{e(title)}</title>
<style>{_STYLE}</style></head><body><main>
<h1>{e(title)}</h1>
{stop}<p class=note>Generated {when}.{model_line} {intro} {DISCLAIMER}</p>
{body}
</main></body></html>
"""


def table(caption: str, head: Sequence[str], rows: str) -> str:
    """A data table named by ``caption`` (text), with a header cell for each column
    (``head``, HTML) and the rows (``rows``, HTML; a row's first cell a ``<th scope=row>``
    where it names the row): a screen reader reads each cell with its column's header and
    its row's name (WCAG 2.1 1.3.1), and a table printed over several sheets repeats its
    header row on each."""
    cols = "".join(f"<th scope=col>{h}</th>" for h in head)
    return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{cols}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")  # fmt: skip


def zone_name(zone: tzinfo | None) -> str:
    """What a page calls a time zone: its IANA name (``Europe/Berlin``), ``UTC`` for None
    or UTC, else what the zone calls itself."""
    if zone is None or zone is UTC:
        return "UTC"
    return str(getattr(zone, "key", None) or zone.tzname(None) or zone)


def shown_at(at: datetime | str | None, zone: tzinfo | None = None, *, unit: str = "s") -> str:
    """A wall-clock time as a page shows it to a clinician: in ``zone`` (None: UTC),
    labelled with the zone's abbreviation there (``2026-12-07 13:51:35 CET``), so that no
    time on a page can be read in another zone than it is in.

    ``at``: a datetime or an ISO 8601 string; one without a UTC offset is taken as UTC
    (the gateway stores UTC), text that is no time is returned as it is, None as ``–``.
    ``unit``: the last figure shown, ``min``, ``s`` or ``ms``; shown to it, not rounded
    (09:15:59.9 is shown 09:15:59, as a clock shows it)."""
    if at is None:
        return "–"
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            return at
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(zone or UTC)
    fmt = {"min": "%Y-%m-%d %H:%M", "s": "%Y-%m-%d %H:%M:%S", "ms": "%Y-%m-%d %H:%M:%S.%f"}
    if unit not in fmt:
        raise ValueError(f"unit must be one of {sorted(fmt)}, got {unit!r}")
    text = local.strftime(fmt[unit])
    if unit == "ms":
        text = text[:-3]
    label = "UTC" if zone is None or zone is UTC else (local.tzname() or zone_name(zone))
    return f"{text} {label}"


def clock(seconds: float) -> str:
    """Seconds as ``h:mm:ss`` (times from the start of monitoring on the pages)."""
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def axis_top(peak: float) -> float:
    """A round value (1, 2, 2.5 or 5 times a power of ten) at or above ``peak``."""
    if not (peak > 0 and math.isfinite(peak)):
        return 1.0
    mag = 10.0 ** math.floor(math.log10(peak))
    return next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= peak * (1 - 1e-12))


def _tick(v: float) -> str:
    """An axis value in few characters: 150, 2.5, 0.093."""
    if v >= 10:
        return f"{v:.0f}"
    return f"{v:.2g}"


def trend_chart(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    y_max: float,
    x_step: float,
    label: str,
    bands: Sequence[tuple[float, float]] = (),
    level: float | None = None,
    marks: Sequence[tuple[float, str]] = (),
    x_start: float | None = None,
    x_end: float | None = None,
    width: int = 640,
    height: int = 130,
) -> str:
    """A small inline SVG line chart over ``xs`` (ascending; NaN in ``ys`` breaks the line).

    Parameters
    ----------
    y_max : float
        Top of the y axis (its bottom is 0); higher values are drawn at the top.
    x_step : float
        Spacing of the x-axis labels (and the first x value is labelled).
    label : str
        What the chart shows, for screen readers.
    bands : sequence of (x0, x1)
        Stretches shaded red (alarms), edged in a darker red: the pale shade alone is 1.5:1
        against the white plot, the edges 3:1 (WCAG 2.1 1.4.11).
    level : float, optional
        A dashed horizontal line (a threshold), labelled on the axis when there is room.
    marks : sequence of (x, text)
        Vertical lines with a short label (events).
    x_start, x_end : float, optional
        Extend the x axis to here (before the first value, past the last).
    """
    if not len(xs):
        return ""
    left, right, top, bottom = 44, 8, 8, 22
    pw, ph = width - left - right, height - top - bottom
    x0 = float(xs[0]) if x_start is None else min(float(xs[0]), float(x_start))
    x1 = max(float(xs[-1]), x0 + 1e-9, *(float(m) for m, _ in marks))
    if x_end is not None:
        x1 = max(x1, float(x_end))

    def x(v: float) -> float:
        return left + pw * (min(max(v, x0), x1) - x0) / (x1 - x0)

    def y(v: float) -> float:
        return top + ph * (1.0 - min(max(v, 0.0), y_max) / y_max)

    shade = "".join(
        f'<rect x="{x(a):.1f}" y="{top}" width="{max(x(b) - x(a), 1.0):.1f}" height="{ph}" '
        'fill="#f4c7c3" stroke="#e37066"/>'
        for a, b in bands
    )
    lines: list[list[str]] = []
    run: list[str] = []
    for xv, yv in zip(xs, ys, strict=True):
        if yv is None or not math.isfinite(yv):
            lines.append(run)
            run = []
        else:
            run.append(f"{x(xv):.1f},{y(yv):.1f}")
    lines.append(run)
    polylines = "".join(
        f'<polyline points="{" ".join(r)}" fill="none" stroke="#1f4e9a" stroke-width="1.5"/>'
        for r in lines
        if r
    )
    y_labels: list[tuple[float, float]] = [(y_max, top + 4), (0.0, top + ph)]
    rule = ""
    if level is not None:
        rule = (
            f'<line x1="{left}" x2="{left + pw}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            'stroke="#a00" stroke-dasharray="4 3"/>'
        )
        if min(abs(y(level) - top), abs(y(level) - top - ph)) > 12:
            y_labels.append((level, y(level) + 4))
    axis = "".join(
        f'<text x="{left - 4}" y="{at:.1f}" text-anchor="end">{_tick(v)}</text>'
        for v, at in y_labels
    )
    first = math.ceil(x0 / x_step) * x_step
    if first == x0:
        first += x_step
    ticks = f'<text x="{left}" y="{height - 6}" text-anchor="middle">{x0:g}</text>' + "".join(
        f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle">{t:g}</text>'
        for t in (first + k * x_step for k in range(int((x1 - first) / x_step) + 1))
        if t <= x1 and x(t) - left > 24  # on the axis, clear of the first value's label
    )
    events = ""
    labelled_at = -math.inf
    for m, text in sorted(marks, key=lambda mt: mt[0]):
        events += (
            f'<line x1="{x(m):.1f}" x2="{x(m):.1f}" y1="{top}" y2="{top + ph}" stroke="#000" '
            'stroke-width="1"/>'
        )
        if x(m) - labelled_at >= 12:  # closer marks keep their line but share a label
            events += (
                f'<text x="{x(m) - 2:.1f}" y="{top + 10}" text-anchor="end">'
                f"{html.escape(text)}</text>"
            )
            labelled_at = x(m)
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(label)}">'
        f"{shade}"
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>'
        f"{rule}{polylines}{events}{axis}{ticks}</svg>"
    )
