"""How the access log (:mod:`pipelines.audit`) keeps its rows in SQLite: the tables, the hash
chain that links each row to the one before, text as SQLite can store it and as it reads back
when its bytes changed on disk, and a file opened for reading only (an archive kept in a
read-only place).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "SCHEMA", "chain_link", "lenient_text", "read_only_db", "storable"]

#: The access log's tables: ``meta`` (the file's kind, its anchor, what an archive holds)
#: and ``access``, a row per access with its link in the chain.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, caller TEXT NOT NULL,
    action TEXT NOT NULL, patient_id TEXT, status INTEGER NOT NULL, client TEXT,
    count INTEGER NOT NULL DEFAULT 1, chain TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS access_patient ON access (patient_id, seq);
"""
#: The columns of a row as :meth:`~pipelines.audit.AuditLog.rows` gives it.
COLUMNS = ("seq", "at", "caller", "action", "patient_id", "status", "client", "count")


def read_only_db(path: Path) -> sqlite3.Connection:
    """``path`` opened for reading only. A WAL file needs its ``-shm`` beside it, which a
    read-only folder cannot get; one without a ``-wal`` has no writer, and is read as it
    is (``immutable``)."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False,
                         isolation_level=None)  # fmt: skip
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if Path(f"{path}-wal").exists():
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False,
                           isolation_level=None)  # fmt: skip


def storable(text: str) -> str:
    """``text`` as SQLite can store it: a lone surrogate written as its escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def lenient_text(data: bytes) -> str:
    """Text as the file holds it: bytes that are not UTF-8 read as U+FFFD, not an error."""
    return data.decode("utf-8", "replace")


def chain_link(prev: str, row: tuple[Any, ...]) -> str:
    """The chain of a row: SHA-256 over the chain before it and its fields."""
    text = json.dumps([prev, *row], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
