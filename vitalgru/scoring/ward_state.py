"""What a ward's state file holds, read back for a restart (:func:`read_state`), and what of
it could not be read (:class:`StateDamage`).

A state file is written row by row as the ward runs (:mod:`vitalgru.scoring.ward_journal`).
A row can still be damaged: a disk that fails under it, a copy cut short, an edit by hand.
One damaged row must not cost the patients whose rows are good: the gateway is what watches
them. So the file is read table by table and row by row; a row that cannot be read is left
out and said (a :class:`StateDamage` naming its table, its patient when it has one and
why), and everything else is taken up. What leaving a row out means, by table:

- an ECG bed whose rate or admission time cannot be read: that patient is not taken up
  (their feed is refused as not admitted until they are admitted again); beat counts that
  cannot be read start from nothing;
- a sepsis bed that cannot be read: that patient is not taken up; one stored hour that
  cannot be read: the stay is scored again without it, as an hour in which nothing was
  measured (the hours after it keep their ICU hour); demographics: scored without them;
  an hour being assembled, or when the latest observation came: that part is lost; when
  the gateway took the admission: "nothing came yet" is counted from the restart;
- an event or an alarm strip: left out of the log (the numbering goes on after the
  newest number kept); the models the ward last ran with (or one task's of them, kept
  as something other than a model's name): unknown.

A table that SQLite itself cannot read to the end (a damaged page) keeps the rows read before
the damage. A file that is not a ward state at all, or of another schema version, is refused
when it is opened (:func:`~vitalgru.scoring.ward_journal_file.open_state_file`), not read here.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["EcgAdmission", "SepsisAdmission", "StateDamage", "WardState", "read_state"]

#: What a row's parse may raise when the row is damaged.
_ROW_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)


@dataclass(frozen=True)
class EcgAdmission:
    patient_id: str
    fs: float
    admitted_at: str  # ISO 8601, UTC
    received_s: float
    counts: dict[str, int]
    memory: bytes | None = None  # PatientMemory.to_bytes(), when one was kept
    memory_saved_at: str | None = None
    shadow_memory: bytes | None = None  # the shadow model's, when one ran
    next_index: int | None = None  # the index the feed's next chunk should start at
    next_at: str | None = None  # ISO 8601, UTC: that index on the wall clock (stream time)


@dataclass(frozen=True)
class SepsisAdmission:
    patient_id: str
    admitted_at: str
    hours: list[dict[str, Any]]  # the rows scored, in order, as they were sent (less nulls)
    static: dict[str, float] = field(default_factory=dict)  # demographics given at admission
    # ICU hours being assembled from observations: hour -> {column: values so far}
    pending: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    last_observation: str | None = None  # when the latest observation arrived (ISO, UTC)
    hour_keys: list[int] = field(default_factory=list)  # each row's hour in the file
    # when the gateway took the admission (ISO, UTC); None in a file from before it was kept
    taken_at: str | None = None
    # when the feed last sent a whole row (ISO, UTC); None: none yet, or not kept
    last_row_at: str | None = None


@dataclass(frozen=True)
class StateDamage:
    """One row, or the rest of one table, that could not be read.

    ``key``: the row's primary key as ``{column: value}`` (empty when SQLite could not read
    on in the table, which is then cut short there, or when the row was read but refused
    later); ``patient_id``: whose it is, when it is a patient's; ``lost``: what leaving it
    out costs, in words.
    """

    table: str
    key: dict[str, Any]
    patient_id: str | None
    lost: str
    reason: str
    # the row mended by setting these columns, where the rest of it was taken up (else the
    # row goes: see WardJournal.set_aside)
    mend: dict[str, Any] | None = None

    @property
    def message(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in self.key.items())
        return f"{self.table}{f' ({where})' if where else ''}: {self.lost} ({self.reason})"


@dataclass(frozen=True)
class WardState:
    """Everything a journal holds, for :meth:`Ward.restore`."""

    ecg: list[EcgAdmission]
    sepsis: list[SepsisAdmission]
    events: list[dict[str, Any]]  # the newest ``keep_events``, oldest first
    last_seq: int
    models: dict[str, str]  # the models the gateway last ran with
    strips: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (seq, strip)
    damaged: list[StateDamage] = field(default_factory=list)  # what could not be read

    @property
    def empty(self) -> bool:
        return not (self.ecg or self.sepsis or self.last_seq)


def _utc_time(text: Any) -> str:
    """An ISO 8601 time as kept (ValueError unless it reads as one with its offset)."""
    if datetime.fromisoformat(str(text)).tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return str(text)


def _positive(value: Any, low: float | None = None) -> float:
    """A finite number > 0 (or >= ``low``) as kept (ValueError else)."""
    v = float(value)
    if not (math.isfinite(v) and (v > 0 if low is None else v >= low)):
        raise ValueError(f"{value!r} is out of range")
    return v


def _patient(value: Any) -> str:
    """A patient id as kept (TypeError unless non-empty text)."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"a patient id kept as {value!r}")
    return value


