"""The sepsis side of a :class:`~vitalgru.scoring.ward.Ward`: patients on hourly scoring,
their hours sent whole or assembled from observations as they arrive (held and closed by
:mod:`vitalgru.scoring.ward_sepsis_hours`), the alarm episodes and what raised the risk at
each onset.

:class:`SepsisWard` is a part of :class:`~vitalgru.scoring.ward.Ward` (its base class) and
uses the ward's locks, journal and event log; it is not used alone. What it keeps of each
patient, and which assembled hours are due, is :mod:`vitalgru.scoring.ward_sepsis_bed`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalgru.scoring.durations import Durations
from vitalgru.scoring.early_warning import HourRisk, RiskDriver
from vitalgru.scoring.patient_ids import check_patient_id
from vitalgru.scoring.ward_events import REPEATED_SEPSIS_KIND, _iso, _utc_now
from vitalgru.scoring.ward_sepsis_bed import SepsisBed, static_columns, with_static
from vitalgru.scoring.ward_sepsis_hours import (
    CLOCK_LEEWAY,
    HOUR_CLOSE_AFTER_S,
    HOUR_QUIET_S,
    SepsisHours,
)
from vitalgru.sepsis_display import OUTCOME, probability_text, risk_and_line, risk_rounded

__all__ = [
    "ALARM_DRIVERS", "HOUR_CLOSE_AFTER_S", "HOUR_QUIET_S", "MAX_HOUR_GAP", "MAX_STAY",
    "SepsisWard", "within_lockout",
]  # fmt: skip

logger = logging.getLogger("vitalgru.scoring.ward")

#: The longest ICU stay an admission time may give (longer stays exist, but an admission
#: time further back is a typing error far more often than a 3-month stay just admitted).
MAX_STAY = timedelta(days=90)

#: The most ICU hours a row sent whole may come after the patient's latest hour (scored or
#: being assembled): a jump further is a typing error far more often than a stay without a
#: row for that long (``ICULOS`` 5000 for 50 was scored after 4,950 hours without
#: measurements, and every right hour after it was refused as out of order, until a discharge
#: threw the stay away). A real longer gap is bridged by rows without measurements at most
#: this far apart. A stay's first row may come at any hour up to :data:`MAX_STAY` (a patient
#: put on scoring days into the stay).
MAX_HOUR_GAP = 72

#: Measurements named, at a sepsis alarm onset, as what raised the risk most
#: (:meth:`EarlyWarningMonitor.explain`).
ALARM_DRIVERS = 3


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


class SepsisWard(SepsisHours):
    """Hourly sepsis scoring of a ward's patients (the methods of
    :class:`~vitalgru.scoring.ward.Ward` that are about it; the ward holds the state)."""

    # set by Ward.__init__
    sepsis: Any
    hour_close_after_s: float
    sepsis_lockout_h: float
    sepsis_hour_seconds: Durations
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
        :meth:`sepsis_hour_at` counts the hours. ValueError when already admitted, for an
        id that cannot name a patient (:func:`~vitalgru.scoring.patient_ids.check_patient_id`),
        for a static column that is not one or a value that is not a number, or a time without
        its UTC offset, in the future or more than :data:`MAX_STAY` back. "Now" is the ward's
        clock (:meth:`sepsis_now`), the one its hours are counted and closed by."""
        self._need(self.sepsis, "early-warning")
        pid = check_patient_id(str(patient_id))
        given = static_columns(static or {})
        if admitted_at is not None and admitted_at.tzinfo is None:
            raise ValueError(f"the admission time {admitted_at.isoformat()} has no UTC offset")
        # the ward's clock, the one its hours are counted and closed by (a replay's or a
        # test's moved clock): the real one refused a stay that clock had just admitted
        now = self.sepsis_now()
        if admitted_at is not None and admitted_at > now + CLOCK_LEEWAY:
            raise ValueError(f"the admission time {admitted_at.isoformat()} is in the future")
        if admitted_at is not None and admitted_at < now - MAX_STAY:
            # every hour since is scored when the first observation comes, under the lock
            # every feed waits on: a mistyped year stalled the ward for minutes
            raise ValueError(f"the admission time {admitted_at.isoformat()} is more than "
                             f"{MAX_STAY.days} days ago: check the year")  # fmt: skip
        at = _iso(now if admitted_at is None else admitted_at.astimezone(UTC))
        with self._model_lock, self._queue_lock:
            self.sepsis.admit(pid)  # ValueError when already admitted
            self._in_shadow(self._shadow_sepsis, lambda sh: sh.admit(pid))
            # "nothing came yet" is measured from now, not from a stay dated back
            self._sepsis_beds[pid] = SepsisBed(at, given, taken_at=now)
            self._journal("admit_sepsis", pid, at, given, _iso(now))

    def add_hour(self, patient_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Score a patient's next hour (``{column: value}``, Challenge-2019 or vitalgru
        names, ``ICULOS`` required). Returns the hour's risk (:class:`HourRisk` as a dict,
        with ``alarm_started``: an alarm episode began this hour, also logged as an
        event naming the measurements that raised the risk most). KeyError for a patient not admitted; ValueError for a row the monitor
        refuses (hours out of order, unknown columns, text), and for an hour more than
        :data:`MAX_HOUR_GAP` after the patient's latest (or, the stay's first, past
        :data:`MAX_STAY`): nothing is scored."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        with self._model_lock:
            with self._queue_lock:
                bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring; admit them first")
            # the row's hour read as the monitor reads it (iculos, "3"), and the row refused
            # before anything changes: a row refused after the held hours were closed had
            # closed them early, and one whose hour was missed here lost them
            hour = self.sepsis.row_hour(pid, row)
            self._plausible_next(pid, bed, hour)
            if bed.pending:  # hours assembled before it are due first
                if hour in bed.pending:
                    raise ValueError(
                        f"patient {pid!r}: ICU hour {hour} is being assembled from "
                        "observations; send its values as observations, or close it first"
                    )
                self._close_hours(pid, through=hour - 1)
            out = self._score_hour(pid, bed, row)
            with self._queue_lock:
                bed.last_row_at = self.sepsis_now()  # the feed is alive (kept over a restart)
                self._journal("row_arrived", pid, _iso(bed.last_row_at), int(out["hour"]))
            return out

    def _plausible_next(self, pid: str, bed: SepsisBed, hour: int) -> None:
        """ValueError when a row's ICU ``hour`` jumps implausibly far (:data:`MAX_HOUR_GAP`)
        past the patient's latest hour, or a stay's first one lies past :data:`MAX_STAY`."""
        with self._queue_lock:
            held = [bed.last.hour] if bed.last is not None else []
            latest = max([*held, *bed.pending], default=None)
        if latest is None:
            if hour > MAX_STAY.days * 24:
                raise ValueError(
                    f"patient {pid!r}: ICULOS {hour} as the stay's first hour is more than "
                    f"{MAX_STAY.days} days into it: check it; nothing was scored"
                )
        elif hour > latest + MAX_HOUR_GAP:
            raise ValueError(
                f"patient {pid!r}: ICULOS {hour} is {hour - latest} hours after the latest "
                f"({latest}): a jump of more than {MAX_HOUR_GAP} hours is taken for a typing "
                "error; nothing was scored. After a longer gap send rows without "
                f"measurements at most {MAX_HOUR_GAP} hours apart first"
            )

    def _score_hour(self, pid: str, bed: SepsisBed, row: Mapping[str, Any]) -> dict[str, Any]:
        """Score one hour of a bed (the caller holds the model lock)."""
        t0 = time.perf_counter()
        row = with_static(row, bed.static)
        (risk,) = self.sepsis.push({pid: row})
        self._in_shadow(self._shadow_sepsis, lambda sh: sh.score({pid: row}, [risk]))
        started = risk.alarm and not bed.in_alarm
        drivers = self.sepsis.explain(pid, ALARM_DRIVERS) if started else []
        self.sepsis_hour_seconds.add(time.perf_counter() - t0)
        with self._queue_lock, self._together():  # the hour and its event, or neither
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
                    score, line = risk_and_line(risk.risk, self.sepsis.threshold)
                    self._event({
                        "source": "ward", "patient_id": pid, "kind": "alarm_ended",
                        "ends": bed.onset["seq"], "alarm_kind": bed.onset["kind"],
                        "hour": risk.hour,
                        "risk": risk_rounded(risk.risk, self.sepsis.threshold),
                        "message": f"sepsis risk score {score} fell below the alarm line "
                        f"{line} at ICU hour {risk.hour}: the alarm episode that began at ICU "
                        f"hour {bed.onset.get('hour')} is over",
                    })  # fmt: skip
                bed.onset = None
        return {
            **asdict(risk), "rejected": list(risk.rejected), "outside": list(risk.outside),
            "alarm_started": started,
        }  # fmt: skip

    def _sepsis_alarm_event(
        self,
        pid: str,
        risk: HourRisk,
        drivers: list[RiskDriver],
        paged: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The event of an alarm onset; a :data:`REPEATED_SEPSIS_KIND` one when it falls in
        the lockout after ``paged`` (the patient's latest alarm that paged someone)."""
        score, line = risk_and_line(risk.risk, self.sepsis.threshold)
        message = f"sepsis risk score {score} reached the alarm line {line} at ICU hour {risk.hour}"
        if risk.probability is not None:
            message += f" (estimated probability of {OUTCOME} {probability_text(risk.probability)})"
        if drivers:
            message += "; raised most by " + "; ".join(d.describe() for d in drivers)
        if risk.outside:  # an extrapolation: said where the alarm is read
            message += "; outside the model's training population: " + "; ".join(risk.outside)
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
            "risk": risk_rounded(risk.risk, self.sepsis.threshold),
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
        latest hour was scored; None for hours taken up from a state file), "last_data_at"
        (when the feed last sent a row or an observation; None when not known),
        "no_data_since" (that time, or, when nothing came yet, when the gateway took the
        admission (not the stay's start, which may be dated back), once nothing has come
        for longer than :data:`~vitalgru.sepsis_display.NO_DATA_AFTER`; else None), "risk_max"
        and "risk_max_hour" (the stay's highest risk so far), "hours_outside_population"
        (hours scored outside the model's training population: ``last_hour``'s ``outside``
        says why)}``. KeyError for a patient not on sepsis monitoring."""
        self._need(self.sepsis, "early-warning", change=False)
        pid = str(patient_id)
        now = self.sepsis_now()
        with self._queue_lock:
            bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring")
            return bed.summary(pid, now)

    def sepsis_stay(self, patient_id: str) -> dict[str, Any]:
        """A sepsis patient's stay so far, for a clinician's page
        (:func:`vitalgru.reports.early_warning.stay_summary`): ``{"patient_id", "hours",
        "risks", "probabilities", "rejected", "outside" (per hour, what put it outside the
        model's training population), "values" ({vitalgru column: one value per
        hour}), "drivers" ({ICU hour an alarm episode began: what raised the risk}),
        "threshold", "last_scored_at", "no_data_since" (as in :meth:`sepsis_summary`)}``.
        KeyError for a patient not on sepsis monitoring."""
        self._need(self.sepsis, "early-warning", change=False)
        pid = str(patient_id)
        with self._model_lock, self._queue_lock:
            bed = self._sepsis_beds.get(pid)
            if bed is None:
                raise KeyError(f"patient {pid!r} is not on sepsis monitoring")
            values = self.sepsis.stay_values(pid)
            risks = list(bed.risks)
            scored_at, silent = bed.last_scored_at, bed.no_data_since(self.sepsis_now())
            drivers = {h: list(d) for h, d in bed.drivers.items()}
        return {
            "patient_id": pid,
            "hours": [r.hour for r in risks],
            "risks": [r.risk for r in risks],
            "probabilities": [r.probability for r in risks],
            "rejected": [list(r.rejected) for r in risks],
            "outside": [list(r.outside) for r in risks],
            "values": {c: v for c, v in values.items() if c != "hour"},
            "drivers": drivers,
            "threshold": self.sepsis.threshold,
            "last_scored_at": scored_at,
            "no_data_since": silent,
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
            return bed.summary(pid, self.sepsis_now())

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
            with self._together():  # the move and its event, or neither
                self._journal("merge_sepsis", old, new)
                self._log_merge("sepsis", old, new, "the sepsis stay")
            return bed.summary(new, self.sepsis_now())

    def discharge_sepsis(self, patient_id: str) -> dict[str, Any]:
        """Stop scoring a patient (the hours being assembled from observations are scored
        first, on what came); an alarm episode going on gets its ``alarm_ended`` event
        (``reason``: ``discharged``). Returns their final :meth:`sepsis_summary`."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        with self._model_lock:
            self._close_hours(pid, due_only=False)
            with self._queue_lock, self._together():  # the end and the discharge, or neither
                self.sepsis.discharge(pid)  # KeyError when not admitted
                self._in_shadow(self._shadow_sepsis, lambda sh: sh.discharge(pid))
                bed = self._sepsis_beds.pop(pid)
                if bed.onset is not None:  # an episode going on ends with the stay: said
                    self._event({
                        "source": "ward", "patient_id": pid, "kind": "alarm_ended",
                        "ends": bed.onset["seq"], "alarm_kind": bed.onset["kind"],
                        "reason": "discharged",
                        "message": "the patient left sepsis monitoring: the alarm episode "
                        f"that began at ICU hour {bed.onset.get('hour')} ends with it",
                    })  # fmt: skip
                self._journal("discharge_sepsis", pid)
        return {**bed.summary(pid), "discharged": True}
