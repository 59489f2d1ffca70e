"""The heart rate of an ECG feed minute by minute (:class:`MinuteRates`), and the trends
of the streams before gateway restarts that a ward keeps (:func:`kept_trends`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitalgru.scoring.ecg_labels import BeatCall

__all__ = [
    "EARLIER_TRENDS",
    "HR_WINDOW_S",
    "MIN_BEATS_PER_MINUTE",
    "TREND_KEEP_MINUTES",
    "MinuteRates",
    "kept_trends",
]

#: Length (s) of a minute of the trend, and the window of the bedside summary's heart rate
#: (:meth:`~vitalgru.scoring.ward_ecg_bed.EcgBed.summary`: the median RR of the beats in
#: accepted signal in it).
HR_WINDOW_S = 60.0

#: A minute of the heart-rate trend needs this many intervals in accepted signal.
MIN_BEATS_PER_MINUTE = 10

#: Heart-rate trends of earlier streams (before gateway restarts) kept per ECG patient,
#: each its last :data:`TREND_KEEP_MINUTES`.
EARLIER_TRENDS = 3
TREND_KEEP_MINUTES = 24 * 60


def kept_trends(trends: Any, n: int = EARLIER_TRENDS) -> list[dict[str, Any]]:
    """The newest ``n`` of a list of ``{"stream_started_at", "hr_trend_bpm"}`` that have a
    minute, each cut to its last :data:`TREND_KEEP_MINUTES` (``first_minute``: the minute of
    the stream its first rate is of, when not the first); anything else (in a state file
    written by hand or by another version) is dropped."""
    if not isinstance(trends, list):
        return []
    out = []
    for t in trends:
        if isinstance(t, dict) and isinstance(t.get("hr_trend_bpm"), list) and t["hr_trend_bpm"]:
            bpm = t["hr_trend_bpm"][-TREND_KEEP_MINUTES:]
            given = t.get("first_minute")
            first = (given if isinstance(given, int) and given > 0 else 0) + (
                len(t["hr_trend_bpm"]) - len(bpm))  # fmt: skip
            kept: dict[str, Any] = {"stream_started_at": str(t.get("stream_started_at", "")),
                    "hr_trend_bpm": [v if isinstance(v, int | float) else None for v in bpm]}  # fmt: skip
            if first:  # cut: its first minute is not the stream's (the page labels it so)
                kept["first_minute"] = first
            out.append(kept)
    return out[-n:]


class MinuteRates:
    """A feed's heart rate minute by minute of its stream, as a replay's clinician page
    computes it (:func:`vitalgru.reports.monitoring.patient_summary`: the median RR
    between consecutive beats in accepted signal, none for a minute with fewer than
    :data:`MIN_BEATS_PER_MINUTE`), kept as the beats come: a few numbers a minute.

    The minutes that are over are kept for the whole stream (its page draws them all) in
    an array of float64, NaN for none: 8 bytes a minute, at most twice that as it grows (a
    dict of them took 3.7 MiB a month of stream)."""

    def __init__(self) -> None:
        self._rates = np.full(64, np.nan)  # minutes that are over; NaN: too few beats
        self._open: dict[int, list[float]] = {}  # RRs of the minutes still going
        self._last: BeatCall | None = None

    def add(self, c: BeatCall, across: bool = False) -> None:
        """The next beat; ``across``: a break in the feed lies between it and the one
        before, so the interval between them is no RR interval."""
        prev, self._last = self._last, c
        if prev is None or across:
            return
        rr = c.time_s - prev.time_s
        if not (prev.signal_ok and c.signal_ok and rr > 0):
            return
        m = int(c.time_s // HR_WINDOW_S)
        self._open.setdefault(m, []).append(rr)
        for done in [k for k in self._open if k < m]:
            rate = self._rate(self._open.pop(done))
            if rate is not None:
                self.set(done, rate)

    def set(self, minute: int, rate: float) -> None:
        """Keep the rate of a minute that is over."""
        if minute >= self._rates.size:
            grown = np.full(max(2 * self._rates.size, minute + 1), np.nan)
            grown[: self._rates.size] = self._rates
            self._rates = grown
        self._rates[minute] = rate

    @property
    def nbytes(self) -> int:
        """Bytes the minutes that are over take."""
        return int(self._rates.nbytes)

    @staticmethod
    def _rate(rr: list[float]) -> float | None:
        return 60.0 / float(np.median(rr)) if len(rr) >= MIN_BEATS_PER_MINUTE else None

    def trend(self, minutes: int, start: int = 0) -> list[float | None]:
        """The rate of each minute from ``start`` to ``minutes`` (None: too few beats)."""
        start = max(0, min(start, minutes))
        kept = self._rates[start:minutes].tolist()
        out: list[float | None] = [None if v != v else v for v in kept]  # NaN: none
        out += [None] * (minutes - start - len(out))
        for k, rr in self._open.items():
            if start <= k < minutes and out[k - start] is None:
                out[k - start] = self._rate(rr)
        return out
