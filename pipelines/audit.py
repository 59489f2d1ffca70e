"""Who looked at which patient's data at the bedside gateway, and who was refused: an access
log kept apart from the ward's state.

A hospital must be able to say who saw a patient's record (an accounting of disclosures, a
privacy officer's question after a complaint). The gateway's own log says what the server
did, not who read what. :class:`AuditLog` keeps, in its own SQLite file (``vitalgru serve
--audit FILE``; the state file is deleted to reset a ward, an audit trail is not), one row
per access:

- every request that reads a patient's data (a summary, a page, the event log and its
  stream, a strip, FHIR resources), acknowledges an event, or admits or discharges a
  patient: when, the token's name (or ``open`` when the gateway takes no token), what,
  which patient (the event's patient for ``/events/{seq}/...``), the answer's status and
  the client's address. An answer that carried several patients' data (the ward page,
  ``/patients``, the event log, FHIR risk) is a row for each of them, written in one
  transaction (:meth:`AuditLog.record_many`); an event stream, a row for each patient as
  their events are sent on it;
- every request refused for want of a token or a role (401, 403), whatever it asked for:
  an attempt is worth as much as an access;
- admissions and discharges taken from HL7 v2 messages (MLLP or ``POST /hl7``).

The data feeds themselves (ECG chunks, hours of vital signs, results) are not rows: they
come every second from machines and are counted in ``/metrics``. A reader that asks for the
same thing again within :data:`COALESCE_S` (an integration engine polling the event log
every second) is written once per that span, with the number of times it asked.

Rows are never updated (but for their count) or deleted by the gateway, and each carries a
hash chain: the SHA-256 of the row before's chain and the row's own fields (not its count),
so a row changed or deleted afterwards by someone with the file breaks the chain from there
on (:meth:`AuditLog.verify`, ``vitalgru serve-audit --verify``; rows cut off the end leave
no trace in the chain: keep a copy of the latest chain elsewhere for that). The chain has
no key: whoever can write the file can change a row and recompute every later link, which
``--verify`` alone does not find; a link kept elsewhere (``--expect``) is then missing from
the file, so keep one outside the gateway's machine regularly. ``GET /audit``
(admin tokens only) and ``vitalgru serve-audit FILE`` read them.

Retention: an access log is kept for years (an accounting of disclosures reaches back six
years in the US), not in one ever-growing file. :meth:`AuditLog.archive` (``vitalgru
serve-audit FILE --archive-before DATE --archive-to OLD``) moves the rows before a date to
a file of their own, rows and links as they were, and the live file keeps the last
archived link as its *anchor*, from which its chain goes on: each file verifies alone, and
the files read in order (``serve-audit OLD FILE --verify``) verify as one chain, so an
archive lost, swapped or cut short is found. It may run beside a gateway writing the file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.audit_store import COLUMNS, SCHEMA, chain_link, lenient_text, read_only_db, storable
from vitalgru.claims import owner_only, sqlite_owner

__all__ = ["COALESCE_S", "AuditLog", "verify_files"]

logger = logging.getLogger(__name__)

#: Seconds within which the same caller asking the same thing about the same patient is
#: one row (with a count): a poller does not fill the file.
COALESCE_S = 60.0

#: What makes two accesses the same: caller, action, patient, status, client.
_Key = tuple[str, str, str | None, int, str | None]


class AuditLog:
    """An append-only access log in a SQLite file (see the module's description).

    A new file is made readable by its owner only (it names who read which patient's
    data). ``read_only`` opens an existing file without writing to it (an archive kept
    read-only is verified and listed as it is). ValueError for a file that is not SQLite,
    or another program's.
    """

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._recent: dict[_Key, tuple[float, int]] = {}
        #: writes that failed (a full disk, a file locked past the wait): counted, logged and
        #: shown in ``/metrics`` and ``/health``, never raised into the request
        self.errors = 0
        #: the latest write failed: reads are answered that the log does not hold, until a
        #: write succeeds again (``/health`` is ``degraded`` while it is so)
        self.failing = False
        if not read_only:
            owner_only(self.path)
        try:
            if read_only:
                self._db = read_only_db(self.path)
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # text whose bytes changed on disk reads with U+FFFD where they were: listed as it
            # is, and a row that no longer hashes to its chain for --verify (sqlite's own
            # decoding error stopped both)
            self._db.text_factory = lenient_text
            # another program's file, or the gateway's state file, is refused untouched
            kind = sqlite_owner(self._db, "kind", self.path, "a vitalgru audit log")
            if kind is not None and kind != "vitalgru-audit":
                raise ValueError(f"{self.path} is a {kind} file, not a vitalgru audit log")
            if read_only:
                if kind is None:
                    raise ValueError(f"{self.path} is not a vitalgru audit log")
                return
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            if kind is None:
                self._db.execute("INSERT INTO meta VALUES ('kind', 'vitalgru-audit')")
        except (sqlite3.DatabaseError, ValueError) as e:
            if hasattr(self, "_db"):
                self._db.close()  # not left open (a folder that could not be unmounted)
            if isinstance(e, ValueError):
                raise
            raise ValueError(f"{self.path} is not a vitalgru audit log: {e}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(
        self,
        caller: str,
        action: str,
        patient_id: str | None,
        status: int,
        client: str | None = None,
    ) -> None:
        """Write one access (or add it to the same caller's same access within
        :data:`COALESCE_S`; a refusal, 401 or 403, is a row each time). A failed write is
        counted (``errors``) and logged, not raised: a full disk must not stop alarms."""
        self.record_many(caller, action, [patient_id], status, client)

    def record_many(
        self,
        caller: str,
        action: str,
        patient_ids: Sequence[str | None],
        status: int,
        client: str | None = None,
    ) -> None:
        """:meth:`record` for each of ``patient_ids`` (an answer that carried several
        patients' data: the ward page, the event log), in one transaction: one write to the
        disk for the ward, not one per patient. A failed write counts each row lost."""
        # text UTF-8 cannot hold (a lone surrogate from a JSON "\ud800") is kept escaped
        caller, action = storable(caller), storable(action)
        client = None if client is None else storable(client)
        status = int(status)
        refused = status in (401, 403)  # each attempt is a row of its own
        now = time.monotonic()
        at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    added = self._write(caller, action, patient_ids, status, client, now, at,
                                        refused)  # fmt: skip
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # none of its rows, nor their counts
                        with suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
                self.failing = False
                self._recent.update(added)  # rows that are in the file only
                if len(self._recent) > 10_000:  # forget the spans that are over
                    self._recent = {
                        k: v for k, v in self._recent.items() if now - v[0] < COALESCE_S
                    }
        except Exception as e:  # whatever it is, the answer goes out
            self.failing = True
            self.errors += len(patient_ids)
            if self.errors <= len(patient_ids) or self.errors % 100 < len(patient_ids):
                logger.error("access log %s: a row could not be written (%s errors so far): %s",
                             self.path, self.errors, e)  # fmt: skip

    def _write(
        self,
        caller: str,
        action: str,
        patient_ids: Sequence[str | None],
        status: int,
        client: str | None,
        now: float,
        at: str,
        refused: bool,
    ) -> dict[_Key, tuple[float, int]]:
        """Insert (or count) a row for each patient in the open transaction (the caller
        holds the lock); returns the rows inserted by their key, for the coalescing."""
        added: dict[_Key, tuple[float, int]] = {}
        for pid in patient_ids:
            pid = None if pid is None else storable(pid)
            # the client's address is part of what is the same: a second workstation
            # reading with a shared token (or an open gateway) is a row of its own
            key = (caller, action, pid, status, client)
            last = added.get(key) or self._recent.get(key)
            if last is not None and now - last[0] < COALESCE_S and not refused:
                self._db.execute("UPDATE access SET count = count + 1 WHERE seq = ?",
                                 (last[1],))  # fmt: skip
                continue
            row = (at, caller, action, pid, status, client)
            cur = self._db.execute(
                "INSERT INTO access (at, caller, action, patient_id, status, client, chain) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*row, chain_link(self._last_link(), row)),
            )
            added[key] = (now, int(cur.lastrowid or 0))
        return added

    def rows(
        self,
        patient_id: str | None = None,
        caller: str | None = None,
        since: int = 0,
        limit: int = 1000,
        refused: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows after number ``since``, oldest first, of a patient and/or a caller;
        ``refused``: only the 401 and 403 answers."""
        where = ["seq > ?"]
        args: list[Any] = [int(since)]
        if patient_id is not None:
            where.append("patient_id = ?")
            args.append(patient_id)
        if caller is not None:
            where.append("caller = ?")
            args.append(caller)
        if refused:
            where.append("status IN (401, 403)")
        sql = (f"SELECT {', '.join(COLUMNS)} FROM access WHERE {' AND '.join(where)} "
               "ORDER BY seq LIMIT ?")  # fmt: skip
        with self._lock:
            got = self._db.execute(sql, (*args, int(limit))).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in got]

    def _last_link(self) -> str:
        """The chain the next row follows: the last row's, or with no row the anchor (the
        last archived row's), or "" (the caller holds the lock)."""
        got = self._db.execute("SELECT chain FROM access ORDER BY seq DESC LIMIT 1").fetchone()
        return got[0] if got else self.anchor()

    def anchor(self) -> str:
        """The link this file's chain starts from: the last row archived out of it (or into
        the archive before it), "" for a file that begins the log."""
        got = self._db.execute("SELECT value FROM meta WHERE key='anchor'").fetchone()
        return got[0] if got else ""

    def archive(self, before: datetime, to: str | Path) -> dict[str, Any]:
        """Move the rows written before ``before`` (an aware time at least :data:`COALESCE_S`
        ago, so no row still counting repeats moves) to a new audit file ``to``, rows and
        links unchanged, its anchor this file's; this file keeps the last moved link as its
        anchor. Returns ``{"rows", "first_seq", "last_seq", "last_link"}`` (rows 0 when
        none is that old: nothing is written).

        The archive is written and checked before anything is deleted here: a failure
        leaves this file whole (and perhaps a stray ``to``). ValueError for a time that is
        not old enough or has no offset, or a ``to`` that exists.
        """
        if before.tzinfo is None:
            raise ValueError(f"{before.isoformat()} has no UTC offset")
        newest = datetime.now(UTC) - timedelta(seconds=COALESCE_S)
        if before > newest:
            raise ValueError(
                f"archive only rows older than {COALESCE_S:g} s (a row still counting a "
                f"caller's repeats would lose them): {before.isoformat()} is too recent"
            )
        target = Path(to)
        if target.exists():
            raise ValueError(f"{target} exists: an archive is a new file")
        cut = before.astimezone(UTC).isoformat(timespec="seconds")
        with self._lock:
            got = self._db.execute(
                "SELECT MIN(seq), MAX(seq), COUNT(*) FROM access WHERE at < ?", (cut,)
            ).fetchone()
            if not got[2]:
                return {"rows": 0, "first_seq": None, "last_seq": None, "last_link": None}
            last = int(got[1])
            rows = self._db.execute(
                "SELECT seq, at, caller, action, patient_id, status, client, count, chain "
                "FROM access WHERE seq <= ? ORDER BY seq", (last,)
            ).fetchall()  # fmt: skip
            anchor = self.anchor()
        out = AuditLog(target)
        try:
            with out._lock:
                out._db.execute("BEGIN")
                out._db.executemany(
                    "INSERT INTO access (seq, at, caller, action, patient_id, status, client, "
                    "count, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
                )  # fmt: skip
                out._db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("anchor", anchor), ("archive_of", self.path.name),
                     ("archived_before", cut)],
                )  # fmt: skip
                out._db.execute("COMMIT")
                # rollback journal, not WAL: an archive kept in a read-only place opens
                # without the -shm file it cannot have there
                out._db.execute("PRAGMA journal_mode=DELETE")
            n, broken, link = out.verify()
        finally:
            out.close()
        if broken is not None or n != len(rows) or link != rows[-1][-1]:
            raise ValueError(f"{target}: the archive did not verify (row {broken}); {self.path} "
                             "is unchanged")  # fmt: skip
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM access WHERE seq <= ?", (last,))
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('anchor', ?)", (link,))
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._recent = {k: v for k, v in self._recent.items() if v[1] > last}
        return {"rows": len(rows), "first_seq": int(rows[0][0]), "last_seq": last,
                "last_link": link}  # fmt: skip

    def verify(self) -> tuple[int, int | None, str]:
        """Check the hash chain from the file's anchor (:meth:`anchor`): ``(rows checked,
        the number of the first row whose chain does not follow or None, the last row's
        chain)``."""
        n, seq = 0, 0
        with self._lock:
            try:
                prev = self.anchor()
                cur = self._db.execute(
                    "SELECT seq, at, caller, action, patient_id, status, client, chain "
                    "FROM access ORDER BY seq"
                )
                for seq, *row, chain in cur:
                    n += 1
                    if chain_link(prev, tuple(row)) != chain:
                        return n, int(seq), chain
                    prev = chain
            except sqlite3.DatabaseError as e:  # pages that cannot be read at all
                raise ValueError(
                    f"{self.path}: the access log is damaged past row {seq} ({e}); it cannot "
                    "be verified beyond it"
                ) from None
        return n, None, prev

    def row_of_link(self, link: str) -> int | None:
        """The number of the row whose chain is ``link`` (a last link :meth:`verify` gave
        earlier and was kept elsewhere), or None: rows from it on were cut off the end."""
        with self._lock:
            got = self._db.execute("SELECT seq FROM access WHERE chain = ?", (link.strip(),))
            row = got.fetchone()
        return None if row is None else int(row[0])


