"""What a :class:`~vitalgru.scoring.ward.Ward` must not lose when its gateway restarts, in one
SQLite file.

A gateway is restarted for a new model, a host patch or after a crash, and the patients on
it are not. The journal keeps, as they happen:

- who is admitted, to which monitor, since when (and an ECG feed's rate, beats by class and
  seconds received, or a sepsis patient's demographics given at admission);
- every patient-hour of vital signs a sepsis patient was scored on, as sent: the sepsis
  risk is a function of the whole stay, so a restarted ward replays these hours and is
  where it was, hour for hour; and the measurements of the hours still being assembled
  from observations, so that a restart within an hour does not lose its first half, and
  when the latest observation arrived (the hours after it that bring nothing are scored);
- the numbered event log, so an integration engine polling ``since=N`` neither misses
  alarms nor sees them twice, and the ECG strip of each arrhythmia alarm (the newest
  ``keep_strips``), so the alarm can still be reviewed after a restart.

- the control ids of the HL7 v2 messages taken (the newest 10,000), so that a message an
  interface engine resends after a restart (its acknowledgement lost with the connection)
  is not taken twice;
- each ECG patient's memory (:class:`~vitalgru.scoring.arrhythmia.PatientMemory`: the
  network's hidden state, the latest beat templates and RR intervals; the shadow model's
  too, so a comparison is not skewed by a restart), every ``memory_every_s`` of the
  ward and when the gateway stops, so a restarted monitor goes on with what it had learnt
  of the patient rather than from nothing.

What it does not keep: an ECG feed's detector and filter buffers and RR history (a
restarted ECG monitor finds beats afresh on the next samples, and says so in the log), and
ECG samples queued but not yet ticked. A discharged patient's rows are deleted.

Writes are transactions in WAL mode (one fsync-light commit each); the writes of one change
of the ward (an HL7 message, a merge with its event) are one transaction
(:meth:`WardJournal.together`). The file is only ever opened by one gateway process.
How the writes are made and grouped is :mod:`vitalgru.scoring.ward_journal_writes`'s; the
file's tables, their version and opening one, :mod:`vitalgru.scoring.ward_journal_file`'s.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vitalgru.claims import copy_owner_only
from vitalgru.scoring.ward_journal_file import event_json
from vitalgru.scoring.ward_journal_writes import TAKING, JournalWrites
from vitalgru.scoring.ward_state import StateDamage, WardState, read_state

__all__ = ["WardJournal"]

logger = logging.getLogger("vitalgru.scoring.ward")

#: The tables holding a sepsis patient's stay, by patient id.
_SEPSIS_TABLES = ("sepsis_beds", "sepsis_static", "sepsis_hours", "sepsis_live", "sepsis_pending",
                  "sepsis_taken", "sepsis_row_at")  # fmt: skip


def _move_trend(db: sqlite3.Connection, patient_id: str, new_id: str | None) -> None:
    """Move the heart-rate trends of a patient's earlier streams (kept in ``meta``) to
    ``new_id``, or drop them (None); a damaged value is left as it is."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'value:ecg_trends'")
        got = row.fetchone()
        trends = json.loads(got[0]) if got else {}
    except (ValueError, TypeError, sqlite3.DatabaseError):  # damaged: nothing to move
        return
    if isinstance(trends, dict) and patient_id in trends:
        kept = trends.pop(patient_id)
        if new_id is not None:
            trends[new_id] = kept
        db.execute("UPDATE meta SET value = ? WHERE key = 'value:ecg_trends'",
                   (event_json(trends),))  # fmt: skip


