"""An ECG strip as a clinician reads one: the signal on ECG paper, each labelled beat's class
over its R peak, and the alarm's onset marked.

A bedside monitor keeps the strip of every arrhythmia alarm so that the nurse who answers it
can see whether it was a run of ventricular beats or a patient brushing their teeth; a
class label without the signal asks to be trusted. :func:`strip_svg` draws one as a
self-contained SVG (no script, no font or image from elsewhere) at the paper's standard
scale: 25 mm/s and 10 mm/mV, 1 mm squares with every fifth line darker, in rows of
``row_s`` seconds, its size given in millimetres so that a printed page keeps that scale
(a 10-s row is 250 mm: the pages print on A4 or Letter landscape). The times under the rows
are seconds from the strip's start (the caller's title says when that was), and a legend
names the beat classes. Plain data in, text out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["CLASS_NAMES", "MM_PER_MV", "MM_PER_S", "PX_PER_MM", "strip_svg"]

#: Paper speed and gain of the drawing (the clinical standard), and pixels per millimetre.
MM_PER_S = 25.0
MM_PER_MV = 10.0
PX_PER_MM = 4.0
#: Millivolts a row spans (the signal beyond is drawn at the row's edge and said so).
ROW_MV = 4.0
#: The AAMI EC57 beat classes, as the strip's legend and the pages name them.
CLASS_NAMES = {
    "N": "normal or bundle branch block",
    "S": "supraventricular ectopic",
    "V": "ventricular ectopic",
    "F": "fusion",
    "Q": "unclassifiable or paced",
}
#: Colour of each class's label (N quiet, ectopic beats in bold colours). Q is neither
#: normal nor ectopic: its own colour and a box around it, so that it stands out from N
#: without colour too (a grey Q had looked like the N beside it).
LABEL_COLOURS = {"N": "#555", "S": "#1f5fbf", "V": "#c00", "F": "#8a2be2", "Q": "#b35900"}
_BOXED = ("Q",)
#: The paper's 1 mm and 5 mm lines. The 5 mm lines, which a reader counts 0.2 s and 0.5 mV
#: by, are dark enough to show against the paper (3:1, WCAG 2.1 1.4.11: #e08080 was 2.8:1);
#: the 1 mm lines stay faint, as on a monitor's paper, under the trace.
GRID_MM = "#f4c2c2"
GRID_5MM = "#dd7575"
#: Text drawn on the grid (the onset, a clipped row) sits on a white halo: against a 5 mm
#: line a red 10 px "onset" was 2.1:1, under the 4.5:1 text needs (WCAG 2.1 1.4.3).
_ON_GRID = 'stroke="#fff" stroke-width="3" paint-order="stroke"'
_TOP_PX = 16  # room for the beat labels over each row
_FOOT_PX = 14  # room for the times under each row
_LEGEND_PX = 30  # room for the legend under the last row


#: Path coordinates are written in tenths of a pixel, as integers (the path is scaled by
#: 1/:data:`_SUB` when drawn): a third of the text of decimals.
_SUB = 10


def _row_path(t_px: np.ndarray, y_px: np.ndarray) -> str:
    """An SVG path through the finite points, broken at gaps (NaN), in relative integer
    steps of 1/:data:`_SUB` px. Where several samples fall in one pixel column only its
    lowest and highest are kept, in their order (and the last before a gap or the end):
    what a screen can show (a QRS spike keeps its peak), at about half the points of a
    360 Hz strip."""
    if t_px.size == 0:
        return ""
    n = t_px.size
    finite = np.isfinite(y_px)
    col = np.floor(t_px).astype(np.int64)
    # runs of samples in one pixel column and on the same side of a gap
    starts = np.r_[0, np.flatnonzero((np.diff(col) != 0) | (np.diff(finite) != 0)) + 1]
    stops = np.r_[starts[1:], n]
    run = np.repeat(np.arange(starts.size), stops - starts)
    y = np.where(finite, y_px, 0.0)
    lo = np.lexsort((y, run))[starts]  # each run's first lowest and first highest sample
    hi = np.lexsort((-y, run))[starts]
    run_finite = finite[starts]
    after_gap = np.r_[~finite[stops[:-1]], True]  # the trace's last point before a gap or end
    keep = np.unique(np.concatenate([
        starts[~run_finite],  # a gap: one NaN marks it
        lo[run_finite], hi[run_finite], (stops - 1)[run_finite & after_gap],
    ]))  # fmt: skip
    ok = finite[keep]
    xs = np.rint(t_px[keep] * _SUB).astype(np.int64)
    ys = np.rint(np.where(ok, y_px[keep], 0.0) * _SUB).astype(np.int64)
    move = ok & np.r_[True, ~ok[:-1]]  # the first point after a gap, or of the trace
    parts = []
    for i in np.flatnonzero(ok):
        if move[i]:
            parts.append(f"M{xs[i]} {ys[i]}")
        else:
            parts.append(f"l{xs[i] - xs[i - 1]} {ys[i] - ys[i - 1]}")
    return "".join(parts)


def _label(x: float, y: float, label: str, anchor: str = "middle") -> str:
    """A beat class's letter (and what follows it, a ``?``) at (x, y): coloured by class,
    ectopic classes bold, a boxed class in a box."""
    colour = LABEL_COLOURS.get(label[:1], "#555")
    weight = ' font-weight="bold"' if label[:1] in ("S", "V", "F") else ""
    out = (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11" '
           f'fill="{colour}"{weight}>{html.escape(label)}</text>')  # fmt: skip
    if label[:1] in _BOXED:  # around the letter (about 7 px wide at 11 px)
        left = x - 5.5 if anchor == "middle" else x - 2
        out += (f'<rect x="{left:.1f}" y="{y - 10:.1f}" width="11" height="12.5" fill="none" '
                f'stroke="{colour}" stroke-width="0.8"/>')  # fmt: skip
    return out


def _legend(top: float, width: float) -> str:
    """Two lines from ``top``: each class's letter as drawn and its name; what a ``?``
    says, the scale, and what the times under the rows are."""
    out, x = [], 2.0
    for k, name in CLASS_NAMES.items():
        out.append(_label(x + 2, top + 11, k, "start"))
        out.append(f'<text x="{x + 14:.1f}" y="{top + 11:.1f}" font-size="9" fill="#333">'
                   f"{html.escape(name)}</text>")  # fmt: skip
        x += 14 + 5.5 * len(name) + 16  # wide enough for a 9 px sans serif
    foot = top + 25
    out.append(f'<text x="2" y="{foot:.1f}" font-size="9" fill="#333">? after a letter: the beat '
               "lay in signal the quality check rejected. Under the rows: seconds from the "
               "strip's start.</text>")  # fmt: skip
    out.append(f'<text x="{width - 2:.0f}" y="{foot:.1f}" text-anchor="end" font-size="9" '
               f'fill="#555">{MM_PER_S:g} mm/s, {MM_PER_MV:g} mm/mV</text>')  # fmt: skip
    return "".join(out)


def _summary(
    duration_s: float,
    beats: Sequence[Mapping[str, Any]],
    onset_s: float | None,
    clipped_rows: Sequence[int],
    start_s: float,
) -> str:
    """What the strip shows, in words, for those who cannot see it (WCAG 2.1 1.1.1):
    ``ECG strip, 10 s: 12 beats labelled (11 N, 1 V; 1 in rejected signal); the alarm's
    onset at 5.0 s; row 2 clipped beyond ±2 mV``. Times from the strip's start."""
    labels = [str(b["label"]) for b in beats]
    counts = ", ".join(f"{labels.count(k)} {k}" for k in CLASS_NAMES if k in labels)
    rejected = sum(not b.get("signal_ok", True) for b in beats)
    out = f"ECG strip, {duration_s:.3g} s: {len(beats)} beat(s) labelled"
    if beats:
        out += f" ({counts}" + (f"; {rejected} in rejected signal" if rejected else "") + ")"
    if onset_s is not None:
        out += f"; the alarm's onset at {onset_s - start_s:.1f} s"
    if clipped_rows:
        rows = ", ".join(str(r + 1) for r in clipped_rows)
        out += f"; row(s) {rows} clipped beyond ±{ROW_MV / 2:g} mV"
    return out


