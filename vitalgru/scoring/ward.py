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

import bisect
import logging
import math
import sqlite3
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from vitalgru.io.psv import MEASUREMENT_COLUMNS, PSV_COLUMNS, STATIC_COLUMNS
from vitalgru.scoring.alerts import STRIP_LABEL_WAIT_S, Alert, alarm_strip, strip_bounds
from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor, BeatCall, PatientMemory
from vitalgru.scoring.early_warning import EarlyWarningMonitor, HourRisk, RiskDriver
from vitalgru.scoring.shadow import EcgShadow, SepsisShadow
from vitalgru.scoring.ward_journal import EcgAdmission, WardJournal, WardState
from vitalgru.types import AAMI_CLASSES

logger = logging.getLogger(__name__)

__all__ = ["MAX_CHUNK_S", "Durations", "Ward"]

#: Most seconds of ECG one feed may queue between ticks (a feed that falls further behind
#: is refused, not buffered without bound).
MAX_CHUNK_S = 60.0
#: Beats kept per patient for the bedside summary (about 8 minutes at 75 bpm).
RECENT_BEATS = 600
#: Events kept in the log; an engine polling less often than this fills loses the oldest.
MAX_EVENTS = 10_000
#: Measurements named, at a sepsis alarm onset, as what raised the risk most
#: (:meth:`EarlyWarningMonitor.explain`).
ALARM_DRIVERS = 3
#: Heart rate of the summary: the median RR of the beats in accepted signal in this window (s).
HR_WINDOW_S = 60.0
#: A minute of the heart-rate trend needs this many intervals in accepted signal.
MIN_BEATS_PER_MINUTE = 10
#: A feed that has sent nothing for this long (s of wall time) raises ``feed_lost``: the
#: monitor's own pause and poor-signal alarms need samples to run on, so a cable pulled out
#: of the gateway, not off the patient, would otherwise go unnoticed.
FEED_TIMEOUT_S = 10.0
#: An alarm no one has acknowledged for this long (s) is escalated: the log gets an
#: ``escalated`` event naming it, once, for the integration engine to page the next person.
ESCALATE_AFTER_S = 15 * 60.0
#: How often (s) the ECG patients' memory is written to the journal while the ward runs
#: (:meth:`Ward.close` writes it too): a crash loses at most this much of what the network
#: learnt, a clean stop nothing.
MEMORY_EVERY_S = 60.0
#: Seconds of each ECG feed's latest samples kept for alarm strips: a strip's length and
#: the most one tick can bring.
STRIP_KEEP_S = MAX_CHUNK_S + 30.0
#: Alarm strips kept (the newest; each about 30 KB at 360 Hz).
MAX_STRIPS = 500
#: Seconds after an ICU hour ends during which its observations may still arrive (a blood
#: gas drawn at :55 is resulted minutes later); then the hour is scored on what came. An
#: observation of an hour already scored is refused as late.
HOUR_CLOSE_AFTER_S = 10 * 60.0
#: A closed hour whose observations are still arriving (a stay sent after the fact, part by
#: part) is scored once none has come for this long (s), or when one of a later hour comes.
HOUR_QUIET_S = 60.0
#: Most hours without observations one tick scores for one patient (a gateway that was
#: stopped for a day catches up over a few ticks, not in one).
MAX_EMPTY_HOURS_PER_TICK = 24
#: Events that tell, and need no one to acknowledge them (they never escalate).
INFO_KINDS = frozenset({"feed_restored", "monitor_restarted", "alarm_ended"})

_CLASSES = [str(c) for c in AAMI_CLASSES]

#: Upper bounds (s) of the buckets :class:`Durations` counts ticks and scored hours in.
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Durations:
    """How long something took, counted into buckets by upper bound (a histogram of the
    kind Prometheus scrapes): the counts, their sum and their number."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS_S) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"bucket bounds must increase, got {bounds!r}")
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def add(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": [(upper bound, durations <= it), ..., (inf, all)], "sum",
        "count"}``."""
        buckets, seen = [], 0
        for bound, n in zip((*self.bounds, float("inf")), list(self._counts), strict=True):
            seen += n
            buckets.append((bound, seen))
        return {"buckets": buckets, "sum": self.sum, "count": seen}


def _tick_output(t: Any) -> tuple[list[BeatCall], list[Alert]]:
    return list(t.calls), list(t.alerts)


def _discharge_shadow(
    shadow: EcgShadow,
    pid: str,
    rest: np.ndarray | None,
    champion: tuple[list[BeatCall], list[Alert]],
) -> None:
    """The shadow's side of an ECG discharge: what was queued, the beats still waiting."""
    calls: list[BeatCall] = []
    alerts: list[Alert] = []
    try:
        if rest is not None:
            calls, alerts = _tick_output(shadow.monitor.push({pid: rest}))
        last = _tick_output(shadow.monitor.discharge(pid))
        shadow.record(champion, (calls + last[0], alerts + last[1]))
    finally:
        shadow.forget(pid)


def _admit_shadow(shadow: EcgShadow, a: EcgAdmission) -> None:
    """Admit a restored ECG patient to the shadow monitor with the shadow's own memory when
    it fits (the comparison with the champion, which carries its memory, stays fair)."""
    if a.shadow_memory is not None:
        try:
            shadow.monitor.admit(a.patient_id, a.fs, PatientMemory.from_bytes(a.shadow_memory))
            return
        except ValueError as e:
            logger.warning("ward: the shadow starts %s afresh: %s", a.patient_id, e)
    shadow.monitor.admit(a.patient_id, a.fs)


def _static_columns(static: Mapping[str, Any]) -> dict[str, float]:
    """Demographics by vitalgru name (given by Challenge or vitalgru names), as numbers;
    None dropped."""
    out = {}
    for key, value in static.items():
        col = PSV_COLUMNS.get(key, key)
        if col not in STATIC_COLUMNS:
            raise ValueError(
                f"{key!r} is not a static column (Age, Gender, Unit1, Unit2, HospAdmTime)"
            )
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ValueError(f"{key}: {value!r} is not a number")
        out[col] = float(value)
    return out


def _measurements(values: Mapping[str, Any]) -> dict[str, list[float]]:
    """Measurements by vitalgru name (given by Challenge or vitalgru names), each a list of
    finite values (NaN and None left out)."""
    out: dict[str, list[float]] = {}
    for key, given in values.items():
        col = PSV_COLUMNS.get(key, key)
        if col not in MEASUREMENT_COLUMNS:
            raise ValueError(f"{key!r} is not a measured column (HR, O2Sat, ..., Platelets)")
        xs = given if isinstance(given, list | tuple) else [given]
        for x in xs:
            if x is None:
                continue
            if isinstance(x, bool) or not isinstance(x, int | float):
                raise ValueError(f"{key}: {x!r} is not a number")
            if math.isfinite(x):
                out.setdefault(col, []).append(float(x))
    return out


def _with_static(row: Mapping[str, Any], static: Mapping[str, float]) -> Mapping[str, Any]:
    """``row`` with the admission's demographics where it does not give them itself (a
    null in the row is not giving one)."""
    if not static:
        return row
    sent = {PSV_COLUMNS.get(k, k) for k, v in row.items() if v is not None}
    out = {k: v for k, v in row.items() if v is not None or PSV_COLUMNS.get(k, k) not in static}
    out.update({c: v for c, v in static.items() if c not in sent})
    return out


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _utc_now() -> str:
    return _iso(datetime.now(UTC))


def _now() -> datetime:
    """The wall clock the sepsis hours close on (one place, for tests to move)."""
    return datetime.now(UTC)