def _event(text: Any, seq: int) -> dict[str, Any]:
    """An event as kept under its number (ValueError unless it is the event of that number)."""
    event = _json_object(text)
    if event.get("seq") != seq:
        raise ValueError(f"the event kept under {seq} says it is {event.get('seq')!r}")
    # what a restart reads of it: a damaged one is this row's loss, not the whole ward's
    if "received_at" in event:
        datetime.fromisoformat(str(event["received_at"]))
    for key in ("ends", "hour"):
        if event.get(key) is not None:
            int(event[key])
    if not isinstance(event.get("drivers", []), list):
        raise TypeError("the event's drivers are not a list")
    return event


def _one(values: Iterator[Any], default: Any) -> Any:
    """The value of a key's one row (the last, were there more), or ``default`` when none
    could be read."""
    got = list(values)
    return got[-1] if got else default


def _json_object(text: Any) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError(f"a JSON object was kept as {type(value).__name__}")
    return value


class _Undecodable:
    """Text SQLite holds that is not UTF-8 (read as this, so that the row, not the rest of its
    table, is what is lost: every parse of it fails)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"<text that is not UTF-8: {self.raw[:20]!r}>"


def _text(raw: bytes) -> str | _Undecodable:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Undecodable(raw)


class _Reader:
    """Reads one table's rows, noting what cannot be read instead of raising."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.damaged: list[StateDamage] = []

    def rows(
        self,
        table: str,
        sql: str,
        params: tuple = (),
        patient_id: str | None = None,
        lost: str = "the rest of the table",
    ) -> list[tuple]:
        """The rows of ``sql`` (on ``table``); those before a damaged page when SQLite
        cannot read on (the damage noted)."""
        got: list[tuple] = []
        try:
            cursor = self.db.execute(sql, params)
            while (row := cursor.fetchone()) is not None:
                got.append(row)
        except sqlite3.DatabaseError as e:
            self.damaged.append(StateDamage(table, {}, patient_id, lost, str(e)))
        return got

    def parse(
        self,
        table: str,
        key: dict[str, Any],
        patient_id: str | None,
        lost: str,
        read: Callable[[], Any],
        mend: dict[str, Any] | None = None,
    ) -> Iterator[Any]:
        """``read()``'s value, or nothing when the row is damaged (noted)."""
        try:
            yield read()
        except _ROW_ERRORS as e:
            self.damaged.append(
                StateDamage(table, key, patient_id, lost, f"{type(e).__name__}: {e}", mend)
            )

    def each(
        self,
        table: str,
        sql: str,
        params: tuple,
        patient_id: str | None,
        rest: str,
        key: Callable[..., dict[str, Any]],
        lost: Callable[..., str],
        read: Callable[..., Any],
    ) -> Iterator[Any]:
        """``read(*row)`` of each row of ``sql`` that can be read: :meth:`rows` (``rest``:
        what a damaged page costs, ``patient_id``: whose rows they are) then :meth:`parse`
        of each row (``key(*row)``, its ``patient_id`` when it has one; ``lost(*row)``)."""
        for row in self.rows(table, sql, params, patient_id, rest):
            k = key(*row)
            yield from self.parse(table, k, k.get("patient_id", patient_id), lost(*row),
                                  lambda row=row: read(*row))  # fmt: skip


