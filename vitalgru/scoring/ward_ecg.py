"""The ECG side of a :class:`~vitalgru.scoring.ward.Ward`: feeds admitted, their samples
queued for the next tick, the beats and alarms the monitor returns recorded on each bed,
the end of poor signal and of pauses logged, merges and discharges, and what a bedside view
reads.

:class:`EcgWard` is one of :class:`~vitalgru.scoring.ward.Ward`'s base classes (the tick
that pushes every queued chunk through the network is the ward's own) and uses the ward's
locks, journal, event log, shadows and strips; it is not used alone. What is kept of each
feed is :class:`~vitalgru.scoring.ward_ecg_bed.EcgBed`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from vitalgru.errors import ConflictError
from vitalgru.scoring.alarm_strips import strip_bounds
from vitalgru.scoring.alert_types import Alert
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.patient_ids import check_patient_id
from vitalgru.scoring.ward_ecg_alarms import alarm_ends
from vitalgru.scoring.ward_ecg_bed import (
    MAX_FILL_S,
    RATE_WINDOW_S,
    EcgBed,
    SampleTail,
)
from vitalgru.scoring.ward_events import _iso, _iso_ms, merged_ids
from vitalgru.scoring.ward_shadows import WardShadows
from vitalgru.scoring.ward_strips import WardStrips

logger = logging.getLogger("vitalgru.scoring.ward")

__all__ = ["EcgWard"]


class EcgWard(WardShadows, WardStrips):
    """ECG feeds of a ward's patients (the methods of :class:`~vitalgru.scoring.ward.Ward`
    that are about them; the ward holds the state)."""

    # set by Ward.__init__
    ecg: Any
    max_chunk_s: float
    feed_timeout_s: float
    feed_rate_tolerance: float | None
    beats_labelled: Counter[str]
    _ecg_beds: dict[str, EcgBed]
    _model_lock: threading.Lock
    _queue_lock: threading.Lock

    def admit_ecg(self, patient_id: str, fs: float) -> None:
        """Start a patient's ECG feed at ``fs`` Hz (one lead, mV). ValueError when already
        admitted, for an id that cannot name a patient
        (:func:`~vitalgru.scoring.patient_ids.check_patient_id`) or when ``fs`` is not a
        positive rate."""
        self._need(self.ecg, "arrhythmia")
        pid = check_patient_id(str(patient_id))
        with self._model_lock, self._queue_lock:
            if pid in self._ecg_beds:
                raise ConflictError(f"patient {pid!r} is already on ECG monitoring")
            self.ecg.admit(pid, fs)  # checks fs
            self._in_shadow(self._shadow_ecg, lambda sh: sh.monitor.admit(pid, fs))
            now = datetime.now(UTC)
            self._ecg_beds[pid] = EcgBed(float(fs), now, now)
            self._journal("admit_ecg", pid, float(fs), _iso(now))

    def add_ecg(self, patient_id: str, samples: Any, start: int | None = None) -> int:
        """Queue a patient's next samples (mV; None or NaN for a gap) for the next tick.

        Infinities, and samples beyond :data:`~vitalgru.scoring.ecg_stream.MAX_ABS_SAMPLE`,
        are queued too and taken as gaps when scored (with a warning), as NaN is: the good
        samples around them are kept.

        ``start``: the feed's index of the first sample (its count of samples sent before
        it), so that the stream keeps its time when chunks go missing or come twice. A
        feed that does not send it is taken as continuous. Samples before the index the
        ward expects (a chunk resent because its answer was lost, or one that came after
        the next) are dropped; a chunk after it leaves a gap, filled with NaN when it is at
        most :data:`MAX_FILL_S` long (a gap the quality check bridges: the beats after it
        keep their time), else taken as a break in the feed, with a warning: the monitor
        skips it (:meth:`~vitalgru.scoring.arrhythmia.ArrhythmiaMonitor.skip`: the beats
        after it keep their time, no RR interval or run spans it, a pause counts only the
        silence received) and the strips show no trace there. The feed restarted its count,
        which begins again at the chunk, when its index is more than ``max_chunk_s`` behind
        (no resend is that old), when its samples differ from those received at the same
        index (a resend repeats them; a restart whose first samples equal them cannot be
        told from one), or when it is further ahead than the feed can have sent since its
        last chunk (``max_chunk_s`` more than the time since; across a gateway restart, its
        last chunk before it); with a warning. Counted in
        :meth:`ecg_summary` (``filled_samples``, ``repeated_samples``, ``break_samples``,
        ``index_restarts``, ``next_start``).

        Returns the samples now queued for the patient. KeyError when the patient was not
        admitted; ValueError for samples that are not a flat list of numbers, a ``start``
        that is not a whole number >= 0, or when more than ``max_chunk_s`` seconds of
        samples sent would be queued.
        """
        self._need(self.ecg, "arrhythmia")
        try:
            x = np.asarray([np.nan if v is None else v for v in samples], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("samples must be a list of numbers (mV; null for a gap)") from None
        if x.ndim != 1:
            raise ValueError("samples must be a flat list of numbers, one lead")
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)
                                  or start < 0):  # fmt: skip
            raise ValueError(f"start must be a whole number of samples >= 0, got {start!r}")
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._ecg_beds.get(pid)
            if bed is None:
                now = merged_ids(list(self._events), "ecg")(pid)
                if now != pid and now in self._ecg_beds:
                    raise KeyError(f"patient {pid!r} was merged into {now!r}: send the "
                                   f"samples under {now!r}")  # fmt: skip
                raise KeyError(f"patient {pid!r} is not on ECG monitoring; admit them first")
            if bed.discharging:  # taken now, it would be dropped with the bed, never scored
                raise KeyError(f"patient {pid!r} is being discharged from ECG monitoring")
            # a chunk without an index continues the stream: the index it would have had
            # moves on by its samples, so an indexed chunk after it is in order (it was
            # taken as coming after a break the unindexed chunks' length long)
            x, next_index, filled, again, broken, restart = (
                (x, None if bed.next_index is None else bed.next_index + x.size, 0, 0, 0, None)
                if start is None
                else self._in_order(bed, x, start)
            )
            if (bed.queued_n + x.size - filled) / bed.fs > self.max_chunk_s:  # a gap filled
                raise ValueError(  # comes on top (at most MAX_FILL_S)
                    f"patient {pid!r}: more than {self.max_chunk_s:g} s of ECG would be "
                    "queued; send smaller chunks or tick more often"
                )
            bed.next_index = next_index
            bed.filled_samples += filled
            bed.repeated_samples += again
            if broken and broken / bed.fs > time.monotonic() - bed.index_at + self.max_chunk_s:
                broken, restart = 0, (f"{broken / bed.fs:.1f} s ahead, more than the feed can "
                                      "have sent since its last chunk")  # fmt: skip
            if restart is not None:
                if bed.stream_n == 0:  # the first samples after a gateway restart: the
                    # index the stream resumed at says nothing of when they were taken
                    bed.stream_start = datetime.now(UTC) - timedelta(seconds=x.size / bed.fs)
                bed.index_restarts += 1
                logger.warning("ward: patient %s: the chunk's index (%d) is %s: taken as a "
                               "feed that restarted its count", pid, start, restart)  # fmt: skip
            if next_index is not None:
                self._remember_sent(bed, x, next_index, broken, restart is not None)
            if x.size or broken:
                bed.arrived(x.size + broken, time.monotonic(), self.feed_timeout_s,
                            RATE_WINDOW_S, missing=filled + broken)  # fmt: skip
            if broken:
                bed.breaks.append((bed.queued_n, broken))
                bed.break_samples += broken
                logger.warning("ward: patient %s: %d samples (%.1f s) missing before this "
                               "chunk, too long to fill: taken as a break, after which the "
                               "beats keep their time", pid, broken, broken / bed.fs)  # fmt: skip
            if x.size:
                bed.queued.append(x)
                bed.queued_n += x.size
                bed.received_s += x.size / bed.fs
                bed.last_data = bed.index_at = time.monotonic()
                lost, bed.lost_seq = bed.lost_seq, None
                if lost is not None:  # back: that technical alarm has cleared, no one is paged
                    self._awaiting_ack.pop(lost, None)
                    self._event({"source": "ecg", "patient_id": pid, "kind": "feed_restored",
                                 "ends": lost, "alarm_kind": "feed_lost",
                                 "message": "ECG samples are arriving again"})  # fmt: skip
            return bed.queued_n

    def _in_order(
        self, bed: EcgBed, x: np.ndarray, start: int
    ) -> tuple[np.ndarray, int, int, int, int, str | None]:
        """``x`` (sent from the feed's index ``start``) as it continues ``bed``'s stream
        (see :meth:`add_ecg`): ``(samples to queue, the next index, samples of a gap filled
        with NaN, samples dropped as sent again, samples of a gap too long to fill, why the
        feed is taken to have restarted its count, or None)``. Changes nothing."""
        expected = bed.next_index
        nxt = max(expected or 0, start + x.size)
        if expected is None or start == expected:  # the first index, or in order
            return x, nxt, 0, 0, 0, None
        behind, why = (expected - start) / bed.fs, None
        if behind > self.max_chunk_s:
            why = "older than any resend"
        elif start < expected and bed.sent is not None and bed.sent.differs(x, start):
            why = "with samples other than those received there"
        elif start == 0 and bed.sent is None:
            # after a restart the samples taken before are not kept to compare with: a
            # count from 0 again is the feed's own restart, not a resend
            why = "from 0 again"
        if why is not None:  # the feed restarted its count, which begins again here
            return x, start + x.size, 0, 0, 0, f"{behind:.1f} s behind, {why}"
        if start < expected:  # sent again: only what is new is taken
            again = min(expected - start, x.size)
            return x[again:], nxt, 0, again, 0, None
        gap = start - expected
        if gap / bed.fs > MAX_FILL_S:  # a break, not a gap
            return x, nxt, 0, 0, gap, None
        return np.concatenate([np.full(gap, np.nan), x]), nxt, gap, 0, 0, None

    def _remember_sent(
        self, bed: EcgBed, x: np.ndarray, next_index: int, broken: int, restarted: bool
    ) -> None:
        """Keep the samples ``x`` taken (up to the feed's index ``next_index``, after
        ``broken`` lost) by the feed's index, to tell a resend from a restarted count."""
        if bed.sent is None or restarted:
            n = int(math.ceil(self.max_chunk_s * bed.fs))
            bed.sent = SampleTail(n, end=next_index - x.size)
        elif broken:
            bed.sent.skip(broken)
        bed.sent.add(x)

    def _check_rate(self, pid: str, bed: EcgBed) -> None:
        """Raise ``feed_rate`` when the feed sends more than ``feed_rate_tolerance`` off the
        rate it was admitted at (measured over :data:`RATE_WINDOW_S`, by the tests that a
        held-up arrival cannot sway: :meth:`EcgBed.rate_verdict`), and end it when it is
        back within half that. The caller holds the queue lock."""
        if self.feed_rate_tolerance is None:
            return
        was = bed.rate_seq is not None
        verdict = bed.rate_verdict(self.feed_rate_tolerance, self.feed_timeout_s, was)
        if verdict is None:
            return
        off, rate = verdict
        if off and not was:
            missing = bed.missing_share()
            why = (", or it loses that share of its samples on the way (its chunks carry no "
                   "index to tell)" if bed.next_index is None else
                   f" ({missing:.0%} of them never came: does its index count samples?)"
                   if missing >= 0.05 else "")  # fmt: skip
            event = {
                "source": "ecg", "patient_id": pid, "kind": "feed_rate", "sent_hz": round(rate, 1),
                "message": f"the feed sends about {rate:.0f} samples a second but was admitted "
                f"at {bed.fs:g} Hz{why}: heart rates, intervals and beat labels are wrong "
                "until it is admitted again at the rate it sends, or the device sends at that "
                "rate",
            }  # fmt: skip
            bed.alerts.append(self._event(event))
            bed.rate_seq = bed.alerts[-1]["seq"]
        elif was and not off:
            assert bed.rate_seq is not None
            self._awaiting_ack.pop(bed.rate_seq, None)
            self._event({"source": "ecg", "patient_id": pid, "kind": "alarm_ended",
                         "ends": bed.rate_seq, "alarm_kind": "feed_rate", "reason": "rate_matches",
                         "message": f"the feed sends about {rate:.0f} samples a second, as "
                         f"admitted ({bed.fs:g} Hz)"})  # fmt: skip
            bed.rate_seq = None

    def discharge_ecg(self, patient_id: str) -> dict[str, Any]:
        """End a patient's feed: score what is queued and the beats still waiting, and
        return the patient's final summary (:meth:`ecg_summary`)."""
        self._need(self.ecg, "arrhythmia")
        pid = str(patient_id)
        with self._model_lock:
            with self._queue_lock:
                bed = self._ecg_beds.get(pid)
                if bed is None:
                    raise KeyError(f"patient {pid!r} is not on ECG monitoring")
                rest, cuts = bed.take_queued() if bed.queued or bed.breaks else (None, [])
                bed.discharging = True  # a chunk from now on is refused, not lost
            breaks = {pid: cuts} if cuts else None
            calls: list[BeatCall] = []
            alerts: list[Alert] = []
            if rest is not None:
                t = self.ecg.push({pid: rest}, breaks)
                calls, alerts = list(t.calls), list(t.alerts)
            t = self.ecg.discharge(pid)
            calls += t.calls
            alerts += t.alerts
            self._in_shadow(
                self._shadow_ecg,
                lambda sh: self._discharge_shadow(sh, pid, (rest, breaks), (calls, alerts)),
            )
            self._record_ecg(calls, alerts)
            with self._queue_lock, self._together():  # the ends and the discharge, or neither
                self._complete_strips(final=pid)  # the stream ended: as far as it went
                bed = self._ecg_beds.pop(pid)
                self._end_at_discharge(pid, bed)
                summary = bed.summary(pid, alarm_ends(self._events))
                self._journal("discharge_ecg", pid)
        return {**summary, "discharged": True}

    def _end_at_discharge(self, pid: str, bed: EcgBed) -> None:
        """Log the end of each alarm still going on when ``pid`` leaves ECG monitoring (a lost
        feed, one at the wrong rate, a poor signal, a pause): an ``alarm_ended`` event naming it (``ends``,
        ``reason``: ``discharged``), so that whoever shows it as active, an integration
        engine or the forwarder's receiver, can clear it. A technical alarm's escalation
        stops; a pause, a clinical alarm, still wants someone to acknowledge it. The
        caller holds the queue lock."""
        for kind, seq in (("feed_lost", bed.lost_seq), ("feed_rate", bed.rate_seq),
                          ("poor_signal", bed.poor_seq), ("pause", bed.pause_seq)):  # fmt: skip
            if seq is None:
                continue
            if kind != "pause":
                self._awaiting_ack.pop(seq, None)
            event = {"source": "ward", "patient_id": pid, "kind": "alarm_ended", "ends": seq,
                     "alarm_kind": kind, "reason": "discharged",
                     "message": f"the {kind.replace('_', ' ')} "
                     f"alarm (event {seq}) ends: the patient left ECG monitoring"}  # fmt: skip
            if kind in ("poor_signal", "pause"):  # begun on the stream's clock: ended on it
                event["ended_at"] = _iso_ms(bed.next_at())
            self._event(event)
        bed.lost_seq = bed.rate_seq = bed.poor_seq = bed.pause_seq = None

    def merge_ecg(self, patient_id: str, into: str) -> dict[str, Any]:
        """Go on with an ECG patient's stream under another identifier, when the hospital
        merges two records of one patient (``ADT^A40``: a temporary number into the
        patient's own). The feed's samples are taken under ``into`` from now on; the beats
        waiting, the network's state and memory, the counts, the alarms going on (a lost
        feed, a poor signal) and the trends of earlier streams carry over; events logged
        before keep the identifier they were logged under, and the log gets a
        ``patient_merged`` event (source ``ward``, ``monitor`` ``ecg``, ``merged_from``).
        Samples still sent under the old identifier are refused, naming ``into``. Returns
        the :meth:`ecg_summary` under ``into``. KeyError for a patient not on ECG
        monitoring; ValueError when ``into`` is on ECG monitoring already (two streams are
        not joined: discharge one first) or is the same id."""
        self._need(self.ecg, "arrhythmia")
        old, new = str(patient_id), str(into)
        with self._model_lock, self._queue_lock:
            bed = self._merge_checked(self._ecg_beds, old, new, "ECG monitoring", "a stream")
            self.ecg.rename(old, new)
            self._in_shadow(self._shadow_ecg, lambda sh: sh.rename(old, new))
            self._ecg_beds[new] = self._ecg_beds.pop(old)
            with self._together():  # the move and its event, or neither
                self._journal("merge_ecg", old, new)
                self._log_merge("ecg", old, new, "the ECG stream")
            return bed.summary(new, alarm_ends(self._events))

    def _end_conditions(self, pids: Iterable[str]) -> None:
        """Log the end of each of ``pids``' open alarms whose condition has cleared (the
        caller holds the model lock), naming the alarm (``ends``) so that an engine can
        clear it: ``signal_restored`` once the monitor judges the signal good for as long as
        re-arms the poor-signal alarm (a technical alarm: its escalation stops), and
        ``beats_resumed`` once an R peak is detected after a pause (a clinical alarm: it
        still wants someone to acknowledge it). And note which way each QRS points
        (:meth:`_note_polarity`)."""
        assert self.ecg is not None
        with self._queue_lock:
            for pid in pids:
                bed = self._ecg_beds.get(pid)
                if bed is None:
                    continue
                if bed.poor_seq is not None and self.ecg.signal_good(pid):
                    self._condition_ended(pid, bed, "poor_signal", bed.next_at())
                if bed.pause_seq is not None and not self.ecg.pause_open(pid):
                    self._condition_ended(pid, bed, "pause", bed.next_at())
                self._note_polarity(pid, bed)

    def _condition_ended(self, pid: str, bed: EcgBed, kind: str, by: datetime) -> None:
        """Log the end of ``pid``'s open ``poor_signal`` or ``pause`` alarm (the caller
        holds the queue lock), ``ended_at`` ``by``: the stream time by which it had ended,
        on the clock of the alarms' ``onset_at``, so that an end never reads before its
        onset for a feed that sends faster than real time."""
        at = _iso_ms(by)
        if kind == "poor_signal":
            seq, bed.poor_seq = bed.poor_seq, None
            self._awaiting_ack.pop(seq, None)  # a technical alarm: its escalation stops
            self._event({"source": "ecg", "patient_id": pid, "kind": "signal_restored",
                         "ends": seq, "alarm_kind": kind, "ended_at": at,
                         "message": "the ECG signal passed the quality "
                         "check again: beats can be trusted"})  # fmt: skip
        else:  # a clinical alarm: it still wants someone to acknowledge it
            seq, bed.pause_seq = bed.pause_seq, None
            self._event({"source": "ecg", "patient_id": pid, "kind": "beats_resumed",
                         "ends": seq, "alarm_kind": kind, "ended_at": at,
                         "message": "heartbeats are detected again after the pause"})  # fmt: skip

    def _note_polarity(self, pid: str, bed: EcgBed) -> None:
        """Keep which way the patient's QRS points (the caller holds both locks), and warn
        in the log when it turns against the model's lead's usual way, or back
        (:meth:`vitalgru.scoring.arrhythmia.ArrhythmiaMonitor.qrs_polarity`): a flag for
        someone to check the electrodes, not an alarm, since a leftward axis turns the QRS
        of lead II down as well."""
        assert self.ecg is not None
        value, warn = self.ecg.qrs_polarity(pid, bed.polarity_warning is not None)
        if warn is not None and bed.polarity_warning is None:
            logger.warning("patient %s: %s", pid, warn)
        elif warn is None and bed.polarity_warning is not None:
            logger.info("patient %s: the QRS points its usual way again (polarity %+.2f)",
                        pid, value)  # fmt: skip
        bed.qrs_polarity, bed.polarity_warning = value, warn

    def _record_ecg(self, calls: list[BeatCall], alerts: list[Alert]) -> None:
        with self._queue_lock:
            self.beats_labelled.update(c.label for c in calls)
            for c in calls:
                bed = self._ecg_beds.get(c.patient_id)
                if bed is not None:
                    bed.counts[c.label] += 1
                    bed.add_beat(c)
            for a in alerts:
                bed = self._ecg_beds.get(a.patient_id)
                event = {"source": "ecg", **asdict(a)}
                if bed is not None:
                    # stream time on the wall clock: exact for a feed that runs in real
                    # time, as a bedside feed does
                    onset = bed.stream_start + timedelta(seconds=a.onset_s)
                    event["onset_at"] = _iso_ms(onset)
                    # a second pause or poor signal in one chunk: the tracker re-armed, so
                    # the first one ended before it began; its end is logged first
                    if a.kind == "poor_signal" and bed.poor_seq is not None:
                        self._condition_ended(a.patient_id, bed, "poor_signal", onset)
                    elif a.kind == "pause" and bed.pause_seq is not None:
                        self._condition_ended(a.patient_id, bed, "pause", onset)
                    start_s, end_s = strip_bounds(a)
                    event["strip_s"] = round(end_s - start_s, 3)  # once complete
                stored = self._event(event)
                if bed is not None:
                    bed.pending_strips.append((stored["seq"], a))
                    bed.alerts.append(stored)
                    if a.kind == "poor_signal":
                        bed.poor_seq = stored["seq"]
                    elif a.kind == "pause":
                        bed.pause_seq = stored["seq"]
            self._complete_strips(final=None)

    def ecg_trend(self, patient_id: str) -> dict[str, Any]:
        """The heart rate of each minute of the patient's current stream (since admission
        or the gateway's restart): ``{"patient_id", "stream_started_at", "monitored_s",
        "hr_trend_bpm": [bpm or None, ...], "earlier": [the same ``{"stream_started_at",
        "hr_trend_bpm"}`` of the streams before restarts, oldest first: the last
        :data:`~vitalgru.scoring.ward_ecg_trend.EARLIER_TRENDS`, each its last day]}``.
        KeyError for a patient not on ECG."""
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._ecg_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on ECG monitoring")
            assert bed.tail is not None
            return {"patient_id": pid, "monitored_s": bed.tail.end / bed.fs,
                    **bed.trend(), "earlier": [dict(t) for t in bed.earlier]}  # fmt: skip

    def ecg_summary(self, patient_id: str) -> dict[str, Any]:
        """What a bedside view shows: ``{"patient_id", "fs", "admitted_at",
        "stream_started_at" (stream time 0: admission, or after a gateway restart where the
        feed's index resumed), "received_s", "queued_s", "beats", "counts" ({class: n}),
        "hr_bpm" (median RR of the last minute's beats in accepted signal; None with fewer
        than 5), "population_warning" (that rate is above those the beat model was trained
        at: :func:`~vitalgru.population.ecg_rate_warning`; else None),
        "rejected_pct" (of the recent beats), "last_beats" (the 10 newest: time_s,
        label, signal_ok), "alarms" (the newest 100, oldest first; each with its ``state``:
        ``going_on``, ``ended``, with ``ended`` (``{"seq", "at", "kind", "reason",
        "message"}`` of the event that ended it) while the log holds that event, or
        ``momentary``)}``. KeyError for a patient not on ECG monitoring."""
        self._need(self.ecg, "arrhythmia", change=False)
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._ecg_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on ECG monitoring")
            return bed.summary(pid, alarm_ends(self._events))
