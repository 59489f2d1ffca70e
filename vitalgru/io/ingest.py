"""Read many records, keeping going past bad ones and saying why each was dropped.

One unreadable, truncated or corrupt record must not stop a database's ingest; each is
turned into a :class:`vitalgru.types.AttritionEntry` (``stage``, machine-readable
``reason``, human-readable ``detail``) for ``attrition.csv``.
"""

from __future__ import annotations

import csv
import glob
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

from vitalgru.errors import ChecksumError, DownloadError, RecordError, UnknownRecordError
from vitalgru.io.physionet import Database
from vitalgru.io.wfdb_reader import read_annotations_file
from vitalgru.types import Annotations, AttritionEntry, Record

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRITION_COLUMNS",
    "IngestResult",
    "annotation_extensions",
    "attrition_entry",
    "ingest_records",
    "iter_records",
    "no_record_error",
    "write_attrition",
]

#: Columns of every ``attrition.csv``: the fields of :class:`AttritionEntry`.
ATTRITION_COLUMNS = tuple(f.name for f in fields(AttritionEntry))


def attrition_entry(
    database: str, item: str, error: Exception, stage: str = "process"
) -> AttritionEntry:
    """Classify an error that dropped ``item`` into an attrition entry.

    ``stage`` is ``"download"`` (:class:`DownloadError`), ``"verify"``
    (:class:`ChecksumError`) or ``"read"`` (:class:`RecordError`,
    :class:`UnknownRecordError`); any other error (a record read but unusable) gets the
    given ``stage``. ``reason`` is the error's code, ``"unusable_record"`` without one.
    """
    if isinstance(error, DownloadError):
        stage, reason = "download", "download_failed"
    elif isinstance(error, ChecksumError):
        stage, reason = "verify", error.reason
    elif isinstance(error, RecordError | UnknownRecordError):
        stage, reason = "read", error.reason
    else:
        reason = getattr(error, "reason", "unusable_record")
    return AttritionEntry(
        database=database, item=item, stage=stage, reason=reason, detail=str(error)
    )


def no_record_error(
    database: str,
    excluded: Sequence[AttritionEntry],
    done: str,
    *,
    db: Database | None = None,
    extension: str | None = None,
) -> RecordError:
    """The error for a call none of whose records could be used: each record and why.

    When every record read lacked its annotation file (``missing_annotations``; records
    that failed before, a stale ``RECORDS`` line, do not hide it), it says which
    annotation files ``db`` holds beside those records instead (``--annotations ann``),
    or else how to read unannotated recordings.
    """
    why = "; ".join(f"{e.item}: {e.detail}" for e in excluded)
    msg = f"no record could be {done}{': ' + why if why else ' (none asked for)'}"
    unannotated = [e.item for e in excluded if e.reason == "missing_annotations"]
    if unannotated and not any(e.stage == "process" for e in excluded):
        found = annotation_extensions(db, unannotated, extension) if db is not None else {}
        if found:
            have = ", ".join(f".{x} ({n} of {len(unannotated)})" for x, n in found.items())
            best = next(iter(found))
            msg += (
                f". Beside the records are annotation files of another extension: {have}; "
                f"to score against them pass annotations={best!r} (on the command line, "
                f"--annotations {best})"
            )
        else:
            msg += (
                ". For recordings nobody annotated, pass annotations=None (on the command "
                "line, --annotations none): the detector's beats are then classified, "
                "without scores"
            )
    return RecordError(database, msg, "no_usable_record")


#: Extensions of a record's files that are not annotations (header, signals).
_NOT_ANNOTATIONS = frozenset({"hea", "dat", "mat", "xws", "edf", "wav"})


def annotation_extensions(
    db: Database, records: Sequence[str], asked: str | None = None
) -> dict[str, int]:
    """Annotation extensions beside ``records`` -> how many of them have one, most first.

    A local file ``<record>.<ext>`` counts when it reads as WFDB annotations; a remote
    database counts the files its ``SHA256SUMS.txt`` publishes. ``asked`` (the extension
    that was missing) is left out.
    """
    counts: dict[str, int] = {}
    published = db.checksums() if db.is_remote else {}
    for record in records:
        pure = PurePosixPath(record)
        names = {p.name for p in (db.root / pure.parent).glob(glob.escape(pure.name) + ".*")}
        names |= {PurePosixPath(rel).name for rel in published if
                  PurePosixPath(rel).parent == pure.parent}  # fmt: skip
        for name in names:
            ext = name[len(pure.name) + 1 :]
            if not name.startswith(pure.name + ".") or not ext or "." in ext:
                continue  # another record's, or a .part, .absent, .lock
            if ext.lower() in _NOT_ANNOTATIONS or ext == (asked or "").lstrip("."):
                continue
            if not db.is_remote:
                try:
                    read_annotations_file(db.root, record, ext)
                except RecordError:
                    continue
            counts[ext] = counts.get(ext, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def write_attrition(entries: Iterable[AttritionEntry], path: str | Path) -> None:
    """Write ``attrition.csv``: one row an excluded item, the header even when none was."""
    with open(path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=ATTRITION_COLUMNS)
        wr.writeheader()
        for e in entries:
            wr.writerow(asdict(e))


def iter_records(
    db: Database,
    records: Sequence[str] | None = None,
    *,
    channels: Sequence[str | int] | None = None,
    annotation_extension: str | None = "atr",
    attrition: list[AttritionEntry] | None = None,
) -> Iterator[tuple[Record, Annotations | None]]:
    """Yield ``(record, annotations)`` for every readable record, lazily (one in memory).

    Parameters
    ----------
    db : Database
        Source database.
    records : sequence of str, optional
        Records to read; all listed ones by default.
    channels : sequence of str or int, optional
        Leads to keep (see :meth:`Database.read_record`); a record lacking one is
        dropped with reason ``missing_channel``.
    annotation_extension : str or None
        Annotation file to read with each record (``None``: none). A record whose
        annotations are missing or unreadable is dropped.
    attrition : list, optional
        Receives one :class:`AttritionEntry` per dropped record.
    """
    names = db.list_records() if records is None else list(dict.fromkeys(records))
    for name in names:
        try:
            rec = db.read_record(name, channels=channels)
            ann = db.read_annotations(name, annotation_extension) if annotation_extension else None
        except (RecordError, ChecksumError, DownloadError, UnknownRecordError) as e:
            entry = attrition_entry(db.name, name, e)
            logger.warning("%s/%s dropped (%s): %s", db.name, name, entry.reason, e)
            if attrition is not None:
                attrition.append(entry)
            continue
        yield rec, ann


@dataclass
class IngestResult:
    """Records read, their annotations (by record id) and the attrition."""

    records: list[Record] = field(default_factory=list)
    annotations: dict[str, Annotations] = field(default_factory=dict)
    attrition: list[AttritionEntry] = field(default_factory=list)


def ingest_records(
    db: Database,
    records: Sequence[str] | None = None,
    *,
    channels: Sequence[str | int] | None = None,
    annotation_extension: str | None = "atr",
) -> IngestResult:
    """Read every requested record into memory, collecting failures as attrition.

    All 48 MIT-BIH records take about 250 MB as float32; use :func:`iter_records` to
    process one at a time.
    """
    out = IngestResult()
    for rec, ann in iter_records(
        db,
        records,
        channels=channels,
        annotation_extension=annotation_extension,
        attrition=out.attrition,
    ):
        out.records.append(rec)
        if ann is not None:
            out.annotations[rec.record_id] = ann
    return out