def verify_files(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Verify audit files read in order (archives, oldest first, then the live file) as one
    chain: each file alone, and each file's anchor the last link of the one before (the
    first one's anchor is what it begins from). Returns ``[{"path", "rows", "anchor",
    "last", "broken" (a row number, or None), "follows" (whether its anchor is the one
    before's last link; True for the first)}]``."""
    out: list[dict[str, Any]] = []
    prev_last: str | None = None
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no audit log at {path}")
        log = AuditLog(path, read_only=True)
        try:
            n, broken, last = log.verify()
            anchor = log.anchor()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{path}: the access log is damaged ({e})") from None
        finally:
            log.close()
        follows = prev_last is None or anchor == prev_last
        out.append({"path": str(path), "rows": n, "anchor": anchor, "last": last,
                    "broken": broken, "follows": follows})  # fmt: skip
        prev_last = last  # a file without rows: its anchor
    return out


def read_rows(path: str | Path, **filters: Any) -> Iterator[dict[str, Any]]:
    """The rows of an audit file, for ``vitalgru serve-audit`` (the file is not created
    when absent: FileNotFoundError)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no audit log at {path}")
    log = AuditLog(path, read_only=True)
    with closing(log._db):
        since = int(filters.pop("since", 0))
        while True:
            batch = log.rows(since=since, **filters)
            yield from batch
            if len(batch) < filters.get("limit", 1000):
                return
            since = batch[-1]["seq"]