class _Tail:
    """The latest ``n`` samples of a feed in a ring; ``end`` counts every sample added."""

    def __init__(self, n: int) -> None:
        self.buf = np.full(max(int(n), 1), np.nan, dtype=np.float32)
        self.end = 0

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

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples ``[a, b)`` of the stream (within the last ``n``)."""
        n = self.buf.size
        a = max(a, self.end - n, 0)
        idx = np.arange(a, min(b, self.end)) % n
        return self.buf[idx].copy()


class _MinuteRates:
    """A feed's heart rate minute by minute of its stream, as a replay's clinician page
    computes it (:func:`vitalgru.reports.monitoring.patient_summary`: the median RR
    between consecutive beats in accepted signal, none for a minute with fewer than
    :data:`MIN_BEATS_PER_MINUTE`), kept as the beats come: a few numbers a minute."""

    def __init__(self) -> None:
        self.rates: dict[int, float] = {}  # minutes that are over
        self._open: dict[int, list[float]] = {}  # RRs of the minutes still going
        self._last: BeatCall | None = None

    def add(self, c: BeatCall) -> None:
        prev, self._last = self._last, c
        if prev is None:
            return
        rr = c.time_s - prev.time_s
        if not (prev.signal_ok and c.signal_ok and rr > 0):
            return
        m = int(c.time_s // HR_WINDOW_S)
        self._open.setdefault(m, []).append(rr)
        for done in [k for k in self._open if k < m]:
            rate = self._rate(self._open.pop(done))
            if rate is not None:
                self.rates[done] = rate

    @staticmethod
    def _rate(rr: list[float]) -> float | None:
        return 60.0 / float(np.median(rr)) if len(rr) >= MIN_BEATS_PER_MINUTE else None

    def trend(self, minutes: int) -> list[float | None]:
        """The rate of each of the first ``minutes`` minutes (None: too few beats)."""
        now = {k: self._rate(v) for k, v in self._open.items()}
        return [self.rates.get(k, now.get(k)) for k in range(minutes)]


@dataclass
class _EcgBed:
    fs: float
    admitted: datetime
    # wall time of stream time 0: admission, or the restart that began the monitor afresh
    stream_start: datetime
    last_data: float = field(default_factory=time.monotonic)  # wall clock of the last chunk
    feed_lost: bool = False
    queued: list[np.ndarray] = field(default_factory=list)
    queued_n: int = 0
    received_s: float = 0.0
    counts: Counter = field(default_factory=Counter)
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_BEATS))
    alerts: deque = field(default_factory=lambda: deque(maxlen=100))
    tail: _Tail | None = None  # the latest samples pushed to the monitor (strips)
    rates: _MinuteRates = field(default_factory=_MinuteRates)  # heart rate by minute
    pending_strips: list = field(default_factory=list)  # (seq, Alert) of strips still growing

    def __post_init__(self) -> None:
        if self.tail is None:
            self.tail = _Tail(int(math.ceil(STRIP_KEEP_S * self.fs)))


@dataclass
class _SepsisBed:
    admitted_at: str
    static: dict[str, float] = field(default_factory=dict)  # given at admission (vitalgru names)
    last_scored_at: str | None = None  # wall clock of the latest hour (None when replayed)
    in_alarm: bool = False
    episodes: int = 0
    onset: dict[str, Any] | None = None  # the logged onset of the episode going on
    peak: HourRisk | None = None  # the highest risk of the stay so far
    risks: list[HourRisk] = field(default_factory=list)  # every hour scored, in order
    drivers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # at each onset
    # ICU hours being assembled from observations: hour -> {column: values so far}
    pending: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    touched: dict[int, float] = field(default_factory=dict)  # hour -> its latest (monotonic)
    last_observation: datetime | None = None  # wall clock of the latest observation taken

    @property
    def last(self) -> HourRisk | None:
        return self.risks[-1] if self.risks else None

    def scored(self, risk: HourRisk, at: str | None) -> None:
        """Take the stay's next scored hour (its alarm episodes are the caller's)."""
        self.risks.append(risk)
        self.last_scored_at, self.in_alarm = at, risk.alarm
        if self.peak is None or risk.risk > self.peak.risk:  # kept as it goes: read often
            self.peak = risk


class Ward:
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
    journal : WardJournal, optional
        Where admissions, sepsis hours and events are written as they happen, so that a
        restarted gateway can :meth:`restore` them (None: kept in memory only).
    escalate_after_s : float, optional
        Seconds after which an alarm no one has acknowledged is escalated with an
        ``escalated`` event (:data:`ESCALATE_AFTER_S`; None: never). Checked every tick.
    shadow_ecg, shadow_sepsis : optional
        Challenger monitors fed everything the champions are fed and compared with them
        (:mod:`vitalgru.scoring.shadow`, :meth:`shadow_report`); they raise no alarm, and
        an error of theirs is logged and counted, never passed on.
    hour_close_after_s : float
        Seconds after its end that an ICU hour assembled from observations waits for late
        ones before it is scored (:data:`HOUR_CLOSE_AFTER_S`; :meth:`add_observations`).

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
        journal: WardJournal | None = None,
        shadow_ecg: ArrhythmiaMonitor | None = None,
        shadow_sepsis: EarlyWarningMonitor | None = None,
        escalate_after_s: float | None = ESCALATE_AFTER_S,
        memory_every_s: float | None = MEMORY_EVERY_S,
        hour_close_after_s: float = HOUR_CLOSE_AFTER_S,
    ) -> None:
        if (shadow_ecg is not None and ecg is None) or (
            shadow_sepsis is not None and sepsis is None
        ):
            raise ValueError("a shadow model needs the champion it is compared with")
        if ecg is None and sepsis is None:
            raise ValueError("a ward needs an arrhythmia monitor, a sepsis monitor or both")
        if not feed_timeout_s > 0:
            raise ValueError(f"feed_timeout_s must be > 0 seconds, got {feed_timeout_s!r}")
        if escalate_after_s is not None and not escalate_after_s > 0:
            raise ValueError(
                f"escalate_after_s must be > 0 seconds (None: never), got {escalate_after_s!r}"
            )
        if memory_every_s is not None and not memory_every_s > 0:
            raise ValueError(
                f"memory_every_s must be > 0 seconds (None: on close only), got {memory_every_s!r}"
            )
        if not hour_close_after_s >= 0:
            raise ValueError(f"hour_close_after_s must be >= 0 seconds, got {hour_close_after_s!r}")
        self.hour_close_after_s = float(hour_close_after_s)
        self.memory_every_s = memory_every_s
        self._memory_saved = time.monotonic()
        self.escalate_after_s = escalate_after_s
        self._awaiting_ack: dict[int, float] = {}  # alarm seq -> when it escalates (monotonic)
        self.ecg, self.sepsis = ecg, sepsis
        self.max_chunk_s = float(max_chunk_s)
        self.feed_timeout_s = float(feed_timeout_s)
        self._ecg_beds: dict[str, _EcgBed] = {}
        self._sepsis_beds: dict[str, _SepsisBed] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._strips: OrderedDict[int, dict[str, Any]] = OrderedDict()  # by event number
        self._seq = 0
        self._queue_lock = threading.Lock()  # queues, beds, the event log
        self._model_lock = threading.Lock()  # the monitors
        self._last_tick: float | None = None  # monotonic clock at the end of the last tick
        self.tick_seconds = Durations()
        self.sepsis_hour_seconds = Durations()  # one hour scored, explained and shadowed
        self.beats_labelled: Counter[str] = Counter()
        self.events_logged: Counter[tuple[str, str]] = Counter()  # (source, kind), this run
        self.journal = journal
        self.journal_errors = 0
        self._shadow_ecg = None if shadow_ecg is None else EcgShadow(shadow_ecg)
        self._shadow_sepsis = None if shadow_sepsis is None else SepsisShadow(shadow_sepsis)
        self.shadow_errors = 0

    def _in_shadow(self, shadow: Any, fn: Any) -> None:
        """``fn(shadow)`` for a shadow model, if there is one (the caller holds the model
        lock). Whatever goes wrong there is counted and logged, and stops there."""
        if shadow is None:
            return
        try:
            fn(shadow)
        except Exception:
            self.shadow_errors += 1
            if self.shadow_errors == 1 or self.shadow_errors % 100 == 0:
                logger.exception("ward: the shadow model failed (%d times)", self.shadow_errors)

    def _journal(self, method: str, *args: Any) -> None:
        """Write to the journal, if any. A failed write (a full disk) is logged and counted
        (:meth:`status`) and the ward goes on: the patients' alarms come before the copy."""
        if self.journal is None:
            return
        try:
            getattr(self.journal, method)(*args)
        except (sqlite3.Error, OSError):
            self.journal_errors += 1
            logger.exception("ward: could not write %s to %s", method, self.journal.path)

    def restore(self, state: WardState) -> dict[str, int]:
        """Take up the patients and the event log a journal kept (a ward just started,
        before any feed). Sepsis patients' stored hours are scored again, all patients
        together hour by hour, so their risk, alarm state and alarm episodes are where they
        were (without logging the onsets again); ECG feeds are admitted with their counts
        and the memory the journal kept of them (when it was kept by this ward's network;
        else afresh), and the log says their monitor restarted and with what. Patients of a
        monitor this ward lacks stay in the journal for a ward that has it.

        Returns ``{"ecg", "sepsis", "hours", "events", "ecg_memory"}`` taken up
        (``ecg_memory``: ECG patients who kept their memory).
        """
        with self._queue_lock:
            if self._ecg_beds or self._sepsis_beds or self._seq:
                raise ValueError("restore() takes up a journal in a new, empty ward")
            self._events.extend(state.events)
            self._seq = state.last_seq
            for seq, strip in state.strips:  # one cut short by the restart stays so
                self._strips[seq] = {**strip, "complete": True}
            now, wall = time.monotonic(), datetime.now(UTC)
            escalated = {e.get("escalates") for e in state.events if e.get("kind") == "escalated"}
            for e in state.events:  # alarms still waiting for someone, as long as they waited
                if self._escalates(e) and e["seq"] not in escalated and not e.get("escalated"):
                    try:
                        age = (wall - datetime.fromisoformat(e["received_at"])).total_seconds()
                    except (KeyError, TypeError, ValueError):  # no time kept: wait it all
                        age = 0.0
                    self._awaiting_ack[e["seq"]] = now + self.escalate_after_s - max(age, 0.0)
        for kept, monitor, *what in ((state.sepsis, self.sepsis, "sepsis", "early-warning"),
                                     (state.ecg, self.ecg, "ECG", "arrhythmia")):  # fmt: skip
            if kept and monitor is None:
                logger.warning("ward: %d %s patient(s) in the state file are not taken up: "
                               "this gateway has no %s model", len(kept), *what)  # fmt: skip
        n_hours = self._replay_sepsis(state) if state.sepsis and self.sepsis else 0
        carried = 0
        if state.ecg and self.ecg:
            now = datetime.now(UTC)
            with self._model_lock, self._queue_lock:
                for a in state.ecg:
                    memory, why = self._admit_remembered(a.patient_id, a.fs, a.memory)
                    carried += memory is not None
                    self._in_shadow(self._shadow_ecg, lambda sh, a=a: _admit_shadow(sh, a))
                    bed = _EcgBed(
                        a.fs,
                        datetime.fromisoformat(a.admitted_at),
                        now,
                        received_s=a.received_s,
                        counts=Counter(a.counts),
                    )
                    self._ecg_beds[a.patient_id] = bed
                    if memory is not None:
                        said = (
                            "beat labelling goes on from what the network had learnt of the "
                            f"patient ({memory.beats} beats, kept at {a.memory_saved_at})"
                        )
                    else:
                        said = f"beat labelling starts afresh ({why})"
                    event = {
                        "source": "ecg",
                        "patient_id": a.patient_id,
                        "kind": "monitor_restarted",
                        "memory": "carried" if memory is not None else why,
                        "memory_saved_at": a.memory_saved_at if memory is not None else None,
                        "message": f"the gateway restarted: {said}; the beat detector starts "
                        "on the next samples, and samples sent while it was down are lost",
                    }
                    bed.alerts.append(self._event(event))
        return {
            "ecg": len(self._ecg_beds),
            "sepsis": len(self._sepsis_beds),
            "hours": n_hours,
            "events": len(state.events),
            "ecg_memory": carried,
        }

    def _admit_remembered(
        self, pid: str, fs: float, kept: bytes | None
    ) -> tuple[PatientMemory | None, str]:
        """Admit a restored ECG patient with the memory the journal kept when it fits this
        monitor's network; else afresh. Returns the memory used and, without one, why."""
        assert self.ecg is not None
        if kept is None:
            why = "no memory was kept"
        else:
            try:
                memory = PatientMemory.from_bytes(kept)
                self.ecg.admit(pid, fs, memory=memory)
                return memory, ""
            except ValueError as e:
                why = ("the memory was kept by another model" if "another network" in str(e)
                       else "the memory kept could not be read")  # fmt: skip
                logger.warning("ward: patient %s starts afresh: %s", pid, e)
        self.ecg.admit(pid, fs)
        return None, why

    def save_memory(self) -> int:
        """Write every ECG patient's memory to the journal now (the caller may hold no
        lock); returns how many (0 without a journal or an arrhythmia monitor)."""
        with self._model_lock:
            return self._save_memory()

    def _save_memory(self) -> int:  # the caller holds the model lock
        self._memory_saved = time.monotonic()
        if self.journal is None or self.ecg is None:
            return 0
        with self._queue_lock:
            pids = list(self._ecg_beds)
        kept = {pid: self.ecg.memory(pid).to_bytes() for pid in pids}
        at = _utc_now()
        self._journal("ecg_memory", kept, at)
        self._in_shadow(self._shadow_ecg, lambda sh: self._journal(
            "ecg_memory", {p: sh.monitor.memory(p).to_bytes() for p in pids}, at, "shadow"))  # fmt: skip
        return len(kept)

    def close(self) -> None:
        """Stop: score the ECG still queued, keep every ECG patient's memory, and close the
        journal (the ward takes nothing more). A step that fails is logged and the next
        one still runs: the journal is closed whatever happened before."""
        try:
            for step in (self.tick, self.save_memory) if self.ecg is not None else ():
                try:
                    step()
                except Exception:
                    logger.exception("ward: %s failed while closing", step.__name__)
        finally:
            if self.journal is not None:
                self.journal.close()

    def _replay_sepsis(self, state: WardState) -> int:
        with self._model_lock:
            beds = {}
            for a in state.sepsis:
                self.sepsis.admit(a.patient_id)
                self._in_shadow(self._shadow_sepsis, lambda sh, a=a: sh.admit(a.patient_id))
                beds[a.patient_id] = _SepsisBed(a.admitted_at, dict(a.static))
            n = 0
            for k in range(max(len(a.hours) for a in state.sepsis)):
                rows = {a.patient_id: a.hours[k] for a in state.sepsis if k < len(a.hours)}
                try:
                    risks = self.sepsis.push(rows)
                except (KeyError, ValueError) as e:
                    raise ValueError(
                        f"{self.journal.path if self.journal else 'the state'}: a stored "
                        f"hour could not be scored again: {e}"
                    ) from None
                n += len(risks)
                self._in_shadow(
                    self._shadow_sepsis, lambda sh, rows=rows, risks=risks: sh.score(rows, risks)
                )
                for r in risks:
                    bed = beds[r.patient_id]
                    bed.episodes += r.alarm and not bed.in_alarm
                    bed.scored(r, None)
            onsets = {e["patient_id"]: e for e in state.events if e.get("source") == "sepsis"}
            for pid, bed in beds.items():  # the episode going on: its logged onset
                if bed.in_alarm:
                    bed.onset = onsets.get(pid)
            for e in state.events:  # what each logged onset said raised the risk
                bed = beds.get(str(e.get("patient_id")))
                if bed is not None and e.get("source") == "sepsis" and "hour" in e:
                    bed.drivers[int(e["hour"])] = list(e.get("drivers", []))
            for a in state.sepsis:  # hours being assembled when the gateway stopped
                bed = beds[a.patient_id]
                last = bed.last.hour if bed.last is not None else 0
                bed.pending = {h: v for h, v in a.pending.items() if h > last}
            with self._queue_lock:
                self._sepsis_beds.update(beds)
        return n

    # ------------------------------------------------------------------ ECG

    def _need(self, monitor: object, what: str) -> None:
        if monitor is None:
            raise ValueError(f"this ward was started without a {what} model")

    def admit_ecg(self, patient_id: str, fs: float) -> None:
        """Start a patient's ECG feed at ``fs`` Hz (one lead, mV). ValueError when already
        admitted or ``fs`` is not a positive rate."""
        self._need(self.ecg, "arrhythmia")
        pid = str(patient_id)
        with self._model_lock, self._queue_lock:
            if pid in self._ecg_beds:
                raise ValueError(f"patient {pid!r} is already on ECG monitoring")
            self.ecg.admit(pid, fs)  # checks fs
            self._in_shadow(self._shadow_ecg, lambda sh: sh.monitor.admit(pid, fs))
            now = datetime.now(UTC)
            self._ecg_beds[pid] = _EcgBed(float(fs), now, now)
            self._journal("admit_ecg", pid, float(fs), _iso(now))

    def add_ecg(self, patient_id: str, samples: Any) -> int:
        """Queue a patient's next samples (mV; None or NaN for a gap) for the next tick.

        Returns the samples now queued for the patient. KeyError when the patient was not
        admitted; ValueError for samples that are not a flat list of numbers, or when more
        than ``max_chunk_s`` seconds would be queued.
        """
        self._need(self.ecg, "arrhythmia")
        try:
            x = np.asarray([np.nan if v is None else v for v in samples], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("samples must be a list of numbers (mV; null for a gap)") from None
        if x.ndim != 1:
            raise ValueError("samples must be a flat list of numbers, one lead")
        if np.isinf(x).any():
            raise ValueError("samples must be finite (null marks a gap)")
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._ecg_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on ECG monitoring; admit them first")
            if (bed.queued_n + x.size) / bed.fs > self.max_chunk_s:
                raise ValueError(
                    f"patient {pid!r}: more than {self.max_chunk_s:g} s of ECG would be "
                    "queued; send smaller chunks or tick more often"
                )
            if x.size:
                bed.queued.append(x)
                bed.queued_n += x.size
                bed.received_s += x.size / bed.fs
                bed.last_data = time.monotonic()
                if bed.feed_lost:
                    bed.feed_lost = False
                    self._event({"source": "ecg", "patient_id": pid, "kind": "feed_restored",
                                 "message": "ECG samples are arriving again"})  # fmt: skip
            return bed.queued_n

    def tick(self) -> dict[str, int]:
        """Escalate the alarms no one acknowledged in time, and push every queued chunk to
        the arrhythmia monitor in one batched call.

        Score the ICU hours assembled from observations that have closed.

        Returns ``{"patients", "samples", "beats", "alarms", "hours"}`` of this tick
        (``hours``: sepsis hours scored).
        """
        with self._queue_lock:
            self._escalate()
        if self.sepsis is not None:
            with self._model_lock:
                hours = len(self._close_hours())
        else:
            hours = 0
        if self.ecg is None:
            return {"patients": 0, "samples": 0, "beats": 0, "alarms": 0, "hours": hours}
        t0 = time.perf_counter()
        now = time.monotonic()
        with self._model_lock:
            with self._queue_lock:
                chunks = {}
                for pid, bed in self._ecg_beds.items():
                    if bed.queued:
                        chunks[pid] = np.concatenate(bed.queued)
                        bed.queued, bed.queued_n = [], 0
                        bed.tail.add(chunks[pid])
                    elif not bed.feed_lost and now - bed.last_data > self.feed_timeout_s:
                        bed.feed_lost = True
                        event = {
                            "source": "ecg",
                            "patient_id": pid,
                            "kind": "feed_lost",
                            "message": f"no ECG samples received for {now - bed.last_data:.0f} s "
                            "(the feed, not the patient's leads)",
                        }
                        bed.alerts.append(self._event(event))
            result = self.ecg.push(chunks) if chunks else None
            if result is not None:
                self._in_shadow(
                    self._shadow_ecg,
                    lambda sh: sh.record(
                        (result.calls, result.alerts), _tick_output(sh.monitor.push(chunks))
                    ),
                )
            n_beats = n_alarms = 0
            if result is not None:  # recorded under the model lock: in the order pushed
                n_beats, n_alarms = len(result.calls), len(result.alerts)
                self._record_ecg(result.calls, result.alerts)
                with self._queue_lock:
                    moved = {
                        p: (self._ecg_beds[p].received_s, self._ecg_beds[p].counts)
                        for p in chunks
                        if p in self._ecg_beds
                    }
                self._journal("ecg_progress", moved)
            if (
                self.memory_every_s is not None
                and time.monotonic() - self._memory_saved >= self.memory_every_s
            ):
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
                rest = np.concatenate(bed.queued) if bed.queued else None
                bed.queued, bed.queued_n = [], 0
                if rest is not None:
                    bed.tail.add(rest)
            calls: list[BeatCall] = []
            alerts: list[Alert] = []
            if rest is not None:
                t = self.ecg.push({pid: rest})
                calls, alerts = list(t.calls), list(t.alerts)
            t = self.ecg.discharge(pid)
            calls += t.calls
            alerts += t.alerts
            self._in_shadow(
                self._shadow_ecg, lambda sh: _discharge_shadow(sh, pid, rest, (calls, alerts))
            )
            self._record_ecg(calls, alerts)
            with self._queue_lock:
                self._complete_strips(final=pid)  # the stream ended: as far as it went
                summary = self._summary(pid, self._ecg_beds.pop(pid))
                self._journal("discharge_ecg", pid)
        return {**summary, "discharged": True}

    def _record_ecg(self, calls: list[BeatCall], alerts: list[Alert]) -> None:
        with self._queue_lock:
            self.beats_labelled.update(c.label for c in calls)
            for c in calls:
                bed = self._ecg_beds.get(c.patient_id)
                if bed is not None:
                    bed.counts[c.label] += 1
                    bed.recent.append(c)
                    bed.rates.add(c)
            for a in alerts:
                bed = self._ecg_beds.get(a.patient_id)
                event = {"source": "ecg", **asdict(a)}
                if bed is not None:
                    # stream time on the wall clock: exact for a feed that runs in real
                    # time, as a bedside feed does
                    event["onset_at"] = _iso(bed.stream_start + timedelta(seconds=a.onset_s))
                    start_s, end_s = strip_bounds(a)
                    event["strip_s"] = round(end_s - start_s, 3)  # once complete
                stored = self._event(event)
                if bed is not None:
                    bed.pending_strips.append((stored["seq"], a))
                    bed.alerts.append(stored)
            self._complete_strips(final=None)

    def _complete_strips(self, final: str | None) -> None:
        """Keep the strips of the alarms raised so far, as far as the samples go; those
        whose end has been reached and whose beats have been labelled (or whose feed
        ``final`` ends) are complete and leave the pending list (the caller holds the queue
        lock)."""
        for pid, bed in self._ecg_beds.items():
            if not bed.pending_strips:
                continue
            assert bed.tail is not None
            waiting = []
            for seq, a in bed.pending_strips:
                start_s, end_s = strip_bounds(a)
                done = pid == final or bed.tail.end / bed.fs >= end_s + STRIP_LABEL_WAIT_S
                # only the strip's own samples, as far as the ring still holds them
                first = max(int(math.floor(start_s * bed.fs)), bed.tail.end - bed.tail.buf.size)
                samples = bed.tail.get(first, int(round(end_s * bed.fs)))
                strip = alarm_strip(a, bed.fs, samples, first, bed.recent, complete=done)
                strip["start_at"] = _iso(bed.stream_start + timedelta(seconds=strip["start_s"]))
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
        (:func:`~vitalgru.scoring.alerts.alarm_strip`). KeyError when the event has none
        (not an ECG alarm, or older than the strips kept)."""
        with self._queue_lock:
            got = self._strips.get(int(seq))
        if got is None:
            raise KeyError(f"event {seq} has no ECG strip (only ECG alarms have one, and the "
                           f"newest {MAX_STRIPS} are kept)")  # fmt: skip
        x = got["samples"].astype(np.float64)
        samples = [None if not math.isfinite(v) else round(v, 4) for v in x.tolist()]
        return {"seq": int(seq), **got, "samples": samples}

    def ecg_trend(self, patient_id: str) -> dict[str, Any]:
        """The heart rate of each minute of the patient's current stream (since admission
        or the gateway's restart): ``{"patient_id", "stream_started_at", "monitored_s",
        "hr_trend_bpm": [bpm or None, ...]}``. KeyError for a patient not on ECG."""
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._ecg_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on ECG monitoring")
            assert bed.tail is not None
            monitored = bed.tail.end / bed.fs
            trend = bed.rates.trend(int(math.ceil(monitored / HR_WINDOW_S)))
            return {
                "patient_id": pid,
                "stream_started_at": _iso(bed.stream_start),
                "monitored_s": monitored,
                "hr_trend_bpm": [None if v is None else round(v, 1) for v in trend],
            }

    def ecg_summary(self, patient_id: str) -> dict[str, Any]:
        """What a bedside view shows: ``{"patient_id", "fs", "admitted_at",
        "stream_started_at" (stream time 0: admission, or a gateway restart), "received_s",
        "queued_s", "beats", "counts" ({class: n}), "hr_bpm" (median RR of the last
        minute's beats in accepted signal; None with fewer than 5), "rejected_pct" (of the
        recent beats), "last_beats" (the 10 newest: time_s, label, signal_ok),
        "alarms" (the newest 100)}``. KeyError for a patient not on ECG monitoring."""
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._ecg_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on ECG monitoring")
            return self._summary(pid, bed)

    def _summary(self, pid: str, bed: _EcgBed) -> dict[str, Any]:
        recent = list(bed.recent)
        hr = None
        if recent:
            last = recent[-1].time_s
            t = np.array([c.time_s for c in recent if c.time_s >= last - HR_WINDOW_S])
            ok = np.array([c.signal_ok for c in recent if c.time_s >= last - HR_WINDOW_S])
            rr = np.diff(t)[ok[1:] & ok[:-1]]
            rr = rr[rr > 0]
            if rr.size >= 4:
                hr = round(60.0 / float(np.median(rr)), 1)
        return {
            "patient_id": pid,
            "fs": bed.fs,
            "admitted_at": _iso(bed.admitted),
            "stream_started_at": _iso(bed.stream_start),
            "received_s": round(bed.received_s, 3),
            "queued_s": round(bed.queued_n / bed.fs, 3),
            "beats": int(sum(bed.counts.values())),
            "counts": {c: int(bed.counts.get(c, 0)) for c in _CLASSES},
            "hr_bpm": hr,
            "rejected_pct": (
                round(100.0 * sum(not c.signal_ok for c in recent) / len(recent), 1)
                if recent
                else None
            ),
            "last_beats": [
                {"time_s": round(c.time_s, 3), "label": c.label, "signal_ok": c.signal_ok}
                for c in recent[-10:]
            ],
            "alarms": [dict(a) for a in bed.alerts],
        }

    # ------------------------------------------------------------------ sepsis

    def admit_sepsis(
        self,
        patient_id: str,
        static: Mapping[str, Any] | None = None,
        admitted_at: datetime | None = None,
    ) -> None:
        """Start scoring a patient's hourly vital signs and labs. ``static``: the patient's
        demographics (``Age``, ``Gender``, ``Unit1``, ``Unit2``, ``HospAdmTime``, or their
        vitalgru names), added to every hour that does not carry them itself.
        ``admitted_at``: when the ICU stay began (default now), from which
        :meth:`sepsis_hour_at` counts the hours. ValueError when already admitted, for a
        static column that is not one or a value that is not a number, or a time without
        its UTC offset or in the future."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        given = _static_columns(static or {})
        if admitted_at is not None and admitted_at.tzinfo is None:
            raise ValueError(f"the admission time {admitted_at.isoformat()} has no UTC offset")
        if admitted_at is not None and admitted_at > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError(f"the admission time {admitted_at.isoformat()} is in the future")
        at = _utc_now() if admitted_at is None else _iso(admitted_at.astimezone(UTC))
        with self._model_lock, self._queue_lock:
            self.sepsis.admit(pid)  # ValueError when already admitted
            self._in_shadow(self._shadow_sepsis, lambda sh: sh.admit(pid))
            self._sepsis_beds[pid] = _SepsisBed(at, given)
            self._journal("admit_sepsis", pid, self._sepsis_beds[pid].admitted_at, given)

    def sepsis_hour_at(self, patient_id: str, when: datetime) -> int:
        """The ICU hour (``ICULOS``: 1 for the first hour of the stay) a time falls in,
        counted from the patient's admission. KeyError for a patient not admitted;
        ValueError for a time without its UTC offset, before the admission, or more than
        5 minutes in the future."""
        if when.tzinfo is None:
            raise ValueError(f"the time {when.isoformat()} has no UTC offset")
        with self._queue_lock:
            bed = self._sepsis_beds.get(str(patient_id))
            if bed is None:
                raise KeyError(f"patient {patient_id!r} is not on sepsis monitoring")
            start = datetime.fromisoformat(bed.admitted_at)
        if when > _now() + timedelta(minutes=5):
            raise ValueError(
                f"{when.isoformat()} is in the future (more than 5 minutes ahead of this "
                "clock): a sender's clock or time zone is wrong"
            )
        seconds = (when - start).total_seconds()
        if seconds < 0:
            raise ValueError(
                f"{when.isoformat()} is before patient {patient_id!r} was admitted "
                f"({bed.admitted_at})"
            )
        return int(seconds // 3600) + 1

    def add_hour(self, patient_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Score a patient's next hour (``{column: value}``, Challenge-2019 or vitalgru
        names, ``ICULOS`` required). Returns the hour's risk (:class:`HourRisk` as a dict,
        with ``alarm_started``: an alarm episode began this hour, also logged as an
        event naming the measurements that raised the risk most). KeyError for a patient not admitted; ValueError for a row the monitor
        refuses (hours out of order, unknown columns, text)."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        with self._model_lock:
            with self._queue_lock:
                bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring; admit them first")
            hour = row.get("ICULOS", row.get("hour"))
            if hour is not None and bed.pending:  # hours assembled before it are due first
                if isinstance(hour, int | float) and int(hour) in bed.pending:
                    raise ValueError(
                        f"patient {pid!r}: ICU hour {int(hour)} is being assembled from "
                        "observations; send its values as observations, or close it first"
                    )
                if isinstance(hour, int | float):
                    self._close_hours(pid, through=int(hour) - 1)
            return self._score_hour(pid, bed, row)

    def _score_hour(self, pid: str, bed: _SepsisBed, row: Mapping[str, Any]) -> dict[str, Any]:
        """Score one hour of a bed (the caller holds the model lock)."""
        t0 = time.perf_counter()
        row = _with_static(row, bed.static)
        (risk,) = self.sepsis.push({pid: row})
        self._in_shadow(self._shadow_sepsis, lambda sh: sh.score({pid: row}, [risk]))
        started = risk.alarm and not bed.in_alarm
        drivers = self.sepsis.explain(pid, ALARM_DRIVERS) if started else []
        self.sepsis_hour_seconds.add(time.perf_counter() - t0)
        with self._queue_lock:
            self._journal("add_hour", pid, risk.hour, row)
            bed.scored(risk, _utc_now())
            if started:
                bed.episodes += 1
                bed.onset = self._event(self._sepsis_alarm_event(pid, risk, drivers))
                bed.drivers[risk.hour] = list(bed.onset["drivers"])
            elif not risk.alarm:
                if bed.onset is not None:  # the episode is over: said, for whoever paged
                    self._event({
                        "source": "ward", "patient_id": pid, "kind": "alarm_ended",
                        "ends": bed.onset["seq"], "hour": risk.hour,
                        "risk": round(risk.risk, 4),
                        "message": f"sepsis risk {risk.risk:.2f} fell below the alarm threshold "
                        f"{self.sepsis.threshold:.2f} at ICU hour {risk.hour}: the alarm "
                        f"episode that began at ICU hour {bed.onset.get('hour')} is over",
                    })  # fmt: skip
                bed.onset = None
        return {**asdict(risk), "rejected": list(risk.rejected), "alarm_started": started}

    def add_observations(
        self, patient_id: str, hour: int, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Take some of an ICU hour's measurements, as observations arrive (a monitor's vital
        signs every few minutes, a laboratory result when it is ready), and hold them until
        the hour closes: ``hour_close_after_s`` after its end, counted from the admission
        (checked by :meth:`tick`; an hour that is still receiving observations then, as
        one sent after the fact does, closes once none has come for :data:`HOUR_QUIET_S`
        or one of a later hour comes), or when :meth:`close_hours` is called (a sender
        that knows it has sent the whole hour, a discharge). Once a patient's observations
        come this way, the hours that end after the latest one arrived and bring nothing
        are scored too, as rows without measurements, when they close: the risk goes on
        as the hours pass, as the Challenge's rows do (not kept across a restart: a
        restarted ward waits for the next observation). The hour is then scored as
        :meth:`add_hour` scores a row, each measurement the mean of the values that came,
        after the hours before it in which nothing was observed (rows without
        measurements, as the Challenge's data have them). Hours close in order, so several
        may be open at once.

        ``values``: ``{column: value or list of values}`` (Challenge-2019 or vitalgru names
        of measurements; NaN and None are left out). Returns ``{"patient_id", "hour",
        "pending": True, "closes_at" (ISO time), "measurements" ({column: values held for
        the hour}), "scored" (the risks of earlier hours this call closed)}``. KeyError for
        a patient not admitted; ValueError for an hour already scored (a late observation:
        it is not taken), a column that is not a measurement, or a value that is not a
        number."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        if isinstance(hour, bool) or not isinstance(hour, int) or hour < 1:
            raise ValueError(f"the ICU hour must be a whole number >= 1, got {hour!r}")
        given = _measurements(values)
        with self._model_lock:
            scored = self._close_hours(pid, before=hour)  # the earlier hours due go first
            with self._queue_lock:
                bed = self._sepsis_beds.get(pid)
                if bed is None:
                    raise KeyError(f"patient {pid!r} is not on sepsis monitoring; admit them first")
                last = bed.last.hour if bed.last is not None else 0
                if hour <= last:
                    raise ValueError(
                        f"patient {pid!r}: ICU hour {hour} was already scored (the latest is "
                        f"{last}); an observation that arrives after its hour has closed "
                        f"({self.hour_close_after_s / 60:g} min after its end) is not taken"
                    )
                held = bed.pending.setdefault(hour, {})
                for col, xs in given.items():
                    held.setdefault(col, []).extend(xs)
                bed.touched[hour] = time.monotonic()
                bed.last_observation = _now()
                self._journal("pending_hour", pid, hour, held)
                closes = datetime.fromisoformat(bed.admitted_at) + timedelta(
                    seconds=hour * 3600 + self.hour_close_after_s
                )
                counts = {c: len(xs) for c, xs in held.items()}
        return {"patient_id": pid, "hour": hour, "pending": True, "closes_at": _iso(closes),
                "measurements": counts, "scored": scored}  # fmt: skip

    def close_hours(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        """Score the hours being assembled from observations now, without waiting for them
        to close: a patient's (KeyError when not admitted), or every patient's. Returns
        their risks, in order."""
        with self._model_lock:
            if patient_id is not None:
                with self._queue_lock:
                    if str(patient_id) not in self._sepsis_beds:
                        raise KeyError(f"patient {patient_id!r} is not on sepsis monitoring")
            return self._close_hours(patient_id, due_only=False)

    def _close_hours(
        self,
        only: str | None = None,
        due_only: bool = True,
        through: int | None = None,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score assembled hours, of ``only`` or of every patient, in order; the caller
        holds the model lock. Which: with ``through``, every hour up to it; with ``before``
        (an observation of that hour came: the sender has moved on), the earlier hours
        whose close time has passed; else, with ``due_only``, those whose close time has
        passed and that have had no observation for :data:`HOUR_QUIET_S` (a past hour
        being sent after the fact, part by part, is not cut in the middle), or all. An
        hour that cannot be scored is logged and dropped: the others go on."""
        if self.sepsis is None:
            return []
        now, clock = _now(), time.monotonic()
        quiet = min(HOUR_QUIET_S, self.hour_close_after_s)
        grace = timedelta(seconds=self.hour_close_after_s)
        due: list[tuple[str, _SepsisBed, int, dict[str, list[float]]]] = []
        by_clock = through is None and before is None and due_only
        with self._queue_lock:
            for pid, bed in self._sepsis_beds.items():
                live = by_clock and bed.last_observation is not None
                if not (bed.pending or live) or (only is not None and pid != str(only)):
                    continue
                start = datetime.fromisoformat(bed.admitted_at)
                n = len(due)
                for h in sorted(bed.pending):
                    ended = now >= start + timedelta(seconds=h * 3600 + self.hour_close_after_s)
                    if through is not None:
                        go = h <= through
                    elif before is not None:
                        go = h < before and ended
                    else:
                        go = not due_only or (ended and clock - bed.touched.get(h, 0) >= quiet)
                    if not go:
                        break  # in order: a later hour waits for the earlier ones
                    bed.touched.pop(h, None)
                    due.append((pid, bed, h, bed.pending.pop(h)))
                if live and not bed.pending and bed.last_observation is not None:
                    # hours that ended while the feed was live, after its latest message,
                    # and brought nothing: scored as rows without measurements when they
                    # close, so the risk goes on as the hours pass (a stay sent after the
                    # fact is not: its hours had ended before its messages came)
                    h = max([bed.last.hour if bed.last is not None else 0]
                            + [d[2] for d in due[n:]]) + 1  # fmt: skip
                    for _ in range(MAX_EMPTY_HOURS_PER_TICK):
                        end = start + timedelta(hours=h)
                        if now < end + grace or end <= bed.last_observation:
                            break
                        due.append((pid, bed, h, {}))
                        h += 1
        out = []
        for pid, bed, h, held in due:
            row: dict[str, Any] = {c: sum(xs) / len(xs) for c, xs in held.items() if xs}
            row["ICULOS"] = h
            last = bed.last.hour if bed.last is not None else 0
            # the hours before it in which nothing was observed are hours of the stay too
            # (a row without measurements, as the Challenge's data have them)
            for g, r in [*((g, {"ICULOS": g}) for g in range(last + 1, h)), (h, row)]:
                try:
                    out.append(self._score_hour(pid, bed, r))
                except (KeyError, ValueError):
                    logger.exception("ward: ICU hour %d of patient %s could not be scored", g, pid)
        return out

    def _sepsis_alarm_event(
        self, pid: str, risk: HourRisk, drivers: list[RiskDriver]
    ) -> dict[str, Any]:
        message = (
            f"sepsis risk {risk.risk:.2f} reached the alarm threshold "
            f"{self.sepsis.threshold:.2f} at ICU hour {risk.hour}"
        )
        if risk.probability is not None:
            message += (
                f" (estimated probability of sepsis within 6 hours {100 * risk.probability:.0f} %)"
            )
        if drivers:
            message += "; raised most by " + "; ".join(d.describe() for d in drivers)
        return {
            "source": "sepsis",
            "patient_id": pid,
            "kind": "sepsis_risk",
            "hour": risk.hour,
            "risk": round(risk.risk, 4),
            "probability": None if risk.probability is None else round(risk.probability, 4),
            "drivers": [d.as_dict() for d in drivers],
            "message": message,
        }

    def sepsis_summary(self, patient_id: str) -> dict[str, Any]:
        """``{"patient_id", "admitted_at", "last_hour" (the latest :class:`HourRisk` as a
        dict, None before the first), "in_alarm", "alarm_episodes", "alarm_drivers" (what
        raised the risk when the alarm going on began: :meth:`RiskDriver.as_dict` dicts;
        empty when not in alarm), "alarm_seq" (that onset's event number, for
        :meth:`acknowledge`), "alarm_acknowledged" (its acknowledgement, or None),
        "alarm_escalated" (``{"at", "seq"}`` once it was escalated, or None), "static"
        (the demographics given at admission, vitalgru names), "assembling" ({ICU hour
        being assembled from observations: {column: values so far}}), "last_scored_at" (when the
        latest hour was scored; None for hours taken up from a state file), "risk_max" and
        "risk_max_hour" (the stay's highest risk so far)}``. KeyError for a patient not
        on sepsis monitoring."""
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring")
            return self._sepsis_summary(pid, bed)

    @staticmethod
    def _sepsis_summary(pid: str, bed: _SepsisBed) -> dict[str, Any]:
        return {
            "patient_id": pid,
            "admitted_at": bed.admitted_at,
            "last_hour": None if bed.last is None else asdict(bed.last),
            "last_scored_at": bed.last_scored_at,
            "risk_max": None if bed.peak is None else bed.peak.risk,
            "risk_max_hour": None if bed.peak is None else bed.peak.hour,
            "in_alarm": bed.in_alarm,
            "alarm_episodes": bed.episodes,
            "alarm_drivers": list(bed.onset.get("drivers", [])) if bed.onset else [],
            "alarm_seq": bed.onset["seq"] if bed.onset else None,
            "alarm_acknowledged": bed.onset.get("acknowledged") if bed.onset else None,
            "alarm_escalated": bed.onset.get("escalated") if bed.onset else None,
            "static": dict(bed.static),
            "assembling": {
                h: {c: len(xs) for c, xs in m.items()} for h, m in sorted(bed.pending.items())
            },
        }

    def sepsis_stay(self, patient_id: str) -> dict[str, Any]:
        """A sepsis patient's stay so far, for a clinician's page
        (:func:`vitalgru.reports.early_warning.stay_summary`): ``{"patient_id", "hours",
        "risks", "probabilities", "rejected", "values" ({vitalgru column: one value per
        hour}), "drivers" ({ICU hour an alarm episode began: what raised the risk}),
        "threshold"}``. KeyError for a patient not on sepsis monitoring."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        with self._model_lock, self._queue_lock:
            bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring")
            values = self.sepsis.stay_values(pid)
            risks = list(bed.risks)
            drivers = {h: list(d) for h, d in bed.drivers.items()}
        return {
            "patient_id": pid,
            "hours": [r.hour for r in risks],
            "risks": [r.risk for r in risks],
            "probabilities": [r.probability for r in risks],
            "rejected": [list(r.rejected) for r in risks],
            "values": {c: v for c, v in values.items() if c != "hour"},
            "drivers": drivers,
            "threshold": self.sepsis.threshold,
        }

    def discharge_sepsis(self, patient_id: str) -> dict[str, Any]:
        """Stop scoring a patient (the hours being assembled from observations are scored
        first, on what came); returns their final :meth:`sepsis_summary`."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        with self._model_lock:
            self._close_hours(pid, due_only=False)
            with self._queue_lock:
                self.sepsis.discharge(pid)  # KeyError when not admitted
                self._in_shadow(self._shadow_sepsis, lambda sh: sh.discharge(pid))
                bed = self._sepsis_beds.pop(pid)
                self._journal("discharge_sepsis", pid)
        return {**self._sepsis_summary(pid, bed), "discharged": True}

    # ------------------------------------------------------------------ shadow

    def shadow_report(self) -> dict[str, Any]:
        """How the shadow models compare with the champions on the patients seen so far:
        ``{"arrhythmia": EcgShadow.report() or None, "early_warning": SepsisShadow.report()
        or None, "errors": failures of the shadow models}``. ValueError without a shadow."""
        if self._shadow_ecg is None and self._shadow_sepsis is None:
            raise ValueError("this ward was started without a shadow model")
        with self._model_lock:
            return {
                "arrhythmia": None if self._shadow_ecg is None else self._shadow_ecg.report(),
                "early_warning": (
                    None if self._shadow_sepsis is None else self._shadow_sepsis.report()
                ),
                "errors": self.shadow_errors,
            }

    # ------------------------------------------------------------------ events

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append to the log and return the logged event (the caller holds the queue
        lock)."""
        self._seq += 1
        self._events.append({"seq": self._seq, "received_at": _utc_now(), **event})
        self.events_logged[(str(event.get("source")), str(event.get("kind")))] += 1
        if self._escalates(event):
            self._awaiting_ack[self._seq] = time.monotonic() + self.escalate_after_s
        self._journal("add_event", self._events[-1])
        return self._events[-1]

    def _escalates(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` is an alarm that escalates when no one acknowledges it."""
        return (
            self.escalate_after_s is not None
            and event.get("source") != "ward"
            and event.get("kind") not in INFO_KINDS
            and not event.get("acknowledged")
        )

    def _escalate(self) -> None:
        """Log an ``escalated`` event for each alarm whose time to be acknowledged has run
        out, and mark the alarm ``escalated`` (``{"at", "seq"}``) for the summaries, the
        ward page and its FHIR flag (the caller holds the queue lock)."""
        now = time.monotonic()
        due = sorted(seq for seq, at in self._awaiting_ack.items() if at <= now)
        if not due:
            return
        wanted = set(due)
        kept = {e["seq"]: e for e in self._events if e["seq"] in wanted}
        for seq in due:
            del self._awaiting_ack[seq]
            alarm = kept.get(seq)
            if alarm is None:  # dropped from the log meanwhile
                continue
            minutes = self.escalate_after_s / 60
            escalation = self._event(
                {
                    "source": "ward",
                    "patient_id": alarm.get("patient_id"),
                    "kind": "escalated",
                    "escalates": seq,
                    "message": f"{alarm.get('kind')} of patient {alarm.get('patient_id')} "
                    f"(event {seq}, {alarm.get('received_at')}) has not been acknowledged "
                    f"for {minutes:g} min",
                }
            )
            alarm["escalated"] = {"at": escalation["received_at"], "seq": escalation["seq"]}
            self._journal("add_event", alarm)  # the stored copy too

    def acknowledge(
        self, seq: int, by: str, note: str = "", via: str | None = None
    ) -> dict[str, Any]:
        """Record that a clinician has seen event ``seq`` (an alarm, a feed lost): the event
        gets ``acknowledged`` (``{"by", "at", "note"}``), which the summaries, the ward page
        and :meth:`events` (``unacknowledged``) show, and the log gets an ``acknowledged``
        event of its own for the integration engine. Returns the acknowledged event.

        ``via``: the name of the access token the acknowledgement came with (the gateway's
        record of who was signed in, beside the name they typed), kept in both.

        KeyError for an event not in the log (never logged, or dropped as old); ValueError
        for one already acknowledged, an acknowledgement, or an empty or overlong name.
        """
        who = str(by).strip()
        if not 1 <= len(who) <= 100:
            raise ValueError("say who acknowledges (1 to 100 characters)")
        if len(note) > 500:
            raise ValueError("a note is at most 500 characters")
        with self._queue_lock:
            event = next((e for e in self._events if e["seq"] == seq), None)
            if event is None:
                raise KeyError(f"event {seq} is not in the log (never logged, or dropped as old)")
            if event.get("source") == "ward":
                raise ValueError(f"event {seq} is an acknowledgement itself")
            done = event.get("acknowledged")
            if done:
                raise ValueError(
                    f"event {seq} was already acknowledged by {done['by']} at {done['at']}"
                )
            event["acknowledged"] = {"by": who, "at": _utc_now(), "note": note}
            self._awaiting_ack.pop(seq, None)
            if via is not None:
                event["acknowledged"]["via"] = via
            self._journal("add_event", event)  # the stored copy too
            pid = event.get("patient_id")
            self._event(
                {
                    "source": "ward",
                    "patient_id": pid,
                    "kind": "acknowledged",
                    "acknowledges": seq,
                    "by": who,
                    "note": note,
                    **({"via": via} if via is not None else {}),
                    "message": f"{who} acknowledged event {seq} ({event.get('kind')} of "
                    f"patient {pid})" + (f": {note}" if note else ""),
                }
            )
            return dict(event)

    def events(
        self,
        since: int = 0,
        limit: int = 500,
        unacknowledged: bool = False,
        patient_id: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Events numbered after ``since``, oldest first, at most ``limit``; with
        ``unacknowledged``, only those no one has acknowledged (acknowledgements left out),
        with ``patient_id`` or ``source`` (``ecg``, ``sepsis``, ``ward``) only that
        patient's or source's. Returns ``{"events", "last_seq" (pass it as ``since`` next
        time: the newest event looked at, so events a filter left out are not looked at
        again), "dropped" (events after ``since`` no longer kept, of any patient)}``."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._queue_lock:
            kept = [
                e
                for e in self._events
                if e["seq"] > since
                and not (unacknowledged and (e.get("acknowledged") or e.get("source") == "ward"))
                and (patient_id is None or e.get("patient_id") == patient_id)
                and (source is None or e.get("source") == source)
            ]
            first_kept = self._events[0]["seq"] if self._events else self._seq + 1
            dropped = max(0, first_kept - since - 1) if self._seq > since else 0
            out = [dict(e) for e in kept[:limit]]  # copies: acknowledge() adds to the log's
            return {
                "events": out,
                "last_seq": out[-1]["seq"] if len(kept) > limit else max(since, self._seq),
                "dropped": dropped,
            }

    def summaries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every ECG patient's :meth:`ecg_summary` and every sepsis patient's
        :meth:`sepsis_summary`, taken together."""
        with self._queue_lock:
            ecg = [self._summary(pid, bed) for pid, bed in self._ecg_beds.items()]
            sepsis = [self._sepsis_summary(pid, bed) for pid, bed in self._sepsis_beds.items()]
        return ecg, sepsis

    def alarms_in_progress(self) -> list[int]:
        """Event numbers of the sepsis alarm onsets whose patient is still in that episode."""
        with self._queue_lock:
            return [b.onset["seq"] for b in self._sepsis_beds.values() if b.in_alarm and b.onset]

    @property
    def ticks(self) -> int:
        """Ticks run since the ward started."""
        return self.tick_seconds.count

    @property
    def last_seq(self) -> int:
        """The number of the newest event logged (0 before the first)."""
        return self._seq

    def patients(self) -> dict[str, list[str]]:
        """``{"ecg": [...], "sepsis": [...]}``: the patients on each monitor."""
        with self._queue_lock:
            return {"ecg": sorted(self._ecg_beds), "sepsis": sorted(self._sepsis_beds)}

    def status(self) -> dict[str, Any]:
        """How many patients are on each monitor (no identifiers: a health check may be
        open), ticks run and their mean cost, events logged, state file and its errors."""
        with self._queue_lock:
            return {
                "ecg_patients": len(self._ecg_beds),
                "sepsis_patients": len(self._sepsis_beds),
                "ticks": self.ticks,
                "tick_ms_mean": (1e3 * self.tick_seconds.sum / self.ticks if self.ticks else None),
                "events": self._seq,
                "max_chunk_s": self.max_chunk_s,
                "state_file": None if self.journal is None else str(self.journal.path),
                "state_write_errors": self.journal_errors,
                "shadow_errors": self.shadow_errors,
            }

    def telemetry(self) -> dict[str, Any]:
        """What an operator's monitoring scrapes (``GET /metrics``), without identifiers.

        Counts since this ward started: ``beats`` ({class: labelled}), ``events``
        ({(source, kind): logged}), ``sepsis_hours``, ``tick_seconds`` and
        ``sepsis_hour_seconds`` (:meth:`Durations.snapshot`: a tick's batched ECG push;
        scoring an hour, with its alarm explanation and shadow), ``state_write_errors``,
        ``shadow_errors``. Now: ``patients`` ({monitor: n}), ``feeds_lost``,
        ``queued_s`` and ``queued_s_max`` (ECG waiting for the next tick, all feeds and the
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
                "state_write_errors": self.journal_errors,
                "shadow_errors": self.shadow_errors,
            }
