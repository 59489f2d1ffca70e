"""A PhysioNet database's list of records, ``RECORDS``: one record name a line.

PhysioNet writes one name a line, a record in a sub-folder with its folder
(``p00/p000020``; a folder of records ends with ``/``). A name listed twice is one record:
read once, so that it is neither processed twice nor counted twice in ``attrition.csv``.
"""

from __future__ import annotations

import logging

__all__ = ["parse_records"]

logger = logging.getLogger(__name__)


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
