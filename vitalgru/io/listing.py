"""A PhysioNet database's listing files, ``RECORDS`` and ``SHA256SUMS.txt``, as text.

Both are UTF-8 text (PhysioNet writes plain ASCII). :func:`read_listing` reads either,
taking away a byte-order mark an editor may have put first (kept, it made the first
record's name ``'\ufeff100'`` and refused a good record as missing) and refusing bytes
that are not UTF-8 with an error naming the file and the line (before, a bare
``UnicodeDecodeError`` for the whole database).

:func:`parse_records` reads ``RECORDS``: one name a line, a record in a sub-folder with
its folder (``p00/p000020``). A line ending with ``/`` names a folder of records with
its own ``RECORDS`` (PhysioNet's layout for its large databases, ``mimic3wdb-matched``:
``p00/``, then ``p00/RECORDS`` lists ``p000020/``, ...); :func:`walk_records` expands
such lines, folder within folder, into the records' names with their folders
(``p00/p000020/p000020-2183-04-28-17-47``), as ``wfdb.dl_database`` does. A name listed
twice is one record: read once, so that it is neither processed twice nor counted twice
in ``attrition.csv``. ``SHA256SUMS.txt`` is parsed by
:func:`vitalgru.io.checksums.parse_sha256sums`.

A folder without ``RECORDS`` lists its ``.hea`` files, those of its sub-folders
included (``ward2/208``), the way a ``RECORDS`` would name them; the segments of a
multi-segment record in it (and its layout header) are parts of that record, not records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath

__all__ = ["MAX_FOLDER_DEPTH", "parse_records", "read_listing", "walk_records"]

logger = logging.getLogger(__name__)

#: Folders below the database's that :func:`walk_records` enters (PhysioNet's deepest
#: layout, ``mimic3wdb-matched``, uses 2); a deeper one is a link back up, not records.
MAX_FOLDER_DEPTH = 8


def read_listing(path: str | Path) -> str:
    """The text of a listing file: UTF-8, a leading byte-order mark dropped.

    Raises
    ------
    ValueError
        Bytes that are not UTF-8, naming the file, the line and the bytes.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path} line {line}: bytes that are not UTF-8 "
            f"({data[e.start : e.end + 3]!r}); save it as UTF-8 (or plain ASCII) text"
        ) from e


def parse_records(text: str, source: str = "RECORDS") -> list[str]:
    """Record names from a ``RECORDS`` file's text, in their order, each once.

    A folder of records keeps its trailing ``/`` (``ward2/``: see :func:`walk_records`);
    blank lines and ``#`` comments are skipped; a name listed again is dropped and logged
    (naming ``source`` and the line).
    """
    names: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if name.endswith("/"):
            name = name.rstrip("/") + "/"
        if not name.strip("/") or name.startswith("#"):
            continue
        if name in names:
            logger.warning(
                "%s line %d lists record %r again (first on line %d); it is read once",
                source,
                n,
                name,
                names[name],
            )
            continue
        names[name] = n
    return list(names)


def walk_records(
    records_file: Callable[[str], Path | None],
    root: Path,
    max_depth: int = MAX_FOLDER_DEPTH,
) -> list[str]:
    """Every record of the folder ``root``, sub-folders' with their folder, each once.

    A folder's records are those its ``RECORDS`` lists, a line ending with ``/`` read as
    a folder with its own ``RECORDS`` (expanded the same way, its name put before its
    records'); a folder without ``RECORDS`` lists its ``*.hea`` files, sorted, but those a
    multi-segment header in it names as its segments, then the records of its sub-folders
    (hidden ones left out).

    Parameters
    ----------
    records_file : callable
        ``"ward2/RECORDS"`` (relative to ``root``) -> the local path of that file, or
        ``None`` when there is none (a remote database downloads it here, and raises when
        it cannot).
    root : Path
        The database's folder.
    max_depth : int
        Folders entered below ``root``; one deeper, or one already walked (a link back
        up), is left out with a warning.

    Raises
    ------
    ValueError
        A ``RECORDS`` that is not UTF-8 text (:func:`read_listing`).
    """
    out: dict[str, None] = {}
    walked: set[Path] = set()

    def folder(prefix: str, depth: int, named_by: str | None) -> None:
        here = root / prefix
        key = here.resolve()
        if key in walked or depth > max_depth:
            why = "walked already" if key in walked else f"more than {max_depth} folders down"
            logger.warning("folder %r (%s) is %s: its records are left out", prefix,
                           named_by or "below the database's", why)  # fmt: skip
            return
        walked.add(key)
        path = records_file(prefix + "RECORDS")
        if path is not None:
            for name in parse_records(read_listing(path), str(path)):
                if not name.endswith("/"):
                    # a name out of the folder is refused when read (``unsafe_path``)
                    out.setdefault(prefix + name)
                elif _escapes(name):
                    logger.warning("%s: folder %r is outside the database's folder; left "
                                   "out", path, name)  # fmt: skip
                else:
                    folder(prefix + name, depth + 1, f"listed in {path}")
            return
        before = len(out)
        try:
            heads = sorted(here.glob("*.hea"))
            # a multi-segment record's segments are parts of it, not records of their own
            parts = {name for hea in heads for name in _segment_names(hea)}
            for hea in heads:
                if hea.stem not in parts:
                    out.setdefault(prefix + hea.stem)
            subs = sorted(d.name for d in here.iterdir() if d.is_dir())
        except OSError as e:  # missing or unreadable: said below when it was listed
            logger.debug("%s: %s", here, e)
            subs = []
        for sub in subs:
            if not sub.startswith("."):
                folder(f"{prefix}{sub}/", depth + 1, None)
        if named_by is not None and prefix and len(out) == before:
            logger.warning("folder %r (%s) holds no RECORDS and no .hea files", prefix,
                           named_by)  # fmt: skip

    folder("", 0, None)
    return list(out)


def _segment_names(hea: Path) -> list[str]:
    """The segments a multi-segment header names (the first field of each line after its
    record line, ``name/n_segments ...``; header(5)); none for any other header."""
    try:
        text = hea.read_text(errors="replace")
    except OSError:  # unreadable: refused when the record is read
        return []
    lines = [ln.split("#", 1)[0].split() for ln in text.splitlines()]
    fields = [f for f in lines if f]
    if not fields or "/" not in fields[0][0]:
        return []
    return [f[0] for f in fields[1:]]


def _escapes(name: str) -> bool:
    pure = PurePosixPath(name)
    return pure.is_absolute() or ".." in pure.parts or "\\" in name
