"""The hours of a sepsis patient assembled from observations as they arrive (a monitor's vital
signs every few minutes, a laboratory result when it is ready): which ICU hour a time falls
in, the values held for each hour, and the hours closed and scored when they are due.

:class:`SepsisHours` is a part of :class:`~vitalgru.scoring.ward.Ward` (through
:class:`~vitalgru.scoring.ward_sepsis.SepsisWard`, which scores the hours) and uses the
ward's locks, journal and beds; it is not used alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalgru.dsp.vitals import impossible, plausible_mean
from vitalgru.errors import ConflictError
from vitalgru.scoring.ward_events import _iso
from vitalgru.scoring.ward_sepsis_bed import PRELIMINARY, SepsisBed, measurements, pooled
from vitalgru.scoring.ward_shadows import WardShadows

__all__ = [
    "CLOCK_LEEWAY", "HOUR_CLOSE_AFTER_S", "HOUR_QUIET_S", "MAX_EMPTY_HOURS_PER_TICK",
    "SepsisHours",
]  # fmt: skip

logger = logging.getLogger("vitalgru.scoring.ward")

#: Seconds after an ICU hour ends during which its observations may still arrive (a blood
#: gas drawn at :55 is resulted minutes later); then the hour is scored on what came. An
#: observation of an hour already scored is refused as late.
HOUR_CLOSE_AFTER_S = 10 * 60.0

#: A closed hour whose observations are still arriving (a stay sent after the fact, part by
#: part) is scored once none has come for this long (s), or when one of a later hour comes.
HOUR_QUIET_S = 60.0

#: How far ahead of this clock a sender's may be: an observation's time, or the hour it is
#: sent for, up to this far in the future is taken.
CLOCK_LEEWAY = timedelta(minutes=5)

#: Most hours without observations one tick scores for one patient (a gateway that was
#: stopped for a day catches up over a few ticks, not in one).
MAX_EMPTY_HOURS_PER_TICK = 24


def _now() -> datetime:
    """The wall clock the sepsis hours close on (one place, for tests to move)."""
    return datetime.now(UTC)


def _clock() -> float:
    """The monotonic clock (s) that bounds how many hours without observations the wall
    clock may close (one place, for tests to move with :func:`_now`). Linux's
    ``CLOCK_BOOTTIME`` where there is one: it counts a suspend, as the patient's hours do,
    where ``time.monotonic`` stops (a machine resumed after 3 h would close the hours it
    slept through only at the next observation); steps of the wall clock move neither."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.monotonic() if boottime is None else time.clock_gettime(boottime)


class SepsisHours(WardShadows):
    """Observations held in their ICU hours until the hours close (the methods of
    :class:`~vitalgru.scoring.ward.Ward` that are about it; the ward holds the state)."""

    # set by Ward.__init__
    sepsis: Any
    hour_close_after_s: float
    _sepsis_beds: dict[str, SepsisBed]

    def _score_hour(self, pid: str, bed: SepsisBed, row: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError  # SepsisWard's: the hour scored as a row sent whole

    def sepsis_now(self) -> datetime:
        """Now (UTC) on the clock the ward counts and closes ICU hours by: when a message
        with local times arrived, which tells the two times the hour a clock goes back
        names apart (:func:`vitalgru.io.hl7v2.hl7_time`)."""
        return _now()

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

    def _hour_begun(self, pid: str, bed: SepsisBed, hour: int) -> None:
        """ValueError when ICU ``hour`` of a bed has not begun on this clock."""
        ahead = _now() + CLOCK_LEEWAY - datetime.fromisoformat(bed.admitted_at)
        now = max(1, int(ahead.total_seconds() // 3600) + 1)
        if hour > now:
            raise ValueError(
                f"patient {pid!r}: ICU hour {hour} has not begun (the stay began at "
                f"{bed.admitted_at}: hour {now} is going on); nothing was taken"
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
        if when > _now() + CLOCK_LEEWAY:
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

    def add_observations(
        self,
        patient_id: str,
        hour: int,
        values: Mapping[str, Any],
        replace: Sequence[str] = (),
        admitted_at: str | None = None,
        preliminary: Mapping[str, Any] | None = None,
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
        replace instead of joining; ``preliminary``: preliminary values (as ``values``),
        held apart until the hour closes (it is scored on them with the others) or a
        final result of the measurement comes: any value of it in ``values`` replaces the
        preliminary ones held (a preliminary lactate of 6.0 and the final 2.0 were
        averaged). Returns ``{"patient_id", "hour",
        "pending": True, "closes_at" (ISO time), "measurements" ({column: values held for
        the hour}), "scored" (the risks of earlier hours this call closed)}``. KeyError for
        a patient not admitted; ValueError for an hour already scored (a late observation:
        it is not taken), a column that is not a measurement, a value that is not a
        number, or an hour that has not begun (counted from the admission, the sender's
        clock up to :data:`CLOCK_LEEWAY` ahead: an hour mistyped far ahead, once closed, was
        scored after thousands of hours without measurements, and every right hour after
        it refused). ``admitted_at``: the stay the caller counted ``hour`` in
        (:meth:`sepsis_admitted_at`); ConflictError, nothing taken, when the patient was
        discharged and admitted again since (the old stay's values would land in the new
        one, at an hour of the old)."""
        self._need(self.sepsis, "early-warning")
        pid = str(patient_id)
        if isinstance(hour, bool) or not isinstance(hour, int) or hour < 1:
            raise ValueError(f"the ICU hour must be a whole number >= 1, got {hour!r}")
        given = measurements(values)
        early = measurements(preliminary or {})
        # the columns a correction replaces, by vitalgru name (checked, as ``values`` is,
        # before anything changes)
        fixed = set(measurements(dict.fromkeys(replace, 0.0)))
        with self._model_lock:
            with self._queue_lock:  # before the earlier hours are closed for it
                bed = self._sepsis_beds.get(pid)
                if bed is not None:
                    self._same_stay(pid, bed, admitted_at)
                    self._hour_begun(pid, bed, hour)
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
                    held.pop(PRELIMINARY + col, None)  # a final result replaces those
                    if col in fixed:
                        held[col] = list(xs)  # a correction replaces what it corrects
                    else:
                        held.setdefault(col, []).extend(xs)
                for col, xs in early.items():
                    held.setdefault(PRELIMINARY + col, []).extend(xs)
                bed.touched[hour] = bed.observed_clock = _clock()
                bed.last_observation = _now()
                self._journal("pending_hour", pid, hour, held, _iso(bed.last_observation))
                closes = datetime.fromisoformat(bed.admitted_at) + timedelta(
                    seconds=hour * 3600 + self.hour_close_after_s
                )
                counts = {c: len(xs) for c, xs in pooled(held).items()}
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
        now, clock = _now(), _clock()
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
                due += [(pid, bed, h, pooled(held)) for h, held in hours]
        out = []
        for pid, bed, h, held in due:
            row: dict[str, Any] = {c: plausible_mean(c, xs) for c, xs in held.items() if xs}
            for c, xs in held.items():  # impossible readings beside possible ones: left out
                left = impossible(c, xs)
                if left and len(left) < len(xs):
                    logger.warning("ward: patient %s ICU hour %d: %s reading(s) %s left out of "
                                   "the hour's value as impossible", pid, h, c, left)  # fmt: skip
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
