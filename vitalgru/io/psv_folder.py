"""A whole folder of Challenge-2019 tables (a training set, 17,652 files) read into one frame
(:func:`read_psv_folder`), and cached.

It is done in one parse: every file is read as bytes and checked (header, row shape; the
checks and parsers are :mod:`vitalgru.io.psv`'s), the bodies are joined and parsed by a
single ``pyarrow.csv`` pass. A file that fails any check is parsed on its own to find out
why and is either raised as :class:`~vitalgru.errors.RecordError` (``on_error="raise"``) or
recorded as an :class:`~vitalgru.types.AttritionEntry` (``on_error="skip"``); the others
are still read.

The tables are the folder's files named ``.psv`` in any case (``.PSV``, as Windows exports
write) or ``.psv.gz`` (uncompressed as read), the patient id the name without them; a
patient's second file (``p1.psv`` beside ``p1.psv.gz``) is left out as
``duplicate_patient``. The folder's sub-folders are not read, and their tables are not
passed over in silence: a warning says how many and where, and each is an attrition entry
(``in_subfolder``).

The parsed cohort can be cached as one parquet file keyed on the folder's file names,
sizes and modification times; a cache that cannot be read is read past (the files are
parsed again), one that cannot be written is logged.

A folder whose files have no ``SepsisLabel`` column is read unlabelled (no
``sepsis_label`` column); one that mixes both kinds is refused (:mod:`vitalgru.io.psv_labels`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vitalgru.claims import replacing
from vitalgru.errors import RecordError
from vitalgru.io.folders import archive_hint
from vitalgru.io.ingest import ATTRITION_COLUMNS
from vitalgru.io.psv import (
    N_FIELDS,
    check_bytes,
    parse_body,
    parse_lenient,
    patient_id_of,
    reorder_fields,
    table_bytes,
    to_frame,
    validate_table,
)
from vitalgru.io.psv_labels import folder_labelled
from vitalgru.types import AttritionEntry

__all__ = [
    "PsvCohort", "folder_fingerprint", "is_table_file", "list_psv", "read_psv_folder",
    "tables_in_subfolders",
]  # fmt: skip

logger = logging.getLogger(__name__)

# v2: decimal commas read; v3: no quoting, lone CR; v4: empty lines among rows skipped;
# v5: files without SepsisLabel read as unlabelled (v4 cached them as attrition)
_CACHE_VERSION = "psv-cohort-v5"


@dataclass(frozen=True)
class PsvCohort:
    """A folder of Challenge-2019 tables, parsed.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per patient-hour: ``patient_id`` (str), ``hour`` (int16, ICU hour from
        ``ICULOS``: the Challenge's stays start at 1, an export may start at 0), the
        measurement and static columns (float32, NaN where not measured) and
        ``sepsis_label`` (int8; no such column when the files have no ``SepsisLabel``:
        :attr:`labelled`). Rows are grouped by patient in file-name order, hours
        ascending within a patient.
    attrition : list of AttritionEntry
        Files not read, with the reason: those that could not be, a patient's second file
        (``duplicate_patient``: ``p1.psv`` beside ``p1.psv.gz``), and the tables in the
        folder's sub-folders (``in_subfolder``, item the path relative to the folder).
    source_files : int
        Number of table files in the folder (:func:`list_psv`).
    non_numeric_cells : dict
        vitalgru column -> cells that held text instead of a number, read as missing
        (only the columns that had any).
    empty_lines : int
        Empty or blank lines among the rows of the files read, skipped (they hold no hour).
    """

    frame: pd.DataFrame
    attrition: list[AttritionEntry]
    source_files: int
    non_numeric_cells: dict[str, int] = field(default_factory=dict)
    empty_lines: int = 0

    @property
    def labelled(self) -> bool:
        """Whether the files carry ``SepsisLabel`` (the frame a ``sepsis_label`` column)."""
        return "sepsis_label" in self.frame.columns


def is_table_file(name: str) -> bool:
    """Whether a file name is a Challenge-2019 table's: ``.psv`` in any case (``.PSV``, as
    Windows exports write), or gzip-compressed ``.psv.gz``."""
    low = name.lower()
    return low.endswith(".psv") or low.endswith(".psv.gz")


def list_psv(folder: str | Path) -> list[Path]:
    """The Challenge-2019 tables of a folder, sorted by name: its files named ``.psv`` in
    any case or ``.psv.gz`` (:func:`is_table_file`); its sub-folders are not looked in
    (:func:`tables_in_subfolders`)."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"Challenge-2019 folder {d} does not exist or is not a folder")
    with os.scandir(d) as it:
        return sorted(d / e.name for e in it if is_table_file(e.name) and e.is_file())


