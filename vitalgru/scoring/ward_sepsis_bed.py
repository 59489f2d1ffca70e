"""What a ward keeps of one patient on sepsis monitoring (:class:`SepsisBed`): the admission
and demographics, the hours scored and the alarm episodes, and the ICU hours being assembled
from observations as they arrive, with which of them are due to be scored; and how the
demographics and observations a feed sends are read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from vitalgru.io.psv import MEASUREMENT_COLUMNS, PSV_COLUMNS, STATIC_COLUMNS
from vitalgru.scoring.early_warning import HourRisk
from vitalgru.scoring.ward_events import REPEATED_SEPSIS_KIND
from vitalgru.sepsis_display import NO_DATA_AFTER

__all__ = ["SepsisBed", "measurements", "static_columns", "with_static"]


def static_columns(static: Mapping[str, Any]) -> dict[str, float]:
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


def measurements(values: Mapping[str, Any]) -> dict[str, list[float]]:
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


#: The key, before a column's name, of the preliminary values held for an hour being
#: assembled (apart from the others, and in the state file so, until a final result of the
#: measurement replaces them).
PRELIMINARY = "preliminary:"


def pooled(held: Mapping[str, list[float]]) -> dict[str, list[float]]:
    """The values held for an hour, each column's preliminary values joined to its others:
    what the hour is scored on."""
    out: dict[str, list[float]] = {}
    for key, xs in held.items():
        out.setdefault(key.removeprefix(PRELIMINARY), []).extend(xs)
    return out


def with_static(row: Mapping[str, Any], static: Mapping[str, float]) -> Mapping[str, Any]:
    """``row`` with the admission's demographics where it does not give them itself (a
    null in the row is not giving one)."""
    if not static:
        return row
    sent = {PSV_COLUMNS.get(k, k) for k, v in row.items() if v is not None}
    out = {k: v for k, v in row.items() if v is not None or PSV_COLUMNS.get(k, k) not in static}
    out.update({c: v for c, v in static.items() if c not in sent})
    return out


@dataclass
class SepsisBed:
    """One patient on sepsis monitoring (the ward's locks guard it)."""

    admitted_at: str
    static: dict[str, float] = field(default_factory=dict)  # given at admission (vitalgru names)
    last_scored_at: str | None = None  # wall clock of the latest hour (None when replayed)
    in_alarm: bool = False
    episodes: int = 0
    onset: dict[str, Any] | None = None  # the logged onset of the episode going on
    paged: dict[str, Any] | None = None  # the latest onset that paged (a lockout counts from it)
    peak: HourRisk | None = None  # the highest risk of the stay so far
    risks: list[HourRisk] = field(default_factory=list)  # every hour scored, in order
    drivers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # at each onset
    # ICU hours being assembled from observations: hour -> {column: values so far}
    pending: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    # hour -> the clock of its latest observation (the hours' clock, CLOCK_BOOTTIME where
    # there is one: ward_sepsis_hours._clock)
    touched: dict[int, float] = field(default_factory=dict)
    last_observation: datetime | None = None  # wall clock of the latest observation taken
    # the hours' clock then, as in touched (None when taken by the process before a restart)
    observed_clock: float | None = None
    last_row_at: datetime | None = None  # wall clock of the latest row sent whole (kept)
    # wall clock when the gateway took the admission (not when the stay began: that can be
    # dated back), or took the bed up at a restart when the state file did not keep it
    taken_at: datetime | None = None
    # wall clock of the restart that took the bed up from a file that did not keep when its
    # feed last sent anything (one written before that was kept)
    restored_at: datetime | None = None

    @property
    def last(self) -> HourRisk | None:
        return self.risks[-1] if self.risks else None

    def scored(self, risk: HourRisk, at: str | None) -> None:
        """Take the stay's next scored hour (its alarm episodes are the caller's)."""
        self.risks.append(risk)
        self.last_scored_at, self.in_alarm = at, risk.alarm
        if self.peak is None or risk.risk > self.peak.risk:  # kept as it goes: read often
            self.peak = risk

    def last_data(self) -> datetime | None:
        """When the feed last sent something: a row sent whole or an observation (None when
        nothing came since the admission, or not kept in an older state file)."""
        sent = [t for t in (self.last_row_at, self.last_observation) if t is not None]
        return max(sent, default=None)

    def no_data_since(self, now: datetime | None) -> str | None:
        """When the feed last sent something (or, when nothing came yet, when the gateway
        took the admission: :attr:`taken_at`, not the stay's start, which may be dated back
        hours), if that is more than :data:`NO_DATA_AFTER` before ``now``; else None
        (and without ``now``). Where a state file did not keep when the feed last sent
        anything, it counts from the restart (:attr:`restored_at`)."""
        last = self.last_data()
        if last is None:
            last = self.taken_at if not self.risks else self.restored_at
        if now is None or last is None or now - last <= NO_DATA_AFTER:
            return None
        return last.isoformat()

    def summary(self, pid: str, now: datetime | None = None) -> dict[str, Any]:
        """What :meth:`~vitalgru.scoring.ward.Ward.sepsis_summary` says of the bed, judged
        stale or not at ``now``."""
        last = self.last_data()
        return {
            "patient_id": pid,
            "admitted_at": self.admitted_at,
            "last_hour": None if self.last is None else asdict(self.last),
            "last_scored_at": self.last_scored_at,
            "last_data_at": None if last is None else last.isoformat(),
            "no_data_since": self.no_data_since(now),
            "risk_max": None if self.peak is None else self.peak.risk,
            "risk_max_hour": None if self.peak is None else self.peak.hour,
            "hours_outside_population": sum(bool(r.outside) for r in self.risks),
            "in_alarm": self.in_alarm,
            "alarm_episodes": self.episodes,
            "alarm_drivers": list(self.onset.get("drivers", [])) if self.onset else [],
            "alarm_seq": self.onset["seq"] if self.onset else None,
            "alarm_acknowledged": self.onset.get("acknowledged") if self.onset else None,
            "alarm_escalated": self.onset.get("escalated") if self.onset else None,
            "alarm_repeated": bool(self.onset and self.onset.get("kind") == REPEATED_SEPSIS_KIND),
            "alarm_onset": None if self.onset is None else dict(self.onset),
            "static": dict(self.static),
            "assembling": {
                h: {c: len(xs) for c, xs in pooled(m).items()}
                for h, m in sorted(self.pending.items())
            },
        }

    def take_due_hours(
        self,
        now: datetime,
        clock: float,
        close_after_s: float,
        quiet_s: float,
        *,
        due_only: bool = True,
        through: int | None = None,
        before: int | None = None,
        empty_hours: int = 0,
    ) -> list[tuple[int, dict[str, list[float]]]]:
        """Take the hours being assembled that are due, in order (``[(ICU hour, {column:
        values})]``), out of :attr:`pending`. Which: with ``through``, every hour up to
        it; with ``before`` (an observation of that hour came: the sender has moved on),
        the earlier hours that ended ``close_after_s`` ago; else, with ``due_only``, those
        that ended ``close_after_s`` ago and have had no observation for ``quiet_s`` (a
        past hour being sent after the fact, part by part, is not cut in the middle), or
        all. A later hour waits for the earlier ones.

        ``empty_hours`` > 0 (a live feed, closing by the clock): when nothing is pending
        after that, up to that many hours that ended after the latest observation and
        brought nothing are taken too (``{}``), so the risk goes on as the hours pass (a
        stay sent after the fact is not: its hours had ended before its messages came).
        ``now``: the wall clock; ``clock``: the clock :attr:`touched` and
        :attr:`observed_clock` were read on (``CLOCK_BOOTTIME`` where there is one, which
        counts a suspend; else :func:`time.monotonic`). Closing by the clock
        (``due_only``, neither ``through`` nor ``before``), an hour must have ended on that
        clock too, counted from the latest observation when this process took it
        (:attr:`observed_clock`): a wall clock stepped forward after it (NTP correcting it,
        a clock set by hand, a year ahead) closed the hour going on at once, and every hour
        it skipped as empty, and every observation of them after was refused as late."""
        start = datetime.fromisoformat(self.admitted_at)
        reach = now  # how far the hours may have ended: as far as time has passed since
        if self.observed_clock is not None and self.last_observation is not None:
            passed = timedelta(seconds=max(0.0, clock - self.observed_clock))
            reach = min(now, self.last_observation + passed)
        upto = now if before is not None else reach  # a later hour's observation: it has
        out: list[tuple[int, dict[str, list[float]]]] = []
        for h in sorted(self.pending):
            ended = upto >= start + timedelta(seconds=h * 3600 + close_after_s)
            if through is not None:
                go = h <= through
            elif before is not None:
                go = h < before and ended
            else:
                go = not due_only or (ended and clock - self.touched.get(h, 0) >= quiet_s)
            if not go:
                break
            self.touched.pop(h, None)
            out.append((h, self.pending.pop(h)))
        if empty_hours > 0 and not self.pending and self.last_observation is not None:
            h = max([self.last.hour if self.last is not None else 0] + [d[0] for d in out]) + 1
            grace = timedelta(seconds=close_after_s)
            for _ in range(empty_hours):
                end = start + timedelta(hours=h)
                if reach < end + grace or end <= self.last_observation:
                    break
                out.append((h, {}))
                h += 1
        return out
