"""PhysioNet WFDB databases: one :class:`Database` over a download cache, a mirror or a folder.

Where the files live is the only difference between the three sources; listing,
fetching, verification and reading run through the same code:

* **remote** (default): files come from ``<base_url>/<db>/<version>/<file>`` (PhysioNet's
  layout, e.g. ``https://physionet.org/files/mitdb/1.0.0/100.hea``) into
  ``<cache_dir>/<db>/<version>/``, resumably, each verified against the database's
  ``SHA256SUMS.txt`` before it is moved into place, and never fetched twice;
* **mirror**: a local folder laid out like PhysioNet's (``<mirror>/<db>/<files>``, or
  ``<mirror>/<db>/<version>/<files>``) chosen by ``PhysioNetConfig.mirror`` or the
  environment variable ``VITALGRU_PHYSIONET_MIRROR``; nothing is downloaded;
* **folder**: any directory holding ``.hea`` files, named by its path; ``RECORDS`` and
  ``SHA256SUMS.txt`` are used when present.

A database is opened by name or folder with :func:`vitalgru.io.sources.open_database`,
which also decides between mirror and download (:func:`vitalgru.io.sources.resolve_source`).

Example
-------
>>> db = open_database("mitdb", PhysioNetConfig())             # doctest: +SKIP
>>> report = db.fetch()                                         # doctest: +SKIP
>>> rec, ann = db.read_record("100"), db.read_annotations("100")  # doctest: +SKIP

Verification state (size, mtime and SHA-256 of every file already checked) is kept in
``<cache_dir>/verified/``, so a second ingest of the same files hashes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Unpack

from vitalgru.errors import ChecksumError, DownloadError, RecordError, UnknownRecordError
from vitalgru.io.database_files import DatabaseFiles, FilesOptions
from vitalgru.io.fetch_report import FetchReport, FileFailure, failure_reason
from vitalgru.io.folders import archive_hint
from vitalgru.io.listing import walk_records
from vitalgru.io.wfdb_header import HeaderInfo, read_header
from vitalgru.io.wfdb_reader import read_annotations_file, read_record_files
from vitalgru.io.wfdb_segments import read_segmented_header
from vitalgru.types import Annotations, Record

logger = logging.getLogger(__name__)

__all__ = ["Database", "PatientIds"]

PatientIds = Mapping[str, str] | Callable[[str], str]

_REQUIRED_EXT = "hea"


class Database(DatabaseFiles):
    """A WFDB database in a local folder, optionally backed by a PhysioNet URL.

    Its files are made present and verified by :class:`~vitalgru.io.database_files.DatabaseFiles`;
    this adds the records: listing them, their files, reading them.

    Use :func:`open_database` rather than constructing one directly.

    Parameters
    ----------
    name, root, url, fetcher, state, version
        As :class:`~vitalgru.io.database_files.DatabaseFiles` takes them.
    verify_checksums : bool
        Check files against ``SHA256SUMS.txt`` before reading them, and signals against
        the checksums their headers state (default True).
    patient_ids : mapping or callable, optional
        Record -> patient id; records a mapping omits are their own patient.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        patient_ids: PatientIds | None = None,
        **files: Unpack[FilesOptions],
    ) -> None:
        super().__init__(name, root, **files)
        self._patient_ids = patient_ids
        self._records: list[str] | None = None

    def __repr__(self) -> str:
        where = self.url or str(self.root)
        return f"Database({self.name!r}, {where!r})"

    # ---- listing -----------------------------------------------------------------

    def list_records(self) -> list[str]:
        """Record names, each once, those in sub-folders with their folder (``ward2/208``).

        From ``RECORDS``, a line ending with ``/`` read as a folder with its own
        ``RECORDS`` (downloaded too, when remote); else the sorted ``*.hea`` stems of the
        folder, then those of its sub-folders (:func:`~vitalgru.io.listing.walk_records`).

        Raises
        ------
        DownloadError
            A remote database whose ``RECORDS`` (or a listed folder's) cannot be fetched.
        FileNotFoundError
            A local folder with neither ``RECORDS`` nor ``.hea`` files of its own (one
            above the databases' folders is not read as one database: the error names
            them).
        ValueError
            A ``RECORDS`` that is not UTF-8 text (:func:`~vitalgru.io.listing.read_listing`).
        """
        if self._records is None:
            if self._meta_file("RECORDS", optional=False) is None and not any(
                self.root.glob("*.hea")
            ):
                raise FileNotFoundError(
                    f"{self.root}: no RECORDS file and no .hea files{self._subfolder_hint()}"
                )
            self._records = walk_records(
                lambda rel: self._meta_file(rel, optional=False), self.root
            )
        return list(self._records)

    def _subfolder_hint(self) -> str:
        """Which subfolders hold records, when the folder is one level above them (the
        mirror's root), or the archive still to unpack, as a message suffix."""
        try:
            below = sorted(
                d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob("*.hea"))
            )
        except OSError:  # an unreadable subfolder: no hint rather than another error
            return ""
        if below:
            return f"; these subfolders hold records: {', '.join(below)}"
        return archive_hint(self.root, "the records")

    def _check_record(self, record: str) -> None:
        records = self.list_records()
        if record not in records:
            raise UnknownRecordError(self.name, record, records)

    def patient_id(self, record: str) -> str:
        """Patient of ``record`` via the mapping hook (default: the record itself)."""
        if self._patient_ids is None:
            return record
        if callable(self._patient_ids):
            return str(self._patient_ids(record))
        return str(self._patient_ids.get(record, record))

    # ---- files of a record ---------------------------------------------------------

    def _rel(self, record: str, file_name: str) -> str:
        parent = PurePosixPath(record).parent
        return str(parent / file_name) if str(parent) != "." else file_name

    def _header_rel(self, record: str) -> str:
        return self._rel(record, f"{PurePosixPath(record).name}.hea")

    def _ann_rel(self, record: str, ext: str) -> str:
        return self._rel(record, f"{PurePosixPath(record).name}.{ext.lstrip('.')}")

    def _plan(self, extensions: Sequence[str]) -> tuple[bool, list[str]]:
        exts = [e.lstrip(".") for e in extensions]
        return "dat" in exts, [e for e in exts if e not in (_REQUIRED_EXT, "dat")]

    def _ensure_strict(self, record: str, extensions: Sequence[str]) -> HeaderInfo | None:
        """Ensure the record's files, raising on the first problem; return the parsed
        header when the signal files were requested (None for a multi-segment record,
        whose segments' files are ensured as records of their own)."""
        with_dat, anns = self._plan(extensions)
        self._ensure(self._header_rel(record), required=True)
        header = None
        if with_dat and (seg := read_segmented_header(self.root, record)) is not None:
            for part in seg.segment_records():  # each segment is a record of its own
                self._ensure(self._header_rel(part), required=True)
                for fname in (
                    [] if part == seg.layout else read_header(self.root, part).data_files()
                ):
                    self._ensure(self._rel(part, fname), required=True)
        elif with_dat:
            header = read_header(self.root, record)
            for fname in header.data_files():
                self._ensure(self._rel(record, fname), required=True)
        for ext in anns:
            self._ensure(self._ann_rel(record, ext), required=False)
        return header

    def _fetch_record(self, record: str, extensions: Sequence[str], report: FetchReport) -> None:
        """Ensure the record's files, collecting per-file outcomes in ``report``."""

        def attempt(rel: str, required: bool) -> bool:
            try:
                present = self._ensure(rel, required, report)
            except (DownloadError, ChecksumError, RecordError) as e:
                report.failures.append(FileFailure(rel, failure_reason(e), str(e), record))
                return False
            if present:
                report.present(record, rel)
            else:
                report.skipped.append(rel)
            return True

        try:
            self._check_record(record)
        except UnknownRecordError as e:
            report.failures.append(FileFailure(record, e.reason, str(e), record))
            return
        with_dat, anns = self._plan(extensions)
        if not attempt(self._header_rel(record), True):
            return  # without the header the signal files are unknown
        if with_dat:
            try:
                files = read_header(self.root, record).data_files()
            except RecordError as e:
                report.failures.append(
                    FileFailure(self._header_rel(record), e.reason, str(e), record)
                )
                files = []
            for fname in files:
                attempt(self._rel(record, fname), True)
        for ext in anns:
            attempt(self._ann_rel(record, ext), False)

    # ---- public operations ---------------------------------------------------------

    def fetch(
        self,
        records: Sequence[str] | None = None,
        extensions: Sequence[str] = ("hea", "dat", "atr"),
        workers: int = 1,
    ) -> FetchReport:
        """Make the records' files present and verified; download what is missing (remote).

        Parameters
        ----------
        records : sequence of str, optional
            Records to fetch (each once); all listed ones by default.
        extensions : sequence of str
            ``"hea"`` (always), ``"dat"`` (the signal files the header names, whatever
            their names) and annotation extensions (``"atr"``, ``"qrs"``, ...).
            Annotation files the database does not publish are reported as skipped.
        workers : int
            Records fetched concurrently (downloads are I/O bound).

        Returns
        -------
        FetchReport
            Per-file outcome; a failing file does not stop the others.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        names = list(dict.fromkeys(self.list_records() if records is None else records))
        self.checksums()  # fetch once, before any thread needs it
        report = FetchReport(self.name)

        def one(record: str) -> FetchReport:
            sub = FetchReport(self.name)
            self._fetch_record(record, extensions, sub)
            return sub

        if workers == 1:
            parts = [one(r) for r in names]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(one, names))
        for p in parts:
            report.extend(p)
        self._state.save()
        logger.info(
            "%s: %d files ok (%d downloaded), %d skipped, %d failed",
            self.name,
            len(report.ok),
            len(report.downloaded),
            len(report.skipped),
            len(report.failures),
        )
        return report

    def verify(self, record: str, extensions: Sequence[str] = ("hea", "dat", "atr")) -> None:
        """Check the record's files against ``SHA256SUMS.txt`` (hashing only what changed
        since it was last verified); fetch missing ones when remote.

        Raises
        ------
        UnknownRecordError, ChecksumError, RecordError, DownloadError
        """
        self._check_record(record)
        try:
            self._ensure_strict(record, extensions)
        finally:
            self._state.save()

    def read_record(self, record: str, channels: Sequence[str | int] | None = None) -> Record:
        """Read one record (fetched and verified first, when so configured).

        Parameters
        ----------
        record : str
            A name :meth:`list_records` returns.
        channels : sequence of str or int, optional
            Leads by name or index; all by default.

        Returns
        -------
        Record
            ``signal`` ``(n_samples, n_channels)`` float32 in physical units (voltages in
            mV), ``fs`` in Hz from the header, lead names kept, ``patient_id`` from the
            database's mapping (MIT-BIH: 202 -> 201, see :data:`~vitalgru.io.sources.PATIENT_ID_MAPS`).

        Raises
        ------
        UnknownRecordError, ChecksumError, RecordError, DownloadError
        """
        self._check_record(record)
        header = None
        if self.verify_checksums or self.is_remote:
            try:
                header = self._ensure_strict(record, ("hea", "dat"))
            finally:
                self._state.save()
        return read_record_files(
            self.root,
            record,
            channels=channels,
            patient_id=self.patient_id(record),
            database=self.name,
            header=header,
            verify_checksums=self.verify_checksums,
        )

    def read_annotations(self, record: str, extension: str = "atr") -> Annotations:
        """Read ``<record>.<extension>`` (fetched and verified first, when so configured).

        Raises
        ------
        UnknownRecordError, ChecksumError, DownloadError
        RecordError
            ``missing_annotations`` when the database has no such file for the record.
        """
        self._check_record(record)
        if self.verify_checksums or self.is_remote:
            try:
                self._ensure_strict(record, (extension,))
            finally:
                self._state.save()
        return read_annotations_file(self.root, record, extension)
