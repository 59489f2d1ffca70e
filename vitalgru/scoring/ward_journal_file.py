"""The ward's state file itself: its tables, their schema version, and opening one.

A :class:`~vitalgru.scoring.ward_journal.WardJournal` writes into one SQLite file, made
here with its tables when absent, brought up to date when it is of an older layout of the
same version (a column added since), and refused, left as it is, when it is another
program's file, the gateway's access log, or a ward state of another schema version. The
JSON written into its text columns (and onto the gateway's event stream) is
:func:`event_json`'s.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from vitalgru.claims import owner_only, sqlite_owner

__all__ = ["SCHEMA_VERSION", "event_json", "open_state_file"]

#: Version of the tables below; a file of another version is refused, not guessed at.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ecg_beds (
    patient_id TEXT PRIMARY KEY, fs REAL NOT NULL, admitted_at TEXT NOT NULL,
    received_s REAL NOT NULL DEFAULT 0, counts TEXT NOT NULL DEFAULT '{}',
    next_index INTEGER, next_at TEXT);
CREATE TABLE IF NOT EXISTS sepsis_beds (patient_id TEXT PRIMARY KEY, admitted_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sepsis_static (patient_id TEXT PRIMARY KEY, static TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sepsis_hours (
    patient_id TEXT NOT NULL, hour INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (patient_id, hour));
CREATE TABLE IF NOT EXISTS sepsis_live (patient_id TEXT PRIMARY KEY, last_observation TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sepsis_taken (patient_id TEXT PRIMARY KEY, taken_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sepsis_row_at (
    patient_id TEXT PRIMARY KEY, last_row_at TEXT NOT NULL, hour INTEGER);
CREATE TABLE IF NOT EXISTS sepsis_pending (
    patient_id TEXT NOT NULL, hour INTEGER NOT NULL, measurements TEXT NOT NULL,
    PRIMARY KEY (patient_id, hour));
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS strips (
    seq INTEGER PRIMARY KEY, meta TEXT NOT NULL, samples BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hl7_taken (
    n INTEGER PRIMARY KEY AUTOINCREMENT, control_id TEXT NOT NULL UNIQUE,
    message_type TEXT NOT NULL, reply TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ecg_memory (
    patient_id TEXT NOT NULL, monitor TEXT NOT NULL, saved_at TEXT NOT NULL,
    memory BLOB NOT NULL, PRIMARY KEY (patient_id, monitor));
"""


def event_json(value: Any) -> str:
    """JSON of what the ward writes; numpy scalars (a count, a rate) as plain numbers."""
    return json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def open_state_file(path: Path) -> sqlite3.Connection:
    """Open (or make) a ward state file for one gateway's writes.

    Parameters
    ----------
    path : Path
        The SQLite file; created, readable by its owner only, with its tables when absent.

    Returns
    -------
    sqlite3.Connection
        In WAL mode, autocommit (``isolation_level=None``: transactions are begun by the
        caller), usable from any thread (the caller holds a lock around it).

    Raises
    ------
    ValueError
        ``path`` is not a SQLite file, or one of another program or schema version.
    """
    try:
        owner_only(path)  # the ward's patients and their data
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # another program's file, or the gateway's access log, is refused untouched
        sqlite_owner(db, "schema", path, "a vitalgru ward state file")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # the tables and the schema mark in one transaction: a gateway stopped while it
        # made a new file leaves an empty file, not tables every later start refuses
        db.execute("BEGIN")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            columns = {r[1] for r in db.execute("PRAGMA table_info(ecg_beds)")}
            if "next_index" not in columns:  # a file from before the feed's index was kept
                db.execute("ALTER TABLE ecg_beds ADD COLUMN next_index INTEGER")
            if "next_at" not in columns:  # ... or the wall time of that index
                db.execute("ALTER TABLE ecg_beds ADD COLUMN next_at TEXT")
            kept = {r[1] for r in db.execute("PRAGMA table_info(sepsis_row_at)")}
            if "hour" not in kept:  # a file from before the row's hour was kept with it
                db.execute("ALTER TABLE sepsis_row_at ADD COLUMN hour INTEGER")
            got = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if got is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif got[0] != str(SCHEMA_VERSION):
                raise ValueError(
                    f"{path}: ward state of schema version {got[0]}, this vitalgru "
                    f"reads version {SCHEMA_VERSION}; move the file aside to start an "
                    "empty ward"
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except (sqlite3.DatabaseError, UnicodeDecodeError) as e:  # SQLite's own message can
        # quote the file's bytes, which Python then fails to read as text
        raise ValueError(
            f"{path} is not a vitalgru ward state file ({e}); move it aside or name "
            "another with --state"
        ) from None
    return db