def strip_svg(
    samples: Sequence[float] | np.ndarray,
    fs: float,
    *,
    start_s: float = 0.0,
    beats: Sequence[Mapping[str, Any]] = (),
    onset_s: float | None = None,
    title: str = "",
    row_s: float = 10.0,
) -> str:
    """One ECG strip as SVG.

    Parameters
    ----------
    samples : sequence of float
        The lead in mV (NaN or None: no signal there, drawn as a gap).
    fs : float
        Samples per second.
    start_s : float
        Stream time of the first sample (s from admission); the times under the rows are
        seconds from it (the title says when the strip starts).
    beats : sequence of mapping
        ``{"time_s", "label"}`` (and ``"signal_ok"``, False drawing the label with a
        question mark: the beat lay in signal the quality check rejected), stream times.
    onset_s : float, optional
        The alarm's onset, marked by a dashed line.
    title : str
        Said over the strip and, with what it shows in words (the beats by class, the
        onset, rows clipped), to screen readers; the SVG's ``<title>`` (a browser tab's
        name when the strip is opened on its own).
    row_s : float
        Seconds per row.

    Returns
    -------
    str
        ``<svg ...>...</svg>``.
    """
    x = np.asarray([np.nan if v is None else v for v in samples], dtype=np.float64)
    if not (fs > 0 and math.isfinite(fs)):
        raise ValueError(f"fs must be a positive number of samples per second, got {fs!r}")
    if not row_s > 0:
        raise ValueError(f"row_s must be > 0, got {row_s!r}")
    e = html.escape
    px_s, px_mv = MM_PER_S * PX_PER_MM, MM_PER_MV * PX_PER_MM
    duration = x.size / fs
    n_rows = max(1, math.ceil(duration / row_s - 1e-9))
    row_px = ROW_MV * px_mv
    width = row_s * px_s
    band = _TOP_PX + row_px + _FOOT_PX
    title_px = 18 if title else 0
    height = title_px + n_rows * band + _LEGEND_PX
    small, big = PX_PER_MM, 5 * PX_PER_MM
    shown = [b for b in beats if start_s <= float(b["time_s"]) < start_s + n_rows * row_s]
    onset = (
        onset_s if onset_s is not None and start_s <= onset_s < start_s + n_rows * row_s else None
    )
    clipped_rows = []
    out = [
        # sized in millimetres (the drawing's units are PX_PER_MM to the mm): printed, the
        # paper's scale is true, and a caliper on the page reads seconds and millivolts
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width / PX_PER_MM:g}mm" '
        f'height="{height / PX_PER_MM:g}mm" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        'aria-label="',  # named at the end, when the rows clipped are known
        "<defs>"
        f'<pattern id="mm" width="{small:g}" height="{small:g}" patternUnits="userSpaceOnUse">'
        f'<path d="M{small:g} 0V{small:g}H0" fill="none" stroke="{GRID_MM}" stroke-width="0.5"/>'
        "</pattern>"
        f'<pattern id="mm5" width="{big:g}" height="{big:g}" patternUnits="userSpaceOnUse">'
        f'<rect width="{big:g}" height="{big:g}" fill="url(#mm)"/>'
        f'<path d="M{big:g} 0V{big:g}H0" fill="none" stroke="{GRID_5MM}" stroke-width="1"/>'
        "</pattern></defs>",
    ]
    if title:
        out.append(f'<text x="2" y="13" font-size="12" fill="#111">{e(title)}</text>')
    t_all = start_s + np.arange(x.size) / fs
    for r in range(n_rows):
        top = title_px + r * band + _TOP_PX
        mid = top + row_px / 2
        lo, hi = int(round(r * row_s * fs)), int(round(min((r + 1) * row_s, duration) * fs))
        seg = x[lo:hi]
        finite = seg[np.isfinite(seg)]
        # the row is centred on the middle of the signal's range (robust to a lone spike),
        # so upright QRS complexes are not cut off
        lo_mv, hi_mv = np.percentile(finite, [0.2, 99.8]) if finite.size else (0.0, 0.0)
        centre = float(lo_mv + hi_mv) / 2
        clipped = bool(finite.size and np.abs(finite - centre).max() > ROW_MV / 2)
        if clipped:
            clipped_rows.append(r)
        y = mid - np.clip(seg - centre, -ROW_MV / 2, ROW_MV / 2) * px_mv
        t_px = (t_all[lo:hi] - (start_s + r * row_s)) * px_s
        out.append(f'<g transform="translate(0 {top:.1f})">'
                   f'<rect width="{width:.0f}" height="{row_px:.0f}" fill="url(#mm5)"/></g>')  # fmt: skip
        out.append(f'<path d="{_row_path(t_px, y)}" transform="scale({1 / _SUB:g})" '
                   f'fill="none" stroke="#000" stroke-width="{1.2 * _SUB:g}" '
                   'stroke-linejoin="round"/>')  # fmt: skip
        if clipped:
            out.append(f'<text x="{width - 2:.0f}" y="{top + 10:.1f}" text-anchor="end" '
                       f'font-size="10" fill="#a00" {_ON_GRID}>beyond ±{ROW_MV / 2:g} mV: clipped</text>')  # fmt: skip
        row_t0, row_t1 = start_s + r * row_s, start_s + (r + 1) * row_s
        for b in beats:
            t = float(b["time_s"])
            if not row_t0 <= t < row_t1:
                continue
            ok = b.get("signal_ok", True)
            out.append(_label((t - row_t0) * px_s, top - 4, str(b["label"]) + ("" if ok else "?")))
        if onset_s is not None and row_t0 <= onset_s < row_t1:
            ox = (onset_s - row_t0) * px_s
            out.append(f'<line x1="{ox:.1f}" y1="{top:.1f}" x2="{ox:.1f}" y2="{top + row_px:.1f}" '
                       'stroke="#c00" stroke-width="1.5" stroke-dasharray="4 3"/>')  # fmt: skip
            out.append(f'<text x="{ox + 3:.1f}" y="{top + row_px - 4:.1f}" font-size="10" '
                       f'fill="#c00" {_ON_GRID}>onset</text>')  # fmt: skip
        foot = top + row_px + 11
        # seconds from the strip's start, where each second's line is: a stream time as
        # h:mm:ss here read as a time of day, and was rounded (54.9 s labelled 0:00:55)
        for k in range(int(row_s) + 1):
            if row_t0 + k > start_s + duration + 1e-9:
                break
            out.append(f'<text x="{min(k * px_s, width - 1):.1f}" y="{foot:.1f}" '
                       f'text-anchor="{"start" if k == 0 else "end" if k == row_s else "middle"}" '
                       f'font-size="9" fill="#555">{r * row_s + k:g} s</text>')  # fmt: skip
    out.append(_legend(title_px + n_rows * band, width))
    out.append("</svg>")
    said = _summary(duration, shown, onset, clipped_rows, start_s)
    name = e(f"{title}. {said}" if title else said)
    out[0] += f'{name}"><title>{name}</title>'
    return "".join(out)
