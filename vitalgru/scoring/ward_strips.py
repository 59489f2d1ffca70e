"""The ECG strips of a :class:`~vitalgru.scoring.ward.Ward`'s alarms: the samples around each
alarm, kept under its event's number as the stream reaches them, complete once the alarm's
window has passed and its beats are labelled, and written to the state file when begun and
when done.

:class:`WardStrips` is one of :class:`~vitalgru.scoring.ward.Ward`'s base classes and uses
the ward's ECG beds, queue lock and journal; it is not used alone.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import numpy as np

from vitalgru.scoring.alarm_strips import STRIP_LABEL_WAIT_S, alarm_strip, strip_bounds
from vitalgru.scoring.ward_ecg_bed import EcgBed
from vitalgru.scoring.ward_events import WardEvents, _iso_ms

__all__ = ["MAX_STRIPS", "WardStrips"]

#: Alarm strips kept (the newest; each about 30 KB at 360 Hz).
MAX_STRIPS = 500


class WardStrips(WardEvents):
    """The alarm strips of a ward's ECG patients (the methods of
    :class:`~vitalgru.scoring.ward.Ward` that are about them; the ward holds the state)."""

    # set by Ward.__init__
    _ecg_beds: dict[str, EcgBed]
    _strips: OrderedDict[int, dict[str, Any]]  # by event number
    _queue_lock: threading.Lock

    def _complete_strips(self, final: str | None) -> None:
        """Keep the strips of the alarms raised so far, as far as the samples go; those
        whose end has been reached and whose beats have been labelled (or whose feed
        ``final`` ends, or was lost) are complete and leave the pending list (the caller
        holds the queue lock)."""
        for pid, bed in self._ecg_beds.items():
            if not bed.pending_strips:
                continue
            assert bed.tail is not None
            waiting = []
            for seq, a in bed.pending_strips:
                start_s, end_s = strip_bounds(a)
                done = pid == final or bed.tail.end / bed.fs >= end_s + STRIP_LABEL_WAIT_S
                # only the strip's own samples, as far as the ring still holds them
                first = max(int(math.floor(start_s * bed.fs)), bed.tail.oldest)
                samples = bed.tail.get(first, int(round(end_s * bed.fs)))
                strip = alarm_strip(a, bed.fs, samples, first, bed.recent, complete=done)
                strip["start_at"] = _iso_ms(bed.stream_start + timedelta(seconds=strip["start_s"]))
                self._keep_strip(seq, strip)
                if not done:
                    waiting.append((seq, a))
            bed.pending_strips = waiting

    def _keep_strip(self, seq: int, strip: dict[str, Any]) -> None:
        """Keep an alarm's strip under its event's number, replacing what was kept of it (the
        caller holds the queue lock)."""
        new = seq not in self._strips
        if new and self._strips and seq < next(iter(self._strips)):
            return  # older than every strip kept: it would be the first to go
        self._strips[seq] = strip
        while len(self._strips) > MAX_STRIPS:
            self._strips.popitem(last=False)
        if new or strip["complete"]:  # written when begun and when done, not every tick
            self._journal("add_strip", seq, strip)

    def strip(self, seq: int) -> dict[str, Any]:
        """The ECG strip of alarm ``seq``: ``{"seq", "patient_id", "kind", "message", "fs",
        "start_s", "end_s", "start_at", "onset_s", "raised_at_s", "complete", "beats":
        [{"time_s", "label", "signal_ok"}], "samples": [mV, ...]}`` (stream times in s; a
        gap is None). Until ``complete`` it ends at the latest samples and grows each tick
        (:func:`~vitalgru.scoring.alarm_strips.alarm_strip`). KeyError when the event has none
        (not an ECG alarm, or older than the strips kept)."""
        with self._queue_lock:
            got = self._strips.get(int(seq))
        if got is None:
            raise KeyError(f"event {seq} has no ECG strip (only ECG alarms have one, and the "
                           f"newest {MAX_STRIPS} are kept)")  # fmt: skip
        x = got["samples"].astype(np.float64)
        samples = [None if not math.isfinite(v) else round(v, 4) for v in x.tolist()]
        return {"seq": int(seq), **got, "samples": samples}