class WardJournal(JournalWrites):
    """A ward's state on disk (see the module docstring).

    Parameters
    ----------
    path : path-like
        The SQLite file; created with its tables when absent.
    keep_events : int
        Events kept (older ones are deleted as new ones arrive).
    keep_strips : int
        Alarm strips kept (the newest).

    Raises
    ------
    ValueError
        ``path`` is not a SQLite file, or one of another program or schema version.
    """

    def __init__(self, path: str | Path, keep_events: int = 10_000, keep_strips: int = 500) -> None:
        self.keep_events = int(keep_events)
        self.keep_strips = int(keep_strips)
        super().__init__(path)

    # ------------------------------------------------------------------ writes

    def set_models(self, models: Mapping[str, str]) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('models', ?)", (event_json(models),))

    def set_value(self, key: str, value: Any) -> None:
        """Keep a small value (JSON) under ``key``: a cursor of something that reads the
        event log and must go on where it stopped (an alarm forwarder)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"value:{key}",
                                                                     event_json(value)))  # fmt: skip

    def value(self, key: str, default: Any = None) -> Any:
        """What :meth:`set_value` kept under ``key`` (``default`` when nothing)."""
        try:
            with self._lock:
                got = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"value:{key}",))
                row = got.fetchone()
            return default if row is None else json.loads(row[0])
        except (ValueError, TypeError, sqlite3.DatabaseError) as e:  # a damaged row (or text
            # that is not UTF-8): what it kept is lost, not the rest
            logger.warning("%s: the kept %s cannot be read (%s); left out", self.path, key, e)
            return default

    def admit_ecg(self, patient_id: str, fs: float, admitted_at: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO ecg_beds (patient_id, fs, admitted_at) VALUES (?, ?, ?)",
                (patient_id, fs, admitted_at),
            )
            db.execute("DELETE FROM ecg_memory WHERE patient_id = ?", (patient_id,))
            _move_trend(db, patient_id, None)  # a new stay: no earlier stream of its own

    def ecg_progress(
        self, beds: Mapping[str, tuple[float, Mapping[str, int], int | None, str | None]]
    ) -> None:
        """``{patient_id: (received_s, counts, the feed's next index or None, that index on
        the wall clock (ISO 8601, UTC) or None)}`` of the feeds a tick moved on (the index: a
        chunk sent again after a restart is not taken twice; its time: the stream after a
        restart keeps the feed's clock)."""
        if not beds:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE ecg_beds SET received_s = ?, counts = ?, next_index = ?, next_at = ? "
                "WHERE patient_id = ?",
                [(s, event_json(dict(c)), n, at, pid) for pid, (s, c, n, at) in beds.items()],
            )

    def ecg_memory(
        self, memories: Mapping[str, bytes], saved_at: str, monitor: str = "champion"
    ) -> None:
        """``{patient_id: PatientMemory.to_bytes()}`` of ``monitor`` (``champion`` or
        ``shadow``), replacing what was kept of them."""
        if not memories:
            return
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO ecg_memory VALUES (?, ?, ?, ?)",
                [(pid, monitor, saved_at, sqlite3.Binary(m)) for pid, m in memories.items()],
            )

    def forget_memories(self, monitor: str) -> None:
        """Delete every memory kept of ``monitor`` (``shadow``: a gateway started without
        the shadow model, whose memories would be stale when it comes back)."""
        with self._write() as db:
            db.execute("DELETE FROM ecg_memory WHERE monitor = ?", (monitor,))

    def merge_ecg(self, patient_id: str, new_id: str) -> None:
        """Keep an ECG patient's stream under ``new_id`` (two records of one patient merged):
        the bed, the memories kept and the heart-rate trends of earlier streams."""
        with self._write() as db:
            for table in ("ecg_beds", "ecg_memory"):
                db.execute(f"UPDATE {table} SET patient_id = ? WHERE patient_id = ?",
                           (new_id, patient_id))  # fmt: skip
            _move_trend(db, patient_id, new_id)

    def discharge_ecg(self, patient_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM ecg_beds WHERE patient_id = ?", (patient_id,))
            db.execute("DELETE FROM ecg_memory WHERE patient_id = ?", (patient_id,))
            _move_trend(db, patient_id, None)  # the stay's streams leave with it

    def admit_sepsis(
        self,
        patient_id: str,
        admitted_at: str,
        static: Mapping[str, float] | None = None,
        taken_at: str | None = None,
    ) -> None:
        """Keep an admission: when the stay began (``admitted_at``) and when the gateway
        took it (``taken_at``, in a table of its own, so that a file an older vitalgru
        reads again is still one it writes to)."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO sepsis_beds VALUES (?, ?)", (patient_id, admitted_at)
            )
            db.execute("DELETE FROM sepsis_hours WHERE patient_id = ?", (patient_id,))
            db.execute("DELETE FROM sepsis_static WHERE patient_id = ?", (patient_id,))
            db.execute("DELETE FROM sepsis_pending WHERE patient_id = ?", (patient_id,))
            db.execute("DELETE FROM sepsis_live WHERE patient_id = ?", (patient_id,))
            db.execute("DELETE FROM sepsis_taken WHERE patient_id = ?", (patient_id,))
            db.execute("DELETE FROM sepsis_row_at WHERE patient_id = ?", (patient_id,))
            if taken_at is not None:
                db.execute("INSERT INTO sepsis_taken VALUES (?, ?)", (patient_id, taken_at))
            if static:
                db.execute(
                    "INSERT INTO sepsis_static VALUES (?, ?)", (patient_id, event_json(static))
                )

    def add_hour(self, patient_id: str, hour: int, row: Mapping[str, Any]) -> None:
        """Keep a scored hour as sent, less its nulls (a value not sent is a value not
        measured, as a null is)."""
        kept = {k: v for k, v in row.items() if v is not None}
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO sepsis_hours VALUES (?, ?, ?)",
                (patient_id, int(hour), event_json(kept)),
            )
            db.execute(
                "DELETE FROM sepsis_pending WHERE patient_id = ? AND hour <= ?",
                (patient_id, int(hour)),
            )

    def pending_hour(
        self,
        patient_id: str,
        hour: int,
        measurements: Mapping[str, list[float]],
        arrived_at: str | None = None,
    ) -> None:
        """Keep the measurements held so far for an hour being assembled from observations
        (all of them: the row is replaced), and when the latest arrived."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO sepsis_pending VALUES (?, ?, ?)",
                (patient_id, int(hour), event_json(dict(measurements))),
            )
            if arrived_at is not None:
                db.execute("INSERT OR REPLACE INTO sepsis_live VALUES (?, ?)",
                           (patient_id, arrived_at))  # fmt: skip

    def row_arrived(self, patient_id: str, at: str, hour: int | None = None) -> None:
        """Keep when a sepsis feed last sent a whole row (in a table of its own, as
        ``sepsis_taken``), so that a feed that stops about a restart is still found quiet,
        with the row's ICU ``hour``: a later hour stored beside it (by an earlier release,
        which keeps no time) tells that the time is no longer the latest row's."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO sepsis_row_at (patient_id, last_row_at, hour) "
                       "VALUES (?, ?, ?)", (patient_id, at, hour))  # fmt: skip

    def set_static(self, patient_id: str, static: Mapping[str, float]) -> None:
        """Replace a sepsis patient's demographics (an update from the hospital's ADT)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO sepsis_static VALUES (?, ?)",
                       (patient_id, event_json(dict(static))))  # fmt: skip

    def merge_sepsis(self, patient_id: str, new_id: str) -> None:
        """Keep a sepsis patient's stay under ``new_id`` (two records of one patient merged)."""
        with self._write() as db:
            for table in _SEPSIS_TABLES:
                db.execute(f"UPDATE {table} SET patient_id = ? WHERE patient_id = ?",
                           (new_id, patient_id))  # fmt: skip

    def discharge_sepsis(self, patient_id: str) -> None:
        with self._write() as db:
            for table in _SEPSIS_TABLES:
                db.execute(f"DELETE FROM {table} WHERE patient_id = ?", (patient_id,))

    def add_event(self, event: Mapping[str, Any]) -> None:
        seq = int(event["seq"])
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?)", (seq, event_json(dict(event)))
            )
            if seq % 1000 == 0:  # trim now and then, not on every event
                db.execute("DELETE FROM events WHERE seq <= ?", (seq - self.keep_events,))

    def add_strip(self, seq: int, strip: Mapping[str, Any]) -> None:
        """An alarm's ECG strip (its ``samples`` as float32, the rest as JSON), under the
        alarm's event number; the oldest beyond ``keep_strips`` are deleted."""
        meta = {k: v for k, v in strip.items() if k != "samples"}
        samples = np.asarray(strip["samples"], dtype="<f4").tobytes()
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO strips VALUES (?, ?, ?)",
                       (int(seq), event_json(meta), sqlite3.Binary(samples)))  # fmt: skip
            db.execute(
                "DELETE FROM strips WHERE seq <= (SELECT seq FROM strips ORDER BY seq DESC "
                "LIMIT 1 OFFSET ?)", (self.keep_strips,),
            )  # fmt: skip

    def hl7_taken(
        self, control_id: str, message_type: str, reply: Mapping[str, Any], keep: int
    ) -> None:
        """An HL7 v2 message taken (its control id, type and the acknowledgement it got),
        so that a restarted gateway does not take it again when the sender resends it; the
        newest ``keep`` are kept."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO hl7_taken (control_id, message_type, reply) "
                "VALUES (?, ?, ?)", (control_id, message_type, event_json(dict(reply))),
            )  # fmt: skip
            db.execute(
                "DELETE FROM hl7_taken WHERE n <= (SELECT n FROM hl7_taken ORDER BY n DESC "
                "LIMIT 1 OFFSET ?)", (int(keep),),
            )  # fmt: skip

    def hl7_forget(self, control_id: str, message_type: str) -> None:
        """A message not taken after all (refused): the mark its taking left
        (:data:`~vitalgru.scoring.ward_journal_writes.TAKING`) goes, so a resend is tried
        again; a message kept as taken under the same id (of another type) stays."""
        with self._write() as db:
            db.execute(
                "DELETE FROM hl7_taken WHERE control_id = ? AND message_type = ? AND reply = ?",
                (control_id, message_type, event_json(TAKING)),
            )

    def hl7_messages(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """The HL7 v2 messages taken, oldest first: (control id, type, reply); the reply is
        None where it cannot be read (the message was still taken), and a damaged page
        ends the list where it is (both logged)."""
        got = []
        with self._lock:
            try:
                cursor = self._db.execute(
                    "SELECT control_id, message_type, reply FROM hl7_taken ORDER BY n"
                )
                while (row := cursor.fetchone()) is not None:
                    got.append(row)
            except sqlite3.DatabaseError as e:
                logger.warning("%s: the HL7 messages taken after the %d-th cannot be read "
                               "(%s); a resent one is taken again", self.path, len(got), e)  # fmt: skip
        out = []
        for c, t, r in got:
            try:
                reply = json.loads(r)
                if not isinstance(reply, dict):
                    raise TypeError(f"a reply kept as {type(reply).__name__}")
            except (ValueError, TypeError) as e:
                logger.warning("%s: the reply to HL7 message %s cannot be read (%s)",
                               self.path, c, e)  # fmt: skip
                reply = None
            out.append((str(c), str(t), reply))
        return out

    # ------------------------------------------------------------------ read back

    def last_event_seq(self) -> int:
        """The number of the newest event kept (0 for none, or when the log cannot be
        read): without loading the rest."""
        try:
            with self._lock:
                row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            return int(row[0])
        except (sqlite3.Error, TypeError, ValueError) as e:
            logger.warning("%s: the event log cannot be read (%s)", self.path, e)
            return 0

    def load(self) -> WardState:
        """What the journal holds, to rebuild a ward from. Rows that cannot be read (the
        disk, or an edit by hand) are left out and listed in ``damaged``
        (:mod:`vitalgru.scoring.ward_state`); the rest is taken up. ValueError naming the
        file only when it cannot be read at all."""
        try:
            with self._lock:
                return read_state(self._db, self.keep_events)
        except sqlite3.Error as e:
            raise ValueError(
                f"{self.path}: the ward state cannot be read ({type(e).__name__}: {e}); move "
                "it aside or name another with --state"
            ) from None

    def set_aside(self, damaged: Sequence[StateDamage]) -> Path:
        """After :meth:`load` found ``damaged`` rows: copy the file as it is beside it
        (``<name>.damaged-<UTC time>``; its write-ahead log checkpointed into it first, or
        copied beside it when SQLite cannot), then delete those rows
        from it (or reset the part that was lost, where the rest was taken up), so the next
        start does not find them again and the copy keeps what they held for whoever looks
        into it. Returns the copy's path. OSError when the copy
        cannot be written (the rows are then left as they are)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        copy = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        with self._lock:
            try:  # into one file, when SQLite can: the log's pages into the main file
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError as e:
                logger.warning("%s: the write-ahead log could not be checkpointed (%s)",
                               self.path, e)  # fmt: skip
            for suffix in ("", "-wal"):  # a log not checkpointed is copied with it
                kept = Path(f"{self.path}{suffix}")
                if kept.exists() and kept.stat().st_size:
                    # the patients' data, owner-only as the file itself (the umask's
                    # usual 0644 let every local user read the copy)
                    copy_owner_only(kept, f"{copy}{suffix}")
        with self._write() as db:
            for d in damaged:
                if not d.key:  # a damaged page is left to SQLite: no row to name
                    continue
                where = " AND ".join(f"{k} = ?" for k in d.key)
                if d.mend:  # the rest of the row was taken up: only the part lost is reset
                    sets = ", ".join(f"{k} = ?" for k in d.mend)
                    db.execute(f"UPDATE {d.table} SET {sets} WHERE {where}",
                               (*d.mend.values(), *d.key.values()))  # fmt: skip
                else:
                    db.execute(f"DELETE FROM {d.table} WHERE {where}", tuple(d.key.values()))
        return copy
