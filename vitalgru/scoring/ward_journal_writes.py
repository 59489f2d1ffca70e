"""How a :class:`~vitalgru.scoring.ward_journal.WardJournal` writes: each write one
transaction, and the writes of one change of the ward grouped into one.

Writes are transactions in WAL mode (one fsync-light commit each); the writes of one change
of the ward (an HL7 message, a merge with its event) are one transaction
(:meth:`JournalWrites.together`), whichever threads make them, so a gateway stopped among
them keeps all of them or none. An HL7 v2 message's writes land in one with a mark of the
message taken (:meth:`JournalWrites.taking`). The file is only ever opened by one gateway
process; within it, one lock serialises every use of the connection.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vitalgru.scoring.ward_journal_file import event_json, open_state_file

__all__ = ["TAKING", "JournalWrites"]

logger = logging.getLogger("vitalgru.scoring.ward")

#: The reply kept for an HL7 message whose taking changed the ward before its
#: acknowledgement was kept (:meth:`JournalWrites.taking`).
TAKING: dict[str, Any] = {"taking": True}


class JournalWrites:
    """A ward state file opened for writes, single or grouped (see the module docstring).

    Parameters
    ----------
    path : path-like
        The SQLite file; created with its tables when absent
        (:func:`~vitalgru.scoring.ward_journal_file.open_state_file`).

    Raises
    ------
    ValueError
        ``path`` is not a SQLite file, or one of another program or schema version.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._local = threading.local()  # writes this thread made while taking a message
        self._groups = 0  # groups of writes open (together), of any thread
        # groups of writes whose BEGIN or COMMIT failed (the ward counts its single writes')
        self.errors = 0
        #: the latest write (a single one, or a group's BEGIN or COMMIT) failed: the file is
        #: not being kept now (a full disk), until a write succeeds again
        self.failing = False
        self._db = open_state_file(self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write: its own transaction, or, while :meth:`together` is open (in any
        thread), a savepoint in that one."""
        with self._lock:
            try:
                joined = self._db.in_transaction  # only ever open while a group is
                self._db.execute("SAVEPOINT one" if joined else "BEGIN")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:  # (SQLite rolls back itself on some errors)
                        if joined:
                            self._db.execute("ROLLBACK TO one")
                            self._db.execute("RELEASE one")
                        else:
                            self._db.execute("ROLLBACK")
                    raise
                self._db.execute("RELEASE one" if joined else "COMMIT")
            except BaseException:
                self.failing = True
                raise
            if not joined:  # kept on disk (a savepoint is only once its group commits)
                self.failing = False
            if getattr(self._local, "writes", None) is not None:
                self._local.writes += 1

    @contextmanager
    def together(self) -> Iterator[None]:
        """The writes made inside (by any thread, while this is open) land in one
        transaction when the last group open closes: a gateway stopped among them keeps
        all of them or none (a sepsis hour and the event its alarm ended with, a merge and
        its ``patient_merged`` event). A failed ``BEGIN`` or ``COMMIT`` (a full disk) is
        logged and counted in :attr:`errors`, not raised: the ward goes on."""
        with self._lock:
            if self._groups == 0 and not self._db.in_transaction:
                self._failing("BEGIN")
            self._groups += 1
        try:
            yield
        finally:
            with self._lock:
                self._groups -= 1
                if self._groups == 0 and self._db.in_transaction and not self._failing("COMMIT"):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")

    def _failing(self, statement: str) -> bool:
        """Run ``statement``; False (logged, counted) where it failed."""
        try:
            self._db.execute(statement)
        except sqlite3.Error:
            self.errors += 1
            self.failing = True
            logger.exception("ward: %s of a group of writes to %s failed", statement, self.path)
            return False
        if statement == "COMMIT":
            self.failing = False
        return True

    @contextmanager
    def taking(self, control_id: str, message_type: str) -> Iterator[None]:
        """While an HL7 v2 message is taken: what it changes lands in one transaction
        (:meth:`together`) with a mark of the message taken (:data:`TAKING`), so a gateway
        stopped before :meth:`~vitalgru.scoring.ward_journal.WardJournal.hl7_taken` kept
        its acknowledgement does not take it again when resent, and one stopped halfway
        kept none of it and takes it whole; a message that changed nothing leaves no mark."""
        with self.together():
            self._local.writes = 0
            try:
                yield
            finally:
                wrote, self._local.writes = self._local.writes, None
                if wrote:
                    with self._write() as db:
                        db.execute(
                            "INSERT OR IGNORE INTO hl7_taken (control_id, message_type, reply) "
                            "VALUES (?, ?, ?)", (control_id, message_type, event_json(TAKING)),
                        )  # fmt: skip
