"""Read many records, keeping going past bad ones and saying why each was dropped.

One unreadable, truncated or corrupt record must not stop a database's ingest; each is
turned into a :class:`vitalgru.types.AttritionEntry` (``stage``, machine-readable
``reason``, human-readable ``detail``) for ``attrition.csv``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from vitalgru.errors import ChecksumError, DownloadError, RecordError, UnknownRecordError
from vitalgru.io.physionet import Database
from vitalgru.types import Annotations, AttritionEntry, Record

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRITION_COLUMNS",
    "IngestResult",
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


def no_record_error(database: str, excluded: Sequence[AttritionEntry], done: str) -> RecordError:
    """The error for a call none of whose records could be used: each record and why; when
    none had an annotation file, how to read unannotated recordings."""
    why = "; ".join(f"{e.item}: {e.detail}" for e in excluded)
    msg = f"no record could be {done}{': ' + why if why else ' (none asked for)'}"
    if excluded and all(e.reason == "missing_annotations" for e in excluded):
        msg += (
            ". For recordings nobody annotated, pass annotations=None (on the command line, "
            "--annotations none): the detector's beats are then classified, without scores"
        )
    return RecordError(database, msg, "no_usable_record")


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