def _ecg(r: _Reader) -> list[EcgAdmission]:
    kept: dict[tuple[str, str], tuple[bytes, str]] = {}
    for pid, mon, m, at in r.each(
        "ecg_memory",
        "SELECT patient_id, monitor, memory, saved_at FROM ecg_memory",
        (),
        None,
        "the rest of the table",
        key=lambda pid, mon, *_: {"patient_id": pid, "monitor": mon},
        lost=lambda *_: "the network's memory of the patient (labelling starts afresh)",
        read=lambda pid, mon, m, at: (pid, mon, bytes(m), _utc_time(at)),
    ):
        kept[(pid, mon)] = (m, at)
    out = []
    for pid, fs, at, rs, c, nxt, nxt_at in r.rows(
        "ecg_beds",
        "SELECT patient_id, fs, admitted_at, received_s, counts, next_index, next_at "
        "FROM ecg_beds ORDER BY rowid",
        lost="the ECG patients from there on (not taken up)",
    ):
        key = {"patient_id": pid}
        for bed in r.parse(
            "ecg_beds",
            key,
            pid,
            "the ECG admission (not taken up)",
            lambda pid=pid, fs=fs, at=at, rs=rs: (
                _patient(pid),
                _positive(fs),
                _utc_time(at),
                _positive(rs, 0.0),
            ),
        ):
            counts: dict[str, int] = {}
            for value in r.parse(
                "ecg_beds",
                key,
                pid,
                "the beat counts (counted afresh)",
                lambda c=c: {str(k): int(v) for k, v in _json_object(c).items()},
                {"counts": "{}"},
            ):
                counts = value
            m, m_at = kept.get((pid, "champion"), (None, None))
            shadow, _ = kept.get((pid, "shadow"), (None, None))
            index = nxt if isinstance(nxt, int) and nxt >= 0 else None  # damaged: unindexed
            try:  # damaged or not kept: the stream after the restart starts at the restart
                next_at = None if nxt_at is None else _utc_time(nxt_at)
            except ValueError:
                next_at = None
            out.append(EcgAdmission(*bed, counts, m, m_at, shadow, index, next_at))
    return out


def _sepsis(r: _Reader) -> list[SepsisAdmission]:
    out = []
    for pid, at in r.rows(
        "sepsis_beds",
        "SELECT patient_id, admitted_at FROM sepsis_beds ORDER BY rowid",
        lost="the sepsis patients from there on (not taken up)",
    ):
        admitted = list(
            r.parse(
                "sepsis_beds",
                {"patient_id": pid},
                pid,
                "the sepsis admission (not taken up)",
                lambda pid=pid, at=at: (_patient(pid), _utc_time(at))[1],
            )
        )
        if not admitted:
            continue
        kept = list(r.each(
            "sepsis_hours",
            "SELECT hour, row FROM sepsis_hours WHERE patient_id = ? ORDER BY hour",
            (pid,),
            pid,
            "the patient's stored hours from there on",
            key=lambda h, _, pid=pid: {"patient_id": pid, "hour": h},
            lost=lambda h, _: f"ICU hour {h} (scored again as an hour with nothing measured)",
            read=lambda h, row: (int(h), _json_object(row)),
        ))  # fmt: skip
        keys, hours = [h for h, _ in kept], [row for _, row in kept]
        static: dict[str, float] = _one(r.each(
            "sepsis_static",
            "SELECT static FROM sepsis_static WHERE patient_id = ?",
            (pid,),
            pid,
            "the demographics",
            key=lambda _, pid=pid: {"patient_id": pid},
            lost=lambda _: "the demographics (scored without them)",
            read=_json_object,
        ), {})  # fmt: skip
        pending = dict(r.each(
            "sepsis_pending",
            "SELECT hour, measurements FROM sepsis_pending WHERE patient_id = ?",
            (pid,),
            pid,
            "the hours being assembled",
            key=lambda h, _, pid=pid: {"patient_id": pid, "hour": h},
            lost=lambda h, _: f"the observations of ICU hour {h} received so far",
            read=lambda h, m: (
                int(h),
                {str(c): [float(x) for x in xs] for c, xs in _json_object(m).items()},
            ),
        ))  # fmt: skip
        live = _one(r.each(
            "sepsis_live",
            "SELECT last_observation FROM sepsis_live WHERE patient_id = ?",
            (pid,),
            pid,
            "when the latest observation came",
            key=lambda _, pid=pid: {"patient_id": pid},
            lost=lambda _: (
                "when the latest observation came (empty hours are not scored until the next one)"
            ),
            read=_utc_time,
        ), None)  # fmt: skip
        taken = _one(r.each(
            "sepsis_taken",
            "SELECT taken_at FROM sepsis_taken WHERE patient_id = ?",
            (pid,),
            pid,
            "when the gateway took the admission",
            key=lambda _, pid=pid: {"patient_id": pid},
            lost=lambda _: "when the gateway took the admission (counted from the restart)",
            read=_utc_time,
        ), None)  # fmt: skip
        row_at = _one(r.each(
            "sepsis_row_at",
            "SELECT last_row_at, hour FROM sepsis_row_at WHERE patient_id = ?",
            (pid,),
            pid,
            "when the feed last sent a row",
            key=lambda *_, pid=pid: {"patient_id": pid},
            lost=lambda *_: "when the feed last sent a row (a quiet feed is found from the restart)",
            read=lambda at, h: (_utc_time(at), None if h is None else int(h)),
        ), None)  # fmt: skip
        row_at = _latest_row_at(row_at, keys, taken)
        out.append(SepsisAdmission(pid, admitted[0], hours, static, pending, live, keys,
                                   taken_at=taken, last_row_at=row_at))  # fmt: skip
    return out


