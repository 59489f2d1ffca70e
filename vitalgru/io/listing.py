"""A PhysioNet database's listing files, ``RECORDS`` and ``SHA256SUMS.txt``, as text.

Both are UTF-8 text (PhysioNet writes plain ASCII). :func:`read_listing` reads either,
taking away a byte-order mark an editor may have put first (kept, it made the first
record's name ``'\ufeff100'`` and refused a good record as missing) and refusing bytes
that are not UTF-8 with an error naming the file and the line (before, a bare
``UnicodeDecodeError`` for the whole database).

:func:`parse_records` reads ``RECORDS``: one name a line, a record in a sub-folder with
its folder (``p00/p000020``; a folder of records ends with ``/``). A name listed twice is
one record: read once, so that it is neither processed twice nor counted twice in
``attrition.csv``. ``SHA256SUMS.txt`` is parsed by
:func:`vitalgru.io.checksums.parse_sha256sums`.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["parse_records", "read_listing"]

logger = logging.getLogger(__name__)


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

    A trailing ``/`` is dropped; blank lines and ``#`` comments are skipped; a name listed
    again is dropped and logged (naming ``source`` and the line).
    """
    names: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        name = line.strip().rstrip("/")
        if not name or name.startswith("#"):
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
