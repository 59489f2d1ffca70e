"""What fetching a PhysioNet database came to (:meth:`vitalgru.io.physionet.Database.fetch`):
the files present, downloaded and skipped, and each failure, as attrition entries."""

from __future__ import annotations

from dataclasses import dataclass, field

from vitalgru.errors import DownloadError
from vitalgru.types import AttritionEntry

__all__ = ["FetchReport", "FileFailure", "failure_reason"]

#: The attrition stage of a failure's reason; any other reason is a "read" failure.
_STAGE = {"checksum_mismatch": "verify", "download_failed": "download"}


@dataclass(frozen=True, slots=True)
class FileFailure:
    """One file that could not be fetched or verified."""

    file: str  # path relative to the database root (the record name if none applies)
    reason: str  # "download_failed", "checksum_mismatch", "missing_file", ...
    detail: str
    record: str = ""  # record the file belongs to


@dataclass
class FetchReport:
    """Outcome of :meth:`Database.fetch`, per file; failures do not stop the others.

    Attributes
    ----------
    ok : list of str
        Files present and verified (or present, where no digest is published).
    downloaded : list of str
        Subset of ``ok`` transferred by this call.
    skipped : list of str
        Requested files the database does not publish (e.g. no ``.atr`` for a noise
        record); not an error.
    failures : list of FileFailure
        Files missing, undownloadable or failing their checksum.
    files : dict of str to list of str
        Record -> its files in ``ok``: the header, the signal files the header names
        (whatever their names) and the annotation files present; what a record read from
        this fetch is made of.
    """

    database: str
    ok: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)

    def present(self, record: str, rel: str) -> None:
        """Note ``rel``, one of ``record``'s files, as present (and verified)."""
        self.ok.append(rel)
        self.files.setdefault(record, []).append(rel)

    def extend(self, other: FetchReport) -> None:
        """Add another report's outcomes (one record's, fetched in a thread) to this one."""
        self.ok += other.ok
        self.downloaded += other.downloaded
        self.skipped += other.skipped
        self.failures += other.failures
        for record, rels in other.files.items():
            self.files.setdefault(record, []).extend(rels)

    @property
    def complete(self) -> bool:
        return not self.failures

    @property
    def failed_records(self) -> list[str]:
        """Records with at least one failing file, in order of first failure."""
        return list(dict.fromkeys(f.record for f in self.failures))

    def attrition(self) -> list[AttritionEntry]:
        """Failures as attrition entries, one per failing record however many of its files
        failed: ``item`` the record, ``stage`` ("download", "verify" or "read") and
        ``reason`` those of its first failing file, ``detail`` every failing file's
        message (each names its file), joined by ``"; "``."""
        by_item: dict[str, list[FileFailure]] = {}
        for f in self.failures:
            by_item.setdefault(f.record or f.file, []).append(f)
        out = []
        for item, failures in by_item.items():
            first = failures[0]
            if len(failures) == 1:
                detail = first.detail
            else:
                detail = "; ".join(f"{f.detail} ({f.reason})" for f in failures)
            stage = _STAGE.get(first.reason, "read")
            out.append(AttritionEntry(self.database, item, stage, first.reason, detail))
        return out


def failure_reason(e: Exception) -> str:
    """The reason code a failing file is reported under."""
    if isinstance(e, DownloadError):
        return "download_failed"
    return str(getattr(e, "reason", "unreadable"))
