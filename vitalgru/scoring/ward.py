"""A ward of live patients behind one gateway: feeds arrive from many threads, the networks
run batched.

:class:`Ward` holds an :class:`~vitalgru.scoring.ArrhythmiaMonitor` and/or an
:class:`~vitalgru.scoring.EarlyWarningMonitor` and is what a bedside gateway (the HTTP
service of ``vitalgru serve``) calls. ECG arrives in small chunks from each bedside feed
and is only queued; :meth:`Ward.tick`, run on a clock, hands every patient's queued samples
to the monitor in one batched push, so the cost of a network call is shared by the whole
ward, exactly as in a replay. A patient-hour of vital signs is scored when it arrives (one
row an hour per patient does not need batching), or, when it comes as observations spread
over several messages (a monitor's vital signs every few minutes, a laboratory result when
it is ready), is assembled until it closes, ``hour_close_after_s`` after its end
(:meth:`Ward.add_observations`). Every alarm, and every start of a sepsis
alarm episode, goes into one numbered event log that an integration engine polls
(:meth:`Ward.events`), and each patient keeps a short summary for a bedside view
(:meth:`Ward.ecg_summary`).

The tick and what the ward says of itself are here; :class:`Ward`'s base classes hold the
rest: the ECG feeds' in :mod:`vitalgru.scoring.ward_ecg`, the restarts'
in :mod:`vitalgru.scoring.ward_restart`, the alarm strips' in
:mod:`vitalgru.scoring.ward_strips`, the sepsis patients' in
:mod:`vitalgru.scoring.ward_sepsis`, the shadow models' in
:mod:`vitalgru.scoring.ward_shadows` and the event log's (acknowledgements, escalations) in
:mod:`vitalgru.scoring.ward_events`. What is kept of each ECG feed
(:class:`~vitalgru.scoring.ward_ecg_bed.EcgBed`) is in :mod:`vitalgru.scoring.ward_ecg_bed`.

Thread safety: one lock guards the queues and the event log, another the monitors;
enqueuing never waits for a network call.

Restarts: with a :class:`~vitalgru.scoring.ward_journal.WardJournal` the ward writes its
admissions, sepsis hours and event log to disk as they happen, and a ward started on the
same journal takes them up again (:meth:`Ward.restore`): sepsis patients where they were,
hour for hour, ECG feeds with what the beat network had learnt of each patient (its memory,
kept every ``memory_every_s`` and by :meth:`Ward.close`; the beat detector starts afresh on
the next samples), the log numbered on.

Shadows: a challenger monitor per task may be fed everything its champion is fed and
compared with it (:mod:`vitalgru.scoring.shadow`, :meth:`Ward.shadow_report`); it raises no
alarm, and its failures stop at the ward.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor
from vitalgru.scoring.clock_steps import ClockSteps
from vitalgru.scoring.durations import Durations
from vitalgru.scoring.early_warning import EarlyWarningMonitor
from vitalgru.scoring.shadow import EcgShadow, SepsisShadow
from vitalgru.scoring.ward_ecg import EcgWard
from vitalgru.scoring.ward_ecg_alarms import alarm_ends
from vitalgru.scoring.ward_ecg_bed import MAX_CHUNK_S, EcgBed
from vitalgru.scoring.ward_events import _utc_now, escalation_delays
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_restart import MEMORY_EVERY_S, WardRestart
from vitalgru.scoring.ward_sepsis import HOUR_CLOSE_AFTER_S
from vitalgru.scoring.ward_sepsis_bed import SepsisBed
from vitalgru.scoring.ward_state import StateDamage
from vitalgru.scoring.ward_strips import MAX_STRIPS

logger = logging.getLogger(__name__)

__all__ = [
    "FEED_RATE_TOLERANCE",
    "MAX_CHUNK_S",
    "MAX_STRIPS",
    "MEMORY_EVERY_S",
    "Durations",
    "Ward",
]

#: Events kept in the log; an engine polling less often than this fills loses the oldest.
MAX_EVENTS = 10_000
#: A feed that has sent nothing for this long (s of wall time) raises ``feed_lost``: the
#: monitor's own pause and poor-signal alarms need samples to run on, so a cable pulled out
#: of the gateway, not off the patient, would otherwise go unnoticed.
FEED_TIMEOUT_S = 10.0
#: An alarm no one has acknowledged for this long (s) is escalated: the log gets an
#: ``escalated`` event naming it, for the integration engine to page the next person (the
#: default, one level; a ward may give several, an escalation chain).
ESCALATE_AFTER_S = 15 * 60.0
#: The share off its admitted rate at which the gateway raises ``feed_rate`` for a feed.
FEED_RATE_TOLERANCE = 0.15


class Ward(WardRestart, EcgWard):
    """Live patients of one gateway.

    Parameters
    ----------
    ecg : ArrhythmiaMonitor, optional
        Labels ECG beats and raises arrhythmia alarms (None: no ECG accepted).
    sepsis : EarlyWarningMonitor, optional
        Scores patient-hours of vital signs (None: none accepted).
    max_chunk_s : float
        Most seconds of ECG a patient may have queued (:data:`MAX_CHUNK_S`).
    feed_timeout_s : float
        Seconds of silence after which a feed is reported lost (:data:`FEED_TIMEOUT_S`).
    feed_rate_tolerance : float, optional
        Raise ``feed_rate`` for a feed that sends more than this share off the rate it was
        admitted at (0.15: 15 %), measured on the wall clock over its last
        :data:`~vitalgru.scoring.ward_ecg_bed.RATE_WINDOW_S` once they span
        :data:`~vitalgru.scoring.ward_ecg_bed.RATE_MIN_SPAN_S` (a device set to 500 Hz
        admitted at 250 doubles every heart rate); it ends within half that share. None
        (the default): not checked, for a ward fed faster than real time (a replay, a
        benchmark); the gateway checks (:data:`FEED_RATE_TOLERANCE`).
    journal : WardJournal, optional
        Where admissions, sepsis hours and events are written as they happen, so that a
        restarted gateway can :meth:`restore` them (None: kept in memory only).
    escalate_after_s : float or sequence of float, optional
        Seconds after which an alarm no one has acknowledged is escalated with an
        ``escalated`` event (:data:`ESCALATE_AFTER_S`; None: never); several, increasing,
        for an escalation chain: one ``escalated`` event per level (``level`` 1, 2, ...),
        each counted from the alarm, until someone acknowledges it. Checked every tick.
    shadow_ecg, shadow_sepsis : optional
        Challenger monitors fed everything the champions are fed and compared with them
        (:mod:`vitalgru.scoring.shadow`, :meth:`shadow_report`); they raise no alarm, and
        an error of theirs is logged and counted, never passed on.
    hour_close_after_s : float
        Seconds after its end that an ICU hour assembled from observations waits for late
        ones before it is scored (:data:`HOUR_CLOSE_AFTER_S`; :meth:`add_observations`).
    sepsis_lockout_h : float
        ICU hours after an acknowledged sepsis alarm during which a new alarm episode of
        the same patient pages no one: it is logged as ``sepsis_risk_repeated``, which never
        escalates and is not forwarded (:func:`~vitalgru.scoring.ward_sepsis.within_lockout`;
        0, the default: every episode alarms).

    Raises
    ------
    ValueError
        Neither monitor given.
    """

    def __init__(
        self,
        ecg: ArrhythmiaMonitor | None = None,
        sepsis: EarlyWarningMonitor | None = None,
        *,
        max_chunk_s: float = MAX_CHUNK_S,
        feed_timeout_s: float = FEED_TIMEOUT_S,
        feed_rate_tolerance: float | None = None,
        journal: WardJournal | None = None,
        shadow_ecg: ArrhythmiaMonitor | None = None,
        shadow_sepsis: EarlyWarningMonitor | None = None,
        escalate_after_s: float | Sequence[float] | None = ESCALATE_AFTER_S,
        memory_every_s: float | None = MEMORY_EVERY_S,
        hour_close_after_s: float = HOUR_CLOSE_AFTER_S,
        sepsis_lockout_h: float = 0.0,
    ) -> None:
        if (shadow_ecg is not None and ecg is None) or (
            shadow_sepsis is not None and sepsis is None
        ):
            raise ValueError("a shadow model needs the champion it is compared with")
        if ecg is None and sepsis is None:
            raise ValueError("a ward needs an arrhythmia monitor, a sepsis monitor or both")
        if not feed_timeout_s > 0:
            raise ValueError(f"feed_timeout_s must be > 0 seconds, got {feed_timeout_s!r}")
        if feed_rate_tolerance is not None and not 0 < feed_rate_tolerance < 1:
            raise ValueError(
                f"feed_rate_tolerance must be a share between 0 and 1 (None: not checked), "
                f"got {feed_rate_tolerance!r}"
            )
        self.feed_rate_tolerance = feed_rate_tolerance
        self.escalation_s = escalation_delays(escalate_after_s)
        if memory_every_s is not None and not memory_every_s > 0:
            raise ValueError(
                f"memory_every_s must be > 0 seconds (None: on close only), got {memory_every_s!r}"
            )
        if not hour_close_after_s >= 0:
            raise ValueError(f"hour_close_after_s must be >= 0 seconds, got {hour_close_after_s!r}")
        self.hour_close_after_s = float(hour_close_after_s)
        if not 0 <= sepsis_lockout_h < float("inf"):
            raise ValueError(f"sepsis_lockout_h must be >= 0 ICU hours, got {sepsis_lockout_h!r}")
        self.sepsis_lockout_h = float(sepsis_lockout_h)
        self.memory_every_s = memory_every_s
        self._memory_saved = time.monotonic()
        # alarm seq -> (monotonic time, level) of its next escalation
        self._awaiting_ack: dict[int, tuple[float, int]] = {}
        self.ecg, self.sepsis = ecg, sepsis
        self.max_chunk_s = float(max_chunk_s)
        self.feed_timeout_s = float(feed_timeout_s)
        self._ecg_beds: dict[str, EcgBed] = {}
        self._sepsis_beds: dict[str, SepsisBed] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._strips: OrderedDict[int, dict[str, Any]] = OrderedDict()  # by event number
        self._seq = 0
        self._seq_reserved = 0
        self._queue_lock = threading.Lock()  # queues, beds, the event log
        self._model_lock = threading.Lock()  # the monitors
        self._last_tick: float | None = None  # monotonic clock at the end of the last tick
        self.clock_steps = ClockSteps()  # the wall clock's steps, logged once each
        self.tick_seconds = Durations()
        self.sepsis_hour_seconds = Durations()  # one hour scored, explained and shadowed
        self.beats_labelled: Counter[str] = Counter()
        self.events_logged: Counter[tuple[str, str]] = Counter()  # (source, kind), this run
        self.journal = journal
        self.journal_errors = 0
        self.log_id, self.old_ids_up_to = self._take_log_id()
        self._closed = False  # set by close(): every request refused after it
        self.state_damage: list[StateDamage] = []  # rows of the state left out at restore
        self._shadow_ecg = None if shadow_ecg is None else EcgShadow(shadow_ecg)
        self._shadow_sepsis = None if shadow_sepsis is None else SepsisShadow(shadow_sepsis)
        self.shadow_errors = 0
        self._shadow_failed: Counter[str] = Counter()
        # when each shadow's comparison began (carried over a restart with its counts)
        self.shadow_since = {t: _utc_now() for t, sh in (("arrhythmia", self._shadow_ecg),
                             ("early_warning", self._shadow_sepsis)) if sh is not None}  # fmt: skip

    def close(self) -> None:
        """Stop: score the ECG still queued, keep every ECG patient's memory, and close the
        journal; from then on every request is refused
        (:class:`~vitalgru.errors.WardClosedError`: it could not be kept). A step that fails
        is logged and the next one still runs: the journal is closed whatever happened
        before. Closing twice does nothing more."""
        if self._closed:
            return
        try:
            for step in (self.tick, self.save_memory) if self.ecg is not None else (
                    self.save_memory,):  # fmt: skip
                try:
                    step()
                except Exception:
                    logger.exception("ward: %s failed while closing", step.__name__)
        finally:
            with self._model_lock, self._queue_lock:  # after any request holding them
                self._closed = True
                # every number handed out, written or not: the next start goes on after it
                self._journal("set_value", "seq_reserved", self._seq)
            if self.journal is not None:
                self.journal.close()

    def tick(self) -> dict[str, int]:
        """Escalate the alarms no one acknowledged in time, and push every queued chunk to
        the arrhythmia monitor in one batched call.

        Score the ICU hours assembled from observations that have closed.

        Returns ``{"patients", "samples", "beats", "alarms", "hours"}`` of this tick
        (``hours``: sepsis hours scored); all 0 once the ward has stopped.
        """
        if self._closed:  # a clock that outlived the stop: nothing to score, nothing kept
            return {"patients": 0, "samples": 0, "beats": 0, "alarms": 0, "hours": 0}
        self.clock_steps.check()
        with self._queue_lock:
            self._escalate()
        if self.sepsis is not None:
            with self._model_lock:
                hours = len(self._close_hours())
        else:
            hours = 0
        if self.ecg is None:
            if self._memory_due():  # a sepsis-only ward keeps its shadow's comparison too
                with self._model_lock:
                    self._save_memory()
            return {"patients": 0, "samples": 0, "beats": 0, "alarms": 0, "hours": hours}
        t0 = time.perf_counter()
        now = time.monotonic()
        with self._model_lock:
            with self._queue_lock:
                chunks, breaks = {}, {}
                for pid, bed in self._ecg_beds.items():
                    self._check_rate(pid, bed)
                    if bed.queued or bed.breaks:
                        chunks[pid], cuts = bed.take_queued()
                        if cuts:
                            breaks[pid] = cuts
                    elif not bed.feed_lost and now - bed.last_data > self.feed_timeout_s:
                        event = {
                            "source": "ecg",
                            "patient_id": pid,
                            "kind": "feed_lost",
                            "message": f"no ECG samples received for {now - bed.last_data:.0f} s "
                            "(the feed, not the patient's leads)",
                        }
                        bed.alerts.append(self._event(event))
                        bed.lost_seq = bed.alerts[-1]["seq"]
                        # its alarms' strips end where the samples did: samples that come
                        # after the gap would join them as if there had been none
                        self._complete_strips(final=pid)
            result = self.ecg.push(chunks, breaks) if chunks else None
            if result is not None:
                self._in_shadow(
                    self._shadow_ecg,
                    lambda sh: sh.record(
                        (result.calls, result.alerts),
                        self._tick_output(sh.monitor.push(chunks, breaks)),
                    ),
                )
            n_beats = n_alarms = 0
            if result is not None:  # recorded under the model lock: in the order pushed
                n_beats, n_alarms = len(result.calls), len(result.alerts)
                self._record_ecg(result.calls, result.alerts)
                self._end_conditions(chunks)
                with self._queue_lock:
                    moved = {
                        p: (b.received_s, b.counts, b.next_index, b.next_at().isoformat())
                        for p in chunks
                        if (b := self._ecg_beds.get(p)) is not None
                    }
                self._journal("ecg_progress", moved)
            if self._memory_due():
                self._save_memory()
        self.tick_seconds.add(time.perf_counter() - t0)
        self._last_tick = time.monotonic()
        return {
            "patients": len(chunks),
            "samples": int(sum(c.size for c in chunks.values())),
            "beats": n_beats,
            "alarms": n_alarms,
            "hours": hours,
        }

    def summaries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every ECG patient's :meth:`ecg_summary` and every sepsis patient's
        :meth:`sepsis_summary`, taken together."""
        now = self.sepsis_now()
        with self._queue_lock:
            ends = alarm_ends(self._events)
            ecg = [bed.summary(pid, ends) for pid, bed in self._ecg_beds.items()]
            sepsis = [bed.summary(pid, now) for pid, bed in self._sepsis_beds.items()]
        return ecg, sepsis

    def alarms_in_progress(self) -> list[int]:
        """Event numbers of the alarms whose condition goes on: sepsis alarm onsets whose
        patient is still in that episode, lost ECG feeds not back yet, feeds still off their
        rate, poor ECG signal not yet judged good again, and pauses no heartbeat has ended
        yet."""
        with self._queue_lock:
            sepsis = [b.onset["seq"] for b in self._sepsis_beds.values() if b.in_alarm and b.onset]
            ecg = [s for b in self._ecg_beds.values()
                   for s in (b.lost_seq, b.rate_seq, b.poor_seq, b.pause_seq)
                   if s is not None]  # fmt: skip
            return sorted(sepsis + ecg)

    @property
    def ticks(self) -> int:
        """Ticks run since the ward started."""
        return self.tick_seconds.count

    def patients(self) -> dict[str, list[str]]:
        """``{"ecg": [...], "sepsis": [...]}``: the patients on each monitor."""
        with self._queue_lock:
            return {"ecg": sorted(self._ecg_beds), "sepsis": sorted(self._sepsis_beds)}

    def status(self) -> dict[str, Any]:
        """How many patients are on each monitor (no identifiers: a health check may be
        open), ticks run and their mean cost, events logged, state file and its errors (writes
        that failed; whether the latest did; rows found damaged and left out at the start)."""
        with self._queue_lock:
            return {
                "ecg_patients": len(self._ecg_beds),
                "sepsis_patients": len(self._sepsis_beds),
                "ticks": self.ticks,
                "tick_ms_mean": (1e3 * self.tick_seconds.sum / self.ticks if self.ticks else None),
                "events": self._seq,
                "max_chunk_s": self.max_chunk_s,
                "state_file": None if self.journal is None else str(self.journal.path),
                "state_write_errors": self.state_write_errors,
                "state_write_failing": self.state_write_failing,
                "state_rows_damaged": len(self.state_damage),
                "shadow_errors": self.shadow_errors,
                "clock_steps": self.clock_steps.steps,
            }

    def telemetry(self) -> dict[str, Any]:
        """What an operator's monitoring scrapes (``GET /metrics``), without identifiers.

        Counts since this ward started: ``beats`` ({class: labelled}), ``events``
        ({(source, kind): logged}), ``sepsis_hours``, ``tick_seconds`` and
        ``sepsis_hour_seconds`` (:meth:`Durations.snapshot`: a tick's batched ECG push;
        scoring an hour, with its alarm explanation and shadow), ``state_write_errors``,
        ``shadow_errors``, ``clock_steps`` (steps of the wall clock seen by the ticks:
        :class:`~vitalgru.scoring.clock_steps.ClockSteps`). Now: ``patients`` ({monitor: n}), ``feeds_lost``,
        ``feeds_off_rate`` (a ``feed_rate`` alarm open), ``queued_s`` and ``queued_s_max`` (ECG waiting for the next tick, all feeds and the
        fullest), ``sepsis_in_alarm``, ``sepsis_hours_assembling`` (hours being assembled
        from observations), ``unacknowledged`` ({source: events in the log no
        one has acknowledged}), ``escalated_unacknowledged`` (of those, the escalated),
        ``last_seq``, ``strips_kept`` (ECG alarm strips), ``last_tick_age_s`` (None before
        the first tick: a clock that has stopped shows here first).
        """
        with self._queue_lock:
            queued = [b.queued_n / b.fs for b in self._ecg_beds.values()]
            waiting = [
                e for e in self._events if e.get("source") != "ward" and not e.get("acknowledged")
            ]
            unacked = Counter(str(e.get("source")) for e in waiting)
            return {
                "patients": {"ecg": len(self._ecg_beds), "sepsis": len(self._sepsis_beds)},
                "feeds_lost": sum(b.feed_lost for b in self._ecg_beds.values()),
                "feeds_off_rate": sum(b.rate_seq is not None for b in self._ecg_beds.values()),
                "queued_s": float(sum(queued)),
                "queued_s_max": max(queued, default=0.0),
                "sepsis_in_alarm": sum(b.in_alarm for b in self._sepsis_beds.values()),
                "sepsis_hours_assembling": sum(len(b.pending) for b in self._sepsis_beds.values()),
                "unacknowledged": dict(unacked),
                "escalated_unacknowledged": sum(bool(e.get("escalated")) for e in waiting),
                "last_seq": self._seq,
                "strips_kept": len(self._strips),
                "last_tick_age_s": (
                    None if self._last_tick is None else time.monotonic() - self._last_tick
                ),
                "beats": dict(self.beats_labelled),
                "events": dict(self.events_logged),
                "sepsis_hours": self.sepsis_hour_seconds.count,
                "tick_seconds": self.tick_seconds.snapshot(),
                "sepsis_hour_seconds": self.sepsis_hour_seconds.snapshot(),
                "state_write_errors": self.state_write_errors,
                "shadow_errors": self.shadow_errors,
                "clock_steps": self.clock_steps.steps,
            }