def tables_in_subfolders(folder: str | Path) -> list[str]:
    """The Challenge-2019 tables in a folder's sub-folders, at any depth, as paths relative
    to it (``ward2/p000001.psv``), sorted. A folder is read without its sub-folders (the
    challenge ships ``training_setA`` and ``training_setB`` side by side, and one file
    name, a patient id, may be in both), so these are left out, and said to be."""
    d = Path(folder)
    found: list[str] = []
    with os.scandir(d) as it:
        subs = sorted(e.name for e in it if e.is_dir())
    for sub in subs:
        for root, dirs, names in os.walk(d / sub):
            dirs.sort()
            rel = Path(root).relative_to(d)
            found += [(rel / n).as_posix() for n in sorted(names) if is_table_file(n)]
    return found


def folder_fingerprint(files: Sequence[Path]) -> str:
    """Hash of the file names, sizes and modification times (the parquet cache key): a
    file corrected in place keeps its size when a digit changes (a ``SepsisLabel`` 0 made
    1), so the size alone kept serving the old values."""
    h = hashlib.sha256(_CACHE_VERSION.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _no_psv_hint(folder: str | Path) -> str:
    """Where the ``.psv`` files are when a folder holds none, as a message suffix: in its
    subfolders (the challenge ships ``training_setA`` and ``training_setB`` side by side),
    or still packed in an archive (PhysioNet serves the sets as zip files)."""
    try:
        held = {
            d.name: n
            for d in sorted(Path(folder).iterdir())
            if d.is_dir() and (n := len(list_psv(d)))
        }
    except OSError:  # an unreadable subfolder: no hint rather than another error
        return ""
    if held:
        where = ", ".join(f"{name} ({n} files)" for name, n in held.items())
        return f"; its subfolders hold them: {where}; point at one of those"
    return archive_hint(folder, "the .psv files")


def read_psv_folder(
    folder: str | Path,
    *,
    on_error: Literal["raise", "skip"] = "skip",
    cache_dir: str | Path | None = None,
    limit: int | None = None,
) -> PsvCohort:
    """Read every ``.psv`` table of a Challenge-2019 folder into one frame.

    Parameters
    ----------
    folder : str or Path
        Folder of ``.psv`` files (``training_setA``), in any case, or ``.psv.gz``
        (:func:`list_psv`); files in its sub-folders are not read, but are warned about
        and listed in the attrition (``in_subfolder``).
    on_error : {"skip", "raise"}
        ``"skip"`` records malformed files as attrition and reads the rest; ``"raise"``
        raises the first :class:`~vitalgru.errors.RecordError`.
    cache_dir : str or Path, optional
        When given, the parsed cohort is stored there as parquet keyed on the folder's
        file names, sizes and modification times, and read back on the next call with
        the same files.
    limit : int, optional
        Read only the first ``limit`` files (by name), for quick runs.

    Returns
    -------
    PsvCohort
        Without a ``sepsis_label`` column when no file read has ``SepsisLabel``.

    Raises
    ------
    RecordError
        ``mixed_labels`` (whatever ``on_error``): some files read have a ``SepsisLabel``
        column and others do not; the message says how many of each.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    files = list_psv(folder)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no .psv files in {folder}{_no_psv_hint(folder)}")
    attrition: list[AttritionEntry] = []
    read_files: list[Path] = []
    first_of: dict[str, Path] = {}
    for f in files:  # p1.psv and p1.psv.gz: one patient, read once
        pid = patient_id_of(f)
        if pid in first_of:
            err = RecordError(f, f"patient {pid} is already read from {first_of[pid].name}",
                              reason="duplicate_patient")  # fmt: skip
            _handle(err, on_error, attrition, f)
            continue
        first_of[pid] = f
        read_files.append(f)
    nested = _nested_attrition(folder)
    cache_file: Path | None = None
    if cache_dir is not None:
        key = folder_fingerprint(files)
        cache_file = Path(cache_dir) / f"challenge2019-{Path(folder).name}-{key}.parquet"
        if cache_file.exists():
            try:
                cached = _read_cache(cache_file, len(files))
            except Exception as e:  # a damaged cache is a cache miss, never the answer
                logger.warning("cache %s cannot be read (%s: %s); reading the files again",
                               cache_file, type(e).__name__, e)  # fmt: skip
            else:
                # a cohort cached with files left out is no answer to on_error="raise":
                # the files are read, and the first that cannot be is raised
                if not (cached.attrition and on_error == "raise"):
                    logger.info("read %d patient-hours from cache %s", len(cached.frame),
                                cache_file)  # fmt: skip
                    return dataclasses.replace(cached, attrition=cached.attrition + nested)

    bodies: list[bytes] = []
    ids: list[str] = []
    counts: list[int] = []
    orders: list[np.ndarray | None] = []
    has_label: dict[Path, bool] = {}
    good_files: list[Path] = []
    empty_lines = 0
    for f in read_files:
        try:
            body, n, order, n_empty, has_label[f] = check_bytes(f, table_bytes(f))
        except RecordError as err:
            _handle(err, on_error, attrition, f)
            continue
        bodies.append(body)
        ids.append(patient_id_of(f))
        counts.append(n)
        orders.append(order)
        good_files.append(f)
        empty_lines += n_empty

    parts: list[np.ndarray] = []
    non_numeric: dict[str, int] = {}
    try:
        # Every column is float64, so files whose columns come in another order parse
        # with the rest and are put in order after the split.
        arr = parse_body(Path(folder), b"".join(bodies)) if bodies else np.empty((0, N_FIELDS))
        splits = np.cumsum(counts)[:-1]
        chunks = np.split(arr, splits) if bodies else []
        parts = [reorder_fields(a, o) for a, o in zip(chunks, orders, strict=True)]
    except RecordError:
        # Some file has a non-numeric cell: parse file by file, leniently.
        parts = []
        keep_ids: list[str] = []
        keep_files: list[Path] = []
        for f, body, pid, order in zip(good_files, bodies, ids, orders, strict=True):
            try:
                a, text_cells = parse_lenient(f, body, order)
            except RecordError as err:
                _handle(err, on_error, attrition, f)
                continue
            for col, n in text_cells.items():
                non_numeric[col] = non_numeric.get(col, 0) + n
            parts.append(a)
            keep_ids.append(pid)
            keep_files.append(f)
        ids, good_files = keep_ids, keep_files

    final_parts: list[np.ndarray] = []
    final_ids: list[str] = []
    final_files: list[Path] = []
    for f, a, pid in zip(good_files, parts, ids, strict=True):
        try:
            validate_table(f, a, has_label[f])
        except RecordError as err:
            _handle(err, on_error, attrition, f)
            continue
        final_parts.append(a)
        final_ids.append(pid)
        final_files.append(f)
    labelled = folder_labelled(folder, final_files, has_label)

    if final_parts:
        arr = np.concatenate(final_parts)
        pid_col = np.repeat(np.array(final_ids, dtype=object), [len(a) for a in final_parts])
    else:
        arr = np.empty((0, N_FIELDS))
        pid_col = np.empty(0, dtype=object)
    frame = to_frame(arr, pid_col, labelled)
    logger.info(
        "read %d patients (%d patient-hours) from %s; %d files excluded; %d non-numeric "
        "cells read as missing; %d empty lines skipped",
        len(final_ids),
        len(frame),
        folder,
        len(attrition) + len(nested),
        sum(non_numeric.values()),
        empty_lines,
    )
    if cache_file is not None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"vitalgru_attrition"] = _attrition_to_meta(attrition)
        meta[b"vitalgru_non_numeric"] = json.dumps(non_numeric).encode()
        meta[b"vitalgru_empty_lines"] = str(empty_lines).encode()
        try:  # each writer its own temporary file: two reading the folder at once
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with replacing(cache_file) as t:
                pq.write_table(table.replace_schema_metadata(meta), t, compression="zstd")
        except OSError as e:  # a full or read-only cache folder costs the cache, not the read
            logger.warning("cache %s not written: %s", cache_file, e)
    return PsvCohort(frame, attrition + nested, len(files), non_numeric, empty_lines)


def _nested_attrition(folder: str | Path) -> list[AttritionEntry]:
    """An attrition entry for each table in a sub-folder of ``folder``
    (:func:`tables_in_subfolders`), and a warning that says how many and where: they were
    left out without a word as soon as the folder itself held one."""
    nested = tables_in_subfolders(folder)
    if not nested:
        return []
    per_sub: dict[str, int] = {}
    for rel in nested:
        top = rel.split("/", 1)[0]
        per_sub[top] = per_sub.get(top, 0) + 1
    where = ", ".join(f"{sub}/ ({n})" for sub, n in per_sub.items())
    logger.warning(
        "%d Challenge-2019 file(s) in sub-folders of %s are not read: %s; a folder is read "
        "without its sub-folders (point at a sub-folder to read its files)",
        len(nested), folder, where,
    )  # fmt: skip
    return [
        AttritionEntry(
            database="challenge-2019",
            item=rel,
            stage="read",
            reason="in_subfolder",
            detail=f"{rel}: in a sub-folder of {folder}, which is read without its "
            f"sub-folders; point at {Path(folder) / rel.split('/', 1)[0]} to read it",
        )
        for rel in nested
    ]


def _read_cache(cache_file: Path, n_files: int) -> PsvCohort:
    table = pq.read_table(cache_file)
    meta = table.schema.metadata or {}
    attr = _attrition_from_meta(meta.get(b"vitalgru_attrition", b""))
    text = json.loads(meta.get(b"vitalgru_non_numeric", b"{}"))
    empty = int(meta.get(b"vitalgru_empty_lines", b"0"))
    return PsvCohort(table.to_pandas(), attr, n_files, {k: int(v) for k, v in text.items()}, empty)


def _handle(err: RecordError, on_error: str, attrition: list[AttritionEntry], f: Path) -> None:
    if on_error == "raise":
        raise err
    logger.warning("skipping %s", err)
    attrition.append(
        AttritionEntry(
            database="challenge-2019",
            item=f.name,
            stage="read",
            reason=err.reason,
            detail=str(err),
        )
    )


def _attrition_to_meta(entries: list[AttritionEntry]) -> bytes:
    df = pd.DataFrame(
        [(e.database, e.item, e.stage, e.reason, e.detail) for e in entries],
        columns=list(ATTRITION_COLUMNS),
    )
    return df.to_json(orient="records").encode()


def _attrition_from_meta(blob: bytes) -> list[AttritionEntry]:
    if not blob:
        return []
    df = pd.read_json(io.BytesIO(blob), orient="records", dtype=str)
    return [AttritionEntry(**{k: str(v) for k, v in row.items()}) for row in df.to_dict("records")]
