"""The sepsis side of a :class:`~vitalgru.scoring.ward.Ward`: patients on hourly scoring,
their hours sent whole or assembled from observations as they arrive, the alarm episodes
and what raised the risk at each onset.

:class:`SepsisWard` is a part of :class:`~vitalgru.scoring.ward.Ward` (its base class) and
uses the ward's locks, journal and event log; it is not used alone. What it keeps of each
patient, and which assembled hours are due, is :mod:`vitalgru.scoring.ward_sepsis_bed`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalgru.errors import ConflictError
from vitalgru.scoring.early_warning import HourRisk, RiskDriver
from vitalgru.scoring.ward_events import REPEATED_SEPSIS_KIND, _iso, _utc_now
from vitalgru.scoring.ward_sepsis_bed import SepsisBed, measurements, static_columns, with_static
from vitalgru.scoring.ward_shadows import WardShadows

__all__ = ["ALARM_DRIVERS", "HOUR_CLOSE_AFTER_S", "HOUR_QUIET_S", "SepsisWard", "within_lockout"]

logger = logging.getLogger("vitalgru.scoring.ward")

#: The longest ICU stay an admission time may give (longer stays exist, but an admission
#: time further back is a typing error far more often than a 3-month stay just admitted).
MAX_STAY = timedelta(days=90)

#: Measurements named, at a sepsis alarm onset, as what raised the risk most
#: (:meth:`EarlyWarningMonitor.explain`).
ALARM_DRIVERS = 3

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


def within_lockout(paged_hour: int | None, acknowledged: bool, hour: int, lockout_h: float) -> bool:
    """Whether a sepsis alarm onset at ICU ``hour`` falls in the lockout after the patient's
    latest alarm that paged someone (its onset at ICU hour ``paged_hour``; None: there was
    none), which holds only once someone has acknowledged that alarm: an alarm no one has
    seen does not silence the next. ``lockout_h``: its length in ICU hours (0: none).

    Sepsis alert systems lock out re-alerts for a while after one was acted on, because a
    patient whose risk hovers at the line alarms again and again: in the cross-validated
    set-A risks, 42 % of alarm onsets came within 12 h of the end of the same patient's
    previous episode (``benchmarks/sepsis_lockout.py``).
    """
    return bool(
        lockout_h > 0 and paged_hour is not None and acknowledged
        and 0 <= hour - paged_hour < lockout_h
    )  # fmt: skip


def _now() -> datetime:
    """The wall clock the sepsis hours close on (one place, for tests to move)."""
    return datetime.now(UTC)


class SepsisWard(WardShadows):
    """Hourly sepsis scoring of a ward's patients (the methods of
    :class:`~vitalgru.scoring.ward.Ward` that are about it; the ward holds the state)."""

    # set by Ward.__init__
    sepsis: Any
    hour_close_after_s: float
    sepsis_lockout_h: float
    _sepsis_beds: dict[str, SepsisBed]

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
        given = static_columns(static or {})
        if admitted_at is not None and admitted_at.tzinfo is None:
            raise ValueError(f"the admission time {admitted_at.isoformat()} has no UTC offset")
        if admitted_at is not None and admitted_at > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError(f"the admission time {admitted_at.isoformat()} is in the future")
        if admitted_at is not None and admitted_at < datetime.now(UTC) - MAX_STAY:
            # every hour since is scored when the first observation comes, under the lock
            # every feed waits on: a mistyped year stalled the ward for minutes
            raise ValueError(f"the admission time {admitted_at.isoformat()} is more than "
                             f"{MAX_STAY.days} days ago: check the year")  # fmt: skip
        at = _utc_now() if admitted_at is None else _iso(admitted_at.astimezone(UTC))
        with self._model_lock, self._queue_lock:
            self.sepsis.admit(pid)  # ValueError when already admitted
            self._in_shadow(self._shadow_sepsis, lambda sh: sh.admit(pid))
            self._sepsis_beds[pid] = SepsisBed(at, given)
            self._journal("admit_sepsis", pid, self._sepsis_beds[pid].admitted_at, given)

    def sepsis_admitted_at(self, patient_id: str) -> str:
        """When the patient's current stay began (ISO time). KeyError for a patient not
        admitted."""
        with self._queue_lock:
            bed = self._sepsis_beds.get(str(patient_id))
            if bed is None:
                raise KeyError(f"patient {patient_id!r} is not on sepsis monitoring")
            return bed.admitted_at

    def _same_stay(self, pid: str, bed: SepsisBed, admitted_at: str | None) -> None:
        """ConflictError when ``admitted_at`` (the stay a caller counted its hours in) is not
        the patient's stay now: discharged and admitted again meanwhile."""
        if admitted_at is not None and admitted_at != bed.admitted_at:
            raise ConflictError(
                f"patient {pid!r} was discharged and admitted again (at {bed.admitted_at}) "
                f"while this was read against the stay from {admitted_at}; nothing was "
                "taken: send it again"
            )

    def sepsis_hour_at(
        self, patient_id: str, when: datetime, admitted_at: str | None = None
    ) -> int:
        """The ICU hour (``ICULOS``: 1 for the first hour of the stay) a time falls in,
        counted from the patient's admission (``admitted_at``: the stay it must be, see
        :meth:`add_observations`). KeyError for a patient not admitted; ValueError for a
        time without its UTC offset, before the admission, or more than 5 minutes in the
        future."""
        if when.tzinfo is None:
            raise ValueError(f"the time {when.isoformat()} has no UTC offset")
        with self._queue_lock:
            bed = self._sepsis_beds.get(str(patient_id))
            if bed is None:
                raise KeyError(f"patient {patient_id!r} is not on sepsis monitoring")
            self._same_stay(str(patient_id), bed, admitted_at)
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

    def _score_hour(self, pid: str, bed: SepsisBed, row: Mapping[str, Any]) -> dict[str, Any]:
        """Score one hour of a bed (the caller holds the model lock)."""
        t0 = time.perf_counter()
        row = with_static(row, bed.static)
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
                bed.onset = self._event(self._sepsis_alarm_event(pid, risk, drivers, bed.paged))
                bed.drivers[risk.hour] = list(bed.onset["drivers"])
                if bed.onset["kind"] != REPEATED_SEPSIS_KIND:
                    bed.paged = bed.onset
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
        self,
        patient_id: str,
        hour: int,
        values: Mapping[str, Any],
        replace: Sequence[str] = (),
        admitted_at: str | None = None,
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
        as the hours pass, as the Challenge's rows do (when the latest observation arrived is
        in the state file, so this goes on after a restart). The hour is then scored as
        :meth:`add_hour` scores a row, each measurement the mean of the values that came,
        after the hours before it in which nothing was observed (rows without
        measurements, as the Challenge's data have them). Hours close in order, so several
        may be open at once.

        ``values``: ``{column: value or list of values}`` (Challenge-2019 or vitalgru names
        of measurements; NaN and None are left out); ``replace``: those of its columns
        that correct the values held for the hour (a corrected result), which they
        replace instead of joining. Returns ``{"patient_id", "hour",
        "pending": True, "closes_at" (ISO time), "measurements" ({column: values held for
        the hour}), "scored" (the risks of earlier hours this call closed)}``. KeyError for
        a patient not admitted; ValueError for an hour already scored (a late observation:
        it is not taken), a column that is not a measurement, or a value that is not a
        number. ``admitted_at``: the stay the caller counted ``hour`` in
        (:meth:`sepsis_admitted_at`); ConflictError, nothing taken, when the patient was
        discharged and admitted again since (the old stay's values would land in the new
        one, at an hour of the old)."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        if isinstance(hour, bool) or not isinstance(hour, int) or hour < 1:
            raise ValueError(f"the ICU hour must be a whole number >= 1, got {hour!r}")
        given = measurements(values)
        # the columns a correction replaces, by vitalgru name (checked, as ``values`` is,
        # before anything changes)
        fixed = set(measurements(dict.fromkeys(replace, 0.0)))
        with self._model_lock:
            if admitted_at is not None:  # before the earlier hours are closed for it
                with self._queue_lock:
                    bed = self._sepsis_beds.get(pid)
                    if bed is not None:
                        self._same_stay(pid, bed, admitted_at)
            scored = self._close_hours(pid, before=hour)  # the earlier hours due go first
            with self._queue_lock:
                bed = self._sepsis_beds.get(pid)
                if bed is None:
                    raise KeyError(f"patient {pid!r} is not on sepsis monitoring; admit them first")
                self._same_stay(pid, bed, admitted_at)
                last = bed.last.hour if bed.last is not None else 0
                if hour <= last:
                    raise ValueError(
                        f"patient {pid!r}: ICU hour {hour} was already scored (the latest is "
                        f"{last}); an observation that arrives after its hour has closed "
                        f"({self.hour_close_after_s / 60:g} min after its end) is not taken"
                    )
                held = bed.pending.setdefault(hour, {})
                for col, xs in given.items():
                    if col in fixed:
                        held[col] = list(xs)  # a correction replaces what it corrects
                    else:
                        held.setdefault(col, []).extend(xs)
                bed.touched[hour] = time.monotonic()
                bed.last_observation = _now()
                self._journal("pending_hour", pid, hour, held, _iso(bed.last_observation))
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
        self._need(self.sepsis, "early-warning")
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
        holds the model lock. Which (:meth:`SepsisBed.take_due_hours`): with ``through``,
        every hour up to it; with ``before``, the earlier hours whose close time has
        passed; else, with ``due_only``, those whose close time has passed and that have
        had no observation for :data:`HOUR_QUIET_S`, and the empty hours of a live feed,
        or all. An hour that cannot be scored is logged and dropped: the others go on."""
        if self.sepsis is None:
            return []
        now, clock = _now(), time.monotonic()
        quiet = min(HOUR_QUIET_S, self.hour_close_after_s)
        by_clock = through is None and before is None and due_only
        due: list[tuple[str, SepsisBed, int, dict[str, list[float]]]] = []
        with self._queue_lock:
            for pid, bed in self._sepsis_beds.items():
                if only is not None and pid != str(only):
                    continue
                live = by_clock and bed.last_observation is not None
                hours = bed.take_due_hours(
                    now, clock, self.hour_close_after_s, quiet, due_only=due_only,
                    through=through, before=before,
                    empty_hours=MAX_EMPTY_HOURS_PER_TICK if live else 0,
                )  # fmt: skip
                due += [(pid, bed, h, held) for h, held in hours]
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
        self,
        pid: str,
        risk: HourRisk,
        drivers: list[RiskDriver],
        paged: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The event of an alarm onset; a :data:`REPEATED_SEPSIS_KIND` one when it falls in
        the lockout after ``paged`` (the patient's latest alarm that paged someone)."""
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
        lockout = None
        ack = (paged or {}).get("acknowledged")
        if paged is not None and within_lockout(
            int(paged.get("hour", -1)), bool(ack), risk.hour, self.sepsis_lockout_h
        ):
            until = int(paged["hour"]) + self.sepsis_lockout_h
            lockout = {"after": paged["seq"], "until_hour": until}
            message += (
                f" (a repeat within the {self.sepsis_lockout_h:g}-h lockout after alarm "
                f"{paged['seq']} at ICU hour {paged['hour']}, acknowledged by {ack['by']}: "
                "logged, pages no one)"
            )
        return {
            "source": "sepsis",
            "patient_id": pid,
            "kind": REPEATED_SEPSIS_KIND if lockout else "sepsis_risk",
            **({"lockout": lockout} if lockout else {}),
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
        "alarm_escalated" (``{"at", "seq"}`` once it was escalated, or None),
        "alarm_repeated" (the episode began in the lockout after an acknowledged alarm: it
        paged no one), "alarm_onset" (that onset's event, as logged: kept while the episode
        goes on, when the log has dropped it as old), "static"
        (the demographics given at admission, vitalgru names), "assembling" ({ICU hour
        being assembled from observations: {column: values so far}}), "last_scored_at" (when the
        latest hour was scored; None for hours taken up from a state file), "risk_max" and
        "risk_max_hour" (the stay's highest risk so far)}``. KeyError for a patient not
        on sepsis monitoring."""
        self._need(self.sepsis, "early-warning", change=False)
        pid = str(patient_id)
        with self._queue_lock:
            bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring")
            return bed.summary(pid)

    def sepsis_stay(self, patient_id: str) -> dict[str, Any]:
        """A sepsis patient's stay so far, for a clinician's page
        (:func:`vitalgru.reports.early_warning.stay_summary`): ``{"patient_id", "hours",
        "risks", "probabilities", "rejected", "values" ({vitalgru column: one value per
        hour}), "drivers" ({ICU hour an alarm episode began: what raised the risk}),
        "threshold"}``. KeyError for a patient not on sepsis monitoring."""
        self._need(self.sepsis, "early-warning", change=False)
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

    def update_sepsis_static(self, patient_id: str, static: Mapping[str, Any]) -> dict[str, Any]:
        """Change a sepsis patient's demographics (the hospital corrected a birth date or the
        sex: ``ADT^A08``): the values given replace those held, for the hours scored from
        now on (hours already scored keep their risks); values not given are kept. Returns
        the :meth:`sepsis_summary`. KeyError for a patient not admitted; ValueError, as for
        :meth:`admit_sepsis`, for a column or value that is not one."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        given = static_columns(static)
        with self._model_lock, self._queue_lock:  # not while an hour is being scored
            bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring")
            bed.static.update(given)
            self._journal("set_static", pid, dict(bed.static))
            return bed.summary(pid)

    def merge_sepsis(self, patient_id: str, into: str) -> dict[str, Any]:
        """Go on with a sepsis patient's stay under another identifier, when the hospital
        merges two records of one patient (``ADT^A40``: a temporary number into the
        patient's own). The hours, the network's state, the hours being assembled and the
        alarm episode going on carry over; events logged before keep the identifier they
        were logged under, and the log gets a ``patient_merged`` event (source ``ward``,
        ``merged_from``) saying so. Returns the :meth:`sepsis_summary` under ``into``.
        KeyError for a patient not on sepsis monitoring; ValueError when ``into`` has a stay
        of their own (two stays are not joined: discharge one first) or is the same id."""
        self._need(self.sepsis, "early-warning")
        old, new = str(patient_id), str(into)
        with self._model_lock, self._queue_lock:
            bed = self._merge_checked(self._sepsis_beds, old, new, "sepsis monitoring", "a stay")
            self.sepsis.rename(old, new)
            self._in_shadow(self._shadow_sepsis, lambda sh: sh.rename(old, new))
            del self._sepsis_beds[old]
            bed.risks = [replace(r, patient_id=new) for r in bed.risks]
            bed.peak = None if bed.peak is None else replace(bed.peak, patient_id=new)
            self._sepsis_beds[new] = bed
            self._journal("merge_sepsis", old, new)
            self._log_merge("sepsis", old, new, "the sepsis stay")
            return bed.summary(new)

    def discharge_sepsis(self, patient_id: str) -> dict[str, Any]:
        """Stop scoring a patient (the hours being assembled from observations are scored
        first, on what came); an alarm episode going on gets its ``alarm_ended`` event
        (``reason``: ``discharged``). Returns their final :meth:`sepsis_summary`."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        with self._model_lock:
            self._close_hours(pid, due_only=False)
            with self._queue_lock:
                self.sepsis.discharge(pid)  # KeyError when not admitted
                self._in_shadow(self._shadow_sepsis, lambda sh: sh.discharge(pid))
                bed = self._sepsis_beds.pop(pid)
                if bed.onset is not None:  # an episode going on ends with the stay: said
                    self._event({
                        "source": "ward", "patient_id": pid, "kind": "alarm_ended",
                        "ends": bed.onset["seq"], "reason": "discharged",
                        "message": "the patient left sepsis monitoring: the alarm episode "
                        f"that began at ICU hour {bed.onset.get('hour')} ends with it",
                    })  # fmt: skip
                self._journal("discharge_sepsis", pid)
        return {**bed.summary(pid), "discharged": True}
