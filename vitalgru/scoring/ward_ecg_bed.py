"""What a ward keeps of one ECG feed between ticks (:class:`EcgBed`): the samples queued
for the next tick, the latest samples for alarm strips, the recent beats and alarms of the
bedside summary, and the heart rate minute by minute (kept as
:mod:`vitalgru.scoring.ward_ecg_trend` keeps it, with the trends of the streams before
gateway restarts)."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from vitalgru.dsp.quality import Thresholds
from vitalgru.population import ecg_rate_warning
from vitalgru.scoring.alarm_strips import STRIP_MAX_S
from vitalgru.scoring.alerts import MAX_BREAKS_KEPT
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.ward_ecg_alarms import alarm_state
from vitalgru.scoring.ward_ecg_trend import HR_WINDOW_S, MinuteRates
from vitalgru.scoring.ward_events import _iso
from vitalgru.types import AAMI_CLASSES

__all__ = [
    "MAX_CHUNK_S",
    "MAX_FILL_S",
    "RATE_MIN_SPAN_S",
    "RATE_WINDOW_S",
    "RECENT_BEATS",
    "STRIP_KEEP_S",
    "EcgBed",
    "SampleTail",
    "off_rate",
]

#: Most seconds of ECG one feed may queue between ticks (a feed that falls further behind
#: is refused, not buffered without bound).
MAX_CHUNK_S = 60.0

#: Longest gap (s) before a chunk, by the feed's sample index, that is kept as missing signal
#: (filled with NaN): one the quality check bridges (``Thresholds.max_gap_s``). A longer one,
#: a lost chunk (0.25-1 s) or an outage, is a break the monitor skips: filled, a lost 1 s
#: chunk flagged the quality windows over it and distorted the beats around it
#: (``benchmarks/lost_chunks.py``), and seconds of it read as seconds without a heartbeat.
MAX_FILL_S = Thresholds().max_gap_s

#: The rate a feed sends at is measured over its arrivals of the last this many seconds (of
#: wall time, since it last paused for longer than the ward's feed timeout) ...
RATE_WINDOW_S = 120.0
#: ... once they span at least this many. An arrival held up (a stall, a backlog sent after
#: an outage) makes the rate read fast from it and slow up to it, so a feed is taken as fast
#: only when the rate from each of its first arrivals (over the feed timeout) reads fast, and
#: as slow only when the rate up to each of its last reads slow (:meth:`EcgBed.rate_tests`);
#: and not when a delay shorter than the feed timeout could explain it (:func:`off_rate`): a
#: device at twice its rate shows after about 30 s, one 20 % off after about 50.
RATE_MIN_SPAN_S = 20.0

#: Beats kept per patient for the bedside summary (about 8 minutes at 75 bpm).
RECENT_BEATS = 600

#: Seconds of each ECG feed's latest samples kept for alarm strips: a strip's length and
#: the most one tick can bring.
STRIP_KEEP_S = MAX_CHUNK_S + 30.0

_CLASSES = [str(c) for c in AAMI_CLASSES]


def off_rate(
    fast: float, slow: float, fs: float, tolerance: float, already: bool, doubt: float = 0.0
) -> bool:
    """Whether a feed on a bed admitted at ``fs`` Hz is off its rate: ``fast`` more than
    ``tolerance`` (a share) above ``fs``, or ``slow`` as far below; before an alarm the
    tests of :meth:`EcgBed.rate_tests` (the least the rate from an arrival on reads, the
    most it reads up to one), and beyond what a delay could explain too (a share ``doubt``,
    the feed timeout over the span measured, either way); once ``already`` off, the rate
    itself for both, against half that share (so that a rate near the limit does not raise
    and end the alarm by turns)."""
    lim = math.log1p(tolerance / 2 if already else tolerance)
    up = math.log(fast / fs) if fast > 0 else -math.inf
    down = -math.log(slow / fs) if slow > 0 else math.inf
    if already:
        return up > lim or down > lim
    return up > max(lim, math.log1p(doubt)) or (doubt < 1 and down > max(lim, -math.log1p(-doubt)))


class SampleTail:
    """The latest ``n`` samples of a feed in a ring; ``end`` counts every sample added (from
    ``end`` given: the index of the first). With ``hold``, the last ``hold`` samples before
    the latest break are kept too, however long the break: an alarm raised as the feed
    broke off has its strip cut after the break's NaN has gone through the ring."""

    def __init__(self, n: int, end: int = 0, hold: int = 0) -> None:
        self.buf = np.full(max(int(n), 1), np.nan, dtype=np.float32)
        self.end = int(end)
        self.hold = int(hold)
        self.held: tuple[int, np.ndarray] | None = None  # (index of the first, samples)

    @property
    def oldest(self) -> int:
        """The index of the oldest sample :meth:`get` can give."""
        ring = max(self.end - self.buf.size, 0)
        return ring if self.held is None else min(ring, self.held[0])

    def add(self, x: np.ndarray) -> None:
        n = self.buf.size
        total = int(np.size(x))
        self.end += total - min(total, n)  # older than the ring holds: counted, not kept
        x = np.asarray(x, dtype=np.float32)[total - min(total, n) :]
        at = self.end % n
        first = min(x.size, n - at)
        self.buf[at : at + first] = x[:first]
        self.buf[: x.size - first] = x[first:]
        self.end += x.size

    def skip(self, n: int) -> None:
        """``n`` samples lost (a break in the feed): counted, and NaN in the ring (a strip
        shows no trace where no one saw the signal)."""
        if self.hold > 0 and n > 0:
            start = max(self.end - min(self.hold, self.buf.size), 0)
            self.held = (start, self._ring(start, self.end))
        k = min(int(n), self.buf.size)
        self.end += int(n) - k
        self.add(np.full(k, np.nan, dtype=np.float32))

    def _ring(self, a: int, b: int) -> np.ndarray:
        idx = np.arange(max(a, self.end - self.buf.size, 0), min(b, self.end)) % self.buf.size
        return self.buf[idx].copy()

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples ``[a, b)`` of the stream, from :attr:`oldest` on (NaN where lost)."""
        a, b = max(a, self.oldest), min(b, self.end)
        ring = max(self.end - self.buf.size, 0)
        if a >= ring or self.held is None:
            return self._ring(a, b)
        out = np.full(max(b - a, 0), np.nan, dtype=np.float32)
        h0, held = self.held
        lo, hi = max(a, h0), min(b, h0 + held.size, ring)
        if hi > lo:
            out[lo - a : hi - a] = held[lo - h0 : hi - h0]
        if b > ring:
            out[ring - a :] = self._ring(ring, b)
        return out

    def differs(self, x: np.ndarray, a: int) -> bool:
        """Whether samples ``x``, from index ``a`` on, differ from those kept at the same
        indexes (compared as kept, float32, where both have a value: NaN is no value)."""
        lo, hi = max(a, self.end - self.buf.size, 0), min(a + int(np.size(x)), self.end)
        if hi <= lo:
            return False
        kept = self.get(lo, hi)
        new = np.asarray(x, dtype=np.float32)[lo - a : hi - a]
        both = ~(np.isnan(kept) | np.isnan(new))
        return bool((kept[both] != new[both]).any())


@dataclass
class EcgBed:
    """One ECG patient of a ward: the feed's sampling rate, times and queue, and what the
    ward keeps of the stream for strips, summaries and trends."""

    fs: float
    admitted: datetime
    # wall time of stream time 0: admission; after a restart, the time the stream before it
    # had reached the feed's index the new one resumes at (:meth:`next_at`), or the restart
    # itself for a feed without an index
    stream_start: datetime
    last_data: float = field(default_factory=time.monotonic)  # wall clock of the last chunk
    # wall clock (monotonic) by which the feed had sent up to ``next_index``: its last
    # chunk's arrival, or after a restart when the stream before it reached that index (how
    # far ahead its next chunk can be)
    index_at: float = field(default_factory=time.monotonic)
    lost_seq: int | None = None  # the feed_lost alarm of a feed still lost (its event number)
    rate_seq: int | None = None  # the feed_rate alarm of a feed still off its rate (number)
    poor_seq: int | None = None  # the poor_signal alarm of a signal still poor (its number)
    pause_seq: int | None = None  # the pause alarm of a pause no beat has ended yet
    queued: list[np.ndarray] = field(default_factory=list)
    queued_n: int = 0
    received_s: float = 0.0
    discharging: bool = False  # its queue taken for the last time: no chunk is taken now
    # the feed's index of the next sample (from its chunks' ``start``; None until one sends
    # it, and after a restart), and what continuity made of its chunks: samples of a gap
    # filled with NaN, samples sent again (a resent chunk) dropped, samples lost in breaks
    next_index: int | None = None
    filled_samples: int = 0
    repeated_samples: int = 0
    break_samples: int = 0
    # the feed's arrivals since it last paused longer than the ward's feed timeout, each
    # (wall clock, stream samples so far, of which missing), for the rate it sends at
    # (:meth:`sent_rate`) and the share its index skipped (:meth:`missing_share`)
    arrivals: deque = field(default_factory=deque)
    stream_n: int = 0
    missing_n: int = 0
    # chunks whose index said the feed had restarted its count, and the latest samples by
    # the feed's index (NaN where none came), which tell a chunk sent again from a restart
    index_restarts: int = 0
    sent: SampleTail | None = None
    # which way the QRS points (the monitor's, NaN before it has beats enough), and what to
    # check when it points against the model's lead's usual way (vitalgru.dsp.polarity)
    qrs_polarity: float = math.nan
    polarity_warning: str | None = None
    # breaks in the feed among the samples queued: (samples queued before it, samples lost)
    breaks: list[tuple[int, int]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_BEATS))
    alerts: deque = field(default_factory=lambda: deque(maxlen=100))
    tail: SampleTail | None = None  # the latest samples pushed to the monitor (strips)
    rates: MinuteRates = field(default_factory=MinuteRates)  # heart rate by minute
    # where breaks in the feed ended (stream s, ascending), back to the oldest recent beat
    break_ends: deque = field(default_factory=deque)
    pending_strips: list = field(default_factory=list)  # (seq, Alert) of strips still growing
    # the heart-rate trends of the streams before a gateway restart, oldest first
    earlier: list = field(default_factory=list)
    # the alarms going on at a gateway restart, taken up from its log (their numbers)
    taken_up: tuple[int, ...] = ()

    @property
    def open_alarms(self) -> tuple[int | None, ...]:
        """The numbers of the alarms whose condition goes on (None for each that does not)."""
        return (self.lost_seq, self.rate_seq, self.poor_seq, self.pause_seq)

    @property
    def feed_lost(self) -> bool:
        """Whether the feed is lost (sent nothing for the ward's timeout, and not back)."""
        return self.lost_seq is not None

    def __post_init__(self) -> None:
        if self.tail is None:
            self.tail = SampleTail(int(math.ceil(STRIP_KEEP_S * self.fs)),
                                   hold=int(math.ceil(STRIP_MAX_S * self.fs)))  # fmt: skip

    def arrived(
        self, n: int, now: float, pause_s: float, window_s: float, missing: int = 0
    ) -> None:
        """``n`` samples of the stream came at wall clock ``now``, ``missing`` of them only by
        the index (filled, or skipped in a break); arrivals before a pause longer than
        ``pause_s``, and those more than ``window_s`` before the newest but one, are
        forgotten."""
        if self.arrivals and now - self.arrivals[-1][0] > pause_s:
            self.arrivals.clear()
        self.stream_n += int(n)
        self.missing_n += int(missing)
        self.arrivals.append((now, self.stream_n, self.missing_n))
        while len(self.arrivals) > 2 and now - self.arrivals[1][0] >= window_s:
            self.arrivals.popleft()

    def next_at(self) -> datetime:
        """The wall time of the stream's next sample (the feed's ``next_index``): stream
        time on the wall clock, as the alarms' ``onset_at`` is."""
        return self.stream_start + timedelta(seconds=self.stream_n / self.fs)

    def sent_rate(self, min_span_s: float) -> float | None:
        """Samples a second the feed sent, from its oldest arrival kept to its newest (the
        samples of the chunks after the first over the wall time between them); None while
        they span less than ``min_span_s``."""
        if len(self.arrivals) < 2:
            return None
        (t0, n0, _), (t1, n1, _) = self.arrivals[0], self.arrivals[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= min_span_s else None

    def rate_tests(self, min_span_s: float, settle_s: float = 0.0) -> tuple[float, float] | None:
        """``(fast, slow)``: the least samples a second the arrivals give from one of them to
        the newest, and the most from the oldest up to one of them, each over at least
        ``min_span_s``; None until they span ``settle_s`` more, so that the arrivals tried
        cover that long (a backlog that comes at once after a stall is over by then). A
        held-up arrival reads fast from it on and slow up to it; one on time reads true."""
        if len(self.arrivals) < 2:
            return None
        a = np.asarray(self.arrivals, dtype=np.float64)
        t, n = a[:, 0], a[:, 1]
        if t[-1] - t[0] < min_span_s + settle_s:
            return None
        starts, ends = t[-1] - t >= min_span_s, t - t[0] >= min_span_s
        fast = np.min((n[-1] - n[starts]) / (t[-1] - t[starts]))
        slow = np.max((n[ends] - n[0]) / (t[ends] - t[0]))
        return float(fast), float(slow)

    def rate_verdict(
        self, tolerance: float, timeout_s: float, already: bool
    ) -> tuple[bool, float] | None:
        """Whether the feed is off its rate now (:func:`off_rate`; raised on
        :meth:`rate_tests`, ended on the rate over the window, a delay's doubt the feed
        timeout ``timeout_s`` over the span), and that rate; None while its arrivals span
        too little to say."""
        tests = self.rate_tests(RATE_MIN_SPAN_S, timeout_s)
        rate = self.sent_rate(RATE_MIN_SPAN_S)
        if tests is None or rate is None:
            return None
        fast, slow = (rate, rate) if already else tests
        doubt = timeout_s / self.arrival_span_s()
        return off_rate(fast, slow, self.fs, tolerance, already, doubt), rate

    def arrival_span_s(self) -> float:
        """Wall time from the oldest arrival kept to the newest (s; 0 with fewer than two)."""
        return self.arrivals[-1][0] - self.arrivals[0][0] if len(self.arrivals) > 1 else 0.0

    def missing_share(self) -> float:
        """Of the samples :meth:`sent_rate` counts, the share that only the index said
        were sent (0 without an index)."""
        (_, n0, m0), (_, n1, m1) = self.arrivals[0], self.arrivals[-1]
        return (m1 - m0) / (n1 - n0) if n1 > n0 else 0.0

    def take_queued(self) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Empty the queue: its samples and the breaks among them (``(at, n)``: ``n``
        samples lost before sample ``at``, as
        :meth:`~vitalgru.scoring.arrhythmia.ArrhythmiaMonitor.push` takes them), which the
        strips' tail and the heart-rate trend take too."""
        assert self.tail is not None
        x = np.concatenate(self.queued) if self.queued else np.empty(0)
        breaks, a = self.breaks, 0
        for at, n in breaks:
            self.tail.add(x[a:at])
            self.tail.skip(n)
            self.break_ends.append(self.tail.end / self.fs)
            last = self.recent[-1].time_s if self.recent else -math.inf
            if len(self.break_ends) > MAX_BREAKS_KEPT and last < self.break_ends[0]:
                del self.break_ends[1]  # no beat since the oldest: one of them says as much
            a = at
        self.tail.add(x[a:])
        self.queued, self.queued_n, self.breaks = [], 0, []
        return x, breaks

    def add_beat(self, c: BeatCall) -> None:
        """Keep a beat labelled (in time order) for the summary and the trend."""
        prev = self.recent[-1].time_s if self.recent else None
        self.recent.append(c)
        self.rates.add(c, across=prev is not None and bool(self._across([prev], [c.time_s])[0]))
        while self.break_ends and self.break_ends[0] <= self.recent[0].time_s:
            self.break_ends.popleft()  # no interval from a recent or later beat spans it

    def _across(self, before: Any, after: Any) -> np.ndarray:
        """For each pair of times, whether a break in the feed ended in ``(before, after]``."""
        ends = np.asarray(self.break_ends, dtype=np.float64)
        return np.searchsorted(ends, after, "right") > np.searchsorted(ends, before, "right")

    def trend(self, last: int | None = None) -> dict[str, Any]:
        """``{"stream_started_at", "hr_trend_bpm"}`` of the current stream: each of its
        minutes, or its ``last`` minutes only (then ``first_minute``: the stream's minute
        the first rate is of, when not 0)."""
        assert self.tail is not None
        minutes = int(math.ceil(self.tail.end / self.fs / HR_WINDOW_S))
        first = 0 if last is None else max(0, minutes - last)
        trend = self.rates.trend(minutes, first)
        out: dict[str, Any] = {"stream_started_at": _iso(self.stream_start),
               "hr_trend_bpm": [None if v is None else round(v, 1) for v in trend]}  # fmt: skip
        if first:  # the minute of the stream the first rate is of
            out["first_minute"] = first
        return out

    def summary(
        self, pid: str, ends: Mapping[int, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """:meth:`vitalgru.scoring.ward.Ward.ecg_summary` of this feed (patient ``pid``);
        ``ends``: the ends the event log holds (:func:`alarm_ends`), said of the alarms
        they end."""
        recent = list(self.recent)
        rate = self.sent_rate(RATE_MIN_SPAN_S)
        hr = None
        if recent:
            last = recent[-1].time_s
            t = np.array([c.time_s for c in recent if c.time_s >= last - HR_WINDOW_S])
            ok = np.array([c.signal_ok for c in recent if c.time_s >= last - HR_WINDOW_S])
            rr = np.diff(t)[ok[1:] & ok[:-1] & ~self._across(t[:-1], t[1:])]
            rr = rr[rr > 0]
            if rr.size >= 4:
                hr = round(60.0 / float(np.median(rr)), 1)
        return {
            "patient_id": pid,
            "fs": self.fs,
            "admitted_at": _iso(self.admitted),
            "stream_started_at": _iso(self.stream_start),
            "received_s": round(self.received_s, 3),
            "queued_s": round(self.queued_n / self.fs, 3),
            "next_start": self.next_index,
            "filled_samples": self.filled_samples,
            "repeated_samples": self.repeated_samples,
            "break_samples": self.break_samples,
            "index_restarts": self.index_restarts,
            "sent_hz": None if rate is None else round(rate, 1),
            "qrs_polarity": (
                round(self.qrs_polarity, 2) if math.isfinite(self.qrs_polarity) else None
            ),
            "polarity_warning": self.polarity_warning,
            "beats": int(sum(self.counts.values())),
            "counts": {c: int(self.counts.get(c, 0)) for c in _CLASSES},
            "hr_bpm": hr,
            "population_warning": ecg_rate_warning(hr),
            "rejected_pct": (
                round(100.0 * sum(not c.signal_ok for c in recent) / len(recent), 1)
                if recent
                else None
            ),
            "last_beats": [
                {"time_s": round(c.time_s, 3), "label": c.label, "signal_ok": c.signal_ok}
                for c in recent[-10:]
            ],
            "alarms": [
                alarm_state(a, self.open_alarms, ends or {}, self.taken_up) for a in self.alerts
            ],
        }