def _latest_row_at(
    kept: tuple[str, int | None] | None, keys: list[int], taken: str | None
) -> str | None:
    """When the feed last sent a row, as kept with the row's ICU hour, where it is still
    the stay's latest row: None when an earlier release (rolled back to, which keeps no
    such time) stored a later hour since, or admitted the patient again after it (a
    time kept before the admission was taken). A file kept without the hour is taken as
    it is."""
    if kept is None:
        return None
    at, hour = kept
    if hour is not None and (not keys or max(keys) != hour):
        return None
    if taken is not None and datetime.fromisoformat(at) < datetime.fromisoformat(taken):
        return None
    return at


def read_state(db: sqlite3.Connection, keep_events: int) -> WardState:
    """Everything the state file ``db`` holds that can be read (see the module docstring);
    what cannot is in ``damaged``: neither a damaged row nor a damaged page raises."""
    factory, db.text_factory = db.text_factory, _text
    try:
        return _read(_Reader(db), keep_events)
    finally:
        db.text_factory = factory


def _models(r: _Reader, kept: dict[str, Any]) -> dict[str, str]:
    """The models last run with, by task: an entry that is not a model's name (a row edited
    by hand: ``{"early-warning": null}``) is left out and said (the row mended to the rest),
    as a damaged row is; it stopped the gateway's start, where the restart compares them."""
    models = {k: v for k, v in kept.items() if isinstance(v, str)}
    for task, v in kept.items():
        if task not in models:
            r.damaged.append(StateDamage(
                "meta", {"key": "models"}, None,
                f"the model the {task} task last ran with (unknown)",
                f"kept as {v!r}, not a model's name", mend={"value": json.dumps(models)}))  # fmt: skip
    return models


def _read(r: _Reader, keep_events: int) -> WardState:
    ecg = _ecg(r)
    sepsis = _sepsis(r)
    seqs = r.rows("events", "SELECT COALESCE(MAX(seq), 0) FROM events", lost="the event log")
    last_seq = int(seqs[0][0]) if seqs else 0
    events = list(r.each(
        "events",
        "SELECT seq, event FROM events WHERE seq > ? ORDER BY seq",
        (last_seq - keep_events,),
        None,
        "the events from there on",
        key=lambda seq, _: {"seq": seq},
        lost=lambda seq, _: f"event {seq} (left out of the log)",
        read=lambda seq, text: _event(text, seq),
    ))  # fmt: skip
    models = _models(r, _one(r.each(
        "meta",
        "SELECT value FROM meta WHERE key = 'models'",
        (),
        None,
        "the rest of the table",
        key=lambda _: {"key": "models"},
        lost=lambda _: "the models last run with",
        read=_json_object,
    ), {}))  # fmt: skip
    strips = list(r.each(
        "strips",
        "SELECT seq, meta, samples FROM strips ORDER BY seq",
        (),
        None,
        "the alarm strips from there on",
        key=lambda seq, *_: {"seq": seq},
        lost=lambda seq, *_: f"the ECG strip of event {seq}",
        read=lambda seq, meta, x: (
            int(seq),
            {**_json_object(meta), "samples": np.frombuffer(x, dtype="<f4").copy()},
        ),
    ))  # fmt: skip
    return WardState(ecg, sepsis, events, last_seq, models, strips, r.damaged)
